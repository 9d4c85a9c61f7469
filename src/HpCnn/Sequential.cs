using System.Numerics.Tensors;
using HpCnn.Data;
using HpCnn.Kernels;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn;

/// <summary>
/// A stack of layers, Keras style: <c>new Sequential(new Shape3(1, 28, 28)).Add(new Conv2D(32, 3, padding: Padding.Same))...</c>,
/// then <see cref="Compile"/>, <see cref="Fit"/>, <see cref="Evaluate"/>, <see cref="Predict(ReadOnlySpan{float}, int)"/>.
/// Each layer is checked against its input shape when added, so a mismatch is reported at the layer that causes it.
/// Initial weights are drawn from <see cref="Seed"/>. Inference is safe from many threads at once (weights are only
/// read; every call runs in its own plan); training, and changing weights, must not overlap with anything else.
/// </summary>
public sealed class Sequential
{
    private readonly List<Layer> _layers = [];
    private readonly object _trainLock = new();
    private ExecutionPlan? _trainPlan;
    private readonly InferencePlanCache _inferencePlans;
    private long _structureVersion;

    public Sequential(Shape3 inputShape, ulong seed = 42)
    {
        inputShape.Validate("model input shape");
        InputShape = inputShape;
        Seed = seed;
        _inferencePlans = new InferencePlanCache(this);
    }

    public Shape3 InputShape { get; }
    public Shape3 OutputShape => _layers.Count == 0 ? InputShape : _layers[^1].OutputShape;
    public ulong Seed { get; }
    public IReadOnlyList<Layer> Layers => _layers;
    public LossKind? Loss { get; private set; }
    public Optimizer? Optimizer { get; private set; }
    /// <summary>
    /// Free-form JSON object saved with the model (the hpcnn command keeps preprocessing statistics, the class
    /// subset and the training history here). Null for none; must be a JSON object when set.
    /// </summary>
    public string? Metadata
    {
        get => _metadata;
        set
        {
            if (value is not null)
            {
                try
                {
                    using var doc = System.Text.Json.JsonDocument.Parse(value);
                    if (doc.RootElement.ValueKind != System.Text.Json.JsonValueKind.Object) throw new ArgumentException("metadata must be a JSON object");
                }
                catch (System.Text.Json.JsonException e)
                {
                    throw new ArgumentException($"metadata is not valid JSON: {e.Message}", e);
                }
            }
            _metadata = value;
        }
    }
    private string? _metadata;

