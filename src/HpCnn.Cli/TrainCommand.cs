using System.CommandLine;
using System.Globalization;
using System.Diagnostics;
using HpCnn.Data;
using HpCnn.Distributed;
using HpCnn.IO;
using HpCnn.Presets;
using HpCnn.Training;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace HpCnn.Cli;

/// <summary>hpcnn train: trains a preset or a spec-file network on Fashion-MNIST with live progress.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var net = new Option<string?>("--net") { Description = "Network: a preset (reference, seed-binary, seed-mse, deep, deep-cifar10) or a JSON spec file", HelpName = "NAME|FILE" };
        var epochs = new Option<int?>("--epochs") { Description = "Epochs (default: the preset's)", HelpName = "N" };
        var batch = new Option<int?>("--batch-size") { Description = "Mini-batch size (default: the preset's; 1 = per-sample SGD)", HelpName = "N" };
        var lr = new Option<float?>("--lr") { Description = "Learning rate (default: the preset's)", HelpName = "X" };
        var seed = new Option<ulong?>("--seed") { Description = "Seed of the initial weights and the shuffling (default 42)", HelpName = "N" };
        var metrics = new Option<string?>("--metrics-json") { Description = "Write per-epoch metrics to this JSON file", HelpName = "FILE" };
        var output = new Option<string?>("--out") { Description = "Save the trained model (and its initial weights) to this file", HelpName = "MODEL" };
        var quiet = new Option<bool>("--quiet", "-q") { Description = "No progress display; print only the final result" };
        var limit = new Option<int?>("--limit") { Description = "Use only the first N training images of the task (quick runs)", HelpName = "N" };
        var classes = new Option<string?>("--classes") { Description = "Train on these classes only, e.g. 1,3 (relabelled 0..k-1)", HelpName = "LIST" };
        var checkpointDir = new Option<string?>("--checkpoint-dir")
        {
            Description = "Write crash-safe checkpoints here (at every epoch end, on Ctrl+C and per --checkpoint-every; the two newest are kept)",
            HelpName = "DIR",
        };
        var checkpointEvery = new Option<string?>("--checkpoint-every")
        {
            Description = $"How often to checkpoint besides epoch ends: N batches (200) or a time (30s, 5m, 1h); default {DefaultCheckpointEvery}",
            HelpName = "N|TIME",
        };
        var resume = new Option<string?>("--resume")
        {
            Description = "Continue the run whose checkpoints are in DIR (its network, data and options come from the checkpoint)",
            HelpName = "DIR",
        };
        var noCheckData = new Option<bool>("--no-check-data") { Description = "Skip the check for NaN or infinite input values before training" };
        var dataset = Shared.DatasetOption("default fashion-mnist, or folder when --image-size or --channels is given");
        var imageSize = new Option<string?>("--image-size")
        {
            Description = "Image folder: resize every image to HEIGHTxWIDTH pixels, e.g. 32x32 (default: the network's input size)",
            HelpName = "HxW",
        };
        var channels = new Option<int?>("--channels") { Description = "Image folder: 1 (gray) or 3 (RGB) (default: the network's input channels)", HelpName = "1|3" };
        var validationSplit = new Option<double?>("--validation-split")
        {
            Description = "Image folder: the fraction of the images, shuffled with --seed, that validates (default 0.2)",
            HelpName = "F",
        };
        var skipUnreadable = new Option<bool>("--skip-unreadable") { Description = "Image folder: leave out files that cannot be decoded, with a warning naming each (default: fail, naming them all)" };
        var maxMemory = new Option<long?>("--max-memory-mb")
        {
            Description = "Image folder: refuse a folder whose decoded images would take more than N MiB (default: half the memory available)",
            HelpName = "N",
        };
        var distributed = new Option<string>("--distributed")
        {
            Description = "Under mpirun -np N: split every batch over the N processes (the weights equal one process's, bit for bit; rank 0 alone prints and writes files). " +
                "auto (default): when started by mpirun with N > 1; on: require MPI; off: each process trains alone",
            HelpName = "auto|on|off",
            DefaultValueFactory = _ => "auto",
        };
        distributed.AcceptOnlyFromAmong("auto", "on", "off");
        var dataDir = Shared.DataDir();
        var threads = Shared.Threads();
        var cmd = new Command("train", "Train a network on Fashion-MNIST, MNIST or CIFAR-10")
        {
            net, epochs, batch, lr, seed, metrics, output, quiet, limit, classes, checkpointDir, checkpointEvery, resume, noCheckData, dataset, dataDir, threads,
            distributed, imageSize, channels, validationSplit, skipUnreadable, maxMemory,
        };
        cmd.SetAction(r => Run(new Args(r.GetValue(net), r.GetValue(epochs), r.GetValue(batch), r.GetValue(lr), r.GetValue(seed),
            r.GetValue(metrics), r.GetValue(output), r.GetValue(quiet), r.GetValue(limit), Shared.ParseClasses(r.GetValue(classes)),
            r.GetValue(dataDir), r.GetValue(threads), r.GetValue(checkpointDir), r.GetValue(checkpointEvery), r.GetValue(noCheckData), r.GetValue(dataset),
            r.GetValue(imageSize), r.GetValue(channels), r.GetValue(validationSplit), r.GetValue(skipUnreadable), r.GetValue(maxMemory)), r.GetValue(resume),
            r.GetValue(distributed) switch { "on" => true, "off" => false, _ => null }));
        return cmd;
    }

    private const string DefaultCheckpointEvery = "5m";

    /// <summary>The command's settings; kept in checkpoints (<see cref="ModelMetadata.TrainArgs"/>) so --resume repeats them.</summary>
    internal sealed record Args(string? Net, int? Epochs, int? BatchSize, float? Lr, ulong? Seed, string? MetricsJson, string? Out,
        bool Quiet, int? Limit, int[]? Classes, string? DataDir, int? Threads, string? CheckpointDir, string? CheckpointEvery, bool NoCheckData, string? Dataset = null,
        string? ImageSize = null, int? Channels = null, double? ValidationSplit = null, bool SkipUnreadable = false, long? MaxMemoryMb = null);

    /// <summary>"32x32" (height x width, as Keras' image_size) as (H, W).</summary>
    internal static (int H, int W) ParseImageSize(string text)
    {
        var parts = text.Trim().ToLowerInvariant().Split('x');
        if (parts.Length == 2 && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int h)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int w) && h > 0 && w > 0)
            return (h, w);
        throw new CliException($"--image-size takes HEIGHTxWIDTH in pixels (e.g. 32x32), got '{text}'", ExitCodes.Usage);
    }

    /// <summary>"200" is batches; "30s", "5m", "1.5h" a time.</summary>
    internal static (int Batches, TimeSpan? Interval) ParseCheckpointEvery(string text)
    {
        string t = text.Trim();
        if (int.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n > 0) return (n, null);
        if (t.Length > 1 && "smh".Contains(t[^1]) && double.TryParse(t[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && v > 0 && v < 1e6)
            return (0, t[^1] switch { 's' => TimeSpan.FromSeconds(v), 'm' => TimeSpan.FromMinutes(v), _ => TimeSpan.FromHours(v) });
        throw new CliException($"--checkpoint-every takes a number of batches (e.g. 200) or a time (30s, 5m, 1h), got '{text}'", ExitCodes.Usage);
    }

    /// <param name="distributed">--distributed: null (auto), true (on), false (off); as <see cref="FitOptions.Distributed"/></param>
    private static int Run(Args given, string? resumeDir, bool? distributed)
    {
        Shared.ApplyThreads(given.Threads);
        // Every rank runs this whole command; rank 0 alone speaks and writes files (the others hold the same weights and
        // figures). Mpi.Rank and Mpi.Size come from mpirun's environment: MPI itself starts inside Fit.
        bool ranked = distributed ?? Mpi.Launched;
        bool lead = !ranked || Mpi.Rank == 0;
        if (!lead) given = given with { Quiet = true };
        var a = given;
        Checkpoint? resumed = null;
        if (resumeDir is not null)
        {
            if (given with { Quiet = false, Threads = null, DataDir = null, NoCheckData = false } != new Args(null, null, null, null, null, null, null, false, null, null, null, null, null, null, false))
                throw new CliException("--resume continues a run with the settings it was started with (they are in the checkpoint); only --threads, --quiet, --data-dir and --no-check-data may be given with it", ExitCodes.Usage);
            try
            {
                resumed = Checkpoint.Load(resumeDir, m => { if (lead) Console.Error.WriteLine($"hpcnn: {m}"); }, Shared.MaxFlopsPerImage);
            }
            catch (FileNotFoundException e)
            {
                throw new CliException($"--resume: {e.Message}");
            }
            var saved = ModelMetadata.FromModel(resumed.Model).TrainArgs
                ?? throw new CliException($"--resume: {resumed.FilePath} was not written by `hpcnn train` (it has no command settings); resume it from code with FitOptions.Resume");
            a = saved with { Quiet = given.Quiet, Threads = given.Threads, DataDir = given.DataDir ?? saved.DataDir, NoCheckData = given.NoCheckData, CheckpointDir = resumeDir };
        }
        else if (a.Net is null)
        {
            throw new CliException("give --net NAME|FILE (or --resume DIR to continue a checkpointed run)", ExitCodes.Usage);
        }
        if (a.Epochs is < 1) throw new CliException($"--epochs must be at least 1, got {a.Epochs}", ExitCodes.Usage);
        if (a.BatchSize is < 1) throw new CliException($"--batch-size must be at least 1, got {a.BatchSize}", ExitCodes.Usage);
        if (a.Lr is float l && !(l > 0)) throw new CliException($"--lr must be positive, got {l}", ExitCodes.Usage);
        if (a.Limit is < 1) throw new CliException($"--limit must be at least 1, got {a.Limit}", ExitCodes.Usage);
        if (a.Out is { } o && Path.GetDirectoryName(Path.GetFullPath(o)) is { } od && !Directory.Exists(od))
            throw new CliException($"--out: folder {od} does not exist", ExitCodes.Usage);
        if (a.CheckpointEvery is not null && a.CheckpointDir is null) throw new CliException("--checkpoint-every needs --checkpoint-dir DIR", ExitCodes.Usage);
        if (a.CheckpointDir is { } cd && File.Exists(cd)) throw new CliException($"--checkpoint-dir {cd} is a file, not a folder", ExitCodes.Usage);
        var (everyBatches, everyInterval) = a.CheckpointDir is null ? (0, null) : ParseCheckpointEvery(a.CheckpointEvery ?? DefaultCheckpointEvery);
        ulong seedValue = a.Seed ?? 42;

        Sequential model;
        DataRecipe recipe;
        int epochs, batch;
        string name;
        float[][] initial;
        if (resumed is not null)
        {
            model = resumed.Model;
            recipe = Shared.RecipeFor(a.Net!);
            epochs = resumed.EpochsRequested;
            batch = resumed.BatchSize;
            name = ModelMetadata.FromModel(model).Network ?? a.Net!;
            // The weights before training come from the seed: the checkpoint's architecture built afresh.
            initial = NetworkSpec.Parse(NetworkSpec.ToJson(model), maxFlopsPerImage: long.MaxValue).Model.CopyParameterValues();
        }
        else
        {
            int defEpochs, defBatch;
            (model, recipe, defEpochs, defBatch, name) = Shared.ResolveNetwork(a.Net!, seedValue);
            if (a.Lr is float lr) model.Optimizer!.LearningRate = lr;
            epochs = a.Epochs ?? defEpochs;
            batch = a.BatchSize ?? defBatch;
            initial = model.CopyParameterValues();
        }
        if (a.Classes is not null) recipe = recipe with { Classes = a.Classes };

        bool folderOptions = a.ImageSize is not null || a.Channels is not null;
        string datasetName = a.Dataset ?? (folderOptions ? "folder" : "fashion-mnist");
        if (datasetName != "folder" && (folderOptions || a.ValidationSplit is not null || a.SkipUnreadable || a.MaxMemoryMb is not null))
            throw new CliException($"--image-size, --channels, --validation-split, --skip-unreadable and --max-memory-mb are for an image folder (--dataset folder), not {datasetName}", ExitCodes.Usage);
        Dataset rawTrain, rawTest;
        if (datasetName == "folder")
        {
            var (h, w) = a.ImageSize is { } size ? ParseImageSize(size) : (model.InputShape.H, model.InputShape.W);
            if (a.Channels is { } ch && ch is not (1 or 3)) throw new CliException($"--channels takes 1 (gray) or 3 (RGB), got {ch}", ExitCodes.Usage);
            var shape = new Shape3(a.Channels ?? model.InputShape.C, h, w);
            if (shape != model.InputShape)
                throw new CliException($"network {name} takes {model.InputShape} inputs; --image-size and --channels ask for {shape} (give the network's size, or a network for this one)");
            (rawTrain, rawTest) = Shared.LoadFolderSplit(a.DataDir, shape, a.ValidationSplit ?? 0.2, seedValue, a.SkipUnreadable, a.MaxMemoryMb);
        }
        else
        {
            (rawTrain, rawTest) = Shared.LoadData(datasetName, a.DataDir);
        }
        if (model.InputShape != rawTrain.Shape)
            throw new CliException($"network {name} takes {model.InputShape} inputs, {datasetName} images are {rawTrain.Shape}" +
                (datasetName == "cifar10" ? " (the deep-cifar10 preset takes them)" : ""));
        PreparedData data;
        try { data = recipe.Prepare(rawTrain, rawTest, a.Limit); }
        catch (ArgumentException e) { throw new CliException($"--limit: {e.Message}", ExitCodes.Usage); }
        if (data.Train.ClassCount > model.ClassCount)
            throw new CliException($"network {name} scores {model.ClassCount} classes, the data has {data.Train.ClassCount} (use --classes to pick {model.ClassCount})");

        var meta = new ModelMetadata
        {
            Dataset = datasetName,
            Network = name,
            Classes = data.Classes,
            TrainArgs = a with { Quiet = false, Threads = null, NoCheckData = false, Epochs = epochs, BatchSize = batch, Seed = seedValue },
        };
        var history = new List<EpochMetrics>(resumed?.History ?? []);
        meta.History.AddRange(history);
        model.Metadata = meta.ToJson(); // checkpoints carry it: --resume reads the settings back
        // The engine keeps the preprocessing with the model (its prep chunk); Fit would record the same from data.Train.
        model.Preprocessing = model.Preprocessing with { Standardization = data.Standardization, ClassNames = data.Train.ClassNames };

        // Open MPI hands every rank a pseudo-terminal even when mpirun's output goes to a file: no live display there.
        bool interactive = !a.Quiet && !Mpi.Launched && AnsiConsole.Profile.Capabilities.Interactive;
        if (!a.Quiet)
        {
            AnsiConsole.MarkupLine($"[bold]{Shared.Escape(name)}[/]: {model.ParameterCount:N0} parameters, {model.FlopsPerSample / 1e6:F2} MFLOP/image; " +
                $"{data.Train.Count:N0} training / {data.Validation.Count:N0} validation images; {epochs} epoch(s), batch {batch}, " +
                $"{Shared.Escape(model.Optimizer!.Describe())}; kernels {Engine.PathName}, {Engine.Threads} thread(s)" +
                (ranked ? $" in each of {Mpi.Size} processes" : ""));
        }

        using var cts = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            if (cts.IsCancellationRequested) return; // a second Ctrl+C ends the process
            e.Cancel = true;
            cts.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        TrainingHistory result;
        long stepsBefore = model.Optimizer!.Steps;
        var clock = Stopwatch.StartNew();
        try
        {
            var fit = new FitOptions
            {
                Epochs = epochs,
                BatchSize = batch,
                Validation = data.Validation,
                Seed = seedValue,
                Cancellation = cts.Token,
                CheckpointDirectory = a.CheckpointDir,
                CheckpointEveryBatches = everyBatches,
                CheckpointInterval = everyInterval,
                Resume = resumed is not null,
                CheckData = !a.NoCheckData,
                OnMessage = m => { if (lead) Console.Error.WriteLine($"hpcnn: {m}"); },
                Distributed = distributed,
            };
            fit.OnEpochEnd = m =>
            {
                history.Add(m);
                meta.History.Add(m);
                model.Metadata = meta.ToJson();
                if (lead && a.MetricsJson is not null) MetricsJson.Write(a.MetricsJson, history, null);
            };
            // HPCNN_TEST_BATCH_DELAY_MS: a sleep after every batch, for tests that must interrupt a run at a random
            // batch on any machine (a fast CPU finishes their small runs before a kill lands); sleeping changes no result.
            if (int.TryParse(Environment.GetEnvironmentVariable("HPCNN_TEST_BATCH_DELAY_MS"), out int delay) && delay > 0)
                fit.OnBatchEnd = _ => { Thread.Sleep(delay); return true; };
            result = interactive ? TrainWithProgress(model, data.Train, fit, epochs)
                : a.Quiet ? model.Fit(data.Train, fit)
                : TrainPlain(model, data.Train, fit);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        clock.Stop();
        var run = new FitRun(result.Ranks, model.Optimizer.Steps - stepsBefore, clock.Elapsed.TotalSeconds, result.CommunicationSeconds);

        if (!lead) return cts.IsCancellationRequested ? ExitCodes.Interrupted : ExitCodes.Ok;
        if (a.MetricsJson is not null) MetricsJson.Write(a.MetricsJson, history, result.StopReason, run);
        if (a.Out is not null)
        {
            meta.TrainArgs = null;
            model.Metadata = meta.ToJson();
            model.Save(a.Out, initial);
        }
        if (!a.Quiet && history.Count > 0) AnsiConsole.Write(EpochTable(history));
        var last = history.LastOrDefault();
        string final = last is null ? "no epoch completed"
            : string.Create(CultureInfo.InvariantCulture, $"after {history.Count} epoch(s): validation accuracy {last.ValAccuracy:F4}, loss {last.ValLoss:F4}; {history.Average(h => h.SamplesPerSecond):N0} samples/s");
        if (run.Ranks > 1) final += "; " + run.Describe();
        if (result.StopReason is not null) final += $" (stopped: {result.StopReason})";
        Console.WriteLine(final);
        if (a.Out is not null) Console.WriteLine($"saved {a.Out}");
        if (result.LastCheckpoint is not null) Console.WriteLine($"checkpoint {result.LastCheckpoint}");
        return cts.IsCancellationRequested ? ExitCodes.Interrupted : ExitCodes.Ok;
    }


    /// <summary>What a fit cost: its processes, optimizer steps, wall time and this rank's time in collectives.</summary>
    internal sealed record FitRun(int Ranks, long Steps, double Seconds, double CommunicationSeconds)
    {
        /// <summary>"2 ranks: 31 steps in 2.41 s, communication 0.12 s (3.9 ms/step, 5%)".</summary>
        public string Describe() => string.Create(CultureInfo.InvariantCulture,
            $"{Ranks} ranks: {Steps} steps in {Seconds:F2} s, communication {CommunicationSeconds:F2} s ({1000 * CommunicationSeconds / Math.Max(1, Steps):F2} ms/step, {100 * CommunicationSeconds / Math.Max(Seconds, 1e-9):F0}%)");
    }

    /// <summary>Spectre live display: one progress bar per epoch; a finished bar keeps the epoch's metrics.</summary>
    private static TrainingHistory TrainWithProgress(Sequential model, Dataset train, FitOptions fit, int epochs)
    {
        TrainingHistory? result = null;
        AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new BatchesColumn(),
                new PercentageColumn(), new RemainingTimeColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                ProgressTask? task = null;
                int taskEpoch = 0;
                var onEpoch = fit.OnEpochEnd;
                var onBatch = fit.OnBatchEnd;
                fit.OnBatchEnd = p =>
                {
                    if (task is null || taskEpoch != p.Epoch)
                    {
                        task = ctx.AddTask($"epoch {p.Epoch}/{epochs}", maxValue: p.Batches);
                        taskEpoch = p.Epoch;
                    }
                    // Redraw at most ~100 times an epoch: the description is rebuilt, which allocates.
                    if (p.Batch == p.Batches || p.Batch % Math.Max(1, p.Batches / 100) == 0)
                    {
                        task.Value = p.Batch;
                        task.Description = string.Create(CultureInfo.InvariantCulture,
                            $"epoch {p.Epoch}/{epochs}  loss {p.RunningLoss:F4}  acc {p.RunningAccuracy:F3}  {p.SamplesDone / Math.Max(p.ElapsedSeconds, 1e-9):N0}/s");
                    }
                    return onBatch?.Invoke(p) ?? true;
                };
                fit.OnEpochEnd = m =>
                {
                    onEpoch?.Invoke(m);
                    if (task is not null)
                    {
                        task.Description = string.Create(CultureInfo.InvariantCulture,
                            $"epoch {m.Epoch}/{epochs}  loss {m.TrainLoss:F4}  val_loss {m.ValLoss:F4}  [green]val_acc {m.ValAccuracy:F4}[/]  {m.SamplesPerSecond:N0}/s");
                        task.StopTask();
                    }
                };
                result = model.Fit(train, fit);
            });
        return result!;
    }

    /// <summary>Plain lines for logs and pipes: a line every 10% of an epoch and one per epoch.</summary>
    private static TrainingHistory TrainPlain(Sequential model, Dataset train, FitOptions fit)
    {
        var onEpoch = fit.OnEpochEnd;
        var onBatch = fit.OnBatchEnd;
        fit.OnBatchEnd = p =>
        {
            int step = Math.Max(1, p.Batches / 10);
            if (p.Batch % step == 0 && p.Batch != p.Batches)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  epoch {p.Epoch}/{p.Epochs}  batch {p.Batch}/{p.Batches}  loss {p.RunningLoss:F4}  acc {p.RunningAccuracy:F3}  {p.SamplesDone / Math.Max(p.ElapsedSeconds, 1e-9):N0} samples/s"));
            return onBatch?.Invoke(p) ?? true;
        };
        fit.OnEpochEnd = m =>
        {
            onEpoch?.Invoke(m);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"epoch {m.Epoch}: train_loss {m.TrainLoss:F4}  train_acc {m.TrainAccuracy:F4}  val_loss {m.ValLoss:F4}  val_acc {m.ValAccuracy:F4}  {m.Seconds:F2} s  {m.SamplesPerSecond:N0} samples/s"));
        };
        return model.Fit(train, fit);
    }

    public static Table EpochTable(IReadOnlyList<EpochMetrics> history)
    {
        var t = new Table().Border(TableBorder.Rounded)
            .AddColumns("epoch", "train loss", "train acc", "val loss", "val acc", "seconds", "samples/s");
        foreach (var c in t.Columns.Skip(1)) c.RightAligned();
        foreach (var m in history)
            t.AddRow(m.Epoch.ToString(CultureInfo.InvariantCulture), F(m.TrainLoss), F(m.TrainAccuracy), F(m.ValLoss), F(m.ValAccuracy),
                m.Seconds.ToString("F2", CultureInfo.InvariantCulture), m.SamplesPerSecond.ToString("N0", CultureInfo.InvariantCulture));
        return t;

        static string F(double? v) => v is double d ? d.ToString("F4", CultureInfo.InvariantCulture) : "-";
    }

    /// <summary>"412/938 batches".</summary>
    private sealed class BatchesColumn : ProgressColumn
    {
        public override IRenderable Render(RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Markup($"{task.Value:F0}/{task.MaxValue:F0}");
    }
}
