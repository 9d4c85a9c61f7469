using System.CommandLine;
using HpCnn.Data;
using HpCnn.IO;
using HpCnn.Presets;
using HpCnn.Training;
using Spectre.Console;

namespace HpCnn.Cli;

/// <summary>A failure to report to the user as a message and an exit code (no stack trace).</summary>
internal sealed class CliException(string message, int exitCode = ExitCodes.Failure) : Exception(message)
{
    public int ExitCode { get; } = exitCode;
}

internal static class ExitCodes
{
    public const int Ok = 0, Failure = 1, Usage = 2, Interrupted = 130;
}

/// <summary>Options several commands share, and the data/model loading they share.</summary>
internal static class Shared
{
    public static Option<string?> DataDir() => new("--data-dir")
    {
        Description = $"Folder with the dataset's files (Fashion-MNIST default {FashionMnist.DefaultDirectory}, from `apt-get install dataset-fashion-mnist`; required for mnist and cifar10)",
        HelpName = "DIR",
    };

    /// <summary>The datasets --dataset names.</summary>
    public static readonly string[] DatasetNames = ["fashion-mnist", "mnist", "cifar10", "folder"];

    public static Option<string?> DatasetOption(string defaultText) => new("--dataset")
    {
        Description = $"Dataset: fashion-mnist (IDX), mnist (IDX, same file names), cifar10 (the binary batches) or folder (--data-dir holds one subfolder of images per class); {defaultText}",
        HelpName = "NAME",
    };

