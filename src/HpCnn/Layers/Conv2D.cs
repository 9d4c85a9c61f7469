using System.Text.Json;
using HpCnn.Kernels;

namespace HpCnn.Layers;

/// <summary>
/// 2-D convolution: <c>OutChannels</c> filters of KH x KW over all input channels, with stride, padding and an
/// optional bias. Weights OutC x InC x KH x KW. The input channel count is taken from the previous layer;
/// when given, it is checked. The algorithm (implicit GEMM on padded planes, or tiled im2col + GEMM) is chosen
/// once per shape by <see cref="Conv2dPlan"/>.
/// </summary>
public sealed class Conv2D : Layer
{
    /// <summary>Images per gradient chunk are fixed by the batch alone, so sums never depend on the thread count.</summary>
    internal const int MaxGradientChunks = 8;

    private Parameter? _weight, _bias;
    private Conv2dPlan? _plan;

    public Conv2D(int outChannels, int kernelSize, int stride = 1, Padding? padding = null, bool bias = true,
        int? inChannels = null, Initializer? init = null)
        : this(outChannels, (kernelSize, kernelSize), (stride, stride), padding, bias, inChannels, init) { }

    public Conv2D(int outChannels, (int H, int W) kernel, (int H, int W) stride, Padding? padding = null, bool bias = true,
        int? inChannels = null, Initializer? init = null)
    {
        if (outChannels <= 0) throw new ArgumentOutOfRangeException(nameof(outChannels), $"conv2d: filters must be positive, got {outChannels}");
        if (kernel.H <= 0 || kernel.W <= 0) throw new ArgumentOutOfRangeException(nameof(kernel), $"conv2d: kernel must be positive, got {kernel.H}x{kernel.W}");
        if (stride.H <= 0 || stride.W <= 0) throw new ArgumentOutOfRangeException(nameof(stride), $"conv2d: stride must be positive, got {stride.H}x{stride.W}");
        if (inChannels is <= 0) throw new ArgumentOutOfRangeException(nameof(inChannels), $"conv2d: input channels must be positive, got {inChannels}");
        OutChannels = outChannels;
        Kernel = kernel;
        Stride = stride;
        Padding = padding ?? Padding.Valid;
        HasBias = bias;
        DeclaredInChannels = inChannels;
        Init = init ?? Initializer.Default;
    }

    public override string Kind => "conv2d";
    public int OutChannels { get; }
    public (int H, int W) Kernel { get; }
    public (int H, int W) Stride { get; }
    public Padding Padding { get; }
    public bool HasBias { get; }
    public int? DeclaredInChannels { get; }
    public Initializer Init { get; }

    /// <summary>The resolved geometry (after the layer is added to a model).</summary>
    public Conv2dShape Shape { get; private set; }
    public Conv2dAlgorithm Algorithm => _plan!.Algorithm;
    public Parameter Weight => _weight!;
    public Parameter? Bias => _bias;

    public override long FlopsPerSample => Shape.ForwardFlops;

    protected override Shape3 OnBuild(Shape3 input, Rng rng)
    {
        if (DeclaredInChannels is int ic && ic != input.C)
            throw new ArgumentException($"expected input with {ic} channels, got {input}");
        if (input.IsFlat && input.C > 1 && Kernel != (1, 1))
            throw new ArgumentException($"expected an image (channels x height x width), got a flat vector of {input.C}");
        var (pt, pl, pb, pr) = Padding.Resolve(input.H, input.W, Kernel.H, Kernel.W, Stride.H, Stride.W);
        var s = new Conv2dShape(input.C, input.H, input.W, OutChannels, Kernel.H, Kernel.W, Stride.H, Stride.W, pt, pl, pb, pr);
        s.Validate();
        Shape = s;
        _plan = new Conv2dPlan(s);
        _weight = AddParameter("weight", [OutChannels, input.C, Kernel.H, Kernel.W]);
        if (HasBias) _bias = AddParameter("bias", [OutChannels]);
        Init.Fill(_weight.Value, _bias is null ? default : _bias.Value, s.K, OutChannels * Kernel.H * Kernel.W, rng);
        return new Shape3(OutChannels, s.OutH, s.OutW);
    }

