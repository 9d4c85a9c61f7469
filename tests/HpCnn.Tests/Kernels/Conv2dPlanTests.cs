using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// Conv2dPlan (each algorithm forced, and the automatic choice) against Conv2dKernels.ReferenceForward /
/// ReferenceBackward. Scratch, packed weights and outputs are given exactly the sizes the plan asks for, inside
/// arrays whose tail holds sentinels, and scratch starts full of NaN markers (nothing may rely on it being zero).
/// Tolerances scale with the reference run on absolute values (the magnitude of each sum).
/// </summary>
public class Conv2dPlanTests
{
    private static IEnumerable<TestCaseData> Shapes()
    {
        static TestCaseData Case(string name, Conv2dShape s) => new TestCaseData(s).SetArgDisplayNames(name);
        // The reference network.
        yield return Case("1x28x28->32 3x3 pad 1", new Conv2dShape(1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1));
        yield return Case("32x14x14->64 3x3 pad 1", new Conv2dShape(32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1));
        // Non-square kernels and images, asymmetric padding.
        yield return Case("3x9x11->5 3x2 pad (1,0,2,1)", new Conv2dShape(3, 9, 11, 5, 3, 2, 1, 1, 1, 0, 2, 1));
        yield return Case("2x7x13->4 1x5 pad (0,2,0,1)", new Conv2dShape(2, 7, 13, 4, 1, 5, 1, 1, 0, 2, 0, 1));
        yield return Case("3x5x37->6 3x3 pad (0,1,1,0)", new Conv2dShape(3, 5, 37, 6, 3, 3, 1, 1, 0, 1, 1, 0));
        yield return Case("7x6x9->13 2x3 pad (1,2,0,0)", new Conv2dShape(7, 6, 9, 13, 2, 3, 1, 1, 1, 2, 0, 0));
        yield return Case("1x17x17->7 3x3 valid", new Conv2dShape(1, 17, 17, 7, 3, 3));
        // 3x3 stride 1 with 8+ channels (Winograd is the automatic choice on AVX2): odd output sizes, asymmetric
        // padding, and rows of more than 8 tiles (the 8-lane transforms plus a partial group).
        yield return Case("9x7x11->10 3x3 pad (1,0,2,1)", new Conv2dShape(9, 7, 11, 10, 3, 3, 1, 1, 1, 0, 2, 1));
        yield return Case("8x6x37->17 3x3 pad 1", new Conv2dShape(8, 6, 37, 17, 3, 3, 1, 1, 1, 1, 1, 1));
        // Enough tiles that one image's Winograd forward splits by tile rows; an odd output height (a clipped last row).
        yield return Case("8x16x16->12 3x3 pad 1", new Conv2dShape(8, 16, 16, 12, 3, 3, 1, 1, 1, 1, 1, 1));
        yield return Case("5x15x13->9 3x3 pad (1,0,1,1)", new Conv2dShape(5, 15, 13, 9, 3, 3, 1, 1, 1, 0, 1, 1));
        // 1x1 kernels and a kernel as large as the image.
        yield return Case("4x10x8->7 1x1", new Conv2dShape(4, 10, 8, 7, 1, 1));
        // 1x1 without padding: the blocked input gradient reads the output gradient in place (at stride 2 only the
        // even phase has a tap; the other phases' inputs get zero gradient).
        yield return Case("20x6x7->35 1x1", new Conv2dShape(20, 6, 7, 35, 1, 1));
        // 1x1, stride 1, unpadded, deep: im2col's GEMMs read the image in place in two tiles of 208 pixels (the second
        // partial) and write the input gradient in place.
        yield return Case("300x15x17->24 1x1", new Conv2dShape(300, 15, 17, 24, 1, 1));
        yield return Case("18x9x11->17 1x1 stride 2", new Conv2dShape(18, 9, 11, 17, 1, 1, 2, 2, 0, 0, 0, 0));
        yield return Case("1x5x5->1 5x5", new Conv2dShape(1, 5, 5, 1, 5, 5));
        // Deep enough that the im2col path needs several tiles, the last one partial.
        yield return Case("40x9x10->5 5x5 pad 2", new Conv2dShape(40, 9, 10, 5, 5, 5, 1, 1, 2, 2, 2, 2));
        // Strided (im2col only).
        yield return Case("3x15x17->5 3x3 stride 2 pad (1,1,0,1)", new Conv2dShape(3, 15, 17, 5, 3, 3, 2, 2, 1, 1, 0, 1));
        yield return Case("2x11x10->3 3x2 stride 2x1 pad (0,1,2,0)", new Conv2dShape(2, 11, 10, 3, 3, 2, 2, 1, 0, 1, 2, 0));
        yield return Case("2x8x20->4 2x4 stride 1x3 pad (1,0,0,3)", new Conv2dShape(2, 8, 20, 4, 2, 4, 1, 3, 1, 0, 0, 3));
        yield return Case("1x28x28->8 5x5 stride 2 pad 2", new Conv2dShape(1, 28, 28, 8, 5, 5, 2, 2, 2, 2, 2, 2));
    }

    /// <summary>A seed fixed by the shape alone (GetHashCode of strings is randomised per process).</summary>
    private static int Seed(in Conv2dShape s) =>
        s.InC * 7919 + s.InH * 613 + s.InW * 97 + s.OutC * 31 + s.KH * 7 + s.KW + s.StrideH * 3 + s.StrideW * 13 + s.PadTop * 5 + s.PadRight * 11;

    private static bool StrideOne(in Conv2dShape s) => s.StrideH == 1 && s.StrideW == 1;

