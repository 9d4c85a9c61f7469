namespace HpCnn.Data;

/// <summary>How <see cref="Standardization"/> computes its statistics.</summary>
public enum StandardizeMode
{
    /// <summary>One mean and standard deviation over every pixel of every training image.</summary>
    Global,
    /// <summary>A mean and standard deviation per pixel position (the seed tutorial's choice).</summary>
    PerPixel,
}

/// <summary>
/// Labelled images in memory: <see cref="Images"/> holds Count x Shape.Size floats (NCHW), <see cref="Labels"/>
/// one class index per image in [0, ClassCount).
/// </summary>
public sealed class Dataset
{
    public Dataset(float[] images, int[] labels, Shape3 shape, int classCount, IReadOnlyList<string>? classNames = null)
    {
        ArgumentNullException.ThrowIfNull(images);
        ArgumentNullException.ThrowIfNull(labels);
        shape.Validate("dataset image shape");
        if (labels.Length == 0) throw new ArgumentException("dataset is empty (0 images)");
        if ((long)labels.Length * shape.Size != images.Length)
            throw new ArgumentException($"dataset: {labels.Length} labels of {shape} images need {(long)labels.Length * shape.Size} pixel values, got {images.Length}");
        if (classCount < 1) throw new ArgumentException($"dataset: class count must be positive, got {classCount}");
        for (int i = 0; i < labels.Length; i++)
            if ((uint)labels[i] >= (uint)classCount)
                throw new ArgumentException($"dataset: label {labels[i]} of image {i} is outside [0, {classCount})");
        if (classNames is not null && classNames.Count != classCount)
            throw new ArgumentException($"dataset: {classNames.Count} class names for {classCount} classes");
        Images = images;
        Labels = labels;
        Shape = shape;
        ClassCount = classCount;
        ClassNames = classNames;
    }

    public float[] Images { get; }
    public int[] Labels { get; }
    public Shape3 Shape { get; }
    public int Count => Labels.Length;
    public int ClassCount { get; }
    public IReadOnlyList<string>? ClassNames { get; }
    /// <summary>
    /// The statistics <see cref="Data.Standardization.Apply(Dataset)"/> standardised these images with (null: not
    /// standardised by it). Slices, shuffles and class filters keep it; <see cref="Sequential.Fit"/> records it in the
    /// model's <see cref="Sequential.Preprocessing"/>, with the class names.
    /// </summary>
    public Standardization? Standardization { get; internal set; }

    /// <summary>The pixels of image <paramref name="index"/>.</summary>
    public ReadOnlySpan<float> Image(int index)
    {
        if ((uint)index >= (uint)Count) throw new ArgumentOutOfRangeException(nameof(index), $"image {index} of a dataset of {Count}");
        return Images.AsSpan(index * Shape.Size, Shape.Size);
    }

    public string ClassName(int label) => ClassNames is not null && (uint)label < (uint)ClassNames.Count ? ClassNames[label] : label.ToString();

    /// <summary>Images [start, start + count) as a new dataset (copied).</summary>
    public Dataset Slice(int start, int count)
    {
        if (start < 0 || count <= 0 || start + count > Count)
            throw new ArgumentOutOfRangeException(nameof(count), $"slice [{start}, {start + count}) of a dataset of {Count}");
        return new Dataset(Images.AsSpan(start * Shape.Size, count * Shape.Size).ToArray(), Labels.AsSpan(start, count).ToArray(),
            Shape, ClassCount, ClassNames) { Standardization = Standardization };
    }

    /// <summary>The first <paramref name="count"/> images (or all of them).</summary>
    public Dataset Take(int count) => count >= Count ? this : Slice(0, count);

    /// <summary>
    /// Keeps only the images of the given classes and relabels them 0..k-1 in the order given
    /// (e.g. <c>FilterClasses(1, 3)</c>: trouser becomes 0, dress 1). Images keep their file order.
    /// </summary>
    public Dataset FilterClasses(params int[] keep)
    {
        if (keep.Length == 0) throw new ArgumentException("filter: name at least one class to keep");
        var map = new int[ClassCount];
        Array.Fill(map, -1);
        for (int i = 0; i < keep.Length; i++)
        {
            if ((uint)keep[i] >= (uint)ClassCount) throw new ArgumentException($"filter: class {keep[i]} is outside [0, {ClassCount})");
            if (map[keep[i]] >= 0) throw new ArgumentException($"filter: class {keep[i]} is named twice");
            map[keep[i]] = i;
        }
        int n = 0;
        foreach (int l in Labels) if (map[l] >= 0) n++;
        if (n == 0) throw new ArgumentException($"filter: no image has class {string.Join(" or ", keep)}");
        var images = new float[n * Shape.Size];
        var labels = new int[n];
        for (int i = 0, j = 0; i < Count; i++)
        {
            int m = map[Labels[i]];
            if (m < 0) continue;
            Images.AsSpan(i * Shape.Size, Shape.Size).CopyTo(images.AsSpan(j * Shape.Size));
            labels[j++] = m;
        }
        var names = ClassNames is null ? null : keep.Select(k => ClassNames[k]).ToArray();
        return new Dataset(images, labels, Shape, keep.Length, names) { Standardization = Standardization };
    }

