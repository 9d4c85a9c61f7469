using HpCnn.Training;
using HpCnn.Kernels;
using HpCnn.Layers;
using static HpCnn.Tests.Layers.GradientCheck;

namespace HpCnn.Tests.Layers;

/// <summary>
/// Finite-difference checks of every layer's input and parameter gradients for the objective
/// L = sum(output * R), on odd shapes: non-square kernels and images, stride 2, asymmetric padding,
/// several channels, batches above 1 (and above the 8 gradient chunks of a convolution).
/// </summary>
public class LayerGradientTests
{
    /// <summary>Distinct values (a shuffled ramp, step 0.01) so max-pool windows have no near-ties.</summary>
    private static float[] DistinctValues(Random rng, int count)
    {
        var a = new float[count];
        for (int i = 0; i < count; i++) a[i] = (i - count / 2) * 0.01f;
        rng.Shuffle(a);
        return a;
    }

    private static float[] RandomInput(Sequential model, int batch, int seed, double lo = -1, double hi = 1) =>
        Uniform(new Random(seed), batch * model.InputShape.Size, lo, hi);

    [Test]
    public void CheckerRejectsAWrongGradient()
    {
        var model = new Sequential(new Shape3(2, 4, 5), seed: 3).Add(new Conv2D(3, (2, 3), (2, 1), Padding.Explicit(1, 0, 0, 2)));
        var grads = Objective(model, 2, RandomInput(model, 2, 1));
        const double tol = DefaultTolerance;
        Assert.That(grads.Select(g => Mismatch(g, tol)), Is.All.Null, "the correct gradient must pass");
        foreach (var g in grads)
        {
            var scaled = g with { Analytic = g.Analytic.Select(a => a * 1.01).ToArray() };
            Assert.That(Mismatch(scaled, tol), Is.Not.Null, $"{g.Name}: a gradient 1% too large must fail");
            int worst = Array.IndexOf(g.Numeric, g.Numeric.MaxBy(Math.Abs));
            var flipped = g with { Analytic = (double[])g.Analytic.Clone() };
            flipped.Analytic[worst] = -flipped.Analytic[worst];
            Assert.That(Mismatch(flipped, tol), Is.Not.Null, $"{g.Name}: one wrong sign must fail");
            var dropped = g with { Analytic = (double[])g.Analytic.Clone() };
            dropped.Analytic[worst] = 0;
            Assert.That(Mismatch(dropped, tol), Is.Not.Null, $"{g.Name}: one missing contribution must fail");
            var zero = g with { Analytic = new double[g.Analytic.Length], Numeric = new double[g.Numeric.Length] };
            Assert.That(Mismatch(zero, tol), Is.Not.Null, $"{g.Name}: an all-zero gradient proves nothing");
        }
    }

    // ------------------------------------------------------------------ convolution

