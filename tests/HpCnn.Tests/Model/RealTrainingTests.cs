using HpCnn.Data;
using HpCnn.Presets;
using HpCnn.Tests.Data;
using HpCnn.Training;

namespace HpCnn.Tests.Model;

/// <summary>A short run on real data that must learn (skipped when Fashion-MNIST is not installed).</summary>
public class RealTrainingTests
{
    [Test]
    public void SeedBinaryTellsTrousersFromDresses()
    {
        var (train, _) = FashionMnistData.LoadOrIgnore();
        var preset = NetworkPresets.Get("seed-binary");
        // The seed tutorial's task on a subset: trouser (1) -> 0, dress (3) -> 1; 2,000 to train, the next 500 validate,
        // standardised per pixel with the training part's statistics.
        var pair = train.FilterClasses(1, 3).Slice(0, 2500);
        var (fit, val) = pair.SplitLast(500);
        var std = Standardization.Fit(fit, StandardizeMode.PerPixel);
        std.Apply(fit);
        std.Apply(val);

        var model = preset.Build(42);
        Assert.That(model.Loss, Is.EqualTo(LossKind.BinaryCrossEntropy));
        double before = model.Evaluate(val).Accuracy;
        var history = model.Fit(fit, new FitOptions { Epochs = 2, BatchSize = preset.BatchSize, Validation = val });

        Assert.That(preset.BatchSize, Is.EqualTo(1), "the tutorial trains per sample");
        Assert.That(history.Epochs, Has.Count.EqualTo(2));
        Assert.That(history.Epochs[^1].ValAccuracy, Is.GreaterThanOrEqualTo(0.9), $"validation accuracy (before training {before:F3})");
        Assert.That(history.Epochs[^1].TrainLoss, Is.LessThan(history.Epochs[0].TrainLoss * 1.05));
        Assert.That(model.Evaluate(val).Accuracy, Is.EqualTo(history.Epochs[^1].ValAccuracy));
    }
}
