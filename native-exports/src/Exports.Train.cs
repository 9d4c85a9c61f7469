using System.Runtime.InteropServices;
using HpCnn.Training;

namespace HpCnn.Native;

public static unsafe partial class Exports
{
    private static NativeFitOptions OptionsOf(nint h) => Handles.Get<NativeFitOptions>(h, "options");

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_create")]
    public static int FitOptionsCreate(nint* @out)
    {
        try { CheckOut(@out, "out"); *@out = Handles.Add(new NativeFitOptions()); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_release")]
    public static void FitOptionsRelease(nint options)
    {
        try { Handles.Remove<NativeFitOptions>(options); }
        catch (Exception e) { Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_epochs")]
    public static int FitOptionsSetEpochs(nint options, int epochs)
    {
        try
        {
            if (epochs < 1) throw new ArgumentException($"epochs must be at least 1, got {epochs}");
            OptionsOf(options).Epochs = epochs;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_batch_size")]
    public static int FitOptionsSetBatchSize(nint options, int batch)
    {
        try
        {
            if (batch < 1) throw new ArgumentException($"batch size must be at least 1, got {batch}");
            OptionsOf(options).BatchSize = batch;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_shuffle")]
    public static int FitOptionsSetShuffle(nint options, int shuffle)
    {
        try { OptionsOf(options).Shuffle = shuffle != 0; return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_seed")]
    public static int FitOptionsSetSeed(nint options, ulong seed)
    {
        try { OptionsOf(options).Seed = seed; return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_threads")]
    public static int FitOptionsSetThreads(nint options, int threads)
    {
        try
        {
            if (threads < 1 || threads > 256) throw new ArgumentException($"threads must be between 1 and 256, got {threads}");
            OptionsOf(options).Threads = threads;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_validation")]
    public static int FitOptionsSetValidation(nint options, nint validation)
    {
        try
        {
            OptionsOf(options).Validation = validation == 0 ? null : Handles.Get<NativeDataset>(validation, "validation");
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_validation_split")]
    public static int FitOptionsSetValidationSplit(nint options, double fraction)
    {
        try
        {
            if (!(fraction > 0 && fraction < 1)) throw new ArgumentException($"validation split must be in (0, 1), got {fraction}");
            OptionsOf(options).ValidationSplit = fraction;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_early_stopping")]
    public static int FitOptionsSetEarlyStopping(nint options, int patience, double minDelta, int monitorAccuracy, int restoreBest)
    {
        try
        {
            if (patience < 1) throw new ArgumentException($"patience must be at least 1, got {patience}");
            if (!(minDelta >= 0)) throw new ArgumentException($"min_delta must be >= 0, got {minDelta}");
            OptionsOf(options).EarlyStopping = new EarlyStopping(patience, minDelta, monitorAccuracy != 0, restoreBest != 0);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_callbacks")]
    public static int FitOptionsSetCallbacks(nint options, nint onEpoch, nint onBatch, nint user)
    {
        try
        {
            var o = OptionsOf(options);
            o.OnEpoch = onEpoch; o.OnBatch = onBatch; o.User = user;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_batch_callback_interval")]
    public static int FitOptionsSetBatchCallbackInterval(nint options, double seconds)
    {
        try
        {
            var o = OptionsOf(options);
            if (!(seconds >= 0 && seconds <= 86400))
                throw new ArgumentOutOfRangeException(nameof(seconds), $"fit: the batch callback interval must be 0-86400 seconds, got {seconds}");
            o.BatchCallbackSeconds = seconds;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit")]
    public static int Fit(nint model, nint train, nint options, int* epochsOut)
    {
        try
        {
            var m = ModelOf(model);
            var data = DataOf(train, "train");
            var o = options == 0 ? new NativeFitOptions() : OptionsOf(options);
            using var cts = new CancellationTokenSource();
            var fit = new FitOptions
            {
                Epochs = o.Epochs,
                BatchSize = o.BatchSize,
                Shuffle = o.Shuffle,
                Seed = o.Seed,
                Threads = o.Threads,
                Validation = o.Validation?.Data,
                ValidationSplit = o.ValidationSplit,
                EarlyStopping = o.EarlyStopping,
                Cancellation = cts.Token,
                CheckpointDirectory = o.CheckpointDirectory,
                CheckpointEveryBatches = o.CheckpointEveryBatches,
                CheckpointInterval = o.CheckpointInterval,
                Resume = o.Resume,
                CheckData = o.CheckData,
                Distributed = o.Distributed,
            };
            if (o.OnMessage != 0)
            {
                var cb = (delegate* unmanaged<nint, byte*, void>)o.OnMessage;
                nint user = o.MessageUser;
                fit.OnMessage = text =>
                {
                    nint p = Utf8.Alloc(text);
                    try { cb(user, (byte*)p); }
                    finally { NativeMemory.Free((void*)p); }
                };
            }
            if (o.OnEpoch != 0)
            {
                var cb = (delegate* unmanaged<nint, int, int, double, double, double, double, double, double, int>)o.OnEpoch;
                nint user = o.User;
                int epochs = o.Epochs;
                fit.OnEpochEnd = e =>
                {
                    if (cb(user, e.Epoch, epochs, e.TrainLoss, e.TrainAccuracy, e.ValLoss ?? double.NaN, e.ValAccuracy ?? double.NaN,
                            e.Seconds, e.SamplesPerSecond) != 0)
                        cts.Cancel();
                };
            }
            if (o.OnBatch != 0)
            {
                var cb = (delegate* unmanaged<nint, int, int, int, int, double, double, int>)o.OnBatch;
                nint user = o.User;
                long interval = (long)(o.BatchCallbackSeconds * System.Diagnostics.Stopwatch.Frequency), last = System.Diagnostics.Stopwatch.GetTimestamp();
                fit.OnBatchEnd = p =>
                {
                    if (interval > 0 && p.Batch > 1 && p.Batch < p.Batches) // an epoch's first and last batches always call
                    {
                        long now = System.Diagnostics.Stopwatch.GetTimestamp();
                        if (now - last < interval) return true;
                        last = now;
                    }
                    return cb(user, p.Epoch, p.Epochs, p.Batch, p.Batches, p.RunningLoss, p.RunningAccuracy) == 0;
                };
            }
            o.LastHistory = null;
            var history = m.Fit(data, fit);
            o.LastHistory = history;
            if (epochsOut != null) *epochsOut = history.Epochs.Count;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_evaluate")]
    public static int Evaluate(nint model, nint data, int batchSize, double* loss, double* accuracy)
    {
        try
        {
            CheckOut(loss, "out_loss"); CheckOut(accuracy, "out_accuracy");
            var ev = ModelOf(model).Evaluate(DataOf(data, "data"), batchSize > 0 ? batchSize : 256);
            *loss = ev.Loss;
            *accuracy = ev.Accuracy;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_train_batch")]
    public static int TrainBatch(nint model, float* images, int* labels, long n, double* lossOut)
    {
        try
        {
            var m = ModelOf(model);
            int count = CheckCount(n, "n");
            var x = Buffer(images, (long)count * m.InputShape.Size, (long)count * m.InputShape.Size, "images", "");
            var y = Buffer(labels, count, count, "labels", "");
            double loss = m.TrainBatch(x, y);
            if (lossOut != null) *lossOut = loss;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }
}
