using HpCnn.Data;

namespace HpCnn.Tests.Data;

/// <summary>CIFAR-10's binary batches and MNIST's IDX files, written by the test in their exact formats.</summary>
public class Cifar10Tests
{
    private string _dir = "";

    [SetUp]
    public void MakeDirectory() => _dir = Directory.CreateTempSubdirectory("hpcnn-cifar-").FullName;

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    /// <summary>Record bytes: label, then pixel i of image k = (k * 7 + i) mod 256, written by hand (not by WriteBatch).</summary>
    private string WriteRawBatch(string name, byte[] labels)
    {
        var bytes = new byte[labels.Length * Cifar10.RecordBytes];
        for (int k = 0; k < labels.Length; k++)
        {
            bytes[k * Cifar10.RecordBytes] = labels[k];
            for (int i = 0; i < Cifar10.ImageBytes; i++) bytes[k * Cifar10.RecordBytes + 1 + i] = (byte)((k * 7 + i) % 256);
        }
        string p = Path.Combine(_dir, name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    private static float Pixel(int image, int i) => (byte)((image * 7 + i) % 256) / 255f;

    [Test]
    public void ReadsRecordsAsRgbPlanesScaledToOne()
    {
        string p = WriteRawBatch("data_batch_1.bin", [3, 0, 9]);
        var d = Cifar10.ReadBatch(p);
        Assert.That(d.Shape, Is.EqualTo(new Shape3(3, 32, 32)));
        Assert.That(d.Labels, Is.EqualTo(new[] { 3, 0, 9 }));
        Assert.That(d.ClassCount, Is.EqualTo(10));
        Assert.That(d.ClassName(3), Is.EqualTo("cat"));
        // Red plane first, then green (offset 1024), then blue (2048); row-major within a plane.
        foreach (int i in new[] { 0, 1, 31, 32, 1023, 1024, 2047, 2048, 3071 })
            Assert.That(d.Image(2)[i], Is.EqualTo(Pixel(2, i)).Within(1e-6f), $"pixel {i}");
    }

    [Test]
    public void LoadsTheFiveTrainingBatchesTheTestBatchAndTheMetaNames()
    {
        for (int b = 1; b <= 5; b++) WriteRawBatch($"data_batch_{b}.bin", [(byte)b, (byte)(b + 1)]);
        WriteRawBatch("test_batch.bin", [7]);
        var names = Enumerable.Range(0, 10).Select(i => $"class-{i}").ToArray();
        File.WriteAllText(Path.Combine(_dir, "batches.meta.txt"), string.Join("\n", names) + "\n\n");
        var (train, test) = Cifar10.Load(_dir);
        Assert.That(train.Labels, Is.EqualTo(new[] { 1, 2, 2, 3, 3, 4, 4, 5, 5, 6 }), "batches 1..5 in order");
        Assert.That(train.Image(9)[5], Is.EqualTo(Pixel(1, 5)).Within(1e-6f), "the second record of batch 5");
        Assert.That(test.Count, Is.EqualTo(1));
        Assert.That(test.ClassName(7), Is.EqualTo("class-7"), "class names from batches.meta.txt");
    }

    [Test]
    public void FindsTheFolderTheArchiveUnpacksTo()
    {
        var inner = Directory.CreateDirectory(Path.Combine(_dir, "cifar-10-batches-bin")).FullName;
        var labels = new byte[] { 1 };
        var pixels = Enumerable.Range(0, 3072).Select(i => (byte)(i % 251)).ToArray();
        Cifar10.WriteBatch(Path.Combine(inner, "test_batch.bin"), labels, pixels);
        var test = Cifar10.Load(_dir, train: false);
        Assert.That(test.Image(0)[300], Is.EqualTo((300 % 251) / 255f).Within(1e-6f));
        Assert.That(test.ClassName(1), Is.EqualTo("automobile"), "the standard names without a meta file");
    }

    private static void AssertInvalid(Action read, string path, string problem)
    {
        var e = Assert.Throws<InvalidDataException>(read)!;
        Assert.That(e.Message, Does.Contain(path), "the message names the file");
        Assert.That(e.Message, Does.Contain(problem));
    }

    [Test]
    public void BadFilesGiveErrorsNamingTheFile()
    {
        string p = WriteRawBatch("test_batch.bin", [1, 2]);
        var bytes = File.ReadAllBytes(p);
        File.WriteAllBytes(p, bytes[..^1]);
        AssertInvalid(() => Cifar10.ReadBatch(p), p, "not a whole number of 3073-byte records");
        File.WriteAllBytes(p, []);
        AssertInvalid(() => Cifar10.ReadBatch(p), p, "empty");
        bytes[Cifar10.RecordBytes] = 10;
        File.WriteAllBytes(p, bytes);
        AssertInvalid(() => Cifar10.ReadBatch(p), p, "record 1 has label 10");

        string meta = Path.Combine(_dir, "batches.meta.txt");
        File.WriteAllText(meta, "a\nb\n");
        AssertInvalid(() => Cifar10.ReadClassNames(meta), meta, "expected 10 class names");

        var missing = Assert.Throws<FileNotFoundException>(() => Cifar10.Load(_dir, train: true))!;
        Assert.That(missing.Message, Does.Contain("data_batch_1.bin").And.Contain("cs.toronto.edu"));
    }

    [Test]
    public void MnistReadsIdxFilesWithTheStandardNames()
    {
        var px = Enumerable.Range(0, 3 * 28 * 28).Select(i => (byte)(i % 256)).ToArray();
        Idx.Write(Path.Combine(_dir, "train-images-idx3-ubyte.gz"), px, [3, 28, 28], gzip: true);
        Idx.Write(Path.Combine(_dir, "train-labels-idx1-ubyte.gz"), [4, 9, 0], [3], gzip: true);
        Idx.Write(Path.Combine(_dir, "t10k-images-idx3-ubyte"), px.AsSpan(0, 784), [1, 28, 28]);
        Idx.Write(Path.Combine(_dir, "t10k-labels-idx1-ubyte"), [8], [1]);
        var (train, test) = Mnist.Load(_dir);
        Assert.That(train.Labels, Is.EqualTo(new[] { 4, 9, 0 }));
        Assert.That(train.Image(1)[3], Is.EqualTo((784 + 3) % 256 / 255f).Within(1e-6f));
        Assert.That(test.ClassName(8), Is.EqualTo("8"));
        File.Delete(Path.Combine(_dir, "t10k-labels-idx1-ubyte"));
        var e = Assert.Throws<FileNotFoundException>(() => Mnist.Load(_dir))!;
        Assert.That(e.Message, Does.Contain("t10k-labels-idx1-ubyte").And.Contain("MNIST"));
    }
}
