using HpCnn.Data;
using HpCnn.Layers;
using HpCnn.Presets;
using HpCnn.Training;

namespace HpCnn.Tests.Model;

/// <summary>
/// Results depend on the seed alone: the same seed builds the same weights, and training gives the same bits
/// on any number of threads (work is split by data, never by a sum).
/// </summary>
[NonParallelizable]
public class ReproducibilityTests
{
    private int _threads;

    [SetUp]
    public void RememberThreads() => _threads = Engine.Threads;

    [TearDown]
    public void RestoreThreads() => Engine.Threads = _threads;

    /// <summary>A reference-like network with batch norm and dropout, small enough for the scalar path.</summary>
    private static Sequential SmallReference(ulong seed) =>
        new Sequential(new Shape3(1, 20, 20), seed)
            .Add(new Conv2D(8, 3, padding: Padding.Symmetric(1)))
            .Add(new BatchNorm2D())
            .Add(new ReLU())
            .Add(new MaxPool2D(2))
            .Add(new Conv2D(16, 3, padding: Padding.Symmetric(1)))
            .Add(new ReLU())
            .Add(new MaxPool2D(2))
            .Add(new Flatten())
            .Add(new Dropout(0.25f))
            .Add(new Dense(32))
            .Add(new ReLU())
            .Add(new Dense(10))
            .Compile(LossKind.CrossEntropy, new Sgd(0.05f, momentum: 0.9f));

    private static (float[] Images, int[] Labels) Batches(int count, int seed)
    {
        var rng = new Random(seed);
        var images = new float[count * 400];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 2 - 1);
        var labels = new int[count];
        for (int i = 0; i < count; i++) labels[i] = rng.Next(10);
        return (images, labels);
    }

    private static float[][] AllParameters(Sequential m) => m.Layers.SelectMany(l => l.Parameters).Select(p => (float[])p.Value.Clone()).ToArray();

    private static void AssertBitwiseEqual(float[][] a, float[][] b, string what)
    {
        Assert.That(a, Has.Length.EqualTo(b.Length));
        for (int i = 0; i < a.Length; i++)
        {
            int[] x = a[i].Select(BitConverter.SingleToInt32Bits).ToArray(), y = b[i].Select(BitConverter.SingleToInt32Bits).ToArray();
            int first = Enumerable.Range(0, x.Length).FirstOrDefault(j => x[j] != y[j], -1);
            Assert.That(first, Is.EqualTo(-1), $"{what}: tensor {i}, value {first}: {(first >= 0 ? $"{a[i][first]:R} vs {b[i][first]:R}" : "")}");
        }
    }

    /// <summary>Trains a fresh model for a few batches of 16 on <paramref name="threads"/> threads; returns its parameters and predictions.</summary>
    private static (float[][] Parameters, float[] Predictions, double[] Losses) Train(int threads)
    {
        Engine.Threads = threads;
        Assert.That(Engine.Threads, Is.EqualTo(threads));
        var model = SmallReference(seed: 2024);
        var (images, labels) = Batches(16 * 4, 1);
        var losses = new double[4];
        for (int step = 0; step < 4; step++)
            losses[step] = model.TrainBatch(images.AsSpan(step * 16 * 400, 16 * 400), labels.AsSpan(step * 16, 16));
        // A short Fit too: shuffling, a partial last batch (20 = 16 + 4), validation.
        var data = new Dataset(images[..(20 * 400)], labels[..20], new Shape3(1, 20, 20), 10);
        model.Fit(data, new FitOptions { Epochs = 1, BatchSize = 16, Validation = data });
        return (AllParameters(model), model.Predict(images).Probabilities, losses);
    }

    [Test]
    public void TrainingIsBitwiseIdenticalOnOneTwoAndThreeThreads()
    {
        var one = Train(1);
        var two = Train(2);
        var three = Train(3);
        Assert.That(one.Losses, Has.All.GreaterThan(0).And.All.Not.NaN);
        AssertBitwiseEqual(two.Parameters, one.Parameters, "2 threads vs 1");
        AssertBitwiseEqual(three.Parameters, one.Parameters, "3 threads vs 1");
        Assert.That(two.Losses, Is.EqualTo(one.Losses));
        AssertBitwiseEqual([two.Predictions, three.Predictions], [one.Predictions, one.Predictions], "predictions");
        // The batch-norm running statistics are among the parameters compared, and they moved.
        Assert.That(one.Parameters[4], Is.Not.All.EqualTo(0f), "running mean of the batch norm");
    }

    /// <summary>
    /// The reference network (421,642 parameters): large enough that the optimizer update is split across workers
    /// and a parameter spans several segments. Regression: momentum buffers were once created lazily inside the
    /// parallel update, so two workers could each allocate one and lose updates, depending on timing.
    /// </summary>
    [Test]
    public void FitOfALargeNetworkIsBitwiseIdenticalOnOneAndTwoThreads()
    {
        var rng = new Random(5);
        var images = new float[96 * 784];
        for (int i = 0; i < images.Length; i++) images[i] = (float)(rng.NextDouble() * 2 - 1);
        var labels = Enumerable.Range(0, 96).Select(_ => rng.Next(10)).ToArray();
        var data = new Dataset(images, labels, new Shape3(1, 28, 28), 10);
        float[][] Train(int threads)
        {
            Engine.Threads = threads;
            var m = NetworkPresets.Reference(3);
            m.Fit(data, new FitOptions { Epochs = 2, BatchSize = 32, Seed = 9 });
            return AllParameters(m);
        }
        var one = Train(1);
        for (int run = 0; run < 3; run++) AssertBitwiseEqual(Train(2), one, $"2 threads, run {run + 1}, vs 1 thread");
    }

    [Test]
    public void SameSeedSameWeightsOtherSeedOtherWeights()
    {
        var a = AllParameters(SmallReference(7));
        var b = AllParameters(SmallReference(7));
        AssertBitwiseEqual(a, b, "seed 7 twice");
        var c = AllParameters(SmallReference(8));
        Assert.That(a[0], Is.Not.EqualTo(c[0]), "another seed draws other weights");

        var r1 = AllParameters(NetworkPresets.Reference(42));
        var r2 = AllParameters(NetworkPresets.Reference(42));
        AssertBitwiseEqual(r1, r2, "reference network, seed 42");
        Assert.That(NetworkPresets.Reference(42).ParameterCount, Is.EqualTo(421_642));
    }

    [Test]
    public void SameSeedSameTraining()
    {
        Engine.Threads = 2;
        var a = Train(2);
        var b = Train(2);
        AssertBitwiseEqual(a.Parameters, b.Parameters, "two runs");
    }
}
