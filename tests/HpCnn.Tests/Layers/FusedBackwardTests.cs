using HpCnn.Kernels;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.Layers;

/// <summary>
/// Convolution -> ReLU -> max-pool trains through the pooled-gradient backward (only the windows' winners carry
/// gradient; the dense output gradient is never built). Its gradients must equal the unfused path's: the plain
/// ReLU backward, max-pool backward and dense convolution backward.
/// </summary>
public class FusedBackwardTests
{
    public static IEnumerable<TestCaseData> Cases()
    {
        // in channels, image h, w, filters, kernel, stride, padding, pool kernel, pool stride, cap, batch
        yield return new TestCaseData(1, 12, 10, 6, (3, 3), (1, 1), Padding.Symmetric(1), 2, 2, null, 11).SetName("one channel (patches), 2x2 pool, batch 11");
        yield return new TestCaseData(3, 9, 11, 5, (3, 2), (1, 1), Padding.Explicit(1, 0, 2, 1), 2, 2, 6f, 3).SetName("three channels (patches), capped ReLU, asymmetric padding");
        yield return new TestCaseData(8, 8, 8, 7, (3, 3), (1, 1), Padding.Same, 2, 2, null, 4).SetName("8 channels (channels-last)");
        yield return new TestCaseData(16, 7, 9, 9, (3, 3), (2, 1), Padding.Symmetric(1), 2, 2, null, 2).SetName("16 channels, stride 2x1, odd sizes");
        yield return new TestCaseData(32, 6, 6, 12, (3, 3), (1, 1), Padding.Symmetric(1), 3, 2, null, 9).SetName("32 channels, overlapping 3x3 stride-2 pool, batch 9");
        yield return new TestCaseData(40, 5, 5, 4, (3, 3), (1, 1), Padding.Symmetric(1), 2, 2, 6f, 2).SetName("40 channels (32 + 8), capped");
        yield return new TestCaseData(12, 6, 7, 5, (3, 3), (1, 1), Padding.Symmetric(1), 2, 2, null, 2).SetName("12 channels (scalar fallback)");
        yield return new TestCaseData(64, 5, 6, 3, (3, 3), (1, 1), Padding.Symmetric(1), 2, 2, null, 2).SetName("64 channels (two 32-channel blocks per filter row)");
        yield return new TestCaseData(8, 9, 8, 4, (5, 5), (1, 1), Padding.Symmetric(2), 2, 2, null, 3).SetName("8 channels, 5x5 filters (3 + 2 taps per block)");
    }

    [TestCaseSource(nameof(Cases))]
    public void PooledGradientBackwardMatchesTheDensePath(int inC, int h, int w, int filters, (int, int) kernel, (int, int) stride,
        Padding padding, int poolKernel, int poolStride, float? cap, int batch)
    {
        Sequential Build() => new Sequential(new Shape3(inC, h, w), seed: 5)
            .Add(new Conv2D(filters, kernel, stride, padding))
            .Add(new ReLU(cap))
            .Add(new MaxPool2D(poolKernel, poolStride))
            .Add(new Flatten())
            .Add(new Dense(3));
        var fused = Build();
        var plain = Build();
        var rng = new Random(inC * 31 + h);
        var x = new float[batch * inC * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        var r = new float[batch * 3];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);

        (float[] Input, float[][] Params) Gradients(Sequential m, bool fuse) => TrainingStep(m, batch, x, r, fuse, inputGradient: true,
            plan => Assert.That(plan.Runs[0].Epilogue.PooledGradient is not null, Is.EqualTo(fuse), "the fused plan takes the pooled-gradient path"));

        var (fx, fp) = Gradients(fused, true);
        var (px, pp) = Gradients(plain, false);
        AssertClose(fx, px, "input gradient");
        Assert.That(px.Any(v => v != 0), "the check must see a non-zero input gradient");
        for (int i = 0; i < pp.Length; i++)
        {
            AssertClose(fp[i], pp[i], $"parameter gradient {i}");
            Assert.That(pp[i].Any(v => v != 0), $"parameter gradient {i} must not be all zero");
        }
    }

