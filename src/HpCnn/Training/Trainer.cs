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
        if (options.CheckpointEveryBatches < 0) throw new ArgumentOutOfRangeException(nameof(options), $"fit: checkpoint every {options.CheckpointEveryBatches} batches: give 0 (epoch ends only) or more");
        if (options.CheckpointInterval is { } every && every <= TimeSpan.Zero) throw new ArgumentOutOfRangeException(nameof(options), $"fit: checkpoint interval must be positive, got {every}");
        if (options.CheckpointDirectory is "") throw new ArgumentException("fit: the checkpoint directory is an empty string");
        if (options.CheckData)
        {
            CheckFinite(_train, "training data");
            if (_validation is not null) CheckFinite(_validation, "validation data");
        }
    }

    /// <summary>"NaN", "+infinity", "-infinity" whatever the culture (.NET writes infinity as "∞" in most).</summary>
    private static string Name(double v) => double.IsNaN(v) ? "NaN" : v > 0 ? "+infinity" : "-infinity";

    /// <summary>Refuses data holding NaN or infinity, naming the first bad sample and where in it.</summary>
    internal static void CheckFinite(Dataset d, string what)
    {
        var images = d.Images.AsSpan();
        if (float.IsFinite(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude<float>(images))) return;
        int size = d.Shape.Size;
        for (int i = 0; i < images.Length; i++)
        {
            if (float.IsFinite(images[i])) continue;
            int sample = i / size, at = i % size, plane = d.Shape.H * d.Shape.W;
            int bad = 0;
            foreach (float v in images) if (!float.IsFinite(v)) bad++;
            throw new ArgumentException($"{what}: sample {sample} holds {Name(images[i])} at channel {at / plane}, row {at % plane / d.Shape.W}, column {at % d.Shape.W} " +
                $"({bad} non-finite value(s) in all); clean the data (or turn the check off to train anyway)");
        }
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
        ulong seed = o.Seed ?? model.Seed;
        string? dir = o.CheckpointDirectory;

        var s = o.Resume ? Resume(history) : null;
        Rng rng;
        if (s is null)
        {
            s = new FitState
            {
                BatchSize = o.BatchSize, Shuffle = o.Shuffle, ShuffleSeed = seed, TrainCount = count, ValidationCount = _validation?.Count ?? 0,
                Order = new int[count],
            };
            for (int i = 0; i < count; i++) s.Order[i] = i;
            if (dir is not null)
            {
                s.TrainFingerprint = FitState.Fingerprint(train);
                s.ValidationFingerprint = FitState.Fingerprint(_validation);
            }
            rng = new Rng(Rng.Mix(seed, (ulong)model.EpochsTrained + 0x5EED));
        }
        else
        {
            rng = new Rng(0) { State = s.Rng };
        }
        s.EpochsRequested = o.Epochs;
        var order = s.Order;
        long nextSequence = dir is null ? 0 : Checkpoint.NextSequence(dir);
        var sinceCheckpoint = System.Diagnostics.Stopwatch.StartNew();
        int batchesSinceCheckpoint = 0;

        void WriteCheckpoint()
        {
            s.Rng = rng.State;
            s.Sequence = nextSequence++;
            history.LastCheckpoint = Checkpoint.Write(dir!, model, s);
            history.CheckpointsWritten++;
            sinceCheckpoint.Restart();
            batchesSinceCheckpoint = 0;
        }

        while (!s.Finished && s.Epoch <= o.Epochs)
        {
            int epoch = s.Epoch;
            if (!s.Shuffled)
            {
                if (o.Shuffle) rng.Shuffle(order);
                s.Shuffled = true;
            }
            float lr = optimizer.LearningRateAt(model.EpochsTrained);
            var plan = model.TrainingPlan(batchSize, pool);
            var sw = Stopwatch.StartNew();
            bool stop = false;
            for (int bi = s.NextBatch; bi < batches; bi++)
            {
                int start = bi * batchSize, b = Math.Min(batchSize, count - start);
                if (start + b < count) Prefetch(train, order.AsSpan(start + b, Math.Min(batchSize, count - start - b)));
                double loss = TrainGathered(plan, train, order.AsSpan(start, b), optimizer, lr, out int c);
                if (!double.IsFinite(loss))
                    throw new ArithmeticException($"fit: the loss became {Name(loss)} in epoch {epoch}, batch {bi + 1}: training diverged, lower the learning rate (now {lr})" +
                        (history.LastCheckpoint ?? LastGood(dir)) switch { { } last => $"; the last good checkpoint, {last}, is kept", null => "" });
                s.LossSum += loss * b;
                s.Correct += c;
                s.Seen += b;
                s.NextBatch = bi + 1;
                batchesSinceCheckpoint++;
                if (o.OnBatchEnd is { } cb &&
                    !cb(new BatchProgress(epoch, o.Epochs, bi + 1, batches, s.Seen, count, s.LossSum / s.Seen, (double)s.Correct / s.Seen, s.Seconds + sw.Elapsed.TotalSeconds)))
                {
                    history.StopReason = "stopped by callback";
                    stop = true;
                }
                if (o.Cancellation.IsCancellationRequested)
                {
                    history.StopReason = "cancelled";
                    stop = true;
                }
                bool due = (o.CheckpointEveryBatches > 0 && batchesSinceCheckpoint >= o.CheckpointEveryBatches)
                    || (o.CheckpointInterval is { } every && sinceCheckpoint.Elapsed >= every);
                // The epoch's last batch is followed by the end-of-epoch checkpoint.
                if (dir is not null && bi + 1 < batches && (due || stop))
                {
                    s.Seconds += sw.Elapsed.TotalSeconds;
                    sw.Restart();
                    WriteCheckpoint();
                }
                if (stop) break;
            }
            sw.Stop();
            s.Seconds += sw.Elapsed.TotalSeconds;
            if (stop && s.Seen < count) break; // a partial epoch is not an epoch: report only completed ones
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
            var m = new EpochMetrics(epoch, s.LossSum / s.Seen, (double)s.Correct / s.Seen, valLoss, valAcc,
                s.Seconds, s.Seen / Math.Max(s.Seconds, 1e-9), lr, vsw.Elapsed.TotalSeconds);
            history.Epochs.Add(m);
            s.History.Add(m);
            s.Epoch++;
            s.NextBatch = 0;
            s.Shuffled = false;
            s.LossSum = 0;
            s.Correct = 0;
            s.Seen = 0;
            s.Seconds = 0;
            o.OnEpochEnd?.Invoke(m);
            if (!stop && o.Cancellation.IsCancellationRequested)
            {
                history.StopReason = "cancelled";
                stop = true;
            }

            // Early stopping's bookkeeping runs even when this epoch ends the fit: the checkpoint must hold it for a resume.
            if (o.EarlyStopping is { } es && _validation is not null)
            {
                double metric = es.MonitorAccuracy ? -valAcc!.Value : valLoss!.Value;
                if (double.IsNaN(s.BestMetric) || metric < s.BestMetric - es.MinDelta)
                {
                    s.BestMetric = metric;
                    s.SinceBest = 0;
                    s.BestEpoch = epoch;
                    if (es.RestoreBestWeights) s.BestWeights = model.CopyParameterValues();
                }
                else if (++s.SinceBest >= es.Patience)
                {
                    history.StopReason = s.StopReason = "early stopping";
                    if (es.RestoreBestWeights && s.BestWeights is not null)
                    {
                        model.SetParameterValues(s.BestWeights);
                        history.RestoredEpoch = s.RestoredEpoch = s.BestEpoch;
                    }
                    s.Finished = true;
                }
            }
            if (dir is not null) WriteCheckpoint();
            if (stop || s.Finished) break;
        }
        return history;
    }

    /// <summary>
    /// Loads the newest good checkpoint of the checkpoint folder into the model and returns the fit state to continue
    /// from (null: none there, start afresh). Refuses a checkpoint of another network, batch size, seed or data.
    /// </summary>
    private FitState? Resume(TrainingHistory history)
    {
        var o = _o;
        if (o.CheckpointDirectory is not { } dir) throw new ArgumentException("fit: resume needs a checkpoint directory (FitOptions.CheckpointDirectory)");
        var ck = Checkpoint.TryLoad(dir, o.OnMessage, long.MaxValue); // the model in memory already has this cost
        if (ck is null)
        {
            Checkpoint.Notify(o.OnMessage, $"no checkpoint in {dir} yet: training from the start");
            return null;
        }
        var s = ck.State;
        var model = _model;
        string mine = IO.NetworkSpec.ToJson(model, indented: false), theirs = IO.NetworkSpec.ToJson(ck.Model, indented: false);
        if (mine != theirs)
            throw new ArgumentException($"fit: checkpoint {ck.FilePath} is of another network or optimizer:\n  checkpoint: {theirs}\n  this model: {mine}");
        ulong seed = o.Seed ?? model.Seed;
        void Same<T>(string what, T checkpoint, T now)
        {
            if (!EqualityComparer<T>.Default.Equals(checkpoint, now))
                throw new ArgumentException($"fit: checkpoint {ck.FilePath} was written by a fit with {what} {checkpoint}, this fit has {now}: a resume must repeat the options and data of the run");
        }
        Same("batch size", s.BatchSize, o.BatchSize);
        Same("shuffle", s.Shuffle, o.Shuffle);
        Same("seed", s.ShuffleSeed, seed);
        Same("training samples", s.TrainCount, _train.Count);
        Same("validation samples", s.ValidationCount, _validation?.Count ?? 0);
        if (s.TrainFingerprint != FitState.Fingerprint(_train))
            throw new ArgumentException($"fit: checkpoint {ck.FilePath} was written while training on other data (same count, different images or labels)");
        if (s.ValidationFingerprint != FitState.Fingerprint(_validation))
            throw new ArgumentException($"fit: checkpoint {ck.FilePath} was written with other validation data");

        model.SetParameterValues(ck.Model.CopyParameterValues());
        var from = IO.ModelFile.Tensors(ck.Model);
        var to = IO.ModelFile.Tensors(model);
        for (int i = 0; i < to.Count; i++)
        {
            to[i].Param.Moment1 = from[i].Param.Moment1;
            to[i].Param.Moment2 = from[i].Param.Moment2;
        }
        model.Optimizer!.Steps = ck.Model.Optimizer!.Steps;
        model.EpochsTrained = ck.Model.EpochsTrained;
        history.ResumedFrom = ck.FilePath;
        history.ResumedEpochs = s.History.Count;
        history.Epochs.AddRange(s.History);
        history.StopReason = s.StopReason;
        if (s.RestoredEpoch > 0) history.RestoredEpoch = s.RestoredEpoch;
        Checkpoint.Notify(o.OnMessage, $"resuming from {ck.FilePath}: epoch {s.Epoch}, batch {(s.Shuffled ? s.NextBatch : 0)}, {model.Optimizer.Steps} steps done");
        return s;
    }

    private static string? LastGood(string? dir) => dir is null ? null : Checkpoint.List(dir).LastOrDefault();

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