    /// <summary>
    /// What turns a raw image into this model's input (pixel scale, standardisation) and the class names; saved in the
    /// model file, applied by <see cref="PredictRaw(ReadOnlySpan{byte}, int)"/>. Set it, or let <see cref="Fit"/> record
    /// what the training dataset carries (<see cref="Dataset.Standardization"/>, <see cref="Dataset.ClassNames"/>), as a
    /// Keras model keeps the Normalization layer it was adapted with. Per-pixel statistics must match the input size; there
    /// may be no more class names than classes the model scores.
    /// </summary>
    public Preprocessing Preprocessing
    {
        get => _preprocessing;
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            value.CheckFits(InputShape, _layers.Count > 0 ? ClassCount : null, "preprocessing");
            _preprocessing = value;
        }
    }
    private Preprocessing _preprocessing = Preprocessing.None;

    /// <summary>
    /// Records the training data's standardisation and class names (<see cref="Preprocessing"/>). What the model records
    /// already must agree: training on images standardised otherwise than the model says would make every later raw
    /// predict wrong without a word.
    /// </summary>
    private void RecordPreprocessingOf(Dataset train)
    {
        var p = _preprocessing;
        if (train.Standardization is { } st)
        {
            if (p.Standardization is null) p = p with { Standardization = st };
            else if (!p.Standardization.Equals(st))
                throw new ArgumentException("fit: the training images were standardised with other statistics than the model records " +
                    "(Preprocessing.Standardization); standardise the raw images with the model's (model.Preprocessing.Standardization.Apply(data)), " +
                    "or set model.Preprocessing first");
        }
        if (train.ClassNames is { } names && names.Count <= ClassCount)
        {
            if (p.ClassNames is null) p = p with { ClassNames = names };
            else if (!p.ClassNames.SequenceEqual(names))
                throw new ArgumentException($"fit: the training data's classes are [{string.Join(", ", names)}], the model records " +
                    $"[{string.Join(", ", p.ClassNames)}] (Preprocessing.ClassNames); set model.Preprocessing to change them");
        }
        if (!ReferenceEquals(p, _preprocessing)) Preprocessing = p;
    }

    /// <summary>Epochs trained so far (drives learning-rate schedules; kept in the model file).</summary>
    public int EpochsTrained { get; internal set; }

    /// <summary>
    /// Parameter values that may still be created (model files set it to what they hold, so a hostile
    /// architecture is refused before anything large is allocated).
    /// </summary>
    internal long ParameterBudget { get; set; } = long.MaxValue;

    internal void ChargeParameters(long count, string what)
    {
        if (count > ParameterBudget)
            throw new InvalidDataException($"{what} needs {count} values, but only {Math.Max(0, ParameterBudget)} are available (the file holds fewer parameters than its architecture)");
        if (ParameterBudget != long.MaxValue) ParameterBudget -= count;
    }

    internal long StructureVersion => Interlocked.Read(ref _structureVersion);
    internal void BumpStructureVersion() => Interlocked.Increment(ref _structureVersion);

    /// <summary>Appends a layer, checking it against the current output shape (the message names the layer).</summary>
    public Sequential Add(Layer layer)
    {
        ArgumentNullException.ThrowIfNull(layer);
        layer.Build(OutputShape, _layers.Count, Seed, this);
        _layers.Add(layer);
        BumpStructureVersion();
        return this;
    }

    /// <summary>Sets the loss and optimizer, checking that the loss fits the output.</summary>
    public Sequential Compile(LossKind loss, Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (_layers.Count == 0) throw new InvalidOperationException("compile: the model has no layers");
        var o = OutputShape;
        if (!o.IsFlat) throw new ArgumentException($"compile: the model output is {o}; end with flatten + dense to get class scores");
        if (loss == LossKind.CrossEntropy && o.C < 2)
            throw new ArgumentException($"compile: cross-entropy needs at least 2 outputs (one per class), the model has {o.C}; for one output use binary_cross_entropy");
        if (loss == LossKind.BinaryCrossEntropy && o.C != 1)
            throw new ArgumentException($"compile: binary cross-entropy needs exactly 1 output, the model has {o.C}; use cross_entropy");
        Loss = loss;
        Optimizer = optimizer;
        return this;
    }

    /// <summary>Trainable parameters of every layer.</summary>
    public long ParameterCount => _layers.Sum(l => l.ParameterCount);
    /// <summary>Forward FLOPs for one sample.</summary>
    public long FlopsPerSample => _layers.Sum(l => l.FlopsPerSample);

    /// <summary>Freezes layer <paramref name="index"/> (its parameters stop changing).</summary>
    public void Freeze(int index) => LayerAt(index).Frozen = true;
    public void Unfreeze(int index) => LayerAt(index).Frozen = false;

    public Layer LayerAt(int index) =>
        (uint)index < (uint)_layers.Count ? _layers[index] : throw new ArgumentOutOfRangeException(nameof(index), $"layer {index} does not exist (the model has {_layers.Count} layers, 0..{_layers.Count - 1})");

    /// <summary>Number of classes the output scores (2 for a single sigmoid output).</summary>
    public int ClassCount => OutputShape.Size == 1 ? 2 : OutputShape.Size;

    // ------------------------------------------------------------------ training

    private void RequireCompiled(string what)
    {
        if (Loss is null || Optimizer is null) throw new InvalidOperationException($"{what}: compile the model first (choose a loss and an optimizer)");
    }

    /// <summary>
    /// The training plan for batches of up to <paramref name="batchSize"/> images on <paramref name="pool"/> (default: the
    /// shared pool). The model keeps one, for the shared pool; a larger batch replaces it, a smaller one runs in it
    /// (a batch's result does not depend on the capacity of the plan it runs in).
    /// </summary>
    internal ExecutionPlan TrainingPlan(int batchSize, WorkerPool? pool = null)
    {
        if (pool is not null && !ReferenceEquals(pool, WorkerPool.Shared))
            return new ExecutionPlan(this, batchSize, training: true, pool: pool);
        var p = _trainPlan;
        if (p is null || p.Capacity < batchSize || !p.IsCurrent)
            _trainPlan = p = new ExecutionPlan(this, batchSize, training: true);
        return p;
    }

    /// <summary>
    /// One training step on a batch: forward, loss, backward, optimizer update. Returns the batch loss.
    /// Allocates nothing once a plan for this batch size (or a larger one) exists.
    /// </summary>
    public double TrainBatch(ReadOnlySpan<float> images, ReadOnlySpan<int> labels)
    {
        RequireCompiled("train");
        int n = labels.Length;
        CheckInput(images, n);
        lock (_trainLock)
        {
            var plan = TrainingPlan(n);
            plan.SetBatch(n);
            images.CopyTo(plan.Input);
            labels.CopyTo(plan.Labels);
            return plan.TrainStep(Optimizer!, Optimizer!.LearningRateAt(EpochsTrained), out _);
        }
    }

    /// <summary>
    /// Trains for <see cref="FitOptions.Epochs"/> epochs of mini-batches (batch size 1 is per-sample SGD), shuffling
    /// each epoch, validating after each epoch, reporting through the callbacks, stopping early or on cancellation
    /// after the current batch. Returns the metrics of the epochs that completed. <see cref="FitOptions.Threads"/>
    /// applies to this fit alone.
    /// </summary>
    public TrainingHistory Fit(Dataset train, FitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        RequireCompiled("fit");
        var trainer = new Trainer(this, train, options ?? new FitOptions());
        lock (_trainLock)
        {
            RecordPreprocessingOf(train); // before the first checkpoint, which carries it
            return trainer.Run();
        }
    }

    /// <summary>A copy of every parameter's values, in model order (layers, then each layer's parameters).</summary>
    public float[][] CopyParameterValues() => _layers.SelectMany(l => l.Parameters).Select(p => (float[])p.Value.Clone()).ToArray();

    /// <summary>Sets every parameter from arrays in the order of <see cref="CopyParameterValues"/>.</summary>
    public void SetParameterValues(IReadOnlyList<float[]> values)
    {
        var ps = _layers.SelectMany(l => l.Parameters).ToList();
        if (values.Count != ps.Count) throw new ArgumentException($"expected {ps.Count} parameter arrays, got {values.Count}");
        for (int i = 0; i < ps.Count; i++) ps[i].Set(values[i]);
    }

    /// <summary>Saves the model (architecture, weights, optimizer state, epochs trained) to <paramref name="path"/>, atomically.</summary>
    public void Save(string path, IReadOnlyList<float[]>? initialWeights = null) => IO.ModelFile.Save(this, path, initialWeights);

    /// <summary>
    /// Loads a model saved by <see cref="Save"/>, refusing one whose forward pass costs more than
    /// <paramref name="maxFlopsPerImage"/> per image (see <see cref="IO.ComputeBudget"/>; 0: the default).
    /// </summary>
    public static Sequential Load(string path, long maxFlopsPerImage = IO.ComputeBudget.DefaultFlopsPerImage) => IO.ModelFile.Load(path, maxFlopsPerImage).Model;

    internal void CheckDataset(Dataset d, string what)
    {
        if (d.Shape != InputShape)
            throw new ArgumentException($"{what}: images are {d.Shape}, the model expects {InputShape}");
        int classes = ClassCount;
        if (d.ClassCount > classes)
        {
            for (int i = 0; i < d.Count; i++)
                if (d.Labels[i] >= classes)
                    throw new ArgumentException($"{what}: label {d.Labels[i]} of sample {i} is outside the {classes} classes of the model output ({OutputShape.Size} output(s))");
        }
    }

    private void CheckInput(ReadOnlySpan<float> images, int count)
    {
        if (count < 1) throw new ArgumentException("no samples given (0 images)");
        long expected = (long)count * InputShape.Size;
        if (images.Length != expected)
        {
            string got = images.Length % InputShape.Size == 0 ? $"{images.Length / InputShape.Size} of them ({images.Length} values)" : $"{images.Length} values";
            throw new ArgumentException($"model input: expected {count} images of {InputShape} ({expected} values), got {got}");
        }
    }

    // ------------------------------------------------------------------ inference

    /// <summary>
    /// Bytes of idle inference plans this model keeps for reuse. Calls for any batch size use plans of a few capacity
    /// classes (powers of two up to the batch size they run at); the least recently used are dropped beyond this. Until
    /// it is set, 256 MiB or the last plan's size when that is larger (repeated calls on large inputs keep their plan);
    /// once set, a hard bound. Memory in use is at most this plus one plan per call in flight. 0 keeps none.
    /// </summary>
    public long InferenceCacheBytes
    {
        get => _inferencePlans.BudgetBytes;
        set => _inferencePlans.BudgetBytes = value;
    }

    /// <summary>Drops the inference plans kept for reuse (their memory goes back to the collector).</summary>
    public void ReleaseInferencePlans() => _inferencePlans.Clear();

    /// <summary>Drops the training plan kept for the next step (the next step plans again).</summary>
    public void ReleaseTrainingPlan()
    {
        lock (_trainLock) _trainPlan = null;
    }

    internal InferencePlanCache InferencePlans => _inferencePlans;

    /// <summary>Loss, accuracy and confusion matrix on <paramref name="data"/> (inference mode).</summary>
    public Evaluation Evaluate(Dataset data, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (Loss is null) throw new InvalidOperationException("evaluate: compile the model first (the loss is needed)");
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), $"evaluate: batch size must be at least 1, got {batchSize}");
        CheckDataset(data, "evaluation data");
        int size = InputShape.Size, classes = ClassCount;
        var confusion = new int[classes, classes];
        var plan = _inferencePlans.Rent(InferencePlanCache.CapacityFor(data.Count, batchSize));
        try
        {
            double lossSum = 0;
            int correct = 0;
            for (int start = 0; start < data.Count; start += plan.Capacity)
            {
                int b = Math.Min(plan.Capacity, data.Count - start);
                plan.SetBatch(b);
                data.Images.AsSpan(start * size, b * size).CopyTo(plan.Input);
                data.Labels.AsSpan(start, b).CopyTo(plan.Labels);
                plan.Forward();
                lossSum += plan.ComputeLoss(withGrad: false, out int c) * b;
                correct += c;
                int k = plan.Classes;
                for (int j = 0; j < b; j++)
                {
                    var p = plan.Probs.Slice(j * k, k);
                    int predicted = k == 1 ? (p[0] >= 0.5f ? 1 : 0) : TensorPrimitives.IndexOfMax(p);
                    confusion[data.Labels[start + j], predicted]++;
                }
            }
            return new Evaluation(lossSum / data.Count, correct, data.Count, confusion);
        }
        finally
        {
            _inferencePlans.Return(plan);
        }
    }

    /// <summary>
    /// Class probabilities of <paramref name="images"/> (count x input size) into <paramref name="probabilities"/>
    /// (count x outputs). Softmax/sigmoid is applied when the model outputs logits for a cross-entropy loss;
    /// a model compiled with MSE (or not compiled) gives its raw outputs. Thread-safe; allocates nothing once warm.
    /// </summary>
    public void PredictInto(ReadOnlySpan<float> images, Span<float> probabilities, int batchSize = 256)
    {
        if (_layers.Count == 0) throw new InvalidOperationException("predict: the model has no layers");
        int size = InputShape.Size, k = OutputShape.Size;
        if (images.Length == 0 || images.Length % size != 0)
            throw new ArgumentException($"model input: expected a whole number of {InputShape} images ({size} values each), got {images.Length} values");
        int count = images.Length / size;
        if (probabilities.Length != count * k)
            throw new ArgumentException($"predict: the output holds {probabilities.Length} values, {count} images x {k} outputs need {count * k}");
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize));
        var plan = _inferencePlans.Rent(InferencePlanCache.CapacityFor(count, batchSize));
        try
        {
            for (int start = 0; start < count; start += plan.Capacity)
            {
                int b = Math.Min(plan.Capacity, count - start);
                plan.SetBatch(b);
                images.Slice(start * size, b * size).CopyTo(plan.Input);
                plan.Forward();
                var dst = probabilities.Slice(start * k, b * k);
                var output = plan.Output;
                bool last = _layers[^1] is Softmax or Sigmoid;
                if (!last && Loss == LossKind.CrossEntropy) LossKernels.Softmax(output, dst, b, k);
                else if (!last && Loss == LossKind.BinaryCrossEntropy) ActivationKernels.SigmoidForward(output, dst);
                else output.CopyTo(dst);
            }
        }
        finally
        {
            _inferencePlans.Return(plan);
        }
    }

    /// <summary>Probabilities and predicted classes of <paramref name="images"/> (count x input size values).</summary>
    public Prediction Predict(ReadOnlySpan<float> images, int batchSize = 256)
    {
        int size = InputShape.Size, k = OutputShape.Size;
        int count = images.Length / Math.Max(1, size);
        var probs = new float[count * k];
        PredictInto(images, probs, batchSize);
        var classes = new int[count];
        for (int i = 0; i < count; i++)
            classes[i] = k == 1 ? (probs[i] >= 0.5f ? 1 : 0) : TensorPrimitives.IndexOfMax(probs.AsSpan(i * k, k));
        return new Prediction(probs, classes, k);
    }

    /// <summary>
    /// Predictions for raw byte pixels (0-255; count x input size, NCHW): scaled and standardised as the model's
    /// <see cref="Preprocessing"/> says, so a reloaded model predicts on new images with no extra code. The result is
    /// bitwise that of <see cref="Predict(ReadOnlySpan{float}, int)"/> on the images preprocessed by hand
    /// (x * (1/255), then <see cref="Standardization.Apply(Span{float}, int)"/>).
    /// </summary>
    public Prediction PredictRaw(ReadOnlySpan<byte> pixels, int batchSize = 256)
        => Predict(ModelInput(pixels), batchSize);

    /// <summary>
    /// Predictions for raw float pixels in the model's pixel scale (<see cref="Preprocessing.PixelScale"/>: [0, 1] unless
    /// trained on 0-255), standardised as the model's <see cref="Preprocessing"/> says. Values outside the scale are refused.
    /// </summary>
    public Prediction PredictRaw(ReadOnlySpan<float> pixels, int batchSize = 256)
        => Predict(ModelInput(pixels), batchSize);

    /// <summary>Class probabilities of raw byte pixels (0-255) into <paramref name="probabilities"/> (see <see cref="PredictRaw(ReadOnlySpan{byte}, int)"/>).</summary>
    public void PredictRawInto(ReadOnlySpan<byte> pixels, Span<float> probabilities, int batchSize = 256)
        => PredictInto(ModelInput(pixels), probabilities, batchSize);

    /// <summary>Class probabilities of raw float pixels into <paramref name="probabilities"/> (see <see cref="PredictRaw(ReadOnlySpan{float}, int)"/>).</summary>
    public void PredictRawInto(ReadOnlySpan<float> pixels, Span<float> probabilities, int batchSize = 256)
        => PredictInto(ModelInput(pixels), probabilities, batchSize);

    /// <summary>Raw pixels as the model's input: scaled and standardised by <see cref="Preprocessing"/>.</summary>
    private float[] ModelInput(ReadOnlySpan<byte> pixels)
    {
        var input = new float[pixels.Length];
        _preprocessing.ToModelInput(pixels, input, InputShape.Size);
        return input;
    }

    private float[] ModelInput(ReadOnlySpan<float> pixels)
    {
        var input = new float[pixels.Length];
        _preprocessing.ToModelInput(pixels, input, InputShape.Size);
        return input;
    }

    /// <summary>Predictions for every image of a dataset.</summary>
    public Prediction Predict(Dataset data, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Shape != InputShape) throw new ArgumentException($"predict: images are {data.Shape}, the model expects {InputShape}");
        return Predict(data.Images, batchSize);
    }

    /// <summary>
    /// The output of layer <paramref name="layerIndex"/> for each image (count x that layer's output size), in
    /// inference mode and without fusing (a convolution's output is taken before its ReLU): the feature maps.
    /// </summary>
    public float[] LayerOutput(int layerIndex, ReadOnlySpan<float> images)
    {
        var layer = LayerAt(layerIndex);
        int size = InputShape.Size;
        if (images.Length == 0 || images.Length % size != 0)
            throw new ArgumentException($"model input: expected a whole number of {InputShape} images ({size} values each), got {images.Length} values");
        int count = images.Length / size;
        var result = new float[(long)count * layer.OutputShape.Size];
        var plan = _inferencePlans.Rent(InferencePlanCache.CapacityFor(count, 64), fuse: false);
        try
        {
            for (int start = 0; start < count; start += plan.Capacity)
            {
                int b = Math.Min(plan.Capacity, count - start);
                plan.SetBatch(b);
                images.Slice(start * size, b * size).CopyTo(plan.Input);
                plan.ForwardThrough(layerIndex);
                int os = layer.OutputShape.Size;
                plan.Acts[layerIndex + 1].Slice(0, b * os).CopyTo(result.AsSpan(start * os, b * os));
            }
        }
        finally
        {
            _inferencePlans.Return(plan);
        }
        return result;
    }

    /// <summary>Bytes of the plan a training step of <paramref name="batchSize"/> uses (activations, gradients, scratch).</summary>
    public long TrainingPlanBytes(int batchSize) => new ExecutionPlan(this, batchSize, training: true).ArenaBytes;

    /// <summary>A table of the layers: kind, configuration, output shape, parameters, FLOPs per sample.</summary>
    public string Summary()
    {
        var sb = new System.Text.StringBuilder();
        sb.AppendLine($"{"#",-3} {"layer",-15} {"output",-12} {"params",10} {"MFLOP",9}  details");
        sb.AppendLine($"{"",-3} {"input",-15} {InputShape,-12}");
        foreach (var l in _layers)
            sb.AppendLine($"{l.Index,-3} {l.Kind + (l.Frozen ? "*" : ""),-15} {l.OutputShape,-12} {l.ParameterCount,10:N0} {l.FlopsPerSample / 1e6,9:F3}  {l.Describe()}");
        sb.AppendLine($"total: {ParameterCount:N0} parameters, {FlopsPerSample / 1e6:F2} MFLOP forward per sample");
        return sb.ToString();
    }
}
