using HpCnn.Data;

namespace HpCnn.Tests.Data;

/// <summary>Filtering, splitting and standardising datasets.</summary>
public class DatasetTests
{
    private static readonly Shape3 Pixel2 = new(1, 1, 2);

    /// <summary>10 images of 2 pixels: image i holds (i, 100 + i); labels cycle 0..3.</summary>
    private static Dataset Ten()
    {
        var images = new float[20];
        for (int i = 0; i < 10; i++) { images[2 * i] = i; images[2 * i + 1] = 100 + i; }
        var labels = Enumerable.Range(0, 10).Select(i => i % 4).ToArray();
        return new Dataset(images, labels, Pixel2, 4, ["zero", "one", "two", "three"]);
    }

    [Test]
    public void ConstructorChecksItsInput()
    {
        Assert.That(() => new Dataset(new float[5], [0, 1], Pixel2, 2), Throws.ArgumentException.With.Message.Contains("need 4 pixel values, got 5"));
        Assert.That(() => new Dataset(new float[4], [0, 2], Pixel2, 2), Throws.ArgumentException.With.Message.Contains("label 2 of image 1 is outside [0, 2)"));
        Assert.That(() => new Dataset(new float[4], [0, -1], Pixel2, 2), Throws.ArgumentException.With.Message.Contains("label -1 of image 1"));
        Assert.That(() => new Dataset(new float[4], [0, 1], Pixel2, 2, ["a"]), Throws.ArgumentException.With.Message.Contains("1 class names for 2 classes"));
        Assert.That(() => new Dataset(new float[4], [0, 1], new Shape3(0, 1, 2), 2), Throws.ArgumentException.With.Message.Contains("positive"));
    }

    [Test]
    public void FilterClassesRelabelsInTheGivenOrderAndKeepsFileOrder()
    {
        var d = Ten(); // labels 0 1 2 3 0 1 2 3 0 1
        var f = d.FilterClasses(3, 1);
        // Images with label 1 or 3, in file order: 1, 3, 5, 7, 9; class 3 becomes 0, class 1 becomes 1.
        Assert.That(f.Count, Is.EqualTo(5));
        Assert.That(f.ClassCount, Is.EqualTo(2));
        Assert.That(f.Labels, Is.EqualTo(new[] { 1, 0, 1, 0, 1 }));
        Assert.That(f.Images, Is.EqualTo(new float[] { 1, 101, 3, 103, 5, 105, 7, 107, 9, 109 }));
        Assert.That(f.ClassNames, Is.EqualTo(new[] { "three", "one" }));
        // A copy: changing it leaves the original alone.
        f.Images[0] = -1;
        Assert.That(d.Images[2], Is.EqualTo(1f));
    }

    [Test]
    public void FilterClassesRejectsBadRequests()
    {
        var d = Ten();
        Assert.That(() => d.FilterClasses(), Throws.ArgumentException.With.Message.Contains("at least one class"));
        Assert.That(() => d.FilterClasses(1, 4), Throws.ArgumentException.With.Message.Contains("class 4 is outside [0, 4)"));
        Assert.That(() => d.FilterClasses(2, 2), Throws.ArgumentException.With.Message.Contains("class 2 is named twice"));
        var noThrees = new Dataset(new float[4], [0, 1], Pixel2, 4);
        Assert.That(() => noThrees.FilterClasses(3, 2), Throws.ArgumentException.With.Message.Contains("no image has class 3 or 2"));
    }

