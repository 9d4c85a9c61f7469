using System.Numerics.Tensors;

namespace HpCnn.Kernels;

/// <summary>How a convolution is computed; chosen once per shape by <see cref="Conv2dPlan"/>.</summary>
public enum Conv2dAlgorithm
{
    /// <summary>Stride 1: implicit GEMM over zero-padded planes (no im2col matrix; also the direct kernel for one input channel).</summary>
    ImplicitPadded,
    /// <summary>Any stride: im2col in panel-sized tiles feeding <see cref="Sgemm"/>, col2im for the input gradient.</summary>
    Im2colTiled,
    /// <summary>Stride 1, few input channels: direct register-blocked convolution forward (implicit GEMM backward).</summary>
    DirectSmall,
    /// <summary>3x3, stride 1, enough channels: Winograd F(2x2, 3x3), 16 GEMMs over tiles of a group of images (2.25x fewer multiplies).</summary>
    Winograd2x2,
    /// <summary>Any kernel, stride and padding: direct convolution with the result's channels in 16-wide blocks (<see cref="BlockedConv"/>).</summary>
    Blocked,
    /// <summary>3x3, stride 1: Winograd F(4x4, 3x3), 36 GEMMs over 4x4 output tiles (4x fewer multiplies; its weight gradient is F(2x2)'s).</summary>
    Winograd4x4,
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
    // A 1x1, stride-1, unpadded kernel: im2col is the identity, so the GEMMs read the image and write the input gradient
    // in place (no tile copies, no col2im).
    private readonly bool _pointwise;
    // Winograd: output tiles of _wm x _wm (2 or 4), _xis Winograd-domain matrices; forward tiles _th x _tw per image on
    // padded planes _hq x _wq; backward-data the same on the input side.
    // F(4x4)'s pooled forward stages up to this many floats of output planes (64 KiB, in L2) before pooling them.
    private const int StagedFloats = 16384;
    // _utLd: the row stride of F(4x4)'s transposed filter copy after the packed strips (0: none; see the constructor).
    private readonly int _utLd;
    private readonly int _wm, _xis, _th, _tw, _hq, _wq, _bth, _btw, _bhq, _bwq, _group;
    // F(4x4)'s weight gradient: F(2x2)'s plan (the 4x4-tile weight gradient would need its own transforms for no use:
    // the plan rule takes the blocked weight gradient on every Winograd shape).
    private readonly Conv2dPlan? _weights2;
    private readonly BlockedConv? _blocked;

