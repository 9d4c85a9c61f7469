using System.Text.Json;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Cli.Tests;

/// <summary>hpcnn export / hpcnn import end to end: a model file out to ONNX and back, with its preprocessing.</summary>
[NonParallelizable]
public class OnnxCliTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "hpcnn-cli-onnx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    /// <summary>
    /// A small trained-looking model with the metadata `hpcnn train` wrote before the engine kept the preprocessing (class
    /// names and global standardisation in the meta chunk, no prep chunk): such files still load with it.
    /// </summary>
    private string ModelFile(bool standardization)
    {
        var m = new Sequential(new Shape3(1, 8, 8), seed: 5)
            .Add(new Conv2D(4, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Flatten()).Add(new Dense(3))
            .Compile(LossKind.CrossEntropy, new Sgd(0.01f));
        m.Metadata = "{\"dataset\": \"test\", \"class_names\": [\"a\", \"b\", \"c\"]" +
                     (standardization ? ", \"standardization\": {\"mode\": \"global\", \"mean\": [0.286], \"std\": [0.353]}" : "") + "}";
        string path = Path.Combine(_dir, standardization ? "std.hpcnn" : "plain.hpcnn");
        m.Save(path);
        return path;
    }

    private static float[] Images(int n) => Enumerable.Range(0, n * 64).Select(i => (i * 37 % 101) / 50f - 1f).ToArray();

    [Test]
    public void ExportThenImportPredictsTheSameBits([Values(false, true)] bool embed)
    {
        string model = ModelFile(standardization: true), onnx = Path.Combine(_dir, "m.onnx"), back = Path.Combine(_dir, "back.hpcnn");
        var args = new List<string> { "export", model, onnx };
        if (embed) args.Add("--embed-standardization");
        var r = Cli.Run(_dir, [.. args]);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Out, Does.Contain("opset 13"));
        var i = Cli.Run(_dir, "import", onnx, back);
        Assert.That(i.ExitCode, Is.EqualTo(0), i.All);
        Assert.That(i.Out, Does.Contain("6 layers").And.Contain("input 1x8x8"));
        var original = Sequential.Load(model);
        var imported = Sequential.Load(back);
        var x = Images(4);
        // The ONNX graph ends with the softmax that predict applies: the imported model has it as a layer.
        Assert.That(imported.Layers[^1], Is.InstanceOf<Softmax>());
        Assert.That(imported.Predict(x).Probabilities, Is.EqualTo(original.Predict(x).Probabilities).AsCollection);
        using var meta = JsonDocument.Parse(imported.Metadata!);
        Assert.That(meta.RootElement.GetProperty("class_names").GetArrayLength(), Is.EqualTo(3));
        var st = meta.RootElement.GetProperty("standardization");
        Assert.That(st.GetProperty("mean")[0].GetSingle(), Is.EqualTo(0.286f));
        // The file has the layout `hpcnn train` wrote before the engine kept the preprocessing: both models carry it.
        Assert.That(original.Preprocessing.ClassNames, Is.EqualTo(new[] { "a", "b", "c" }));
        Assert.That(imported.Preprocessing.Standardization!.Mean[0], Is.EqualTo(0.286f));
        Assert.That(imported.Preprocessing.ClassNames, Is.EqualTo(new[] { "a", "b", "c" }));
        // The imported model file works with the other commands.
        var inspect = Cli.Run(_dir, "inspect", back);
        Assert.That(inspect.ExitCode, Is.EqualTo(0), inspect.All);
        Assert.That(inspect.Out, Does.Contain("classes: a, b, c"));
        Assert.That(inspect.Out, Does.Contain("preprocessing: pixels 0-1, standardised globally (mean 0.286, std 0.353)"));
        Assert.That(i.Out, Does.Contain("loss cross_entropy"));
        Assert.That(imported.Loss, Is.EqualTo(LossKind.CrossEntropy));
    }

    [Test]
    public void ErrorsSayWhatIsWrong()
    {
        var noStd = Cli.Run(_dir, "export", ModelFile(standardization: false), Path.Combine(_dir, "x.onnx"), "--embed-standardization");
        Assert.That(noStd.ExitCode, Is.EqualTo(1));
        Assert.That(noStd.Err, Does.Contain("no saved standardisation"));
        string garbage = Path.Combine(_dir, "garbage.onnx");
        File.WriteAllBytes(garbage, [0x08, 0x07, 0x12, 0x05, 0x01, 0x02]);
        var bad = Cli.Run(_dir, "import", garbage, Path.Combine(_dir, "y.hpcnn"));
        Assert.That(bad.ExitCode, Is.EqualTo(1));
        Assert.That(bad.Err, Does.Contain("garbage.onnx").And.Contain("ONNX"));
        Assert.That(File.Exists(Path.Combine(_dir, "y.hpcnn")), Is.False);
        var missing = Cli.Run(_dir, "import", Path.Combine(_dir, "none.onnx"), Path.Combine(_dir, "z.hpcnn"));
        Assert.That(missing.ExitCode, Is.EqualTo(1));
        Assert.That(missing.Err, Does.Contain("not found"));
        var usage = Cli.Run(_dir, "export");
        Assert.That(usage.ExitCode, Is.EqualTo(2));
        var help = Cli.Run(_dir, "--help");
        Assert.That(help.Out, Does.Contain("export").And.Contain("import"));
    }
}
