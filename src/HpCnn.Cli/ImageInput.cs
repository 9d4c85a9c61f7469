using HpCnn.Data;

namespace HpCnn.Cli;

/// <summary>Turns image files (PNG, JPEG, BMP, GIF) or IDX entries into model inputs (raw [0, 1] pixels, before standardisation).</summary>
internal static class ImageInput
{
    public sealed record Loaded(string Name, float[] Pixels, int? TrueLabel, string? Note);

    /// <summary>
    /// An image file (PNG, JPEG, BMP or GIF) as C x H x W floats in [0, 1] for a model input of <paramref name="shape"/>. Sizes that differ are resized
    /// (or rejected with <paramref name="noResize"/>); a light background is inverted to Fashion-MNIST's light-on-dark
    /// unless <paramref name="invert"/> says otherwise ("auto", "yes", "no"); "auto" inverts only for a model trained on
    /// light-on-dark images (<paramref name="lightOnDark"/>: MNIST, Fashion-MNIST), never for photographs (CIFAR-10, folders).
    /// </summary>
    public static Loaded FromImage(string path, Shape3 shape, bool noResize, string invert, bool lightOnDark = true)
    {
        if (!File.Exists(path)) throw new CliException($"image not found: {path}");
        if (shape.C != 1 && shape.C != 3) throw new CliException($"the model takes {shape.C}-channel images; image files work for 1 (gray) or 3 (RGB) channels");
        var planes = new float[shape.Size];
        int width, height;
        try { (width, height) = ImageFolder.DecodeInto(path, shape, planes); }
        catch (InvalidDataException e) { throw new CliException(e.Message); }
        var notes = new List<string>();
        if (height != shape.H || width != shape.W)
        {
            if (noResize)
                throw new CliException($"{path} is {width}x{height}, the model takes {shape.W}x{shape.H} images (drop --no-resize to resize it)");
            double aspect = (double)width / height / ((double)shape.W / shape.H);
            notes.Add($"resized from {width}x{height} to {shape.W}x{shape.H}{(aspect > 1.25 || aspect < 0.8 ? " (aspect ratio changed)" : "")}");
        }
        bool doInvert = invert switch
        {
            "yes" => true,
            "no" => false,
            "auto" => lightOnDark && BorderMean(planes, shape) > 0.5,
            _ => throw new CliException($"--invert takes auto, yes or no, got '{invert}'", ExitCodes.Usage),
        };
        if (doInvert)
        {
            for (int i = 0; i < planes.Length; i++) planes[i] = 1f - planes[i];
            notes.Add(invert == "auto" ? "inverted (light background; the model was trained on light-on-dark images; --invert no to keep)" : "inverted");
        }
        return new Loaded(Path.GetFileName(path), planes, null, notes.Count > 0 ? string.Join("; ", notes) : null);
    }

    private static double BorderMean(float[] planes, Shape3 s)
    {
        double sum = 0;
        int n = 0;
        for (int c = 0; c < s.C; c++)
            for (int y = 0; y < s.H; y++)
                for (int x = 0; x < s.W; x++)
                    if (y == 0 || x == 0 || y == s.H - 1 || x == s.W - 1) { sum += planes[(c * s.H + y) * s.W + x]; n++; }
        return sum / Math.Max(1, n);
    }

    /// <summary>Image <paramref name="index"/> of an IDX image file, with its label when the matching label file is beside it.</summary>
    public static Loaded FromIdx(string path, int index, Shape3 shape)
    {
        IdxTensor t;
        try { t = Idx.Read(path); }
        catch (FileNotFoundException) { throw new CliException($"IDX file not found: {path}"); }
        if (t.Dimensions.Length < 3) throw new CliException($"{path} is not an image file ({t.Dimensions.Length} dimension(s))");
        int size = t.Data.Length / t.Count;
        var s = t.Dimensions.Length == 3 ? new Shape3(1, t.Dimensions[1], t.Dimensions[2]) : new Shape3(t.Dimensions[1], t.Dimensions[2], t.Dimensions[3]);
        if (s != shape) throw new CliException($"{path} holds {s} images, the model takes {shape}");
        if (index < 0 || index >= t.Count) throw new CliException($"--index {index} is outside the {t.Count} images of {path} (0..{t.Count - 1})");
        var px = new float[size];
        for (int i = 0; i < size; i++) px[i] = t.Data[index * size + i] / 255f;
        int? label = null;
        string labels = path.Replace("images-idx3", "labels-idx1");
        if (labels != path && File.Exists(labels))
        {
            var l = Idx.Read(labels, 1);
            if (l.Count == t.Count) label = l.Data[index];
        }
        return new Loaded($"{Path.GetFileName(path)}[{index}]", px, label, null);
    }
}
