using System.Globalization;
using System.Text.Json;
using HpCnn.Kernels;
using static HpCnn.Layers.OnnxAttribute;

namespace HpCnn.Layers;

/// <summary>Flattens C x H x W to a vector of C*H*W (no copy: the output is the input).</summary>
public sealed class Flatten : Layer
{
    public static readonly LayerType Type = new("flatten", [], [], _ => new Flatten());
    public override string Kind => Type.Name;
    protected override Shape3 OnBuild(Shape3 input, Rng rng) => Shape3.Flat(input.Size);
    public override string Describe() => "";
    internal override bool IsView(bool training) => true;
    internal override string WriteOnnx(IOnnxGraph g, string x, string name) => g.AsFlat(x, name);
    internal override void Forward(LayerRun run) { }
    internal override void Backward(LayerRun run) { }
}

/// <summary>
/// Inverted dropout: in training each value is zeroed with probability <see cref="Rate"/> and the rest scaled
/// by 1/(1-rate); in inference it passes values through. Masks come from a counter-based hash of the seed,
/// the step and the position, so they do not depend on the thread count.
/// </summary>
public sealed class Dropout : Layer
{
    private ulong _seed;

    public Dropout(float rate, ulong? seed = null)
    {
        if (!(rate >= 0 && rate < 1)) throw new ArgumentOutOfRangeException(nameof(rate), $"dropout: rate must be in [0, 1), got {rate}");
        Rate = rate;
        Seed = seed;
    }

    /// <summary>The spec's "dropout": "rate" required, "seed" optional (default: drawn from the model seed).</summary>
    public static readonly LayerType Type = new("dropout", [], ["rate", "seed"], n => new Dropout(n.Required("rate").Float(), n.Optional("seed")?.UInt64()));

    public override string Kind => Type.Name;
    public float Rate { get; }
    public ulong? Seed { get; }

    protected override Shape3 OnBuild(Shape3 input, Rng rng)
    {
        _seed = Seed ?? rng.NextUInt64();
        return input;
    }

    public override string Describe() => $"rate {Rate.ToString(CultureInfo.InvariantCulture)}";
    protected override void WriteSpecFields(Utf8JsonWriter w)
    {
        w.WriteNumber("rate", Rate);
        if (Seed is ulong s) w.WriteNumber("seed", s);
    }

    internal override bool IsView(bool training) => !training;
    internal override string WriteOnnx(IOnnxGraph g, string x, string name) => x; // the identity in inference
    internal override long StateFloats(int batch, bool training) => training ? (long)batch * InputShape.Size : 0;

    internal override void Forward(LayerRun run)
    {
        var mask = run.State.Slice(0, run.Batch * InputShape.Size);
        ulong step = (ulong)run.Step;
        ulong threshold = (ulong)(Rate * (double)ulong.MaxValue);
        float scale = 1f / (1f - Rate);
        ulong seed = Rng.Mix(_seed, step);
        // Positions count from the global batch's first image, so a batch split over processes draws the same masks.
        ulong first = (ulong)run.Layout.Offset * (ulong)InputShape.Size;
        for (int i = 0; i < mask.Length; i++)
            mask[i] = Rng.Mix(seed, first + (ulong)i) >= threshold ? scale : 0f;
        ElementwiseKernels.Map(run.Input.Slice(0, mask.Length), mask, run.Output.Span, new MultiplyOp());
    }

    internal override void Backward(LayerRun run)
    {
        int n = run.Batch * InputShape.Size;
        ElementwiseKernels.Map(run.OutGrad.Slice(0, n), run.State.Slice(0, n), run.InGrad.Span, new MultiplyOp());
    }
}
