using System.Numerics.Tensors;

namespace HpCnn.Kernels;

/// <summary>How a convolution is computed; chosen once per shape by <see cref="Conv2dPlan"/>.</summary>
public enum Conv2dAlgorithm
{
    /// <summary>Stride 1: implicit GEMM over zero-padded planes (no im2col matrix; also the direct kernel for one input channel).</summary>
    ImplicitPadded,
    /// <summary>Any stride: im2col in panel-sized tiles feeding <see cref="Sgemm"/>, col2im for the input gradient.</summary>
    Im2colTiled,
}

/// <summary>
/// Plan once, run many: for one <see cref="Conv2dShape"/> this chooses the algorithm, precomputes the
/// shifted-row offsets and the per-worker scratch sizes, and runs forward / backward for one image at a
/// time (the layer parallelises over images and, for small batches, over parts of an image).
/// Nothing here allocates after construction.
/// </summary>
public sealed class Conv2dPlan
{
    private const int Slack = 64; // read-ahead of the 16-wide kernels past the last plane
    private const int MR = Sgemm.MR;
    private const int MaxTileFloats = 1 << 16; // im2col tile: K x tile pixels <= 256 KiB (stays in L2)

    public Conv2dShape Shape { get; }
    public Conv2dAlgorithm Algorithm { get; }

    // Implicit forward: input padded to InC planes of _hp x _wp.
    private readonly int _hp, _wp, _fwdStrips;
    private readonly int[] _fwdOffsets = [];
    // Implicit backward-data: output gradient padded to OutC planes of _bhp x _bwp.
    private readonly int _bhp, _bwp, _bwdStrips;
    private readonly int[] _bwdOffsets = [];
    // Weight gradient: q-indexed output gradient rows of _qLen (Ho * _wp rounded to 8).
    private readonly int _qLen;
    // Im2col tiles: _tilePixels output pixels per tile, _tiles tiles per image.
    private readonly int _tilePixels, _tiles;

    public Conv2dPlan(in Conv2dShape shape, Conv2dAlgorithm? force = null)
    {
        shape.Validate();
        Shape = shape;
        var s = shape;
        Algorithm = force ?? Choose(s);
        if (Algorithm == Conv2dAlgorithm.ImplicitPadded && (s.StrideH != 1 || s.StrideW != 1))
            throw new ArgumentException($"the implicit convolution algorithm needs stride 1, got {s.StrideH}x{s.StrideW}");

        if (Algorithm == Conv2dAlgorithm.ImplicitPadded)
        {
            _hp = s.InH + s.PadTop + s.PadBottom;
            _wp = s.InW + s.PadLeft + s.PadRight;
            _fwdOffsets = new int[s.K];
            for (int c = 0, k = 0; c < s.InC; c++)
                for (int ky = 0; ky < s.KH; ky++)
                    for (int kx = 0; kx < s.KW; kx++)
                        _fwdOffsets[k++] = c * _hp * _wp + ky * _wp + kx;
            _fwdStrips = Conv2dKernels.ImplicitStrips(s.OutH, s.OutW, _wp);

            _bhp = s.OutH + 2 * (s.KH - 1) - s.PadTop - s.PadBottom;
            _bwp = s.OutW + 2 * (s.KW - 1) - s.PadLeft - s.PadRight;
            _bwdOffsets = new int[s.OutC * s.KH * s.KW];
            for (int c = 0, k = 0; c < s.OutC; c++)
                for (int ky = 0; ky < s.KH; ky++)
                    for (int kx = 0; kx < s.KW; kx++)
                        _bwdOffsets[k++] = c * _bhp * _bwp + ky * _bwp + kx;
            _bwdStrips = Conv2dKernels.ImplicitStrips(s.InH, s.InW, _bwp);
            _qLen = Sgemm.RoundUp(s.OutH * _wp, 8);
        }
        else
        {
            _tilePixels = Math.Max(Sgemm.NR, Math.Min(s.OutPlane, MaxTileFloats / Math.Max(1, s.K) / Sgemm.NR * Sgemm.NR));
            _tilePixels = Math.Min(_tilePixels, s.OutPlane);
            _tiles = (s.OutPlane + _tilePixels - 1) / _tilePixels;
        }
    }

    /// <summary>Implicit when the stride is 1 and padding columns waste at most 40% of the work; im2col otherwise.</summary>
    public static Conv2dAlgorithm Choose(in Conv2dShape s)
    {
        if (s.StrideH != 1 || s.StrideW != 1) return Conv2dAlgorithm.Im2colTiled;
        int wp = s.InW + s.PadLeft + s.PadRight;
        int bwp = s.OutW + 2 * (s.KW - 1) - s.PadLeft - s.PadRight;
        bool lowWaste = s.OutW * 5 >= wp * 3 && s.InW * 5 >= bwp * 3;
        return lowWaste ? Conv2dAlgorithm.ImplicitPadded : Conv2dAlgorithm.Im2colTiled;
    }

    /// <summary>Parts one image's forward can be split into (16-wide strips or im2col tiles).</summary>
    public int ForwardParts => Algorithm == Conv2dAlgorithm.ImplicitPadded ? _fwdStrips : _tiles;

