using System.Text.Json;
using HpCnn.Data;
using HpCnn.IO;

namespace HpCnn.Cli.Tests;

/// <summary>hpcnn train/eval on CIFAR-10 and MNIST files the test writes in their exact formats.</summary>
[NonParallelizable]
public class DatasetCliTests
{
    private string _dir = "";

    [OneTimeSetUp]
    public void OneTimeSetUp() => _dir = Directory.CreateTempSubdirectory("hpcnn-cli-data-").FullName;

    [OneTimeTearDown]
    public void OneTimeTearDown() => Directory.Delete(_dir, true);

    /// <summary>Three classes of 32x32 colour pictures a small network tells apart: a bright left half, top half or centre square, with noise.</summary>
    private static (byte[] Labels, byte[] Pixels) Pictures(int count, int seed)
    {
        var rng = new Random(seed);
        var labels = new byte[count];
        var px = new byte[count * Cifar10.ImageBytes];
        for (int k = 0; k < count; k++)
        {
            int c = k % 3;
            labels[k] = (byte)c;
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < 32; y++)
                    for (int x = 0; x < 32; x++)
                    {
                        bool on = c switch { 0 => x < 16, 1 => y < 16, _ => x is >= 8 and < 24 && y is >= 8 and < 24 };
                        px[k * Cifar10.ImageBytes + (ch * 32 + y) * 32 + x] = (byte)((on ? 180 : 40) + rng.Next(-30, 30));
                    }
        }
        return (labels, px);
    }

    private string WriteCifar()
    {
        string dir = Directory.CreateDirectory(Path.Combine(_dir, "cifar", "cifar-10-batches-bin")).FullName;
        for (int b = 1; b <= 5; b++)
        {
            var (l, p) = Pictures(48, b);
            Cifar10.WriteBatch(Path.Combine(dir, $"data_batch_{b}.bin"), l, p);
        }
        var (tl, tp) = Pictures(60, 99);
        Cifar10.WriteBatch(Path.Combine(dir, "test_batch.bin"), tl, tp);
        File.WriteAllLines(Path.Combine(dir, "batches.meta.txt"), ["left", "top", "centre", "d", "e", "f", "g", "h", "i", "j"]);
        return Path.GetDirectoryName(dir)!; // the folder holding cifar-10-batches-bin, as the archive unpacks
    }

    [Test]
    public void TrainsTheDeepTutorialNetworkOnCifarFilesAndEvaluatesWithTheirClassNames()
    {
        string data = WriteCifar();
        string model = Path.Combine(_dir, "cifar.hpcnn"), metrics = Path.Combine(_dir, "cifar.json"), evalJson = Path.Combine(_dir, "eval.json");
        var r = Cli.Run(_dir, "train", "--dataset", "cifar10", "--data-dir", data, "--net", "deep-cifar10", "--epochs", "4",
            "--out", model, "--metrics-json", metrics, "--quiet");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        using (var doc = JsonDocument.Parse(File.ReadAllText(metrics)))
            Assert.That(doc.RootElement.GetProperty("epochs").GetArrayLength(), Is.EqualTo(4));
        var loaded = ModelFile.Load(model);
        Assert.That(loaded.Model.InputShape, Is.EqualTo(new Shape3(3, 32, 32)));
        Assert.That(loaded.Model.Metadata, Does.Contain("\"dataset\":\"cifar10\"").And.Not.Contain("standardization"), "one owner: the engine's record");
        // The engine's record (the prep chunk): a program that reloads the model predicts on raw bytes with no code of its own.
        var prep = loaded.Model.Preprocessing;
        Assert.That(prep.ClassNames, Does.Contain("centre"));
        Assert.That(prep.Standardization, Is.Not.Null);
        var (_, topPixels) = Pictures(2, 5);
        Assert.That(prep.ClassName(loaded.Model.PredictRaw(topPixels.AsSpan(Cifar10.ImageBytes, Cifar10.ImageBytes)).Classes[0]), Is.EqualTo("top"));

        var e = Cli.Run(_dir, "eval", model, "--data-dir", data, "--json", evalJson);
        Assert.That(e.ExitCode, Is.EqualTo(0), e.All);
        Assert.That(e.Out, Does.Contain("left").And.Contain("top").And.Contain("centre"), "class names from batches.meta.txt");
        using var ev = JsonDocument.Parse(File.ReadAllText(evalJson));
        Assert.That(ev.RootElement.GetProperty("count").GetInt32(), Is.EqualTo(60));
        Assert.That(ev.RootElement.GetProperty("accuracy").GetDouble(), Is.GreaterThan(0.8), "three easy classes (chance: 1/3)");

        // A JPEG of a "top" picture at twice the size: decoded, resized, not inverted, predicted by class name.
        var (_, px) = Pictures(2, 5);
        var rgb = new byte[64 * 64 * 3];
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++)
                for (int c = 0; c < 3; c++) rgb[(y * 64 + x) * 3 + c] = px[Cifar10.ImageBytes + (c * 32 + y / 2) * 32 + x / 2];
        string jpg = Path.Combine(_dir, "top.jpg");
        using (var f = File.Create(jpg))
            new StbImageWriteSharp.ImageWriter().WriteJpg(rgb, 64, 64, StbImageWriteSharp.ColorComponents.RedGreenBlue, f, 95);
        var p = Cli.Run(_dir, "predict", model, jpg, "--top", "1");
        Assert.That(p.ExitCode, Is.EqualTo(0), p.All);
        Assert.That(p.Out, Does.Contain("1. top").And.Contain("resized from 64x64 to 32x32").And.Not.Contain("inverted"));
    }

    [Test]
    public void CifarErrorsNameTheFileAndTheNetworkThatFits()
    {
        string data = WriteCifar();
        var wrongNet = Cli.Run(_dir, "train", "--dataset", "cifar10", "--data-dir", data, "--net", "reference", "--epochs", "1", "--quiet");
        Assert.That(wrongNet.ExitCode, Is.EqualTo(1), wrongNet.All);
        Assert.That(wrongNet.Err, Does.Contain("3x32x32").And.Contain("deep-cifar10"));

        string broken = Path.Combine(data, "cifar-10-batches-bin", "data_batch_3.bin");
        File.WriteAllBytes(broken, File.ReadAllBytes(broken)[..^100]);
        var bad = Cli.Run(_dir, "train", "--dataset", "cifar10", "--data-dir", data, "--net", "deep-cifar10", "--epochs", "1", "--quiet");
        Assert.That(bad.ExitCode, Is.EqualTo(1), bad.All);
        Assert.That(bad.Err, Does.Contain("data_batch_3.bin").And.Contain("3073-byte records"));

        var noDir = Cli.Run(_dir, "train", "--dataset", "cifar10", "--net", "deep-cifar10");
        Assert.That(noDir.ExitCode, Is.EqualTo(2), noDir.All);
        Assert.That(noDir.Err, Does.Contain("--data-dir").And.Contain("cs.toronto.edu"));
    }

    [Test]
    public void TrainsOnMnistIdxFiles()
    {
        string dir = Directory.CreateDirectory(Path.Combine(_dir, "mnist")).FullName;
        // Digits "0" and "1" as a bright left or right half.
        static (byte[], byte[]) Set(int n, int seed)
        {
            var rng = new Random(seed);
            var l = new byte[n];
            var px = new byte[n * 784];
            for (int k = 0; k < n; k++)
            {
                l[k] = (byte)(k % 2);
                for (int i = 0; i < 784; i++) px[k * 784 + i] = (byte)(((i % 28 < 14) == (l[k] == 0) ? 200 : 20) + rng.Next(0, 40));
            }
            return (l, px);
        }
        var (l1, p1) = Set(200, 1);
        var (l2, p2) = Set(40, 2);
        Idx.Write(Path.Combine(dir, "train-images-idx3-ubyte.gz"), p1, [200, 28, 28], gzip: true);
        Idx.Write(Path.Combine(dir, "train-labels-idx1-ubyte.gz"), l1, [200], gzip: true);
        Idx.Write(Path.Combine(dir, "t10k-images-idx3-ubyte"), p2, [40, 28, 28]);
        Idx.Write(Path.Combine(dir, "t10k-labels-idx1-ubyte"), l2, [40]);
        string model = Path.Combine(_dir, "mnist.hpcnn");
        var r = Cli.Run(_dir, "train", "--dataset", "mnist", "--data-dir", dir, "--net", "reference", "--epochs", "2", "--out", model, "--quiet");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Out, Does.Contain("validation accuracy"));
        var e = Cli.Run(_dir, "eval", model, "--data-dir", dir);
        Assert.That(e.ExitCode, Is.EqualTo(0), e.All);
        Assert.That(e.Out, Does.Contain("(40/40)").Or.Contain("(39/40)").Or.Contain("(38/40)"), "two easy classes");
    }
}
