namespace HpCnn.Kernels;

/// <summary>
/// What runs for one convolution shape: an algorithm per pass (forward, input gradient, weight gradient), chosen once
/// per shape and CPU by <see cref="Choose"/>, with the packed weights and scratch each needs. The passes are independent
/// (each reads the layer's weights and writes its own result), so each gets the algorithm that is fastest for it.
/// </summary>
public sealed class ConvolutionPlan
{
    public ConvolutionPlan(in Conv2dShape shape, (Conv2dAlgorithm Forward, Conv2dAlgorithm Data, Conv2dAlgorithm Weights)? force = null)
    {
        shape.Validate();
        Shape = shape;
        var (f, d, w) = force ?? Choose(shape);
        Forward = new Conv2dPlan(shape, f);
        Data = d == f ? Forward : new Conv2dPlan(shape, d);
        Weights = w == f ? Forward : w == d ? Data : new Conv2dPlan(shape, w);
    }

    public Conv2dShape Shape { get; }
    /// <summary>Runs the forward pass; its packed weights are <see cref="PackedWeightsSize"/> floats.</summary>
    public Conv2dPlan Forward { get; }
    /// <summary>Runs the input gradient; its packed weights are <see cref="PackedWeightsTSize"/> floats.</summary>
    public Conv2dPlan Data { get; }
    /// <summary>Runs the weight (and bias) gradient.</summary>
    public Conv2dPlan Weights { get; }

    /// <summary>The algorithms of the three passes.</summary>
    public (Conv2dAlgorithm Forward, Conv2dAlgorithm Data, Conv2dAlgorithm Weights) Algorithms => (Forward.Algorithm, Data.Algorithm, Weights.Algorithm);

    public int PackedWeightsSize => Forward.PackedWeightsSize;
    public int PackedWeightsTSize => Data.PackedWeightsTSize;

    /// <summary>Per-worker scratch of a forward pass, or of any pass when <paramref name="training"/>.</summary>
    public long Scratch(bool training) =>
        training ? Math.Max(Forward.ForwardScratch, Math.Max(Data.BackwardDataScratch, Weights.BackwardWeightsScratch)) : Forward.ForwardScratch;