    /// <summary>Floats of packed forward weights (0 when the algorithm reads the weights as they are).</summary>
    public int PackedWeightsSize => Algorithm == Conv2dAlgorithm.ImplicitPadded ? Sgemm.RoundUp(Shape.OutC, MR) * Shape.K : 0;

    /// <summary>Floats of packed backward-data weights (rotated, channels swapped).</summary>
    public int PackedWeightsTSize => Algorithm == Conv2dAlgorithm.ImplicitPadded ? Sgemm.RoundUp(Shape.InC, MR) * Shape.OutC * Shape.KH * Shape.KW : 0;

    /// <summary>Per-worker scratch floats for <see cref="Forward"/>.</summary>
    public int ForwardScratch => Algorithm == Conv2dAlgorithm.ImplicitPadded
        ? Shape.InC * _hp * _wp + Slack
        : Shape.K * _tilePixels + Sgemm.WorkspaceSize(Shape.OutC, _tilePixels, Shape.K);

    /// <summary>Per-worker scratch floats for <see cref="BackwardData"/>.</summary>
    public int BackwardDataScratch => Algorithm == Conv2dAlgorithm.ImplicitPadded
        ? Shape.OutC * _bhp * _bwp + Slack
        : Shape.K * _tilePixels + Sgemm.WorkspaceSize(Shape.K, _tilePixels, Shape.OutC);

    /// <summary>Per-worker scratch floats for <see cref="BackwardWeights"/>.</summary>
    public int BackwardWeightsScratch => Algorithm == Conv2dAlgorithm.ImplicitPadded
        ? Shape.InC * _hp * _wp + Slack + Shape.OutC * _qLen
        : Shape.K * _tilePixels + Sgemm.WorkspaceSize(Shape.OutC, Shape.K, _tilePixels);

    /// <summary>Packs the weights (OutC x K) for <see cref="Forward"/>; once per weight update.</summary>
    public void PackWeights(ReadOnlySpan<float> weights, Span<float> packed)
    {
        if (Algorithm != Conv2dAlgorithm.ImplicitPadded) return;
        Sgemm.PackA(false, weights, Shape.K, 0, Shape.OutC, 0, Shape.K, packed);
    }

    /// <summary>Packs the rotated, channel-swapped weights (InC x OutC*KH*KW) for <see cref="BackwardData"/>.</summary>
    public void PackWeightsTransposed(ReadOnlySpan<float> weights, Span<float> packed)
    {
        if (Algorithm != Conv2dAlgorithm.ImplicitPadded) return;
        var s = Shape;
        int kk = s.OutC * s.KH * s.KW;
        for (int i0 = 0; i0 < s.InC; i0 += MR)
        {
            var strip = packed.Slice(i0 * kk, MR * kk);
            for (int oc = 0, k = 0; oc < s.OutC; oc++)
                for (int ky = 0; ky < s.KH; ky++)
                    for (int kx = 0; kx < s.KW; kx++, k++)
                        for (int r = 0; r < MR; r++)
                        {
                            int ic = i0 + r;
                            strip[k * MR + r] = ic < s.InC
                                ? weights[((oc * s.InC + ic) * s.KH + (s.KH - 1 - ky)) * s.KW + (s.KW - 1 - kx)]
                                : 0f;
                        }
        }
    }

    /// <summary>
    /// Forward of one image, part <paramref name="part"/> of <paramref name="parts"/> (the parts cover the
    /// image's output pixels; every part pads/reads the whole input). <paramref name="weights"/> are the raw
    /// OutC x K weights, <paramref name="packedWeights"/> the result of <see cref="PackWeights"/>.
    /// </summary>
    public void Forward(ReadOnlySpan<float> image, ReadOnlySpan<float> weights, ReadOnlySpan<float> packedWeights,
        Span<float> output, in GemmEpilogue epilogue, Span<float> scratch, int part = 0, int parts = 1)
    {
        var s = Shape;
        if (Algorithm == Conv2dAlgorithm.ImplicitPadded)
        {
            var padded = scratch.Slice(0, s.InC * _hp * _wp + Slack);
            Conv2dKernels.PadPlanes(image, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, s.PadBottom, s.PadRight, padded);
            padded.Slice(s.InC * _hp * _wp).Clear();
            (int a, int b) = Split(_fwdStrips, part, parts);
            if (a < b)
                Conv2dKernels.ImplicitGemm(s.OutC, s.K, packedWeights, padded, _fwdOffsets, s.OutH, s.OutW, _wp, a, b,
                    output, s.OutPlane, in epilogue);
        }
        else
        {
            (int t0, int t1) = Split(_tiles, part, parts);
            var col = scratch.Slice(0, s.K * _tilePixels);
            var ws = scratch.Slice(s.K * _tilePixels);
            for (int t = t0; t < t1; t++)
            {
                int p0 = t * _tilePixels, cnt = Math.Min(_tilePixels, s.OutPlane - p0);
                Conv2dKernels.Im2col(s, image, p0, cnt, col);
                Sgemm.Multiply(false, false, s.OutC, cnt, s.K, weights, s.K, col, cnt,
                    output.Slice(p0), s.OutPlane, false, ws, in epilogue);
            }
        }
    }

