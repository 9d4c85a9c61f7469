using System.Text.Json;
using HpCnn.Distributed;
using HpCnn.IO;
using HpCnn.Kernels;
using static HpCnn.Layers.OnnxAttribute;

namespace HpCnn.Layers;

/// <summary>
/// 2-D convolution: <c>OutChannels</c> filters of KH x KW over all input channels, with stride, padding and an
/// optional bias. Weights OutC x InC x KH x KW. The input channel count is taken from the previous layer;
/// when given, it is checked. The algorithm of each pass is chosen once per shape by <see cref="ConvolutionPlan"/>.
/// </summary>
public sealed class Conv2D : Layer
{
    private Parameter? _weight, _bias;
    // The shape's plan (inference at every batch size, and training at small batches), and the one training at batches of
    // 64 or more takes where ConvolutionPlan.Choose gives it other algorithms (null until a plan asks for it).
    private ConvolutionPlan? _conv, _convLargeBatch;
    private int[]? _pixelOffsets; // output pixel -> channels-last padded input offset (pooled-gradient backward)

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

    /// <summary>The spec's "conv2d": filters and kernel required; stride 1, padding valid, bias and the default initialiser unless given.</summary>
    public static readonly LayerType Type = new("conv2d", ["conv"], ["filters", "kernel", "stride", "padding", "bias", "in_channels", "init", "init_std"],
        n => new Conv2D(n.Required("filters").Int(1, NetworkSpec.MaxDimension), SpecFields.ReadWindow(n.Required("kernel")),
            n.Optional("stride") is { } s ? SpecFields.ReadWindow(s) : (1, 1), SpecFields.ReadPadding(n.Optional("padding")),
            n.Optional("bias")?.Bool() ?? true, n.Optional("in_channels")?.Int(1, NetworkSpec.MaxDimension), SpecFields.ReadInit(n)));

    public override string Kind => Type.Name;
    public int OutChannels { get; }
    public (int H, int W) Kernel { get; }
    public (int H, int W) Stride { get; }
    public Padding Padding { get; }
    public bool HasBias { get; }
    public int? DeclaredInChannels { get; }
    public Initializer Init { get; }

    /// <summary>The resolved geometry (after the layer is added to a model).</summary>
    public Conv2dShape Shape { get; private set; }
    /// <summary>The forward pass's algorithm (see <see cref="ConvolutionPlan.Choose"/>).</summary>
    public Conv2dAlgorithm Algorithm => _conv!.Forward.Algorithm;
    /// <summary>The algorithms of the three passes: forward, input gradient, weight gradient.</summary>
    public (Conv2dAlgorithm Forward, Conv2dAlgorithm Data, Conv2dAlgorithm Weights) Algorithms =>
        (_conv!.Forward.Algorithm, _conv.Data.Algorithm, _conv.Weights.Algorithm);
    public Parameter Weight => _weight!;
    public Parameter? Bias => _bias;

    public override long FlopsPerSample => Shape.ForwardFlops;
    public override long TrainingFlopsPerSample(bool inputGradient) => FlopsPerSample * (inputGradient ? 3 : 2);

    protected override Shape3 OnBuild(Shape3 input, Rng rng)
    {
        if (DeclaredInChannels is int ic && ic != input.C)
            throw new ArgumentException($"expected input with {ic} channels, got {input}");
        if (input.IsVector && input.C > 1 && Kernel != (1, 1))
            throw new ArgumentException($"expected an image (channels x height x width), got a flat vector of {input.C}");
        var (pt, pl, pb, pr) = Padding.Resolve(input.H, input.W, Kernel.H, Kernel.W, Stride.H, Stride.W);
        var s = new Conv2dShape(input.C, input.H, input.W, OutChannels, Kernel.H, Kernel.W, Stride.H, Stride.W, pt, pl, pb, pr);
        s.Validate();
        Shape = s;
        _conv = new ConvolutionPlan(s);
        _convLargeBatch = null;
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
        SpecFields.WritePair(w, "kernel", Kernel.H, Kernel.W);
        SpecFields.WritePair(w, "stride", Stride.H, Stride.W);
        SpecFields.WritePadding(w, Padding);
        if (!HasBias) w.WriteBoolean("bias", false);
        if (DeclaredInChannels is int ic) w.WriteNumber("in_channels", ic);
        if (Init != Initializer.Default) SpecFields.WriteInit(w, Init);
    }

    // Conv with the pads resolved for the input (top, left, bottom, right), weight [filters, in_channels, kh, kw].
    internal override string WriteOnnx(IOnnxGraph g, string x, string name)
    {
        x = g.AsImage(x, InputShape, name);
        var s = Shape;
        var inputs = new List<string> { x, g.Floats(name + ".weight", Weight.Value, OutChannels, s.InC, s.KH, s.KW) };
        if (Bias is { } b) inputs.Add(g.Floats(name + ".bias", b.Value, OutChannels));
        return g.Node("Conv", name, [.. inputs], Ints("kernel_shape", s.KH, s.KW), Ints("strides", s.StrideH, s.StrideW),
            Ints("pads", s.PadTop, s.PadLeft, s.PadBottom, s.PadRight), Ints("dilations", 1, 1), Int("group", 1));
    }

