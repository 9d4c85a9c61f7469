namespace HpCnn.Layers;

/// <summary>Weight initialisation schemes.</summary>
public enum InitKind
{
    /// <summary>PyTorch's default for conv and linear layers: weights and bias uniform in +-1/sqrt(fan_in).</summary>
    Default,
    /// <summary>He (Kaiming) normal: std sqrt(2 / fan_in); bias zero.</summary>
    He,
    /// <summary>Xavier (Glorot) uniform: +-sqrt(6 / (fan_in + fan_out)); bias zero.</summary>
    Xavier,
    /// <summary>Normal with a given standard deviation; bias zero.</summary>
    Normal,
}

/// <summary>How a layer's weights are drawn. Reproducible: the stream is fixed by the model seed and the layer index.</summary>
public readonly record struct Initializer(InitKind Kind, float Std = Initializer.DefaultNormalStd)
{
    /// <summary>The standard deviation of "normal" when none is given.</summary>
    public const float DefaultNormalStd = 0.01f;

    public static Initializer Default => new(InitKind.Default);
    public static Initializer He => new(InitKind.He);
    public static Initializer Xavier => new(InitKind.Xavier);
    public static Initializer Normal(float std) => new(InitKind.Normal, std);

    internal void Fill(Span<float> weights, Span<float> bias, int fanIn, int fanOut, Rng rng)
    {
        switch (Kind)
        {
            case InitKind.Default:
                {
                    double bound = 1.0 / Math.Sqrt(fanIn);
                    for (int i = 0; i < weights.Length; i++) weights[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
                    for (int i = 0; i < bias.Length; i++) bias[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
                    return;
                }
            case InitKind.He:
                {
                    double std = Math.Sqrt(2.0 / fanIn);
                    for (int i = 0; i < weights.Length; i++) weights[i] = (float)(rng.NextNormal() * std);
                    break;
                }
            case InitKind.Xavier:
                {
                    double bound = Math.Sqrt(6.0 / (fanIn + fanOut));
                    for (int i = 0; i < weights.Length; i++) weights[i] = (float)((rng.NextDouble() * 2 - 1) * bound);
                    break;
                }
            case InitKind.Normal:
                for (int i = 0; i < weights.Length; i++) weights[i] = (float)(rng.NextNormal() * Std);
                break;
        }
        bias.Clear();
    }

    public override string ToString() => Kind == InitKind.Normal ? $"normal({Std})" : Kind.ToString().ToLowerInvariant();
}