    [Test]
    public void Conv2D_Stride2NonSquareKernelAsymmetricPadding()
    {
        var model = new Sequential(new Shape3(2, 5, 7), seed: 11)
            .Add(new Conv2D(4, (3, 2), (2, 1), Padding.Explicit(1, 0, 2, 1)));
        var conv = (Conv2D)model.Layers[0];
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(4, 3, 7)));
        Assert.That(conv.Algorithm, Is.EqualTo(Engine.UseAvx2 ? Conv2dAlgorithm.Blocked : Conv2dAlgorithm.Im2colTiled));
        AssertMatch(Objective(model, 3, RandomInput(model, 3, 2)));
    }

    [Test]
    public void Conv2D_ImplicitPathNonSquareKernelAsymmetricPadding()
    {
        var model = new Sequential(new Shape3(3, 6, 9), seed: 12)
            .Add(new Conv2D(5, (3, 2), (1, 1), Padding.Explicit(1, 1, 1, 0)));
        // Three input channels: the direct kernel forward where AVX2 runs (its backward is the implicit GEMM's), else implicit.
        Assert.That(((Conv2D)model.Layers[0]).Algorithm, Is.AnyOf(Conv2dAlgorithm.ImplicitPadded, Conv2dAlgorithm.DirectSmall));
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(5, 6, 9)));
        AssertMatch(Objective(model, 2, RandomInput(model, 2, 3)));
    }

    [Test]
    public void Conv2D_SameStride2NoBiasBatchAboveGradientChunks()
    {
        // Batch 11 > 8 chunks: uneven chunks whose partial weight gradients are summed.
        var model = new Sequential(new Shape3(1, 7, 6), seed: 13)
            .Add(new Conv2D(3, 3, stride: 2, padding: Padding.Same, bias: false));
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(3, 4, 3)));
        AssertMatch(Objective(model, 11, RandomInput(model, 11, 4), maxPerTensor: 120));
    }

    [Test]
    public void Conv2D_BatchOfOne()
    {
        var model = new Sequential(new Shape3(2, 4, 5), seed: 14).Add(new Conv2D(2, (2, 3), (1, 2), Padding.Explicit(0, 2, 1, 0)));
        AssertMatch(Objective(model, 1, RandomInput(model, 1, 5)));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Conv2D_ReluFusedAndUnfused(bool fuse)
    {
        var model = new Sequential(new Shape3(2, 4, 5), seed: 15)
            .Add(new Conv2D(2, (2, 3), (1, 2), Padding.Explicit(0, 1, 1, 2)))
            .Add(new ReLU())
            .Add(new Conv2D(2, 3, padding: Padding.Symmetric(1)))
            .Add(new ReLU(cap: 0.25f));
        Assert.That(model.Layers[0].OutputShape, Is.EqualTo(new Shape3(2, 4, 3)));
        // eps 1e-3 moves any pre-activation by less than 0.005: a margin of 0.01 keeps every unit on its side.
        var x = InputClearOfKinks(model, 2, new Random(6), -1, 1, 0.01, (0, float.PositiveInfinity), (2, 0.25f));
        var grads = Objective(model, 2, x, fuse: fuse, eps: 1e-3);
        AssertMatch(grads);
        // The cap must be active somewhere, or the capped branch is not tested.
        var top = LayerOutputInTraining(model, 2, x, 2);
        Assert.That(top.Count(v => v > 0.25f), Is.GreaterThan(0), "no output above the cap");
        Assert.That(top.Count(v => v < 0), Is.GreaterThan(0), "no output below zero");
    }

    // ------------------------------------------------------------------ dense

    [TestCase(true)]
    [TestCase(false)]
    public void Dense_WithAndWithoutBias(bool bias)
    {
        var model = new Sequential(Shape3.Flat(7), seed: 16).Add(new Dense(5, bias: bias)).Add(new Dense(3, bias: bias));
        AssertMatch(Objective(model, 3, RandomInput(model, 3, 7)));
    }

    [TestCase(true)]
    [TestCase(false)]
    public void Dense_ReluFusedAndUnfused(bool fuse)
    {
        // 21 units: more than one 16-column GEMM block.
        var model = new Sequential(Shape3.Flat(9), seed: 17).Add(new Dense(21)).Add(new ReLU()).Add(new Dense(4)).Add(new ReLU(cap: 0.2f));
        var x = InputClearOfKinks(model, 3, new Random(8), -1, 1, 0.02, (0, float.PositiveInfinity), (2, 0.2f));
        AssertMatch(Objective(model, 3, x, fuse: fuse, eps: 1e-3));
    }

    // ------------------------------------------------------------------ pooling

    [Test]
    public void MaxPool2D_NonSquareStrideAsymmetricPadding()
    {
        var model = new Sequential(new Shape3(2, 5, 6), seed: 18).Add(new MaxPool2D((3, 2), (2, 1), Padding.Explicit(1, 0, 1, 1)));
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(2, 3, 6)));
        var x = DistinctValues(new Random(9), 2 * model.InputShape.Size);
        AssertMatch(Objective(model, 2, x, eps: 1e-3));
    }

    [Test]
    public void MaxPool2D_TwoByTwoVectorPathWithTail()
    {
        // 18 columns: one 8-wide vector block of windows plus a scalar tail window.
        var model = new Sequential(new Shape3(3, 4, 18), seed: 19).Add(new MaxPool2D(2));
        var x = DistinctValues(new Random(10), 2 * model.InputShape.Size);
        AssertMatch(Objective(model, 2, x, eps: 1e-3));
    }

    [Test]
    public void MaxPool2D_OverlappingWindowsAccumulate()
    {
        // 3x3 windows with stride 1: the largest value of each plane wins every window that holds it (4 to 9),
        // so its gradient is a sum of several R values.
        var model = new Sequential(new Shape3(2, 5, 4), seed: 20).Add(new MaxPool2D(3, stride: 1, padding: Padding.Same));
        var x = DistinctValues(new Random(11), 3 * model.InputShape.Size);
        AssertMatch(Objective(model, 3, x, eps: 1e-3));
    }

    [Test]
    public void AvgPool2D_NonSquareStrideAsymmetricPadding()
    {
        var model = new Sequential(new Shape3(2, 5, 6), seed: 21).Add(new AvgPool2D((3, 2), (2, 2), Padding.Explicit(1, 1, 1, 0)));
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(2, 3, 3)));
        AssertMatch(Objective(model, 2, RandomInput(model, 2, 12)));
    }

    [Test]
    public void AvgPool2D_TwoByTwo()
    {
        var model = new Sequential(new Shape3(3, 4, 18), seed: 22).Add(new AvgPool2D(2));
        AssertMatch(Objective(model, 2, RandomInput(model, 2, 13), maxPerTensor: 150));
    }

    // ------------------------------------------------------------------ activations

    private static IEnumerable<TestCaseData> Activations()
    {
        yield return new TestCaseData(new Func<Layer>(() => new ReLU()), float.PositiveInfinity).SetArgDisplayNames("ReLU");
        yield return new TestCaseData(new Func<Layer>(() => new ReLU(cap: 0.5f)), 0.5f).SetArgDisplayNames("ReLU_Capped");
        yield return new TestCaseData(new Func<Layer>(() => new LeakyReLU(0.1f)), float.PositiveInfinity).SetArgDisplayNames("LeakyReLU");
        yield return new TestCaseData(new Func<Layer>(() => new Sigmoid()), float.PositiveInfinity).SetArgDisplayNames("Sigmoid");
        yield return new TestCaseData(new Func<Layer>(() => new Tanh()), float.PositiveInfinity).SetArgDisplayNames("Tanh");
    }

    [TestCaseSource(nameof(Activations))]
    public void Activation_Elementwise(Func<Layer> make, float cap)
    {
        var model = new Sequential(new Shape3(3, 4, 5), seed: 23).Add(make());
        var rng = new Random(14);
        var x = AwayFromZero(rng, 2 * model.InputShape.Size, 0.05, 1.5);
        if (float.IsFinite(cap))
            for (int i = 0; i < x.Length; i++)
                if (Math.Abs(x[i] - cap) < 0.05f) x[i] = cap + 0.1f;
        AssertMatch(Objective(model, 2, x, eps: 1e-3));
    }

    [TestCaseSource(nameof(Activations))]
    public void Activation_LargeTensorSplitIntoParts(Func<Layer> make, float cap)
    {
        // 2 x 35,003 values: above the parallel threshold, split into parts with a ragged tail.
        var model = new Sequential(new Shape3(1, 1, 35_003), seed: 24).Add(make());
        var rng = new Random(15);
        var x = AwayFromZero(rng, 2 * model.InputShape.Size, 0.05, 1.5);
        if (float.IsFinite(cap))
            for (int i = 0; i < x.Length; i++)
                if (Math.Abs(x[i] - cap) < 0.05f) x[i] = cap + 0.1f;
        AssertMatch(Objective(model, 2, x, eps: 1e-3, maxPerTensor: 40));
    }

    [Test]
    public void Softmax_AfterDenseAndAsFirstLayer()
    {
        var model = new Sequential(Shape3.Flat(6), seed: 25).Add(new Dense(5)).Add(new Softmax());
        AssertMatch(Objective(model, 3, RandomInput(model, 3, 16, -2, 2)));
        var alone = new Sequential(Shape3.Flat(6), seed: 26).Add(new Softmax());
        AssertMatch(Objective(alone, 4, RandomInput(alone, 4, 17, -2, 2)));
    }

    // ------------------------------------------------------------------ normalisation

    [Test]
    public void FeatureMapNorm_InputGradient()
    {
        var model = new Sequential(new Shape3(3, 3, 4), seed: 27).Add(new FeatureMapNorm());
        AssertMatch(Objective(model, 2, RandomInput(model, 2, 18), eps: 3e-3));
    }

    [Test]
    public void FeatureMapNorm_AfterConvolution()
    {
        var model = new Sequential(new Shape3(2, 5, 6), seed: 28)
            .Add(new Conv2D(3, (3, 2), (2, 1), Padding.Explicit(1, 0, 1, 1), bias: false)) // a bias cancels out
            .Add(new FeatureMapNorm());
        AssertMatch(Objective(model, 2, RandomInput(model, 2, 19), eps: 3e-3));
    }

    [Test]
    public void BatchNorm2D_TrainingModeOnImages()
    {
        var model = new Sequential(new Shape3(3, 3, 4), seed: 29).Add(new BatchNorm2D());
        var bn = (BatchNorm2D)model.Layers[0];
        bn.Gamma.Set([1.5f, -0.7f, 0.9f]);
        bn.Beta.Set([0.2f, -0.3f, 0.1f]);
        AssertMatch(Objective(model, 4, RandomInput(model, 4, 20), eps: 3e-3));
    }

    [Test]
    public void BatchNorm2D_OnFlatFeatures()
    {
        var model = new Sequential(Shape3.Flat(5), seed: 30).Add(new BatchNorm2D());
        var bn = (BatchNorm2D)model.Layers[0];
        bn.Gamma.Set([1.2f, 0.8f, -1.1f, 0.5f, 2f]);
        AssertMatch(Objective(model, 6, RandomInput(model, 6, 21), eps: 3e-3));
    }

    [Test]
    public void BatchNorm2D_BetweenConvolutionAndTanh()
    {
        var model = new Sequential(new Shape3(2, 5, 5), seed: 31)
            .Add(new Conv2D(3, 3, stride: 2, padding: Padding.Explicit(1, 1, 0, 0), bias: false)) // a bias cancels out
            .Add(new BatchNorm2D())
            .Add(new Tanh());
        AssertMatch(Objective(model, 3, RandomInput(model, 3, 22), eps: 3e-3));
    }

    [Test]
    public void BatchNorm2D_FusedWithCappedReLUAndMaxPool()
    {
        // Batch norm -> ReLU -> max-pool run as one pass (and one backward): checked through the fused plan.
        var model = new Sequential(new Shape3(2, 4, 4), seed: 34)
            .Add(new Conv2D(2, 3, padding: Padding.Same, bias: false)) // a bias before batch norm cancels out
            .Add(new BatchNorm2D())
            .Add(new ReLU(cap: 1.2f))
            .Add(new MaxPool2D(2))
            .Add(new Flatten())
            .Add(new Dense(3));
        var plan = new ExecutionPlan(model, 2, training: true, fuse: true);
        Assert.That(plan.Runs[1].Epilogue.Pool, Is.SameAs(plan.Runs[3]), "the batch norm pools");
        Assert.That(plan.Runs[1].Epilogue.PooledGradient, Is.SameAs(plan.Runs[3]), "the batch norm's backward starts from the pool's gradient");
        var x = InputClearOfKinks(model, 2, new Random(35), -1, 1, 0.004, (1, 1.2f));
        AssertMatch(Objective(model, 2, x, eps: 5e-4));
    }

    [Test]
    public void BatchNorm2D_FusedWithReLUBeforeAConvolution()
    {
        var model = new Sequential(new Shape3(3, 4, 4), seed: 36)
            .Add(new Conv2D(2, 3, padding: Padding.Same, bias: false))
            .Add(new BatchNorm2D())
            .Add(new ReLU())
            .Add(new Conv2D(2, 3))
            .Add(new Flatten())
            .Add(new Dense(2));
        var plan = new ExecutionPlan(model, 2, training: true, fuse: true);
        Assert.That(plan.Runs[2].ForwardBy == plan.Runs[1] && plan.Runs[2].BackwardBy == plan.Runs[1], "the ReLU runs inside the batch norm");
        var x = InputClearOfKinks(model, 2, new Random(37), -1, 1, 0.004, (1, float.PositiveInfinity));
        AssertMatch(Objective(model, 2, x, eps: 5e-4));
    }

    // ------------------------------------------------------------------ structural

    [Test]
    public void Dropout_FixedMaskForAStep()
    {
        var model = new Sequential(new Shape3(2, 3, 4), seed: 32).Add(new Dropout(0.4f, seed: 123));
        var grads = Objective(model, 3, RandomInput(model, 3, 23));
        AssertMatch(grads);
        var g = grads[0].Analytic;
        int dropped = g.Count(v => v == 0);
        Assert.That(dropped, Is.InRange(g.Length / 5, g.Length * 3 / 5), "about 40% of the values are dropped");
    }

    [Test]
    public void Dropout_InsideANetwork()
    {
        var model = new Sequential(new Shape3(2, 4, 5), seed: 33)
            .Add(new Conv2D(3, 3, padding: Padding.Symmetric(1)))
            .Add(new Dropout(0.3f, seed: 5))
            .Add(new Flatten())
            .Add(new Dense(4));
        AssertMatch(Objective(model, 3, RandomInput(model, 3, 24)));
    }

    [Test]
    public void Flatten_BetweenConvolutionAndDense()
    {
        var model = new Sequential(new Shape3(2, 4, 3), seed: 34)
            .Add(new Conv2D(2, (2, 1), (1, 1), Padding.Explicit(1, 0, 0, 0)))
            .Add(new Flatten())
            .Add(new Dense(3));
        AssertMatch(Objective(model, 2, RandomInput(model, 2, 25)));
        var last = new Sequential(new Shape3(2, 3, 3), seed: 35).Add(new Conv2D(2, 2)).Add(new Flatten());
        AssertMatch(Objective(last, 2, RandomInput(last, 2, 26)));
    }

    [Test]
    public void SmoothStackOfEveryKind()
    {
        var model = new Sequential(new Shape3(2, 7, 6), seed: 36)
            .Add(new Conv2D(3, (3, 2), (2, 1), Padding.Explicit(1, 0, 2, 1)))
            .Add(new Tanh())
            .Add(new AvgPool2D((2, 3), (1, 2)))
            .Add(new BatchNorm2D())
            .Add(new Conv2D(4, 2, padding: Padding.Same))
            .Add(new Sigmoid())
            .Add(new FeatureMapNorm())
            .Add(new Flatten())
            .Add(new Dense(6))
            .Add(new Tanh())
            .Add(new Dense(3))
            .Add(new Softmax());
        AssertMatch(Objective(model, 3, RandomInput(model, 3, 27), eps: 3e-3, maxPerTensor: 80));
    }

    [Test]
    public void FrozenLayerStillPassesItsInputGradient()
    {
        var model = new Sequential(new Shape3(2, 4, 5), seed: 37)
            .Add(new Conv2D(2, 3, padding: Padding.Same))
            .Add(new Tanh())
            .Add(new Conv2D(3, (2, 3), (1, 1)))
            .Add(new Flatten())
            .Add(new Dense(2));
        model.Freeze(2);
        var frozen = (Conv2D)model.Layers[2];
        Array.Fill(frozen.Weight.Grad, 1234f);
        var grads = Objective(model, 2, RandomInput(model, 2, 28));
        AssertMatch(grads);
        Assert.That(grads.Select(g => g.Name), Is.EqualTo(new[] { "input", "weight", "bias", "weight", "bias" }));
        Assert.That(frozen.Weight.Grad, Is.All.EqualTo(1234f), "a frozen layer's gradient is not computed");
    }
}
