using System.Globalization;
using System.Text.Json;
using HpCnn.Kernels;

namespace HpCnn.Layers;

/// <summary>
/// Per-feature-map normalisation (the deep-CNN tutorial's step): every plane of every image is shifted to
/// zero mean and scaled to unit standard deviation. No parameters; the same in training and inference.
/// </summary>
public sealed class FeatureMapNorm : Layer
{
    public FeatureMapNorm(float epsilon = 1e-5f)
    {
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"featuremapnorm: epsilon must be positive, got {epsilon}");
        Epsilon = epsilon;
    }

    public override string Kind => "featuremapnorm";
    public float Epsilon { get; }

    protected override Shape3 OnBuild(Shape3 input, Rng rng)
    {
        if (input.Plane < 2) throw new ArgumentException($"expected feature maps of at least 2 values, got {input}");
        return input;
    }

    public override long FlopsPerSample => 4L * InputShape.Size;
    public override string Describe() => "";
    protected override void WriteSpecFields(Utf8JsonWriter w) { if (Epsilon != 1e-5f) w.WriteNumber("epsilon", Epsilon); }

    internal override long StateFloats(int batch, bool training) => (long)batch * InputShape.C;
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

    public BatchNorm2D(float epsilon = 1e-5f, float momentum = 0.1f)
    {
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"batchnorm2d: epsilon must be positive, got {epsilon}");
        if (!(momentum >= 0 && momentum <= 1)) throw new ArgumentOutOfRangeException(nameof(momentum), $"batchnorm2d: momentum must be in [0, 1], got {momentum}");
        Epsilon = epsilon;
        Momentum = momentum;
    }

    public override string Kind => "batchnorm2d";
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
    public override string Describe() => $"momentum {Momentum.ToString(CultureInfo.InvariantCulture)}";
    protected override void WriteSpecFields(Utf8JsonWriter w)
    {
        if (Epsilon != 1e-5f) w.WriteNumber("epsilon", Epsilon);
        if (Momentum != 0.1f) w.WriteNumber("momentum", Momentum);
    }

    // State: per channel the batch mean and 1/sqrt(var + eps) of the last training forward.
    internal override long StateFloats(int batch, bool training) => training ? 2L * InputShape.C : 0;
    internal override void Prepare(LayerRun run) => run.Jobs = new Job(this, run);

    internal override void Forward(LayerRun run)
    {
        var job = (Job)run.Jobs!;
        job.Backward = false;
        run.Parallel(job, InputShape.C, (long)run.Batch * InputShape.Plane * 4);
        if (run.Training)
        {
            _runningMean!.MarkChanged();
            _runningVar!.MarkChanged();
        }
    }

    internal override void Backward(LayerRun run)
    {
        var job = (Job)run.Jobs!;
        job.Backward = true;
        run.Parallel(job, InputShape.C, (long)run.Batch * InputShape.Plane * 4);
    }

    private sealed class Job(BatchNorm2D layer, LayerRun run) : ParallelJob
    {
        public bool Backward;

        public override void Execute(int c, int worker)
        {
            int channels = layer.InputShape.C, plane = layer.InputShape.Plane, batch = run.Batch;
            float gamma = layer._gamma!.Value[c], beta = layer._beta!.Value[c];
            if (!run.Training)
            {
                float inv = 1f / MathF.Sqrt(layer._runningVar!.Value[c] + layer.Epsilon);
                NormKernels.ChannelAffine(run.Input.Span, run.Output.Span, batch, channels, plane, c, layer._runningMean!.Value[c], inv, gamma, beta);
                return;
            }
            var state = run.State.Span;
            if (!Backward)
            {
                var (mean, var) = NormKernels.ChannelStats(run.Input.Span, batch, channels, plane, c);
                float invStd = (float)(1 / Math.Sqrt(var + layer.Epsilon));
                state[c] = (float)mean;
                state[channels + c] = invStd;
                NormKernels.ChannelAffine(run.Input.Span, run.Output.Span, batch, channels, plane, c, (float)mean, invStd, gamma, beta);
                long m = (long)batch * plane;
                double unbiased = m > 1 ? var * m / (m - 1) : var;
                float mom = layer.Momentum;
                layer._runningMean!.Value[c] = (1 - mom) * layer._runningMean.Value[c] + mom * (float)mean;
                layer._runningVar!.Value[c] = (1 - mom) * layer._runningVar.Value[c] + mom * (float)unbiased;
            }
            else
            {
                var (dGamma, dBeta) = NormKernels.BatchNormBackward(run.Input.Span, run.OutGrad.Span, run.InGrad.Span, batch, channels, plane, c,
                    state[c], state[channels + c], gamma, run.NeedInputGrad);
                if (run.NeedParamGrad)
                {
                    layer._gamma.Grad[c] = dGamma;
                    layer._beta!.Grad[c] = dBeta;
                }
            }
        }
    }
}