    public Conv2dPlan(in Conv2dShape shape, Conv2dAlgorithm? force = null)
    {
        shape.Validate();
        Shape = shape;
        var s = shape;
        Algorithm = force ?? Choose(s);
        if (Algorithm == Conv2dAlgorithm.ImplicitPadded && (s.StrideH != 1 || s.StrideW != 1))
            throw new ArgumentException($"the implicit convolution algorithm needs stride 1, got {s.StrideH}x{s.StrideW}");
        if (IsWinograd && !WinogradFits(s))
            throw new ArgumentException($"the Winograd algorithm needs a 3x3 kernel and stride 1, got {s.KH}x{s.KW} stride {s.StrideH}x{s.StrideW}");

        if (Algorithm == Conv2dAlgorithm.Blocked)
        {
            _blocked = new BlockedConv(s);
        }
        else if (Algorithm is Conv2dAlgorithm.ImplicitPadded or Conv2dAlgorithm.DirectSmall)
        {
            if (s.StrideH != 1 || s.StrideW != 1)
                throw new ArgumentException($"the {Algorithm} convolution algorithm needs stride 1, got {s.StrideH}x{s.StrideW}");
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
        else if (IsWinograd)
        {
            int m = _wm = Algorithm == Conv2dAlgorithm.Winograd4x4 ? 4 : 2;
            _xis = (m + 2) * (m + 2);
            _th = (s.OutH + m - 1) / m; _tw = (s.OutW + m - 1) / m;
            _hq = m * _th + 2; _wq = m * _tw + 2;
            _bth = (s.InH + m - 1) / m; _btw = (s.InW + m - 1) / m;
            _bhq = m * _bth + 2; _bwq = m * _btw + 2;
            // Enough images per call that each GEMM has about 200 tile columns, at most 8 (F(4x4)'s 36 matrices of 12 images
            // of 14 x 14 outgrew L2 and ran its pooled forward in the reference network 1.3x slower than groups of 2).
            _group = Math.Clamp((192 + _th * _tw - 1) / (_th * _tw), 1, 8);
            if (m == 4) _weights2 = new Conv2dPlan(s, Conv2dAlgorithm.Winograd2x2);
            // An image whose tiles do not fill whole 16-tile strips (8 x 8: 4 tiles) leaves its forward GEMMs a column tail
            // (at batch 1 nothing else); F(4x4) keeps its filters also transposed for Sgemm.FewColumns there.
            if (m == 4 && _th * _tw % Sgemm.NR != 0) _utLd = Sgemm.RoundUp(s.OutC, 16) + 16;
        }
        else
        {
            _tilePixels = Math.Max(Sgemm.NR, Math.Min(s.OutPlane, MaxTileFloats / Math.Max(1, s.K) / Sgemm.NR * Sgemm.NR));
            _tilePixels = Math.Min(_tilePixels, s.OutPlane);
            _tiles = (s.OutPlane + _tilePixels - 1) / _tilePixels;
            _pointwise = IsPointwise(s);
        }
    }

    /// <summary>1x1 kernel, stride 1, no padding: the convolution is a GEMM over the image's planes as they lie.</summary>
    public static bool IsPointwise(in Conv2dShape s) =>
        s.KH == 1 && s.KW == 1 && s.StrideH == 1 && s.StrideW == 1 && s.PadTop == 0 && s.PadLeft == 0 && s.PadBottom == 0 && s.PadRight == 0;

    // Floats of one im2col tile (none where the GEMMs read the image in place; their backward GEMMs take the whole plane).
    private int ColFloats => _pointwise ? 0 : Shape.K * _tilePixels;

    /// <summary>Implicit when the stride is 1 and padding columns waste at most 40% of the work; im2col otherwise.</summary>
    public static Conv2dAlgorithm Choose(in Conv2dShape s)
    {
        if (WinogradFits(s) && s.InC >= 8 && s.OutC >= 8 && Engine.UseAvx2) return Conv2dAlgorithm.Winograd2x2;
        if (s.StrideH != 1 || s.StrideW != 1) return Conv2dAlgorithm.Im2colTiled;
        if (s.InC <= 4 && s.KW <= 7 && Engine.UseAvx2) return Conv2dAlgorithm.DirectSmall;
        int wp = s.InW + s.PadLeft + s.PadRight;
        int bwp = s.OutW + 2 * (s.KW - 1) - s.PadLeft - s.PadRight;
        bool lowWaste = s.OutW * 5 >= wp * 3 && s.InW * 5 >= bwp * 3;
        return lowWaste ? Conv2dAlgorithm.ImplicitPadded : Conv2dAlgorithm.Im2colTiled;
    }

    /// <summary>
    /// The Winograd forward of a group of images into <paramref name="outputs"/>, or pooled (a tile is a pooling window)
    /// into <paramref name="pooled"/> and <paramref name="argmax"/> when <paramref name="outputs"/> is empty. One image's
    /// parts split its tile rows where <see cref="TileRowParts"/> allows, so no part transforms another's input (split by
    /// channels, every part transformed the whole image); otherwise parts split whole 6-row strips of output channels.
    /// </summary>
    private void WinogradForward(ReadOnlySpan<float> images, int count, ReadOnlySpan<float> packedWeights, Span<float> outputs,
        Span<float> pooled, Span<int> argmax, in GemmEpilogue epilogue, Span<float> scratch, int part, int parts)
    {
        var s = Shape;
        int c0 = 0, c1 = s.OutC;
        (int, int)? rows = null;
        if (count == 1 && TileRowParts(parts) is int rowParts and > 1)
        {
            if (part >= rowParts) return;
            var (a, b) = Split(_th, part, rowParts);
            if (a >= b) return;
            rows = (a, b);
        }
        else
        {
            var (s0, s1) = Split((s.OutC + MR - 1) / MR, part, parts);
            (c0, c1) = (s0 * MR, Math.Min(s1 * MR, s.OutC));
            if (c0 >= c1) return;
        }
        WinogradConvolve(_wm, images, count, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, _hq, _wq, _th, _tw,
            packedWeights, s.OutC, c0, c1, outputs, s.OutH, s.OutW, in epilogue, scratch, pooled, argmax, rows, _utLd);
    }

    /// <summary>
    /// How many of <paramref name="parts"/> split one image's Winograd forward by tile rows: the most whose tiles, each
    /// part's rounded up to whole 16-tile GEMM strips, add up to at most 1.25x the image's tiles (an 8 x 8 image's 16 tiles
    /// in four parts ran four times the GEMM work). 1: split by output channels instead.
    /// </summary>
    private int TileRowParts(int parts)
    {
        int tiles = _th * _tw;
        for (int u = Math.Min(parts, _th); u > 1; u--)
        {
            int padded = 0;
            for (int p = 0; p < u; p++)
            {
                var (a, b) = Split(_th, p, u);
                padded += Sgemm.RoundUp((b - a) * _tw, Sgemm.NR);
            }
            if (4 * padded <= 5 * tiles) return u;
        }
        return 1;
    }

    /// <summary>The output channels part <paramref name="part"/> of the direct kernel computes: whole blocks of 4, the rest last.</summary>
    private (int C0, int C1) DirectChannels(int part, int parts)
    {
        var (a, b) = Split(Shape.OutC / 4, part, parts);
        return (4 * a, part == parts - 1 ? Shape.OutC : 4 * b);
    }

    private static bool WinogradFits(in Conv2dShape s) => s.KH == 3 && s.KW == 3 && s.StrideH == 1 && s.StrideW == 1;

    private bool IsWinograd => Algorithm is Conv2dAlgorithm.Winograd2x2 or Conv2dAlgorithm.Winograd4x4;

    /// <summary>Images one call of Forward / BackwardData / BackwardWeights should get (Winograd batches tiles of several).</summary>
    public int ImagesPerCall => IsWinograd ? _group : 1;

    /// <summary>Parts one image's forward can be split into (16-wide strips or im2col tiles).</summary>
    public int ForwardParts => Algorithm switch
    {
        Conv2dAlgorithm.ImplicitPadded => _fwdStrips,
        Conv2dAlgorithm.DirectSmall => Math.Max(1, Shape.OutC / 8),
        Conv2dAlgorithm.Winograd2x2 or Conv2dAlgorithm.Winograd4x4 => Math.Max(1, Math.Min((Shape.OutC + Sgemm.MR - 1) / Sgemm.MR, Shape.OutC / 16)),
        Conv2dAlgorithm.Blocked => _blocked!.ForwardUnits,
        _ => _tiles,
    };

    /// <summary>True when one BackwardWeights call should get a whole chunk of images (the blocked weight gradient sums them in its registers).</summary>
    public bool WeightsTakeWholeChunk => Algorithm == Conv2dAlgorithm.Blocked;

    /// <summary>Floats of packed forward weights (0 when the algorithm reads the weights as they are).</summary>
    public int PackedWeightsSize => Algorithm switch
    {
        Conv2dAlgorithm.ImplicitPadded => Sgemm.RoundUp(Shape.OutC, MR) * Shape.K,
        Conv2dAlgorithm.DirectSmall => 0,
        Conv2dAlgorithm.Winograd2x2 or Conv2dAlgorithm.Winograd4x4 => _xis * (Conv2dKernels.WinogradPackedSize(Shape.OutC, Shape.InC) + Shape.InC * _utLd),
        Conv2dAlgorithm.Blocked => _blocked!.PackedWeightsSize,
        _ => 0,
    };

    /// <summary>Floats of packed backward-data weights (rotated, channels swapped).</summary>
    public int PackedWeightsTSize => Algorithm switch
    {
        Conv2dAlgorithm.ImplicitPadded or Conv2dAlgorithm.DirectSmall => Sgemm.RoundUp(Shape.InC, MR) * Shape.OutC * Shape.KH * Shape.KW,
        Conv2dAlgorithm.Winograd2x2 or Conv2dAlgorithm.Winograd4x4 => _xis * Conv2dKernels.WinogradPackedSize(Shape.InC, Shape.OutC),
        Conv2dAlgorithm.Blocked => _blocked!.PackedWeightsTSize,
        // Im2col's input gradient multiplies by the weights transposed: a pointwise layer keeps them so (InC x OutC) and
        // runs a plain GEMM (a GEMM reading A transposed ran 0.85x as fast on 256 x 256 x 64).
        _ => _pointwise ? Shape.InC * Shape.OutC : 0,
    };

    /// <summary>Per-worker scratch floats for Forward.</summary>
    public int ForwardScratch => Algorithm switch
    {
        Conv2dAlgorithm.ImplicitPadded or Conv2dAlgorithm.DirectSmall => Shape.InC * _hp * _wp + Slack,
        Conv2dAlgorithm.Winograd2x2 => WinogradScratch(Shape.InC, Shape.OutC, _hq, _wq, _th * _tw),
        // F(4x4) pools from a staged output plane.
        Conv2dAlgorithm.Winograd4x4 => WinogradScratch(Shape.InC, Shape.OutC, _hq, _wq, _th * _tw) + Math.Max(_group * Shape.OutPlane, StagedFloats),
        Conv2dAlgorithm.Blocked => _blocked!.ForwardScratch,
        _ => ColFloats + Sgemm.WorkspaceSize(Shape.OutC, _tilePixels, Shape.K),
    };

    // Padded planes of a group, V (xis x inC x T), M (xis x outC x T) with T rounded up to whole 16-wide strips and
    // outC to whole 6-row strips, a packed B panel or a GEMM workspace.
    private int WinogradScratch(int inC, int outC, int hq, int wq, int tiles)
    {
        int t = Sgemm.RoundUp(_group * tiles, Sgemm.NR);
        return _group * inC * hq * wq + Slack + _xis * XiStride(inC * t) + _xis * XiStride(Sgemm.RoundUp(outC, Sgemm.MR) * t)
            + Math.Max(inC * t, Math.Max(Sgemm.WorkspaceSize(outC, t, inC), Sgemm.WorkspaceSize(outC, inC, t)));
    }

    /// <summary>Per-worker scratch floats for BackwardData.</summary>
    public int BackwardDataScratch => Algorithm switch
    {
        Conv2dAlgorithm.ImplicitPadded or Conv2dAlgorithm.DirectSmall => Shape.OutC * _bhp * _bwp + Slack,
        Conv2dAlgorithm.Winograd2x2 or Conv2dAlgorithm.Winograd4x4 => WinogradScratch(Shape.OutC, Shape.InC, _bhq, _bwq, _bth * _btw),
        Conv2dAlgorithm.Blocked => _blocked!.BackwardDataScratch,
        _ => _pointwise ? Sgemm.WorkspaceSize(Shape.K, Shape.OutPlane, Shape.OutC) : ColFloats + Sgemm.WorkspaceSize(Shape.K, _tilePixels, Shape.OutC),
    };

    /// <summary>Per-worker scratch floats for BackwardWeights.</summary>
    public int BackwardWeightsScratch => Algorithm switch
    {
        Conv2dAlgorithm.ImplicitPadded or Conv2dAlgorithm.DirectSmall => Shape.InC * _hp * _wp + Slack + Shape.OutC * _qLen,
        Conv2dAlgorithm.Winograd2x2 => WinogradScratch(Shape.InC, Shape.OutC, _hq, _wq, _th * _tw) + 16 * Shape.OutC * Shape.InC,
        Conv2dAlgorithm.Winograd4x4 => _weights2!.BackwardWeightsScratch,
        Conv2dAlgorithm.Blocked => _blocked!.BackwardWeightsScratch,
        _ => _pointwise ? Sgemm.WorkspaceSize(Shape.OutC, Shape.K, Shape.OutPlane) : ColFloats + Sgemm.WorkspaceSize(Shape.OutC, Shape.K, _tilePixels),
    };

    /// <summary>Packs the weights (OutC x K) for Forward; once per weight update.</summary>
    public void PackWeights(ReadOnlySpan<float> weights, Span<float> packed)
    {
        if (_blocked is not null) { _blocked.PackWeights(weights, packed); return; }
        if (Algorithm == Conv2dAlgorithm.Winograd2x2) { Conv2dKernels.WinogradWeights(weights, Shape.OutC, Shape.InC, false, packed); return; }
        if (Algorithm == Conv2dAlgorithm.Winograd4x4)
        {
            Conv2dKernels.Winograd4Weights(weights, Shape.OutC, Shape.InC, false, packed);
            if (_utLd > 0) Conv2dKernels.TransposeStrips(packed, _xis, Shape.OutC, Shape.InC, packed.Slice(_xis * Conv2dKernels.WinogradPackedSize(Shape.OutC, Shape.InC)), _utLd);
            return;
        }
        if (Algorithm != Conv2dAlgorithm.ImplicitPadded) return;
        Sgemm.PackA(false, weights, Shape.K, 0, Shape.OutC, 0, Shape.K, packed);
    }

    /// <summary>Packs the rotated, channel-swapped weights (InC x OutC*KH*KW) for BackwardData.</summary>
    public void PackWeightsTransposed(ReadOnlySpan<float> weights, Span<float> packed)
    {
        if (_blocked is not null) { _blocked.PackWeightsTransposed(weights, packed); return; }
        if (Algorithm == Conv2dAlgorithm.Winograd2x2) { Conv2dKernels.WinogradWeights(weights, Shape.OutC, Shape.InC, true, packed); return; }
        if (Algorithm == Conv2dAlgorithm.Winograd4x4) { Conv2dKernels.Winograd4Weights(weights, Shape.OutC, Shape.InC, true, packed); return; }
        if (_pointwise)
        {
            if (weights.Length < Shape.OutC * Shape.InC || packed.Length < Shape.InC * Shape.OutC)
                throw new ArgumentException($"weights ({weights.Length}) or packed ({packed.Length}) hold fewer than {Shape.OutC * Shape.InC} floats");
            unsafe
            {
                fixed (float* w = weights, t = packed) BlockedTiles.Transpose(w, Shape.InC, Shape.OutC, Shape.InC, t, Shape.OutC);
            }
            return;
        }
        if (Algorithm is not (Conv2dAlgorithm.ImplicitPadded or Conv2dAlgorithm.DirectSmall)) return;
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
    /// Forward of <paramref name="count"/> consecutive images (part <paramref name="part"/> of <paramref name="parts"/>:
    /// the parts split output pixels, or output channels for Winograd). Call with <see cref="ImagesPerCall"/> images
    /// where possible. Same arguments as the one-image overload otherwise.
    /// </summary>
    public void Forward(ReadOnlySpan<float> images, int count, ReadOnlySpan<float> weights, ReadOnlySpan<float> packedWeights,
        Span<float> outputs, in GemmEpilogue epilogue, Span<float> scratch, int part = 0, int parts = 1)
    {
        var s = Shape;
        if (IsWinograd)
        {
            WinogradForward(images, count, packedWeights, outputs, default, default, in epilogue, scratch, part, parts);
            return;
        }
        for (int n = 0; n < count; n++)
            Forward(images.Slice(n * s.InSize, s.InSize), weights, packedWeights, outputs.Slice(n * s.OutSize, s.OutSize),
                in epilogue, scratch, part, parts);
    }

    /// <summary>
    /// True when the forward can end with a 2x2 stride-2 max-pool of its (clamped) output in registers: Winograd F(2x2)
    /// output tiles are pooling windows, and the direct kernel's 2 x 8 blocks hold four of them; Winograd F(4x4) pools
    /// each channel's plane from a staged copy in L1.
    /// </summary>
    public bool CanPool2x2 => Algorithm is Conv2dAlgorithm.Winograd2x2 or Conv2dAlgorithm.Winograd4x4 or Conv2dAlgorithm.Blocked
        || (Algorithm == Conv2dAlgorithm.DirectSmall && Shape.OutC % 4 == 0);

    /// <summary>
    /// Forward of <paramref name="count"/> images followed by a floor-mode 2x2 stride-2 max-pool: writes only the pooled
    /// values (count x OutC x OutH/2 x OutW/2) and, when <paramref name="argmax"/> is not empty, the index of each window's
    /// first maximum in the convolution's output plane. See <see cref="CanPool2x2"/>.
    /// </summary>
    public void ForwardPooled(ReadOnlySpan<float> images, int count, ReadOnlySpan<float> weights, ReadOnlySpan<float> packedWeights,
        Span<float> pooled, Span<int> argmax, in GemmEpilogue epilogue, Span<float> scratch, int part = 0, int parts = 1)
    {
        var s = Shape;
        if (!CanPool2x2) throw new InvalidOperationException($"the {Algorithm} algorithm cannot pool in its epilogue");
        int pplane = (s.OutH / 2) * (s.OutW / 2);
        if (_blocked is not null)
        {
            for (int n = 0; n < count; n++)
                _blocked.ForwardPooled(images.Slice(n * s.InSize, s.InSize), packedWeights, pooled.Slice(n * s.OutC * pplane, s.OutC * pplane),
                    argmax.IsEmpty ? default : argmax.Slice(n * s.OutC * pplane, s.OutC * pplane), in epilogue, scratch, part, parts);
            return;
        }
        if (IsWinograd)
        {
            WinogradForward(images, count, packedWeights, default, pooled, argmax, in epilogue, scratch, part, parts);
            return;
        }
        var (d0, d1) = DirectChannels(part, parts);
        if (d0 >= d1) return;
        var padded = scratch.Slice(0, s.InC * _hp * _wp + Slack);
        for (int n = 0; n < count; n++)
        {
            Conv2dKernels.PadPlanes(images.Slice(n * s.InSize, s.InSize), s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, s.PadBottom, s.PadRight, padded);
            padded.Slice(s.InC * _hp * _wp).Clear();
            Conv2dKernels.DirectForwardPooled(padded, s.InC, _hp, _wp, weights, s.OutC, s.KH, s.KW, pooled.Slice(n * s.OutC * pplane, s.OutC * pplane),
                argmax.IsEmpty ? default : argmax.Slice(n * s.OutC * pplane, s.OutC * pplane), in epilogue, d0, d1);
        }
    }

    /// <summary>
    /// True when the forward can end with each channel's mean over the output plane (a global average pool) in its
    /// epilogue: the blocked kernel stages a channel group's whole plane pixel-major, where the sums run across lanes.
    /// </summary>
    public bool CanMeanInEpilogue => Algorithm == Conv2dAlgorithm.Blocked;

    /// <summary>Parts one image's forward with a mean epilogue can be split into (channel groups).</summary>
    public int MeanParts => _blocked?.MeanUnits ?? 1;

    /// <summary>The blocked convolution of this plan (null for the other algorithms): a chained pair runs its pixel-major forwards.</summary>
    internal BlockedConv? Blocked => _blocked;

    /// <summary>
    /// Forward of <paramref name="count"/> images followed by each channel's mean over the (clamped) output plane: writes
    /// only <paramref name="means"/> (count x OutC), the bits AvgPool2D gives over the whole plane. See <see cref="CanMeanInEpilogue"/>.
    /// </summary>
    public void ForwardMean(ReadOnlySpan<float> images, int count, ReadOnlySpan<float> packedWeights, Span<float> means,
        in GemmEpilogue epilogue, Span<float> scratch, int part = 0, int parts = 1)
    {
        var s = Shape;
        if (_blocked is null) throw new InvalidOperationException($"the {Algorithm} algorithm cannot take means in its epilogue");
        for (int n = 0; n < count; n++)
            _blocked.ForwardMean(images.Slice(n * s.InSize, s.InSize), packedWeights, means.Slice(n * s.OutC, s.OutC), in epilogue, scratch, part, parts);
    }

    /// <summary>Input gradients of <paramref name="count"/> consecutive images (overwritten).</summary>
    public void BackwardData(ReadOnlySpan<float> outGrads, int count, ReadOnlySpan<float> weights, ReadOnlySpan<float> packedWeightsT,
        Span<float> inGrads, Span<float> scratch)
    {
        var s = Shape;
        if (IsWinograd)
        {
            WinogradConvolve(_wm, outGrads, count, s.OutC, s.OutH, s.OutW, 2 - s.PadTop, 2 - s.PadLeft, _bhq, _bwq, _bth, _btw,
                packedWeightsT, s.InC, 0, s.InC, inGrads, s.InH, s.InW, default, scratch);
            return;
        }
        for (int n = 0; n < count; n++)
            BackwardData(outGrads.Slice(n * s.OutSize, s.OutSize), weights, packedWeightsT, inGrads.Slice(n * s.InSize, s.InSize), scratch);
    }

    /// <summary>Weight and bias gradients of <paramref name="count"/> consecutive images, overwritten or (accumulate) added.</summary>
    public void BackwardWeights(ReadOnlySpan<float> images, ReadOnlySpan<float> outGrads, int count, Span<float> weightGrad,
        Span<float> biasGrad, bool accumulate, Span<float> scratch)
    {
        var s = Shape;
        if (_blocked is not null) { _blocked.BackwardWeights(images, outGrads, count, weightGrad, biasGrad, accumulate, scratch); return; }
        if (_weights2 is not null)
        {
            for (int n = 0, g = _weights2.ImagesPerCall; n < count; n += g)
            {
                int c = Math.Min(g, count - n);
                _weights2.BackwardWeights(images.Slice(n * s.InSize, c * s.InSize), outGrads.Slice(n * s.OutSize, c * s.OutSize), c,
                    weightGrad, biasGrad, accumulate || n > 0, scratch);
            }
            return;
        }
        if (Algorithm != Conv2dAlgorithm.Winograd2x2)
        {
            for (int n = 0; n < count; n++)
                BackwardWeights(images.Slice(n * s.InSize, s.InSize), outGrads.Slice(n * s.OutSize, s.OutSize), weightGrad, biasGrad,
                    accumulate || n > 0, scratch);
            return;
        }
        if (!biasGrad.IsEmpty)
            for (int oc = 0; oc < s.OutC; oc++)
            {
                float sum = 0;
                for (int n = 0; n < count; n++) sum += LaneSum.Sum(outGrads.Slice(n * s.OutSize + oc * s.OutPlane, s.OutPlane));
                biasGrad[oc] = accumulate ? biasGrad[oc] + sum : sum;
            }
        int t1 = _th * _tw;
        var v = WinogradInputs(2, images, count, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, _hq, _wq, _th, _tw, scratch, out var rest, out int t);
        int vStride = XiStride(s.InC * t), mgStride = XiStride(s.OutC * t);
        var mg = rest.Slice(0, 16 * mgStride);
        for (int n = 0; n < count; n++)
            for (int oc = 0; oc < s.OutC; oc++)
                Conv2dKernels.WinogradGradient(outGrads.Slice(n * s.OutSize + oc * s.OutPlane, s.OutPlane), s.OutH, s.OutW, _th, _tw,
                    mg.Slice(oc * t), mgStride, n * t1);
        ClearTail(mg, 16, mgStride, s.OutC, t, count * t1);
        var du = rest.Slice(mg.Length, 16 * s.OutC * s.InC);
        var ws = rest.Slice(mg.Length + du.Length);
        for (int xi = 0; xi < 16; xi++)
            // dU[xi] (OutC x InC) = Mg[xi] (OutC x T) * V[xi]^T (T x InC)
            Sgemm.Multiply(false, true, s.OutC, s.InC, t, mg.Slice(xi * mgStride, s.OutC * t), t, v.Slice(xi * vStride, s.InC * t), t,
                du.Slice(xi * s.OutC * s.InC, s.OutC * s.InC), s.InC, false, ws);
        Conv2dKernels.WinogradWeightGradient(du, s.OutC, s.InC, weightGrad, accumulate);
    }

    /// <summary>
    /// The stride between the 16 Winograd-domain matrices of a buffer holding <paramref name="floats"/> each: rounded up
    /// to an odd number of 64-byte lines, so that the 16 values a transform writes for one tile fall in different L1
    /// sets. (A stride that is a multiple of 4 KiB, e.g. 64 channels x 208 tiles, put all 16 in one 8-way set.)
    /// </summary>
    internal static int XiStride(int floats)
    {
        int n = Sgemm.RoundUp(floats, 16);
        return (n / 16) % 2 == 0 ? n + 16 : n;
    }

    /// <summary>Zeroes columns [used, t) of the rows x t matrices (xi stride apart) of a buffer: the padding tiles of a group.</summary>
    private static void ClearTail(Span<float> m, int matrices, int xiStride, int rows, int t, int used)
    {
        if (used == t) return;
        for (int x = 0; x < matrices; x++)
            for (int r = 0; r < rows; r++) m.Slice(x * xiStride + r * t + used, t - used).Clear();
    }

    /// <summary>
    /// Pads a group of images and transforms them (tiles of <paramref name="m"/> outputs): returns V (xis x c x T, T = the
    /// group's tiles rounded up to whole 16-wide strips, padding tiles zero) and the scratch after it.
    /// </summary>
    private static Span<float> WinogradInputs(int m, ReadOnlySpan<float> src, int count, int c, int h, int w, int pt, int pl,
        int hq, int wq, int th, int tw, Span<float> scratch, out Span<float> rest, out int t)
    {
        int planeQ = hq * wq, t1 = th * tw;
        t = Sgemm.RoundUp(count * t1, Sgemm.NR);
        var padded = scratch.Slice(0, count * c * planeQ + Slack);
        for (int n = 0; n < count; n++)
            Conv2dKernels.PadPlanes(src.Slice(n * c * h * w, c * h * w), c, h, w, pt, pl, hq - h - pt, wq - w - pl, padded.Slice(n * c * planeQ));
        padded.Slice(count * c * planeQ).Clear();
        return TransformInputs(m, padded, count, c, hq, wq, th, tw, scratch, out rest, t);
    }

    /// <summary>
    /// <see cref="WinogradInputs"/> of tile rows [a, b) of one image: pads only the m (b - a) + 2 rows of the padded plane
    /// those tiles read.
    /// </summary>
    private static Span<float> WinogradInputRows(int m, ReadOnlySpan<float> src, int c, int h, int w, int pt, int pl, int wq, int tw,
        int a, int b, Span<float> scratch, out Span<float> rest, out int t)
    {
        int th = b - a, hq = m * th + 2, planeQ = hq * wq;
        t = Sgemm.RoundUp(th * tw, Sgemm.NR);
        var padded = scratch.Slice(0, c * planeQ + Slack);
        // Padded rows [m a, m a + hq) are image rows [m a - pt, m a - pt + hq), clipped to the image.
        int y0 = Math.Max(0, m * a - pt), y1 = Math.Min(h, m * a - pt + hq);
        int top = y0 - (m * a - pt), rows = Math.Max(0, y1 - y0);
        for (int ch = 0; ch < c; ch++)
            Conv2dKernels.PadPlanes(src.Slice(ch * h * w + y0 * w, rows * w), 1, rows, w, top, pl, hq - rows - top, wq - w - pl,
                padded.Slice(ch * planeQ, planeQ));
        padded.Slice(c * planeQ).Clear();
        return TransformInputs(m, padded, 1, c, hq, wq, th, tw, scratch, out rest, t);
    }

    private static Span<float> TransformInputs(int m, Span<float> padded, int count, int c, int hq, int wq, int th, int tw,
        Span<float> scratch, out Span<float> rest, int t)
    {
        int planeQ = hq * wq, t1 = th * tw, xis = (m + 2) * (m + 2);
        int vStride = XiStride(c * t);
        var v = scratch.Slice(padded.Length, xis * vStride);
        if (m == 4) Conv2dKernels.Winograd4Inputs(padded, count, c, hq, wq, th, tw, v, vStride); // packed for the GEMM
        else
        {
            for (int n = 0; n < count; n++)
                for (int ch = 0; ch < c; ch++)
                    Conv2dKernels.WinogradInput(padded.Slice((n * c + ch) * planeQ), wq, th, tw, v.Slice(ch * t), vStride, n * t1);
            ClearTail(v, xis, vStride, c, t, count * t1);
        }
        rest = scratch.Slice(padded.Length + v.Length);
        return v;
    }

    /// <summary>
    /// A Winograd convolution of a group of images with output tiles of <paramref name="tm"/> x <paramref name="tm"/>:
    /// transform, (tm + 2)^2 GEMMs over output channels [r0, r1) (r0 a multiple of 6; U packed by
    /// <see cref="Conv2dKernels.WinogradWeights"/> or <see cref="Conv2dKernels.Winograd4Weights"/>), inverse transform.
    /// Whole 6-row and 16-column tiles only: the weights are pre-packed and zero-padded, the tile count padded with zero
    /// tiles, so no edge tile is ever run.
    /// </summary>
    private static void WinogradConvolve(int tm, ReadOnlySpan<float> src, int count, int srcC, int srcH, int srcW, int pt, int pl,
        int hq, int wq, int th, int tw, ReadOnlySpan<float> u, int dstC, int r0, int r1, Span<float> dst, int dstH, int dstW,
        in GemmEpilogue epilogue, Span<float> scratch, Span<float> pooled = default, Span<int> argmax = default, (int A, int B)? tileRows = null,
        int utLd = 0)
    {
        // Tile rows [a, b) of one image (count 1): the output rows from tm a, pooled rows from tm a / 2.
        int a = tileRows?.A ?? 0, xis = (tm + 2) * (tm + 2);
        if (tileRows is (int ta, int tb)) th = tb - ta;
        int t1 = th * tw;
        int rows = Sgemm.RoundUp(r1 - r0, MR);
        var v = tileRows is (int ra, int rb)
            ? WinogradInputRows(tm, src, srcC, srcH, srcW, pt, pl, wq, tw, ra, rb, scratch, out var rest, out int t)
            : WinogradInputs(tm, src, count, srcC, srcH, srcW, pt, pl, hq, wq, th, tw, scratch, out rest, out t);
        int vStride = XiStride(srcC * t), mStride = XiStride(rows * t);
        var m = rest.Slice(0, xis * mStride);
        var bPack = rest.Slice(m.Length, srcC * t);
        int uStride = Conv2dKernels.WinogradPackedSize(dstC, srcC);
        // Whole 16-tile strips in register tiles; the tiles past the last whole strip (49 tiles of a 14 x 14 image: one) in
        // a column tail, not in a strip of padding. M's columns past the used tiles stay unwritten: nothing reads them.
        int used = count * t1, whole = used / Sgemm.NR * Sgemm.NR;
        for (int xi = 0; xi < xis; xi++)
        {
            // F(4x4)'s transform writes V as packed panels; F(2x2)'s V is also its weight gradient's operand, so it is packed here.
            var b = tm == 4 ? v.Slice(xi * vStride, srcC * t) : bPack;
            if (tm != 4) Sgemm.PackB(false, v.Slice(xi * vStride, srcC * t), t, 0, srcC, 0, t, bPack, prefetchAhead: true);
            var ux = u.Slice(xi * uStride + r0 * srcC, rows * srcC);
            var mx = m.Slice(xi * mStride, rows * t);
            if (whole > 0) Sgemm.MacroKernel(rows, whole, srcC, ux, b, mx, 0, t, false, default, false, default, 0, 0);
            if (used == whole) continue;
            if (utLd > 0)
                Sgemm.FewColumns(r1 - r0, srcC, used - whole, u.Slice(xis * uStride + xi * srcC * utLd + r0), utLd,
                    b.Slice(whole * srcC, Sgemm.NR * srcC), mx.Slice(whole), t);
            else Sgemm.ColumnTail(rows, srcC, used - whole, ux, b.Slice(whole * srcC, Sgemm.NR * srcC), mx.Slice(whole), t);
        }
        int ph = dstH / 2, pw = dstW / 2, pplane = ph * pw;
        // The rows this call writes: output rows [tm a, tm (a + th)), pooled rows [tm a / 2, tm (a + th) / 2), clipped to the planes.
        int outRows = Math.Min(dstH - tm * a, tm * th), pooledRows = Math.Max(0, Math.Min(ph - tm * a / 2, tm * th / 2));
        if (tm == 4)
        {
            var (_, lo4, hi4) = Clamp(in epilogue, r0);
            var biases = epilogue.Bias == BiasMode.PerRow ? epilogue.BiasValues.AsSpan(epilogue.BiasOffset + r0, r1 - r0) : default;
            if (pooled.IsEmpty)
            {
                Conv2dKernels.Winograd4Output(m, mStride, t, r1 - r0, count, th, tw, dst.Slice(r0 * dstH * dstW + 4 * a * dstW), dstH * dstW,
                    dstC * dstH * dstW, outRows, dstW, biases, lo4, hi4);
                return;
            }
            if (pooledRows == 0) return;
            if (Engine.UseAvx2)
            {
                Conv2dKernels.Winograd4OutputPooled(m, mStride, t, r1 - r0, count, th, tw, a, pooled.Slice(r0 * pplane),
                    argmax.IsEmpty ? default : argmax.Slice(r0 * pplane), pplane, dstC * pplane, ph, pw, dstW, biases, lo4, hi4);
                return;
            }
            // Without AVX2 each channel's planes are staged (in L1) and pooled by the pool's own kernel, so the values and
            // arg-max are the unfused pool's.
            // As many channels at a time as fit StagedFloats (small planes: one output transform fills its 8 lanes with
            // several channels' tiles; one channel at a time, 8 x 8 planes at batch 1 spent more in calls than in work).
            int stagedRows = 2 * pooledRows, planeFloats = stagedRows * dstW;
            int cb = Math.Clamp(StagedFloats / (count * planeFloats), 1, r1 - r0);
            var pool = new Pool2dShape(1, stagedRows, dstW, 2, 2, 2, 2);
            for (int oc0 = r0; oc0 < r1; oc0 += cb)
            {
                int nc = Math.Min(cb, r1 - oc0);
                var staged = rest.Slice(m.Length + bPack.Length, count * nc * planeFloats);
                Conv2dKernels.Winograd4Output(m.Slice((oc0 - r0) * t), mStride, t, nc, count, th, tw, staged, planeFloats, nc * planeFloats,
                    stagedRows, dstW, biases.IsEmpty ? default : biases.Slice(oc0 - r0, nc), lo4, hi4);
                for (int n = 0; n < count; n++)
                {
                    if (pooledRows == ph)
                    {
                        // Whole planes (a is 0): the channels' pooled planes are contiguous, one call pools them all.
                        int at0 = (n * dstC + oc0) * pplane;
                        PoolKernels.MaxForward(new Pool2dShape(nc, stagedRows, dstW, 2, 2, 2, 2), staged.Slice(n * nc * planeFloats, nc * planeFloats),
                            pooled.Slice(at0, nc * pplane), argmax.IsEmpty ? default : argmax.Slice(at0, nc * pplane), 0, nc);
                        continue;
                    }
                    for (int c = 0; c < nc; c++)
                    {
                        int at = (n * dstC + oc0 + c) * pplane + 2 * a * pw;
                        var idx = argmax.IsEmpty ? default : argmax.Slice(at, pooledRows * pw);
                        PoolKernels.MaxForward(pool, staged.Slice((n * nc + c) * planeFloats, planeFloats), pooled.Slice(at, pooledRows * pw), idx, 0, 1);
                        for (int i = 0; i < idx.Length; i++) idx[i] += 4 * a * dstW;
                    }
                }
            }
            return;
        }
        for (int n = 0; n < count; n++)
            for (int oc = r0; oc < r1; oc++)
            {
                var (bias, lo, hi) = Clamp(in epilogue, oc);
                if (!pooled.IsEmpty)
                {
                    int at = (n * dstC + oc) * pplane + a * pw;
                    if (pooledRows > 0)
                        Conv2dKernels.WinogradOutputPooled(m.Slice((oc - r0) * t), mStride, n * t1, tw, pooled.Slice(at, pooledRows * pw),
                            argmax.IsEmpty ? default : argmax.Slice(at, pooledRows * pw), pooledRows, pw, dstW, bias, lo, hi, 2 * a * dstW);
                }
                else
                    Conv2dKernels.WinogradOutput(m.Slice((oc - r0) * t), mStride, n * t1, th, tw,
                        dst.Slice((n * dstC + oc) * dstH * dstW + 2 * a * dstW, outRows * dstW), outRows, dstW, bias, lo, hi);
            }
    }

    /// <summary>The bias and clamp an epilogue applies to output channel <paramref name="oc"/>.</summary>
    private static (float Bias, float Lo, float Hi) Clamp(in GemmEpilogue epilogue, int oc) => (
        epilogue.Bias == BiasMode.PerRow ? epilogue.BiasValues![epilogue.BiasOffset + oc] : 0f,
        epilogue.IsActive ? epilogue.Low : float.NegativeInfinity,
        epilogue.IsActive ? epilogue.High : float.PositiveInfinity);

    /// <summary>
    /// Forward of one image, part <paramref name="part"/> of <paramref name="parts"/> (the parts cover the
    /// image's output pixels; every part pads/reads the whole input). <paramref name="weights"/> are the raw
    /// OutC x K weights, <paramref name="packedWeights"/> the result of <see cref="PackWeights"/>.
    /// </summary>
    public void Forward(ReadOnlySpan<float> image, ReadOnlySpan<float> weights, ReadOnlySpan<float> packedWeights,
        Span<float> output, in GemmEpilogue epilogue, Span<float> scratch, int part = 0, int parts = 1)
    {
        // Winograd works on groups of images: one image is a group of one.
        if (IsWinograd) { Forward(image, 1, weights, packedWeights, output, in epilogue, scratch, part, parts); return; }
        if (_blocked is not null) { _blocked.Forward(image, packedWeights, output, in epilogue, scratch, part, parts); return; }
        var s = Shape;
        if (Algorithm == Conv2dAlgorithm.DirectSmall)
        {
            var padded = scratch.Slice(0, s.InC * _hp * _wp + Slack);
            Conv2dKernels.PadPlanes(image, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, s.PadBottom, s.PadRight, padded);
            padded.Slice(s.InC * _hp * _wp).Clear();
            var (c0, c1) = DirectChannels(part, parts);
            if (c0 < c1) Conv2dKernels.DirectForward(padded, s.InC, _hp, _wp, weights, s.OutC, s.KH, s.KW, output, in epilogue, c0, c1);
        }
        else if (Algorithm == Conv2dAlgorithm.ImplicitPadded)
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
            var col = scratch.Slice(0, ColFloats);
            var ws = scratch.Slice(ColFloats);
            for (int t = t0; t < t1; t++)
            {
                int p0 = t * _tilePixels, cnt = Math.Min(_tilePixels, s.OutPlane - p0);
                if (_pointwise)
                {
                    Sgemm.Multiply(false, false, s.OutC, cnt, s.K, weights, s.K, image.Slice(p0), s.OutPlane,
                        output.Slice(p0), s.OutPlane, false, ws, in epilogue);
                    continue;
                }
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
        if (IsWinograd) { BackwardData(outGrad, 1, weights, packedWeightsT, inGrad, scratch); return; }
        if (_blocked is not null) { _blocked.BackwardData(outGrad, packedWeightsT, inGrad, scratch); return; }
        var s = Shape;
        if (Algorithm is Conv2dAlgorithm.ImplicitPadded or Conv2dAlgorithm.DirectSmall)
        {
            var padded = scratch.Slice(0, s.OutC * _bhp * _bwp + Slack);
            Conv2dKernels.PadPlanes(outGrad, s.OutC, s.OutH, s.OutW,
                s.KH - 1 - s.PadTop, s.KW - 1 - s.PadLeft, s.KH - 1 - s.PadBottom, s.KW - 1 - s.PadRight, padded);
            padded.Slice(s.OutC * _bhp * _bwp).Clear();
            Conv2dKernels.ImplicitGemm(s.InC, s.OutC * s.KH * s.KW, packedWeightsT, padded, _bwdOffsets, s.InH, s.InW, _bwp,
                0, _bwdStrips, inGrad, s.InH * s.InW, default);
        }
        else if (_pointwise)
        {
            // dX (InC x P) = W^T (InC x OutC) * dY (OutC x P), straight into the input gradient.
            Sgemm.Multiply(false, false, s.InC, s.OutPlane, s.OutC, packedWeightsT, s.OutC, outGrad, s.OutPlane,
                inGrad, s.OutPlane, false, scratch);
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
        if (IsWinograd || _blocked is not null) { BackwardWeights(image, outGrad, 1, weightGrad, biasGrad, accumulate, scratch); return; }
        var s = Shape;
        if (!biasGrad.IsEmpty)
            for (int oc = 0; oc < s.OutC; oc++)
            {
                float sum = LaneSum.Sum(outGrad.Slice(oc * s.OutPlane, s.OutPlane));
                biasGrad[oc] = accumulate ? biasGrad[oc] + sum : sum;
            }

        if (Algorithm is Conv2dAlgorithm.ImplicitPadded or Conv2dAlgorithm.DirectSmall)
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
            if (_pointwise)
            {
                // dW (OutC x InC) += dY (OutC x P) * X^T (P x InC), the image read in place.
                Sgemm.Multiply(false, true, s.OutC, s.K, s.OutPlane, outGrad, s.OutPlane, image, s.OutPlane,
                    weightGrad, s.K, accumulate, scratch);
                return;
            }
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
