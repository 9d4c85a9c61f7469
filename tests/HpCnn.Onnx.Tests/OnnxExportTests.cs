using HpCnn.Layers;
using HpCnn.Onnx;
using HpCnn.Training;
using Google.Protobuf;
using static HpCnn.Onnx.Tests.OnnxTestSupport;
using OnnxPb = global::Onnx;

namespace HpCnn.Onnx.Tests;

/// <summary>HpCnn -> ONNX -> ONNX Runtime agrees with HpCnn within 1e-5 relative; HpCnn -> ONNX -> HpCnn gives the same bits.</summary>
public class OnnxExportTests
{
    private const double Tolerance = 1e-5;

    /// <summary>Every layer type, in one network: each must map (and the file must run in ORT).</summary>
    private static Sequential EveryLayer()
    {
        var m = new Sequential(new Shape3(2, 13, 11), seed: 7)
            .Add(new Conv2D(6, 3, padding: Padding.Same)).Add(new ReLU())
            .Add(new MaxPool2D(2))
            .Add(new Conv2D(5, (3, 2), (2, 1), Padding.Explicit(1, 0, 2, 1), bias: false)).Add(new ReLU(cap: 0.8f))
            .Add(new AvgPool2D(3, 1, Padding.Symmetric(1)))
            .Add(new FeatureMapNorm(1e-3f))
            .Add(new BatchNorm2D(1e-4f, 0.2f)).Add(new LeakyReLU(0.2f))
            .Add(new Flatten()).Add(new Dropout(0.5f))
            .Add(new Dense(9)).Add(new BatchNorm2D()).Add(new Tanh())
            .Add(new Dense(7, bias: false)).Add(new Sigmoid())
            .Add(new Dense(4)).Add(new Softmax());
        RandomizeNormStatistics(m, 3);
        return m;
    }

    private static void AssertOrtAgrees(Sequential m, int batch, int seed)
    {
        var x = RandomValues(batch * m.InputShape.Size, seed, 2f);
        var expected = m.Predict(x).Probabilities;
        var actual = RunInOrt(OnnxExport.ToBytes(m), x, m.InputShape, batch);
        double err = RelativeError(expected, actual);
        Assert.That(err, Is.LessThanOrEqualTo(Tolerance), $"ONNX Runtime vs HpCnn, relative error {err:G3}\n{m.Summary()}");
    }

    [Test]
    public void EveryLayerTypeRunsInOnnxRuntimeAsInHpCnn() => AssertOrtAgrees(EveryLayer(), 5, 1);

    [Test]
    public void RandomNetworksRunInOnnxRuntimeAsInHpCnn([Range(1, 40)] int seed) => AssertOrtAgrees(RandomNetwork(seed), 1 + seed % 4, seed);

    [Test]
    public void ExportCoversEveryLayerTypeOfTheEngine()
    {
        // A new layer type must get an ONNX mapping: this lists the engine's layer classes and checks that the every-layer
        // network above has one of each.
        var kinds = typeof(Layer).Assembly.GetTypes().Where(t => t.IsSubclassOf(typeof(Layer)) && !t.IsAbstract).Select(t => t.Name).ToHashSet();
        var covered = EveryLayer().Layers.Select(l => l.GetType().Name).ToHashSet();
        Assert.That(kinds.Except(covered), Is.Empty, "layer types missing from the every-layer export test");
    }

    [Test]
    public void ASoftmaxOrSigmoidEndsTheGraphWhenPredictAppliesOne()
    {
        var ce = new Sequential(new Shape3(1, 4, 4)).Add(new Flatten()).Add(new Dense(3)).Compile(LossKind.CrossEntropy, new Sgd(0.1f));
        var bce = new Sequential(new Shape3(1, 4, 4)).Add(new Flatten()).Add(new Dense(1)).Compile(LossKind.BinaryCrossEntropy, new Sgd(0.1f));
        var mse = new Sequential(new Shape3(1, 4, 4)).Add(new Flatten()).Add(new Dense(3)).Compile(LossKind.MeanSquaredError, new Sgd(0.1f));
        Assert.That(OnnxExport.Build(ce, new()).Graph.Node.Last().OpType, Is.EqualTo("Softmax"));
        Assert.That(OnnxExport.Build(bce, new()).Graph.Node.Last().OpType, Is.EqualTo("Sigmoid"));
        Assert.That(OnnxExport.Build(mse, new()).Graph.Node.Last().OpType, Is.EqualTo("Gemm"));
        foreach (var m in new[] { ce, bce, mse }) AssertOrtAgrees(m, 3, 5);
    }