    internal override bool CanFuseClamp => true;

    // The two after CanPoolInEpilogue answer for the shape's (inference) plan: the fusions that ask them (rules 6 and 7)
    // are inference's.

    /// <summary>
    /// True when <paramref name="run"/>'s forward can end with a 2x2 max-pool in registers (see <see cref="Conv2dPlan.CanPool2x2"/>):
    /// its own plan's, since a training plan may forward by another algorithm (ConvolutionPlan.Choose).
    /// </summary>
    internal bool CanPoolInEpilogue(LayerRun run) => Plan(run).Forward.CanPool2x2;

    /// <summary>True when this layer's forward can end with each channel's mean over the plane (see <see cref="Conv2dPlan.CanMeanInEpilogue"/>).</summary>
    internal bool CanMeanInEpilogue => _conv!.Forward.CanMeanInEpilogue;

    /// <summary>True when the forward takes one image a call (no Winograd group), so that a chain can run image by image (Fusion rule 7).</summary>
    internal bool ForwardsImageByImage => _conv!.Forward.Algorithm == Conv2dAlgorithm.Blocked;

    private int GradSize => Shape.WeightCount + (HasBias ? OutChannels : 0);

    /// <summary>
    /// True when the chunks' partial weight gradients stay in the blocked weight gradient's own layout (term-major, the
    /// channels padded to 16: <see cref="BlockedConv.BlockedWeightGradFloats"/>): the chunks are summed in it and the
    /// reduction transposes the sum into the weights' order once, where each chunk's transpose and the sums read and wrote
    /// every partial twice (a fifth of 128x8x8->128's weight gradient). Sums are elementwise, so the same bits.
    /// </summary>
    private static bool PartialsBlocked(LayerRun run, ConvolutionPlan plan) => run.Epilogue.PooledGradient is null && plan.Weights.Blocked is not null;

    /// <summary>Floats of one chunk's partial gradient (its slot): the weights' part, then the bias's.</summary>
    private int PartialFloats(ConvolutionPlan plan, bool blocked) =>
        (blocked ? plan.Weights.Blocked!.BlockedWeightGradFloats : Shape.WeightCount) + (HasBias ? OutChannels : 0);

    private int PartialFloats(LayerRun run) => PartialFloats(Plan(run), PartialsBlocked(run, Plan(run)));

    /// <summary>
    /// The weight and bias gradients are sums over the batch's <see cref="GradientChunks"/>; on a batch split over processes,
    /// over this rank's chunks (the plan adds the ranks' sums in the rest of the chunk tree).
    /// </summary>
    internal override RankGradient RankGradient => RankGradient.Partial;

    /// <summary>Images [start, end) of the batch this process holds (local indices) in its gradient chunk <paramref name="chunk"/>.</summary>
    private static (int Start, int End) ChunkImages(LayerRun run, int chunk)
    {
        var layout = run.Layout;
        var (s, e) = GradientChunks.Images(layout.GlobalBatch, layout.FirstChunk + chunk);
        return (s - layout.Offset, e - layout.Offset);
    }

    /// <summary>
    /// The plan of a run with <paramref name="capacity"/> images: a training plan's calls get a gradient chunk's images
    /// (capacity / 16, the same on every rank of a split batch), an inference plan's one image (one algorithm for every
    /// batch size keeps a prediction's bits independent of its batch). See <see cref="ConvolutionPlan.Choose"/>.
    /// </summary>
    private ConvolutionPlan PlanFor(int capacity, bool training)
    {
        var chosen = ConvolutionPlan.Choose(Shape, training ? Math.Max(1, capacity / GradientChunks.Count) : 1, training);
        if (chosen == _conv!.Algorithms) return _conv;
        return _convLargeBatch ??= new ConvolutionPlan(Shape, chosen);
    }

    /// <summary>The run's plan: chosen once in <see cref="Prepare"/>; the plan's sizing asks before that.</summary>
    private ConvolutionPlan Plan(LayerRun run) => run.Jobs is Jobs jobs ? jobs.Conv : PlanFor(run.Capacity, run.Training);

    /// <summary>The algorithms a run of this layer uses (its plan's; see <see cref="PlanFor"/>).</summary>
    internal (Conv2dAlgorithm Forward, Conv2dAlgorithm Data, Conv2dAlgorithm Weights) AlgorithmsOf(LayerRun run) => Plan(run).Algorithms;