    public override string Describe()
    {
        string kernel = Dims(Kernel.H, Kernel.W), stride = Stride.H == Stride.W ? $"{Stride.H}" : Dims(Stride.H, Stride.W);
        return $"{OutChannels} filters {kernel}, stride {stride}, padding {Padding}{(HasBias ? "" : ", no bias")}";
    }

    protected override void WriteSpecFields(Utf8JsonWriter w)
    {
        w.WriteNumber("filters", OutChannels);
        SpecWriting.WritePair(w, "kernel", Kernel.H, Kernel.W);
        SpecWriting.WritePair(w, "stride", Stride.H, Stride.W);
        SpecWriting.WritePadding(w, Padding);
        if (!HasBias) w.WriteBoolean("bias", false);
        if (DeclaredInChannels is int ic) w.WriteNumber("in_channels", ic);
        if (Init != Initializer.Default) SpecWriting.WriteInit(w, Init);
    }

    internal override bool CanFuseClamp => true;

    private int Chunks(int batch) => Math.Min(batch, MaxGradientChunks);
    private int GradSize => Shape.WeightCount + (HasBias ? OutChannels : 0);

    internal override long StateFloats(int batch, bool training)
    {
        long n = _plan!.PackedWeightsSize;
        if (training)
        {
            n += _plan.PackedWeightsTSize;
            if (Chunks(batch) > 1) n += (long)Chunks(batch) * GradSize;
        }
        return n;
    }

    internal override long ScratchFloats(int batch, bool training)
    {
        long n = _plan!.ForwardScratch;
        if (training) n = Math.Max(n, Math.Max(_plan.BackwardDataScratch, _plan.BackwardWeightsScratch));
        return n;
    }

    private sealed class Jobs
    {
        public required ForwardJob Forward;
        public required BackwardJob Backward;
        public required ReduceJob Reduce;
        public long PackedVersion = -1, PackedTVersion = -1;
    }

    internal override void Prepare(LayerRun run)
    {
        run.Jobs = new Jobs
        {
            Forward = new ForwardJob(this, run),
            Backward = new BackwardJob(this, run),
            Reduce = new ReduceJob(this, run),
        };
    }

    private Buffer PackedWeights(LayerRun run) => run.State.Sub(0, _plan!.PackedWeightsSize);
    private Buffer PackedWeightsT(LayerRun run) => run.State.Sub(_plan!.PackedWeightsSize, _plan.PackedWeightsTSize);

    internal override void Forward(LayerRun run)
    {
        var jobs = (Jobs)run.Jobs!;
        if (jobs.PackedVersion != _weight!.Version)
        {
            _plan!.PackWeights(_weight.Value, PackedWeights(run).Span);
            jobs.PackedVersion = _weight.Version;
        }
        var f = jobs.Forward;
        // Items are groups of images (Winograd batches tiles of several); small batches also split each group,
        // so both cores work on a single image.
        f.Group = _plan!.ImagesPerCall;
        f.Groups = (run.Batch + f.Group - 1) / f.Group;
        f.Parts = Math.Min(_plan.ForwardParts, Math.Max(1, (2 * run.Pool.ThreadCount + f.Groups - 1) / f.Groups));
        run.Parallel(f, f.Groups * f.Parts, Shape.ForwardFlops * f.Group / f.Parts);
    }

    internal override void Backward(LayerRun run)
    {
        var jobs = (Jobs)run.Jobs!;
        if (run.NeedInputGrad && jobs.PackedTVersion != _weight!.Version)
        {
            _plan!.PackWeightsTransposed(_weight.Value, PackedWeightsT(run).Span);
            jobs.PackedTVersion = _weight.Version;
        }
        int chunks = Chunks(run.Batch);
        run.Parallel(jobs.Backward, chunks, 3 * Shape.ForwardFlops * run.Batch / chunks);
        if (run.NeedParamGrad && chunks > 1)
            run.Parallel(jobs.Reduce, ReduceJob.Parts, (long)GradSize * chunks / ReduceJob.Parts);
    }

