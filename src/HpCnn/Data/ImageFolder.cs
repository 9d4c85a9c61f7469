using HpCnn.Imaging;

namespace HpCnn.Data;

/// <summary>What <see cref="ImageFolder"/> does with a file it cannot decode.</summary>
public enum UnreadableImages
{
    /// <summary>
    /// Decode every file, then throw one <see cref="InvalidDataException"/> naming all the files that failed (the default:
    /// torchvision's ImageFolder and Keras' image_dataset_from_directory raise on a bad file too, and a dataset silently
    /// smaller than the folder is worse than an error).
    /// </summary>
    Fail,
    /// <summary>Leave them out, reporting each through <see cref="ImageFolderOptions.OnWarning"/>.</summary>
    Skip,
}

/// <summary>How <see cref="ImageFolder"/> reads a folder. Every setting has a default.</summary>
public sealed record ImageFolderOptions
{
    public UnreadableImages Unreadable { get; init; } = UnreadableImages.Fail;
    /// <summary>Receives one message per skipped file ("path: reason; skipped").</summary>
    public Action<string>? OnWarning { get; init; }
    /// <summary>
    /// The most memory the decoded images may take (count x channels x height x width x 4 bytes), checked before any
    /// file is decoded; null means <see cref="ImageFolder.DefaultMaxBytes"/>.
    /// </summary>
    public long? MaxBytes { get; init; }
    /// <summary>Shuffle the file order with <see cref="Seed"/> before reading (Keras' default); false keeps the sorted order (torchvision's).</summary>
    public bool Shuffle { get; init; }
    public ulong Seed { get; init; } = 42;
}

/// <summary>
/// A folder of images with one subfolder per class, as torchvision's ImageFolder and Keras' image_dataset_from_directory
/// read it: <c>photos/cat/1.jpg</c>, <c>photos/dog/a/2.png</c>... Classes are the subfolder names sorted ordinally
/// (torchvision's order: "B" before "a"), labelled 0..k-1, and become the dataset's <see cref="Dataset.ClassNames"/>;
/// each class takes every file below its folder whose extension is one of <see cref="ImageDecoding.Extensions"/>
/// (any case), in ordinal order of the path; other files and files directly in the root are ignored.
/// Images are decoded (PNG, JPEG, BMP, GIF), converted to gray (luma) or RGB (alpha composited on black), resized
/// with <see cref="Resample.Bilinear"/> to the requested size (aspect ratio not kept, as torchvision's Resize((h, w))
/// and Keras' default) and scaled to [0, 1].
/// The whole set lives in memory: the size is estimated from the file count before anything is decoded and a folder
/// larger than <see cref="ImageFolderOptions.MaxBytes"/> is refused up front.
/// </summary>
public static class ImageFolder
{
    /// <summary>Files named in an error message before "and N more".</summary>
    private const int ListedInErrors = 20;

