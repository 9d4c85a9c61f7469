using System.Globalization;
using System.Text.Json;
using HpCnn.Kernels;
using static HpCnn.Layers.OnnxAttribute;

namespace HpCnn.Layers;

/// <summary>A layer that maps every value on its own (shape unchanged); the backward pass uses the output.</summary>
public abstract class ActivationLayer : Layer
{
    protected override Shape3 OnBuild(Shape3 input, Rng rng) => input;

    public override long FlopsPerSample => InputShape.Size;

    public override string Describe() => "";

    private protected abstract void ForwardRange(ReadOnlySpan<float> x, Span<float> y);
    private protected abstract void BackwardRange(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx);

    internal override void Prepare(LayerRun run) => run.Jobs = new Job(this, run);

    internal override void Forward(LayerRun run)
    {
        var job = (Job)run.Jobs!;
        job.Backward = false;
        job.Parts = run.ElementwiseParts((long)run.Batch * InputShape.Size);
        run.Parallel(job, job.Parts, (long)run.Batch * InputShape.Size / job.Parts);
    }

    internal override void Backward(LayerRun run)
    {
        var job = (Job)run.Jobs!;
        job.Backward = true;
        job.Parts = run.ElementwiseParts((long)run.Batch * InputShape.Size);
        run.Parallel(job, job.Parts, (long)run.Batch * InputShape.Size / job.Parts);
    }

    private sealed class Job(ActivationLayer layer, LayerRun run) : ParallelJob
    {
        public bool Backward;
        public int Parts = 1;

        public override void Execute(int item, int worker)
        {
            int total = run.Batch * layer.InputShape.Size;
            var (a, b) = LayerRun.Range(total, item, Parts);
            // Vector-aligned split points keep each part's tail handling the same.
            if (Parts > 1) { a = a & ~7; b = item == Parts - 1 ? total : b & ~7; }
            if (Backward) layer.BackwardRange(run.Output.Slice(a, b - a), run.OutGrad.Slice(a, b - a), run.InGrad.Slice(a, b - a));
            else layer.ForwardRange(run.Input.Slice(a, b - a), run.Output.Slice(a, b - a));
        }
    }
}

/// <summary>ReLU, optionally capped: y = min(max(x, 0), cap). A ReLU after a convolution or dense layer runs inside its epilogue.</summary>
public sealed class ReLU : ActivationLayer
{
    public ReLU(float? cap = null)
    {
        if (cap is float c && !(c > 0)) throw new ArgumentOutOfRangeException(nameof(cap), $"relu: cap must be positive, got {c}");
        Cap = cap;
    }

    /// <summary>The spec's "relu": "cap" (positive) limits the output; absent, the ReLU is uncapped.</summary>
    public static readonly LayerType Type = new("relu", [], ["cap"], n => new ReLU(n.Optional("cap")?.Float()));

    public override string Kind => Type.Name;
    /// <summary>The largest output (null: uncapped).</summary>
    public float? Cap { get; }
    internal float CapValue => Cap ?? float.PositiveInfinity;

    public override string Describe() => Cap is float c ? $"cap {c.ToString(CultureInfo.InvariantCulture)}" : "";
    protected override void WriteSpecFields(Utf8JsonWriter w) { if (Cap is float c) w.WriteNumber("cap", c); }

    // A capped ReLU is Clip(x, 0, cap) (ONNX's ReLU6 form); min and max are inputs since opset 11.
    internal override string WriteOnnx(IOnnxGraph g, string x, string name) =>
        Cap is float cap ? g.Node("Clip", name, [x, g.Floats(name + ".min", [0f]), g.Floats(name + ".max", [cap])]) : g.Node("Relu", name, [x]);

    private protected override void ForwardRange(ReadOnlySpan<float> x, Span<float> y) => ActivationKernels.ReluForward(x, y, CapValue);
    private protected override void BackwardRange(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) => ActivationKernels.ReluBackward(y, dy, dx, CapValue);
}

