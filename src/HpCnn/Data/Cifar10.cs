namespace HpCnn.Data;

/// <summary>
/// CIFAR-10 in its binary distribution (cifar-10-binary.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html,
/// unpacked to cifar-10-batches-bin/): data_batch_1.bin ... data_batch_5.bin (50,000 training images),
/// test_batch.bin (10,000) and batches.meta.txt (the ten class names, one a line). Each batch file is a run of
/// 3,073-byte records: one label byte in [0, 10), then 32 x 32 red, 32 x 32 green and 32 x 32 blue bytes, row by
/// row: exactly the C x H x W layout of a <see cref="Dataset"/>.
/// Every check names the file: a size that is not a whole number of records, an empty file, a label of 10 or more
/// (a CIFAR-100 file, whose records have two label bytes, fails here), a meta file without ten names. Sizes come
/// from the file length and are checked before anything is allocated.
/// </summary>
public static class Cifar10
{
    public const int ImageBytes = 3 * 32 * 32, RecordBytes = 1 + ImageBytes, ClassCount = 10;
    /// <summary>Largest batch file accepted (1 GiB, about 350,000 images; the real ones hold 10,000 each).</summary>
    public const long MaxFileBytes = 1L << 30;
    public static readonly Shape3 ImageShape = new(3, 32, 32);

    /// <summary>The class names of batches.meta.txt, used when a folder has no meta file.</summary>
    public static readonly IReadOnlyList<string> ClassNames =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    public static readonly IReadOnlyList<string> TrainFiles =
        ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
    public const string TestFile = "test_batch.bin", MetaFile = "batches.meta.txt";
    /// <summary>The folder the distribution's archive unpacks to; <c>Load</c> also looks inside it.</summary>
    public const string ArchiveFolder = "cifar-10-batches-bin";

    /// <summary>Reads one batch file (any number of records) as a dataset with pixels scaled to [0, 1].</summary>
    public static Dataset ReadBatch(string path, IReadOnlyList<string>? classNames = null) => ReadBatches([path], classNames);

    /// <summary>Reads batch files one after another into one dataset (pixels scaled to [0, 1]).</summary>
    public static Dataset ReadBatches(IReadOnlyList<string> paths, IReadOnlyList<string>? classNames = null)
    {
        if (paths.Count == 0) throw new ArgumentException("CIFAR-10: no batch files given");
        if (classNames is not null && classNames.Count != ClassCount)
            throw new ArgumentException($"CIFAR-10: {classNames.Count} class names given, it has {ClassCount} classes");
        long total = 0;
        var counts = new int[paths.Count];
        for (int f = 0; f < paths.Count; f++)
        {
            string p = paths[f];
            if (!File.Exists(p)) throw new FileNotFoundException($"CIFAR-10 batch file not found: {p}", p);
            long length = new FileInfo(p).Length;
            if (length == 0) throw new InvalidDataException($"{p}: empty file (a CIFAR-10 batch holds records of {RecordBytes} bytes)");
            if (length > MaxFileBytes) throw new InvalidDataException($"{p}: {length} bytes, more than the {MaxFileBytes >> 20} MiB limit of a CIFAR-10 batch file");
            if (length % RecordBytes != 0)
                throw new InvalidDataException($"{p}: {length} bytes is not a whole number of {RecordBytes}-byte records (1 label byte + {ImageBytes} pixel bytes): " +
                    $"truncated, or not a CIFAR-10 binary batch ({length / RecordBytes} whole records and {length % RecordBytes} bytes left over)");
            counts[f] = (int)(length / RecordBytes);
            total += counts[f];
            if (total * ImageBytes > Array.MaxLength)
                throw new InvalidDataException($"{p}: the batch files hold {total} images, more than one dataset can hold in memory ({Array.MaxLength / ImageBytes})");
        }
        var pixels = new float[total * ImageBytes];
        var labels = new int[total];
        var record = new byte[RecordBytes];
        const float inv = 1f / 255f;
        int image = 0;
        for (int f = 0; f < paths.Count; f++)
        {
            using var file = File.OpenRead(paths[f]);
            for (int r = 0; r < counts[f]; r++, image++)
            {
                int n = file.ReadAtLeast(record, RecordBytes, throwOnEndOfStream: false);
                if (n < RecordBytes) throw new InvalidDataException($"{paths[f]}: truncated while reading record {r} (the file changed while being read)");
                if (record[0] >= ClassCount)
                    throw new InvalidDataException($"{paths[f]}: record {r} has label {record[0]}, outside [0, {ClassCount}) (a CIFAR-100 or other file, not CIFAR-10?)");
                labels[image] = record[0];
                var px = pixels.AsSpan(image * ImageBytes, ImageBytes);
                for (int i = 0; i < ImageBytes; i++) px[i] = record[1 + i] * inv;
            }
        }
        return new Dataset(pixels, labels, ImageShape, ClassCount, classNames ?? ClassNames);
    }

