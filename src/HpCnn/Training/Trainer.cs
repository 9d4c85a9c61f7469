using System.Diagnostics;
using System.Runtime.InteropServices;
using HpCnn.Data;
using HpCnn.Distributed;

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
        var comm = _o.Communicator ?? (_o.Distributed switch { false => null, true => Mpi.World, null => Mpi.Launched ? Mpi.World : null });
        if (comm is not null) BatchLayout.CheckRanks(comm.Size);
        Peers? peers = comm is { Size: > 1 } ? new Peers(comm) : null;
        // A fit with its own thread count gets a pool of its own for its duration (and the plan that goes with it).
        WorkerPool? own = _o.Threads is int t && t != WorkerPool.Shared.ThreadCount ? new WorkerPool(t) : null;
        try
        {
            return Epochs(own, peers);
        }
        catch (Exception e) when (peers is not null)
        {
            // The other ranks would wait for this one in their next collective: end them all, with the reason.
            peers.Comm.Abort($"fit failed: {e.GetType().Name}: {e.Message}", 1);
            throw;
        }
        finally
        {
            own?.Dispose();
        }
    }

    /// <summary>
    /// A distributed fit's collectives besides the gradients' (<see cref="BatchLayout"/>): per-rank figures summed in rank
    /// order and decisions every rank takes alike, timed into <see cref="Seconds"/>.
    /// </summary>
    private sealed class Peers(ICommunicator comm) : ICommunicator
    {
        private readonly double[] _all = new double[3 * comm.Size];
        private readonly Stopwatch _clock = new();

        public ICommunicator Comm => comm;
        public int Rank => comm.Rank;
        public int Size => comm.Size;
        public double Seconds => _clock.Elapsed.TotalSeconds;

        public void AllGather(Span<byte> all, ReadOnlySpan<int> counts, ReadOnlySpan<int> offsets)
        {
            _clock.Start();
            comm.AllGather(all, counts, offsets);
            _clock.Stop();
        }

        public void Broadcast(Span<byte> data, int root)
        {
            _clock.Start();
            comm.Broadcast(data, root);
            _clock.Stop();
        }

        public void Abort(string message, int exitCode) => comm.Abort(message, exitCode);

        /// <summary>Each rank's three figures summed over the ranks in rank order (the same bits on every rank).</summary>
        public (double A, double B, double C) Sum(double a, double b, double c)
        {
            int r = Rank;
            _all[3 * r] = a; _all[3 * r + 1] = b; _all[3 * r + 2] = c;
            this.AllGatherBlocks(MemoryMarshal.AsBytes(_all.AsSpan()));
            double sa = 0, sb = 0, sc = 0;
            for (int i = 0; i < Size; i++) { sa += _all[3 * i]; sb += _all[3 * i + 1]; sc += _all[3 * i + 2]; }
            return (sa, sb, sc);
        }

        /// <summary>True on every rank when <paramref name="a"/> or <paramref name="b"/> is true on any.</summary>
        public (bool A, bool B) Any(bool a, bool b)
        {
            var (x, y, _) = Sum(a ? 1 : 0, b ? 1 : 0, 0);
            return (x > 0, y > 0);
        }

        /// <summary>
        /// Refuses (on every rank alike) a run whose ranks hold different data, options or starting weights: they would train
        /// apart without an error.
        /// </summary>
        public void CheckSame(ulong data, ulong options, ulong weights)
        {
            var all = new ulong[3 * Size];
            all[3 * Rank] = data; all[3 * Rank + 1] = options; all[3 * Rank + 2] = weights;
            this.AllGatherBlocks(MemoryMarshal.AsBytes(all.AsSpan()));
            for (int i = 0; i < Size; i++)
            {
                string? what = all[3 * i] != data ? "training or validation data"
                    : all[3 * i + 1] != options ? "fit options (epochs, batch size, seed, shuffle, validation size)"
                    : all[3 * i + 2] != weights ? "model (architecture or starting weights: build it with the same seed on every rank)"
                    : null;
                if (what is not null)
                    throw new ArgumentException($"fit: the processes of this distributed run have different {what} (rank {i} and rank {Rank}); every rank must load the same");
            }
        }
    }

    private TrainingHistory Epochs(WorkerPool? pool, Peers? peers)
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
        // In a distributed run every rank reads the checkpoints to resume from; rank 0 alone writes them.
        bool lead = peers is null || peers.Rank == 0;
        string? dir = lead ? o.CheckpointDirectory : null;

        var s = o.Resume ? Resume(history, lead ? o.OnMessage : _ => { }) : null;
        ExecutionPlan? split = null;
        if (peers is not null)
        {
            peers.CheckSame(FitState.Fingerprint(train) ^ FitState.Fingerprint(_validation),
                Rng.Mix(Rng.Mix((ulong)o.Epochs, (ulong)o.BatchSize), Rng.Mix(seed, (o.Shuffle ? 1UL : 0) | ((ulong)(_validation?.Count ?? 0) << 1))),
                WeightsDigest(model) ^ (ulong)model.Optimizer!.Steps);
            // One plan for the fit, its batches split over the ranks.
            split = new ExecutionPlan(model, batchSize, training: true, pool: pool, comm: peers);
            history.Ranks = peers.Size;
        }
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
            var plan = split ?? model.TrainingPlan(batchSize, pool);
            var sw = Stopwatch.StartNew();
            bool stop = false;
            for (int bi = s.NextBatch; bi < batches; bi++)
            {
                int start = bi * batchSize, b = Math.Min(batchSize, count - start);
                if (start + b < count) Prefetch(train, order.AsSpan(start + b, Math.Min(batchSize, count - start - b)));
                double loss = TrainGathered(plan, train, order.AsSpan(start, b), optimizer, lr, out int c);
                if (peers is not null && plan.Layout.Split)
                {
                    // The batch's loss and hits over all ranks (each rank's loss is the mean over its images; a batch too
                    // small to split was computed whole on every rank).
                    var (lossSum, hits, _) = peers.Sum(loss * plan.Batch, c, 0);
                    loss = lossSum / b;
                    c = (int)hits;
                }
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
                if (peers is not null && peers.Any(stop, history.StopReason == "cancelled") is var (anyStop, anyCancel) && anyStop)
                {
                    // A stop on any rank stops every rank after the same batch.
                    stop = true;
                    history.StopReason ??= anyCancel ? "cancelled" : "stopped by callback";
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
                // Rank 0 validates and tells the others (the same weights everywhere: the same figures).
                double[] figures = [0, 0];
                if (lead)
                {
                    var ev = model.Evaluate(_validation, o.EvaluationBatchSize);
                    figures = [ev.Loss, ev.Accuracy];
                }
                peers?.Broadcast(MemoryMarshal.AsBytes(figures.AsSpan()), 0);
                valLoss = figures[0];
                valAcc = figures[1];
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
            bool cancel = !stop && o.Cancellation.IsCancellationRequested;
            if (peers is not null) cancel = peers.Any(cancel, false).A;
            if (cancel)
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
        if (peers is not null) history.CommunicationSeconds = peers.Seconds;
        return history;
    }

    /// <summary>A digest of every parameter's values (ranks of a distributed run must start from the same weights).</summary>
    private static ulong WeightsDigest(Sequential model)
    {
        var hash = new System.IO.Hashing.XxHash64();
        foreach (var layer in model.Layers)
            foreach (var p in layer.Parameters) hash.Append(MemoryMarshal.AsBytes(p.Value.AsSpan()));
        return hash.GetCurrentHashAsUInt64();
    }

    /// <summary>
    /// Loads the newest good checkpoint of the checkpoint folder into the model and returns the fit state to continue
    /// from (null: none there, start afresh). Refuses a checkpoint of another network, batch size, seed or data.
    /// </summary>
    /// <param name="history">receives the epochs before the resume and where it resumed from</param>
    /// <param name="onMessage">where notices go (ranks other than 0 of a distributed run: nowhere, rank 0 tells them)</param>
    private FitState? Resume(TrainingHistory history, Action<string>? onMessage)
    {
        var o = _o;
        if (o.CheckpointDirectory is not { } dir) throw new ArgumentException("fit: resume needs a checkpoint directory (FitOptions.CheckpointDirectory)");
        var ck = Checkpoint.TryLoad(dir, onMessage, long.MaxValue); // the model in memory already has this cost
        if (ck is null)
        {
            Checkpoint.Notify(onMessage, $"no checkpoint in {dir} yet: training from the start");
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
        Checkpoint.Notify(onMessage, $"resuming from {ck.FilePath}: epoch {s.Epoch}, batch {(s.Shuffled ? s.NextBatch : 0)}, {model.Optimizer.Steps} steps done");
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
        int size = data.Shape.Size;
        plan.SetBatch(indices.Length);
        // This process's images of the batch (all of them outside a distributed run).
        indices = indices.Slice(plan.Layout.Offset, plan.Batch);
        var input = plan.Input;
        for (int j = 0; j < indices.Length; j++)
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
