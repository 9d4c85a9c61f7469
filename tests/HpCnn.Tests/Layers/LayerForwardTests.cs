using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.Layers;

/// <summary>
/// Every layer's forward pass against values worked out by hand (the working is in the comments), with the
/// tutorials' hand-made filters, stride, padding and the TensorFlow "same" rule.
/// </summary>
public class LayerForwardTests
{
    // The 4x4 test image of the tutorials' filter exercises.
    private static readonly float[] Image =
    [
        1, 2, 0, 3,
        4, 5, 1, 0,
        2, 0, 6, 1,
        3, 1, 2, 7,
    ];

    private const float Ninth = 1f / 9f;

    // Box blur, vertical edge, diagonal: 3 filters of 1 x 3 x 3 (OutC x InC x KH x KW).
    private static readonly float[] TutorialFilters =
    [
        Ninth, Ninth, Ninth, Ninth, Ninth, Ninth, Ninth, Ninth, Ninth,
        1, 0, -1, 1, 0, -1, 1, 0, -1,
        1, 0, 0, 0, 1, 0, 0, 0, 1,
    ];

    /// <summary>The model output for a batch, through a plan in the given mode.</summary>
    private static float[] Forward(Sequential model, float[] input, int batch = 1, bool training = false, bool fuse = true)
    {
        var plan = new ExecutionPlan(model, batch, training, fuse);
        plan.SetBatch(batch);
        input.CopyTo(plan.Input);
        plan.Forward();
        return plan.Output.ToArray();
    }

    // ------------------------------------------------------------------ convolution