    /// <summary>The ten class names of a batches.meta.txt (one a line; blank lines at the end ignored).</summary>
    public static IReadOnlyList<string> ReadClassNames(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"CIFAR-10 meta file not found: {path}", path);
        if (new FileInfo(path).Length > 1 << 16) throw new InvalidDataException($"{path}: too large for a CIFAR-10 meta file (ten class names)");
        var names = File.ReadAllLines(path).Select(l => l.Trim()).ToList();
        while (names.Count > 0 && names[^1].Length == 0) names.RemoveAt(names.Count - 1);
        if (names.Count != ClassCount || names.Any(n => n.Length == 0))
            throw new InvalidDataException($"{path}: expected {ClassCount} class names, one a line, got {names.Count} line(s){(names.Any(n => n.Length == 0) ? " with blank ones" : "")}");
        return names;
    }

    /// <summary>
    /// The folder holding the batch files: <paramref name="directory"/> itself, or its cifar-10-batches-bin
    /// subfolder (where the archive unpacks). Throws a message saying what is missing and where to get it.
    /// </summary>
    public static string ResolveDirectory(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"CIFAR-10 folder not found: {directory}. {DownloadHint}");
        if (File.Exists(Path.Combine(directory, TestFile)) || File.Exists(Path.Combine(directory, TrainFiles[0]))) return directory;
        string inner = Path.Combine(directory, ArchiveFolder);
        if (Directory.Exists(inner)) return inner;
        return directory;
    }

    public const string DownloadHint =
        "Get the binary version (cifar-10-binary.tar.gz, 162 MB) from https://www.cs.toronto.edu/~kriz/cifar.html, unpack it " +
        "(tar xzf cifar-10-binary.tar.gz) and give the cifar-10-batches-bin folder, which holds data_batch_1.bin ... data_batch_5.bin, test_batch.bin and batches.meta.txt.";

    private static string FindFile(string dir, string name)
    {
        string p = Path.Combine(dir, name);
        if (!File.Exists(p)) throw new FileNotFoundException($"CIFAR-10 file {name} not found in {dir}. {DownloadHint}", p);
        return p;
    }

    /// <summary>The training set (the five data batches) or the test set of a CIFAR-10 folder, pixels in [0, 1].</summary>
    public static Dataset Load(string directory, bool train)
    {
        string dir = ResolveDirectory(directory);
        var files = train ? TrainFiles.Select(f => FindFile(dir, f)).ToList() : [FindFile(dir, TestFile)];
        string meta = Path.Combine(dir, MetaFile);
        return ReadBatches(files, File.Exists(meta) ? ReadClassNames(meta) : ClassNames);
    }

    /// <summary>The training (50,000) and test (10,000) sets of a CIFAR-10 folder, pixels in [0, 1].</summary>
    public static (Dataset Train, Dataset Test) Load(string directory) => (Load(directory, true), Load(directory, false));

    /// <summary>Writes a batch file in CIFAR-10's binary format: <paramref name="pixels"/> holds count x 3,072 bytes (C x H x W).</summary>
    public static void WriteBatch(string path, ReadOnlySpan<byte> labels, ReadOnlySpan<byte> pixels)
    {
        if ((long)labels.Length * ImageBytes != pixels.Length)
            throw new ArgumentException($"CIFAR-10 write: {labels.Length} labels need {(long)labels.Length * ImageBytes} pixel bytes, got {pixels.Length}");
        using var file = File.Create(path);
        for (int i = 0; i < labels.Length; i++)
        {
            if (labels[i] >= ClassCount) throw new ArgumentException($"CIFAR-10 write: label {labels[i]} of image {i} is outside [0, {ClassCount})");
            file.WriteByte(labels[i]);
            file.Write(pixels.Slice(i * ImageBytes, ImageBytes));
        }
    }
}