/// <summary>Leaky ReLU: y = x for x &gt; 0, alpha x otherwise (0 &lt;= alpha &lt; 1).</summary>
public sealed class LeakyReLU : ActivationLayer
{
    /// <summary>The slope for negative inputs when none is given (PyTorch's).</summary>
    public const float DefaultAlpha = 0.01f;

    /// <summary>The spec's "leakyrelu": "alpha" in [0, 1), default <see cref="DefaultAlpha"/>.</summary>
    public static readonly LayerType Type = new("leakyrelu", ["leaky_relu"], ["alpha"], n => new LeakyReLU(n.Optional("alpha")?.Float() ?? DefaultAlpha));

    public LeakyReLU(float alpha = DefaultAlpha)
    {
        if (!(alpha >= 0 && alpha < 1)) throw new ArgumentOutOfRangeException(nameof(alpha), $"leakyrelu: alpha must be in [0, 1), got {alpha}");
        Alpha = alpha;
    }

    public override string Kind => Type.Name;
    public float Alpha { get; }
    public override string Describe() => $"alpha {Alpha.ToString(CultureInfo.InvariantCulture)}";
    protected override void WriteSpecFields(Utf8JsonWriter w) => w.WriteNumber("alpha", Alpha);

    internal override string WriteOnnx(IOnnxGraph g, string x, string name) => g.Node("LeakyRelu", name, [x], Float("alpha", Alpha));

    private protected override void ForwardRange(ReadOnlySpan<float> x, Span<float> y) => ActivationKernels.LeakyReluForward(x, y, Alpha);
    private protected override void BackwardRange(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) => ActivationKernels.LeakyReluBackward(y, dy, dx, Alpha);
}

/// <summary>Logistic sigmoid. As the last layer with binary log-loss, the loss works from the logits (stable).</summary>
public sealed class Sigmoid : ActivationLayer
{
    public static readonly LayerType Type = new("sigmoid", [], [], _ => new Sigmoid());
    public override string Kind => Type.Name;
    internal override string WriteOnnx(IOnnxGraph g, string x, string name) => g.Node("Sigmoid", name, [x]);
    private protected override void ForwardRange(ReadOnlySpan<float> x, Span<float> y) => ActivationKernels.SigmoidForward(x, y);
    private protected override void BackwardRange(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) => ActivationKernels.SigmoidBackward(y, dy, dx);
}

/// <summary>Hyperbolic tangent.</summary>
public sealed class Tanh : ActivationLayer
{
    public static readonly LayerType Type = new("tanh", [], [], _ => new Tanh());
    public override string Kind => Type.Name;
    internal override string WriteOnnx(IOnnxGraph g, string x, string name) => g.Node("Tanh", name, [x]);
    private protected override void ForwardRange(ReadOnlySpan<float> x, Span<float> y) => ActivationKernels.TanhForward(x, y);
    private protected override void BackwardRange(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) => ActivationKernels.TanhBackward(y, dy, dx);
}

/// <summary>Softmax over a flat vector. As the last layer with cross-entropy, the loss works from the logits (stable, fused gradient).</summary>
public sealed class Softmax : Layer
{
    public static readonly LayerType Type = new("softmax", [], [], _ => new Softmax());
    public override string Kind => Type.Name;

    protected override Shape3 OnBuild(Shape3 input, Rng rng)
    {
        if (!input.IsFlat) throw new ArgumentException($"expected a flat input, got {input} (add a flatten layer before softmax)");
        return input;
    }

    public override long FlopsPerSample => 4L * InputShape.Size;
    public override string Describe() => "";

    internal override string WriteOnnx(IOnnxGraph g, string x, string name) => g.Node("Softmax", name, [g.AsFlat(x, name)], Int("axis", -1));

    internal override void Forward(LayerRun run) => LossKernels.Softmax(run.Input.Span, run.Output.Span, run.Batch, InputShape.C);

    internal override void Backward(LayerRun run) =>
        LossKernels.SoftmaxBackward(run.Output.Span, run.OutGrad.Span, run.InGrad.Span, run.Batch, InputShape.C);
}
