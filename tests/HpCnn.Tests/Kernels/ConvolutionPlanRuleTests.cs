using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>The written-down rule that picks each pass's convolution algorithm (ConvolutionPlan.Choose), shape by shape.</summary>
public class ConvolutionPlanRuleTests
{
    private static Conv2dShape S(int inC, int h, int outC, int k, int stride, int pad) =>
        new(inC, h, h, outC, k, k, stride, stride, pad, pad, pad, pad);

    private static IEnumerable<TestCaseData> Cases()
    {
        const Conv2dAlgorithm W = Conv2dAlgorithm.Winograd4x4, W2 = Conv2dAlgorithm.Winograd2x2, D = Conv2dAlgorithm.DirectSmall, B = Conv2dAlgorithm.Blocked,
            I = Conv2dAlgorithm.ImplicitPadded, C = Conv2dAlgorithm.Im2colTiled;
        yield return new TestCaseData(S(64, 16, 64, 3, 1, 1), W, W, B).SetName("3x3, 64 channels in and out: Winograd F(4x4), blocked weight gradient");
        yield return new TestCaseData(S(32, 32, 32, 3, 1, 1), W, W, B).SetName("3x3 on 32 x 32: Winograd F(4x4)");
        yield return new TestCaseData(S(32, 16, 64, 3, 1, 0), W, W, B).SetName("3x3 to 14 x 14 (computed as 16 x 16, 31% more): Winograd F(4x4)");
        yield return new TestCaseData(S(32, 14, 64, 3, 1, 1), W, W, B).SetName("3x3, 32 in, 14 x 14: Winograd F(4x4), blocked weight gradient");
        yield return new TestCaseData(S(32, 12, 64, 3, 1, 0), W2, W2, B).SetName("3x3 to 10 x 10 (computed as 12 x 12, 44% more): Winograd F(2x2)");
        yield return new TestCaseData(S(32, 10, 64, 3, 1, 1), W2, W2, B).SetName("3x3, 10 x 10 (9 tiles of 4x4): Winograd F(2x2)");
        yield return new TestCaseData(S(16, 8, 16, 3, 1, 1), W2, W2, B).SetName("3x3, 16 each way on 8 x 8 (4 tiles of 4x4): Winograd F(2x2)");
        yield return new TestCaseData(S(128, 8, 128, 3, 1, 1), W, W2, B).SetName("3x3, 128 each way on 8 x 8: F(4x4) forward (128 input channels), F(2x2) input gradient");
        yield return new TestCaseData(S(64, 8, 128, 3, 1, 1), W2, W2, B).SetName("3x3, 64 in on 8 x 8: Winograd F(2x2)");
        yield return new TestCaseData(new Conv2dShape(16, 8, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1), W, W, B).SetName("3x3 on 8 x 32 (16 tiles): Winograd F(4x4)");
        yield return new TestCaseData(S(8, 28, 16, 3, 1, 1), B, B, B).SetName("3x3, 8 in: blocked");
        yield return new TestCaseData(S(256, 4, 256, 3, 1, 1), B, B, B).SetName("3x3 on a 4 x 4 image: blocked");
        yield return new TestCaseData(S(64, 16, 64, 3, 2, 1), B, B, B).SetName("3x3 at stride 2: blocked");
        yield return new TestCaseData(S(1, 28, 32, 3, 1, 1), D, I, B).SetName("one input channel: direct small");
        yield return new TestCaseData(S(1, 28, 1, 3, 1, 1), D, I, I).SetName("one filter: the weight gradient by implicit GEMM");
        yield return new TestCaseData(S(16, 14, 4, 3, 1, 1), B, B, I).SetName("four filters at stride 1: implicit weight gradient");
        yield return new TestCaseData(S(8, 16, 6, 3, 2, 1), B, B, B).SetName("six filters at stride 2: blocked");
        yield return new TestCaseData(S(3, 32, 64, 3, 2, 1), B, C, B).SetName("three channels at stride 2: im2col input gradient");
        yield return new TestCaseData(S(64, 16, 256, 1, 1, 0), B, C, B).SetName("1x1 on 16 x 16, 64 -> 256: in-place GEMM input gradient");
        yield return new TestCaseData(S(256, 16, 64, 1, 1, 0), B, C, B).SetName("1x1 on 16 x 16, 256 -> 64: in-place GEMM input gradient");
        yield return new TestCaseData(S(128, 8, 256, 1, 1, 0), B, B, B).SetName("1x1 on 8 x 8: blocked");
        yield return new TestCaseData(S(32, 32, 64, 1, 1, 0), B, B, B).SetName("1x1 from 32 channels: blocked");
        yield return new TestCaseData(S(64, 16, 256, 1, 1, 1), B, B, B).SetName("1x1 padded: blocked");
        yield return new TestCaseData(S(64, 16, 256, 1, 2, 0), B, B, B).SetName("1x1 at stride 2: blocked");
    }

