using System.Text.Json;
using HpCnn.IO;
using StbImageWriteSharp;

namespace HpCnn.Cli.Tests;

/// <summary>hpcnn train/eval/predict on folders of PNG and JPEG files (one subfolder per class) the test writes.</summary>
[NonParallelizable]
public class ImageFolderCliTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hpcnn-cli-folder-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    /// <summary>
    /// A size x size colour picture of class 0 (bright left half), 1 (bright top half) or 2 (bright centre square),
    /// with noise, as interleaved RGB bytes.
    /// </summary>
    private static byte[] Picture(int cls, int size, Random rng)
    {
        var px = new byte[size * size * 3];
        int half = size / 2, q = size / 4;
        for (int y = 0; y < size; y++)
            for (int x = 0; x < size; x++)
            {
                bool on = cls switch { 0 => x < half, 1 => y < half, _ => x >= q && x < size - q && y >= q && y < size - q };
                for (int c = 0; c < 3; c++) px[(y * size + x) * 3 + c] = (byte)((on ? 190 : 40) + rng.Next(-30, 30) + (c == 0 ? 10 : 0));
            }
        return px;
    }

    private static void Write(string path, byte[] rgb, int size)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var f = File.Create(path);
        var w = new ImageWriter();
        if (path.EndsWith(".png", StringComparison.Ordinal)) w.WritePng(rgb, size, size, ColorComponents.RedGreenBlue, f);
        else w.WriteJpg(rgb, size, size, ColorComponents.RedGreenBlue, f, 95);
    }

    /// <summary>classes left, top, centre; even images PNG, odd JPEG; sizes vary so every image is resized.</summary>
    private string WriteFolder(int perClass)
    {
        string root = Path.Combine(_dir, "photos");
        var rng = new Random(11);
        string[] names = ["left", "top", "centre"];
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < perClass; i++)
            {
                int size = 24 + 8 * (i % 3);
                Write(Path.Combine(root, names[c], $"{i:D3}.{(i % 2 == 0 ? "png" : "jpg")}"), Picture(c, size, rng), size);
            }
        return root;
    }

    [Test]
    public void TrainsOnAColourFolderThenEvaluatesAndPredictsAJpegByClassName()
    {
        string photos = WriteFolder(40);
        string model = Path.Combine(_dir, "photos.hpcnn"), metrics = Path.Combine(_dir, "m.json"), evalJson = Path.Combine(_dir, "eval.json");
        var r = Cli.Run(_dir, "train", "--data-dir", photos, "--image-size", "32x32", "--channels", "3", "--net", "deep-cifar10",
            "--epochs", "4", "--out", model, "--metrics-json", metrics, "--quiet");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        using (var doc = JsonDocument.Parse(File.ReadAllText(metrics)))
        {
            var last = doc.RootElement.GetProperty("epochs")[3];
            Assert.That(last.GetProperty("val_accuracy").GetDouble(), Is.GreaterThan(0.8), "three easy classes (chance: 1/3)");
        }
        var loaded = ModelFile.Load(model);
        Assert.That(loaded.Model.Metadata, Does.Contain("\"dataset\":\"folder\""));
        Assert.That(loaded.Model.Preprocessing.ClassNames, Is.EqualTo(new[] { "centre", "left", "top" }),
            "the model keeps the folder names, sorted, as its class names");

        var e = Cli.Run(_dir, "eval", model, "--data-dir", photos, "--json", evalJson);
        Assert.That(e.ExitCode, Is.EqualTo(0), e.All);
        Assert.That(e.Out, Does.Contain("centre").And.Contain("left").And.Contain("top"));
        using (var ev = JsonDocument.Parse(File.ReadAllText(evalJson)))
            Assert.That(ev.RootElement.GetProperty("count").GetInt32(), Is.EqualTo(120), "eval reads the whole folder");

        // predict reads a JPEG: a "top" picture at 48x48, decoded, resized, not inverted, named by its folder.
        string jpg = Path.Combine(_dir, "new-top.jpg");
        Write(jpg, Picture(1, 48, new Random(3)), 48);
        var p = Cli.Run(_dir, "predict", model, jpg, "--top", "1");
        Assert.That(p.ExitCode, Is.EqualTo(0), p.All);
        Assert.That(p.Out, Does.Contain("1. top").And.Contain("resized from 48x48 to 32x32").And.Not.Contain("inverted"));
    }

    [Test]
    public void TrainsAGrayNetworkWithTheSizeTakenFromTheNetwork()
    {
        string photos = WriteFolder(12);
        string spec = Path.Combine(_dir, "gray.json");
        File.WriteAllText(spec, """
            {"input": [1, 16, 16], "seed": 1,
             "layers": [{"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"}, {"type": "relu"},
                        {"type": "maxpool2d"}, {"type": "flatten"}, {"type": "dense", "units": 3}],
             "loss": "cross_entropy", "optimizer": {"type": "sgd", "lr": 0.05, "momentum": 0.9}}
            """);
        var r = Cli.Run(_dir, "train", "--data-dir", photos, "--channels", "1", "--net", spec, "--epochs", "2", "--validation-split", "0.25");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Out, Does.Contain("27 training / 9 validation images"));

        var wrong = Cli.Run(_dir, "train", "--data-dir", photos, "--image-size", "32x32", "--channels", "3", "--net", spec, "--epochs", "1", "--quiet");
        Assert.That(wrong.ExitCode, Is.EqualTo(1), wrong.All);
        Assert.That(wrong.Err, Does.Contain("takes 1x16x16 inputs").And.Contain("3x32x32"));
        var badSize = Cli.Run(_dir, "train", "--data-dir", photos, "--image-size", "16", "--net", spec);
        Assert.That(badSize.ExitCode, Is.EqualTo(2), badSize.All);
        Assert.That(badSize.Err, Does.Contain("HEIGHTxWIDTH"));
    }

    [Test]
    public void ACorruptFileIsNamedAndFailsTheRunUnlessSkipped()
    {
        string photos = WriteFolder(6);
        string broken = Path.Combine(photos, "top", "broken.jpg");
        File.WriteAllBytes(broken, [0xFF, 0xD8, 0xFF, 0xE0, 0x00]);
        var r = Cli.Run(_dir, "train", "--data-dir", photos, "--image-size", "32x32", "--net", "deep-cifar10", "--epochs", "1", "--quiet");
        Assert.That(r.ExitCode, Is.EqualTo(1), r.All);
        Assert.That(r.Err, Does.Contain(broken).And.Contain("--skip-unreadable"));
        Assert.That(r.Err, Does.Not.Contain("   at "), "a message, not a stack trace");

        var s = Cli.Run(_dir, "train", "--data-dir", photos, "--image-size", "32x32", "--net", "deep-cifar10", "--epochs", "1", "--quiet", "--skip-unreadable");
        Assert.That(s.ExitCode, Is.EqualTo(0), s.All);
        Assert.That(s.Err, Does.Contain("warning").And.Contain(broken).And.Contain("skipped"));
    }

    [Test]
    public void AFolderTooLargeForTheMemoryLimitIsRefusedUpFront()
    {
        string photos = WriteFolder(3);
        // Every file corrupt, so only a check made before decoding can answer with the size.
        foreach (var f in Directory.GetFiles(photos, "*", SearchOption.AllDirectories)) File.WriteAllBytes(f, [1, 2, 3]);
        string spec = Path.Combine(_dir, "large.json");
        File.WriteAllText(spec, """
            {"input": [3, 128, 128], "layers": [{"type": "flatten"}, {"type": "dense", "units": 3}], "loss": "cross_entropy"}
            """);
        // 9 images x 3 x 128 x 128 x 4 bytes = 1.7 MiB.
        var big = Cli.Run(_dir, "train", "--data-dir", photos, "--net", spec, "--dataset", "folder", "--max-memory-mb", "1", "--quiet");
        Assert.That(big.ExitCode, Is.EqualTo(1), big.All);
        Assert.That(big.Err, Does.Contain("9 images x 3 x 128 x 128 x 4 bytes = 1.7 MiB").And.Contain("limit of 1.0 MiB").And.Contain("--max-memory-mb"));
        var fits = Cli.Run(_dir, "train", "--data-dir", photos, "--net", spec, "--dataset", "folder", "--max-memory-mb", "2", "--quiet");
        Assert.That(fits.ExitCode, Is.EqualTo(1), fits.All);
        Assert.That(fits.Err, Does.Contain("9 of 9 image file(s) could not be read"), "under the limit the files are read (and fail)");
    }
}