    // State: packed forward weights | packed backward-data weights | chunk partial gradients | channels-last weights.
    internal override long StateFloats(int batch, bool training)
    {
        var conv = PlanFor(batch, training);
        long n = conv.PackedWeightsSize;
        if (training)
        {
            n += conv.PackedWeightsTSize;
            if (batch > 1) n += (long)GradientChunks.Count * PartialFloats(conv, conv.Weights.Blocked is not null);
            n += Shape.WeightCount;
        }
        return n;
    }

    // Inference with a folded batch norm: the folded weights, bias and the batch norm's shift follow the packed weights.
    internal override long StateFloats(LayerRun run) =>
        StateFloats(run.Capacity, run.Training) + (run.Epilogue.Fold is null ? 0 : Shape.WeightCount + 2 * OutChannels);

    internal override long ScratchFloats(int batch, bool training)
    {
        return PlanFor(batch, training).Scratch(training);
    }

    internal override long ScratchFloats(LayerRun run)
    {
        long n = ScratchFloats(run.Capacity, run.Training) + ChunkGradientFloats(run);
        if (run.Epilogue.PooledGradient is { } src) n = Math.Max(n, SparseLayout.Of(this, src).Total);
        if (run.Epilogue.Chain is not null) n = Math.Max(n, ChainAt(run) + (long)Shape.OutPlane * Sgemm.RoundUp(OutChannels, 16));
        return n;
    }

    /// <summary>
    /// Floats of a gradient chunk's output gradient (Fusion rules 10 and 11 keep it at the start of the worker's scratch; 0 where
    /// the rule does not apply).
    /// </summary>
    private long ChunkGradientFloats(LayerRun run) => !run.Epilogue.ChunkGradient ? 0 : LargestChunkGradient(run);

    /// <summary>Floats of the output gradient of <paramref name="run"/>'s largest gradient chunk (<see cref="GradientChunks.MaxImages"/> images).</summary>
    internal long LargestChunkGradient(LayerRun run) => (long)GradientChunks.MaxImages(run.Capacity, run.Layout.Ranks) * OutputShape.Size;

    /// <summary>
    /// Scratch of the pooled-gradient backward of one image: input work area (channels-last input, or padded planes and
    /// im2col columns for few taps) | channels-last weight gradient | channels-last input gradient | non-zeros by
    /// channel (starts, pixels, values) | the same by pixel (starts, channels, values).
    /// </summary>
    private readonly record struct SparseLayout(int Hp, int Wp, int KPad, int Work, int DwCl, int DxCl, int Channels, int Pixels, int Entries)
    {
        public static SparseLayout Of(Conv2D conv, LayerRun pool)
        {
            var s = conv.Shape;
            int hp = s.InH + s.PadTop + s.PadBottom, wp = s.InW + s.PadLeft + s.PadRight;
            int kPad = Sgemm.RoundUp(s.K, 8);
            int work = UsesPatches(s) ? s.InC * hp * wp + 64 + s.OutPlane * kPad : hp * wp * s.InC;
            return new SparseLayout(hp, wp, kPad, work, s.WeightCount, hp * wp * s.InC, s.OutC + 1, s.OutPlane + 1, pool.Layer.OutputShape.Size);
        }

        public long Total => (long)Work + DwCl + DxCl + Channels + Pixels + 5L * Entries;
        public static bool UsesPatches(in Conv2dShape s) => s.K <= 64;
    }

    private sealed class Jobs
    {
        public required ForwardJob Forward;
        public required BackwardJob Backward;
        public required ReduceJob Reduce;
        public required ChainJob Chain;
        /// <summary>The run's plan (<see cref="PlanFor"/>), chosen once.</summary>
        public required ConvolutionPlan Conv;
        public long PackedVersion = -1, PackedTVersion = -1;
    }

    internal override void Prepare(LayerRun run)
    {
        run.Jobs = new Jobs
        {
            Forward = new ForwardJob(this, run),
            Backward = new BackwardJob(this, run),
            Reduce = new ReduceJob(this, run),
            Chain = new ChainJob(this, run),
            Conv = PlanFor(run.Capacity, run.Training),
        };
    }

    private Buffer PackedWeights(LayerRun run) => run.State.Sub(0, Plan(run).PackedWeightsSize);
    private Buffer PackedWeightsT(LayerRun run) => run.State.Sub(Plan(run).PackedWeightsSize, Plan(run).PackedWeightsTSize);
    private Buffer FoldedWeights(LayerRun run) => run.State.Sub(Plan(run).PackedWeightsSize, Shape.WeightCount);
    private Buffer FoldedBias(LayerRun run) => run.State.Sub(Plan(run).PackedWeightsSize + Shape.WeightCount, OutChannels);

