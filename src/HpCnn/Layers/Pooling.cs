using System.Text.Json;
using HpCnn.IO;
using HpCnn.Kernels;
using static HpCnn.Layers.OnnxAttribute;

namespace HpCnn.Layers;

/// <summary>Max or average pooling over each channel's plane: window, stride (default: the window) and padding.</summary>
public abstract class Pool2D : Layer
{
    private protected Pool2D(int kernel, int? stride, Padding? padding) : this((kernel, kernel), stride is int s ? (s, s) : null, padding) { }

    private protected Pool2D((int H, int W) kernel, (int H, int W)? stride, Padding? padding)
    {
        if (kernel.H <= 0 || kernel.W <= 0) throw new ArgumentOutOfRangeException(nameof(kernel), $"pooling: window must be positive, got {kernel.H}x{kernel.W}");
        var st = stride ?? kernel;
        if (st.H <= 0 || st.W <= 0) throw new ArgumentOutOfRangeException(nameof(stride), $"pooling: stride must be positive, got {st.H}x{st.W}");
        Kernel = kernel;
        Stride = st;
        Padding = padding ?? Padding.Valid;
    }

    public (int H, int W) Kernel { get; }
    public (int H, int W) Stride { get; }
    public Padding Padding { get; }
    public Pool2dShape Shape { get; private set; }

    protected override Shape3 OnBuild(Shape3 input, Rng rng)
    {
        if (input.IsVector && input.C > 1)
            throw new ArgumentException($"expected an image (channels x height x width), got a flat vector of {input.C}");
        var (pt, pl, pb, pr) = Padding.Resolve(input.H, input.W, Kernel.H, Kernel.W, Stride.H, Stride.W);
        var s = new Pool2dShape(input.C, input.H, input.W, Kernel.H, Kernel.W, Stride.H, Stride.W, pt, pl, pb, pr);
        s.Validate();
        Shape = s;
        return new Shape3(input.C, s.OutH, s.OutW);
    }

    public override long FlopsPerSample => (long)OutputShape.Size * Kernel.H * Kernel.W;

    public override string Describe()
    {
        string stride = Stride.H == Stride.W ? $"{Stride.H}" : Dims(Stride.H, Stride.W);
        return $"{Dims(Kernel.H, Kernel.W)}, stride {stride}{(Padding.Mode == PaddingMode.Valid ? "" : $", padding {Padding}")}";
    }

    private protected static readonly string[] Fields = ["kernel", "stride", "padding"];
    /// <summary>The window when the spec gives none.</summary>
    public const int DefaultWindow = 2;
    private protected static (int, int) KernelOf(SpecNode n) => n.Optional("kernel") is { } k ? SpecFields.ReadWindow(k) : (DefaultWindow, DefaultWindow);
    private protected static (int, int)? StrideOf(SpecNode n) => n.Optional("stride") is { } s ? SpecFields.ReadWindow(s) : null;
    private protected static Padding? PaddingOf(SpecNode n) => SpecFields.ReadPadding(n.Optional("padding"));

    protected override void WriteSpecFields(Utf8JsonWriter w)
    {
        SpecFields.WritePair(w, "kernel", Kernel.H, Kernel.W);
        if (Stride != Kernel) SpecFields.WritePair(w, "stride", Stride.H, Stride.W);
        if (Padding.Mode != PaddingMode.Valid) SpecFields.WritePadding(w, Padding);
    }

    internal override string WriteOnnx(IOnnxGraph g, string x, string name)
    {
        x = g.AsImage(x, InputShape, name);
        var s = Shape;
        OnnxAttribute[] attrs =
        [
            Ints("kernel_shape", s.KH, s.KW), Ints("strides", s.StrideH, s.StrideW), Ints("pads", s.PadTop, s.PadLeft, s.PadBottom, s.PadRight),
            Int("ceil_mode", 0),
            // Average pooling divides every window by KH x KW, padding zeros included (PyTorch's count_include_pad=True);
            // max pooling never picks a padding position (ONNX MaxPool's padding is minus infinity).
            .. this is AvgPool2D ? [Int("count_include_pad", 1)] : Array.Empty<OnnxAttribute>(),
        ];
        return g.Node(this is MaxPool2D ? "MaxPool" : "AveragePool", name, [x], attrs);
    }

    /// <summary>Channel groups per image a job splits the work into.</summary>
    private protected int Groups(LayerRun run) => run.Batch >= 2 * run.Pool.ThreadCount ? 1 : Math.Min(Shape.C, 2 * run.Pool.ThreadCount);

    /// <summary>
    /// The backward of image <paramref name="n"/>, planes [c0, c1), into <paramref name="inGrad"/> (that image's input
    /// gradient, overwritten), applying the mask of a fused ReLU before the pool (<see cref="HpCnn.Training.Epilogue.ReluMaskCap"/>).
    /// </summary>
    private protected abstract void BackwardImage(LayerRun run, int n, int c0, int c1, Span<float> inGrad);

    /// <summary>
    /// Fusion rule 10: the backward of images [n0, n1) into <paramref name="inGrad"/> (their input gradients, image n0
    /// first), run by the convolution before the pool on a chunk of its images; the same values as the pool's own pass.
    /// </summary>
    internal void BackwardImages(LayerRun run, int n0, int n1, Span<float> inGrad)
    {
        int inS = InputShape.Size;
        for (int n = n0; n < n1; n++) BackwardImage(run, n, 0, Shape.C, inGrad.Slice((n - n0) * inS, inS));
    }

    private protected sealed class Bwd(Pool2D layer, LayerRun run) : PoolJob(layer, run)
    {
        protected override void Run1(int n, int c0, int c1) =>
            Layer.BackwardImage(Run, n, c0, c1, Run.InGrad.Slice(n * Layer.InputShape.Size, Layer.InputShape.Size));
    }