    [Test]
    public void TheBatchDimensionIsSymbolic()
    {
        var m = EveryLayer();
        var model = OnnxExport.Build(m, new());
        Assert.That(model.Graph.Input[0].Type.TensorType.Shape.Dim[0].DimParam, Is.EqualTo("batch"));
        Assert.That(model.Graph.Output[0].Type.TensorType.Shape.Dim[0].DimParam, Is.EqualTo("batch"));
        var bytes = OnnxExport.ToBytes(m);
        foreach (int batch in new[] { 1, 3, 17 })
        {
            var x = RandomValues(batch * m.InputShape.Size, batch);
            Assert.That(RelativeError(m.Predict(x).Probabilities, RunInOrt(bytes, x, m.InputShape, batch)), Is.LessThanOrEqualTo(Tolerance), $"batch {batch}");
        }
    }

    [Test]
    public void AConvolutionAfterAOneByOneMapGoesBackToAnImage()
    {
        // Flatten, then a 1x1 convolution on the C x 1 x 1 vector: the graph reshapes it to [batch, C, 1, 1].
        var m = new Sequential(new Shape3(1, 3, 3)).Add(new Conv2D(2, 3)).Add(new Flatten()).Add(new Conv2D(4, 1)).Add(new Flatten()).Add(new Dense(2));
        AssertOrtAgrees(m, 2, 9);
    }

    [Test]
    public void StandardizationIsEmbeddedAsLeadingNodes([Values("global", "per_pixel")] string mode)
    {
        var m = new Sequential(new Shape3(1, 5, 5)).Add(new Conv2D(3, 3)).Add(new ReLU()).Add(new Flatten()).Add(new Dense(3)).Add(new Softmax());
        var st = mode == "global"
            ? Data.Standardization.Create(Data.StandardizeMode.Global, [0.3f], [0.7f])
            : Data.Standardization.Create(Data.StandardizeMode.PerPixel, RandomValues(25, 1, 0.5f), RandomValues(25, 2).Select(v => 0.5f + Math.Abs(v)).ToArray());
        m.Preprocessing = new Data.Preprocessing { Standardization = st, ClassNames = ["a", "b", "c"] };
        var raw = RandomValues(4 * 25, 11);
        var standardized = (float[])raw.Clone();
        st.Apply(standardized, 25);
        var expected = m.Predict(standardized).Probabilities;
        var embedded = OnnxExport.ToBytes(m, new OnnxExportOptions { EmbedStandardization = true });
        Assert.That(RelativeError(expected, RunInOrt(embedded, raw, m.InputShape, 4)), Is.LessThanOrEqualTo(Tolerance));
        // Without the option the graph takes standardised input.
        Assert.That(RelativeError(expected, RunInOrt(OnnxExport.ToBytes(m), standardized, m.InputShape, 4)), Is.LessThanOrEqualTo(Tolerance));
        var props = OnnxExport.Build(m, new()).MetadataProps.ToDictionary(p => p.Key, p => p.Value);
        Assert.That(props["class_names"], Is.EqualTo("[\"a\",\"b\",\"c\"]"));
        Assert.That(props["hpcnn_version"], Is.EqualTo(OnnxExport.HpCnnVersion));

        // Import reads the leading nodes back as the model's standardisation (Preprocessing), not as layers: the same
        // statistics, bit for bit, also without HpCnn's own metadata in the file; the class names come with the props.
        var stripped = OnnxPb.ModelProto.Parser.ParseFrom(embedded);
        stripped.MetadataProps.Clear();
        foreach (var bytes in new[] { embedded, stripped.ToByteArray() })
        {
            var back = OnnxImport.FromBytes(bytes);
            Assert.That(back.Layers.Select(l => l.Kind), Is.EqualTo(m.Layers.Select(l => l.Kind)));
            var s = back.Preprocessing.Standardization!;
            Assert.That(s.Mode, Is.EqualTo(st.Mode));
            Assert.That(s.Mean, Is.EqualTo(st.Mean).AsCollection);
            Assert.That(back.Preprocessing.ClassNames, bytes == embedded ? Is.EqualTo(new[] { "a", "b", "c" }) : Is.Null);
            var again = Data.Standardization.Create(st.Mode, st.Mean, s.Std);
            var restandardized = (float[])raw.Clone();
            again.Apply(restandardized, 25);
            Assert.That(restandardized, Is.EqualTo(standardized).AsCollection, "the imported standardisation gives the same inputs");
            Assert.That(back.Predict(restandardized).Probabilities, Is.EqualTo(expected).AsCollection);
        }
    }

