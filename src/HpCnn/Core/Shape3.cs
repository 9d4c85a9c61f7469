namespace HpCnn;

/// <summary>
/// The shape of one sample: channels x height x width (NCHW without the batch dimension).
/// A flat vector of F features is <c>(F, 1, 1)</c>; a C x 1 x 1 feature map from a convolution or pool has the same
/// values in the same order, but stays an image (as in PyTorch) until a flatten: see <see cref="IsVector"/>.
/// </summary>
public readonly record struct Shape3(int C, int H, int W)
{
    /// <summary>A flat vector of <paramref name="features"/> values (what flatten and dense layers output).</summary>
    public static Shape3 Flat(int features) => new(features, 1, 1) { IsVector = true };

    /// <summary>
    /// True for a vector made by a flatten or dense layer: convolutions and pools refuse it. Not part of equality: a vector
    /// and a C x 1 x 1 map hold the same values in the same order.
    /// </summary>
    public bool IsVector { get; private init; }

    public bool Equals(Shape3 other) => C == other.C && H == other.H && W == other.W;
    public override int GetHashCode() => HashCode.Combine(C, H, W);

    /// <summary>Number of values in one sample.</summary>
    public int Size => checked(C * H * W);

    /// <summary>True when height and width are 1 (a vector, or a C x 1 x 1 map: either feeds a dense layer).</summary>
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