    private protected abstract class PoolJob(Pool2D layer, LayerRun run) : ParallelJob
    {
        public int Groups = 1;
        protected readonly Pool2D Layer = layer;
        protected readonly LayerRun Run = run;

        public override void Execute(int item, int worker)
        {
            int n = item / Groups;
            var (c0, c1) = LayerRun.Range(Layer.Shape.C, item % Groups, Groups);
            Run1(n, c0, c1);
        }

        protected abstract void Run1(int n, int c0, int c1);
    }
}

/// <summary>Max pooling (the first maximum of each window wins; its gradient goes there).</summary>
public sealed class MaxPool2D : Pool2D
{
    public MaxPool2D(int kernel = DefaultWindow, int? stride = null, Padding? padding = null) : base(kernel, stride, padding) { }
    public MaxPool2D((int H, int W) kernel, (int H, int W)? stride = null, Padding? padding = null) : base(kernel, stride, padding) { }

    /// <summary>The spec's "maxpool2d": kernel 2, stride equal to the window, padding valid unless given.</summary>
    public static readonly LayerType Type = new("maxpool2d", ["maxpool"], Fields, n => new MaxPool2D(KernelOf(n), StrideOf(n), PaddingOf(n)));

    public override string Kind => Type.Name;

    internal override long StateFloats(int batch, bool training) => training ? (long)batch * OutputShape.Size : 0;

    internal override void Prepare(LayerRun run) => run.Jobs = (new Fwd(this, run), new Bwd(this, run));

    internal override void Forward(LayerRun run)
    {
        var (f, _) = ((Fwd, Bwd))run.Jobs!;
        f.Groups = Groups(run);
        run.Parallel(f, run.Batch * f.Groups, FlopsPerSample / f.Groups);
    }

    internal override void Backward(LayerRun run)
    {
        var (_, b) = ((Fwd, Bwd))run.Jobs!;
        b.Groups = Groups(run);
        run.Parallel(b, run.Batch * b.Groups, InputShape.Size / b.Groups);
    }

    private sealed class Fwd(MaxPool2D l, LayerRun r) : PoolJob(l, r)
    {
        protected override void Run1(int n, int c0, int c1)
        {
            int inS = Layer.InputShape.Size, outS = Layer.OutputShape.Size;
            var idx = Run.Training ? Run.State.AsInts().Slice(n * outS, outS) : default;
            var shape = Layer.Shape;
            PoolKernels.MaxForward(in shape, Run.Input.Slice(n * inS, inS), Run.Output.Slice(n * outS, outS), idx, c0, c1);
        }
    }

    private protected override void BackwardImage(LayerRun run, int n, int c0, int c1, Span<float> inGrad)
    {
        int outS = OutputShape.Size;
        var shape = Shape;
        bool relu = !float.IsNaN(run.Epilogue.ReluMaskCap);
        PoolKernels.MaxBackward(in shape, run.OutGrad.Slice(n * outS, outS), run.State.AsInts().Slice(n * outS, outS),
            inGrad, c0, c1, relu ? run.Output.Slice(n * outS, outS) : default, relu ? run.Epilogue.ReluMaskCap : float.PositiveInfinity);
    }
}

/// <summary>Average pooling (divides by the window area; padding counts as zeros, like PyTorch's default).</summary>
public sealed class AvgPool2D : Pool2D
{
    public AvgPool2D(int kernel = DefaultWindow, int? stride = null, Padding? padding = null) : base(kernel, stride, padding) { }
    public AvgPool2D((int H, int W) kernel, (int H, int W)? stride = null, Padding? padding = null) : base(kernel, stride, padding) { }

    /// <summary>The spec's "avgpool2d": as <see cref="MaxPool2D.Type"/>.</summary>
    public static readonly LayerType Type = new("avgpool2d", ["avgpool"], Fields, n => new AvgPool2D(KernelOf(n), StrideOf(n), PaddingOf(n)));

    public override string Kind => Type.Name;

    internal override void Prepare(LayerRun run) => run.Jobs = (new Fwd(this, run), new Bwd(this, run));

    internal override void Forward(LayerRun run)
    {
        var (f, _) = ((Fwd, Bwd))run.Jobs!;
        f.Groups = Groups(run);
        run.Parallel(f, run.Batch * f.Groups, FlopsPerSample / f.Groups);
    }

    internal override void Backward(LayerRun run)
    {
        var (_, b) = ((Fwd, Bwd))run.Jobs!;
        b.Groups = Groups(run);
        run.Parallel(b, run.Batch * b.Groups, InputShape.Size / b.Groups);
    }

    private sealed class Fwd(AvgPool2D l, LayerRun r) : PoolJob(l, r)
    {
        protected override void Run1(int n, int c0, int c1)
        {
            int inS = Layer.InputShape.Size, outS = Layer.OutputShape.Size;
            var shape = Layer.Shape;
            PoolKernels.AvgForward(in shape, Run.Input.Slice(n * inS, inS), Run.Output.Slice(n * outS, outS), c0, c1);
        }
    }

    private protected override void BackwardImage(LayerRun run, int n, int c0, int c1, Span<float> inGrad)
    {
        int inS = InputShape.Size, outS = OutputShape.Size;
        var shape = Shape;
        bool relu = !float.IsNaN(run.Epilogue.ReluMaskCap);
        PoolKernels.AvgBackward(in shape, run.OutGrad.Slice(n * outS, outS), inGrad, c0, c1,
            relu ? run.Input.Slice(n * inS, inS) : default, relu ? run.Epilogue.ReluMaskCap : float.PositiveInfinity);
    }
}
