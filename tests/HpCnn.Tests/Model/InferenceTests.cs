using HpCnn.Data;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.Model;

/// <summary>Evaluate, Predict and LayerOutput.</summary>
public class InferenceTests
{
    /// <summary>Uniform images in [-1, 1) and uniform labels.</summary>
    internal static Dataset RandomData(Shape3 shape, int count, int classes, int seed)
    {
        var rng = new Random(seed);
        var images = new float[count * shape.Size];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 2 - 1);
        var labels = new int[count];
        for (int i = 0; i < count; i++) labels[i] = rng.Next(classes);
        return new Dataset(images, labels, shape, classes);
    }

    private static Sequential Classifier(bool softmaxLayer, ulong seed = 3)
    {
        var m = new Sequential(new Shape3(2, 6, 5), seed)
            .Add(new Conv2D(4, 3, padding: Padding.Same))
            .Add(new ReLU())
            .Add(new MaxPool2D(2))
            .Add(new Flatten())
            .Add(new Dense(5));
        if (softmaxLayer) m.Add(new Softmax());
        return m.Compile(LossKind.CrossEntropy, new Sgd(0.1f));
    }

    [Test]
    public void LayerOutputIsTheConvolutionBeforeItsReLU()
    {
        var model = Classifier(softmaxLayer: false);
        var data = RandomData(model.InputShape, 3, 5, 1);
        var conv = (Conv2D)model.Layers[0];
        var pre = model.LayerOutput(0, data.Images);
        Assert.That(pre, Has.Length.EqualTo(3 * conv.OutputShape.Size));
        Assert.That(pre.Count(v => v < 0), Is.GreaterThan(pre.Length / 10), "the feature maps before the ReLU have negative values");

        // The reference convolution of the same weights gives the same maps.
        var expected = new float[pre.Length];
        HpCnn.Kernels.Conv2dKernels.ReferenceForward(conv.Shape, 3, data.Images, conv.Weight.Value, conv.Bias!.Value, expected);
        Assert.That(pre, Is.EqualTo(expected).Within(1e-5f));

        var post = model.LayerOutput(1, data.Images);
        Assert.That(post, Is.EqualTo(pre.Select(v => Math.Max(v, 0f)).ToArray()), "after the ReLU layer");
        var pooled = model.LayerOutput(2, data.Images);
        Assert.That(pooled, Has.Length.EqualTo(3 * 4 * 3 * 2));
    }

    [Test]
    public void LayerOutputOfTheLastLayerMatchesPredict()
    {
        var model = Classifier(softmaxLayer: true);
        var data = RandomData(model.InputShape, 70, 5, 2); // more than one 64-image block
        var last = model.LayerOutput(5, data.Images);
        Assert.That(last, Is.EqualTo(model.Predict(data).Probabilities).Within(1e-6f));
    }

    [TestCase(false)]
    [TestCase(true)]
    public void PredictGivesProbabilitiesForCrossEntropyModels(bool softmaxLayer)
    {
        var model = Classifier(softmaxLayer);
        var data = RandomData(model.InputShape, 9, 5, 3);
        var p = model.Predict(data, batchSize: 4);
        Assert.That(p.Count, Is.EqualTo(9));
        Assert.That(p.ClassCount, Is.EqualTo(5));
        for (int i = 0; i < p.Count; i++)
        {
            var row = p.ProbabilitiesOf(i).ToArray();
            Assert.That(row, Has.All.InRange(0f, 1f));
            Assert.That(row.Sum(v => (double)v), Is.EqualTo(1).Within(1e-5), $"sample {i}");
            Assert.That(p.Classes[i], Is.EqualTo(Array.IndexOf(row, row.Max())));
        }
        // Without a softmax layer the model outputs logits; Predict applies the softmax.
        if (!softmaxLayer)
        {
            var logits = model.LayerOutput(4, data.Images.AsSpan(0, model.InputShape.Size));
            double sum = logits.Sum(v => Math.Exp(v));
            Assert.That(p.ProbabilitiesOf(0).ToArray(), Is.EqualTo(logits.Select(v => (float)(Math.Exp(v) / sum)).ToArray()).Within(1e-6f));
        }
    }

    [Test]
    public void PredictForBinaryModelsGivesOneProbability()
    {
        var model = new Sequential(Shape3.Flat(4), seed: 2).Add(new Dense(1)).Compile(LossKind.BinaryCrossEntropy, new Sgd());
        ((Dense)model.Layers[0]).Weight.Set([1f, -1f, 0.5f, 0f]);
        ((Dense)model.Layers[0]).Bias!.Set([0f]);
        // Logits 1 - 2 + 1 = 0 -> 0.5 (class 1: p >= 0.5); 0 - 3 + 0 = -3 -> 1 / (1 + e^3).
        var p = model.Predict([1f, 2, 2, 9, 0, 3, 0, 9]);
        Assert.That(p.Probabilities, Is.EqualTo(new[] { 0.5f, (float)(1 / (1 + Math.Exp(3))) }).Within(1e-6f));
        Assert.That(p.Classes, Is.EqualTo(new[] { 1, 0 }));
        Assert.That(model.ClassCount, Is.EqualTo(2));
    }

    [Test]
    public void EvaluateConfusionMatrixAddsUp()
    {
        var model = Classifier(softmaxLayer: false);
        var data = RandomData(model.InputShape, 37, 5, 4);
        var ev = model.Evaluate(data, batchSize: 8);
        var c = ev.Confusion;
        Assert.That(c.GetLength(0), Is.EqualTo(5));
        Assert.That(c.Cast<int>().Sum(), Is.EqualTo(37), "every sample counted once");
        Assert.That(ev.Count, Is.EqualTo(37));
        int diagonal = Enumerable.Range(0, 5).Sum(k => c[k, k]);
        Assert.That(ev.Correct, Is.EqualTo(diagonal));
        Assert.That(ev.Accuracy, Is.EqualTo(diagonal / 37.0));
        var counts = data.ClassCounts();
        for (int t = 0; t < 5; t++)
            Assert.That(Enumerable.Range(0, 5).Sum(k => c[t, k]), Is.EqualTo(counts[t]), $"row {t} holds the samples of class {t}");
        // Columns follow the predictions.
        var predicted = model.Predict(data).Classes;
        for (int k = 0; k < 5; k++)
            Assert.That(Enumerable.Range(0, 5).Sum(t => c[t, k]), Is.EqualTo(predicted.Count(v => v == k)), $"column {k}");
        var perClass = ev.PerClassAccuracy();
        for (int t = 0; t < 5; t++)
            Assert.That(perClass[t], counts[t] == 0 ? Is.NaN : Is.EqualTo((double)c[t, t] / counts[t]));
    }

    [Test]
    public void EvaluateLossIsTheMeanCrossEntropy()
    {
        var model = Classifier(softmaxLayer: true);
        var data = RandomData(model.InputShape, 11, 5, 5);
        var p = model.Predict(data);
        double expected = Enumerable.Range(0, 11).Average(i => -Math.Log(p.ProbabilitiesOf(i)[data.Labels[i]]));
        Assert.That(model.Evaluate(data, batchSize: 3).Loss, Is.EqualTo(expected).Within(1e-5));
        Assert.That(model.Evaluate(data, batchSize: 256).Loss, Is.EqualTo(expected).Within(1e-5), "the batch size does not matter");
    }

    [Test]
    public void PredictIsTheSameFromManyThreads()
    {
        var model = Classifier(softmaxLayer: false);
        var data = RandomData(model.InputShape, 16, 5, 6);
        var expected = model.Predict(data).Probabilities;
        var results = new float[8][];
        Parallel.For(0, 8, i => results[i] = model.Predict(data).Probabilities);
        foreach (var r in results) Assert.That(r, Is.EqualTo(expected), "concurrent calls give the same bits");
        Parallel.For(0, 8, i => results[i] = model.Predict(data, batchSize: 1 + i % 5).Probabilities);
        foreach (var r in results) Assert.That(r, Is.EqualTo(expected).Within(1e-6f), "any batch size");
    }
}
