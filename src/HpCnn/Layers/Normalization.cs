using System.Globalization;
using System.Text.Json;
using HpCnn.Kernels;
using static HpCnn.Layers.OnnxAttribute;

namespace HpCnn.Layers;

/// <summary>
/// Per-feature-map normalisation (the deep-CNN tutorial's step): every plane of every image is shifted to
/// zero mean and scaled to unit standard deviation. No parameters; the same in training and inference.
/// </summary>
public sealed class FeatureMapNorm : Layer
{
    /// <summary>Added to each plane's variance inside the square root when none is given.</summary>
    public const float DefaultEpsilon = 1e-5f;

    /// <summary>The spec's "featuremapnorm": "epsilon" (positive), default <see cref="DefaultEpsilon"/>.</summary>
    public static readonly LayerType Type = new("featuremapnorm", ["mapnorm"], ["epsilon"], n => new FeatureMapNorm(n.Optional("epsilon")?.Float() ?? DefaultEpsilon));

    public FeatureMapNorm(float epsilon = DefaultEpsilon)
    {
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"featuremapnorm: epsilon must be positive, got {epsilon}");
        Epsilon = epsilon;
    }

    public override string Kind => Type.Name;
    public float Epsilon { get; }

    protected override Shape3 OnBuild(Shape3 input, Rng rng)
    {
        if (input.Plane < 2) throw new ArgumentException($"expected feature maps of at least 2 values, got {input}");
        return input;
    }

    public override long FlopsPerSample => 4L * InputShape.Size;
    public override string Describe() => "";
    protected override void WriteSpecFields(Utf8JsonWriter w) { if (Epsilon != DefaultEpsilon) w.WriteNumber("epsilon", Epsilon); }

    internal override long StateFloats(int batch, bool training) => (long)batch * InputShape.C;

    // Each plane: (x - mean) / sqrt(biased variance + epsilon), the epsilon inside the root: InstanceNormalization with scale 1, bias 0.
    internal override string WriteOnnx(IOnnxGraph g, string x, string name)
    {
        int c = InputShape.C;
        var ones = new float[c];
        ones.AsSpan().Fill(1f);
        return g.Node("InstanceNormalization", name, [g.AsImage(x, InputShape, name), g.Floats(name + ".scale", ones, c), g.Floats(name + ".bias", new float[c], c)],
            Float("epsilon", Epsilon));
    }
    internal override void Prepare(LayerRun run) => run.Jobs = new Job(this, run);

    internal override void Forward(LayerRun run)
    {
        var job = (Job)run.Jobs!;
        job.Backward = false;
        run.Parallel(job, run.Batch, FlopsPerSample);
    }

    internal override void Backward(LayerRun run)
    {
        var job = (Job)run.Jobs!;
        job.Backward = true;
        run.Parallel(job, run.Batch, FlopsPerSample);
    }

    private sealed class Job(FeatureMapNorm layer, LayerRun run) : ParallelJob
    {
        public bool Backward;

        public override void Execute(int n, int worker)
        {
            int plane = layer.InputShape.Plane, c = layer.InputShape.C, size = layer.InputShape.Size;
            var inv = run.State.Slice(n * c, c);
            for (int ch = 0; ch < c; ch++)
            {
                int o = n * size + ch * plane;
                if (Backward)
                    NormKernels.PlaneNormBackward(run.Output.Slice(o, plane), run.OutGrad.Slice(o, plane), run.InGrad.Slice(o, plane), inv[ch]);
                else
                    inv[ch] = NormKernels.PlaneNormForward(run.Input.Slice(o, plane), run.Output.Slice(o, plane), layer.Epsilon);
            }
        }
    }
}

/// <summary>
/// Batch normalisation over channels (PyTorch's BatchNorm2d; on a flat input, BatchNorm1d): in training each
/// channel is standardised with the batch's mean and (biased) variance, then scaled by gamma and shifted by
/// beta, and the running statistics move by <see cref="Momentum"/> (unbiased variance); in inference the
/// running statistics are used.
/// </summary>
public sealed class BatchNorm2D : Layer
{
    private Parameter? _gamma, _beta, _runningMean, _runningVar;

    /// <summary>Defaults when none are given (PyTorch's): epsilon added to the variance, momentum the weight of the new batch.</summary>
    public const float DefaultEpsilon = 1e-5f, DefaultMomentum = 0.1f;