    private sealed class ForwardJob(Conv2D layer, LayerRun run) : ParallelJob
    {
        public int Parts = 1, Group = 1, Groups = 1;

        public override void Execute(int item, int worker)
        {
            int g = item / Parts, part = item % Parts;
            int n0 = g * Group, count = Math.Min(Group, run.Batch - n0);
            var s = layer.Shape;
            var epi = new GemmEpilogue(layer.HasBias ? BiasMode.PerRow : BiasMode.None, layer._bias?.Value, 0, run.FusedLow, run.FusedHigh);
            layer._plan!.Forward(run.Input.Slice(n0 * s.InSize, count * s.InSize), count, layer._weight!.Value, layer.PackedWeights(run).Span,
                run.Output.Slice(n0 * s.OutSize, count * s.OutSize), in epi, run.Scratch[worker].Span, part, Parts);
        }
    }

    private sealed class BackwardJob(Conv2D layer, LayerRun run) : ParallelJob
    {
        public override void Execute(int chunk, int worker)
        {
            var s = layer.Shape;
            int chunks = layer.Chunks(run.Batch);
            var (n0, n1) = LayerRun.Range(run.Batch, chunk, chunks);
            var scratch = run.Scratch[worker].Span;
            Span<float> dw = default, db = default;
            if (run.NeedParamGrad)
            {
                if (chunks == 1)
                {
                    dw = layer._weight!.Grad;
                    db = layer._bias is null ? default : layer._bias.Grad;
                }
                else
                {
                    int baseOff = layer._plan!.PackedWeightsSize + layer._plan.PackedWeightsTSize + chunk * layer.GradSize;
                    dw = run.State.Slice(baseOff, s.WeightCount);
                    db = layer.HasBias ? run.State.Slice(baseOff + s.WeightCount, s.OutC) : default;
                }
            }
            int group = layer._plan!.ImagesPerCall;
            for (int n = n0; n < n1; n += group)
            {
                int count = Math.Min(group, n1 - n);
                var dy = run.OutGrad.Slice(n * s.OutSize, count * s.OutSize);
                if (run.NeedInputGrad)
                    layer._plan.BackwardData(dy, count, layer._weight!.Value, layer.PackedWeightsT(run).Span,
                        run.InGrad.Slice(n * s.InSize, count * s.InSize), scratch);
                if (run.NeedParamGrad)
                    layer._plan.BackwardWeights(run.Input.Slice(n * s.InSize, count * s.InSize), dy, count, dw, db, n > n0, scratch);
            }
        }
    }

    /// <summary>Sums the chunks' partial gradients in chunk order; parts split the elements, never the sum.</summary>
    private sealed class ReduceJob(Conv2D layer, LayerRun run) : ParallelJob
    {
        public const int Parts = 4;

        public override void Execute(int part, int worker)
        {
            int size = layer.GradSize, chunks = layer.Chunks(run.Batch);
            int baseOff = layer._plan!.PackedWeightsSize + layer._plan.PackedWeightsTSize;
            var (a, b) = LayerRun.Range(size, part, Parts);
            int wCount = layer.Shape.WeightCount;
            for (int i = a; i < b;)
            {
                // Split the range at the weight / bias boundary.
                int end = i < wCount ? Math.Min(b, wCount) : b;
                Span<float> dst = i < wCount ? layer._weight!.Grad.AsSpan(i, end - i) : layer._bias!.Grad.AsSpan(i - wCount, end - i);
                run.State.Slice(baseOff + i, end - i).CopyTo(dst);
                for (int c = 1; c < chunks; c++)
                    VectorMath.AddInPlace(dst, run.State.Slice(baseOff + c * size + i, end - i));
                i = end;
            }
        }
    }
}