    /// <summary>W' = W scale, b' = b scale + shift per output channel, with the batch norm's inference scale and shift.</summary>
    private void FoldBatchNorm(LayerRun run, BatchNorm2D bn)
    {
        var w = FoldedWeights(run).Span;
        var b = FoldedBias(run).Span;
        var shift = run.State.Slice(Plan(run).PackedWeightsSize + Shape.WeightCount + OutChannels, OutChannels);
        bn.InferenceAffine(b, shift); // b holds the scale until it is used
        int k = Shape.WeightCount / OutChannels;
        for (int o = 0; o < OutChannels; o++)
        {
            float sc = b[o];
            var src = _weight!.Value.AsSpan(o * k, k);
            var dst = w.Slice(o * k, k);
            for (int j = 0; j < k; j++) dst[j] = src[j] * sc;
            b[o] = (_bias is null ? 0f : _bias.Value[o] * sc) + shift[o];
        }
    }

    private Buffer ChannelsLastWeights(LayerRun run) =>
        run.State.Sub(run.State.Length - Shape.WeightCount, Shape.WeightCount);

    /// <summary>Packs the forward's weights (folding a batch norm in) when they changed since the last pack.</summary>
    private void PackForward(LayerRun run)
    {
        var jobs = (Jobs)run.Jobs!;
        if (run.Epilogue.Fold?.Layer is BatchNorm2D bn)
        {
            long version = Math.Max(Math.Max(_weight!.Version, _bias?.Version ?? 0), bn.ParametersVersion);
            if (jobs.PackedVersion != version)
            {
                FoldBatchNorm(run, bn);
                Plan(run).Forward.PackWeights(FoldedWeights(run).Span, PackedWeights(run).Span);
                jobs.PackedVersion = version;
            }
        }
        else if (jobs.PackedVersion != _weight!.Version)
        {
            Plan(run).Forward.PackWeights(_weight.Value, PackedWeights(run).Span);
            jobs.PackedVersion = _weight.Version;
        }
    }

    internal override void Forward(LayerRun run)
    {
        var jobs = (Jobs)run.Jobs!;
        PackForward(run);
        var f = jobs.Forward;
        // Items are groups of images (Winograd batches tiles of several), no larger than a worker's share of the batch.
        // Only fewer groups than workers (a batch smaller than the threads) split a group into parts, one per idle worker,
        // so that every core works on a single image: a part may transform or pad its group's whole input again, so each
        // part beyond one per worker is work done twice (BENCHMARKS.md, 2026-12-03, second session).
        int threads = run.Pool.ThreadCount;
        var conv = Plan(run);
        f.Group = Math.Max(1, Math.Min(conv.Forward.ImagesPerCall, (run.Batch + threads - 1) / threads));
        f.Groups = (run.Batch + f.Group - 1) / f.Group;
        int maxParts = run.Epilogue.Mean is null ? conv.Forward.ForwardParts : conv.Forward.MeanParts;
        f.Parts = f.Groups >= threads ? 1 : Math.Min(maxParts, (threads + f.Groups - 1) / f.Groups);
        if (run.Epilogue.Chain is { } next)
        {
            var nextConv = (Conv2D)next.Layer;
            nextConv.PackForward(next);
            // Image by image through both layers, the intermediate in the worker's scratch (Fusion rule 7). A pixel-major
            // intermediate (a 1x1 second layer) splits by output rows when the batch is smaller than the workers: both
            // layers of a row band run on one worker, no halo between them.
            var chain = jobs.Chain;
            chain.Parts = f.Parts == 1 ? 1 : Math.Min(Shape.OutH, (threads + run.Batch - 1) / run.Batch);
            if (f.Group == 1 && (chain.Parts == 1 || chain.PixelMajor))
            {
                run.Parallel(chain, run.Batch * chain.Parts, (Shape.ForwardFlops + nextConv.Shape.ForwardFlops) / chain.Parts);
                return;
            }
            // A batch smaller than the workers splits images into parts: this layer's output goes through its buffer.
            run.Parallel(f, f.Groups * f.Parts, Shape.ForwardFlops * f.Group / f.Parts);
            nextConv.Forward(next);
            return;
        }
        run.Parallel(f, f.Groups * f.Parts, Shape.ForwardFlops * f.Group / f.Parts);
        // Parts of an image (a batch smaller than the workers) hold no whole plane: the moments are taken after them.
        if (run.Epilogue.Moments is { } bn && f.Parts > 1) ((BatchNorm2D)bn.Layer).ForwardMoments(bn);
    }

    /// <summary>Where the chained intermediate (one image of this layer's output) starts in a worker's scratch: past both layers' forward scratch.</summary>
    private long ChainAt(LayerRun run) =>
        Math.Max(Plan(run).Forward.ForwardScratch, ((Conv2D)run.Epilogue.Chain!.Layer).Plan(run.Epilogue.Chain).Forward.ForwardScratch);