    /// <summary>
    /// A first layer from three channels keeps its pooled forward but trains through the dense backward (the pool's
    /// backward applying the ReLU's mask): its parameter gradients must be the unfused plan's, bit for bit.
    /// </summary>
    [TestCase(3, 12, 12, 16, 5)]
    [TestCase(4, 9, 11, 20, 2)]
    public void FirstLayerPooledForwardDenseBackwardGivesTheUnfusedGradients(int inC, int h, int w, int filters, int batch)
    {
        var model = new Sequential(new Shape3(inC, h, w), seed: 8).Add(new Conv2D(filters, 3, padding: Padding.Same)).Add(new ReLU())
            .Add(new MaxPool2D(2)).Add(new Flatten()).Add(new Dense(3));
        var rng = new Random(inC * 3 + h);
        var x = new float[batch * inC * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        var r = new float[batch * 3];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
        float[][] Gradients(bool fuse) => TrainingStep(model, batch, x, r, fuse, inputGradient: false, plan =>
        {
            Assert.That(plan.Runs[0].Epilogue.PooledGradient, Is.Null, "dense backward");
            if (fuse && Engine.Path == KernelPath.Avx2Fma) Assert.That(plan.Runs[0].Epilogue.Pool, Is.Not.Null, "pooled forward");
        }).Params;
        var fused = Gradients(true);
        var plain = Gradients(false);
        for (int i = 0; i < plain.Length; i++)
        {
            Assert.That(fused[i], Is.EqualTo(plain[i]), $"parameter gradient {i}");
            Assert.That(plain[i].Any(v => v != 0), $"parameter gradient {i} must not be all zero");
        }
    }

    /// <summary>The rule: the pooled-gradient backward where the convolution passes a gradient to its input or reads one channel.</summary>
    [TestCase(3, false, false)]
    [TestCase(3, true, true)]
    [TestCase(1, false, true)]
    public void PooledGradientBackwardRunsWhereItPays(int inC, bool inputGradient, bool expected)
    {
        var model = new Sequential(new Shape3(inC, 8, 8), seed: 2).Add(new Conv2D(16, 3, padding: Padding.Same)).Add(new ReLU())
            .Add(new MaxPool2D(2)).Add(new Conv2D(8, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Flatten()).Add(new Dense(3));
        var plan = new ExecutionPlan(model, 4, training: true, inputGradient: inputGradient);
        Assert.That(plan.Runs[0].Epilogue.PooledGradient is not null, Is.EqualTo(expected), "first layer");
        Assert.That(plan.Runs[3].Epilogue.PooledGradient is not null, Is.True, "a later layer passes a gradient to its input");
    }

    /// <summary>
    /// Fusion rule 9: a ReLU fused into the layer before it, followed by a convolution that passes a gradient to its
    /// input, is masked by that convolution's backward chunk by chunk; the ReLU's backward does not run. The gradients
    /// must be the unfused plan's bit for bit (the same elementwise mask on the same values).
    /// </summary>
    [TestCase(64, 16, 16, 256, 1, null, 5)]   // 1x1 on 16 x 16, 64 channels: the in-place GEMM input gradient
    [TestCase(16, 9, 7, 24, 3, 6f, 3)]       // 3x3 Winograd / blocked, capped ReLU
    [TestCase(8, 6, 11, 12, 1, null, 19)]    // 1x1 blocked, a batch of more than 16 images (several chunks)
    [TestCase(3, 8, 8, 5, 3, 1f, 1)]         // few channels, one image, a cap that most values reach
    public void ReluBeforeAConvolutionIsMaskedInItsBackward(int channels, int h, int w, int filters, int kernel, float? cap, int batch)
    {
        var model = new Sequential(new Shape3(3, h, w), seed: 6)
            .Add(new Conv2D(channels, 3, padding: Padding.Same)).Add(new ReLU(cap))
            .Add(new Conv2D(filters, kernel, padding: kernel == 3 ? Padding.Same : null)).Add(new ReLU())
            .Add(new Flatten()).Add(new Dense(3));
        var rng = new Random(channels * 5 + h);
        var x = new float[batch * 3 * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        var r = new float[batch * 3];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
        (float[] Input, float[][] Params) Gradients(bool fuse) => TrainingStep(model, batch, x, r, fuse, inputGradient: true,
            plan => Assert.That(plan.Runs[1].BackwardBy, fuse ? Is.SameAs(plan.Runs[2]) : Is.Null, "the ReLU's backward is the convolution's"));
        var (fx, fp) = Gradients(true);
        var (px, pp) = Gradients(false);
        Assert.That(fx, Is.EqualTo(px), "input gradient");
        for (int i = 0; i < pp.Length; i++) Assert.That(fp[i], Is.EqualTo(pp[i]), $"parameter gradient {i}");
        // The mask must matter: the first layer's weight gradient differs from one through an unmasked gradient.
        Assert.That(pp[0].Any(v => v != 0), "the first layer's weight gradient must not be all zero");
    }

    /// <summary>
    /// Fusion rule 10: a pool after a convolution (and its fused ReLU, or none) whose backward the convolution does not
    /// take over through the pooled gradient runs inside the convolution's backward, chunk by chunk into scratch. The
    /// gradients must be the unfused plan's bit for bit.
    /// </summary>
    [TestCase("max", true, null, 19)]    // a first layer from three channels: dense backward after the pool's (several chunks)
    [TestCase("global", true, 6f, 5)]   // a global average pool after a capped ReLU
    [TestCase("avg", false, null, 33)]  // a 2x2 average pool straight after the convolution
    [TestCase("max", false, null, 1)]   // one image
    public void APoolAfterAConvolutionRunsInsideItsBackward(string pool, bool relu, float? cap, int batch)
    {
        const int h = 10, w = 12;
        var model = new Sequential(new Shape3(3, h, w), seed: 4).Add(new Conv2D(20, 3, padding: Padding.Same));
        if (relu) model.Add(new ReLU(cap));
        model.Add(pool switch { "max" => new MaxPool2D(2), "avg" => new AvgPool2D(2), _ => new AvgPool2D((h, w)) })
            .Add(new Flatten()).Add(new Dense(3));
        var rng = new Random(batch);
        var x = new float[batch * 3 * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        var r = new float[batch * 3];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
        int p = relu ? 2 : 1;
        // A max-pool's convolution that passes a gradient to its input reads the pooled gradient itself (rule 4).
        bool inputGradient = pool != "max";
        (float[] Input, float[][] Params) Gradients(bool fuse) => TrainingStep(model, batch, x, r, fuse, inputGradient, plan =>
        {
            Assert.That(plan.Runs[0].Epilogue.PooledGradient, Is.Null, "not the pooled-gradient backward");
            Assert.That(plan.Runs[0].Epilogue.PoolBackward, fuse ? Is.SameAs(plan.Runs[p]) : Is.Null, "the pool's backward is the convolution's");
        });
        var (fx, fp) = Gradients(true);
        var (px, pp) = Gradients(false);
        Assert.That(fx, Is.EqualTo(px), "input gradient");
        if (inputGradient) Assert.That(px.Any(v => v != 0), "the input gradient must not be all zero");
        for (int i = 0; i < pp.Length; i++) Assert.That(fp[i], Is.EqualTo(pp[i]), $"parameter gradient {i}");
        Assert.That(pp[0].Any(v => v != 0), "the convolution's weight gradient must not be all zero");
    }

    /// <summary>Rule 10 keeps a chunk's output gradient in scratch only where it fits (2 MiB): not a large image's.</summary>
    [TestCase(16, 64, true)]
    [TestCase(128, 64, false)]
    public void APoolRunsInsideTheBackwardOnlyWhereItsChunkFits(int size, int batch, bool expected)
    {
        var model = new Sequential(new Shape3(3, size, size), seed: 4).Add(new Conv2D(64, 3, padding: Padding.Same)).Add(new ReLU())
            .Add(new MaxPool2D(2)).Add(new Flatten()).Add(new Dense(3));
        var plan = new ExecutionPlan(model, batch, training: true);
        Assert.That(plan.Runs[0].Epilogue.PoolBackward is not null, Is.EqualTo(expected));
    }

    /// <summary>
    /// Fusion rule 11: a batch norm after a convolution has its input gradient formed inside the convolution's backward,
    /// chunk by chunk into scratch (through its fused ReLU's mask and pool's gradient, rule 5); its own backward takes
    /// only the sums. The gradients must be the unfused plan's bit for bit.
    /// </summary>
    [TestCase("relu-max", null, 19, true, 12)]   // batch norm -> ReLU -> 2x2 max-pool, several chunks
    [TestCase("relu-max", null, 5, true, 16)]    // pooled rows of 8: the pool's vectorised backward
    [TestCase("relu-max", 6f, 3, false, 12)]     // a capped ReLU, the first layer's weight gradient only
    [TestCase("none", null, 5, true, 12)]        // batch norm straight into the dense layer
    [TestCase("relu-conv", null, 1, true, 12)]   // batch norm -> ReLU -> convolution, one image
    [TestCase("relu-conv", 1f, 17, true, 12)]    // a cap most values reach, two convolutions' batch norms
    public void ABatchNormsInputGradientIsFormedInTheConvolutionsBackward(string after, float? cap, int batch, bool inputGradient, int w)
    {
        const int h = 10;
        var model = new Sequential(new Shape3(3, h, w), seed: 5).Add(new Conv2D(20, 3, padding: Padding.Same, bias: false)).Add(new BatchNorm2D());
        if (after != "none") model.Add(new ReLU(cap));
        if (after == "relu-max") model.Add(new MaxPool2D(2));
        if (after == "relu-conv") model.Add(new Conv2D(16, 3, padding: Padding.Same)).Add(new BatchNorm2D()).Add(new ReLU(cap));
        model.Add(new Flatten()).Add(new Dense(3));
        var rng = new Random(batch);
        var x = new float[batch * 3 * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        var r = new float[batch * 3];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
        var convs = model.Layers.Select((l, i) => (l, i)).Where(p => p.l is Conv2D).Select(p => p.i).ToArray();
        (float[] Input, float[][] Params) Gradients(bool fuse) => TrainingStep(model, batch, x, r, fuse, inputGradient, plan =>
        {
            foreach (int i in convs)
                Assert.That(plan.Runs[i].Epilogue.NormBackward, fuse ? Is.SameAs(plan.Runs[i + 1]) : Is.Null, $"layer {i + 1}'s input gradient is layer {i}'s");
        });
        var (fx, fp) = Gradients(true);
        var (px, pp) = Gradients(false);
        Assert.That(fx, Is.EqualTo(px), "input gradient");
        if (inputGradient) Assert.That(px.Any(v => v != 0), "the input gradient must not be all zero");
        for (int i = 0; i < pp.Length; i++)
        {
            Assert.That(fp[i], Is.EqualTo(pp[i]), $"parameter gradient {i}");
            Assert.That(pp[i].Any(v => v != 0), $"parameter gradient {i} must not be all zero");
        }
    }

    /// <summary>
    /// A widening 1x1 layer that trains by the in-place GEMM (ConvolutionPlan.Choose, with AVX-512) cannot pool in its
    /// epilogue: rule 3 asks the run's own plan, and the step runs with the pool's own forward. Without an input gradient
    /// (rule 10) the gradients are the unfused plan's bit for bit; with one, rule 4's sparse backward sums in another
    /// order, so within the sums' rounding. (The step threw when rule 3 asked the inference plan, which pools.)
    /// </summary>
    [TestCase(false)]
    [TestCase(true)]
    public void AWideningPointwiseLayerBeforeAPoolTrains(bool inputGradient)
    {
        const int batch = 32;
        var model = new Sequential(new Shape3(64, 16, 16), seed: 6).Add(new Conv2D(128, 1)).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Flatten()).Add(new Dense(3));
        var rng = new Random(3);
        var x = new float[batch * 64 * 16 * 16];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var r = new float[batch * 3];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
        bool gemm = false;
        var (fx, fp) = TrainingStep(model, batch, x, r, true, inputGradient, plan =>
        {
            gemm = ((Conv2D)model.Layers[0]).AlgorithmsOf(plan.Runs[0]).Forward == Conv2dAlgorithm.Im2colTiled;
            if (gemm) Assert.That(plan.Runs[0].Epilogue.Pool, Is.Null, "the GEMM forward does not pool");
        });
        var (px, pp) = TrainingStep(model, batch, x, r, false, inputGradient, _ => { });
        Assert.That(gemm, Is.EqualTo(Engine.UseAvx512), "the training forward is the in-place GEMM where AVX-512 runs");
        Assert.That(pp[0].Any(v => v != 0), "the convolution's weight gradient must not be all zero");
        if (inputGradient)
        {
            AssertClose(fx, px, "input gradient");
            for (int i = 0; i < pp.Length; i++) AssertClose(fp[i], pp[i], $"parameter gradient {i}");
            return;
        }
        for (int i = 0; i < pp.Length; i++) Assert.That(fp[i], Is.EqualTo(pp[i]), $"parameter gradient {i}");
    }

    /// <summary>Rule 11 keeps a chunk's output gradient in scratch only where it fits (2 MiB), as rule 10 does.</summary>
    [TestCase(16, 64, true)]
    [TestCase(128, 64, false)]
    public void ABatchNormsInputGradientMovesOnlyWhereItsChunkFits(int size, int batch, bool expected)
    {
        var model = new Sequential(new Shape3(3, size, size), seed: 4).Add(new Conv2D(64, 3, padding: Padding.Same)).Add(new BatchNorm2D())
            .Add(new ReLU()).Add(new Flatten()).Add(new Dense(3));
        var plan = new ExecutionPlan(model, batch, training: true);
        Assert.That(plan.Runs[0].Epilogue.NormBackward is not null, Is.EqualTo(expected));
        Assert.That(plan.Runs[1].InputGradientBy is not null, Is.EqualTo(expected));
    }

    /// <summary>
    /// One training step of <paramref name="model"/> in a plan fused or not (<paramref name="check"/> looks at the plan
    /// first): inputs <paramref name="x"/>, loss gradient <paramref name="r"/> at the output. Returns the input gradient
    /// (empty without <paramref name="inputGradient"/>) and the trainable parameters' gradients.
    /// </summary>
    internal static (float[] Input, float[][] Params) TrainingStep(Sequential model, int batch, float[] x, float[] r, bool fuse,
        bool inputGradient, Action<ExecutionPlan> check)
    {
        var plan = new ExecutionPlan(model, batch, training: true, fuse: fuse, inputGradient: inputGradient);
        check(plan);
        plan.SetBatch(batch);
        x.CopyTo(plan.Input);
        plan.Forward();
        r.CopyTo(plan.Grads[model.Layers.Count].Span);
        plan.Backward(model.Layers.Count - 1);
        return (inputGradient ? plan.Grads[0].Span.ToArray() : [],
            model.Layers.SelectMany(l => l.Parameters).Where(p => p.Trainable).Select(p => (float[])p.Grad.Clone()).ToArray());
    }

    private static void AssertClose(float[] actual, float[] expected, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), what);
        double scale = expected.Max(v => Math.Abs((double)v)) + 1e-6;
        for (int i = 0; i < expected.Length; i++)
            Assert.That(Math.Abs(actual[i] - expected[i]), Is.LessThanOrEqualTo(2e-5 * scale + 1e-6), $"{what}[{i}]: {actual[i]} vs {expected[i]}");
    }
}

/// <summary>
/// Convolution -> ReLU -> 2x2 max-pool whose forward pools in its epilogue (Winograd tiles, direct-kernel blocks or the
/// blocked kernel's staged tile) must
/// write exactly what the unfused convolution, ReLU and pooling write: the same values and the same arg-max.
/// </summary>
public class FusedPoolForwardTests
{
    public static IEnumerable<TestCaseData> Cases()
    {
        // in channels, h, w, filters, cap, expected fused (on the AVX2 path)
        yield return new TestCaseData(1, 28, 28, 32, null, true).SetName("first layer (direct), reference shape");
        yield return new TestCaseData(3, 13, 11, 8, 6f, true).SetName("direct, odd sizes, capped");
        yield return new TestCaseData(32, 14, 14, 64, null, true).SetName("reference second layer");
        yield return new TestCaseData(16, 9, 15, 12, 6f, true).SetName("odd sizes, capped");
        yield return new TestCaseData(16, 9, 14, 12, null, true).SetName("odd height");
        yield return new TestCaseData(8, 34, 34, 8, null, true).SetName("rows longer than a vector");
        yield return new TestCaseData(1, 10, 10, 6, null, false).SetName("direct with 6 filters: not fused");
        yield return new TestCaseData(64, 8, 10, 64, 6f, true).SetName("Winograd, capped");
        yield return new TestCaseData(20, 7, 9, 40, null, true).SetName("blocked, odd sizes, partial channel block");
    }

    [TestCaseSource(nameof(Cases))]
    public void PooledForwardMatchesConvReluPool(int inC, int h, int w, int filters, float? cap, bool fusedOnAvx2)
    {
        Sequential Build() => new Sequential(new Shape3(inC, h, w), seed: 9)
            .Add(new Conv2D(filters, 3, padding: Padding.Same))
            .Add(new ReLU(cap))
            .Add(new MaxPool2D(2))
            .Add(new Flatten())
            .Add(new Dense(4));
        var model = Build();
        const int batch = 6;
        var rng = new Random(h * 7 + inC);
        var x = new float[batch * inC * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        foreach (bool training in new[] { false, true })
        {
            var fused = new ExecutionPlan(model, batch, training, fuse: true, keepActivations: true);
            var plain = new ExecutionPlan(model, batch, training, fuse: false, keepActivations: true);
            bool expectFused = fusedOnAvx2 && Engine.Path == KernelPath.Avx2Fma;
            Assert.That(fused.Runs[0].Epilogue.Pool is not null, Is.EqualTo(expectFused), "which forward path runs");
            foreach (var p in new[] { fused, plain })
            {
                p.SetBatch(batch);
                x.CopyTo(p.Input);
                p.Forward();
            }
            Assert.That(fused.Acts[3].Span.ToArray(), Is.EqualTo(plain.Acts[3].Span.ToArray()), $"pooled values (training {training})");
            Assert.That(fused.Output.ToArray(), Is.EqualTo(plain.Output.ToArray()), "model output");
            if (training)
                Assert.That(fused.Runs[2].State.AsInts().ToArray(), Is.EqualTo(plain.Runs[2].State.AsInts().ToArray()), "arg-max");
        }
    }
}

/// <summary>
/// Convolution (-> ReLU) -> average pool over the whole plane, in inference, takes each channel's mean in the blocked
/// forward's epilogue and never writes the convolution's output: the means, and the model's output, must be the bits the
/// unfused convolution, ReLU and pool give, on one thread and on two (where a batch of one splits by channel groups).
/// </summary>
public class FusedMeanForwardTests
{
    public static IEnumerable<TestCaseData> Cases()
    {
        // in channels, h, w, filters, kernel, stride, padding, ReLU (null: none; value: cap), batch
        yield return new TestCaseData(64, 16, 16, 256, 1, 1, 0, float.PositiveInfinity, 3).SetName("bottleneck head: 1x1 64->256, ReLU");
        yield return new TestCaseData(12, 9, 7, 40, 3, 2, 1, 6f, 2).SetName("stride 2, odd sizes, 40 filters (partial block), capped");
        yield return new TestCaseData(16, 8, 8, 10, 1, 1, 0, null, 4).SetName("1x1 to 10 channels, no ReLU (the allconv head)");
        yield return new TestCaseData(8, 5, 11, 70, 3, 1, 0, float.PositiveInfinity, 1).SetName("one image, five channel groups");
    }

    [TestCaseSource(nameof(Cases))]
    public void MeanForwardMatchesConvReluAveragePool(int inC, int h, int w, int filters, int kernel, int stride, int pad, float? relu, int batch)
    {
        var model = new Sequential(new Shape3(inC, h, w), seed: 3).Add(new Conv2D(filters, kernel, stride, Padding.Symmetric(pad)));
        if (relu is float cap) model.Add(new ReLU(float.IsPositiveInfinity(cap) ? null : cap));
        var conv = (Conv2D)model.Layers[0];
        model.Add(new AvgPool2D((conv.Shape.OutH, conv.Shape.OutW))).Add(new Flatten()).Add(new Dense(5));
        int poolAt = relu is null ? 1 : 2;
        var rng = new Random(filters * 13 + h);
        var x = new float[batch * inC * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        float[]? expected = null, expectedOut = null;
        foreach (var (fuse, threads) in new[] { (false, 1), (true, 1), (true, 2) })
        {
            using var pool = new WorkerPool(threads);
            var plan = new ExecutionPlan(model, batch, training: false, fuse: fuse, pool: pool, keepActivations: true);
            bool expectFused = fuse && Engine.Path == KernelPath.Avx2Fma && conv.CanMeanInEpilogue;
            Assert.That(plan.Runs[0].Epilogue.Mean is not null, Is.EqualTo(expectFused), "which forward path runs");
            plan.SetBatch(batch);
            x.CopyTo(plan.Input);
            plan.Forward();
            var means = plan.Acts[poolAt + 1].Span.ToArray();
            var output = plan.Output.ToArray();
            if (expected is null)
            {
                expected = means;
                expectedOut = output;
                Assert.That(means.Any(v => v != 0), "the check must see non-zero means");
                continue;
            }
            Assert.That(means, Is.EqualTo(expected), $"means (fused {fuse}, {threads} threads)");
            Assert.That(output, Is.EqualTo(expectedOut), $"model output (fused {fuse}, {threads} threads)");
        }
    }

    /// <summary>
    /// Training through ReLU -> average pool: the pool's backward applies the ReLU's mask and the ReLU's backward does
    /// not run; every gradient must be the unfused plan's, bit for bit (whole-plane and 2x2 pools, capped or not).
    /// </summary>
    [TestCase(16, 8, 8, 8, float.PositiveInfinity, 5)]
    [TestCase(12, 7, 9, 0, 0.3f, 3)]
    [TestCase(8, 10, 10, 2, float.PositiveInfinity, 2)]
    public void TrainingThroughReluAndAveragePoolGivesTheUnfusedGradients(int inC, int h, int w, int poolKernel, float cap, int batch)
    {
        var model = new Sequential(new Shape3(inC, h, w), seed: 4).Add(new Conv2D(20, 3, padding: Padding.Same))
            .Add(new ReLU(float.IsPositiveInfinity(cap) ? null : cap))
            .Add(new AvgPool2D(poolKernel == 0 ? (h, w) : (poolKernel, poolKernel))).Add(new Flatten()).Add(new Dense(3));
        var rng = new Random(inC * 5 + h);
        var x = new float[batch * inC * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        var r = new float[batch * 3];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
        (float[] Input, float[][] Params) Gradients(bool fuse) => FusedBackwardTests.TrainingStep(model, batch, x, r, fuse, inputGradient: true,
            plan => Assert.That(float.IsNaN(plan.Runs[2].Epilogue.ReluMaskCap), Is.EqualTo(!fuse), "the pool applies the ReLU's mask"));
        var (fx, fp) = Gradients(true);
        var (px, pp) = Gradients(false);
        Assert.That(fx, Is.EqualTo(px), "input gradient");
        Assert.That(px.Any(v => v != 0), "the check must see a non-zero input gradient");
        for (int i = 0; i < pp.Length; i++) Assert.That(fp[i], Is.EqualTo(pp[i]), $"parameter gradient {i}");
    }

    [Test]
    public void OnlyAPoolOverTheWholePlaneFuses()
    {
        var model = new Sequential(new Shape3(16, 8, 8), seed: 1).Add(new Conv2D(32, 1)).Add(new ReLU()).Add(new AvgPool2D(4))
            .Add(new Flatten()).Add(new Dense(3));
        var plan = new ExecutionPlan(model, 2, training: false);
        Assert.That(plan.Runs[0].Epilogue.Mean, Is.Null, "a 4x4 pool of an 8x8 plane keeps four values a channel");
        var training = new ExecutionPlan(new Sequential(new Shape3(16, 8, 8), seed: 1).Add(new Conv2D(32, 1)).Add(new ReLU())
            .Add(new AvgPool2D(8)).Add(new Flatten()).Add(new Dense(3)), 2, training: true);
        Assert.That(training.Runs[0].Epilogue.Mean, Is.Null, "training keeps the output: the ReLU's backward reads it");
    }
}

/// <summary>
/// Inference runs convolution (-> ReLU) -> convolution image by image, the first one's output in the worker's scratch
/// (Fusion rule 7): every layer output the plan keeps, and the model's output, must be the unfused plan's bits, on one
/// thread and on two (a batch of one then splits a pixel-major chain into row bands, and other chains' first layer into
/// parts that go through its buffer).
/// </summary>
public class ChainedConvolutionTests
{
    public static IEnumerable<TestCaseData> Cases()
    {
        // in channels, h, w, first filters, first kernel, first stride, ReLU between, second filters, second kernel, head, batch
        yield return new TestCaseData(16, 8, 8, 64, 1, 1, true, 16, 1, "dense", 3).SetName("1x1 pair with a ReLU (a bottleneck block), batch 3");
        // The second layer a 1x1 writing planes: the intermediate stays pixel-major (a pitch of the first's channels rounded up to 16).
        yield return new TestCaseData(12, 9, 7, 40, 3, 2, true, 24, 1, "dense", 3).SetName("strided 3x3 then 1x1, partial channel blocks, batch 3");
        yield return new TestCaseData(20, 5, 6, 70, 1, 1, false, 33, 1, "dense", 2).SetName("1x1 pair without a ReLU, 70 then 33 filters, batch 2");
        yield return new TestCaseData(8, 4, 5, 400, 1, 1, true, 64, 1, "dense", 2).SetName("1x1 pair through 400 channels (the second's terms in several cache blocks)");
        yield return new TestCaseData(12, 9, 7, 40, 3, 2, false, 24, 3, "dense", 2).SetName("strided 3x3 then 3x3, no ReLU, partial channel blocks");
        yield return new TestCaseData(8, 6, 10, 32, 1, 1, true, 20, 1, "mean", 1).SetName("pair ending in a global average pool, batch 1");
        yield return new TestCaseData(8, 6, 6, 32, 3, 1, true, 20, 1, "pool", 4).SetName("second layer pooled in its epilogue");
        // A batch of one on two threads: a pixel-major chain splits the image into row bands, both layers per band.
        yield return new TestCaseData(16, 9, 8, 64, 1, 1, true, 24, 1, "dense", 1).SetName("1x1 pair, batch 1: row bands");
        yield return new TestCaseData(12, 11, 7, 40, 3, 2, true, 24, 1, "dense", 1).SetName("strided 3x3 then 1x1, batch 1: row bands pad their own rows");
    }

    [TestCaseSource(nameof(Cases))]
    public void ChainedForwardGivesTheUnfusedBits(int inC, int h, int w, int f1, int k1, int s1, bool relu, int f2, int k2, string head, int batch)
    {
        var model = new Sequential(new Shape3(inC, h, w), seed: 6).Add(new Conv2D(f1, k1, s1, Padding.Symmetric(k1 / 2)));
        if (relu) model.Add(new ReLU());
        model.Add(new Conv2D(f2, k2, padding: Padding.Symmetric(k2 / 2))).Add(new ReLU());
        var second = (Conv2D)model.Layers[^2];
        if (head == "mean") model.Add(new AvgPool2D((second.Shape.OutH, second.Shape.OutW)));
        if (head == "pool") model.Add(new MaxPool2D(2));
        model.Add(new Flatten()).Add(new Dense(4));
        var first = (Conv2D)model.Layers[0];
        var rng = new Random(f1 * 7 + h);
        var x = new float[batch * inC * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        float[]? expected = null;
        foreach (var (fuse, threads) in new[] { (false, 1), (true, 1), (true, 2) })
        {
            using var pool = new WorkerPool(threads);
            var plan = new ExecutionPlan(model, batch, training: false, fuse: fuse, pool: pool);
            bool chained = fuse && first.ForwardsImageByImage && second.ForwardsImageByImage;
            Assert.That(plan.Runs[0].Epilogue.Chain is not null, Is.EqualTo(chained), "which forward path runs");
            if (fuse && Engine.Path == KernelPath.Avx2Fma) Assert.That(chained, "both layers forward image by image here");
            plan.SetBatch(batch);
            x.CopyTo(plan.Input);
            plan.Forward();
            var output = plan.Output.ToArray();
            if (expected is null)
            {
                expected = output;
                Assert.That(output.Any(v => v != 0), "the check must see a non-zero output");
                continue;
            }
            Assert.That(output, Is.EqualTo(expected), $"model output (fused {fuse}, {threads} threads)");
        }
    }

    [Test]
    public void AnIntermediateLargerThanTheScratchBudgetIsNotChained()
    {
        var model = new Sequential(new Shape3(8, 64, 64), seed: 1).Add(new Conv2D(40, 1)).Add(new ReLU()).Add(new Conv2D(8, 1))
            .Add(new Flatten()).Add(new Dense(2));
        Assert.That(model.Layers[0].OutputShape.Size, Is.GreaterThan(Fusion.ChainFloats));
        var plan = new ExecutionPlan(model, 2, training: false);
        Assert.That(plan.Runs[0].Epilogue.Chain, Is.Null);
    }
}

/// <summary>
/// Convolution -> batch norm in training takes the batch statistics' per-plane moments in the convolution's forward
/// (Fusion rule 8): the step's gradients, the batch norm's output and its running statistics must be the unfused plan's
/// bits, for Winograd groups, blocked single images and a batch smaller than the workers (parts of an image, whose
/// moments are taken after the forward).
/// </summary>
public class BatchNormMomentsTests
{
    [TestCase(16, 16, 16, 24, 5, 1)]
    [TestCase(16, 16, 16, 24, 5, 2)]
    [TestCase(8, 9, 7, 20, 3, 2)]
    [TestCase(24, 8, 8, 16, 1, 2)]
    [TestCase(12, 10, 10, 32, 9, 1)]
    public void MomentsTakenByTheConvolutionGiveTheUnfusedBits(int inC, int h, int w, int filters, int batch, int threads)
    {
        Sequential Build() => new Sequential(new Shape3(inC, h, w), seed: 8)
            .Add(new Conv2D(filters, 3, padding: Padding.Same)).Add(new BatchNorm2D()).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Conv2D(filters, 1, bias: false)).Add(new BatchNorm2D()).Add(new ReLU())
            .Add(new Flatten()).Add(new Dense(3));
        var rng = new Random(inC * 13 + batch);
        var x = new float[batch * inC * h * w];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        var r = new float[batch * 3];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
        (float[] Input, float[][] Params, float[] BnOut, float[][] Running) Step(bool fuse)
        {
            var model = Build();
            using var pool = new WorkerPool(threads);
            var plan = new ExecutionPlan(model, batch, training: true, fuse: fuse, pool: pool, inputGradient: true);
            Assert.That(plan.Runs[0].Epilogue.Moments is not null, Is.EqualTo(fuse), "the convolution takes the moments");
            Assert.That(plan.Runs[4].Epilogue.Moments is not null, Is.EqualTo(fuse), "the 1x1 convolution takes the moments");
            plan.SetBatch(batch);
            x.CopyTo(plan.Input);
            plan.Forward();
            var bnOut = plan.Runs[3].Output.Span.ToArray(); // the pool's output (the batch norm writes it where rule 5 fuses)
            r.CopyTo(plan.Grads[model.Layers.Count].Span);
            plan.Backward(model.Layers.Count - 1);
            var running = model.Layers.OfType<BatchNorm2D>().SelectMany(b => new[] { (float[])b.RunningMean.Value.Clone(), (float[])b.RunningVar.Value.Clone() }).ToArray();
            return (plan.Grads[0].Span.ToArray(), model.Layers.SelectMany(l => l.Parameters).Where(q => q.Trainable).Select(q => (float[])q.Grad.Clone()).ToArray(),
                bnOut, running);
        }
        var fused = Step(true);
        var plain = Step(false);
        Assert.That(fused.BnOut, Is.EqualTo(plain.BnOut), "the first batch norm's output, pooled");
        Assert.That(plain.BnOut.Any(v => v != 0), "the check must see a non-zero output");
        for (int i = 0; i < plain.Running.Length; i++) Assert.That(fused.Running[i], Is.EqualTo(plain.Running[i]), $"running statistic {i}");
        Assert.That(fused.Input, Is.EqualTo(plain.Input), "input gradient");
        Assert.That(plain.Input.Any(v => v != 0), "the check must see a non-zero input gradient");
        for (int i = 0; i < plain.Params.Length; i++) Assert.That(fused.Params[i], Is.EqualTo(plain.Params[i]), $"parameter gradient {i}");
    }
}

/// <summary>
/// A training plan's calls get a gradient chunk's images (capacity / 16), so at capacity 64 an 8 x 8 layer trains with
/// Winograd F(4x4) where inference and smaller training plans keep F(2x2): its packed weights, scratch and gradients must
/// come out right (against the capacity-32 plan on the same batch, within the two tile sizes' rounding).
/// </summary>
public class TrainingPlanAlgorithmTests
{
    [Test]
    public void LargeTrainingBatchesTakeFourByFourTilesOnSmallPlanes()
    {
        if (!Engine.UseAvx2) Assert.Ignore("Winograd runs where the AVX2 kernels do");
        var model = new Sequential(new Shape3(16, 8, 8), seed: 3).Add(new Conv2D(24, 3, padding: Padding.Same)).Add(new ReLU())
            .Add(new Conv2D(16, 3, padding: Padding.Same)).Add(new ReLU()).Add(new Flatten()).Add(new Dense(3));
        const int batch = 32;
        var rng = new Random(12);
        var x = new float[batch * 16 * 8 * 8];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var r = new float[batch * 3];
        for (int i = 0; i < r.Length; i++) r[i] = (float)(rng.NextDouble() * 2 - 1);
        (float[] Input, float[][] Params) Step(int capacity, Conv2dAlgorithm expected)
        {
            var plan = new ExecutionPlan(model, capacity, training: true, inputGradient: true);
            var conv = (Conv2D)model.Layers[2];
            Assert.That(conv.AlgorithmsOf(plan.Runs[2]).Data, Is.EqualTo(expected), $"capacity {capacity}");
            Assert.That(conv.Algorithms.Data, Is.EqualTo(Conv2dAlgorithm.Winograd2x2), "the shape's (inference) plan");
            plan.SetBatch(batch);
            x.CopyTo(plan.Input);
            plan.Forward();
            r.CopyTo(plan.Grads[model.Layers.Count].Span);
            plan.Backward(model.Layers.Count - 1);
            return (plan.Grads[0].Span.ToArray(), model.Layers.SelectMany(l => l.Parameters).Where(p => p.Trainable).Select(p => (float[])p.Grad.Clone()).ToArray());
        }
        var large = Step(64, Conv2dAlgorithm.Winograd4x4);
        var small = Step(32, Conv2dAlgorithm.Winograd2x2);
        void Close(float[] a, float[] e, string what)
        {
            double scale = e.Max(v => Math.Abs((double)v));
            Assert.That(scale, Is.GreaterThan(0), what + " must not be all zero");
            for (int i = 0; i < e.Length; i++) Assert.That(Math.Abs(a[i] - e[i]), Is.LessThanOrEqualTo(1e-4 * scale), $"{what}[{i}]: {a[i]} vs {e[i]}");
        }
        Close(large.Input, small.Input, "input gradient");
        for (int i = 0; i < small.Params.Length; i++) Close(large.Params[i], small.Params[i], $"parameter gradient {i}");
    }
}