    private static bool WinogradFits(in Conv2dShape s) => StrideOne(s) && s.KH == 3 && s.KW == 3;

    /// <summary>The algorithms a shape is run with: every forced one that applies, then the automatic choice (null).</summary>
    private static IEnumerable<Conv2dAlgorithm?> Algorithms(Conv2dShape s)
    {
        if (StrideOne(s)) yield return Conv2dAlgorithm.ImplicitPadded;
        if (StrideOne(s)) yield return Conv2dAlgorithm.DirectSmall;
        yield return Conv2dAlgorithm.Im2colTiled;
        if (WinogradFits(s)) yield return Conv2dAlgorithm.Winograd2x2;
        if (WinogradFits(s)) yield return Conv2dAlgorithm.Winograd4x4;
        yield return Conv2dAlgorithm.Blocked;
        yield return null;
    }

    private static Conv2dPlan MakePlan(in Conv2dShape s, Conv2dAlgorithm? force)
    {
        var plan = new Conv2dPlan(s, force);
        if (force is Conv2dAlgorithm f) Assert.That(plan.Algorithm, Is.EqualTo(f));
        else Assert.That(plan.Algorithm, Is.EqualTo(Conv2dPlan.Choose(s)));
        Assert.That(plan.Shape, Is.EqualTo(s));
        return plan;
    }

    private static string Name(Conv2dPlan plan, Conv2dAlgorithm? force) => $"{plan.Shape} [{plan.Algorithm}{(force is null ? ", automatic" : "")}]";

    private static float[] PackedWeights(Conv2dPlan plan, float[] weights, bool transposed)
    {
        int size = transposed ? plan.PackedWeightsTSize : plan.PackedWeightsSize;
        var packed = Sentinel.Buffer(size);
        if (transposed) plan.PackWeightsTransposed(weights.AsSpan(0, plan.Shape.WeightCount), packed.AsSpan(0, size));
        else plan.PackWeights(weights.AsSpan(0, plan.Shape.WeightCount), packed.AsSpan(0, size));
        Sentinel.AssertTail(packed, size, $"packed weights{(transposed ? " (transposed)" : "")}");
        return packed;
    }

    private sealed class Data
    {
        public required float[] Image, Weights, Bias, OutGrad; // each followed by NaN markers (a read past the end poisons the result)
    }

    private static Data MakeData(in Conv2dShape s, int seed)
    {
        var rng = new Random(seed);
        return new Data
        {
            Image = Sentinel.Wrap(TestData.Uniform(rng, s.InSize, -1.5f, 1.5f)),
            Weights = Sentinel.Wrap(TestData.Uniform(rng, s.WeightCount, -1f, 1f)),
            Bias = TestData.Uniform(rng, s.OutC + 5, -2f, 2f),
            OutGrad = Sentinel.Wrap(TestData.Uniform(rng, s.OutSize, -1f, 1f)),
        };
    }

    private static (double[] Expected, double[] Scale) ReferenceForward(in Conv2dShape s, Data d, int biasOffset, bool bias, float low, float high)
    {
        var y = new float[s.OutSize];
        var mag = new float[s.OutSize];
        var biasSpan = bias ? d.Bias.AsSpan(biasOffset, s.OutC) : default;
        Conv2dKernels.ReferenceForward(s, 1, d.Image.AsSpan(0, s.InSize), d.Weights.AsSpan(0, s.WeightCount), biasSpan, y);
        Conv2dKernels.ReferenceForward(s, 1, TestData.Abs(d.Image.AsSpan(0, s.InSize)), TestData.Abs(d.Weights.AsSpan(0, s.WeightCount)),
            bias ? TestData.Abs(biasSpan) : default, mag);
        var e = new double[y.Length];
        for (int i = 0; i < e.Length; i++) e[i] = Math.Min(Math.Max((double)y[i], low), high);
        return (e, Close.ToDouble(mag));
    }

    private static double[] Tolerance(double[] scale, int terms, Conv2dAlgorithm algo = Conv2dAlgorithm.ImplicitPadded) =>
        scale.Select(x => WinogradError(algo) * (Close.SumTolerance(terms, x) + 1e-7 * x)).ToArray();

    /// <summary>
    /// How much more rounding error an algorithm may carry than a sum of products: F(4x4, 3x3)'s transforms have
    /// coefficients up to 5 (input) and 8 (output), so its intermediate values, and their rounding, run several times
    /// larger than the sum of absolute terms the tolerance scales with (F(2x2)'s are 1 and fit the plain bound).
    /// </summary>
    private static double WinogradError(Conv2dAlgorithm algo) => algo == Conv2dAlgorithm.Winograd4x4 ? 4 : 1;

    private static Func<int, string> OutIndex(Conv2dShape s) => i => $"channel {i / s.OutPlane}, y {i % s.OutPlane / s.OutW}, x {i % s.OutW}";
    private static Func<int, string> InIndex(Conv2dShape s) => i => $"channel {i / (s.InH * s.InW)}, y {i % (s.InH * s.InW) / s.InW}, x {i % s.InW}";