    /// <summary>
    /// Forward of images [n0, n0 + count) from <paramref name="input"/> (those images): the output planes into
    /// <paramref name="output"/> (those images), or what the epilogue writes instead (a pool's or a mean's output, at n0).
    /// </summary>
    private void ForwardImages(LayerRun run, ReadOnlySpan<float> input, Span<float> output, int n0, int count, Span<float> scratch, int part, int parts)
    {
        var s = Shape;
        var epi = EpilogueOf(run);
        // Kernels that read the weights as they are (not packed) read the folded ones when a batch norm is folded in.
        ReadOnlySpan<float> weights = run.Epilogue.Fold is null ? _weight!.Value.AsSpan() : FoldedWeights(run).Span;
        if (run.Epilogue.Mean is { } mean)
        {
            Plan(run).Forward.ForwardMean(input, count, PackedWeights(run).Span, mean.Output.Slice(n0 * s.OutC, count * s.OutC), in epi, scratch, part, parts);
            return;
        }
        if (run.Epilogue.Pool is { } pool)
        {
            int ps = pool.Layer.OutputShape.Size;
            Plan(run).Forward.ForwardPooled(input, count, weights, PackedWeights(run).Span, pool.Output.Slice(n0 * ps, count * ps),
                pool.Training ? pool.State.AsInts().Slice(n0 * ps, count * ps) : default, in epi, scratch, part, parts);
            return;
        }
        Plan(run).Forward.Forward(input, count, weights, PackedWeights(run).Span, output, in epi, scratch, part, parts);
    }

    /// <summary>The bias (or a folded batch norm's) and the fused clamp the forward's epilogue applies.</summary>
    private GemmEpilogue EpilogueOf(LayerRun run) => run.Epilogue.Fold is not null
        ? new GemmEpilogue(BiasMode.PerRow, run.State.Array, FoldedBias(run).Offset, run.Epilogue.Low, run.Epilogue.High)
        : new GemmEpilogue(HasBias ? BiasMode.PerRow : BiasMode.None, _bias?.Value, 0, run.Epilogue.Low, run.Epilogue.High);

    /// <summary>
    /// Fusion rule 7: image n through this layer into the worker's scratch, then through the chained layer. When both are
    /// blocked and the second is a 1x1 layer writing planes, the intermediate stays pixel-major (the tiles' own layout):
    /// no transpose out of the first layer's tiles and none into the second's, the same chains, so the same bits.
    /// </summary>
    private sealed class ChainJob(Conv2D layer, LayerRun run) : ParallelJob
    {
        /// <summary>Row bands of one image (items are images x parts); more than one only where <see cref="PixelMajor"/>.</summary>
        public int Parts = 1;

        /// <summary>Both layers blocked and the second a 1x1 writing planes: the intermediate stays pixel-major.</summary>
        public bool PixelMajor
        {
            get
            {
                var next = run.Epilogue.Chain!;
                return layer.Plan(run).Forward.Blocked is not null && ((Conv2D)next.Layer).Plan(next).Forward.Blocked is { ReadsPixelMajor: true }
                    && next.Epilogue.Pool is null && next.Epilogue.Mean is null;
            }
        }

        public override unsafe void Execute(int item, int worker)
        {
            int n = item / Parts, part = item % Parts;
            var next = run.Epilogue.Chain!;
            var nextConv = (Conv2D)next.Layer;
            var scratch = run.Scratch[worker].Span;
            var input = run.Input.Slice(n * layer.Shape.InSize, layer.Shape.InSize);
            var output = next.Output.Slice(n * nextConv.Shape.OutSize, nextConv.Shape.OutSize);
            if (PixelMajor)
            {
                var first = layer.Plan(run).Forward.Blocked!;
                var second = nextConv.Plan(next).Forward.Blocked!;
                int h = layer.Shape.OutH, r0 = h * part / Parts, r1 = h * (part + 1) / Parts;
                fixed (float* pixels = scratch.Slice((int)layer.ChainAt(run), layer.Shape.OutPlane * first.PixelPitch))
                {
                    first.ForwardToPixels(input, layer.PackedWeights(run).Span, pixels, layer.EpilogueOf(run), scratch, r0, r1);
                    second.ForwardFromPixels(pixels, first.PixelPitch, nextConv.PackedWeights(next).Span, output, nextConv.EpilogueOf(next), scratch, r0, r1);
                }
                return;
            }
            if (Parts != 1) throw new InvalidOperationException("only a pixel-major chain splits an image into parts");
            var mid = scratch.Slice((int)layer.ChainAt(run), layer.Shape.OutSize);
            layer.ForwardImages(run, input, mid, n, 1, scratch, 0, 1);
            nextConv.ForwardImages(next, mid, output, n, 1, scratch, 0, 1);
        }
    }

