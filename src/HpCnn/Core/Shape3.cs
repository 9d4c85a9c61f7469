namespace HpCnn;

/// <summary>
/// The shape of one sample: channels x height x width (NCHW without the batch dimension).
/// A flat vector of F features is <c>(F, 1, 1)</c>.
/// </summary>
public readonly record struct Shape3(int C, int H, int W)
{
    /// <summary>A flat vector of <paramref name="features"/> values.</summary>
    public static Shape3 Flat(int features) => new(features, 1, 1);

    /// <summary>Number of values in one sample.</summary>
    public int Size => checked(C * H * W);

    /// <summary>True for a flat vector (height and width 1).</summary>
    public bool IsFlat => H == 1 && W == 1;

    /// <summary>Spatial plane size (H x W).</summary>
    public int Plane => H * W;

    public override string ToString() => IsFlat ? $"{C}" : $"{C}x{H}x{W}";

    internal void Validate(string what)
    {
        if (C <= 0 || H <= 0 || W <= 0)
            throw new ArgumentException($"{what}: every dimension must be positive, got {C}x{H}x{W}");
        long size = (long)C * H * W;
        if (size > int.MaxValue / 8)
            throw new ArgumentException($"{what}: {C}x{H}x{W} is too large ({size} values per sample)");
    }
}
