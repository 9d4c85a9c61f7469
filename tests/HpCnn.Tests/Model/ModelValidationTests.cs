using HpCnn.Data;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.Model;

/// <summary>Mistakes in building, compiling and feeding a model are reported where they happen, naming what is wrong.</summary>
public class ModelValidationTests
{
    private static Sequential SmallClassifier(int classes = 3) =>
        new Sequential(new Shape3(1, 6, 6), seed: 1)
            .Add(new Conv2D(2, 3))
            .Add(new ReLU())
            .Add(new Flatten())
            .Add(new Dense(classes))
            .Compile(LossKind.CrossEntropy, new Sgd(0.01f));

    private static Dataset Data(int count, int classes, Shape3 shape, int seed = 1)
    {
        var rng = new Random(seed);
        var images = new float[count * shape.Size];
        for (int i = 0; i < images.Length; i++) images[i] = (float)rng.NextDouble();
        var labels = Enumerable.Range(0, count).Select(i => i % classes).ToArray();
        return new Dataset(images, labels, shape, classes);
    }

    [Test]
    public void LayerThatDoesNotFitIsNamedAndNotAdded()
    {
        // 6x6 -> conv 3x3 -> 4x4 -> pool 2 -> 2x2: a 3x3 kernel no longer fits.
        var model = new Sequential(new Shape3(1, 6, 6)).Add(new Conv2D(2, 3)).Add(new MaxPool2D(2));
        var conv = new Conv2D(4, 3);
        var e = Assert.Throws<ArgumentException>(() => model.Add(conv))!;
        Assert.That(e.Message, Does.StartWith("layer 2 (conv2d): "));
        Assert.That(e.Message, Does.Contain("3x3 kernel does not fit the 2x2 input"));
        Assert.That(model.Layers, Has.Count.EqualTo(2), "the failed layer is not added");
        Assert.That(conv.IsBuilt, Is.False);
        // The model stays usable, and the same layer object fits elsewhere.
        model.Add(new Conv2D(4, 2));
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(4, 1, 1)));
        new Sequential(new Shape3(1, 5, 5)).Add(conv);
        Assert.That(conv.Index, Is.EqualTo(0));
    }

    [Test]
    public void WrongChannelCountAndBadPaddingAreNamed()
    {
        var model = new Sequential(new Shape3(3, 8, 8)).Add(new Conv2D(4, 3)).Add(new ReLU());
        Assert.That(() => model.Add(new Conv2D(2, 3, inChannels: 3)),
            Throws.ArgumentException.With.Message.StartsWith("layer 2 (conv2d): ").And.Message.Contains("expected input with 3 channels, got 4x6x6"));
        Assert.That(() => model.Add(new MaxPool2D(2, padding: Padding.Symmetric(2))),
            Throws.ArgumentException.With.Message.StartsWith("layer 2 (maxpool2d): ").And.Message.Contains("padding"));
        Assert.That(() => model.Add(new Dense(3, inFeatures: 10)), Throws.ArgumentException.With.Message.StartsWith("layer 2 (dense): "));
    }

    /// <summary>
    /// Geometry no real network has is refused at the layer, whichever door builds it (the layer API, a JSON spec, a
    /// model file): pooling padding above half the window (PyTorch's rule), convolution padding of the kernel size or
    /// more, a window larger than the padded input.
    /// </summary>
    [TestCase("avgpool2d", 4, 3, "at most half the 4x4 window")]
    [TestCase("maxpool2d", 3, 2, "at most half the 3x3 window")]
    [TestCase("conv2d", 3, 3, "smaller than the 3x3 kernel")]
    [TestCase("avgpool2d", 12, 1, "window does not fit the 8x8 input")]
    [TestCase("conv2d", 11, 1, "kernel does not fit the 8x8 input")]
    public void GeometryNoRealNetworkHasIsRefusedInEveryDoor(string kind, int kernel, int pad, string message)
    {
        Layer Make() => kind switch
        {
            "conv2d" => new Conv2D(2, kernel, padding: Padding.Symmetric(pad)),
            "maxpool2d" => new MaxPool2D(kernel, 1, Padding.Symmetric(pad)),
            _ => new AvgPool2D(kernel, 1, Padding.Symmetric(pad)),
        };
        var shape = new Shape3(1, 8, 8);
        Assert.That(() => new Sequential(shape).Add(Make()),
            Throws.ArgumentException.With.Message.StartsWith($"layer 0 ({kind}): ").And.Message.Contains(message));
        string filters = kind == "conv2d" ? "\"filters\": 2, " : "";
        string spec = $$"""{"input": [1, 8, 8], "layers": [{"type": "{{kind}}", {{filters}}"kernel": {{kernel}}, "stride": 1, "padding": {{pad}}}]}""";
        Assert.That(() => HpCnn.IO.NetworkSpec.Parse(spec), Throws.InstanceOf<FormatException>().With.Message.Contains(message));
        // A model file cannot carry it either: the spec written into a file with a valid checksum (a convolution of the
        // same parameter count, so that it is the geometry that is refused).
        if (kind != "conv2d" || kernel == 3)
        {
            var ok = new Sequential(shape).Add(kind == "conv2d" ? new Conv2D(2, 3, padding: Padding.Symmetric(1)) : new AvgPool2D(2));
            var forged = HpCnn.Tests.IO.ModelFileTests.ReplaceSpec(HpCnn.IO.ModelFile.ToBytes(ok), spec);
            Assert.That(() => HpCnn.IO.ModelFile.Read(forged, "forged.hpcnn"), Throws.InstanceOf<InvalidDataException>().With.Message.Contains(message));
        }
        // The limits themselves are accepted: padding of half the window, one below the kernel.
        new Sequential(shape).Add(new Conv2D(2, 3, padding: Padding.Symmetric(2))).Add(new AvgPool2D(4, 1, Padding.Symmetric(2)))
            .Add(new MaxPool2D(3, 1, Padding.Symmetric(1)));
    }

    [Test]
    public void DenseAfterConvolutionWithoutFlattenErrorsClearly()
    {
        var model = new Sequential(new Shape3(1, 6, 6)).Add(new Conv2D(2, 3));
        Assert.That(() => model.Add(new Dense(10)),
            Throws.ArgumentException.With.Message.EqualTo("layer 1 (dense): expected a flat input, got 2x4x4 (add a flatten layer before dense)"));
    }

    [Test]
    public void AOneByOneFeatureMapIsAnImageUntilAFlatten()
    {
        // PyTorch accepts a convolution after a C x 1 x 1 map; a flattened vector has no image layout.
        var model = new Sequential(new Shape3(1, 3, 3)).Add(new Conv2D(2, 3));
        Assert.That(() => model.Add(new Conv2D(4, 3, padding: Padding.Symmetric(1))), Throws.Nothing);
        Assert.That(() => model.Add(new MaxPool2D(1)), Throws.Nothing);
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(4, 1, 1)));
        model.Add(new Flatten());
        Assert.That(model.OutputShape.IsVector, Is.True);
        Assert.That(() => model.Add(new Conv2D(4, 3, padding: Padding.Symmetric(1))),
            Throws.ArgumentException.With.Message.Contains("expected an image (channels x height x width), got a flat vector of 4"));
        model.Add(new Dense(3));
        var y = model.Predict(new float[] { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, 1);
        Assert.That(y.Count, Is.EqualTo(1), "the network runs");
    }

    [Test]
    public void LayerObjectCannotJoinTwoModels()
    {
        var relu = new ReLU();
        new Sequential(Shape3.Flat(4)).Add(relu);
        Assert.That(() => new Sequential(Shape3.Flat(4)).Add(relu),
            Throws.InvalidOperationException.With.Message.Contains("already belongs to a model"));
    }

    [Test]
    public void CompileChecksTheLossAgainstTheOutput()
    {
        var one = new Sequential(Shape3.Flat(4)).Add(new Dense(1));
        Assert.That(() => one.Compile(LossKind.CrossEntropy, new Sgd()),
            Throws.ArgumentException.With.Message.Contains("cross-entropy needs at least 2 outputs").And.Message.Contains("binary_cross_entropy"));
        var three = new Sequential(Shape3.Flat(4)).Add(new Dense(3));
        Assert.That(() => three.Compile(LossKind.BinaryCrossEntropy, new Sgd()),
            Throws.ArgumentException.With.Message.Contains("binary cross-entropy needs exactly 1 output, the model has 3"));
        var image = new Sequential(new Shape3(1, 4, 4)).Add(new Conv2D(2, 3));
        Assert.That(() => image.Compile(LossKind.MeanSquaredError, new Sgd()),
            Throws.ArgumentException.With.Message.Contains("flatten + dense"));
        Assert.That(() => new Sequential(Shape3.Flat(4)).Compile(LossKind.MeanSquaredError, new Sgd()),
            Throws.InvalidOperationException.With.Message.Contains("no layers"));
        // Valid pairs compile.
        Assert.That(one.Compile(LossKind.BinaryCrossEntropy, new Sgd()).Loss, Is.EqualTo(LossKind.BinaryCrossEntropy));
        Assert.That(three.Compile(LossKind.MeanSquaredError, new Sgd()).Loss, Is.EqualTo(LossKind.MeanSquaredError));
    }

    [Test]
    public void TrainingNeedsACompiledModel()
    {
        var model = new Sequential(Shape3.Flat(4)).Add(new Dense(2));
        Assert.That(() => model.TrainBatch(new float[8], [0, 1]), Throws.InvalidOperationException.With.Message.Contains("compile the model first"));
        Assert.That(() => model.Fit(Data(4, 2, Shape3.Flat(4))), Throws.InvalidOperationException.With.Message.Contains("compile the model first"));
        Assert.That(() => model.Evaluate(Data(4, 2, Shape3.Flat(4))), Throws.InvalidOperationException.With.Message.Contains("compile the model first"));
    }

    [Test]
    public void LabelOutOfRangeInFitNamesTheSample()
    {
        var model = SmallClassifier(classes: 3);
        var shape = model.InputShape;
        var images = new float[10 * shape.Size];
        var labels = new[] { 0, 1, 2, 0, 1, 2, 0, 4, 1, 2 };
        var data = new Dataset(images, labels, shape, classCount: 5);
        Assert.That(() => model.Fit(data), Throws.ArgumentException.With.Message.Contains("label 4 of sample 7")
            .And.Message.Contains("3 classes").And.Message.StartsWith("training data"));
        var good = new Dataset(new float[3 * shape.Size], [0, 1, 2], shape, 3);
        Assert.That(() => model.Fit(good, new FitOptions { Validation = data }),
            Throws.ArgumentException.With.Message.StartsWith("validation data").And.Message.Contains("sample 7"));
        Assert.That(() => model.Evaluate(data), Throws.ArgumentException.With.Message.Contains("label 4 of sample 7"));
        Assert.That(model.Optimizer!.Steps, Is.EqualTo(0), "nothing was trained");
    }

    [Test]
    public void LabelOutOfRangeInTrainBatchIsNamed()
    {
        var model = SmallClassifier(classes: 3);
        var images = new float[2 * model.InputShape.Size];
        Assert.That(() => model.TrainBatch(images, [1, 3]), Throws.ArgumentException.With.Message.Contains("label 3 of sample 1"));
        var binary = new Sequential(Shape3.Flat(3)).Add(new Dense(1)).Compile(LossKind.BinaryCrossEntropy, new Sgd());
        Assert.That(() => binary.TrainBatch(new float[3], [2]), Throws.ArgumentException.With.Message.Contains("label 2 of sample 0"));
    }

    [Test]
    public void ImageShapeMismatchInFitIsNamed()
    {
        var model = SmallClassifier();
        Assert.That(() => model.Fit(Data(4, 3, new Shape3(1, 5, 5))),
            Throws.ArgumentException.With.Message.Contains("images are 1x5x5, the model expects 1x6x6"));
    }

    [Test]
    public void EmptyDataErrors()
    {
        Assert.That(() => new Dataset([], [], new Shape3(1, 6, 6), 3), Throws.ArgumentException.With.Message.Contains("dataset is empty"));
        var model = SmallClassifier();
        Assert.That(() => model.TrainBatch([], []), Throws.ArgumentException.With.Message.Contains("no samples"));
        Assert.That(() => model.Predict(ReadOnlySpan<float>.Empty), Throws.ArgumentException.With.Message.Contains("model input"));
    }

    [Test]
    public void WrongInputSizeToPredictAndTrainErrors()
    {
        var model = SmallClassifier();
        // 36 values per image: 50 values is not a whole number of images.
        Assert.That(() => model.Predict(new float[50]),
            Throws.ArgumentException.With.Message.Contains("whole number of 1x6x6 images (36 values each), got 50 values"));
        Assert.That(() => model.Predict(Data(2, 3, new Shape3(1, 5, 5))),
            Throws.ArgumentException.With.Message.Contains("images are 1x5x5, the model expects 1x6x6"));
        Assert.That(() => model.PredictInto(new float[72], new float[5]),
            Throws.ArgumentException.With.Message.Contains("2 images x 3 outputs need 6"));
        Assert.That(() => model.TrainBatch(new float[72], [0]),
            Throws.ArgumentException.With.Message.Contains("expected 1 images of 1x6x6 (36 values), got 2 of them"));
        Assert.That(() => model.LayerOutput(0, new float[35]), Throws.ArgumentException.With.Message.Contains("model input"));
        Assert.That(() => model.LayerOutput(9, new float[36]),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("layer 9 does not exist"));
    }

    [Test]
    public void FitRejectsBadOptions()
    {
        var model = SmallClassifier();
        var data = Data(6, 3, model.InputShape);
        Assert.That(() => model.Fit(data, new FitOptions { Epochs = 0 }), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("epochs"));
        Assert.That(() => model.Fit(data, new FitOptions { BatchSize = 0 }), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("batch size"));
    }

    [Test]
    public void DivergingTrainingStopsWithAClearError()
    {
        var model = new Sequential(Shape3.Flat(2), seed: 3).Add(new Dense(1)).Compile(LossKind.MeanSquaredError, new Sgd(1e30f));
        var data = new Dataset([1e10f, -1e10f, 3e10f, 2e10f], [0, 1], Shape3.Flat(2), 2);
        Assert.That(() => model.Fit(data, new FitOptions { Epochs = 3, BatchSize = 1, Shuffle = false }),
            Throws.InstanceOf<ArithmeticException>().With.Message.Contains("lower the learning rate"));
    }
}
