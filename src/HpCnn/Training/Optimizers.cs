using System.Globalization;
using HpCnn.Kernels;
using HpCnn.Layers;

namespace HpCnn.Training;

/// <summary>Updates trainable parameters from their gradients. State (momentum, moments) lives with each parameter.</summary>
public abstract class Optimizer
{
    private float _lr;

    protected Optimizer(float learningRate)
    {
        LearningRate = learningRate;
    }

    /// <summary>The base learning rate (a schedule scales it per epoch).</summary>
    public float LearningRate
    {
        get => _lr;
        set
        {
            if (!(value > 0) || float.IsInfinity(value)) throw new ArgumentOutOfRangeException(nameof(LearningRate), $"learning rate must be positive and finite, got {value}");
            _lr = value;
        }
    }

    /// <summary>Per-epoch scaling of the learning rate (null: constant).</summary>
    public LearningRateSchedule? Schedule { get; set; }

    /// <summary>Steps taken so far (Adam's bias correction uses it; saved in the model file).</summary>
    public long Steps { get; internal set; }

    /// <summary>The learning rate in effect during epoch <paramref name="epoch"/> (0-based).</summary>
    public float LearningRateAt(int epoch) => Schedule is null ? LearningRate : LearningRate * Schedule.Factor(epoch);

    public abstract string Kind { get; }
    public abstract string Describe();

    /// <summary>Called once before the parameters of a step are updated.</summary>
    internal virtual void BeginStep() => Steps++;

    /// <summary>
    /// Creates the state arrays of <paramref name="p"/> this optimizer needs. Called on the calling thread before a
    /// parallel update: segments of one parameter are updated by different workers and must share one state array.
    /// </summary>
    internal abstract void EnsureState(Parameter p);

    /// <summary>Updates values [start, start + count) of <paramref name="p"/> with learning rate <paramref name="lr"/>.</summary>
    internal abstract void Update(Parameter p, int start, int count, float lr);

    internal static float[] State(Parameter p, bool second) =>
        (second ? p.Moment2 : p.Moment1) ?? throw new InvalidOperationException($"optimizer state of {p.Name} was not created before the update");
}

/// <summary>Stochastic gradient descent with optional momentum, Nesterov momentum and weight decay (PyTorch semantics).</summary>
public sealed class Sgd : Optimizer
{
    public Sgd(float learningRate = 0.01f, float momentum = 0f, bool nesterov = false, float weightDecay = 0f) : base(learningRate)
    {
        if (!(momentum >= 0 && momentum < 1)) throw new ArgumentOutOfRangeException(nameof(momentum), $"sgd: momentum must be in [0, 1), got {momentum}");
        if (nesterov && momentum == 0) throw new ArgumentException("sgd: Nesterov momentum needs a momentum above 0");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), $"sgd: weight decay must be >= 0, got {weightDecay}");
        Momentum = momentum; Nesterov = nesterov; WeightDecay = weightDecay;
    }

    public float Momentum { get; }
    public bool Nesterov { get; }
    public float WeightDecay { get; }
    public override string Kind => "sgd";

    public override string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"SGD lr {LearningRate}{(Momentum > 0 ? $", momentum {Momentum}" : "")}{(Nesterov ? " (Nesterov)" : "")}{(WeightDecay > 0 ? $", weight decay {WeightDecay}" : "")}");

    internal override void EnsureState(Parameter p)
    {
        if (Momentum != 0) p.Moment1 ??= new float[p.Count];
    }

    internal override void Update(Parameter p, int start, int count, float lr)
    {
        var v = Momentum != 0 ? State(p, false).AsSpan(start, count) : default;
        OptimizerKernels.Sgd(p.Value.AsSpan(start, count), p.Grad.AsSpan(start, count), v, lr, Momentum, Nesterov, WeightDecay);
    }
}

