using HpCnn.IO;
using HpCnn.Layers;

namespace HpCnn.Tests.Layers;

/// <summary>Each layer type has one home (<see cref="LayerType"/>): the spec reader, the writer, the docs and the constructor agree.</summary>
public class LayerTypeTests
{
    // One network with every layer type, each with its non-default fields where it has any.
    private const string EveryType = """
        {"input": [2, 12, 12], "layers": [
          {"type": "conv2d", "filters": 4, "kernel": [3, 5], "stride": [1, 2], "padding": [1, 2, 1, 2], "bias": false, "in_channels": 2, "init": "normal", "init_std": 0.5},
          {"type": "batchnorm2d", "epsilon": 0.001, "momentum": 0.25},
          {"type": "leakyrelu", "alpha": 0.2},
          {"type": "avgpool2d", "kernel": 3, "stride": 1, "padding": 1},
          {"type": "featuremapnorm", "epsilon": 0.01},
          {"type": "maxpool2d", "kernel": [2, 1], "padding": "same"},
          {"type": "relu", "cap": 6},
          {"type": "tanh"}, {"type": "sigmoid"},
          {"type": "flatten"},
          {"type": "dropout", "rate": 0.5, "seed": 7},
          {"type": "dense", "units": 3, "in_features": 144, "init": "he"},
          {"type": "softmax"}
        ]}
        """;

    [Test]
    public void EveryTypeReadsWhatItWrites()
    {
        var model = NetworkSpec.Parse(EveryType).Model;
        Assert.That(model.Layers.Select(l => l.Kind).Order(), Is.EquivalentTo(LayerTypes.All.Select(t => t.Name)),
            "the test network must hold every layer type once (add the new type to it)");
        foreach (var layer in model.Layers)
        {
            string json = LayerJson(layer);
            var again = NetworkSpec.ParseLayer(json);
            Assert.That(again.Kind, Is.EqualTo(layer.Kind));
            Assert.That(LayerJson(again), Is.EqualTo(json), layer.Kind);
            Assert.That(LayerTypes.Find(layer.Kind.ToUpperInvariant()), Is.SameAs(LayerTypes.All.Single(t => t.Name == layer.Kind)));
        }
    }

    [Test]
    public void AliasesAndTheUnknownTypeMessageComeFromTheTypes()
    {
        Assert.That(NetworkSpec.ParseLayer("""{"type": "Conv", "filters": 2, "kernel": 1}""").Kind, Is.EqualTo("conv2d"));
        Assert.That(NetworkSpec.ParseLayer("""{"type": "leaky_relu"}""").Kind, Is.EqualTo("leakyrelu"));
        var e = Assert.Throws<FormatException>(() => NetworkSpec.ParseLayer("""{"type": "conv3d"}"""))!;
        Assert.That(e.Message, Is.EqualTo($"layer.type: unknown layer type 'conv3d' (known: {string.Join(", ", LayerTypes.All.Select(t => t.Name))})"));
        var f = Assert.Throws<FormatException>(() => NetworkSpec.ParseLayer("""{"type": "batchnorm2d", "momentun": 0.2}"""))!;
        Assert.That(f.Message, Does.StartWith("layer: unknown field 'momentun' (did you mean 'momentum'?)"));
    }

