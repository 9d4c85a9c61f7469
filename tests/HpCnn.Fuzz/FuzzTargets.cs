using System.Buffers.Binary;
using HpCnn.Data;
using HpCnn.Imaging;
using HpCnn.IO;
using HpCnn.Onnx;

namespace HpCnn.Fuzz;

/// <summary>
/// One fuzz target per untrusted input format. Each reads the bytes as the library would and, when they are
/// accepted, uses the result (a model predicts one image), so that a file which loads but breaks inference is a
/// finding too. The documented rejection (the exception type each door promises) is the expected outcome; any other
/// exception escapes and is a crash for AFL, and a run longer than AFL's timeout is a hang.
/// </summary>
public static class FuzzTargets
{
    /// <summary>Compute budget while fuzzing: a model that loads predicts one image in well under AFL's timeout.</summary>
    private const long FlopBudget = 20_000_000;

    public static readonly IReadOnlyDictionary<string, Action<byte[]>> All = new Dictionary<string, Action<byte[]>>
    {
        ["model"] = ModelFile,
        ["spec"] = Spec,
        ["idx"] = IdxFile,
        ["onnx"] = OnnxFile,
        ["png"] = PngFile,
        ["cifar"] = CifarFile,
    };

    private static readonly string CifarPath = Path.Combine(Path.GetTempPath(), $"hpcnn-fuzz-cifar-{Environment.ProcessId}.bin");

    /// <summary>A CIFAR-10 batch file, and the same bytes as a batches.meta.txt: InvalidDataException only. The readers
    /// take paths (they check sizes before reading), so the bytes go through one temporary file per process.</summary>
    public static void CifarFile(byte[] data)
    {
        File.WriteAllBytes(CifarPath, data);
        try { Cifar10.ReadBatch(CifarPath); }
        catch (InvalidDataException) { }
        try { Cifar10.ReadClassNames(CifarPath); }
        catch (InvalidDataException) { }
    }

    /// <summary>A model file (docs/model-format.md): only InvalidDataException may come out. The harness rewrites the
    /// file's CRC-32 so that mutations reach the structure checks behind it (a wrong checksum is a unit test's job).</summary>
    public static void ModelFile(byte[] data)
    {
        if (data.Length >= 16) BinaryPrimitives.WriteUInt32LittleEndian(data.AsSpan(data.Length - 4), Crc32(data.AsSpan(0, data.Length - 4)));
        Sequential model;
        try { model = IO.ModelFile.Read(data, "fuzz.hpcnn", FlopBudget).Model; }
        catch (InvalidDataException) { return; }
        PredictOne(model);
    }

    /// <summary>A JSON network spec: FormatException (a bad spec, naming the field), ArgumentException or
    /// InvalidDataException (above the compute budget).</summary>
    public static void Spec(byte[] data)
    {
        string json;
        try { json = new System.Text.UTF8Encoding(false, true).GetString(data); }
        catch (ArgumentException) { return; } // not UTF-8: the C door refuses it before the parser
        Sequential model;
        try { model = NetworkSpec.Parse(json, maxFlopsPerImage: FlopBudget).Model; }
        catch (FormatException) { return; }
        catch (ArgumentException) { return; }
        catch (InvalidDataException) { return; }
        PredictOne(model);
    }

    /// <summary>An IDX file, raw or gzip: InvalidDataException only.</summary>
    public static void IdxFile(byte[] data)
    {
        try { Idx.Read(new MemoryStream(data, writable: false), "fuzz.idx"); }
        catch (InvalidDataException) { }
    }

    /// <summary>An ONNX file: InvalidDataException only.</summary>
    public static void OnnxFile(byte[] data)
    {
        Sequential model;
        try { model = OnnxImport.FromBytes(data, FlopBudget); }
        catch (InvalidDataException) { return; }
        PredictOne(model);
    }

    /// <summary>An image file (hpcnn predict's input; ImageDecoding, so PNG, JPEG, BMP and GIF alike): InvalidDataException
    /// only. The harness rewrites every PNG chunk's CRC-32 it can find, so that mutations of the chunk data reach the
    /// decoder even where it checks them.</summary>
    public static void PngFile(byte[] data)
    {
        for (long pos = 8; pos + 12 <= data.Length;)
        {
            long length = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan((int)pos));
            if (pos + 12 + length > data.Length) break;
            BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan((int)(pos + 8 + length)), Crc32(data.AsSpan((int)pos + 4, (int)length + 4)));
            pos += 12 + length;
        }
        try { HpCnn.Imaging.ImageDecoding.Decode(data); }
        catch (InvalidDataException) { }
    }

    private static readonly uint[] CrcTable = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        return c;
    }).ToArray();

    /// <summary>CRC-32 of zlib and PNG (HpCnn's own is internal).</summary>
    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        uint c = 0xFFFFFFFFu;
        foreach (byte b in bytes) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFFu;
    }

    private static void PredictOne(Sequential model)
    {
        if (model.Layers.Count == 0) return;
        var input = new float[model.InputShape.Size];
        for (int i = 0; i < input.Length; i++) input[i] = (i % 7) - 3;
        model.Predict(input, 1);
    }
}