    internal override void Backward(LayerRun run)
    {
        var jobs = (Jobs)run.Jobs!;
        if (run.NeedInputGrad && jobs.PackedTVersion != _weight!.Version)
        {
            if (run.Epilogue.PooledGradient is null) Plan(run).Data.PackWeightsTransposed(_weight.Value, PackedWeightsT(run).Span);
            else Conv2dKernels.WeightsToChannelsLast(_weight.Value, OutChannels, Shape.InC, Shape.KH * Shape.KW, ChannelsLastWeights(run).Span);
            jobs.PackedTVersion = _weight.Version;
        }
        // The chunks that hold images: one writes its gradient straight into the parameters' (a batch of one image, or one
        // rank's share of a small split batch); more write partials that the reduction sums in the chunk tree.
        var backward = jobs.Backward;
        backward.Count = 0;
        for (int c = 0; c < run.Layout.Chunks; c++)
        {
            var (n0, n1) = ChunkImages(run, c);
            if (n1 > n0) backward.Chunks[backward.Count++] = c;
        }
        run.Parallel(backward, backward.Count, 3 * Shape.ForwardFlops * run.Batch / backward.Count);
        if (run.NeedParamGrad && backward.Count > 1)
            run.Parallel(jobs.Reduce, ReduceJob.Parts, (long)PartialFloats(run) * backward.Count / ReduceJob.Parts);
    }

    private sealed class ForwardJob(Conv2D layer, LayerRun run) : ParallelJob
    {
        public int Parts = 1, Group = 1, Groups = 1;

        public override void Execute(int item, int worker)
        {
            int g = item / Parts, part = item % Parts;
            int n0 = g * Group, count = Math.Min(Group, run.Batch - n0);
            var s = layer.Shape;
            layer.ForwardImages(run, run.Input.Slice(n0 * s.InSize, count * s.InSize), run.Output.Slice(n0 * s.OutSize, count * s.OutSize),
                n0, count, run.Scratch[worker].Span, part, Parts);
            // Fusion rule 8: the group's planes are whole (one part) and in cache.
            if (run.Epilogue.Moments is { } bn && Parts == 1) ((BatchNorm2D)bn.Layer).TakeMoments(bn, n0, count);
        }
    }

    private sealed class BackwardJob(Conv2D layer, LayerRun run) : ParallelJob
    {
        /// <summary>The chunks (of this process's <see cref="BatchLayout.Chunks"/>) that hold images, <see cref="Count"/> of them.</summary>
        public readonly int[] Chunks = new int[GradientChunks.Count];
        public int Count;

        public override void Execute(int item, int worker)
        {
            var s = layer.Shape;
            int chunk = Chunks[item];
            bool direct = Count == 1;
            var (n0, n1) = ChunkImages(run, chunk);
            var scratch = run.Scratch[worker].Span;
            // Fusion rules 10 and 11: the pool or batch norm after this layer writes the chunk's output gradient into the
            // worker's scratch. dy holds the output gradient from image dyFirst on: the whole batch's, or the chunk's in scratch.
            Span<float> dy = run.OutGrad.Span;
            int dyFirst = 0;
            if (run.Epilogue.ChunkGradient)
            {
                dy = scratch.Slice(0, (n1 - n0) * s.OutSize);
                dyFirst = n0;
                scratch = scratch.Slice((int)layer.ChunkGradientFloats(run));
                if (run.Epilogue.PoolBackward is { } pool) ((Pool2D)pool.Layer).BackwardImages(pool, n0, n1, dy);
                else
                {
                    var bn = run.Epilogue.NormBackward!;
                    ((BatchNorm2D)bn.Layer).InputGradientImages(bn, n0, n1, dy);
                }
            }
            Span<float> dw = default, db = default;
            if (run.NeedParamGrad)
            {
                if (direct)
                {
                    dw = layer._weight!.Grad;
                    db = layer._bias is null ? default : layer._bias.Grad;
                }
                else
                {
                    var plan = layer.Plan(run);
                    int size = layer.PartialFloats(run), weightPart = size - (layer.HasBias ? s.OutC : 0);
                    int baseOff = plan.PackedWeightsSize + plan.PackedWeightsTSize + chunk * size;
                    dw = run.State.Slice(baseOff, weightPart);
                    db = layer.HasBias ? run.State.Slice(baseOff + weightPart, s.OutC) : default;
                }
            }
            if (run.Epilogue.PooledGradient is { } src)
            {
                layer.SparseBackward(run, src, n0, n1, dw, db, scratch, partial: !direct);
                MaskInputGradient(n0, n1);
                return;
            }
            var data = layer.Plan(run).Data;
            if (run.NeedInputGrad)
                for (int n = n0, group = data.ImagesPerCall; n < n1; n += group)
                {
                    int count = Math.Min(group, n1 - n);
                    data.BackwardData(dy.Slice((n - dyFirst) * s.OutSize, count * s.OutSize), count, layer._weight!.Value, layer.PackedWeightsT(run).Span,
                        run.InGrad.Slice(n * s.InSize, count * s.InSize), scratch);
                    MaskInputGradient(n, n + count);
                }
            var weights = layer.Plan(run).Weights;
            if (!run.NeedParamGrad) return;
            if (!direct && PartialsBlocked(run, layer.Plan(run)))
            {
                weights.Blocked!.BackwardWeightsBlocked(run.Input.Slice(n0 * s.InSize, (n1 - n0) * s.InSize),
                    dy.Slice((n0 - dyFirst) * s.OutSize, (n1 - n0) * s.OutSize), n1 - n0, dw, db, scratch);
                return;
            }
            if (weights.WeightsTakeWholeChunk)
            {
                weights.BackwardWeights(run.Input.Slice(n0 * s.InSize, (n1 - n0) * s.InSize), dy.Slice((n0 - dyFirst) * s.OutSize, (n1 - n0) * s.OutSize),
                    n1 - n0, dw, db, false, scratch);
                return;
            }
            for (int n = n0, group = weights.ImagesPerCall; n < n1; n += group)
            {
                int count = Math.Min(group, n1 - n);
                weights.BackwardWeights(run.Input.Slice(n * s.InSize, count * s.InSize), dy.Slice((n - dyFirst) * s.OutSize, count * s.OutSize),
                    count, dw, db, n > n0, scratch);
            }
        }