    /// <summary>The spec's "batchnorm2d": "epsilon" (positive) and "momentum" (in [0, 1]), defaults <see cref="DefaultEpsilon"/>, <see cref="DefaultMomentum"/>.</summary>
    public static readonly LayerType Type = new("batchnorm2d", ["batchnorm"], ["epsilon", "momentum"],
        n => new BatchNorm2D(n.Optional("epsilon")?.Float() ?? DefaultEpsilon, n.Optional("momentum")?.Float() ?? DefaultMomentum));

    public BatchNorm2D(float epsilon = DefaultEpsilon, float momentum = DefaultMomentum)
    {
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"batchnorm2d: epsilon must be positive, got {epsilon}");
        if (!(momentum >= 0 && momentum <= 1)) throw new ArgumentOutOfRangeException(nameof(momentum), $"batchnorm2d: momentum must be in [0, 1], got {momentum}");
        Epsilon = epsilon;
        Momentum = momentum;
    }

    public override string Kind => Type.Name;
    public float Epsilon { get; }
    public float Momentum { get; }
    public Parameter Gamma => _gamma!;
    public Parameter Beta => _beta!;
    public Parameter RunningMean => _runningMean!;
    public Parameter RunningVar => _runningVar!;

    protected override Shape3 OnBuild(Shape3 input, Rng rng)
    {
        int c = input.C;
        _gamma = AddParameter("gamma", [c]);
        _beta = AddParameter("beta", [c]);
        _runningMean = AddParameter("running_mean", [c], trainable: false);
        _runningVar = AddParameter("running_var", [c], trainable: false);
        _gamma.Value.AsSpan().Fill(1f);
        _runningVar.Value.AsSpan().Fill(1f);
        return input;
    }

    public override long FlopsPerSample => 4L * InputShape.Size;
    internal override bool CanFuseClamp => true;
    public override string Describe() => $"momentum {Momentum.ToString(CultureInfo.InvariantCulture)}";
    protected override void WriteSpecFields(Utf8JsonWriter w)
    {
        if (Epsilon != DefaultEpsilon) w.WriteNumber("epsilon", Epsilon);
        if (Momentum != DefaultMomentum) w.WriteNumber("momentum", Momentum);
    }

    // Inference form: the running statistics. ONNX's momentum weighs the old running value (1 - HpCnn's momentum).
    internal override string WriteOnnx(IOnnxGraph g, string x, string name) =>
        g.Node("BatchNormalization", name,
            [x, g.Floats(name + ".gamma", Gamma.Value, C), g.Floats(name + ".beta", Beta.Value, C),
             g.Floats(name + ".running_mean", RunningMean.Value, C), g.Floats(name + ".running_var", RunningVar.Value, C)],
            Float("epsilon", Epsilon), Float("momentum", (float)Math.Round(1.0 - Momentum, 7)));

    // State. Training: per channel the batch mean, 1/sqrt(var + eps), and the folded scale and shift; then per image and
    // channel two doubles (forward: the plane's mean and sum of squared deviations; backward: the plane's sums of g and g x).
    // Inference: the folded scale and shift.
    private int C => InputShape.C;
    internal override long StateFloats(int batch, bool training) => training ? 4L * C + 4L * batch * C : 2L * C;

    // Scratch per worker: one plane (the masked gradient, or the normalised plane before pooling), and its arg-max.
    internal override long ScratchFloats(int batch, bool training) => 2L * InputShape.Plane + 32;

    internal override void Prepare(LayerRun run) => run.Jobs = new Job(this, run);

    /// <summary>The folded per-channel scale (gamma / std) and shift (beta - mean scale) in the state.</summary>
    private static Span<float> Scale(LayerRun run, int c) => run.Training ? run.State.Slice(2 * c, c) : run.State.Slice(0, c);
    private static Span<float> Shift(LayerRun run, int c) => run.Training ? run.State.Slice(3 * c, c) : run.State.Slice(c, c);

    /// <summary>
    /// Two doubles per image and channel, image-major ([image][part][channel], images of the global batch): one block per
    /// rank, which a batch split over processes gathers (<see cref="Distributed.BatchLayout.GatherRows{T}"/>) before the
    /// statistics are summed over the whole batch in image order, as in one process.
    /// </summary>
    private static Span<double> Partials(LayerRun run, int c) =>
        System.Runtime.InteropServices.MemoryMarshal.Cast<float, double>(run.State.Slice(4 * c, 4 * run.Capacity * c));

    /// <summary>Index in <see cref="Partials"/> of part <paramref name="part"/> of channel <paramref name="ch"/> of global image <paramref name="image"/>.</summary>
    private static int PartialAt(int c, int image, int part, int ch) => (image * 2 + part) * c + ch;

    internal override RankGradient RankGradient => RankGradient.Whole;

    private int Groups(LayerRun run) => run.Batch >= 2 * run.Pool.ThreadCount ? 1 : Math.Min(C, 2 * run.Pool.ThreadCount);

    internal override void Forward(LayerRun run)
    {
        var job = (Job)run.Jobs!;
        int c = C, batch = run.Batch;
        job.Groups = Groups(run);
        long work = (long)InputShape.Size / job.Groups;
        var scale = Scale(run, c);
        var shift = Shift(run, c);
        if (run.Training)
        {
            if (run.MomentsBy is null) ForwardMoments(run);
            var partials = Partials(run, c);
            run.Layout.GatherRows(partials, 2 * c);
            int all = run.Layout.GlobalBatch;
            var means = job.Means.AsSpan(0, all);
            var m2s = job.M2s.AsSpan(0, all);
            var state = run.State.Span;
            int plane = InputShape.Plane;
            long m = (long)all * plane;
            float mom = Momentum;
            for (int ch = 0; ch < c; ch++)
            {
                for (int n = 0; n < all; n++)
                {
                    means[n] = partials[PartialAt(c, n, 0, ch)];
                    m2s[n] = partials[PartialAt(c, n, 1, ch)];
                }
                var (mean, var) = NormKernels.CombineMoments(means, m2s, plane);
                float invStd = (float)(1 / Math.Sqrt(var + Epsilon));
                state[ch] = (float)mean;
                state[c + ch] = invStd;
                scale[ch] = _gamma!.Value[ch] * invStd;
                shift[ch] = _beta!.Value[ch] - (float)mean * scale[ch];
                double unbiased = m > 1 ? var * m / (m - 1) : var;
                _runningMean!.Value[ch] = (1 - mom) * _runningMean.Value[ch] + mom * (float)mean;
                _runningVar!.Value[ch] = (1 - mom) * _runningVar.Value[ch] + mom * (float)unbiased;
            }
            _runningMean!.MarkChanged();
            _runningVar!.MarkChanged();
        }
        else
            InferenceAffine(scale, shift);
        job.Phase = Phase.Normalize;
        run.Parallel(job, batch * job.Groups, work);
    }

    /// <summary>Training: every plane's moments of the batch, into the partials (the statistics pass over the input).</summary>
    internal void ForwardMoments(LayerRun run)
    {
        var job = (Job)run.Jobs!;
        job.Groups = Groups(run);
        job.Phase = Phase.Moments;
        run.Parallel(job, run.Batch * job.Groups, (long)InputShape.Size / job.Groups);
    }

    /// <summary>
    /// Training: the moments of images [n0, n0 + count)'s planes into the partials, what <see cref="ForwardMoments"/> does
    /// for them, called by the convolution before this layer while those planes are in its cache (Fusion rule 8).
    /// </summary>
    internal void TakeMoments(LayerRun run, int n0, int count)
    {
        int c = C, plane = InputShape.Plane, size = InputShape.Size;
        var partials = Partials(run, c);
        for (int n = n0; n < n0 + count; n++)
            for (int ch = 0; ch < c; ch++)
                StoreMoments(run, partials, n, ch, NormKernels.PlaneMoments(run.Input.Slice(n * size + ch * plane, plane)));
    }

    private static void StoreMoments(LayerRun run, Span<double> partials, int n, int ch, (float Mean, float M2) moments)
    {
        int c = run.Layer.InputShape.C;
        partials[PartialAt(c, run.Layout.Offset + n, 0, ch)] = moments.Mean;
        partials[PartialAt(c, run.Layout.Offset + n, 1, ch)] = moments.M2;
    }

    /// <summary>Inference's per-channel y = scale x + shift from the running statistics (also what a convolution folds in).</summary>
    internal void InferenceAffine(Span<float> scale, Span<float> shift)
    {
        for (int ch = 0; ch < C; ch++)
        {
            float inv = 1f / MathF.Sqrt(_runningVar!.Value[ch] + Epsilon);
            scale[ch] = _gamma!.Value[ch] * inv;
            shift[ch] = _beta!.Value[ch] - _runningMean!.Value[ch] * scale[ch];
        }
    }

    /// <summary>Changes whenever gamma, beta or the running statistics change (versions come from one rising counter).</summary>
    internal long ParametersVersion => Math.Max(Math.Max(_gamma!.Version, _beta!.Version), Math.Max(_runningMean!.Version, _runningVar!.Version));

    internal override void Backward(LayerRun run)
    {
        var job = (Job)run.Jobs!;
        int c = C, batch = run.Batch;
        job.Groups = Groups(run);
        long work = 2L * InputShape.Size / job.Groups;
        job.Phase = Phase.GradientSums;
        run.Parallel(job, batch * job.Groups, work);
        var partials = Partials(run, c);
        run.Layout.GatherRows(partials, 2 * c);
        int all = run.Layout.GlobalBatch;
        var state = run.State.Span;
        double m = (double)all * InputShape.Plane;
        var coef = job.Coefficients;
        for (int ch = 0; ch < c; ch++)
        {
            double sumG = 0, sumGX = 0;
            for (int n = 0; n < all; n++) { sumG += partials[PartialAt(c, n, 0, ch)]; sumGX += partials[PartialAt(c, n, 1, ch)]; }
            float mean = state[ch], inv = state[c + ch], gamma = _gamma!.Value[ch];
            // sum(g xhat) = inv (sum(g x) - mean sum(g)); dx = gamma inv / M (M g - sum g - xhat sum(g xhat)) = a g + b x + c0.
            double sumGXhat = inv * (sumGX - mean * sumG);
            if (run.NeedParamGrad)
            {
                _gamma.Grad[ch] = (float)sumGXhat;
                _beta!.Grad[ch] = (float)sumG;
            }
            float a = gamma * inv;
            float b = (float)(-gamma * inv * inv * sumGXhat / m);
            coef[3 * ch] = a;
            coef[3 * ch + 1] = b;
            coef[3 * ch + 2] = (float)(-a * sumG / m - b * mean);
        }
        // Fusion rule 11: the convolution before this layer forms the input gradient chunk by chunk (InputGradientImages).
        if (!run.NeedInputGrad || run.InputGradientBy is not null) return;
        job.Phase = Phase.InputGradient;
        run.Parallel(job, batch * job.Groups, work);
    }

    /// <summary>
    /// Training: the input gradient of images [n0, n1) into <paramref name="dx"/> (their planes from image n0 on), what
    /// the input-gradient pass writes for them; called by the convolution before this layer for each of its gradient
    /// chunks (Fusion rule 11), after <see cref="Backward"/> has taken the sums.
    /// </summary>
    internal void InputGradientImages(LayerRun run, int n0, int n1, Span<float> dx)
    {
        var job = (Job)run.Jobs!;
        int size = InputShape.Size, plane = InputShape.Plane;
        for (int n = n0; n < n1; n++)
            for (int ch = 0; ch < C; ch++) job.InputGradient(n, ch, dx.Slice((n - n0) * size + ch * plane, plane));
    }

    private enum Phase { Moments, Normalize, GradientSums, InputGradient }

    /// <summary>
    /// One image's planes of a range of channels, in one of the four phases. A following ReLU (the run's clamp) and 2x2
    /// max-pool (the run's pool target) are done here: the normalised, clamped values go straight into the pool, and the
    /// backward starts from the pooled gradient through the ReLU's mask; neither runs a pass of its own.
    /// </summary>
    private sealed class Job(BatchNorm2D layer, LayerRun run) : ParallelJob
    {
        public Phase Phase;
        public int Groups = 1;
        public readonly float[] Coefficients = new float[3 * layer.InputShape.C];
        /// <summary>One channel's per-image means and squared deviations, in image order (training).</summary>
        public readonly double[] Means = new double[run.Training ? run.Capacity : 0], M2s = new double[run.Training ? run.Capacity : 0];

        public override void Execute(int item, int worker)
        {
            int c = layer.C, plane = layer.InputShape.Plane, size = layer.InputShape.Size;
            int n = item / Groups;
            var (c0, c1) = LayerRun.Range(c, item % Groups, Groups);
            var scratch = run.Scratch[worker].Span;
            var scale = Scale(run, c);
            var shift = Shift(run, c);
            bool relu = run.Epilogue.HasClamp;
            float cap = relu ? run.Epilogue.High : float.NaN;
            var pool = run.Epilogue.Pool;
            var gradPool = run.Epilogue.PooledGradient;
            for (int ch = c0; ch < c1; ch++)
            {
                int o = n * size + ch * plane;
                var x = run.Input.Slice(o, plane);
                switch (Phase)
                {
                    case Phase.Moments:
                        StoreMoments(run, Partials(run, c), n, ch, NormKernels.PlaneMoments(x));
                        break;
                    case Phase.Normalize:
                        if (pool is null)
                        {
                            NormKernels.AffineClamp(x, run.Output.Slice(o, plane), scale[ch], shift[ch], run.Epilogue.Low, run.Epilogue.High);
                            break;
                        }
                        {
                            // Normalised plane in scratch, then the pool's 2x2 windows into its output (and arg-max in training).
                            var y = scratch.Slice(0, plane);
                            NormKernels.AffineClamp(x, y, scale[ch], shift[ch], run.Epilogue.Low, run.Epilogue.High);
                            var ps = ((MaxPool2D)pool.Layer).Shape;
                            int pp = ps.OutPlane, po = n * pool.Layer.OutputShape.Size + ch * pp;
                            PoolKernels.MaxForward(ps with { C = 1 }, y,
                                pool.Output.Slice(po, pp), pool.Training ? pool.State.AsInts().Slice(po, pp) : default, 0, 1);
                            break;
                        }
                    case Phase.GradientSums:
                        {
                            var g = Gradient(n, ch, o, plane, scratch, cap, gradPool, scale[ch], shift[ch]);
                            var partials = Partials(run, c);
                            partials[PartialAt(c, run.Layout.Offset + n, 0, ch)] = LaneSum.Sum(g);
                            partials[PartialAt(c, run.Layout.Offset + n, 1, ch)] = LaneSum.Dot(g, x);
                            break;
                        }
                    case Phase.InputGradient:
                        InputGradient(n, ch, run.InGrad.Slice(o, plane));
                        break;
                }
            }
        }

        /// <summary>
        /// Plane (n, ch) of the input gradient into <paramref name="dx"/>, which may first hold the gradient at the output
        /// (through the ReLU's mask or the pool's gradient; the kernels run element by element, so in place).
        /// </summary>
        public void InputGradient(int n, int ch, Span<float> dx)
        {
            int c = layer.C, plane = layer.InputShape.Plane, o = n * layer.InputShape.Size + ch * plane;
            float cap = run.Epilogue.HasClamp ? run.Epilogue.High : float.NaN;
            var g = Gradient(n, ch, o, plane, dx, cap, run.Epilogue.PooledGradient, Scale(run, c)[ch], Shift(run, c)[ch]);
            NormKernels.BatchNormInputGradient(g, run.Input.Slice(o, plane), dx, Coefficients[3 * ch], Coefficients[3 * ch + 1], Coefficients[3 * ch + 2]);
        }

        /// <summary>
        /// The gradient at this layer's output for plane (n, ch): through the fused ReLU's mask (taken from the input
        /// and the plane's scale and shift: the same mask as the output's, without reading it), and from the fused pool's gradient.
        /// </summary>
        private ReadOnlySpan<float> Gradient(int n, int ch, int o, int plane, Span<float> scratch, float cap, LayerRun? gradPool, float scale, float shift)
        {
            var g = scratch.Slice(0, plane);
            if (gradPool is not null)
            {
                var ps = ((MaxPool2D)gradPool.Layer).Shape;
                int pp = ps.OutPlane, po = n * gradPool.Layer.OutputShape.Size + ch * pp;
                var pooled = gradPool.Output.Slice(po, pp);
                var pooledGrad = gradPool.OutGrad.Slice(po, pp);
                var argmax = gradPool.State.AsInts().Slice(po, pp);
                // Pooled rows of 8+ windows: the pool's own backward kernel (vectorised for 2x2 windows, each value written
                // once instead of a cleared plane and a scatter): vgg-bn's batch norm backward on 32 x 32 planes 4.9 ->
                // 3.4 ms a batch of 64, on 16 x 16 2.5 -> 2.0. On 8 x 8 its per-plane setup cost more than the scatter
                // (1.5 -> 1.85 ms).
                if (ps.IsTwoByTwo && ps.OutW >= 8)
                {
                    bool relu = !float.IsNaN(cap);
                    PoolKernels.MaxBackward(ps with { C = 1 }, pooledGrad, argmax, g, 0, 1, relu ? pooled : default, relu ? cap : float.PositiveInfinity);
                }
                else NormKernels.PooledMaskedGradient(pooled, pooledGrad, argmax, g, cap);
                return g;
            }
            if (float.IsNaN(cap)) return run.OutGrad.Slice(o, plane);
            NormKernels.MaskedGradientFromInput(run.Input.Slice(o, plane), run.OutGrad.Slice(o, plane), g, scale, shift, cap);
            return g;
        }
    }
}
