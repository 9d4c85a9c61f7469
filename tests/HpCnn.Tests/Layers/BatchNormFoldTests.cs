using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.Layers;

/// <summary>
/// Inference folds a batch norm after a convolution into the convolution's weights and bias: checked against the plan
/// that runs every layer on its own, on every convolution algorithm, and after the statistics change.
/// </summary>
public class BatchNormFoldTests
{
    private static IEnumerable<TestCaseData> Cases()
    {
        yield return new TestCaseData(1, 12, 12, 6, 1, true, true).SetName("direct, few channels, pooled");
        yield return new TestCaseData(16, 9, 11, 24, 1, false, true).SetName("blocked, odd sizes, no bias");
        yield return new TestCaseData(8, 10, 10, 16, 2, true, false).SetName("stride 2, no pool");
        yield return new TestCaseData(64, 8, 8, 64, 1, true, true).SetName("Winograd");
    }

    [TestCaseSource(nameof(Cases))]
    public void FoldedInferenceMatchesTheLayersRunOneByOne(int inC, int h, int w, int filters, int stride, bool bias, bool pool)
    {
        var model = new Sequential(new Shape3(inC, h, w), seed: 41)
            .Add(new Conv2D(filters, 3, stride: stride, padding: Padding.Same, bias: bias))
            .Add(new BatchNorm2D())
            .Add(new ReLU());
        if (pool) model.Add(new MaxPool2D(2));
        model.Add(new Flatten()).Add(new Dense(5));
        var bn = (BatchNorm2D)model.Layers[1];
        var rng = new Random(filters * 31 + h);
        float Next(double lo, double hi) => (float)(lo + rng.NextDouble() * (hi - lo));
        bn.Gamma.Set(Enumerable.Range(0, filters).Select(_ => Next(0.5, 2)).ToArray());
        bn.Beta.Set(Enumerable.Range(0, filters).Select(_ => Next(-0.5, 0.5)).ToArray());
        bn.RunningMean.Set(Enumerable.Range(0, filters).Select(_ => Next(-0.3, 0.3)).ToArray());
        bn.RunningVar.Set(Enumerable.Range(0, filters).Select(_ => Next(0.2, 3)).ToArray());

        const int batch = 5;
        var x = new float[batch * inC * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = Next(-2, 2);
        var folded = new ExecutionPlan(model, batch, training: false, fuse: true);
        var plain = new ExecutionPlan(model, batch, training: false, fuse: false);
        Assert.That(folded.Runs[0].Epilogue.Fold, Is.SameAs(folded.Runs[1]), "the batch norm folds into the convolution");
        Assert.That(folded.Runs[1].ForwardBy, Is.SameAs(folded.Runs[0]));
        Assert.That(folded.Runs[2].ForwardBy, Is.SameAs(folded.Runs[0]), "the ReLU runs in the convolution's epilogue");

        for (int round = 0; round < 2; round++)
        {
            var (a, b) = (Run(folded, x, batch), Run(plain, x, batch));
            double scale = b.Max(v => Math.Abs(v)) + 1e-3;
            for (int i = 0; i < a.Length; i++)
                Assert.That(a[i], Is.EqualTo(b[i]).Within(2e-5 * scale), $"output {i} (round {round})");
            // The statistics move (as in training): the folded plan must see it.
            bn.RunningVar.Set(bn.RunningVar.Value.Select(v => v * 1.7f + 0.1f).ToArray());
            bn.RunningMean.Set(bn.RunningMean.Value.Select(v => v - 0.2f).ToArray());
        }
    }

    [Test]
    public void TrainingPlansDoNotFold()
    {
        var model = new Sequential(new Shape3(2, 6, 6), seed: 3)
            .Add(new Conv2D(4, 3)).Add(new BatchNorm2D()).Add(new ReLU()).Add(new Flatten()).Add(new Dense(2));
        var plan = new ExecutionPlan(model, 2, training: true, fuse: true);
        Assert.That(plan.Runs[0].Epilogue.Fold, Is.Null, "training needs the batch statistics of the convolution's output");
        Assert.That(plan.Runs[2].ForwardBy, Is.SameAs(plan.Runs[1]), "the ReLU runs in the batch norm");
    }

    private static float[] Run(ExecutionPlan p, float[] x, int batch)
    {
        p.SetBatch(batch);
        x.CopyTo(p.Input);
        p.Forward();
        return p.Output.ToArray();
    }
}