    /// <summary>Input gradient of one image: <paramref name="inGrad"/> := d loss / d input (overwritten).</summary>
    public void BackwardData(ReadOnlySpan<float> outGrad, ReadOnlySpan<float> weights, ReadOnlySpan<float> packedWeightsT,
        Span<float> inGrad, Span<float> scratch)
    {
        var s = Shape;
        if (Algorithm == Conv2dAlgorithm.ImplicitPadded)
        {
            var padded = scratch.Slice(0, s.OutC * _bhp * _bwp + Slack);
            Conv2dKernels.PadPlanes(outGrad, s.OutC, s.OutH, s.OutW,
                s.KH - 1 - s.PadTop, s.KW - 1 - s.PadLeft, s.KH - 1 - s.PadBottom, s.KW - 1 - s.PadRight, padded);
            padded.Slice(s.OutC * _bhp * _bwp).Clear();
            Conv2dKernels.ImplicitGemm(s.InC, s.OutC * s.KH * s.KW, packedWeightsT, padded, _bwdOffsets, s.InH, s.InW, _bwp,
                0, _bwdStrips, inGrad, s.InH * s.InW, default);
        }
        else
        {
            inGrad.Slice(0, s.InSize).Clear();
            var col = scratch.Slice(0, s.K * _tilePixels);
            var ws = scratch.Slice(s.K * _tilePixels);
            for (int t = 0; t < _tiles; t++)
            {
                int p0 = t * _tilePixels, cnt = Math.Min(_tilePixels, s.OutPlane - p0);
                // col (K x cnt) = W^T (K x OutC) * dY[:, p0 : p0 + cnt]
                Sgemm.Multiply(true, false, s.K, cnt, s.OutC, weights, s.K, outGrad.Slice(p0), s.OutPlane,
                    col, cnt, false, ws);
                Conv2dKernels.Col2imAdd(s, col, p0, cnt, inGrad);
            }
        }
    }

    /// <summary>
    /// Weight and bias gradients of one image: weightGrad (OutC x K) and biasGrad (OutC, may be empty) are
    /// overwritten, or added to when <paramref name="accumulate"/>.
    /// </summary>
    public void BackwardWeights(ReadOnlySpan<float> image, ReadOnlySpan<float> outGrad, Span<float> weightGrad,
        Span<float> biasGrad, bool accumulate, Span<float> scratch)
    {
        var s = Shape;
        if (!biasGrad.IsEmpty)
            for (int oc = 0; oc < s.OutC; oc++)
            {
                float sum = TensorPrimitives.Sum(outGrad.Slice(oc * s.OutPlane, s.OutPlane));
                biasGrad[oc] = accumulate ? biasGrad[oc] + sum : sum;
            }

        if (Algorithm == Conv2dAlgorithm.ImplicitPadded)
        {
            int padSize = s.InC * _hp * _wp + Slack;
            var padded = scratch.Slice(0, padSize);
            Conv2dKernels.PadPlanes(image, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, s.PadBottom, s.PadRight, padded);
            padded.Slice(s.InC * _hp * _wp).Clear();
            var dyq = scratch.Slice(padSize, s.OutC * _qLen);
            // q-indexed gradient: row oc holds dY[oc][y][x] at y * Wp + x, zero in the padding columns.
            Conv2dKernels.PadPlanes(outGrad, s.OutC, s.OutH, s.OutW, 0, 0, 0, _wp - s.OutW, dyq);
            // PadPlanes wrote OutC planes of OutH * Wp; spread them to rows of _qLen (tail zeroed).
            if (_qLen != s.OutH * _wp)
                for (int oc = s.OutC - 1; oc >= 0; oc--)
                {
                    dyq.Slice(oc * s.OutH * _wp, s.OutH * _wp).CopyTo(dyq.Slice(oc * _qLen, s.OutH * _wp));
                    dyq.Slice(oc * _qLen + s.OutH * _wp, _qLen - s.OutH * _wp).Clear();
                }
            Conv2dKernels.ShiftedDot(s.OutC, s.K, _qLen, dyq, _qLen, padded, _fwdOffsets, weightGrad, s.K, accumulate);
        }
        else
        {
            var col = scratch.Slice(0, s.K * _tilePixels);
            var ws = scratch.Slice(s.K * _tilePixels);
            for (int t = 0; t < _tiles; t++)
            {
                int p0 = t * _tilePixels, cnt = Math.Min(_tilePixels, s.OutPlane - p0);
                Conv2dKernels.Im2col(s, image, p0, cnt, col);
                // dW (OutC x K) += dY[:, tile] (OutC x cnt) * col^T (cnt x K)
                Sgemm.Multiply(false, true, s.OutC, s.K, cnt, outGrad.Slice(p0), s.OutPlane, col, cnt,
                    weightGrad, s.K, accumulate || t > 0, ws);
            }
        }
    }

    private static (int, int) Split(int total, int part, int parts)
    {
        int a = (int)((long)total * part / parts), b = (int)((long)total * (part + 1) / parts);
        return (a, b);
    }
}
