using System.IO.Compression;
using HpCnn.Data;

namespace HpCnn.Tests.Data;

/// <summary>The IDX reader on files written by <see cref="Idx.Write"/> and on broken files: every error names the file and the problem.</summary>
public class IdxTests
{
    private string _dir = "";

    [SetUp]
    public void MakeDirectory() => _dir = Directory.CreateTempSubdirectory("hpcnn-idx-").FullName;

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    private string PathOf(string name) => Path.Combine(_dir, name);

    /// <summary>4 images of 2x3 with pixel values 0, 10, 20, ... and labels 2, 0, 1, 2.</summary>
    private (string Images, string Labels) WriteSmallSet(bool gzip, int[]? labels = null)
    {
        var pixels = Enumerable.Range(0, 24).Select(i => (byte)(i * 10)).ToArray();
        string images = PathOf(gzip ? "images.gz" : "images"), labelsPath = PathOf(gzip ? "labels.gz" : "labels");
        Idx.Write(images, pixels, [4, 2, 3], gzip);
        var l = (labels ?? [2, 0, 1, 2]).Select(v => (byte)v).ToArray();
        Idx.Write(labelsPath, l, [l.Length], gzip);
        return (images, labelsPath);
    }

    /// <summary>An IDX header: magic 00 00 type dims, then the dimensions big-endian.</summary>
    private static byte[] Header(byte type, params int[] dims)
    {
        var h = new List<byte> { 0, 0, type, (byte)dims.Length };
        foreach (int d in dims) h.AddRange([(byte)(d >> 24), (byte)(d >> 16), (byte)(d >> 8), (byte)d]);
        return h.ToArray();
    }