        /// <summary>Fusion rule 9: the ReLU before this layer masks images [n0, n1) of the input gradient, just written.</summary>
        private void MaskInputGradient(int n0, int n1)
        {
            float cap = run.Epilogue.ReluMaskCap;
            if (float.IsNaN(cap) || !run.NeedInputGrad || n1 <= n0) return;
            int size = layer.Shape.InSize;
            var dx = run.InGrad.Slice(n0 * size, (n1 - n0) * size);
            ActivationKernels.ReluBackward(run.Input.Slice(n0 * size, (n1 - n0) * size), dx, dx, cap);
        }
    }

    /// <summary>
    /// Backward of images [n0, n1) from the pooled gradient of the max-pool after this layer's fused ReLU: only each
    /// window's winner carries gradient, so the dense output gradient is never built (Conv2dKernels.Sparse.cs).
    /// Weight and bias gradients are overwritten into dw / db (sums over the images in order).
    /// </summary>
    private void SparseBackward(LayerRun run, LayerRun src, int n0, int n1, Span<float> dw, Span<float> db, Span<float> scratch, bool partial)
    {
        var s = Shape;
        var lay = SparseLayout.Of(this, src);
        int taps = s.KH * s.KW;
        int pooledPlane = src.Layer.OutputShape.Plane, pooledSize = src.Layer.OutputShape.Size;
        float cap = src.Epilogue.ReluMaskCap;
        int at = 0;
        Span<float> Take(Span<float> all, int n) { var r = all.Slice(at, n); at += n; return r; }
        var work = Take(scratch, lay.Work);
        var dwcl = Take(scratch, lay.DwCl);
        var dxcl = Take(scratch, lay.DxCl);
        var chanStart = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(Take(scratch, lay.Channels));
        var pixel = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(Take(scratch, lay.Entries));
        var value = Take(scratch, lay.Entries);
        var pixStart = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(Take(scratch, lay.Pixels));
        var sortedChannel = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(Take(scratch, lay.Entries));
        var sortedValue = Take(scratch, lay.Entries);
        var rows = System.Runtime.InteropServices.MemoryMarshal.Cast<float, int>(Take(scratch, lay.Entries));
        bool patches = SparseLayout.UsesPatches(s);
        var offsets = _pixelOffsets ??= Conv2dKernels.PixelOffsets(s, lay.Wp);
        for (int n = n0; n < n1; n++)
        {
            var g = src.OutGrad.Slice(n * pooledSize, pooledSize);
            var v = src.Output.Slice(n * pooledSize, pooledSize);
            var idx = src.State.AsInts().Slice(n * pooledSize, pooledSize);
            var image = run.Input.Slice(n * s.InSize, s.InSize);
            bool first = n == n0;
            Conv2dKernels.CollectByChannel(g, v, idx, s.OutC, pooledPlane, cap, chanStart, pixel, value);
            if (run.NeedParamGrad)
            {
                if (patches)
                {
                    var padded = work.Slice(0, s.InC * lay.Hp * lay.Wp + 64);
                    Conv2dKernels.PadPlanes(image, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, s.PadBottom, s.PadRight, padded);
                    Conv2dKernels.SparseWeightGradientPatches(s, chanStart, pixel, value, padded, lay.Hp, lay.Wp,
                        work.Slice(padded.Length, s.OutPlane * lay.KPad), lay.KPad, dw, !first);
                }
                else
                {
                    Conv2dKernels.ToChannelsLast(image, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, lay.Hp, lay.Wp, work);
                    // A chunk's partial stays channels-last (the reduction converts the sum once); a whole batch's
                    // gradient is converted below.
                    Conv2dKernels.SparseWeightGradient(s, offsets, chanStart, pixel, value, work, lay.Wp, partial ? dw : dwcl, !first, rows);
                }
                if (!db.IsEmpty)
                    for (int o = 0; o < s.OutC; o++)
                    {
                        float sum = 0;
                        for (int e = chanStart[o]; e < chanStart[o + 1]; e++) sum += value[e];
                        db[o] = first ? sum : db[o] + sum;
                    }
            }
            if (run.NeedInputGrad)
            {
                Conv2dKernels.SortByPixel(chanStart, pixel, value, s.OutC, s.OutPlane, pixStart, sortedChannel, sortedValue);
                dxcl.Clear();
                Conv2dKernels.SparseDataGradient(s, offsets, pixStart, sortedChannel, sortedValue, ChannelsLastWeights(run).Span, dxcl, lay.Wp, rows);
                Conv2dKernels.FromChannelsLast(dxcl, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, lay.Wp, run.InGrad.Slice(n * s.InSize, s.InSize));
            }
        }
        if (run.NeedParamGrad && !patches && !partial)
            Conv2dKernels.WeightsFromChannelsLast(dwcl, s.OutC, s.InC, taps, dw, false);
    }