    /// <summary>
    /// The rule (measured with <c>conv-profile</c> in the benchmarks on the zoo's layer shapes; BENCHMARKS.md has the table):
    /// <list type="bullet">
    /// <item>Without AVX2 (the portable path): each pass keeps the GEMM-based algorithms (<see cref="Conv2dPlan.Choose"/>).</item>
    /// <item>Forward: Winograd for 3x3 stride-1 layers with 16 or more input and output channels and an output of at
    /// least 8 x 8 (F(2x2, 3x3)'s 2.25x fewer multiplies beat the blocked kernel by 1.1-1.7x there; with 8 channels, or
    /// on 4 x 4 images where most of a tile strip is padding, the blocked kernel wins). F(4x4, 3x3) (4x fewer) where its
    /// tiles compute at most a third more outputs than F(2x2)'s (sizes 4 divides, and 14 x 14 computed as 16 x 16) and
    /// an image has at least 16 of them: at batch 64 it beat F(2x2) by 1.2-1.8x on the zoo's 32 x 32 and 16 x 16 layers
    /// and by 1.2-1.4x on 32x14x14->64 (forward and input gradient, with and without AVX-512; the pooled reference layer
    /// 7-9% at batch 256, even at batch 1), but an 8 x 8 image's 4 tiles left its GEMMs 4 columns wide at batch 1
    /// (128x8x8->128: 357 us against 104: the 36 transformed filter matrices, 4x the filters, stream from memory for few
    /// tiles). 10 x 10 (computed as 12 x 12, 44% more) keeps F(2x2). The forward takes F(4x4) there too when the layer has 128+ input channels: with the few tile
    /// columns run by Sgemm.FewColumns (vectors along output channels) the GEMMs outweigh the transforms, and 128x8x8->128
    /// took 64 us an image at batch 1 against F(2x2)'s 69 (2.0 ms against 4.1 for 64 images in groups of 8), where
    /// 64x8x8->128 still lost (47 against 41 us; Zen 5, BENCHMARKS.md). Tiles are counted per call: <paramref name="imagesPerCall"/> is 1 for inference (one algorithm
    /// for every batch size keeps a prediction's bits independent of its batch) and a gradient chunk's images for a
    /// training plan (its capacity / 16, the same on every rank), so training at batch 64 takes F(4x4) on 8 x 8 too. The
    /// direct small-channel kernel for
    /// at most 4 input channels at stride 1 (the blocked kernel has too few terms per result to hide its epilogue); the
    /// blocked direct convolution for everything else. In training, where AVX-512 runs and a call gets 2+ images, a 1x1,
    /// stride-1, unpadded layer that widens 64+ channels on planes of 256+ pixels forwards by the in-place GEMM (the
    /// image's planes as they lie, no tiles, no transposes): the bottleneck network's 64->256 layers on 16 x 16 took
    /// 4.8-5.0 ms a batch of 64 against 5.9-6.8 blocked (1 thread, alternated). The narrowing 256->64 layers did not gain,
    /// nor did the widening ones without AVX-512; inference keeps the blocked forward, which chains into the next 1x1
    /// layer (Fusion rule 7) and takes the mean epilogue (rule 6); and one image a call keeps it too, since the blocked
    /// kernel splits an image's rows over the threads where the GEMM has one tile.</item>
    /// <item>Input gradient (its results are the input channels): Winograd on the same condition; with fewer than 8 input
    /// channels, the implicit GEMM at stride 1 or im2col otherwise (16-channel blocks would be mostly padding); a 1x1,
    /// stride-1, unpadded layer with 64+ channels each way and planes of 256+ pixels, im2col (there one GEMM per image
    /// over the gradient as it lies, no copies: the bottleneck network's 64->256 and 256->64 layers on 16 x 16 took
    /// 1.7-2.6 ms less per batch of 64 each, backward inside the network, with and without AVX-512; blocked won on the
    /// 8 x 8 and 4 x 4 planes and with 32 channels, measured alone); blocked otherwise.</item>
    /// <item>Weight gradient: blocked, except at stride 1 with fewer than 16 output channels, where the implicit GEMM
    /// wins (one 16-channel block would be mostly padding: the seed network's single filter spent 9x the time). The
    /// Winograd weight gradient beat the blocked one alone on a batch of 64 at 64+ channels, but inside a network (its
    /// chunks of images) it ran 1.1-1.35x slower (BENCHMARKS.md, 2026-12-03).</item>
    /// </list>
    /// A fixed rule, not a timing at run time: the same machine gives the same bits on every run.
    /// </summary>
    public static (Conv2dAlgorithm Forward, Conv2dAlgorithm Data, Conv2dAlgorithm Weights) Choose(in Conv2dShape s, int imagesPerCall = 1,
        bool training = false)
    {
        if (!Engine.UseAvx2)
        {
            var a = Conv2dPlan.Choose(s);
            return (a, a, a);
        }
        bool strideOne = s.StrideH == 1 && s.StrideW == 1;
        bool winograd = strideOne && s.KH == 3 && s.KW == 3 && s.InC >= 16 && s.OutC >= 16 && Math.Min(s.OutH, s.OutW) >= 8;
        // F(4x4) where its 4x4 tiles compute at most a third more outputs than F(2x2)'s 2x2 tiles and a call gets 16 or
        // more of them; F(2x2) otherwise.
        long tiles = (long)((s.OutH + 3) / 4) * ((s.OutW + 3) / 4);
        long outputs2x2 = (long)((s.OutH + 1) / 2 * 2) * ((s.OutW + 1) / 2 * 2);
        bool exact = 3 * 16 * tiles <= 4 * outputs2x2;
        bool manyTiles = tiles * imagesPerCall >= 16;
        var wino = exact && manyTiles ? Conv2dAlgorithm.Winograd4x4 : Conv2dAlgorithm.Winograd2x2;
        // The forward also with fewer tiles once 128+ input channels make the GEMMs outweigh the transforms (Sgemm.FewColumns
        // runs a call's few tile columns).
        var forwardWino = exact && (manyTiles || s.InC >= 128) ? Conv2dAlgorithm.Winograd4x4 : Conv2dAlgorithm.Winograd2x2;
        bool pointwiseWide = Conv2dPlan.IsPointwise(s) && s.InC >= 64 && s.OutC >= 64 && s.OutPlane >= 256;
        var forward = winograd ? forwardWino
            : strideOne && s.InC <= 4 && s.KW <= 7 ? Conv2dAlgorithm.DirectSmall
            : training && Engine.UseAvx512 && imagesPerCall > 1 && pointwiseWide && s.OutC > s.InC ? Conv2dAlgorithm.Im2colTiled
            : Conv2dAlgorithm.Blocked;
        var data = winograd ? wino
            : s.InC < 8 ? (strideOne ? Conv2dAlgorithm.ImplicitPadded : Conv2dAlgorithm.Im2colTiled)
            : pointwiseWide ? Conv2dAlgorithm.Im2colTiled
            : Conv2dAlgorithm.Blocked;
        var weights = strideOne && s.OutC < 16 ? Conv2dAlgorithm.ImplicitPadded : Conv2dAlgorithm.Blocked;
        return (forward, data, weights);
    }
}