    /// <summary>The spec refuses exactly what the constructor refuses, with the constructor's words and the field's path.</summary>
    [TestCase("""{"type": "relu", "cap": -1}""", "layer.cap: relu: cap must be positive, got -1")]
    [TestCase("""{"type": "relu", "cap": 0}""", "layer.cap: relu: cap must be positive, got 0")]
    [TestCase("""{"type": "batchnorm2d", "epsilon": 0}""", "layer.epsilon: batchnorm2d: epsilon must be positive, got 0")]
    [TestCase("""{"type": "batchnorm2d", "momentum": 1.5}""", "layer.momentum: batchnorm2d: momentum must be in [0, 1], got 1.5")]
    [TestCase("""{"type": "featuremapnorm", "epsilon": -2}""", "layer.epsilon: featuremapnorm: epsilon must be positive, got -2")]
    [TestCase("""{"type": "leakyrelu", "alpha": 1}""", "layer.alpha: leakyrelu: alpha must be in [0, 1), got 1")]
    [TestCase("""{"type": "dropout", "rate": -0.1}""", "layer.rate: dropout: rate must be in [0, 1), got -0.1")]
    [TestCase("""{"type": "relu", "cap": 1e300}""", "layer.cap: 1E+300 is beyond the range of a float")]
    public void TheSpecRefusesWithTheConstructorsRule(string json, string message)
    {
        var e = Assert.Throws<FormatException>(() => NetworkSpec.ParseLayer(json))!;
        Assert.That(e.Message, Is.EqualTo(message));
        if (e.InnerException is ArgumentException inner) // the constructor said it first
            Assert.That(message, Does.EndWith(inner.Message.Replace($" (Parameter '{inner.ParamName}')", "")));
    }

    [Test]
    public void TheDefaultsAreTheConstructors()
    {
        var bn = (BatchNorm2D)NetworkSpec.ParseLayer("""{"type": "batchnorm2d"}""");
        Assert.That((bn.Epsilon, bn.Momentum), Is.EqualTo((new BatchNorm2D().Epsilon, new BatchNorm2D().Momentum)));
        Assert.That(((LeakyReLU)NetworkSpec.ParseLayer("""{"type": "leakyrelu"}""")).Alpha, Is.EqualTo(new LeakyReLU().Alpha));
        Assert.That(((FeatureMapNorm)NetworkSpec.ParseLayer("""{"type": "featuremapnorm"}""")).Epsilon, Is.EqualTo(new FeatureMapNorm().Epsilon));
        var pool = (MaxPool2D)NetworkSpec.ParseLayer("""{"type": "maxpool2d"}""");
        Assert.That((pool.Kernel, pool.Stride, pool.Padding), Is.EqualTo((new MaxPool2D().Kernel, new MaxPool2D().Stride, new MaxPool2D().Padding)));
        Assert.That(((ReLU)NetworkSpec.ParseLayer("""{"type": "relu"}""")).Cap, Is.Null);
    }

    /// <summary>The README's spec table and ONNX table list every layer type, and the spec table names each field.</summary>
    [Test]
    public void TheReadmeTablesListEveryTypeAndField()
    {
        string readme = File.ReadAllText(Path.Combine(TestContext.CurrentContext.TestDirectory, "..", "..", "..", "..", "..", "README.md"));
        var specRows = TableRows(readme, "| layer `type` | fields (defaults) |");
        var onnxRows = TableRows(readme, "| HpCnn layer | ONNX | semantics |");
        foreach (var t in LayerTypes.All)
        {
            var row = specRows.SingleOrDefault(r => FirstCell(r).Contains($"`{t.Name}`"));
            Assert.That(row, Is.Not.Null, $"README's layer table has no row for {t.Name}");
            foreach (var f in t.Fields) Assert.That(row, Does.Contain($"`{f}`"), $"README's layer table: {t.Name} does not name field {f}");
            Assert.That(onnxRows.Any(r => FirstCell(r).Contains($"`{t.Name}`")), $"README's ONNX export table has no row for {t.Name}");
        }
    }

    private static List<string> TableRows(string text, string header)
    {
        var lines = text.Split('\n');
        int start = Array.FindIndex(lines, l => l.TrimEnd() == header);
        Assert.That(start, Is.GreaterThanOrEqualTo(0), $"README has no table headed {header}");
        return lines.Skip(start + 2).TakeWhile(l => l.StartsWith('|')).ToList();
    }

    private static string FirstCell(string row) => row.Split('|')[1];

    private static string LayerJson(Layer layer)
    {
        using var ms = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(ms)) layer.WriteSpec(w);
        return System.Text.Encoding.UTF8.GetString(ms.ToArray());
    }
}
