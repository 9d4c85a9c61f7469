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
    };

    /// <summary>A model file (docs/model-format.md): only InvalidDataException may come out.</summary>
    public static void ModelFile(byte[] data)
    {
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

    /// <summary>A PNG image (hpcnn predict's input): InvalidDataException only.</summary>
    public static void PngFile(byte[] data)
    {
        try { Png.Decode(data); }
        catch (InvalidDataException) { }
    }

    private static void PredictOne(Sequential model)
    {
        if (model.Layers.Count == 0) return;
        var input = new float[model.InputShape.Size];
        for (int i = 0; i < input.Length; i++) input[i] = (i % 7) - 3;
        model.Predict(input, 1);
    }
}
