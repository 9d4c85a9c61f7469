using System.Collections.Concurrent;
using System.Diagnostics;
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
    private readonly ConcurrentDictionary<(int Capacity, bool Fuse), ConcurrentBag<ExecutionPlan>> _inferencePlans = new();
    private long _structureVersion;

    public Sequential(Shape3 inputShape, ulong seed = 42)
    {
        inputShape.Validate("model input shape");
        InputShape = inputShape;
        Seed = seed;
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

    /// <summary>True when the loss reads the input of a final Softmax/Sigmoid layer and fuses its gradient.</summary>
    private bool FusedHead => _layers.Count > 0 && Loss is LossKind lk &&
        ((lk == LossKind.CrossEntropy && _layers[^1] is Softmax) || (lk == LossKind.BinaryCrossEntropy && _layers[^1] is Sigmoid));

    private void RequireCompiled(string what)
    {
        if (Loss is null || Optimizer is null) throw new InvalidOperationException($"{what}: compile the model first (choose a loss and an optimizer)");
    }

    private ExecutionPlan TrainingPlan(int batchSize)
    {
        var p = _trainPlan;
        if (p is null || p.Capacity != batchSize || !p.IsCurrent)
            _trainPlan = p = new ExecutionPlan(this, batchSize, training: true);
        return p;
    }

    /// <summary>
    /// One training step on a batch: forward, loss, backward, optimizer update. Returns the batch loss.
    /// Allocates nothing once the plan for this batch size exists.
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
            return Step(plan, Optimizer!.LearningRateAt(EpochsTrained), out _);
        }
    }

    /// <summary>
    /// One step on the samples <paramref name="indices"/> of <paramref name="data"/>: gathered into the plan's input, then
    /// <see cref="Step"/>. A method of its own so that it is compiled optimised after a few calls (a long loop inside
    /// Fit would otherwise keep running in on-stack-replacement code).
    /// </summary>
    private double TrainGathered(ExecutionPlan plan, Dataset data, ReadOnlySpan<int> indices, float lr, out int correct)
    {
        int size = InputShape.Size, b = indices.Length;
        plan.SetBatch(b);
        var input = plan.Input;
        for (int j = 0; j < b; j++)
        {
            int src = indices[j];
            data.Images.AsSpan(src * size, size).CopyTo(input.Slice(j * size, size));
            plan.Labels[j] = data.Labels[src];
        }
        return Step(plan, lr, out correct);
    }

    /// <summary>Asks the CPU to start loading the next batch's (randomly placed) samples while this one trains.</summary>
    private void Prefetch(Dataset data, ReadOnlySpan<int> indices)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        int size = InputShape.Size;
        unsafe
        {
            fixed (float* p = data.Images)
                foreach (int i in indices)
                    for (int o = 0; o < size; o += 16) System.Runtime.Intrinsics.X86.Sse.Prefetch1(p + (long)i * size + o);
        }
    }

    private double Step(ExecutionPlan plan, float lr, out int correct)
    {
        plan.SetStep(Optimizer!.Steps);
        plan.Forward();
        double loss = ComputeLoss(plan, withGrad: true, out correct);
        plan.Backward(FusedHead ? _layers.Count - 2 : _layers.Count - 1);
        plan.UpdateParameters(Optimizer!, lr);
        return loss;
    }

    /// <summary>Loss of the plan's current batch; writes probabilities to plan.Probs and, with grad, the loss gradient.</summary>
    private double ComputeLoss(ExecutionPlan plan, bool withGrad, out int correct)
    {
        int n = _layers.Count, b = plan.Batch, k = plan.Classes;
        int idx = FusedHead ? n - 1 : n;
        var z = plan.Acts[idx].Slice(0, b * k);
        var grad = withGrad ? plan.Grads[idx].Slice(0, b * k) : default;
        var probs = plan.Probs.Slice(0, b * k);
        var labels = plan.Labels.AsSpan(0, b);
        double loss;
        switch (Loss!.Value)
        {
            case LossKind.CrossEntropy:
                loss = LossKernels.SoftmaxCrossEntropy(z, labels, probs, grad, b, k);
                break;
            case LossKind.BinaryCrossEntropy:
                loss = LossKernels.BinaryCrossEntropy(z, labels, probs, grad, b);
                break;
            default:
                loss = LossKernels.MeanSquaredError(z, labels, grad, b, k);
                z.CopyTo(probs);
                break;
        }
        correct = LossKernels.CountCorrect(probs, labels, b, k, 0.5f);
        return loss;
    }

    /// <summary>
    /// Trains for <see cref="FitOptions.Epochs"/> epochs of mini-batches (batch size 1 is per-sample SGD), shuffling
    /// each epoch, validating after each epoch, reporting through the callbacks, stopping early or on cancellation
    /// after the current batch. Returns the metrics of the epochs that completed.
    /// </summary>
    public TrainingHistory Fit(Dataset train, FitOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(train);
        var o = options ?? new FitOptions();
        RequireCompiled("fit");
        if (o.Epochs < 1) throw new ArgumentOutOfRangeException(nameof(options), $"fit: epochs must be at least 1, got {o.Epochs}");
        if (o.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), $"fit: batch size must be at least 1, got {o.BatchSize}");
        if (o.Threads is int t) Engine.Threads = t;
        var validation = o.Validation;
        if (validation is null && o.ValidationSplit > 0) (train, validation) = train.SplitFraction(o.ValidationSplit);
        CheckDataset(train, "training data");
        if (validation is not null) CheckDataset(validation, "validation data");

        var history = new TrainingHistory();
        int count = train.Count, size = InputShape.Size;
        int batchSize = Math.Min(o.BatchSize, count);
        int batches = (count + batchSize - 1) / batchSize;
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        var rng = new Rng(Rng.Mix(o.Seed ?? Seed, (ulong)EpochsTrained + 0x5EED));
        double bestMetric = double.NaN;
        int sinceBest = 0;
        float[][]? bestWeights = null;
        int bestEpoch = 0;

        lock (_trainLock)
        {
            for (int epoch = 1; epoch <= o.Epochs; epoch++)
            {
                if (o.Shuffle) rng.Shuffle(order);
                float lr = Optimizer!.LearningRateAt(EpochsTrained);
                var plan = TrainingPlan(batchSize);
                double lossSum = 0;
                long correct = 0;
                int seen = 0;
                var sw = Stopwatch.StartNew();
                bool stop = false;
                for (int bi = 0; bi < batches; bi++)
                {
                    int start = bi * batchSize, b = Math.Min(batchSize, count - start);
                    if (start + b < count) Prefetch(train, order.AsSpan(start + b, Math.Min(batchSize, count - start - b)));
                    double loss = TrainGathered(plan, train, order.AsSpan(start, b), lr, out int c);
                    if (!double.IsFinite(loss))
                        throw new ArithmeticException($"fit: the loss became {loss} in epoch {epoch}, batch {bi + 1}: lower the learning rate (now {lr})");
                    lossSum += loss * b;
                    correct += c;
                    seen += b;
                    if (o.OnBatchEnd is { } cb &&
                        !cb(new BatchProgress(epoch, o.Epochs, bi + 1, batches, seen, count, lossSum / seen, (double)correct / seen, sw.Elapsed.TotalSeconds)))
                    {
                        history.StopReason = "stopped by callback";
                        stop = true;
                    }
                    if (o.Cancellation.IsCancellationRequested)
                    {
                        history.StopReason = "cancelled";
                        stop = true;
                    }
                    if (stop) break;
                }
                sw.Stop();
                if (stop && seen < count) break; // a partial epoch is not an epoch: report only completed ones
                EpochsTrained++;
                double? valLoss = null, valAcc = null;
                var vsw = Stopwatch.StartNew();
                if (validation is not null)
                {
                    var ev = Evaluate(validation, o.EvaluationBatchSize);
                    valLoss = ev.Loss;
                    valAcc = ev.Accuracy;
                }
                vsw.Stop();
                var m = new EpochMetrics(epoch, lossSum / seen, (double)correct / seen, valLoss, valAcc,
                    sw.Elapsed.TotalSeconds, seen / Math.Max(sw.Elapsed.TotalSeconds, 1e-9), lr, vsw.Elapsed.TotalSeconds);
                history.Epochs.Add(m);
                o.OnEpochEnd?.Invoke(m);
                if (stop) break;
                if (o.Cancellation.IsCancellationRequested)
                {
                    history.StopReason = "cancelled";
                    break;
                }

                if (o.EarlyStopping is { } es && validation is not null)
                {
                    double metric = es.MonitorAccuracy ? -valAcc!.Value : valLoss!.Value;
                    if (double.IsNaN(bestMetric) || metric < bestMetric - es.MinDelta)
                    {
                        bestMetric = metric;
                        sinceBest = 0;
                        bestEpoch = epoch;
                        if (es.RestoreBestWeights) bestWeights = SnapshotWeights();
                    }
                    else if (++sinceBest >= es.Patience)
                    {
                        history.StopReason = "early stopping";
                        if (es.RestoreBestWeights && bestWeights is not null)
                        {
                            RestoreWeights(bestWeights);
                            history.RestoredEpoch = bestEpoch;
                        }
                        break;
                    }
                }
            }
        }
        return history;
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

    private float[][] SnapshotWeights() => CopyParameterValues();
    private void RestoreWeights(float[][] weights) => SetParameterValues(weights);

    /// <summary>Saves the model (architecture, weights, optimizer state, epochs trained) to <paramref name="path"/>, atomically.</summary>
    public void Save(string path, IReadOnlyList<float[]>? initialWeights = null) => IO.ModelFile.Save(this, path, initialWeights);

    /// <summary>Loads a model saved by <see cref="Save"/>.</summary>
    public static Sequential Load(string path) => IO.ModelFile.Load(path).Model;

    private void CheckDataset(Dataset d, string what)
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

    /// <summary>An inference plan for this caller alone (plans are pooled per capacity; concurrent callers get different ones).</summary>
    private ExecutionPlan RentInference(int capacity, bool fuse = true)
    {
        var bag = _inferencePlans.GetOrAdd((capacity, fuse), _ => new ConcurrentBag<ExecutionPlan>());
        while (bag.TryTake(out var p))
            if (p.IsCurrent) return p;
        return new ExecutionPlan(this, capacity, training: false, fuse: fuse);
    }

    private void ReturnInference(ExecutionPlan plan)
    {
        if (plan.IsCurrent && _inferencePlans.TryGetValue((plan.Capacity, plan.Fused), out var bag)) bag.Add(plan);
    }

    /// <summary>Loss, accuracy and confusion matrix on <paramref name="data"/> (inference mode).</summary>
    public Evaluation Evaluate(Dataset data, int batchSize = 256)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (Loss is null) throw new InvalidOperationException("evaluate: compile the model first (the loss is needed)");
        if (batchSize < 1) throw new ArgumentOutOfRangeException(nameof(batchSize), $"evaluate: batch size must be at least 1, got {batchSize}");
        CheckDataset(data, "evaluation data");
        int size = InputShape.Size, classes = ClassCount;
        var confusion = new int[classes, classes];
        var plan = RentInference(Math.Min(batchSize, data.Count));
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
                lossSum += ComputeLoss(plan, withGrad: false, out int c) * b;
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
            ReturnInference(plan);
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
        var plan = RentInference(Math.Min(batchSize, count));
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
                else if (!last && Loss == LossKind.BinaryCrossEntropy) TensorPrimitives.Sigmoid(output, dst);
                else output.CopyTo(dst);
            }
        }
        finally
        {
            ReturnInference(plan);
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
        var plan = RentInference(Math.Min(count, 64), fuse: false);
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
            ReturnInference(plan);
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
