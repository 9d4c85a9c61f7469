namespace HpCnn.Layers;

/// <summary>
/// A tensor a layer owns: trainable weights (weight, bias, gamma, beta) or a persistent buffer
/// (batch-norm running statistics). <see cref="Value"/> is the live array: after writing it directly,
/// call <see cref="MarkChanged"/> so that plans holding a packed copy repack it.
/// </summary>
public sealed class Parameter
{
    private static long s_versionSource;

    internal Parameter(string name, int[] shape, bool trainable)
    {
        Name = name;
        Shape = shape;
        Trainable = trainable;
        long count = 1;
        foreach (int d in shape) count *= d;
        Value = new float[count];
        Grad = trainable ? new float[count] : [];
        MarkChanged();
    }

    /// <summary>"weight", "bias", "gamma", "beta", "running_mean", "running_var".</summary>
    public string Name { get; }
    /// <summary>Dimensions (e.g. OutC x InC x KH x KW for a convolution's weight).</summary>
    public int[] Shape { get; }
    /// <summary>False for buffers the optimizer never touches (running statistics).</summary>
    public bool Trainable { get; }
    public int Count => Value.Length;
    public float[] Value { get; }
    /// <summary>Gradient of the last training step (empty for buffers).</summary>
    public float[] Grad { get; }

    /// <summary>Optimizer state (momentum / first and second moments), created by the optimizer on first use.</summary>
    internal float[]? Moment1 { get; set; }
    internal float[]? Moment2 { get; set; }

    /// <summary>Changes whenever <see cref="Value"/> changes through the engine or <see cref="MarkChanged"/>.</summary>
    public long Version { get; private set; }

    /// <summary>Tells plans that <see cref="Value"/> was written.</summary>
    public void MarkChanged() => Version = Interlocked.Increment(ref s_versionSource);

    /// <summary>Copies <paramref name="values"/> into the parameter after checking the count.</summary>
    public void Set(ReadOnlySpan<float> values)
    {
        if (values.Length != Value.Length)
            throw new ArgumentException($"{Name}: expected {Value.Length} values ({string.Join("x", Shape)}), got {values.Length}");
        values.CopyTo(Value);
        MarkChanged();
    }

    public string ShapeText => string.Join("x", Shape);
}