    [Test]
    public void SplitLastHoldsOutTheLastImages()
    {
        var (train, val) = Ten().SplitLast(3);
        Assert.That(train.Count, Is.EqualTo(7));
        Assert.That(val.Count, Is.EqualTo(3));
        Assert.That(val.Images, Is.EqualTo(new float[] { 7, 107, 8, 108, 9, 109 }));
        Assert.That(val.Labels, Is.EqualTo(new[] { 3, 0, 1 }));
        Assert.That(train.Images[^2..], Is.EqualTo(new float[] { 6, 106 }));
        Assert.That(val.ClassCount, Is.EqualTo(4), "the class count is kept");
        Assert.That(val.ClassNames, Is.EqualTo(new[] { "zero", "one", "two", "three" }));
        Assert.That(() => Ten().SplitLast(0), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("[1, 9]"));
        Assert.That(() => Ten().SplitLast(10), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void SplitFractionRoundsToWholeImages()
    {
        var (train, val) = Ten().SplitFraction(0.3);
        Assert.That((train.Count, val.Count), Is.EqualTo((7, 3)));
        Assert.That(val.Images[0], Is.EqualTo(7f));
        // Tiny fractions still hold out one image, large ones keep one for training.
        Assert.That(Ten().SplitFraction(0.01).Validation.Count, Is.EqualTo(1));
        Assert.That(Ten().SplitFraction(0.99).Train.Count, Is.EqualTo(1));
        Assert.That(() => Ten().SplitFraction(0), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("(0, 1)"));
        Assert.That(() => Ten().SplitFraction(1), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void SliceTakeShuffleAndCounts()
    {
        var d = Ten();
        Assert.That(d.Slice(2, 2).Images, Is.EqualTo(new float[] { 2, 102, 3, 103 }));
        Assert.That(d.Take(3).Count, Is.EqualTo(3));
        Assert.That(() => d.Slice(9, 2), Throws.InstanceOf<ArgumentOutOfRangeException>());
        Assert.That(d.ClassCounts(), Is.EqualTo(new[] { 3, 3, 2, 2 }));
        var s = d.Shuffled(5);
        Assert.That(s.Images, Is.Not.EqualTo(d.Images), "the order changed");
        Assert.That(s.ClassCounts(), Is.EqualTo(d.ClassCounts()));
        // Each shuffled image keeps its label: image (i, 100 + i) has label i % 4.
        for (int i = 0; i < 10; i++) Assert.That(s.Labels[i], Is.EqualTo((int)s.Images[2 * i] % 4));
        Assert.That(d.Shuffled(5).Images, Is.EqualTo(s.Images), "seeded");
        Assert.That(() => d.Image(10), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    // ------------------------------------------------------------------ standardisation

    /// <summary>Pixel 0 ~ 5 + 2 N(0,1)-ish, pixel 1 ~ -3 + 0.5 U, pixel 2 constant.</summary>
    private static Dataset Skewed(int count, int seed, double shift = 0)
    {
        var rng = new Random(seed);
        var images = new float[count * 3];
        for (int i = 0; i < count; i++)
        {
            images[3 * i] = (float)(5 + shift + 4 * (rng.NextDouble() - 0.5));
            images[3 * i + 1] = (float)(-3 + shift + (rng.NextDouble() - 0.5));
            images[3 * i + 2] = 7f;
        }
        return new Dataset(images, new int[count], new Shape3(1, 1, 3), 1);
    }

    private static (double Mean, double Std) Stats(IEnumerable<float> values)
    {
        var v = values.Select(x => (double)x).ToArray();
        double mean = v.Average();
        return (mean, Math.Sqrt(v.Average(x => (x - mean) * (x - mean))));
    }

    [Test]
    public void GlobalStandardizationUsesTrainStatisticsOnly()
    {
        var train = Skewed(500, 1);
        var val = Skewed(200, 2, shift: 10);
        var (trainMean, trainStd) = Stats(train.Images);
        var std = Standardization.Fit(train, StandardizeMode.Global);
        Assert.That(std.Mode, Is.EqualTo(StandardizeMode.Global));
        Assert.That(std.Mean, Has.Length.EqualTo(1));
        Assert.That(std.Mean[0], Is.EqualTo(trainMean).Within(1e-4));
        Assert.That(std.Std[0], Is.EqualTo(trainStd).Within(1e-4));
        var valBefore = (float[])val.Images.Clone();
        std.Apply(train);
        std.Apply(val);
        var (m, s) = Stats(train.Images);
        Assert.That(m, Is.EqualTo(0).Within(1e-5));
        Assert.That(s, Is.EqualTo(1).Within(1e-4));
        // Validation data moves by the training statistics, not its own.
        for (int i = 0; i < val.Images.Length; i++)
            Assert.That(val.Images[i], Is.EqualTo((valBefore[i] - trainMean) / trainStd).Within(1e-4));
        Assert.That(Stats(val.Images).Mean, Is.GreaterThan(1), "the shifted validation set is not centred");
    }

    [Test]
    public void PerPixelStandardizationUsesTrainStatisticsOnly()
    {
        var train = Skewed(500, 3);
        var val = Skewed(200, 4, shift: 10);
        var valBefore = (float[])val.Images.Clone();
        var pixelStats = Enumerable.Range(0, 3).Select(p => Stats(Enumerable.Range(0, 500).Select(i => train.Images[3 * i + p]))).ToArray();
        var std = Standardization.Fit(train, StandardizeMode.PerPixel);
        Assert.That(std.Mean, Has.Length.EqualTo(3));
        for (int p = 0; p < 2; p++)
        {
            Assert.That(std.Mean[p], Is.EqualTo(pixelStats[p].Mean).Within(1e-4), $"pixel {p} mean");
            Assert.That(std.Std[p], Is.EqualTo(pixelStats[p].Std).Within(1e-4), $"pixel {p} std");
        }
        Assert.That(std.Std[2], Is.EqualTo(1f), "a constant pixel gets std 1");
        std.Apply(train);
        std.Apply(val);
        for (int p = 0; p < 3; p++)
        {
            var (m, s) = Stats(Enumerable.Range(0, 500).Select(i => train.Images[3 * i + p]));
            Assert.That(m, Is.EqualTo(0).Within(1e-5), $"pixel {p} mean after");
            Assert.That(s, Is.EqualTo(p == 2 ? 0 : 1).Within(1e-4), $"pixel {p} std after");
        }
        for (int i = 0; i < 200; i++)
            for (int p = 0; p < 3; p++)
                Assert.That(val.Images[3 * i + p], Is.EqualTo((valBefore[3 * i + p] - pixelStats[p].Mean) / (p == 2 ? 1 : pixelStats[p].Std)).Within(1e-3));
        Assert.That(() => std.Apply(new float[8], 4), Throws.ArgumentException.With.Message.Contains("images of 3 values, got 4"));
    }

    [Test]
    public void StandardizationFromValues()
    {
        var s = Standardization.FromValues(FashionMnist.TrainMean, FashionMnist.TrainStd);
        float[] x = [0f, 1f];
        s.Apply(x, 2);
        Assert.That(x, Is.EqualTo(new[] { -0.2860f / 0.3530f, (1 - 0.2860f) / 0.3530f }).Within(1e-5f));
        Assert.That(() => Standardization.FromValues(0, 0), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