    /// <summary>Holds out the last <paramref name="validationCount"/> images as a validation set.</summary>
    public (Dataset Train, Dataset Validation) SplitLast(int validationCount)
    {
        if (validationCount <= 0 || validationCount >= Count)
            throw new ArgumentOutOfRangeException(nameof(validationCount), $"split: validation size must be in [1, {Count - 1}], got {validationCount}");
        return (Slice(0, Count - validationCount), Slice(Count - validationCount, validationCount));
    }

    /// <summary>Holds out the last fraction of the images (Keras' validation_split).</summary>
    public (Dataset Train, Dataset Validation) SplitFraction(double validationFraction)
    {
        if (!(validationFraction > 0 && validationFraction < 1))
            throw new ArgumentOutOfRangeException(nameof(validationFraction), $"split: fraction must be in (0, 1), got {validationFraction}");
        int v = Math.Clamp((int)Math.Round(Count * validationFraction), 1, Count - 1);
        return SplitLast(v);
    }

    /// <summary>A shuffled copy (seeded).</summary>
    public Dataset Shuffled(ulong seed)
    {
        var order = Enumerable.Range(0, Count).ToArray();
        new Rng(seed).Shuffle(order);
        var images = new float[Images.Length];
        var labels = new int[Count];
        for (int i = 0; i < Count; i++)
        {
            Images.AsSpan(order[i] * Shape.Size, Shape.Size).CopyTo(images.AsSpan(i * Shape.Size));
            labels[i] = Labels[order[i]];
        }
        return new Dataset(images, labels, Shape, ClassCount, ClassNames) { Standardization = Standardization };
    }

    /// <summary>Images per class.</summary>
    public int[] ClassCounts()
    {
        var counts = new int[ClassCount];
        foreach (int l in Labels) counts[l]++;
        return counts;
    }
}

/// <summary>
/// Standardisation statistics computed on a training set and applied to any set: x' = (x - mean) / std,
/// globally or per pixel position. Keep the training set's statistics for validation and test data.
/// </summary>
public sealed class Standardization
{
    private Standardization(StandardizeMode mode, float[] mean, float[] std)
    {
        Mode = mode; Mean = mean; Std = std;
    }

    public StandardizeMode Mode { get; }
    /// <summary>One value (global) or one per pixel position.</summary>
    public float[] Mean { get; }
    public float[] Std { get; }

    /// <summary>Statistics of <paramref name="train"/>. Pixel positions with zero spread get std 1.</summary>
    public static Standardization Fit(Dataset train, StandardizeMode mode)
    {
        int size = train.Shape.Size, n = train.Count;
        if (mode == StandardizeMode.Global)
        {
            double sum = 0, sq = 0;
            foreach (float v in train.Images) { sum += v; sq += (double)v * v; }
            double mean = sum / train.Images.Length;
            double var = Math.Max(0, sq / train.Images.Length - mean * mean);
            double std = var > 1e-12 ? Math.Sqrt(var) : 1;
            return new Standardization(mode, [(float)mean], [(float)std]);
        }
        var m = new double[size];
        var s = new double[size];
        for (int i = 0; i < n; i++)
        {
            var img = train.Images.AsSpan(i * size, size);
            for (int p = 0; p < size; p++) { m[p] += img[p]; s[p] += (double)img[p] * img[p]; }
        }
        var meanF = new float[size];
        var stdF = new float[size];
        for (int p = 0; p < size; p++)
        {
            double mean = m[p] / n, var = Math.Max(0, s[p] / n - mean * mean);
            meanF[p] = (float)mean;
            stdF[p] = var > 1e-12 ? (float)Math.Sqrt(var) : 1f;
        }
        return new Standardization(mode, meanF, stdF);
    }

