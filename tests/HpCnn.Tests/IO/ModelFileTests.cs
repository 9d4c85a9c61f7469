using HpCnn.IO;
using HpCnn.Layers;

namespace HpCnn.Tests.IO;

public class ModelFileTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "hpcnn-io-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    [Test]
    public void SaveLoadKeepsArchitectureWeightsAndPredictions()
    {
        var m = TestModels.EveryLayer();
        TestModels.Train(m, 3, 11);
        m.Metadata = """{"note": "kept"}""";
        string path = Path.Combine(_dir, "m.hpcnn");
        var init = m.CopyParameterValues();
        m.Save(path, init);

        var loaded = ModelFile.Load(path);
        var l = loaded.Model;
        Assert.That(NetworkSpec.ToJson(l), Is.EqualTo(NetworkSpec.ToJson(m)));
        Assert.That(l.EpochsTrained, Is.EqualTo(m.EpochsTrained));
        Assert.That(l.Optimizer!.Steps, Is.EqualTo(3));
        Assert.That(l.Metadata, Is.EqualTo(m.Metadata));
        Assert.That(loaded.InitialWeights, Has.Length.EqualTo(init.Length));
        var ps = m.Layers.SelectMany(x => x.Parameters).ToList();
        var ls = l.Layers.SelectMany(x => x.Parameters).ToList();
        for (int i = 0; i < ps.Count; i++)
        {
            Assert.That(ls[i].Value, Is.EqualTo(ps[i].Value), $"parameter {i} ({ps[i].Name})");
            Assert.That(loaded.InitialWeights![i], Is.EqualTo(init[i]));
        }
        var x = TestModels.Images(5, m.InputShape, 99);
        Assert.That(l.Predict(x).Probabilities, Is.EqualTo(m.Predict(x).Probabilities));
    }

    [Test]
    public void ResumedTrainingMatchesUninterruptedTrainingBitForBit()
    {
        var a = TestModels.EveryLayer(3);
        TestModels.Train(a, 2, 21);
        string path = Path.Combine(_dir, "resume.hpcnn");
        a.Save(path);
        var b = Sequential.Load(path);
        TestModels.Train(a, 3, 22);
        TestModels.Train(b, 3, 22);
        var pa = a.Layers.SelectMany(x => x.Parameters).ToList();
        var pb = b.Layers.SelectMany(x => x.Parameters).ToList();
        for (int i = 0; i < pa.Count; i++)
            Assert.That(pb[i].Value.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(pa[i].Value.Select(BitConverter.SingleToInt32Bits)),
                $"parameter {i} ({pa[i].Name}) after resuming");
    }

    [Test]
    public void SaveIsAtomicAndReportsAMissingFolder()
    {
        var m = TestModels.EveryLayer();
        var ex = Assert.Throws<DirectoryNotFoundException>(() => m.Save(Path.Combine(_dir, "no", "such", "m.hpcnn")));
        Assert.That(ex!.Message, Does.Contain("does not exist"));
        string path = Path.Combine(_dir, "m.hpcnn");
        m.Save(path);
        m.Save(path); // overwrite
        Assert.That(Directory.GetFiles(_dir), Is.EquivalentTo(new[] { path }), "no temporary files left behind");
    }

    [Test]
    public void MissingFileIsAFileNotFoundError()
    {
        var ex = Assert.Throws<FileNotFoundException>(() => ModelFile.Load(Path.Combine(_dir, "absent.hpcnn")));
        Assert.That(ex!.Message, Does.Contain("absent.hpcnn"));
    }

    private static byte[] Bytes() => ModelFile.ToBytes(TestModels.EveryLayer());

    private static string ReadError(byte[] data) => Assert.Throws<InvalidDataException>(() => ModelFile.Read(data, "f"))!.Message;

    [Test]
    public void RejectsWrongMagic()
    {
        var b = Bytes();
        b[0] = (byte)'X';
        Assert.That(ReadError(b), Does.Contain("not an HpCnn model file"));
        Assert.That(ReadError([]), Does.Contain("not an HpCnn model file"));
    }

    [Test]
    public void RejectsNewerFormatVersion()
    {
        var b = Bytes();
        b[8] = 2;
        Assert.That(ReadError(b), Does.Contain("format version 2").And.Contain("newer").And.Contain("checksum does not match"));
        FixChecksum(b);
        Assert.That(ReadError(b), Does.Contain("format version 2").And.Contain("a newer HpCnn wrote it)"));
    }

    [Test]
    public void AnImplausibleVersionIsACorruptHeaderNotANewerFile()
    {
        var b = Bytes();
        BitConverter.TryWriteBytes(b.AsSpan(8), 1092352152u);
        foreach (bool fix in new[] { false, true })
        {
            if (fix) FixChecksum(b);
            Assert.That(ReadError(b), Does.Contain("the header is corrupt").And.Contain("1092352152").And.Not.Contain("newer"));
        }
    }

    [Test]
    public void LoadSaysWhatIsWrongWithThePath()
    {
        string dir = Directory.CreateTempSubdirectory("hpcnn-load-").FullName;
        try
        {
            Assert.That(() => ModelFile.Load(dir), Throws.InstanceOf<FileNotFoundException>().With.Message.Contain("is a directory, not a model file"));
            string empty = Path.Combine(dir, "empty.hpcnn");
            File.WriteAllBytes(empty, []);
            Assert.That(() => ModelFile.Load(empty), Throws.InstanceOf<InvalidDataException>().With.Message.Contain("empty (0 bytes)"));
            string spec = Path.Combine(dir, "net.json");
            File.WriteAllText(spec, "{\"input\": [1, 4, 4], \"layers\": [{\"type\": \"flatten\"}]}");
            Assert.That(() => ModelFile.Load(spec), Throws.InstanceOf<InvalidDataException>().With.Message.Contain("looks like a JSON network spec"));
            Assert.That(() => ModelFile.Load(Path.Combine(dir, "none.hpcnn")), Throws.InstanceOf<FileNotFoundException>().With.Message.Contain("model file not found"));
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    [Test]
    public void ANetworkAboveTheComputeBudgetIsRefusedQuicklyNamingTheLayer()
    {
        // The file: stride-1 average pools with 256x256 windows and 255 padding on a 4x4 image (15 s an image).
        string hostile = "{\"input\": [1, 4, 4], \"layers\": [" + string.Concat(Enumerable.Repeat("{\"type\": \"avgpool2d\", \"kernel\": 256, \"stride\": 1, \"padding\": 255}, ", 3)) + "{\"type\": \"flatten\"}]}";
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.That(() => NetworkSpec.Parse(hostile), Throws.InstanceOf<InvalidDataException>().Or.InstanceOf<FormatException>());
        Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
        // Geometry a real network could have, 17 GFLOP per image: refused by the budget alone, in specs and model files.
        string costly = "{\"input\": [1, 2048, 2048], \"layers\": [{\"type\": \"avgpool2d\", \"kernel\": 64, \"stride\": 1, \"padding\": 32}, {\"type\": \"flatten\"}]}";
        Assert.That(() => NetworkSpec.Parse(costly), Throws.InstanceOf<InvalidDataException>().With.Message
            .Contain("layers[0] (avgpool2d, 64x64, stride 1, padding 32, output 1x2049x2049): the forward pass would cost 17.197 GFLOP per image").And.Message.Contain("budget of 10 GFLOP"));
        var model = NetworkSpec.Parse(costly, maxFlopsPerImage: 20_000_000_000).Model;
        var bytes = ModelFile.ToBytes(model);
        Assert.That(() => ModelFile.Read(bytes, "costly.hpcnn"), Throws.InstanceOf<InvalidDataException>().With.Message.StartWith("costly.hpcnn: layers[0] (avgpool2d"));
        Assert.That(ModelFile.Read(bytes, "costly.hpcnn", 20_000_000_000).Model.FlopsPerSample, Is.EqualTo(2049L * 2049 * 64 * 64));
        Assert.That(() => ModelFile.Read(bytes, "x", -1), Throws.InstanceOf<ArgumentOutOfRangeException>());
        // Every real network passes with room: the presets and the fixture.
        foreach (var preset in HpCnn.Presets.NetworkPresets.All)
            Assert.That(preset.Build(1).FlopsPerSample, Is.LessThan(ComputeBudget.DefaultFlopsPerImage / 100), preset.Name);
    }

    [Test]
    public void RejectsChecksumMismatchAndTruncation()
    {
        var b = Bytes();
        b[b.Length / 2] ^= 0x10;
        Assert.That(ReadError(b), Does.Contain("checksum mismatch"));
        Assert.That(ReadError(Bytes()[..^10]), Does.Contain("checksum mismatch").Or.Contain("truncated"));
    }

    /// <summary>Rewrites the checksum so the structure checks behind it are reached.</summary>
    internal static void FixChecksum(byte[] b)
    {
        uint crc = System.IO.Hashing.Crc32.HashToUInt32(b.AsSpan(0, b.Length - 4));
        BitConverter.GetBytes(crc).CopyTo(b, b.Length - 4);
    }

    internal static int ChunkOffset(byte[] b, string tag)
    {
        int pos = 12;
        while (pos + 8 <= b.Length - 4)
        {
            string t = System.Text.Encoding.ASCII.GetString(b, pos, 4);
            if (t == tag) return pos;
            pos += 8 + BitConverter.ToInt32(b, pos + 4);
        }
        throw new InvalidOperationException($"no chunk {tag}");
    }

    [Test]
    public void RejectsAChunkLongerThanTheFile()
    {
        var b = Bytes();
        int parm = ChunkOffset(b, "PARM");
        BitConverter.GetBytes(0x7FFFFFF0u).CopyTo(b, parm + 4);
        FixChecksum(b);
        Assert.That(ReadError(b), Does.Contain("chunk 'PARM' claims"));
    }

    [Test]
    public void RejectsUnknownCriticalChunksButSkipsOptionalOnes()
    {
        var b = Bytes();
        int spec = ChunkOffset(b, "SPEC");
        // Insert an unknown optional chunk "zzzz" before SPEC: still loads.
        byte[] extra = [(byte)'z', (byte)'z', (byte)'z', (byte)'z', 3, 0, 0, 0, 1, 2, 3];
        var withOptional = b[..spec].Concat(extra).Concat(b[spec..]).ToArray();
        FixChecksum(withOptional);
        Assert.DoesNotThrow(() => ModelFile.Read(withOptional));
        extra[0] = (byte)'Z';
        var withCritical = b[..spec].Concat(extra).Concat(b[spec..]).ToArray();
        FixChecksum(withCritical);
        Assert.That(ReadError(withCritical), Does.Contain("unknown chunk 'Zzzz'"));
    }

    [Test]
    public void RejectsAnArchitectureLargerThanTheWeightsPresentWithoutAllocatingIt()
    {
        // A spec asking for a 1,000,000 x 1,000 dense layer in a file that holds a few hundred floats.
        var m = new Sequential(new Shape3(1, 4, 4)).Add(new Flatten()).Add(new Dense(2));
        var b = ModelFile.ToBytes(m);
        string hostile = """{"input":[1,4,4],"layers":[{"type":"flatten"},{"type":"dense","units":1000000,"in_features":16}]}""";
        var forged = ReplaceSpec(b, hostile);
        long before = GC.GetTotalAllocatedBytes(true);
        string msg = ReadError(forged);
        long allocated = GC.GetTotalAllocatedBytes(true) - before;
        Assert.That(msg, Does.Contain("needs 16000000 values"));
        Assert.That(allocated, Is.LessThan(16_000_000), "the weights must not be allocated before the budget check");
    }

    [Test]
    public void RejectsTensorsThatDoNotMatchTheArchitecture()
    {
        var m = new Sequential(new Shape3(1, 4, 4)).Add(new Flatten()).Add(new Dense(2));
        var b = ModelFile.ToBytes(m);
        // Same parameter count (32 + 2), other shape: dense 2 -> units 1 with in_features 32 is not possible;
        // instead change the declared dims of the weight tensor in PARM.
        int parm = ChunkOffset(b, "PARM");
        int dims = parm + 8 + 4 + 4 + 1 + "weight".Length + 1; // count, layer, name length, name, rank
        BitConverter.GetBytes(16u).CopyTo(b, dims);
        FixChecksum(b);
        Assert.That(ReadError(b), Does.Contain("layer 1 (dense) weight is dimension 0 = 16, expected 2x16"));
    }

    internal static byte[] ReplaceSpec(byte[] file, string spec)
    {
        int at = ChunkOffset(file, "SPEC");
        int len = BitConverter.ToInt32(file, at + 4);
        var payload = System.Text.Encoding.UTF8.GetBytes(spec);
        var head = file[..(at + 4)];
        var result = head.Concat(BitConverter.GetBytes(payload.Length)).Concat(payload).Concat(file[(at + 8 + len)..]).ToArray();
        FixChecksum(result);
        return result;
    }
}