    /// <summary>The class names of a folder: its subfolders, sorted ordinally.</summary>
    public static IReadOnlyList<string> ClassNames(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"image folder not found: {directory}");
        var names = Directory.GetDirectories(directory).Select(Path.GetFileName).OfType<string>().ToList();
        names.Sort(StringComparer.Ordinal);
        if (names.Count == 0)
        {
            bool loose = Directory.EnumerateFiles(directory).Any(IsImageFile);
            throw new InvalidDataException($"{directory}: no class folders; put the images in one subfolder per class (photos/cat/1.jpg, photos/dog/2.jpg)" +
                (loose ? " - the images directly in it are not read, since their class is unknown" : ""));
        }
        return names;
    }

    /// <summary>The image files of each class (label = index), in the order the loader reads them before any shuffle.</summary>
    public static IReadOnlyList<(string Path, int Label)> Files(string directory, out IReadOnlyList<string> classNames)
    {
        classNames = ClassNames(directory);
        var files = new List<(string, int)>();
        var empty = new List<string>();
        for (int label = 0; label < classNames.Count; label++)
        {
            var found = Directory.EnumerateFiles(Path.Combine(directory, classNames[label]), "*", SearchOption.AllDirectories)
                .Where(IsImageFile).ToList();
            found.Sort(StringComparer.Ordinal);
            if (found.Count == 0) empty.Add(classNames[label]);
            files.AddRange(found.Select(f => (f, label)));
        }
        // torchvision refuses a class folder without images too: it would be a class no image can teach.
        if (empty.Count > 0)
            throw new InvalidDataException($"{directory}: no image files ({string.Join(", ", ImageDecoding.Extensions)}) in class folder(s) {string.Join(", ", empty)}");
        return files;
    }

    private static bool IsImageFile(string path) => ImageDecoding.Extensions.Contains(Path.GetExtension(path).ToLowerInvariant());

    /// <summary>The memory a dataset of <paramref name="count"/> images of <paramref name="shape"/> takes as floats.</summary>
    public static long EstimateBytes(long count, Shape3 shape) => count * shape.Size * sizeof(float);

    /// <summary>
    /// The default memory limit: half the memory available when loading starts (MemAvailable of /proc/meminfo, or what
    /// the runtime may use when that cannot be read), because a training run copies its data at least once more
    /// (a validation split, a shuffle, standardisation of a copy).
    /// </summary>
    public static long DefaultMaxBytes() => AvailableMemoryBytes() / 2;

    private static long AvailableMemoryBytes()
    {
        long gcLimit = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
            {
                if (!line.StartsWith("MemAvailable:", StringComparison.Ordinal)) continue;
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 2 && long.TryParse(parts[1], out long kib)) return Math.Min(kib * 1024, gcLimit);
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return gcLimit;
    }

    /// <summary>Every image of the folder as one dataset of <paramref name="imageShape"/> (C = 1 for gray or 3 for RGB).</summary>
    public static Dataset Load(string directory, Shape3 imageShape, ImageFolderOptions? options = null)
    {
        options ??= new ImageFolderOptions();
        var (files, names) = Plan(directory, imageShape, options);
        var part = Decode(files, imageShape);
        Report([part], options);
        return part.ToDataset(names, imageShape);
    }

    /// <summary>
    /// The folder split into training and validation sets as Keras' validation_split does it: the file list is shuffled
    /// with <see cref="ImageFolderOptions.Seed"/> (whatever <see cref="ImageFolderOptions.Shuffle"/> says, since the sorted
    /// order would hold out the last classes whole) and the last <paramref name="validationFraction"/> of it validates.
    /// </summary>
    public static (Dataset Train, Dataset Validation) LoadSplit(string directory, Shape3 imageShape, double validationFraction, ImageFolderOptions? options = null)
    {
        if (!(validationFraction > 0 && validationFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), $"validation fraction must be in (0, 1), got {validationFraction}");
        options = (options ?? new ImageFolderOptions()) with { Shuffle = true };
        var (files, names) = Plan(directory, imageShape, options);
        if (files.Count < 2) throw new InvalidDataException($"{directory}: {files.Count} image, too few to split into training and validation sets");
        int v = Math.Clamp((int)Math.Round(files.Count * validationFraction), 1, files.Count - 1);
        var train = Decode(files[..^v], imageShape);
        var validation = Decode(files[^v..], imageShape);
        Report([train, validation], options);
        if (train.Kept == 0 || validation.Kept == 0)
            throw new InvalidDataException($"{directory}: after leaving out the unreadable files, the {(train.Kept == 0 ? "training" : "validation")} set is empty");
        return (train.ToDataset(names, imageShape), validation.ToDataset(names, imageShape));
    }

    /// <summary>Lists the files, checks the shape and the memory they will need, and orders them.</summary>
    private static (List<(string Path, int Label)> Files, IReadOnlyList<string> Names) Plan(string directory, Shape3 shape, ImageFolderOptions options)
    {
        ArgumentNullException.ThrowIfNull(directory);
        if (shape.C is not (1 or 3)) throw new ArgumentException($"image folder: channels must be 1 (gray) or 3 (RGB), got {shape.C}");
        ImageDecoding.CheckSize(shape.W, shape.H, msg => new ArgumentException($"image folder: {msg}"));
        var files = Files(directory, out var names).ToList();
        long need = EstimateBytes(files.Count, shape);
        long limit = options.MaxBytes ?? DefaultMaxBytes();
        string size = $"{files.Count:N0} images x {shape.C} x {shape.H} x {shape.W} x 4 bytes = {Mib(need)}";
        if (need > limit)
            throw new InsufficientMemoryException($"{directory}: {size}, more than the limit of {Mib(limit)} " +
                (options.MaxBytes is null ? "(half the memory available now)" : "(the limit given)") +
                "; use a smaller image size, fewer images, or raise the limit if the memory is there");
        if ((long)files.Count * shape.Size > Array.MaxLength)
            throw new InsufficientMemoryException($"{directory}: {size}, more than one array can hold ({Array.MaxLength:N0} floats); use a smaller image size or fewer images");
        if (options.Shuffle)
        {
            var order = Enumerable.Range(0, files.Count).ToArray();
            new Rng(options.Seed).Shuffle(order);
            files = order.Select(i => files[i]).ToList();
        }
        return (files, names);
    }

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024.0):N1} MiB";

    /// <summary>Decoded images of a list of files; <see cref="Errors"/>[i] says why file i could not be read (null: it was).</summary>
    private sealed record Part(List<(string Path, int Label)> Files, float[] Images, string?[] Errors)
    {
        public int Kept => Errors.Count(e => e is null);

        /// <summary>The readable images as a dataset (the gaps of unreadable ones closed, the order kept).</summary>
        public Dataset ToDataset(IReadOnlyList<string> names, Shape3 shape)
        {
            int size = shape.Size, kept = 0;
            var images = Images;
            var labels = new int[Files.Count];
            for (int i = 0; i < Files.Count; i++)
            {
                if (Errors[i] is not null) continue;
                if (kept != i) images.AsSpan(i * size, size).CopyTo(images.AsSpan(kept * size, size));
                labels[kept++] = Files[i].Label;
            }
            if (kept < Files.Count)
            {
                images = images.AsSpan(0, kept * size).ToArray();
                labels = labels.AsSpan(0, kept).ToArray();
            }
            return new Dataset(images, labels, shape, names.Count, names);
        }
    }

    /// <summary>Decodes the files in parallel straight into one array; failures are recorded, not thrown.</summary>
    private static Part Decode(List<(string Path, int Label)> files, Shape3 shape)
    {
        int size = shape.Size;
        var images = new float[(long)files.Count * size];
        var errors = new string?[files.Count];
        Parallel.For(0, files.Count, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Engine.Threads) }, i =>
        {
            try
            {
                DecodeInto(files[i].Path, shape, images.AsSpan(i * size, size));
            }
            catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
            {
                errors[i] = e is InvalidDataException && e.Message.StartsWith(files[i].Path, StringComparison.Ordinal) ? e.Message : $"{files[i].Path}: {e.Message}";
            }
        });
        return new Part(files, images, errors);
    }

    /// <summary>Throws one error naming every unreadable file (sorted by path), or warns about each when they are skipped.</summary>
    private static void Report(IReadOnlyList<Part> parts, ImageFolderOptions options)
    {
        var failed = parts.SelectMany(p => p.Errors).OfType<string>().Order(StringComparer.Ordinal).ToList();
        int total = parts.Sum(p => p.Files.Count);
        if (failed.Count == 0) return;
        if (options.Unreadable == UnreadableImages.Fail || failed.Count == total)
        {
            var listed = failed.Take(ListedInErrors).Select(m => "  " + m);
            string more = failed.Count > ListedInErrors ? $"\n  and {failed.Count - ListedInErrors} more" : "";
            string what = failed.Count == total ? "none of the image files could be read" : "skip them with the skip-unreadable option";
            throw new InvalidDataException($"{failed.Count} of {total} image file(s) could not be read ({what}):\n{string.Join("\n", listed)}{more}");
        }
        foreach (string m in failed) options.OnWarning?.Invoke($"{m}; skipped");
    }

    /// <summary>
    /// One image file as C x H x W floats in [0, 1] (C = 1: luma, 3: RGB; alpha composited on black), resized to the
    /// shape: the one preprocessing of an image file, for a folder and for `hpcnn predict`. Returns the file's own size.
    /// </summary>
    public static (int Width, int Height) DecodeInto(string path, Shape3 shape, Span<float> destination)
    {
        var img = ImageDecoding.Read(path);
        if (img.Height == shape.H && img.Width == shape.W)
        {
            img.ToPlanes(destination, shape.C);
        }
        else
        {
            var planes = img.ToPlanes(shape.C);
            Resample.Bilinear(planes, shape.C, img.Height, img.Width, destination, shape.H, shape.W);
        }
        return (img.Width, img.Height);
    }
}