    /// <summary>
    /// The training and test sets of a dataset named by --dataset, from --data-dir (Fashion-MNIST: its Debian folder by
    /// default). A folder of images is read whole at <paramref name="inputShape"/> and serves as both (eval and visualize
    /// take it as the test set; train splits it with <see cref="LoadFolderSplit"/>).
    /// </summary>
    public static (Dataset Train, Dataset Test) LoadData(string dataset, string? dataDir, Shape3? inputShape = null)
    {
        switch (dataset)
        {
            case "fashion-mnist":
                return LoadFashionMnist(dataDir);
            case "folder":
            {
                var shape = inputShape ?? throw new CliException("--dataset folder: the image size is not known");
                var all = LoadFolder(dataDir, o => ImageFolder.Load(dataDir!, shape, o), new ImageFolderOptions());
                return (all, all);
            }
            case "mnist":
            case "cifar10":
                if (dataDir is null)
                    throw new CliException($"--dataset {dataset} needs --data-dir DIR. " + (dataset == "mnist" ? Mnist.DownloadHint : Cifar10.DownloadHint), ExitCodes.Usage);
                if (!Directory.Exists(dataDir)) throw new CliException($"--data-dir {dataDir} does not exist.");
                try
                {
                    return dataset == "mnist" ? Mnist.Load(dataDir) : Cifar10.Load(dataDir);
                }
                catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException or InvalidDataException)
                {
                    throw new CliException(e.Message);
                }
            default:
                throw new CliException($"--dataset {dataset}: unknown (known: {string.Join(", ", DatasetNames)})", ExitCodes.Usage);
        }
    }

    /// <summary>
    /// An image folder split as Keras' validation_split does (shuffled with <paramref name="seed"/>, the last fraction
    /// validates); skipped files are reported on stderr.
    /// </summary>
    public static (Dataset Train, Dataset Validation) LoadFolderSplit(string? dataDir, Shape3 shape, double validationSplit, ulong seed, bool skipUnreadable, long? maxMemoryMb)
    {
        if (!(validationSplit > 0 && validationSplit < 1)) throw new CliException($"--validation-split must be between 0 and 1 (exclusive), got {validationSplit}", ExitCodes.Usage);
        if (maxMemoryMb is < 1) throw new CliException($"--max-memory-mb must be at least 1, got {maxMemoryMb}", ExitCodes.Usage);
        var options = new ImageFolderOptions
        {
            Unreadable = skipUnreadable ? UnreadableImages.Skip : UnreadableImages.Fail,
            OnWarning = m => Console.Error.WriteLine($"hpcnn: warning: {m}"),
            MaxBytes = maxMemoryMb * (1L << 20),
            Seed = seed,
        };
        return LoadFolder(dataDir, o => ImageFolder.LoadSplit(dataDir!, shape, validationSplit, o), options);
    }

    private static T LoadFolder<T>(string? dataDir, Func<ImageFolderOptions, T> load, ImageFolderOptions options)
    {
        if (dataDir is null) throw new CliException("--dataset folder needs --data-dir DIR: a folder with one subfolder of images per class (photos/cat/1.jpg, photos/dog/2.png)", ExitCodes.Usage);
        if (!Directory.Exists(dataDir)) throw new CliException($"--data-dir {dataDir} does not exist.");
        try
        {
            return load(options);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or InsufficientMemoryException or UnauthorizedAccessException)
        {
            // The loader's messages name its .NET options; say the command's instead.
            string hint = e is InsufficientMemoryException ? " (--max-memory-mb N sets the limit)" : "";
            throw new CliException(e.Message.Replace("the skip-unreadable option", "--skip-unreadable") + hint);
        }
    }

    public static Option<int?> Threads() => new("--threads")
    {
        Description = "Threads to use (default: all cores)",
        HelpName = "N",
    };

    public static void ApplyThreads(int? threads)
    {
        if (threads is int t)
        {
            if (t < 1 || t > 256) throw new CliException($"--threads must be between 1 and 256, got {t}", ExitCodes.Usage);
            Engine.Threads = t;
        }
    }

    /// <summary>Fashion-MNIST from the Debian package's folder or --data-dir, with a message saying how to get it.</summary>
    public static (Dataset Train, Dataset Test) LoadFashionMnist(string? dataDir)
    {
        string dir = dataDir ?? FashionMnist.DefaultDirectory;
        if (!Directory.Exists(dir))
            throw new CliException(dataDir is null
                ? $"Fashion-MNIST is not installed ({dir} does not exist).\n  Install it:   sudo apt-get install dataset-fashion-mnist\n  or point --data-dir at a folder with the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz)."
                : $"--data-dir {dir} does not exist.");
        try
        {
            return FashionMnist.Load(dir);
        }
        catch (FileNotFoundException e)
        {
            throw new CliException(e.Message);
        }
    }

    /// <summary>--max-gflops: the compute budget for model and spec files (every command; the root command holds it).</summary>
    public static readonly Option<double?> MaxGflops = new("--max-gflops")
    {
        Description = $"Refuse a model or spec file whose forward pass costs more than this many GFLOP per image (default {ComputeBudget.DefaultFlopsPerImage / 1e9:0}; raise it for a large network you trust)",
        HelpName = "X",
        Recursive = true,
    };

    /// <summary>The compute budget in FLOPs per image from --max-gflops (the default without it).</summary>
    public static long MaxFlopsPerImage { get; private set; } = ComputeBudget.DefaultFlopsPerImage;

    public static void ApplyMaxGflops(double? gflops)
    {
        if (gflops is not double g) return;
        if (!(g > 0) || g > 1e9) throw new CliException($"--max-gflops must be a positive number of GFLOP per image, got {g}", ExitCodes.Usage);
        MaxFlopsPerImage = (long)Math.Min(g * 1e9, long.MaxValue / 2);
    }

    /// <summary>Loads a model file with a message for the usual failures.</summary>
    public static LoadedModel LoadModel(string path)
    {
        if (Directory.Exists(path))
            throw new CliException($"{path} is a directory, not a model file" +
                (Checkpoint.List(path).Count > 0 ? $" (it holds training checkpoints: continue with `hpcnn train --resume {path}`, or give one of its checkpoint-*.hpcnn files)" : ""));
        if (!File.Exists(path)) throw new CliException($"model file not found: {path} (train one with `hpcnn train --net reference --out {path}`)");
        return ModelFile.Load(path, MaxFlopsPerImage);
    }

    /// <summary>Applies a model's saved preprocessing (class subset, standardisation) to raw data (a copy).</summary>
    public static Dataset Prepare(Dataset raw, ModelMetadata meta)
    {
        var d = meta.Classes is { } keep ? raw.FilterClasses(keep) : raw.Slice(0, raw.Count);
        meta.Preprocessing.ApplyToUnitPixels(d.Images, d.Shape.Size);
        return d;
    }

    /// <summary>The data recipe of --net NAME|FILE (a preset's own; a spec file: all classes, global standardisation).</summary>
    public static DataRecipe RecipeFor(string net) =>
        NetworkPresets.All.FirstOrDefault(p => p.Name == net)?.Data ?? new DataRecipe(null, null, StandardizeMode.Global);

    /// <summary>A network preset by name, or a spec file: returns the model and its data recipe.</summary>
    public static (Sequential Model, DataRecipe Recipe, int Epochs, int BatchSize, string Name) ResolveNetwork(string net, ulong seed)
    {
        var preset = NetworkPresets.All.FirstOrDefault(p => p.Name == net);
        if (preset is not null) return (preset.Build(seed), preset.Data, preset.Epochs, preset.BatchSize, preset.Name);
        if (!File.Exists(net))
        {
            string known = string.Join(", ", NetworkPresets.All.Select(p => p.Name));
            throw new CliException($"--net {net}: not a preset ({known}) and no such spec file", ExitCodes.Usage);
        }
        NetworkDefinition def;
        try
        {
            def = NetworkSpec.Load(net, MaxFlopsPerImage);
        }
        catch (FormatException e)
        {
            throw new CliException($"network spec {e.Message}", ExitCodes.Usage);
        }
        var model = def.Model;
        if (model.Loss is null)
        {
            var loss = model.OutputShape.Size == 1 ? Training.LossKind.BinaryCrossEntropy : Training.LossKind.CrossEntropy;
            model.Compile(loss, new Training.Sgd(0.01f, momentum: 0.9f));
        }
        // With seed given on the command line, rebuild with it unless the spec fixes its own.
        return (model, RecipeFor(net), def.Epochs ?? 3, def.BatchSize ?? 64, Path.GetFileName(net));
    }

    public static int[]? ParseClasses(string? text)
    {
        if (string.IsNullOrWhiteSpace(text)) return null;
        try
        {
            return text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(int.Parse).ToArray();
        }
        catch (FormatException)
        {
            throw new CliException($"--classes takes class numbers separated by commas (e.g. 1,3), got '{text}'", ExitCodes.Usage);
        }
    }

    public static string Escape(string s) => Markup.Escape(s);
}
