using HpCnn.IO;
using HpCnn.Layers;
using HpCnn.Presets;
using HpCnn.Training;

namespace HpCnn.Tests.IO;

public class NetworkSpecTests
{
    private const string Reference = """
        {
          "input": [1, 28, 28], "seed": 42,
          "layers": [
            {"type": "conv2d", "filters": 32, "kernel": 3, "padding": 1}, {"type": "relu"}, {"type": "maxpool2d", "kernel": 2},
            {"type": "conv2d", "filters": 64, "kernel": 3, "padding": 1}, {"type": "relu"}, {"type": "maxpool2d", "kernel": 2},
            {"type": "flatten"}, {"type": "dense", "units": 128}, {"type": "relu"}, {"type": "dense", "units": 10}
          ],
          "loss": "cross_entropy",
          "optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.9},
          "training": {"epochs": 3, "batch_size": 64}
        }
        """;

    [Test]
    public void ParsesTheReferenceNetworkLikeThePreset()
    {
        var def = NetworkSpec.Parse(Reference);
        var preset = NetworkPresets.Reference(42);
        Assert.That(def.Model.ParameterCount, Is.EqualTo(421_642));
        Assert.That(def.Epochs, Is.EqualTo(3));
        Assert.That(def.BatchSize, Is.EqualTo(64));
        Assert.That(NetworkSpec.ToJson(def.Model), Is.EqualTo(NetworkSpec.ToJson(preset)));
        // Same seed, same layers: the same initial weights.
        var a = def.Model.CopyParameterValues();
        var b = preset.CopyParameterValues();
        for (int i = 0; i < a.Length; i++) Assert.That(a[i], Is.EqualTo(b[i]));
    }

    [Test]
    public void RoundTripsEveryLayerKindAndOption()
    {
        var m = TestModels.EveryLayer();
        m.Layers[1].Frozen = true;
        string json = NetworkSpec.ToJson(m);
        var back = NetworkSpec.Parse(json).Model;
        Assert.That(NetworkSpec.ToJson(back), Is.EqualTo(json));
        Assert.That(back.Layers.Select(l => l.Describe()), Is.EqualTo(m.Layers.Select(l => l.Describe())));
        Assert.That(back.Layers[1].Frozen, Is.True);
        Assert.That(back.Optimizer, Is.InstanceOf<Adam>());
        Assert.That(back.Optimizer!.Schedule, Is.InstanceOf<StepSchedule>());
    }

    [TestCase("""{"layers": []}""", "spec: missing required field 'input'")]
    [TestCase("""{"input": [1, 28], "layers": []}""", "spec.input: expected 3 values, got 2")]
    [TestCase("""{"input": [1, 28, 28], "layers": []}""", "spec.layers: the network needs at least one layer")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "conv2d", "filtres": 3, "kernel": 3}]}""", "layers[0]: unknown field 'filtres' (did you mean 'filters'?)")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "conv2d", "filters": 3}]}""", "layers[0]: missing required field 'kernel'")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "conv2d", "filters": 3, "kernel": "big"}]}""", "layers[0].kernel: expected an array of 2 numbers, got the string \"big\"")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "conv2d", "filters": 0, "kernel": 3}]}""", "layers[0].filters: 0 is out of range")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "conv2d", "filters": 3, "kernel": 3, "padding": "full"}]}""", "layers[0].padding: unknown padding 'full'")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "convolution"}]}""", "layers[0].type: unknown layer type 'convolution'")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "dense", "units": 10}]}""", "layers[0] (dense): expected a flat input, got 1x28x28")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "dense", "units": 10}], "loss": "hinge"}""", "spec.loss: unknown loss 'hinge'")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "dense", "units": 1}], "loss": "cross_entropy"}""", "cross-entropy needs at least 2 outputs")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "dense", "units": 2}], "loss": "mse", "optimizer": {"type": "sgd", "lr": -1}}""", "spec.optimizer.lr: -1 is out of range")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "flatten"}, {"type": "dense", "units": 2}], "optimizer": "adam"}""", "an optimizer needs a loss")]
    [TestCase("""{"input": [1, 28, 28], "layers": [{"type": "maxpool2d", "kernel": 40}]}""", "layers[0] (maxpool2d): a 40x40 window does not fit the 28x28 input")]
    [TestCase("""{"input": [1, 28, 28], "layers": [}""", "not valid JSON")]
    public void ErrorsNameTheFieldAndTheProblem(string json, string expected)
    {
        var ex = Assert.Throws<FormatException>(() => NetworkSpec.Parse(json));
        Assert.That(ex!.Message, Does.Contain(expected));
    }

    [Test]
    public void ShortFormsAreAccepted()
    {
        var def = NetworkSpec.Parse("""
            {"input": [3, 16, 12], "layers": [
               {"type": "conv2d", "filters": 4, "kernel": [3, 5], "stride": [2, 1], "padding": [1, 2, 0, 2], "bias": false, "init": "he"},
               {"type": "leaky_relu", "alpha": 0.2}, {"type": "avgpool", "kernel": [2, 2], "stride": 1},
               {"type": "batchnorm"}, {"type": "flatten"}, {"type": "dropout", "rate": 0.5}, {"type": "linear", "units": 3}, {"type": "softmax"}],
             "loss": "ce", "optimizer": "adam", "schedule": {"type": "cosine", "epochs": 10}}
            """);
        var conv = (Conv2D)def.Model.Layers[0];
        Assert.That(conv.Kernel, Is.EqualTo((3, 5)));
        Assert.That(conv.Stride, Is.EqualTo((2, 1)));
        Assert.That(conv.Shape.PadTop, Is.EqualTo(1));
        Assert.That(conv.Shape.PadRight, Is.EqualTo(2));
        Assert.That(conv.HasBias, Is.False);
        Assert.That(def.Model.Optimizer, Is.InstanceOf<Adam>());
        Assert.That(def.Model.Optimizer!.Schedule, Is.InstanceOf<CosineSchedule>());
        Assert.That(def.Model.OutputShape, Is.EqualTo(Shape3.Flat(3)));
    }

    [Test]
    public void ParseLayerReadsOneLayerObject()
    {
        var l = NetworkSpec.ParseLayer("""{"type": "relu", "cap": 6}""");
        Assert.That(l, Is.InstanceOf<ReLU>());
        Assert.That(((ReLU)l).Cap, Is.EqualTo(6f));
        Assert.Throws<FormatException>(() => NetworkSpec.ParseLayer("""{"type": "relu", "cap": -1}"""));
    }
}