    private string WriteBytes(string name, byte[] bytes)
    {
        string p = PathOf(name);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    private static void AssertInvalid(Action read, string path, string problem)
    {
        var e = Assert.Throws<InvalidDataException>(read)!;
        Assert.That(e.Message, Does.Contain(path), "the message names the file");
        Assert.That(e.Message, Does.Contain(problem));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void ReadsWhatWriteWrote(bool gzip)
    {
        var (images, labels) = WriteSmallSet(gzip);
        var bytes = File.ReadAllBytes(images);
        Assert.That(bytes[0] == 0x1f && bytes[1] == 0x8b, Is.EqualTo(gzip), "gzip files start with the gzip magic");
        var t = Idx.Read(images);
        Assert.That(t.Dimensions, Is.EqualTo(new[] { 4, 2, 3 }));
        Assert.That(t.Count, Is.EqualTo(4));
        Assert.That(t.Data, Is.EqualTo(Enumerable.Range(0, 24).Select(i => (byte)(i * 10)).ToArray()));
        Assert.That(Idx.Read(labels, expectedDims: 1).Data, Is.EqualTo(new byte[] { 2, 0, 1, 2 }));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void LoadsADatasetScaledToOne(bool gzip)
    {
        var (images, labels) = WriteSmallSet(gzip);
        var d = Idx.LoadDataset(images, labels);
        Assert.That(d.Shape, Is.EqualTo(new Shape3(1, 2, 3)));
        Assert.That(d.Count, Is.EqualTo(4));
        Assert.That(d.ClassCount, Is.EqualTo(3), "the largest label + 1");
        Assert.That(d.Labels, Is.EqualTo(new[] { 2, 0, 1, 2 }));
        Assert.That(d.Image(1).ToArray(), Is.EqualTo(new[] { 60 / 255f, 70 / 255f, 80 / 255f, 90 / 255f, 100 / 255f, 110 / 255f }).Within(1e-7f));
        var named = Idx.LoadDataset(images, labels, 5, ["a", "b", "c", "d", "e"]);
        Assert.That(named.ClassCount, Is.EqualTo(5));
        Assert.That(named.ClassName(2), Is.EqualTo("c"));
    }

    [Test]
    public void LoadsFourDimensionalImagesAsChannels()
    {
        string images = PathOf("rgb"), labels = PathOf("rgb-labels");
        Idx.Write(images, new byte[2 * 3 * 2 * 2], [2, 3, 2, 2]);
        Idx.Write(labels, new byte[] { 0, 1 }, [2]);
        Assert.That(Idx.LoadDataset(images, labels).Shape, Is.EqualTo(new Shape3(3, 2, 2)));
    }

    [Test]
    public void MissingFile()
    {
        string p = PathOf("nothing-here");
        var e = Assert.Throws<FileNotFoundException>(() => Idx.Read(p))!;
        Assert.That(e.Message, Does.Contain(p));
        Assert.That(e.FileName, Is.EqualTo(p));
        var (images, _) = WriteSmallSet(false);
        Assert.That(() => Idx.LoadDataset(images, p), Throws.InstanceOf<FileNotFoundException>().With.Message.Contains(p));
    }

    [Test]
    public void TruncatedHeader()
    {
        AssertInvalid(() => Idx.Read(WriteBytes("short", [0, 0, 8])), PathOf("short"), "truncated header (3 of 4 bytes");
        AssertInvalid(() => Idx.Read(WriteBytes("empty", []), null), PathOf("empty"), "truncated header (0 of 4 bytes");
        // Three dimensions announced, one given.
        var h = Header(8, 4, 2, 3)[..8];
        AssertInvalid(() => Idx.Read(WriteBytes("dims", h)), PathOf("dims"), "truncated header (8 of 16 bytes)");
    }

    /// <summary>Fuzzing regression (tests/HpCnn.Fuzz/regressions/idx): an 11-byte file announcing 548 MB allocated and
    /// zeroed all of it before finding the data missing, 2 s per input. The buffer now grows with the data read.</summary>
    [Test]
    public void AHeaderAnnouncingMoreThanTheFileHoldsAllocatesNothingLarge()
    {
        byte[] file = [0, 0, 8, 1, 0x20, 0xaf, 0x03, 0x1b, 0, 1, 2];
        using var gz = new MemoryStream();
        using (var z = new System.IO.Compression.GZipStream(gz, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true)) z.Write(file);
        foreach (var (stream, label) in new (Stream, string)[] { (new MemoryStream(file), "raw"), (new System.IO.Compression.GZipStream(new MemoryStream(gz.ToArray()), System.IO.Compression.CompressionMode.Decompress), "gzip") })
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            var e = Assert.Throws<InvalidDataException>(() => Idx.Read(stream, label))!;
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.That(e.Message, Does.Contain("548340507 bytes of data, the file holds 3"), label);
            Assert.That(allocated, Is.LessThan(4 << 20), $"{label}: {allocated} bytes allocated for a file of 11 bytes");
        }
    }

    [Test]
    public void TruncatedData()
    {
        var bytes = Header(8, 4, 2, 3).Concat(new byte[20]).ToArray();
        AssertInvalid(() => Idx.Read(WriteBytes("cut", bytes)), PathOf("cut"), "truncated: the header announces 4x2x3 = 24 bytes of data, the file holds 20");
    }

    [Test]
    public void TruncatedGzipData()
    {
        // A gzip stream that ends cleanly but holds too few bytes.
        string p = PathOf("cut.gz");
        using (var f = File.Create(p))
        using (var gz = new GZipStream(f, CompressionLevel.Fastest))
            gz.Write(Header(8, 4, 2, 3).Concat(new byte[10]).ToArray());
        AssertInvalid(() => Idx.Read(p), p, "truncated");
    }

    [Test]
    public void WrongMagicNumber()
    {
        var bytes = Header(8, 2).Concat(new byte[2]).ToArray();
        bytes[0] = 0x50; bytes[1] = 0x4B; // a zip file, say
        AssertInvalid(() => Idx.Read(WriteBytes("zip", bytes)), PathOf("zip"), "not an IDX file (magic number 0x504B0801");
    }

    [Test]
    public void WrongDataType()
    {
        var bytes = Header(0x0D, 2).Concat(new byte[8]).ToArray(); // 0x0D: float
        AssertInvalid(() => Idx.Read(WriteBytes("floats", bytes)), PathOf("floats"), "data type 0x0D is not supported");
    }

    [Test]
    public void WrongDimensionCount()
    {
        var (images, labels) = WriteSmallSet(false);
        AssertInvalid(() => Idx.Read(images, expectedDims: 1), images, "has 3 dimension(s), expected 1 (a label file)");
        AssertInvalid(() => Idx.LoadDataset(labels, labels), labels, "has 1 dimension(s), expected 3");
        AssertInvalid(() => Idx.LoadDataset(images, images), images, "expected 1");
        var five = Header(8, 1, 1, 1, 1, 1).Concat(new byte[1]).ToArray();
        AssertInvalid(() => Idx.Read(WriteBytes("five", five)), PathOf("five"), "5 dimensions (expected 1 to 4)");
        var zero = new byte[] { 0, 0, 8, 0 };
        AssertInvalid(() => Idx.Read(WriteBytes("zero", zero)), PathOf("zero"), "0 dimensions");
        var zeroSize = Header(8, 3, 0).ToArray();
        AssertInvalid(() => Idx.Read(WriteBytes("zerosize", zeroSize)), PathOf("zerosize"), "dimension 1 is 0");
    }

    [Test]
    public void HugeHeaderIsRejectedBeforeAllocating()
    {
        var bytes = Header(8, 60000, 60000, 60000);
        AssertInvalid(() => Idx.Read(WriteBytes("huge", bytes)), PathOf("huge"), "limit");
    }

    [TestCase(false)]
    [TestCase(true)]
    public void DataPastTheEnd(bool gzip)
    {
        string p = PathOf(gzip ? "long.gz" : "long");
        var bytes = Header(8, 3).Concat(new byte[] { 1, 2, 3, 4 }).ToArray();
        if (gzip)
        {
            using var f = File.Create(p);
            using var gz = new GZipStream(f, CompressionLevel.Fastest);
            gz.Write(bytes);
        }
        else File.WriteAllBytes(p, bytes);
        AssertInvalid(() => Idx.Read(p), p, "has data past the 3 bytes its header announces");
    }

    [Test]
    public void ImageAndLabelCountsDiffer()
    {
        var (images, labels) = WriteSmallSet(false, labels: [0, 1, 1]);
        var e = Assert.Throws<InvalidDataException>(() => Idx.LoadDataset(images, labels))!;
        Assert.That(e.Message, Is.EqualTo($"{images} holds 4 images but {labels} holds 3 labels"));
    }

    [Test]
    public void CorruptGzipStream()
    {
        // The gzip magic followed by an unknown compression method and garbage.
        var bytes = new byte[] { 0x1f, 0x8b, 0x63, 0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 };
        string p = WriteBytes("bad.gz", bytes);
        AssertInvalid(() => Idx.Read(p), p, "corrupt gzip data");

        // A valid gzip file with its deflate stream damaged.
        string q = PathOf("damaged.gz");
        var pixels = Enumerable.Range(0, 3000).Select(i => (byte)(i % 7 * 30)).ToArray();
        Idx.Write(q, pixels, [3, 1000], gzip: true);
        var gz = File.ReadAllBytes(q);
        for (int i = 12; i < gz.Length - 8; i++) gz[i] = (byte)(gz[i] ^ 0x5A);
        File.WriteAllBytes(q, gz);
        var e = Assert.Throws<InvalidDataException>(() => Idx.Read(q))!;
        Assert.That(e.Message, Does.StartWith(q));
    }

    [Test]
    public void LabelOutOfRange()
    {
        var (images, labels) = WriteSmallSet(false, labels: [0, 1, 5, 2]);
        AssertInvalid(() => Idx.LoadDataset(images, labels, classCount: 3), labels, "label 5 of item 2 is outside [0, 3)");
        AssertInvalid(() => Idx.LoadDataset(images, labels, classNames: ["a", "b", "c"]), labels, "outside [0, 3)");
        Assert.That(Idx.LoadDataset(images, labels).ClassCount, Is.EqualTo(6), "without a class count the largest label decides");
    }

    [Test]
    public void WriteChecksTheSize()
    {
        Assert.That(() => Idx.Write(PathOf("x"), new byte[5], [2, 3]), Throws.ArgumentException.With.Message.Contains("2x3 needs 6 bytes, got 5"));
    }
}
