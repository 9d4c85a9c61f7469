using System.Diagnostics;
using HpCnn.Data;

namespace HpCnn.Training;

/// <summary>
/// One <see cref="Sequential.Fit"/> call: epochs of shuffled mini-batches, validation, callbacks, early stopping and
/// cancellation. A fit that asks for its own thread count runs on a pool of its own, so the process-wide setting
/// (<see cref="Engine.Threads"/>) is the same after the fit as before.
/// </summary>
internal sealed class Trainer
{
    private readonly Sequential _model;
    private readonly FitOptions _o;
    private Dataset _train;
    private readonly Dataset? _validation;

    public Trainer(Sequential model, Dataset train, FitOptions options)
    {
        _model = model;
        _o = options;
        if (options.Epochs < 1) throw new ArgumentOutOfRangeException(nameof(options), $"fit: epochs must be at least 1, got {options.Epochs}");
        if (options.BatchSize < 1) throw new ArgumentOutOfRangeException(nameof(options), $"fit: batch size must be at least 1, got {options.BatchSize}");
        if (options.Threads is int t && (t < 1 || t > 256))
            throw new ArgumentOutOfRangeException(nameof(options), $"fit: threads must be between 1 and 256, got {t}");
        _train = train;
        _validation = options.Validation;
        if (_validation is null && options.ValidationSplit > 0) (_train, _validation) = train.SplitFraction(options.ValidationSplit);
        model.CheckDataset(_train, "training data");
        if (_validation is not null) model.CheckDataset(_validation, "validation data");
    }

    public TrainingHistory Run()
    {
        // A fit with its own thread count gets a pool of its own for its duration (and the plan that goes with it).
        WorkerPool? own = _o.Threads is int t && t != WorkerPool.Shared.ThreadCount ? new WorkerPool(t) : null;
        try
        {
            return Epochs(own);
        }
        finally
        {
            own?.Dispose();
        }
    }

    private TrainingHistory Epochs(WorkerPool? pool)
    {
        var o = _o;
        var model = _model;
        var train = _train;
        var optimizer = model.Optimizer!;
        var history = new TrainingHistory();
        int count = train.Count;
        int batchSize = Math.Min(o.BatchSize, count);
        int batches = (count + batchSize - 1) / batchSize;
        var order = new int[count];
        for (int i = 0; i < count; i++) order[i] = i;
        var rng = new Rng(Rng.Mix(o.Seed ?? model.Seed, (ulong)model.EpochsTrained + 0x5EED));
        double bestMetric = double.NaN;
        int sinceBest = 0;
        float[][]? bestWeights = null;
        int bestEpoch = 0;

        for (int epoch = 1; epoch <= o.Epochs; epoch++)
        {
            if (o.Shuffle) rng.Shuffle(order);
            float lr = optimizer.LearningRateAt(model.EpochsTrained);
            var plan = model.TrainingPlan(batchSize, pool);
            double lossSum = 0;
            long correct = 0;
            int seen = 0;
            var sw = Stopwatch.StartNew();
            bool stop = false;
            for (int bi = 0; bi < batches; bi++)
            {
                int start = bi * batchSize, b = Math.Min(batchSize, count - start);
                if (start + b < count) Prefetch(train, order.AsSpan(start + b, Math.Min(batchSize, count - start - b)));
                double loss = TrainGathered(plan, train, order.AsSpan(start, b), optimizer, lr, out int c);
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
            model.EpochsTrained++;
            double? valLoss = null, valAcc = null;
            var vsw = Stopwatch.StartNew();
            if (_validation is not null)
            {
                var ev = model.Evaluate(_validation, o.EvaluationBatchSize);
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

            if (o.EarlyStopping is { } es && _validation is not null)
            {
                double metric = es.MonitorAccuracy ? -valAcc!.Value : valLoss!.Value;
                if (double.IsNaN(bestMetric) || metric < bestMetric - es.MinDelta)
                {
                    bestMetric = metric;
                    sinceBest = 0;
                    bestEpoch = epoch;
                    if (es.RestoreBestWeights) bestWeights = model.CopyParameterValues();
                }
                else if (++sinceBest >= es.Patience)
                {
                    history.StopReason = "early stopping";
                    if (es.RestoreBestWeights && bestWeights is not null)
                    {
                        model.SetParameterValues(bestWeights);
                        history.RestoredEpoch = bestEpoch;
                    }
                    break;
                }
            }
        }
        return history;
    }

    /// <summary>
    /// One step on the samples <paramref name="indices"/> of <paramref name="data"/>, gathered into the plan's input. A
    /// method of its own so that it is compiled optimised after a few calls (a long loop inside the epoch loop would
    /// otherwise keep running in on-stack-replacement code).
    /// </summary>
    private static double TrainGathered(ExecutionPlan plan, Dataset data, ReadOnlySpan<int> indices, Optimizer optimizer, float lr, out int correct)
    {
        int size = data.Shape.Size, b = indices.Length;
        plan.SetBatch(b);
        var input = plan.Input;
        for (int j = 0; j < b; j++)
        {
            int src = indices[j];
            data.Images.AsSpan(src * size, size).CopyTo(input.Slice(j * size, size));
            plan.Labels[j] = data.Labels[src];
        }
        return plan.TrainStep(optimizer, lr, out correct);
    }

    /// <summary>Asks the CPU to start loading the next batch's (randomly placed) samples while this one trains.</summary>
    private static void Prefetch(Dataset data, ReadOnlySpan<int> indices)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported) return;
        int size = data.Shape.Size;
        unsafe
        {
            fixed (float* p = data.Images)
                foreach (int i in indices)
                    for (int o = 0; o < size; o += 16) System.Runtime.Intrinsics.X86.Sse.Prefetch1(p + (long)i * size + o);
        }
    }
}