    /// <summary>Whether chunk partial weight gradients are in channels-last order (the pooled-gradient path with a channels-last input).</summary>
    private bool PartialsChannelsLast(LayerRun run) => run.Epilogue.PooledGradient is not null && !SparseLayout.UsesPatches(Shape);

    /// <summary>
    /// Sums the chunks' partial gradients in the chunk tree (<see cref="GradientChunks.TreeSum"/>: fixed by the batch size,
    /// never by the thread count); parts split the elements, never a sum.
    /// </summary>
    private sealed class ReduceJob(Conv2D layer, LayerRun run) : ParallelJob
    {
        public const int Parts = 4;

        public override void Execute(int part, int worker)
        {
            int size = layer.GradSize, wCount = layer.Shape.WeightCount;
            var plan = layer.Plan(run);
            if (PartialsBlocked(run, plan))
            {
                // Whole terms per part: sum the chunks' rows of terms, then transpose them into each channel's row.
                var blocked = plan.Weights.Blocked!;
                int lanes = blocked.BlockedWeightGradFloats / layer.Shape.K;
                var (k0, k1) = LayerRun.Range(layer.Shape.K, part, Parts);
                if (k1 > k0) blocked.TransposeWeightGrad(TreeSum(k0 * lanes, k1 * lanes), k0, k1, layer._weight!.Grad);
                if (part == Parts - 1 && layer._bias is not null)
                    TreeSum(blocked.BlockedWeightGradFloats, blocked.BlockedWeightGradFloats + layer.OutChannels).CopyTo(layer._bias.Grad);
                return;
            }
            if (layer.PartialsChannelsLast(run))
            {
                // Whole output channels per part: sum the chunks' channels-last blocks into the first chunk's block, then
                // write the sum in the weights' order.
                var s = layer.Shape;
                int block = s.K;
                var (o0, o1) = LayerRun.Range(s.OutC, part, Parts);
                if (o1 > o0)
                    Conv2dKernels.WeightsFromChannelsLast(TreeSum(o0 * block, o1 * block), o1 - o0, s.InC, s.KH * s.KW,
                        layer._weight!.Grad.AsSpan(o0 * block, (o1 - o0) * block), false);
                if (part == Parts - 1 && layer._bias is not null) TreeSum(wCount, size).CopyTo(layer._bias.Grad);
                return;
            }
            var (a, b) = LayerRun.Range(size, part, Parts);
            for (int i = a; i < b;)
            {
                // Split the range at the weight / bias boundary.
                int end = i < wCount ? Math.Min(b, wCount) : b;
                Span<float> dst = i < wCount ? layer._weight!.Grad.AsSpan(i, end - i) : layer._bias!.Grad.AsSpan(i - wCount, end - i);
                TreeSum(i, end).CopyTo(dst);
                i = end;
            }
        }

        /// <summary>Elements [from, to) of the chunks' partial gradients summed in the chunk tree: the sum, in the first chunk's slot.</summary>
        private Span<float> TreeSum(int from, int to)
        {
            int size = layer.PartialFloats(run), chunks = run.Layout.Chunks;
            var plan = layer.Plan(run);
            var slots = run.State.Slice(plan.PackedWeightsSize + plan.PackedWeightsTSize, chunks * size);
            var backward = ((Jobs)run.Jobs!).Backward;
            Span<bool> filled = stackalloc bool[GradientChunks.Count];
            for (int j = 0; j < backward.Count; j++) filled[backward.Chunks[j]] = true;
            GradientChunks.TreeSum(slots, size, chunks, from, to, filled);
            return slots.Slice(from, to - from);
        }

    }
}