/// <summary>Adam (PyTorch semantics; weight decay is L2 added to the gradient).</summary>
public sealed class Adam : Optimizer
{
    public Adam(float learningRate = 0.001f, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0f) : base(learningRate)
    {
        if (!(beta1 >= 0 && beta1 < 1)) throw new ArgumentOutOfRangeException(nameof(beta1), $"adam: beta1 must be in [0, 1), got {beta1}");
        if (!(beta2 >= 0 && beta2 < 1)) throw new ArgumentOutOfRangeException(nameof(beta2), $"adam: beta2 must be in [0, 1), got {beta2}");
        if (!(epsilon > 0)) throw new ArgumentOutOfRangeException(nameof(epsilon), $"adam: epsilon must be positive, got {epsilon}");
        if (!(weightDecay >= 0)) throw new ArgumentOutOfRangeException(nameof(weightDecay), $"adam: weight decay must be >= 0, got {weightDecay}");
        Beta1 = beta1; Beta2 = beta2; Epsilon = epsilon; WeightDecay = weightDecay;
    }

    public float Beta1 { get; }
    public float Beta2 { get; }
    public float Epsilon { get; }
    public float WeightDecay { get; }
    public override string Kind => "adam";
    private float _c1, _c2;

    public override string Describe() => string.Create(CultureInfo.InvariantCulture,
        $"Adam lr {LearningRate}, betas ({Beta1}, {Beta2}){(WeightDecay > 0 ? $", weight decay {WeightDecay}" : "")}");

    internal override void BeginStep()
    {
        base.BeginStep();
        _c1 = 1 - (float)Math.Pow(Beta1, Steps);
        _c2 = 1 - (float)Math.Pow(Beta2, Steps);
    }

    internal override void EnsureState(Parameter p)
    {
        p.Moment1 ??= new float[p.Count];
        p.Moment2 ??= new float[p.Count];
    }

    internal override void Update(Parameter p, int start, int count, float lr) =>
        OptimizerKernels.Adam(p.Value.AsSpan(start, count), p.Grad.AsSpan(start, count), State(p, false).AsSpan(start, count),
            State(p, true).AsSpan(start, count), lr, Beta1, Beta2, Epsilon, WeightDecay, _c1, _c2);
}

/// <summary>Scales the learning rate per epoch.</summary>
public abstract class LearningRateSchedule
{
    /// <summary>Multiplier of the base learning rate during epoch <paramref name="epoch"/> (0-based).</summary>
    public abstract float Factor(int epoch);
    public abstract string Describe();
}

/// <summary>Multiplies the learning rate by <see cref="Gamma"/> every <see cref="StepSize"/> epochs (PyTorch's StepLR).</summary>
public sealed class StepSchedule : LearningRateSchedule
{
    public StepSchedule(int stepSize, float gamma = 0.1f)
    {
        if (stepSize <= 0) throw new ArgumentOutOfRangeException(nameof(stepSize), $"step schedule: step size must be positive, got {stepSize}");
        if (!(gamma > 0)) throw new ArgumentOutOfRangeException(nameof(gamma), $"step schedule: gamma must be positive, got {gamma}");
        StepSize = stepSize; Gamma = gamma;
    }

    public int StepSize { get; }
    public float Gamma { get; }
    public override float Factor(int epoch) => MathF.Pow(Gamma, epoch / StepSize);
    public override string Describe() => string.Create(CultureInfo.InvariantCulture, $"step every {StepSize} epoch(s) by {Gamma}");
}

/// <summary>Cosine annealing from the base rate down to MinFactor x base over <see cref="Epochs"/> epochs (PyTorch's CosineAnnealingLR).</summary>
public sealed class CosineSchedule : LearningRateSchedule
{
    public CosineSchedule(int epochs, float minFactor = 0f)
    {
        if (epochs <= 0) throw new ArgumentOutOfRangeException(nameof(epochs), $"cosine schedule: epochs must be positive, got {epochs}");
        if (!(minFactor >= 0 && minFactor <= 1)) throw new ArgumentOutOfRangeException(nameof(minFactor), $"cosine schedule: min factor must be in [0, 1], got {minFactor}");
        Epochs = epochs; MinFactor = minFactor;
    }

    public int Epochs { get; }
    public float MinFactor { get; }
    public override float Factor(int epoch) =>
        MinFactor + (1 - MinFactor) * 0.5f * (1 + MathF.Cos(MathF.PI * Math.Min(epoch, Epochs) / Epochs));
    public override string Describe() => string.Create(CultureInfo.InvariantCulture, $"cosine over {Epochs} epoch(s) to {MinFactor}x");
}