    [TestCaseSource(nameof(Shapes))]
    public void ForwardMatchesReference(Conv2dShape s)
    {
        var d = MakeData(s, Seed(s));
        var epilogues = new (string Name, bool Bias, int Offset, float Low, float High)[]
        {
            ("plain", false, 0, float.NegativeInfinity, float.PositiveInfinity),
            ("bias", true, 0, float.NegativeInfinity, float.PositiveInfinity),
            ("bias offset 3 + relu", true, 3, 0f, float.PositiveInfinity),
            ("bias offset 5 + relu6", true, 5, 0f, 6f),
            ("relu6 only", false, 0, 0f, 6f),
            ("bias offset 1 + [-0.5, 0.5]", true, 1, -0.5f, 0.5f),
        };
        foreach (var force in Algorithms(s))
        {
            var plan = MakePlan(s, force);
            var packed = PackedWeights(plan, d.Weights, transposed: false);
            var scratch = Sentinel.Buffer(plan.ForwardScratch);
            foreach (var ep in epilogues)
            {
                var epi = new GemmEpilogue(ep.Bias ? BiasMode.PerRow : BiasMode.None, ep.Bias ? d.Bias : null, ep.Offset, ep.Low, ep.High);
                var output = Sentinel.Buffer(s.OutSize);
                plan.Forward(d.Image.AsSpan(0, s.InSize), d.Weights.AsSpan(0, s.WeightCount), packed.AsSpan(0, plan.PackedWeightsSize),
                    output.AsSpan(0, s.OutSize), in epi, scratch.AsSpan(0, plan.ForwardScratch));
                string what = $"forward {Name(plan, force)} epilogue {ep.Name}";
                var (expected, scale) = ReferenceForward(s, d, ep.Offset, ep.Bias, ep.Low, ep.High);
                Close.All(output.AsSpan(0, s.OutSize), expected, Tolerance(scale, s.K + 1, plan.Algorithm), what, OutIndex(s));
                Sentinel.AssertTail(output, s.OutSize, what + " (output)");
                Sentinel.AssertTail(scratch, plan.ForwardScratch, what + " (scratch)");
            }
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void ForwardPartsCoverTheOutputExactlyOnce(Conv2dShape s)
    {
        var d = MakeData(s, Seed(s) + 1);
        var (expected, scale) = ReferenceForward(s, d, 2, true, 0f, float.PositiveInfinity);
        foreach (var force in Algorithms(s))
        {
            var plan = MakePlan(s, force);
            var tol = Tolerance(scale, s.K + 1, plan.Algorithm);
            Assert.That(plan.ForwardParts, Is.GreaterThanOrEqualTo(1));
            var packed = PackedWeights(plan, d.Weights, transposed: false);
            var scratch = Sentinel.Buffer(plan.ForwardScratch);
            var epi = new GemmEpilogue(BiasMode.PerRow, d.Bias, 2, 0f, float.PositiveInfinity);
            foreach (int parts in new[] { 1, 2, 3, plan.ForwardParts, plan.ForwardParts + 3 }.Distinct())
            {
                var writes = new int[s.OutSize];
                var combined = new float[s.OutSize];
                // Parts run in reverse order, each on a fresh output: each must write only its own pixels.
                for (int part = parts - 1; part >= 0; part--)
                {
                    var output = Sentinel.Buffer(s.OutSize);
                    plan.Forward(d.Image.AsSpan(0, s.InSize), d.Weights.AsSpan(0, s.WeightCount), packed.AsSpan(0, plan.PackedWeightsSize),
                        output.AsSpan(0, s.OutSize), in epi, scratch.AsSpan(0, plan.ForwardScratch), part, parts);
                    for (int i = 0; i < s.OutSize; i++)
                        if (!Sentinel.IsMarker(output[i])) { writes[i]++; combined[i] = output[i]; }
                    Sentinel.AssertTail(output, s.OutSize, $"forward part {part}/{parts} (output)");
                    Sentinel.AssertTail(scratch, plan.ForwardScratch, $"forward part {part}/{parts} (scratch)");
                }
                string what = $"forward {Name(plan, force)} in {parts} parts";
                int notOnce = Array.FindIndex(writes, w => w != 1);
                Assert.That(notOnce, Is.EqualTo(-1),
                    () => $"{what}: output {notOnce} ({OutIndex(s)(notOnce)}) written {writes[notOnce]} times");
                Close.All(combined, expected, tol, what, OutIndex(s));
            }
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void BackwardDataMatchesReference(Conv2dShape s)
    {
        var d = MakeData(s, Seed(s) + 2);
        var expected = new float[s.InSize];
        var mag = new float[s.InSize];
        Conv2dKernels.ReferenceBackward(s, 1, d.Image.AsSpan(0, s.InSize), d.Weights.AsSpan(0, s.WeightCount), d.OutGrad.AsSpan(0, s.OutSize),
            expected, default, default);
        Conv2dKernels.ReferenceBackward(s, 1, TestData.Abs(d.Image.AsSpan(0, s.InSize)), TestData.Abs(d.Weights.AsSpan(0, s.WeightCount)),
            TestData.Abs(d.OutGrad.AsSpan(0, s.OutSize)), mag, default, default);
        foreach (var force in Algorithms(s))
        {
            var plan = MakePlan(s, force);
            var tol = Tolerance(Close.ToDouble(mag), s.OutC * s.KH * s.KW, plan.Algorithm);
            var packedT = PackedWeights(plan, d.Weights, transposed: true);
            var scratch = Sentinel.Buffer(plan.BackwardDataScratch);
            // Twice with the same scratch: the second call sees the first one's leftovers.
            for (int run = 0; run < 2; run++)
            {
                var inGrad = Sentinel.Buffer(s.InSize); // payload starts as markers: it must be overwritten, never added to
                plan.BackwardData(d.OutGrad.AsSpan(0, s.OutSize), d.Weights.AsSpan(0, s.WeightCount), packedT.AsSpan(0, plan.PackedWeightsTSize),
                    inGrad.AsSpan(0, s.InSize), scratch.AsSpan(0, plan.BackwardDataScratch));
                string what = $"backward data {Name(plan, force)} run {run}";
                Close.All(inGrad.AsSpan(0, s.InSize), Close.ToDouble(expected), tol, what, InIndex(s));
                Sentinel.AssertTail(inGrad, s.InSize, what + " (input gradient)");
                Sentinel.AssertTail(scratch, plan.BackwardDataScratch, what + " (scratch)");
            }
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void BackwardWeightsMatchesReference(Conv2dShape s)
    {
        var d = MakeData(s, Seed(s) + 3);
        var dW = new float[s.WeightCount];
        var dB = new float[s.OutC];
        var magW = new float[s.WeightCount];
        var magB = new float[s.OutC];
        Conv2dKernels.ReferenceBackward(s, 1, d.Image.AsSpan(0, s.InSize), d.Weights.AsSpan(0, s.WeightCount), d.OutGrad.AsSpan(0, s.OutSize),
            default, dW, dB);
        Conv2dKernels.ReferenceBackward(s, 1, TestData.Abs(d.Image.AsSpan(0, s.InSize)), TestData.Abs(d.Weights.AsSpan(0, s.WeightCount)),
            TestData.Abs(d.OutGrad.AsSpan(0, s.OutSize)), default, magW, magB);
        var rng = new Random(17);
        var initialW = TestData.Uniform(rng, s.WeightCount, -3f, 3f);
        var initialB = TestData.Uniform(rng, s.OutC, -3f, 3f);

        foreach (var force in Algorithms(s))
        {
            var plan = MakePlan(s, force);
            var scratch = Sentinel.Buffer(plan.BackwardWeightsScratch);
            foreach (bool accumulate in new[] { false, true })
                foreach (bool withBias in new[] { true, false })
                {
                    var wGrad = Sentinel.Buffer(s.WeightCount);
                    var bGrad = Sentinel.Buffer(s.OutC);
                    if (accumulate) initialW.CopyTo(wGrad, 0);
                    if (accumulate && withBias) initialB.CopyTo(bGrad, 0);
                    plan.BackwardWeights(d.Image.AsSpan(0, s.InSize), d.OutGrad.AsSpan(0, s.OutSize), wGrad.AsSpan(0, s.WeightCount),
                        withBias ? bGrad.AsSpan(0, s.OutC) : default, accumulate, scratch.AsSpan(0, plan.BackwardWeightsScratch));
                    string what = $"backward weights {Name(plan, force)} accumulate={accumulate} bias={withBias}";

                    var eW = new double[s.WeightCount];
                    var sW = new double[s.WeightCount];
                    for (int i = 0; i < eW.Length; i++)
                    {
                        eW[i] = dW[i] + (accumulate ? initialW[i] : 0);
                        sW[i] = magW[i] + (accumulate ? Math.Abs(initialW[i]) : 0);
                    }
                    Close.All(wGrad.AsSpan(0, s.WeightCount), eW, Tolerance(sW, s.OutPlane + 1), what + " (weight gradient)",
                        i => $"out channel {i / s.K}, in channel {i % s.K / (s.KH * s.KW)}, ky {i % (s.KH * s.KW) / s.KW}, kx {i % s.KW}");
                    Sentinel.AssertTail(wGrad, s.WeightCount, what + " (weight gradient)");

                    if (withBias)
                    {
                        var eB = new double[s.OutC];
                        var sB = new double[s.OutC];
                        for (int i = 0; i < eB.Length; i++)
                        {
                            eB[i] = dB[i] + (accumulate ? initialB[i] : 0);
                            sB[i] = magB[i] + (accumulate ? Math.Abs(initialB[i]) : 0);
                        }
                        Close.All(bGrad.AsSpan(0, s.OutC), eB, Tolerance(sB, s.OutPlane + 1), what + " (bias gradient)");
                        Sentinel.AssertTail(bGrad, s.OutC, what + " (bias gradient)");
                    }
                    else
                    {
                        Sentinel.AssertTail(bGrad, 0, what + " (empty bias gradient must not be written)");
                    }
                    Sentinel.AssertTail(scratch, plan.BackwardWeightsScratch, what + " (scratch)");
                }
        }
    }

    [Test]
    public void ImplicitAlgorithmRejectsStrides()
    {
        var s = new Conv2dShape(3, 15, 17, 5, 3, 3, 2, 2, 1, 1, 0, 1);
        var ex = Assert.Throws<ArgumentException>(() => new Conv2dPlan(s, Conv2dAlgorithm.ImplicitPadded));
        Assert.That(ex!.Message, Does.Contain("stride 1").And.Contain("2x2"));
        Assert.That(Conv2dPlan.Choose(s), Is.EqualTo(Conv2dAlgorithm.Im2colTiled));
        Assert.That(Conv2dPlan.Choose(s with { StrideH = 1 }), Is.EqualTo(Conv2dAlgorithm.Im2colTiled));
    }

    [Test]
    public void WinogradRejectsOtherKernelsAndStrides()
    {
        foreach (var algo in new[] { Conv2dAlgorithm.Winograd2x2, Conv2dAlgorithm.Winograd4x4 })
        {
            Assert.That(() => new Conv2dPlan(new Conv2dShape(8, 9, 9, 8, 5, 5, 1, 1, 2, 2, 2, 2), algo),
                Throws.ArgumentException.With.Message.Contains("3x3").And.Message.Contains("5x5"));
            Assert.That(() => new Conv2dPlan(new Conv2dShape(8, 9, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1), algo),
                Throws.ArgumentException.With.Message.Contains("stride 2x2"));
        }
        Assert.That(Conv2dPlan.Choose(new Conv2dShape(8, 9, 9, 8, 3, 3, 2, 2, 1, 1, 1, 1)), Is.EqualTo(Conv2dAlgorithm.Im2colTiled));
    }

    /// <summary>Image counts a group call is made with: Winograd plans get at most <see cref="Conv2dPlan.ImagesPerCall"/> (the scratch holds that many).</summary>
    private static int[] GroupCounts(Conv2dPlan plan) => plan.Algorithm is Conv2dAlgorithm.Winograd2x2 or Conv2dAlgorithm.Winograd4x4
        ? new[] { 1, 2, plan.ImagesPerCall }.Where(c => c <= plan.ImagesPerCall).Distinct().ToArray()
        : [1, 3];

    [TestCaseSource(nameof(Shapes))]
    public void GroupCallsMatchTheBatchedReference(Conv2dShape s)
    {
        const int maxImages = 16;
        var rng = new Random(Seed(s) + 4);
        var images = TestData.Uniform(rng, maxImages * s.InSize, -1.5f, 1.5f);
        var weights = Sentinel.Wrap(TestData.Uniform(rng, s.WeightCount));
        var bias = TestData.Uniform(rng, s.OutC + 2, -2f, 2f);
        var outGrads = TestData.Uniform(rng, maxImages * s.OutSize);
        var initialW = TestData.Uniform(rng, s.WeightCount, -3f, 3f);
        var initialB = TestData.Uniform(rng, s.OutC, -3f, 3f);
        var w = weights.AsSpan(0, s.WeightCount);

        foreach (var force in Algorithms(s))
        {
            var plan = MakePlan(s, force);
            Assert.That(plan.ImagesPerCall, Is.InRange(1, maxImages));
            var packed = PackedWeights(plan, weights, transposed: false);
            var packedT = PackedWeights(plan, weights, transposed: true);
            foreach (int count in GroupCounts(plan))
            {
                string name = $"{Name(plan, force)}, {count} images";
                var x = images.AsSpan(0, count * s.InSize);
                var dy = outGrads.AsSpan(0, count * s.OutSize);

                // Forward with bias offset 2 and relu6, in parts (channels for Winograd, pixels otherwise): each output once.
                var y = new float[count * s.OutSize];
                var yMag = new float[count * s.OutSize];
                Conv2dKernels.ReferenceForward(s, count, x, w, bias.AsSpan(2, s.OutC), y);
                Conv2dKernels.ReferenceForward(s, count, TestData.Abs(x), TestData.Abs(w), TestData.Abs(bias.AsSpan(2, s.OutC)), yMag);
                var eY = y.Select(v => Math.Min(Math.Max((double)v, 0), 6)).ToArray();
                var epi = new GemmEpilogue(BiasMode.PerRow, bias, 2, 0f, 6f);
                var fwdScratch = Sentinel.Buffer(plan.ForwardScratch);
                foreach (int parts in new[] { 1, plan.ForwardParts, plan.ForwardParts + 1 }.Distinct())
                {
                    var writes = new int[count * s.OutSize];
                    var combined = new float[count * s.OutSize];
                    for (int part = 0; part < parts; part++)
                    {
                        var output = Sentinel.Buffer(count * s.OutSize);
                        plan.Forward(Sentinel.Wrap(x).AsSpan(0, x.Length), count, w, packed.AsSpan(0, plan.PackedWeightsSize),
                            output.AsSpan(0, count * s.OutSize), in epi, fwdScratch.AsSpan(0, plan.ForwardScratch), part, parts);
                        for (int i = 0; i < combined.Length; i++)
                            if (!Sentinel.IsMarker(output[i])) { writes[i]++; combined[i] = output[i]; }
                        Sentinel.AssertTail(output, count * s.OutSize, $"group forward {name} part {part}/{parts} (output)");
                        Sentinel.AssertTail(fwdScratch, plan.ForwardScratch, $"group forward {name} part {part}/{parts} (scratch)");
                    }
                    int notOnce = Array.FindIndex(writes, c => c != 1);
                    Assert.That(notOnce, Is.EqualTo(-1), () => $"group forward {name} in {parts} parts: output {notOnce} written {writes[notOnce]} times");
                    Close.All(combined, eY, Tolerance(Close.ToDouble(yMag), s.K + 1, plan.Algorithm), $"group forward {name} in {parts} parts",
                        i => $"image {i / s.OutSize}, {OutIndex(s)(i % s.OutSize)}");
                }

                // Backward data.
                var dx = new float[count * s.InSize];
                var dxMag = new float[count * s.InSize];
                Conv2dKernels.ReferenceBackward(s, count, x, w, dy, dx, default, default);
                Conv2dKernels.ReferenceBackward(s, count, TestData.Abs(x), TestData.Abs(w), TestData.Abs(dy), dxMag, default, default);
                var bdScratch = Sentinel.Buffer(plan.BackwardDataScratch);
                var inGrads = Sentinel.Buffer(count * s.InSize);
                plan.BackwardData(Sentinel.Wrap(dy).AsSpan(0, dy.Length), count, w, packedT.AsSpan(0, plan.PackedWeightsTSize),
                    inGrads.AsSpan(0, count * s.InSize), bdScratch.AsSpan(0, plan.BackwardDataScratch));
                Close.All(inGrads.AsSpan(0, count * s.InSize), Close.ToDouble(dx), Tolerance(Close.ToDouble(dxMag), s.OutC * 9 + 1, plan.Algorithm),
                    $"group backward data {name}", i => $"image {i / s.InSize}, {InIndex(s)(i % s.InSize)}");
                Sentinel.AssertTail(inGrads, count * s.InSize, $"group backward data {name}");
                Sentinel.AssertTail(bdScratch, plan.BackwardDataScratch, $"group backward data {name} (scratch)");

                // Backward weights: the sum over the group, overwritten or added.
                var dW = new float[s.WeightCount];
                var dB = new float[s.OutC];
                var magW = new float[s.WeightCount];
                var magB = new float[s.OutC];
                Conv2dKernels.ReferenceBackward(s, count, x, w, dy, default, dW, dB);
                Conv2dKernels.ReferenceBackward(s, count, TestData.Abs(x), TestData.Abs(w), TestData.Abs(dy), default, magW, magB);
                var bwScratch = Sentinel.Buffer(plan.BackwardWeightsScratch);
                foreach (bool accumulate in new[] { false, true })
                {
                    var wGrad = Sentinel.Buffer(s.WeightCount);
                    var bGrad = Sentinel.Buffer(s.OutC);
                    if (accumulate) { initialW.CopyTo(wGrad, 0); initialB.CopyTo(bGrad, 0); }
                    plan.BackwardWeights(Sentinel.Wrap(x).AsSpan(0, x.Length), Sentinel.Wrap(dy).AsSpan(0, dy.Length), count,
                        wGrad.AsSpan(0, s.WeightCount), bGrad.AsSpan(0, s.OutC), accumulate, bwScratch.AsSpan(0, plan.BackwardWeightsScratch));
                    string what = $"group backward weights {name} accumulate={accumulate}";
                    var eW = dW.Select((v, i) => v + (accumulate ? (double)initialW[i] : 0)).ToArray();
                    var sW = magW.Select((v, i) => v + (accumulate ? Math.Abs((double)initialW[i]) : 0)).ToArray();
                    var eB = dB.Select((v, i) => v + (accumulate ? (double)initialB[i] : 0)).ToArray();
                    var sB = magB.Select((v, i) => v + (accumulate ? Math.Abs((double)initialB[i]) : 0)).ToArray();
                    Close.All(wGrad.AsSpan(0, s.WeightCount), eW, Tolerance(sW, count * s.OutPlane + 1), what + " (weight gradient)");
                    Close.All(bGrad.AsSpan(0, s.OutC), eB, Tolerance(sB, count * s.OutPlane + 1), what + " (bias gradient)");
                    Sentinel.AssertTail(wGrad, s.WeightCount, what + " (weight gradient)");
                    Sentinel.AssertTail(bGrad, s.OutC, what + " (bias gradient)");
                    Sentinel.AssertTail(bwScratch, plan.BackwardWeightsScratch, what + " (scratch)");
                }
            }
        }
    }

    /// <summary>
    /// One image's forward in parts gives the bits of the whole call, pooled or not (with the arg-max): Winograd splits
    /// a large image by tile rows (each part its own GEMM over fewer tiles) and a small one by channels, the blocked
    /// kernel by channel groups and row bands; a prediction at batch 1 on two threads must equal the one on one.
    /// </summary>
    [TestCase(8, 16, 16, 12, 1)]
    [TestCase(5, 15, 13, 9, 0)]
    [TestCase(16, 8, 8, 20, 1)]
    [TestCase(12, 28, 30, 7, 1)]
    [TestCase(3, 32, 32, 32, 1)]
    [TestCase(1, 28, 28, 20, 1)]
    public void ForwardInPartsGivesTheWholeCallsBits(int inC, int h, int w, int outC, int pad)
    {
        var s = new Conv2dShape(inC, h, w, outC, 3, 3, 1, 1, pad, pad, pad, pad);
        var d = MakeData(s, Seed(s) + 7);
        var epi = new GemmEpilogue(BiasMode.PerRow, d.Bias, 1, 0f, 6f);
        int pplane = (s.OutH / 2) * (s.OutW / 2), pooledSize = s.OutC * pplane;
        // The direct small-channel kernel (pooled only for whole blocks of 4 filters) for at most 4 input channels.
        var algos = inC <= 4 ? new[] { Conv2dAlgorithm.DirectSmall, Conv2dAlgorithm.Blocked } : new[] { Conv2dAlgorithm.Winograd2x2, Conv2dAlgorithm.Winograd4x4, Conv2dAlgorithm.Blocked };
        foreach (var algo in algos)
        {
            var plan = new Conv2dPlan(s, algo);
            var packed = PackedWeights(plan, d.Weights, transposed: false);
            var scratch = Sentinel.Buffer(plan.ForwardScratch);
            (float[] Output, float[] Pooled, int[] Argmax) Run(int parts)
            {
                var output = new float[s.OutSize];
                var pooled = new float[pooledSize];
                var argmax = new int[pooledSize];
                for (int part = 0; part < parts; part++)
                {
                    plan.Forward(d.Image.AsSpan(0, s.InSize), 1, d.Weights.AsSpan(0, s.WeightCount), packed.AsSpan(0, plan.PackedWeightsSize),
                        output, in epi, scratch.AsSpan(0, plan.ForwardScratch), part, parts);
                    if (plan.CanPool2x2)
                        plan.ForwardPooled(d.Image.AsSpan(0, s.InSize), 1, d.Weights.AsSpan(0, s.WeightCount), packed.AsSpan(0, plan.PackedWeightsSize),
                            pooled, argmax, in epi, scratch.AsSpan(0, plan.ForwardScratch), part, parts);
                    Sentinel.AssertTail(scratch, plan.ForwardScratch, $"{algo} part {part}/{parts} (scratch)");
                }
                return (output, pooled, argmax);
            }
            var whole = Run(1);
            foreach (int parts in new[] { 2, 3, 4, plan.ForwardParts, plan.ForwardParts + 1 }.Distinct())
            {
                var split = Run(parts);
                string what = $"{s} {algo} in {parts} parts";
                Assert.That(split.Output.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(whole.Output.Select(BitConverter.SingleToInt32Bits)), what);
                Assert.That(split.Pooled.Select(BitConverter.SingleToInt32Bits), Is.EqualTo(whole.Pooled.Select(BitConverter.SingleToInt32Bits)), what + " (pooled)");
                Assert.That(split.Argmax, Is.EqualTo(whole.Argmax), what + " (arg-max)");
            }
        }
    }

    /// <summary>
    /// A Winograd forward gives an image the bits it has inside a group: a group's GEMMs run whole 16-tile strips in the
    /// micro-kernel, one image's few tiles (4 on an 8 x 8 output) the column tail or, for F(4x4), Sgemm.FewColumns on
    /// the transposed filter copy, and all of them sum each element in the same order. Inference relies on it: a
    /// prediction's bits do not depend on the batch it arrives in.
    /// </summary>
    [TestCase(16, 8, 8, 20, 1)]
    [TestCase(24, 8, 8, 70, 1)]
    [TestCase(9, 12, 12, 37, 1)]
    [TestCase(8, 10, 6, 5, 0)]
    public void OneImageCallGivesTheBitsOfAGroupCall(int inC, int h, int w, int outC, int pad)
    {
        var s = new Conv2dShape(inC, h, w, outC, 3, 3, 1, 1, pad, pad, pad, pad);
        var d = MakeData(s, Seed(s) + 9);
        var images = TestData.Uniform(new Random(Seed(s) + 10), 8 * s.InSize, -1.5f, 1.5f);
        var epi = new GemmEpilogue(BiasMode.PerRow, d.Bias, 1, float.NegativeInfinity, float.PositiveInfinity);
        foreach (var algo in new[] { Conv2dAlgorithm.Winograd2x2, Conv2dAlgorithm.Winograd4x4 })
        {
            var plan = new Conv2dPlan(s, algo);
            var packed = PackedWeights(plan, d.Weights, transposed: false);
            var scratch = Sentinel.Buffer(plan.ForwardScratch);
            int count = Math.Min(plan.ImagesPerCall, 8);
            Assert.That(count, Is.GreaterThan(1), "the test needs a group of images");
            var group = new float[count * s.OutSize];
            plan.Forward(images.AsSpan(0, count * s.InSize), count, d.Weights.AsSpan(0, s.WeightCount), packed.AsSpan(0, plan.PackedWeightsSize),
                group, in epi, scratch.AsSpan(0, plan.ForwardScratch));
            foreach (int parts in new[] { 1, 2, plan.ForwardParts }.Distinct())
                for (int n = 0; n < count; n++)
                {
                    var one = Sentinel.Buffer(s.OutSize);
                    for (int part = 0; part < parts; part++)
                        plan.Forward(images.AsSpan(n * s.InSize, s.InSize), 1, d.Weights.AsSpan(0, s.WeightCount), packed.AsSpan(0, plan.PackedWeightsSize),
                            one.AsSpan(0, s.OutSize), in epi, scratch.AsSpan(0, plan.ForwardScratch), part, parts);
                    Sentinel.AssertTail(one, s.OutSize, $"{s} {algo} image {n} alone (output)");
                    Sentinel.AssertTail(scratch, plan.ForwardScratch, $"{s} {algo} image {n} alone (scratch)");
                    Assert.That(one.AsSpan(0, s.OutSize).ToArray().Select(BitConverter.SingleToInt32Bits),
                        Is.EqualTo(group.AsSpan(n * s.OutSize, s.OutSize).ToArray().Select(BitConverter.SingleToInt32Bits)),
                        $"{s} {algo}: image {n} alone in {parts} parts against the group of {count}");
                }
        }
    }

    /// <summary>
    /// The pooled forward of every algorithm that pools in its epilogue gives the bits (values and arg-max) of its own
    /// forward followed by the pool's kernel, for groups of images, odd planes (a floor-mode pool drops the last row or
    /// column) and an image split in parts: F(2x2) tiles are pooling windows, F(4x4) stages each plane's rows.
    /// </summary>
    [TestCase(16, 16, 16, 24, 1)]
    [TestCase(9, 13, 11, 10, 1)]
    [TestCase(8, 10, 18, 12, 0)]
    [TestCase(20, 30, 28, 8, 1)]
    [TestCase(1, 28, 28, 32, 1)]
    [TestCase(3, 13, 30, 8, 1)]
    public void PooledForwardIsTheForwardThenThePool(int inC, int h, int w, int outC, int pad)
    {
        var s = new Conv2dShape(inC, h, w, outC, 3, 3, 1, 1, pad, pad, pad, pad);
        var rng = new Random(Seed(s) + 9);
        var weights = Sentinel.Wrap(TestData.Uniform(rng, s.WeightCount));
        var bias = TestData.Uniform(rng, s.OutC, -0.5f, 0.5f);
        var pool = new Pool2dShape(s.OutC, s.OutH, s.OutW, 2, 2, 2, 2);
        // A capped ReLU, a ReLU (whole windows of zeros: ties go to the first) and no clamp (negative maxima).
        foreach (var (low, high) in new[] { (0f, 6f), (0f, float.PositiveInfinity), (float.NegativeInfinity, float.PositiveInfinity) })
        // The direct small-channel kernel (2 or 4 output rows a block: odd pooled row counts take both) for few input channels.
        foreach (var algo in inC <= 4 ? new[] { Conv2dAlgorithm.DirectSmall, Conv2dAlgorithm.Blocked } : new[] { Conv2dAlgorithm.Winograd2x2, Conv2dAlgorithm.Winograd4x4, Conv2dAlgorithm.Blocked })
        {
            var epi = new GemmEpilogue(BiasMode.PerRow, bias, 0, low, high);
            var plan = new Conv2dPlan(s, algo);
            Assert.That(plan.CanPool2x2, Is.True, algo.ToString());
            var packed = PackedWeights(plan, weights, transposed: false);
            var scratch = Sentinel.Buffer(plan.ForwardScratch);
            int count = plan.ImagesPerCall;
            var x = TestData.Uniform(rng, count * s.InSize, -1.5f, 1.5f);
            var y = new float[count * s.OutSize];
            plan.Forward(x, count, weights.AsSpan(0, s.WeightCount), packed.AsSpan(0, plan.PackedWeightsSize), y, in epi,
                scratch.AsSpan(0, plan.ForwardScratch));
            var expected = new float[count * pool.C * pool.OutPlane];
            var expectedIdx = new int[expected.Length];
            for (int n = 0; n < count; n++)
                PoolKernels.MaxForward(pool, y.AsSpan(n * s.OutSize, s.OutSize), expected.AsSpan(n * pool.C * pool.OutPlane, pool.C * pool.OutPlane),
                    expectedIdx.AsSpan(n * pool.C * pool.OutPlane, pool.C * pool.OutPlane), 0, pool.C);
            foreach (int parts in new[] { 1, 2, 3 })
            {
                int images = parts > 1 ? 1 : count; // one image's parts may split its tile rows, a group's split channels
                var pooled = Sentinel.Buffer(images * pool.C * pool.OutPlane);
                var argmax = Sentinel.IntBuffer(images * pool.C * pool.OutPlane);
                for (int part = 0; part < parts; part++)
                    plan.ForwardPooled(x.AsSpan(0, images * s.InSize), images, weights.AsSpan(0, s.WeightCount), packed.AsSpan(0, plan.PackedWeightsSize),
                        pooled.AsSpan(0, images * pool.C * pool.OutPlane), argmax.AsSpan(0, images * pool.C * pool.OutPlane), in epi,
                        scratch.AsSpan(0, plan.ForwardScratch), part, parts);
                string what = $"{s} {algo} clamped to [{low}, {high}], {images} images in {parts} parts";
                int len = images * pool.C * pool.OutPlane;
                Assert.That(pooled.Take(len).Select(BitConverter.SingleToInt32Bits), Is.EqualTo(expected.Take(len).Select(BitConverter.SingleToInt32Bits)), what);
                Assert.That(argmax.Take(len), Is.EqualTo(expectedIdx.Take(len)), what + " (arg-max)");
                Sentinel.AssertTail(pooled, len, what + " (pooled)");
                Sentinel.AssertTail(scratch, plan.ForwardScratch, what + " (scratch)");
            }
        }
    }

    [Test]
    public void AutomaticChoiceForTheReferenceNetwork()
    {
        bool avx2 = Engine.Path == KernelPath.Avx2Fma;
        // conv1 (one input channel): the direct kernel where the AVX2 kernels run; else implicit (padding columns
        // waste 2 of 30, well under the 40% limit).
        Assert.That(Conv2dPlan.Choose(new Conv2dShape(1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1)),
            Is.EqualTo(avx2 ? Conv2dAlgorithm.DirectSmall : Conv2dAlgorithm.ImplicitPadded));
        // conv2 (3x3, stride 1, 8+ channels each way): Winograd where the AVX2 kernels run, else implicit.
        Assert.That(Conv2dPlan.Choose(new Conv2dShape(32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1)),
            Is.EqualTo(Engine.Path == KernelPath.Avx2Fma ? Conv2dAlgorithm.Winograd2x2 : Conv2dAlgorithm.ImplicitPadded));
        // A 5x5 kernel on a 5-wide image leaves one valid column of 5 (80% waste) for the implicit GEMM: im2col,
        // unless the direct kernel (no padding columns) runs.
        Assert.That(Conv2dPlan.Choose(new Conv2dShape(1, 5, 5, 1, 5, 5)), Is.EqualTo(avx2 ? Conv2dAlgorithm.DirectSmall : Conv2dAlgorithm.Im2colTiled));
        Assert.That(Conv2dPlan.Choose(new Conv2dShape(8, 5, 5, 1, 5, 5)), Is.EqualTo(Conv2dAlgorithm.Im2colTiled));
    }

    [Test]
    public void InvalidShapesThrowNamingTheProblem()
    {
        Assert.That(() => new Conv2dPlan(new Conv2dShape(1, 5, 5, 1, 3, 3, 1, 1, 3, 0, 0, 0)),
            Throws.ArgumentException.With.Message.Contains("smaller than the 3x3 kernel"));
        Assert.That(() => new Conv2dPlan(new Conv2dShape(1, 2, 5, 1, 3, 3)),
            Throws.ArgumentException.With.Message.Contains("does not fit"));
        Assert.That(() => new Conv2dPlan(new Conv2dShape(0, 5, 5, 1, 3, 3)),
            Throws.ArgumentException.With.Message.Contains("0x5x5"));
        Assert.That(() => new Conv2dPlan(new Conv2dShape(1, 5, 5, 1, 3, 3, 0, 1)),
            Throws.ArgumentException.With.Message.Contains("stride"));
    }
}