    [Test]
    public void Conv2D_TutorialFiltersValid()
    {
        var model = new Sequential(new Shape3(1, 4, 4)).Add(new Conv2D(3, 3, bias: false));
        ((Conv2D)model.Layers[0]).Weight.Set(TutorialFilters);
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(3, 2, 2)));
        float[] expected =
        [
            // box: window sums 1+2+0+4+5+1+2+0+6 = 21, 2+0+3+5+1+0+0+6+1 = 18, 4+5+1+2+0+6+3+1+2 = 24, 5+1+0+0+6+1+1+2+7 = 23; / 9
            21 * Ninth, 18 * Ninth, 24 * Ninth, 23 * Ninth,
            // vertical edge: left column - right column: (1+4+2)-(0+1+6) = 0, (2+5+0)-(3+0+1) = 3, (4+2+3)-(1+6+2) = 0, (5+0+1)-(0+1+7) = -2
            0, 3, 0, -2,
            // diagonal: 1+5+6 = 12, 2+1+1 = 4, 4+0+2 = 6, 5+6+7 = 18
            12, 4, 6, 18,
        ];
        Assert.That(Forward(model, Image), Is.EqualTo(expected).Within(1e-5f));
        Assert.That(model.Predict(Image).Probabilities, Is.EqualTo(expected).Within(1e-5f), "Predict gives the same raw output");
    }

    [Test]
    public void Conv2D_TutorialFiltersStride2Padding1()
    {
        // Padding 1, stride 2: windows start at rows/columns -1 and 1.
        var model = new Sequential(new Shape3(1, 4, 4)).Add(new Conv2D(3, 3, stride: 2, padding: Padding.Symmetric(1), bias: false));
        ((Conv2D)model.Layers[0]).Weight.Set(TutorialFilters);
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(3, 2, 2)));
        float[] expected =
        [
            // box: rows 0-1 x cols 0-1 = 12; rows 0-1 x cols 1-3 = 11; rows 1-3 x cols 0-1 = 15; rows 1-3 x cols 1-3 = 23; / 9
            12 * Ninth, 11 * Ninth, 15 * Ninth, 23 * Ninth,
            // edge: -(2+5) = -7; (2+5)-(3+0) = 4; -(5+0+1) = -6; (5+0+1)-(0+1+7) = -2
            -7, 4, -6, -2,
            // diagonal from (-1,-1): 0+1+5 = 6; from (-1,1): 0+0+0 = 0; from (1,-1): 0+2+1 = 3; from (1,1): 5+6+7 = 18
            6, 0, 3, 18,
        ];
        Assert.That(Forward(model, Image), Is.EqualTo(expected).Within(1e-5f));
    }

    [Test]
    public void Conv2D_BiasAndChannelsAddUp()
    {
        // Channel 0 is the image under the diagonal filter, channel 1 all ones under a 0.5 box: +4.5 everywhere; bias 2.
        var model = new Sequential(new Shape3(2, 4, 4)).Add(new Conv2D(1, 3));
        var conv = (Conv2D)model.Layers[0];
        conv.Weight.Set([1, 0, 0, 0, 1, 0, 0, 0, 1, .5f, .5f, .5f, .5f, .5f, .5f, .5f, .5f, .5f]);
        conv.Bias!.Set([2f]);
        var input = Image.Concat(Enumerable.Repeat(1f, 16)).ToArray();
        Assert.That(Forward(model, input), Is.EqualTo(new[] { 12 + 6.5f, 4 + 6.5f, 6 + 6.5f, 18 + 6.5f }).Within(1e-5f));
    }

    [Test]
    public void Conv2D_ReluFusedAndLayerOutputBeforeIt()
    {
        var model = new Sequential(new Shape3(1, 4, 4)).Add(new Conv2D(1, 3, bias: false)).Add(new ReLU());
        ((Conv2D)model.Layers[0]).Weight.Set(TutorialFilters.AsSpan(9, 9)); // vertical edge: 0, 3, 0, -2
        Assert.That(Forward(model, Image, fuse: true), Is.EqualTo(new[] { 0f, 3, 0, 0 }));
        Assert.That(Forward(model, Image, fuse: false), Is.EqualTo(new[] { 0f, 3, 0, 0 }));
        Assert.That(model.LayerOutput(0, Image), Is.EqualTo(new[] { 0f, 3, 0, -2 }), "the feature map before the ReLU");
        Assert.That(model.LayerOutput(1, Image), Is.EqualTo(new[] { 0f, 3, 0, 0 }));
    }

    [Test]
    public void Conv2D_NonSquareKernelAsymmetricPadding()
    {
        // A 2x2 kernel [[1, 0], [0, -1]] (x minus its lower-right neighbour), padding top 1 and right 1, stride (2, 1):
        // output rows start at image rows -1 (padding) and 1; 4 columns, the last one reads the zero column 4.
        var model = new Sequential(new Shape3(1, 4, 4)).Add(new Conv2D(1, (2, 2), (2, 1), Padding.Explicit(1, 0, 0, 1), bias: false));
        ((Conv2D)model.Layers[0]).Weight.Set([1f, 0, 0, -1]);
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(1, 2, 4)));
        // Row -1: 0 - row 0 shifted left = -2, -0, -3, -0 (padding). Row 1: 4-0, 5-6, 1-1, 0-0.
        Assert.That(Forward(model, Image), Is.EqualTo(new[] { -2f, 0, -3, 0, 4, -1, 0, 0 }));
    }

    // ------------------------------------------------------------------ padding "same"

    [TestCase(4, 4, 3, 3, 1, 1, 1, 1, 1, 1)]
    [TestCase(4, 4, 2, 2, 1, 1, 0, 0, 1, 1)] // total 1: the extra row/column goes to the bottom/right
    [TestCase(4, 5, 4, 2, 1, 1, 1, 0, 2, 1)] // totals 3 and 1
    [TestCase(5, 5, 3, 3, 2, 2, 1, 1, 1, 1)] // out 3: total (3-1)*2+3-5 = 2
    [TestCase(6, 5, 3, 3, 2, 2, 0, 1, 1, 1)] // rows: out 3, total 1 -> bottom; columns: total 2
    [TestCase(4, 4, 1, 1, 2, 2, 0, 0, 0, 0)] // (2-1)*2+1-4 < 0: no padding
    [TestCase(7, 9, 5, 4, 3, 2, 2, 1, 2, 2)] // rows: out 3, total 2*3+5-7 = 4; columns: out 5, total 4*2+4-9 = 3
    public void Padding_SameFollowsTensorFlow(int inH, int inW, int kh, int kw, int sh, int sw, int top, int left, int bottom, int right)
    {
        var (t, l, b, r) = Padding.Same.Resolve(inH, inW, kh, kw, sh, sw);
        int outH = (inH + t + b - kh) / sh + 1, outW = (inW + l + r - kw) / sw + 1;
        Assert.That(outH, Is.EqualTo((inH + sh - 1) / sh), "output rows = ceil(input / stride)");
        Assert.That(outW, Is.EqualTo((inW + sw - 1) / sw), "output columns = ceil(input / stride)");
        Assert.That((t, l, b, r), Is.EqualTo((top, left, bottom, right)));
    }

    [Test]
    public void Padding_ValidAndExplicit()
    {
        Assert.That(Padding.Valid.Resolve(4, 4, 3, 3, 1, 1), Is.EqualTo((0, 0, 0, 0)));
        Assert.That(Padding.Explicit(1, 2, 0, 3).Resolve(4, 4, 3, 4, 1, 1), Is.EqualTo((1, 2, 0, 3)));
        Assert.That(Padding.Symmetric(2).Resolve(9, 9, 5, 5, 2, 2), Is.EqualTo((2, 2, 2, 2)));
    }

    [Test]
    public void Conv2D_SameStride1PutsTheExtraAtBottomRight()
    {
        // 2x2 ones kernel, stride 1, total padding 1: none at the top/left, one zero row/column at the bottom/right.
        var model = new Sequential(new Shape3(1, 4, 4)).Add(new Conv2D(1, 2, padding: Padding.Same, bias: false));
        ((Conv2D)model.Layers[0]).Weight.Set([1f, 1, 1, 1]);
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(1, 4, 4)));
        float[] expected =
        [
            1 + 2 + 4 + 5, 2 + 0 + 5 + 1, 0 + 3 + 1 + 0, 3 + 0,
            4 + 5 + 2 + 0, 5 + 1 + 0 + 6, 1 + 0 + 6 + 1, 0 + 1,
            2 + 0 + 3 + 1, 0 + 6 + 1 + 2, 6 + 1 + 2 + 7, 1 + 7,
            3 + 1, 1 + 2, 2 + 7, 7,
        ];
        Assert.That(Forward(model, Image), Is.EqualTo(expected));
    }

    [Test]
    public void Conv2D_SameStride2PutsTheExtraAtBottomRight()
    {
        // 3x3 ones, stride 2 on 4x4: 2x2 output, total padding 1 per axis, all at the bottom/right.
        // Windows: rows 0-2 x cols 0-2 = 21; rows 0-2 x cols 2-4 = 0+3+1+0+6+1 = 11; rows 2-4 x cols 0-2 = 2+0+6+3+1+2 = 14;
        // rows 2-4 x cols 2-4 = 6+1+2+7 = 16. (With the extra at the top/left the first window would sum 12.)
        var model = new Sequential(new Shape3(1, 4, 4)).Add(new Conv2D(1, 3, stride: 2, padding: Padding.Same, bias: false));
        ((Conv2D)model.Layers[0]).Weight.Set(Enumerable.Repeat(1f, 9).ToArray());
        Assert.That(model.OutputShape, Is.EqualTo(new Shape3(1, 2, 2)));
        Assert.That(Forward(model, Image), Is.EqualTo(new[] { 21f, 11, 14, 16 }));
        // Average pooling with the same geometry divides by 9 (padding counts as zeros).
        var pool = new Sequential(new Shape3(1, 4, 4)).Add(new AvgPool2D(3, stride: 2, padding: Padding.Same));
        Assert.That(Forward(pool, Image), Is.EqualTo(new[] { 21 * Ninth, 11 * Ninth, 14 * Ninth, 16 * Ninth }).Within(1e-6f));
    }

    [Test]
    public void Conv2D_SameKeepsCeilOfInputOverStride()
    {
        Assert.That(new Sequential(new Shape3(2, 5, 8)).Add(new Conv2D(3, 3, stride: 2, padding: Padding.Same)).OutputShape, Is.EqualTo(new Shape3(3, 3, 4)));
        Assert.That(new Sequential(new Shape3(2, 5, 8)).Add(new Conv2D(3, (4, 2), (1, 1), Padding.Same)).OutputShape, Is.EqualTo(new Shape3(3, 5, 8)));
        Assert.That(new Sequential(new Shape3(1, 7, 7)).Add(new MaxPool2D(2, padding: Padding.Same)).OutputShape, Is.EqualTo(new Shape3(1, 4, 4)));
    }

    // ------------------------------------------------------------------ pooling

    [Test]
    public void MaxAndAvgPool_TwoByTwo()
    {
        // Channel 0 is the image, channel 1 its negation (max of -x = -min of x).
        var input = Image.Concat(Image.Select(v => -v)).ToArray();
        var max = new Sequential(new Shape3(2, 4, 4)).Add(new MaxPool2D(2));
        var avg = new Sequential(new Shape3(2, 4, 4)).Add(new AvgPool2D(2));
        // Windows: {1,2,4,5}, {0,3,1,0}, {2,0,3,1}, {6,1,2,7}.
        Assert.That(Forward(max, input), Is.EqualTo(new[] { 5f, 3, 3, 7, -1, 0, 0, -1 }));
        Assert.That(Forward(avg, input), Is.EqualTo(new[] { 3f, 1, 1.5f, 4, -3, -1, -1.5f, -4 }));
    }

    [Test]
    public void MaxPool_ThreeByThreeStride1()
    {
        var max = new Sequential(new Shape3(1, 4, 4)).Add(new MaxPool2D(3, stride: 1));
        Assert.That(Forward(max, Image), Is.EqualTo(new[] { 6f, 6, 6, 7 }));
    }

    [Test]
    public void Pooling_PaddingIsZeroForAverageAndIgnoredForMax()
    {
        // 3x3 plane 1..9, 2x2 windows, stride 2, one padded row/column at the bottom/right.
        float[] plane = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        var avg = new Sequential(new Shape3(1, 3, 3)).Add(new AvgPool2D(2, padding: Padding.Explicit(0, 0, 1, 1)));
        Assert.That(Forward(avg, plane), Is.EqualTo(new[] { (1 + 2 + 4 + 5) / 4f, (3 + 6) / 4f, (7 + 8) / 4f, 9 / 4f }));
        // On negative values, padding zeros would win a max: they must not.
        var max = new Sequential(new Shape3(1, 3, 3)).Add(new MaxPool2D(2, padding: Padding.Explicit(0, 0, 1, 1)));
        Assert.That(Forward(max, plane.Select(v => -v).ToArray()), Is.EqualTo(new[] { -1f, -3, -7, -9 }));
    }

    [Test]
    public void MaxPool_VectorPathAndFirstMaximumGetsTheGradient()
    {
        // 2 x 16 plane, 2x2 windows: 8 windows (one vector block). Row 0 is 0..15, row 1 is 15..0:
        // window j holds 2j, 2j+1, 15-2j, 14-2j -> max(2j+1, 15-2j).
        var model = new Sequential(new Shape3(1, 2, 16)).Add(new MaxPool2D(2));
        var input = Enumerable.Range(0, 16).Select(i => (float)i).Concat(Enumerable.Range(0, 16).Select(i => 15f - i)).ToArray();
        Assert.That(Forward(model, input), Is.EqualTo(new[] { 15f, 13, 11, 9, 9, 11, 13, 15 }));

        // Ties: on a constant plane the top-left of each window wins (first maximum in window order),
        // on the vector path (2x2) and the scalar path (2x3 windows).
        foreach (var (pool, w) in new[] { (new MaxPool2D(2), 16), (new MaxPool2D((2, 3)), 18) })
        {
            var m = new Sequential(new Shape3(1, 2, w)).Add(pool);
            var plan = new ExecutionPlan(m, 1, training: true, inputGradient: true);
            plan.SetBatch(1);
            plan.Input.Fill(0.5f);
            plan.Forward();
            plan.Grads[1].Slice(0, m.OutputShape.Size).Fill(1f);
            plan.Backward(0);
            var g = plan.Grads[0].Slice(0, 2 * w).ToArray();
            int kw = pool.Kernel.W;
            for (int i = 0; i < g.Length; i++)
                Assert.That(g[i], Is.EqualTo(i < w && i % kw == 0 ? 1f : 0f), $"{pool.Describe()}: input {i}");
        }
    }

    // ------------------------------------------------------------------ activations

    [Test]
    public void Activations_ByHand()
    {
        float[] x = [-1f, 0.5f, 3f, 7f];
        Assert.That(Forward(new Sequential(Shape3.Flat(4)).Add(new ReLU()), x), Is.EqualTo(new[] { 0f, 0.5f, 3, 7 }));
        Assert.That(Forward(new Sequential(Shape3.Flat(4)).Add(new ReLU(cap: 6f)), x), Is.EqualTo(new[] { 0f, 0.5f, 3, 6 }));
        Assert.That(Forward(new Sequential(Shape3.Flat(4)).Add(new LeakyReLU(0.1f)), x), Is.EqualTo(new[] { -0.1f, 0.5f, 3, 7 }));
        // sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4; tanh(0) = 0, tanh(ln 2) = (2 - 1/2)/(2 + 1/2) = 0.6.
        Assert.That(Forward(new Sequential(Shape3.Flat(2)).Add(new Sigmoid()), [0f, MathF.Log(3)]), Is.EqualTo(new[] { 0.5f, 0.75f }).Within(1e-6f));
        Assert.That(Forward(new Sequential(Shape3.Flat(2)).Add(new Tanh()), [0f, MathF.Log(2)]), Is.EqualTo(new[] { 0f, 0.6f }).Within(1e-6f));
    }

    [Test]
    public void CappedRelu_FusedIntoConvolution()
    {
        // Diagonal filter: 12, 4, 6, 18, plus bias -5: 7, -1, 1, 13; ReLU capped at 6: 6, 0, 1, 6.
        var model = new Sequential(new Shape3(1, 4, 4)).Add(new Conv2D(1, 3)).Add(new ReLU(cap: 6f));
        var conv = (Conv2D)model.Layers[0];
        conv.Weight.Set(TutorialFilters.AsSpan(18, 9));
        conv.Bias!.Set([-5f]);
        Assert.That(Forward(model, Image, fuse: true), Is.EqualTo(new[] { 6f, 0, 1, 6 }).Within(1e-5f));
        Assert.That(Forward(model, Image, fuse: false), Is.EqualTo(new[] { 6f, 0, 1, 6 }).Within(1e-5f));
    }

    [Test]
    public void Activations_RejectBadSettings()
    {
        Assert.That(() => new ReLU(cap: 0f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("cap"));
        Assert.That(() => new LeakyReLU(1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("alpha"));
        Assert.That(() => new Dropout(1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("rate"));
    }

    [Test]
    public void Softmax_OfOneTwoThree()
    {
        var model = new Sequential(Shape3.Flat(3)).Add(new Softmax());
        // e^k / (e + e^2 + e^3)
        Assert.That(Forward(model, [1f, 2, 3]), Is.EqualTo(new[] { 0.09003057f, 0.24472847f, 0.66524096f }).Within(1e-6f));
        // Shift invariance and no overflow on large logits.
        Assert.That(Forward(model, [1001f, 1002, 1003]), Is.EqualTo(new[] { 0.09003057f, 0.24472847f, 0.66524096f }).Within(1e-6f));
        Assert.That(() => new Sequential(new Shape3(1, 2, 2)).Add(new Softmax()),
            Throws.ArgumentException.With.Message.Contains("layer 0 (softmax)").And.Message.Contains("flat"));
    }

    // ------------------------------------------------------------------ normalisation

    [Test]
    public void FeatureMapNorm_OnePlaneByHand()
    {
        // [1, 2, 3, 4]: mean 2.5, variance 1.25 -> (x - 2.5) / sqrt(1.25).
        var model = new Sequential(new Shape3(1, 2, 2)).Add(new FeatureMapNorm());
        float s = MathF.Sqrt(1.25f + 1e-5f);
        Assert.That(Forward(model, [1f, 2, 3, 4]), Is.EqualTo(new[] { -1.5f / s, -0.5f / s, 0.5f / s, 1.5f / s }).Within(1e-6f));
    }

    [Test]
    public void FeatureMapNorm_EveryPlaneHasMeanZeroStdOne()
    {
        var model = new Sequential(new Shape3(3, 5, 7)).Add(new FeatureMapNorm());
        var rng = new Random(3);
        // Planes of very different offsets and scales.
        var x = new float[2 * 3 * 35];
        for (int p = 0; p < 6; p++)
            for (int i = 0; i < 35; i++) x[p * 35 + i] = (float)(p * 10 - 20 + (p + 1) * 3 * (rng.NextDouble() - 0.5));
        foreach (bool training in new[] { false, true })
        {
            var y = Forward(model, x, batch: 2, training: training);
            for (int p = 0; p < 6; p++)
            {
                var plane = y.AsSpan(p * 35, 35).ToArray();
                double mean = plane.Average(v => (double)v);
                double std = Math.Sqrt(plane.Average(v => (v - mean) * (v - mean)));
                Assert.That(mean, Is.EqualTo(0).Within(1e-5), $"plane {p} mean (training {training})");
                Assert.That(std, Is.EqualTo(1).Within(1e-3), $"plane {p} std (training {training})");
            }
        }
    }

    [Test]
    public void BatchNorm2D_TrainingStatisticsAndRunningAverages()
    {
        // Batch 2 of 2 channels x 1x2. Channel 0: 1, 3 | 5, 7 -> mean 4, biased variance (9+1+1+9)/4 = 5, unbiased 20/3.
        // Channel 1: all 2 -> mean 2, variance 0, so the output is beta.
        var model = new Sequential(new Shape3(2, 1, 2)).Add(new BatchNorm2D());
        var bn = (BatchNorm2D)model.Layers[0];
        bn.Gamma.Set([2f, 1f]);
        bn.Beta.Set([0.5f, -1f]);
        float[] x = [1, 3, 2, 2, 5, 7, 2, 2];
        float s = MathF.Sqrt(5 + 1e-5f);
        var y = Forward(model, x, batch: 2, training: true);
        Assert.That(y, Is.EqualTo(new[] { 2 * -3 / s + 0.5f, 2 * -1 / s + 0.5f, -1, -1, 2 * 1 / s + 0.5f, 2 * 3 / s + 0.5f, -1, -1 }).Within(1e-5f));
        // Running statistics start at mean 0, variance 1 and move by momentum 0.1 (unbiased variance).
        Assert.That(bn.RunningMean.Value, Is.EqualTo(new[] { 0.4f, 0.2f }).Within(1e-6f));
        Assert.That(bn.RunningVar.Value, Is.EqualTo(new[] { 0.9f + 0.1f * 20 / 3, 0.9f }).Within(1e-5f));
        // Inference uses the running statistics: gamma (x - 0.4) / sqrt(var + eps) + beta.
        float rv0 = 0.9f + 0.1f * 20 / 3, rv1 = 0.9f;
        var z = Forward(model, x, batch: 2, training: false);
        float[] expected = [2 * (1 - 0.4f) / MathF.Sqrt(rv0 + 1e-5f) + 0.5f, 2 * (3 - 0.4f) / MathF.Sqrt(rv0 + 1e-5f) + 0.5f,
            (2 - 0.2f) / MathF.Sqrt(rv1 + 1e-5f) - 1, (2 - 0.2f) / MathF.Sqrt(rv1 + 1e-5f) - 1,
            2 * (5 - 0.4f) / MathF.Sqrt(rv0 + 1e-5f) + 0.5f, 2 * (7 - 0.4f) / MathF.Sqrt(rv0 + 1e-5f) + 0.5f,
            (2 - 0.2f) / MathF.Sqrt(rv1 + 1e-5f) - 1, (2 - 0.2f) / MathF.Sqrt(rv1 + 1e-5f) - 1];
        Assert.That(z, Is.EqualTo(expected).Within(1e-5f));
        Assert.That(bn.RunningMean.Value, Is.EqualTo(new[] { 0.4f, 0.2f }).Within(1e-6f), "inference leaves the running mean alone");
    }

    [Test]
    public void BatchNorm2D_TrainingOutputIsStandardisedPerChannel()
    {
        var model = new Sequential(new Shape3(3, 4, 5)).Add(new BatchNorm2D());
        var rng = new Random(4);
        var x = new float[6 * 60];
        for (int i = 0; i < x.Length; i++) x[i] = (float)((i / 20 % 3) * 5 + (i / 20 % 3 + 1) * (rng.NextDouble() - 0.5));
        var y = Forward(model, x, batch: 6, training: true);
        for (int c = 0; c < 3; c++)
        {
            var values = Enumerable.Range(0, 6).SelectMany(n => y.AsSpan((n * 3 + c) * 20, 20).ToArray()).ToArray();
            double mean = values.Average(v => (double)v);
            double std = Math.Sqrt(values.Average(v => (v - mean) * (v - mean)));
            Assert.That(mean, Is.EqualTo(0).Within(1e-5), $"channel {c} mean");
            Assert.That(std, Is.EqualTo(1).Within(1e-3), $"channel {c} std");
        }
    }

    // ------------------------------------------------------------------ dense, flatten, dropout

    [Test]
    public void Dense_WithSetWeights()
    {
        // W = [[1, 2, 3], [-1, 0, 1]], b = [0.5, -0.5].
        // x = [1, 1, 2] -> [1+2+6+0.5, -1+0+2-0.5] = [9.5, 0.5]; x = [0, -1, 1] -> [-2+3+0.5, 1-0.5] = [1.5, 0.5].
        var model = new Sequential(Shape3.Flat(3)).Add(new Dense(2));
        var dense = (Dense)model.Layers[0];
        dense.Weight.Set([1f, 2, 3, -1, 0, 1]);
        dense.Bias!.Set([0.5f, -0.5f]);
        Assert.That(Forward(model, [1f, 1, 2, 0, -1, 1], batch: 2), Is.EqualTo(new[] { 9.5f, 0.5f, 1.5f, 0.5f }));
        // A fused ReLU clamps in the epilogue: x = [-1, 0, 0] -> [-0.5, 0.5] -> [0, 0.5].
        var relu = new Sequential(Shape3.Flat(3)).Add(new Dense(2)).Add(new ReLU());
        ((Dense)relu.Layers[0]).Weight.Set([1f, 2, 3, -1, 0, 1]);
        ((Dense)relu.Layers[0]).Bias!.Set([0.5f, -0.5f]);
        Assert.That(Forward(relu, [-1f, 0, 0]), Is.EqualTo(new[] { 0f, 0.5f }));
        Assert.That(() => dense.Weight.Set([1f, 2]), Throws.ArgumentException.With.Message.Contains("weight").And.Message.Contains("expected 6 values"));
    }

    [Test]
    public void Flatten_KeepsTheValuesInOrder()
    {
        var model = new Sequential(new Shape3(2, 2, 3)).Add(new Flatten());
        Assert.That(model.OutputShape, Is.EqualTo(Shape3.Flat(12)));
        var x = Enumerable.Range(0, 24).Select(i => (float)i).ToArray();
        Assert.That(Forward(model, x, batch: 2), Is.EqualTo(x));
        Assert.That(Forward(model, x, batch: 2, training: true), Is.EqualTo(x));
    }

    [Test]
    public void Dropout_InferencePassesValuesThrough()
    {
        var model = new Sequential(new Shape3(2, 3, 4)).Add(new Dropout(0.5f, seed: 1));
        var x = Enumerable.Range(1, 48).Select(i => (float)i).ToArray();
        Assert.That(Forward(model, x, batch: 2), Is.EqualTo(x));
        Assert.That(model.Predict(x).Probabilities, Is.EqualTo(x));
    }

    [Test]
    public void Dropout_MaskIsFixedPerStepAndTheStepAdvances()
    {
        // The mask depends on the seed and the model's step count (the optimizer's, saved in model files, so a
        // resumed training draws the masks an uninterrupted one would); the trainer sets it before each forward.
        var model = new Sequential(Shape3.Flat(10_000)).Add(new Dropout(0.3f, seed: 77));
        var x = Enumerable.Repeat(2f, 10_000).ToArray();
        var plan = new ExecutionPlan(model, 1, training: true);
        plan.SetBatch(1);
        var run = plan.Runs[0];

        float[] Step(long step)
        {
            plan.SetStep(step);
            x.CopyTo(plan.Input);
            plan.Forward();
            return plan.Output.ToArray();
        }

        var first = Step(0);
        Assert.That(run.Step, Is.EqualTo(0), "a forward does not move the step; the trainer sets it");
        var second = Step(1);
        Assert.That(run.Step, Is.EqualTo(1));
        // Inverted dropout: a value is 0 or x / (1 - rate); about 30% are dropped.
        Assert.That(first, Is.All.EqualTo(0f).Or.EqualTo(2f / 0.7f).Within(1e-6f));
        Assert.That(first.Count(v => v == 0) / 10_000.0, Is.EqualTo(0.3).Within(0.02));
        Assert.That(second, Is.Not.EqualTo(first), "a new step draws a new mask");
        Assert.That(Step(0), Is.EqualTo(first), "the same step gives the same mask");

        // Another plan of the same layer starts at step 0 with the same mask; another seed gives another mask.
        var plan2 = new ExecutionPlan(model, 1, training: true);
        plan2.SetBatch(1);
        x.CopyTo(plan2.Input);
        plan2.Forward();
        Assert.That(plan2.Output.ToArray(), Is.EqualTo(first));
        var other = new Sequential(Shape3.Flat(10_000)).Add(new Dropout(0.3f, seed: 78));
        var plan3 = new ExecutionPlan(other, 1, training: true);
        plan3.SetBatch(1);
        x.CopyTo(plan3.Input);
        plan3.Forward();
        Assert.That(plan3.Output.ToArray(), Is.Not.EqualTo(first));
    }

    [Test]
    public void Dropout_WithoutSeedFollowsTheModelSeed()
    {
        float[] Mask(ulong modelSeed)
        {
            var m = new Sequential(Shape3.Flat(256), modelSeed).Add(new Dropout(0.5f));
            var plan = new ExecutionPlan(m, 1, training: true);
            plan.SetBatch(1);
            plan.Input.Fill(1f);
            plan.Forward();
            return plan.Output.ToArray();
        }
        Assert.That(Mask(5), Is.EqualTo(Mask(5)));
        Assert.That(Mask(5), Is.Not.EqualTo(Mask(6)));
    }
}