    [Test]
    public void PreprocessingTravelsThroughOnnxWithoutEmbedding()
    {
        var m = new Sequential(new Shape3(1, 5, 5)).Add(new Flatten()).Add(new Dense(3)).Add(new Softmax());
        var st = Data.Standardization.Create(Data.StandardizeMode.Global, [0.25f], [0.5f]);
        m.Preprocessing = new Data.Preprocessing { Standardization = st, ClassNames = ["x", "y", "z"], PixelScale = Data.PixelScale.Byte };
        var back = OnnxImport.FromBytes(OnnxExport.ToBytes(m));
        Assert.That(back.Preprocessing, Is.EqualTo(m.Preprocessing));
        var raw = Enumerable.Range(0, 2 * 25).Select(i => (byte)(i * 37 % 256)).ToArray();
        Assert.That(back.PredictRaw(raw).Probabilities, Is.EqualTo(m.PredictRaw(raw).Probabilities).AsCollection);
    }

    [Test]
    public void EmbeddingWithoutStandardizationIsRefused()
    {
        var m = new Sequential(new Shape3(1, 4, 4)).Add(new Flatten()).Add(new Dense(2));
        Assert.That(() => OnnxExport.ToBytes(m, new OnnxExportOptions { EmbedStandardization = true }),
            Throws.InstanceOf<InvalidOperationException>().With.Message.Contains("no standardization"));
    }

    [Test]
    public void RoundTripGivesTheSameBits([Range(1, 40)] int seed)
    {
        var m = seed == 1 ? EveryLayer() : RandomNetwork(seed);
        var back = OnnxImport.FromBytes(OnnxExport.ToBytes(m));
        var x = RandomValues(3 * m.InputShape.Size, seed + 100, 2f);
        var a = m.Predict(x).Probabilities;
        var b = back.Predict(x).Probabilities;
        Assert.That(b, Is.EqualTo(a).AsCollection, $"{m.Summary()}\n{back.Summary()}");
    }

    [Test]
    public void RoundTripKeepsTheMetadataAndCanBeSavedAndFineTuned()
    {
        var m = EveryLayer();
        m.Metadata = "{\"class_names\": [\"w\", \"x\", \"y\", \"z\"]}";
        string dir = Path.Combine(Path.GetTempPath(), "hpcnn-onnx-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string onnx = Path.Combine(dir, "m.onnx"), hp = Path.Combine(dir, "m.hpcnn");
            m.SaveOnnx(onnx);
            var back = Sequential.LoadOnnx(onnx);
            Assert.That(back.Metadata, Is.EqualTo(m.Metadata));
            back.Save(hp);
            var reloaded = Sequential.Load(hp);
            var x = RandomValues(2 * m.InputShape.Size, 4);
            Assert.That(reloaded.Predict(x).Probabilities, Is.EqualTo(m.Predict(x).Probabilities).AsCollection);
            reloaded.Compile(LossKind.CrossEntropy, new Sgd(0.05f));
            var before = reloaded.CopyParameterValues();
            double loss = reloaded.TrainBatch(x, [1, 3]);
            Assert.That(double.IsFinite(loss));
            Assert.That(reloaded.CopyParameterValues().Zip(before).Any(p => !p.First.SequenceEqual(p.Second)), "a training step changed the weights");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }
}