    [TestCase(64, 8, 1, false, false)]
    [TestCase(64, 8, 3, false, false)]
    [TestCase(64, 8, 4, true, true)]
    [TestCase(128, 8, 1, true, false)]
    [TestCase(128, 8, 4, true, true)]
    [TestCase(32, 16, 1, true, true)]
    [TestCase(32, 14, 8, true, true)]
    [TestCase(128, 14, 1, true, true)]
    [TestCase(32, 10, 8, false, false)]
    [TestCase(32, 13, 1, true, true)]
    public void FourByFourTilesNeedSixteenACallOr128InputChannelsForward(int channels, int h, int imagesPerCall, bool forwardF4, bool dataF4)
    {
        if (!Engine.UseAvx2) Assert.Ignore("without AVX2 every pass keeps the GEMM-based algorithm of Conv2dPlan.Choose");
        static Conv2dAlgorithm W(bool f4) => f4 ? Conv2dAlgorithm.Winograd4x4 : Conv2dAlgorithm.Winograd2x2;
        Assert.That(ConvolutionPlan.Choose(S(channels, h, channels, 3, 1, 1), imagesPerCall), Is.EqualTo((W(forwardF4), W(dataF4), Conv2dAlgorithm.Blocked)));
    }

    /// <summary>In training with AVX-512 and 2+ images a call, a widening 1x1 layer forwards by the in-place GEMM; nothing else changes.</summary>
    [TestCase(64, 16, 256, 4, true, true)]    // the bottleneck network's 64 -> 256 at batch 64
    [TestCase(64, 16, 256, 4, false, false)]  // inference: blocked (chains, mean epilogue)
    [TestCase(64, 16, 256, 1, true, false)]   // one image a call: blocked (splits rows over threads)
    [TestCase(256, 16, 64, 4, true, false)]   // narrowing: blocked
    [TestCase(64, 8, 256, 4, true, false)]    // 8 x 8 planes: blocked
    [TestCase(32, 16, 256, 4, true, false)]   // from 32 channels: blocked
    public void AWideningPointwiseLayerTrainsByTheInPlaceGemm(int inC, int h, int outC, int imagesPerCall, bool training, bool gemm)
    {
        if (!Engine.UseAvx2) Assert.Ignore("without AVX2 every pass keeps the GEMM-based algorithm of Conv2dPlan.Choose");
        var s = S(inC, h, outC, 1, 1, 0);
        var expected = gemm && Engine.UseAvx512 ? Conv2dAlgorithm.Im2colTiled : Conv2dAlgorithm.Blocked;
        Assert.That(ConvolutionPlan.Choose(s, imagesPerCall, training).Forward, Is.EqualTo(expected));
        Assert.That(ConvolutionPlan.Choose(s, imagesPerCall, training) with { Forward = Conv2dAlgorithm.Blocked },
            Is.EqualTo(ConvolutionPlan.Choose(s) with { Forward = Conv2dAlgorithm.Blocked }), "the other passes as in inference");
    }

    [TestCaseSource(nameof(Cases))]
    public void EachPassGetsTheRulesAlgorithm(Conv2dShape shape, Conv2dAlgorithm forward, Conv2dAlgorithm data, Conv2dAlgorithm weights)
    {
        if (!Engine.UseAvx2) Assert.Ignore("without AVX2 every pass keeps the GEMM-based algorithm of Conv2dPlan.Choose");
        Assert.That(ConvolutionPlan.Choose(shape), Is.EqualTo((forward, data, weights)));
    }
}