    /// <summary>Statistics given by value (as saved with a model): one mean/std (global) or one per pixel.</summary>
    public static Standardization Create(StandardizeMode mode, float[] mean, float[] std)
    {
        if (mean.Length != std.Length || mean.Length == 0) throw new ArgumentException($"standardization: {mean.Length} means and {std.Length} deviations");
        if (mode == StandardizeMode.Global && mean.Length != 1) throw new ArgumentException("standardization: global mode takes one mean and one deviation");
        foreach (float s in std)
            if (!(s > 0) || !float.IsFinite(s)) throw new ArgumentException($"standardization: deviations must be positive and finite, got {s}");
        foreach (float m in mean)
            if (!float.IsFinite(m)) throw new ArgumentException($"standardization: means must be finite, got {m}");
        return new Standardization(mode, (float[])mean.Clone(), (float[])std.Clone());
    }

    /// <summary>
    /// Writes the statistics as the model metadata keeps them: <c>"name": {"mode": "global"|"per_pixel", "mean": [...],
    /// "std": [...]}</c> (the one format the CLI, the ONNX import and export read and write).
    /// </summary>
    public void WriteJson(System.Text.Json.Utf8JsonWriter w, string propertyName)
    {
        w.WriteStartObject(propertyName);
        w.WriteString("mode", Mode == StandardizeMode.Global ? "global" : "per_pixel");
        w.WriteStartArray("mean");
        foreach (float v in Mean) w.WriteNumberValue(v);
        w.WriteEndArray();
        w.WriteStartArray("std");
        foreach (float v in Std) w.WriteNumberValue(v);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>
    /// Reads what <see cref="WriteJson"/> wrote. A missing field throws KeyNotFoundException, a value of the wrong kind
    /// InvalidOperationException or FormatException, bad statistics ArgumentException (see <see cref="Create"/>).
    /// </summary>
    public static Standardization ReadJson(System.Text.Json.JsonElement s)
    {
        var mode = s.GetProperty("mode").GetString() == "per_pixel" ? StandardizeMode.PerPixel : StandardizeMode.Global;
        return Create(mode, s.GetProperty("mean").EnumerateArray().Select(e => e.GetSingle()).ToArray(),
            s.GetProperty("std").EnumerateArray().Select(e => e.GetSingle()).ToArray());
    }

    /// <summary>Global statistics given by value (e.g. Fashion-MNIST's mean 0.2860, std 0.3530).</summary>
    public static Standardization FromValues(float mean, float std)
    {
        if (!(std > 0)) throw new ArgumentOutOfRangeException(nameof(std), $"standardization: std must be positive, got {std}");
        return new Standardization(StandardizeMode.Global, [mean], [std]);
    }

    /// <summary>
    /// Standardises the images in place and records these statistics on the dataset (<see cref="Dataset.Standardization"/>),
    /// so a model fit on it saves them. A dataset standardised already is refused: its record would be wrong.
    /// </summary>
    public void Apply(Dataset data)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Standardization is not null)
            throw new InvalidOperationException("standardization: the dataset is standardised already; standardise the raw images once");
        Apply(data.Images, data.Shape.Size);
        data.Standardization = this;
    }

    /// <summary>Same mode and bitwise the same statistics.</summary>
    public override bool Equals(object? obj) =>
        obj is Standardization o && o.Mode == Mode && Mean.AsSpan().SequenceEqual(o.Mean) && Std.AsSpan().SequenceEqual(o.Std);

    public override int GetHashCode() => HashCode.Combine(Mode, Mean.Length, Mean[0], Std[0]);

    /// <summary>Standardises images of <paramref name="imageSize"/> values in place.</summary>
    public void Apply(Span<float> images, int imageSize)
    {
        if (Mode == StandardizeMode.PerPixel && imageSize != Mean.Length)
            throw new ArgumentException($"standardization: statistics are for images of {Mean.Length} values, got {imageSize}");
        if (Mode == StandardizeMode.Global)
        {
            float mean = Mean[0], inv = 1f / Std[0];
            System.Numerics.Tensors.TensorPrimitives.Subtract(images, mean, images);
            System.Numerics.Tensors.TensorPrimitives.Multiply(images, inv, images);
            return;
        }
        for (int i = 0; i + imageSize <= images.Length; i += imageSize)
        {
            var img = images.Slice(i, imageSize);
            System.Numerics.Tensors.TensorPrimitives.Subtract(img, Mean, img);
            System.Numerics.Tensors.TensorPrimitives.Divide(img, Std, img);
        }
    }
}
