using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

/// <summary>
/// One direct convolution in "blocked" form: <c>out[c][pixel] = sum_k W[k][c] * src[off[k] + base(pixel)]</c>, with
/// the result's channels in blocks of 16 (one zmm register) and each input value broadcast; the forward pass is one such
/// problem (channels = output channels, src = the padded input split into stride phases) and each stride phase of the
/// input gradient another (channels = input channels, src = the padded output gradient). The tiling (how many 16-channel
/// blocks and pixels a register tile holds) comes from <see cref="TileRule"/>, the one rule for it.
/// </summary>
internal sealed class BlockedProblem
{
    /// <summary>Result channels (16-wide blocks, the last one padded with zero weights).</summary>
    public required int Channels { get; init; }
    /// <summary>Terms per result: k runs over (channel, tap) pairs of the source.</summary>
    public required int K { get; init; }
    /// <summary>Offset of term k in the source, from a pixel's base.</summary>
    public required int[] Offsets { get; init; }
    /// <summary>The result grid (rows x cols pixels) and the source floats between two result rows.</summary>
    public required int Rows { get; init; }
    public required int Cols { get; init; }
    public required int Pitch { get; init; }
    /// <summary>Channel groups (first channel, 16-wide blocks) and the tile widths covering a row.</summary>
    public required (int C0, int NB)[] Groups { get; init; }
    public required int[] Widths { get; init; }
    /// <summary>Terms per cache block: a block's packed weights (and the source rows they read) stay in L1.</summary>
    public required int KBlock { get; init; }
    /// <summary>Where term k's weight of channel c is in the layer's weights: <c>weights[WeightOffsets[k] + c * WeightChannelStride]</c>.</summary>
    public required int[] WeightOffsets { get; init; }
    public required int WeightChannelStride { get; init; }
    /// <summary>Floats of packed weights: K x 16 x blocks, group after group.</summary>
    public int PackedSize => K * 16 * ((Channels + 15) / 16);

    public static BlockedProblem Create(int channels, int[] offsets, int[] weightOffsets, int weightChannelStride, int rows, int cols, int pitch)
    {
        var (groups, widths) = TileRule.Choose(channels, cols);
        int maxNb = groups.Max(g => g.NB);
        return new BlockedProblem
        {
            Channels = channels, K = offsets.Length, Offsets = offsets, Rows = rows, Cols = cols, Pitch = pitch,
            Groups = groups, Widths = widths, KBlock = TileRule.KBlock(maxNb),
            WeightOffsets = weightOffsets, WeightChannelStride = weightChannelStride,
        };
    }

    /// <summary>Floats of the staging area of one group for rows [r0, r1): pixels x 64 channels, plus a 16-pixel tail the transposes read.</summary>
    public static int StagingFloats(int pixels) => (pixels + 16) * 16 * BlockedTiles.MaxBlocks;

    /// <summary>Offset of group <paramref name="g"/>'s packed weights.</summary>
    public int PackedOffset(int g) => K * Groups[g].C0;

    /// <summary>
    /// Packs the layer's weights for the tiles: group g's as K rows of 16 x NB floats, <c>packed[k][c - C0]</c> = the weight
    /// of term k and channel c (see <see cref="WeightOffsets"/>), zero for channels past <see cref="Channels"/>.
    /// </summary>
    public void Pack(ReadOnlySpan<float> weights, Span<float> packed)
    {
        for (int g = 0; g < Groups.Length; g++)
        {
            var (c0, nb) = Groups[g];
            int lanes = 16 * nb;
            var dst = packed.Slice(PackedOffset(g), K * lanes);
            for (int k = 0; k < K; k++)
            {
                int o = WeightOffsets[k];
                var row = dst.Slice(k * lanes, lanes);
                for (int c = 0; c < lanes; c++)
                    row[c] = c0 + c < Channels ? weights[o + (c0 + c) * WeightChannelStride] : 0f;
            }
        }
    }

    /// <summary>
    /// Computes rows [r0, r1) of group <paramref name="g"/> into <paramref name="staging"/> (pixel-major, 16 x NB floats a
    /// pixel, pixel (r, q) at ((r - r0) * Cols + q)). <paramref name="src"/> is the source at the grid's pixel (0, 0).
    /// With <paramref name="prefetch"/> each row first asks for the next row of every term of the cache block: for a
    /// source in memory whose terms are distinct rows (a 1x1 layer reading its input in place, one stream per input
    /// channel, more than the hardware prefetchers follow).
    /// </summary>
    public unsafe void Run(float* src, float* packed, int g, int r0, int r1, float* staging, bool prefetch = false, int pitch = 0)
    {
        var (_, nb) = Groups[g];
        nint lanes = 16 * nb, accPitch = pitch == 0 ? lanes : pitch;
        float* w = packed + PackedOffset(g);
        fixed (int* off = Offsets)
            for (int k0 = 0; k0 < K; k0 += KBlock)
            {
                int k1 = Math.Min(K, k0 + KBlock);
                bool accumulate = k0 > 0;
                for (int r = r0; r < r1; r++)
                {
                    float* row = src + (nint)r * Pitch;
                    if (prefetch && Sse.IsSupported && r + 1 < r1)
                    {
                        float* ahead = row + Pitch;
                        for (int k = k0; k < k1; k++)
                            for (int j = 0; j < Cols; j += 16) Sse.Prefetch0(ahead + off[k] + j);
                    }
                    float* acc = staging + (nint)(r - r0) * Cols * accPitch;
                    int q = 0;
                    foreach (int tw in Widths)
                    {
                        BlockedTiles.F(tw, nb, row + q, off, k0, k1, w, lanes, acc + q * accPitch, accPitch, accumulate);
                        q += tw;
                    }
                }
            }
    }

    /// <summary>
    /// <see cref="Run"/> for a 1x1 problem whose source is pixel-major: term k of pixel (r, q) at
    /// <c>src[(r * Cols + q) * pitch + k]</c>. A weight-gradient tile computes it: its taps are the tile's pixels (offsets
    /// j * pitch) and its sum runs over the terms in order against the packed weights' rows, each result the same FMA
    /// chain as the forward tile's, so the same bits.
    /// </summary>
    public unsafe void RunPixelMajor(float* src, int pitch, float* packed, int g, int r0, int r1, float* staging)
    {
        var (_, nb) = Groups[g];
        nint lanes = 16 * nb;
        float* w = packed + PackedOffset(g);
        int* off = stackalloc int[16];
        for (int j = 0; j < 16; j++) off[j] = j * pitch;
        for (int k0 = 0; k0 < K; k0 += KBlock)
        {
            int k1 = Math.Min(K, k0 + KBlock);
            for (int r = r0; r < r1; r++)
            {
                float* acc = staging + (nint)(r - r0) * Cols * lanes;
                int q = 0;
                foreach (int tw in Widths)
                {
                    BlockedTiles.G(tw, nb, src + ((nint)r * Cols + q) * pitch + k0, off, 1, k1 - k0, 0, w + k0 * lanes, lanes,
                        acc + q * lanes, lanes, k0 > 0);
                    q += tw;
                }
            }
        }
    }
}

/// <summary>
/// How a blocked convolution is tiled: the one place this is decided. A register tile is TW pixels of one row times NB
/// blocks of 16 channels (TW x NB accumulators, at most 28 of the 32 zmm registers). Per term it loads NB weight vectors
/// and broadcasts TW inputs for TW x NB FMAs. The rule estimates a row's cycles per tile as the largest of: the FMAs at
/// two a cycle, the loads at three a cycle, and the FMA latency of four cycles (fewer than eight accumulators leave the
/// FMA units idle), plus half a cycle of loop overhead; and picks the NB (with balanced tile widths) that makes a row of
/// all channel groups cheapest. The widths are the same on every path, so the choice never changes a result's bits
/// (nothing would: each result is one FMA chain over the terms whatever the tiling).
/// </summary>
internal static class TileRule
{
    public static ((int C0, int NB)[] Groups, int[] Widths) Choose(int channels, int cols)
    {
        int blocks = (channels + 15) / 16;
        double best = double.MaxValue;
        (int, int)[] bestGroups = [];
        int[] bestWidths = [];
        for (int nb = 1; nb <= Math.Min(BlockedTiles.MaxBlocks, blocks); nb++)
        {
            var groups = Groups(blocks, nb);
            var widths = Widths(cols, nb);
            double cycles = 0;
            foreach (var (_, gnb) in groups)
                foreach (int tw in widths) cycles += TileCycles(tw, gnb);
            if (cycles < best - 1e-9)
            {
                best = cycles;
                bestGroups = groups;
                bestWidths = widths;
            }
        }
        // The last group may hold fewer blocks; its tiles use the same widths (at most the widest tile of any NB in use).
        int maxLast = BlockedTiles.MaxWidth(bestGroups[^1].Item2);
        if (bestWidths.Max() > maxLast) throw new InvalidOperationException("tile rule: a group's tile is wider than its kernel");
        return (bestGroups, bestWidths);
    }

    /// <summary>Groups of <paramref name="nb"/> blocks, the last one smaller when the blocks do not divide.</summary>
    public static (int C0, int NB)[] Groups(int blocks, int nb)
    {
        var g = new List<(int, int)>();
        for (int b = 0; b < blocks; b += nb) g.Add((16 * b, Math.Min(nb, blocks - b)));
        return g.ToArray();
    }

    /// <summary>Tile widths covering <paramref name="cols"/> pixels, as even as possible, none wider than the NB's kernel.</summary>
    public static int[] Widths(int cols, int nb)
    {
        int max = BlockedTiles.MaxWidth(nb);
        int tiles = (cols + max - 1) / max;
        var w = new int[tiles];
        for (int t = 0; t < tiles; t++) w[t] = (cols * (t + 1)) / tiles - (cols * t) / tiles;
        return w;
    }

    /// <summary>Estimated cycles per term of a TW x NB tile (see the class summary).</summary>
    public static double TileCycles(int tw, int nb) => Math.Max(Math.Max(tw * nb / 2.0, (tw + nb) / 3.0), 4.0) + 0.5;

    /// <summary>Terms per cache block for tiles of <paramref name="nb"/> blocks: 24 KiB of packed weights (L1 is 32-48 KiB).</summary>
    public static int KBlock(int nb) => Math.Max(16, 24 * 1024 / (64 * nb));
}

/// <summary>
/// A <see cref="Conv2dShape"/> computed by blocked direct convolution, for any kernel, stride and padding:
/// <list type="bullet">
/// <item>forward: the image is padded and split into its stride phases (plane (c, a, b) holds the padded pixels whose
/// row is a and column b modulo the strides), so that every tap of a strided convolution reads consecutive values and
/// one <see cref="BlockedProblem"/> over the output channels covers it;</item>
/// <item>input gradient: for each stride phase (a, b) of the input, only the taps with (a + pad - tap) divisible by the
/// stride reach it, through the zero-padded output gradient at stride 1: one problem over the input channels per phase;</item>
/// <item>weight gradient: the output gradient transposed to pixel-major rows of 16-channel blocks, and register tiles of
/// (taps x output-channel blocks) each summing over all pixels of the images in order.</item>
/// </list>
/// Every result is one FMA chain in a fixed order (terms, or pixels then images), so the bits do not depend on the tiling,
/// the vector width, the thread count or the batch. Nothing allocates after construction.
/// </summary>
internal sealed unsafe class BlockedConv
{
    private const int Slack = 16;
    public Conv2dShape Shape { get; }

    // Forward: input phases, (InC x sh x sw) planes of Hq x Wq; at stride 1 without padding they are the image itself,
    // which the tiles then read in place (copying a 1x1 layer's input cost a quarter of its forward).
    private readonly int _hq, _wq;
    private readonly bool _inPlace;
    private readonly BlockedProblem _forward;
    private readonly int[] _forwardOffsets;
    // Input gradient: output gradient padded to OutC planes of Hd x Wd; one problem per phase (null: no tap reaches it).
    private readonly int _hd, _wd, _ptd, _pld;
    // When no tap reaches past the output gradient (a 1x1 layer without padding) the tiles read it in place: its copy
    // into padded planes is the gradient itself.
    private readonly bool _dataInPlace;
    private readonly BlockedProblem?[] _phases;
    private readonly int[] _phaseOffsets;
    // Weight gradient: tap tiles (first term, count) per channel group, over the forward's offsets.
    private readonly (int J0, int T)[] _tapTiles;
    private readonly int _ocPad;

    public BlockedConv(in Conv2dShape s)
    {
        s.Validate();
        Shape = s;
        int sh = s.StrideH, sw = s.StrideW;
        _hq = (s.InH + s.PadTop + s.PadBottom + sh - 1) / sh;
        _wq = (s.InW + s.PadLeft + s.PadRight + sw - 1) / sw;
        _inPlace = sh == 1 && sw == 1 && s.PadTop == 0 && s.PadLeft == 0 && s.PadBottom == 0 && s.PadRight == 0;
        var off = new int[s.K];
        for (int ic = 0, k = 0; ic < s.InC; ic++)
            for (int kh = 0; kh < s.KH; kh++)
                for (int kw = 0; kw < s.KW; kw++)
                    off[k++] = ((ic * sh + kh % sh) * sw + kw % sw) * _hq * _wq + kh / sh * _wq + kw / sw;
        _forwardOffsets = off;
        var forwardWeights = new int[s.K];
        for (int k = 0; k < s.K; k++) forwardWeights[k] = k;
        _forward = BlockedProblem.Create(s.OutC, off, forwardWeights, s.K, s.OutH, s.OutW, _wq);
        _ocPad = 16 * ((s.OutC + 15) / 16);

        // Weight-gradient tap tiles: as many terms per tile as the widest group's kernel takes.
        int nbMax = _forward.Groups.Max(g => g.NB);
        int tMax = BlockedTiles.MaxTaps(nbMax);
        var tiles = new List<(int, int)>();
        int count = (s.K + tMax - 1) / tMax;
        for (int t = 0; t < count; t++) tiles.Add((s.K * t / count, s.K * (t + 1) / count - s.K * t / count));
        _tapTiles = tiles.ToArray();

        // Input-gradient phases. Phase a of the rows: input rows y = a + sh * r; tap kh reaches it when (a + PadTop - kh) is a
        // multiple of sh, from output-gradient row r + (a + PadTop - kh) / sh.
        var rowTaps = new List<(int Tap, int Shift)>[sh];
        var colTaps = new List<(int Tap, int Shift)>[sw];
        int minShiftH = 0, maxReachH = s.OutH - 1, minShiftW = 0, maxReachW = s.OutW - 1;
        for (int a = 0; a < sh; a++)
        {
            rowTaps[a] = [];
            int rows = PhaseCount(s.InH, a, sh);
            for (int kh = 0; kh < s.KH; kh++)
                if (((a + s.PadTop - kh) % sh + sh) % sh == 0)
                {
                    int shift = (a + s.PadTop - kh) / sh;
                    rowTaps[a].Add((kh, shift));
                    minShiftH = Math.Min(minShiftH, shift);
                    if (rows > 0) maxReachH = Math.Max(maxReachH, rows - 1 + shift);
                }
        }
        for (int b = 0; b < sw; b++)
        {
            colTaps[b] = [];
            int cols = PhaseCount(s.InW, b, sw);
            for (int kw = 0; kw < s.KW; kw++)
                if (((b + s.PadLeft - kw) % sw + sw) % sw == 0)
                {
                    int shift = (b + s.PadLeft - kw) / sw;
                    colTaps[b].Add((kw, shift));
                    minShiftW = Math.Min(minShiftW, shift);
                    if (cols > 0) maxReachW = Math.Max(maxReachW, cols - 1 + shift);
                }
        }
        _ptd = -minShiftH;
        _pld = -minShiftW;
        _hd = maxReachH + 1 + _ptd;
        _wd = maxReachW + 1 + _pld;
        _dataInPlace = _ptd == 0 && _pld == 0 && _hd == s.OutH && _wd == s.OutW;
        _phases = new BlockedProblem?[sh * sw];
        _phaseOffsets = new int[sh * sw + 1];
        for (int a = 0; a < sh; a++)
            for (int b = 0; b < sw; b++)
            {
                int rows = PhaseCount(s.InH, a, sh), cols = PhaseCount(s.InW, b, sw);
                int p = a * sw + b;
                BlockedProblem? problem = null;
                if (rows > 0 && cols > 0 && rowTaps[a].Count > 0 && colTaps[b].Count > 0)
                {
                    int terms = s.OutC * rowTaps[a].Count * colTaps[b].Count;
                    var offsets = new int[terms];
                    var weightOffsets = new int[terms];
                    int k = 0;
                    for (int oc = 0; oc < s.OutC; oc++)
                        foreach (var (kh, dh) in rowTaps[a])
                            foreach (var (kw, dw) in colTaps[b])
                            {
                                offsets[k] = oc * _hd * _wd + (dh + _ptd) * _wd + dw + _pld;
                                weightOffsets[k++] = (oc * s.InC * s.KH + kh) * s.KW + kw;
                            }
                    problem = BlockedProblem.Create(s.InC, offsets, weightOffsets, s.KH * s.KW, rows, cols, _wd);
                }
                _phases[p] = problem;
                _phaseOffsets[p + 1] = _phaseOffsets[p] + (problem?.PackedSize ?? 0);
            }
    }

    /// <summary>Values of [0, n) congruent to <paramref name="phase"/> modulo <paramref name="stride"/>.</summary>
    private static int PhaseCount(int n, int phase, int stride) => phase >= n ? 0 : (n - phase + stride - 1) / stride;

    internal int InputPhasesSize => _inPlace ? 0 : Shape.InC * Shape.StrideH * Shape.StrideW * _hq * _wq;

    /// <summary>Floats of packed forward weights.</summary>
    public int PackedWeightsSize => _forward.PackedSize;
    /// <summary>Floats of packed input-gradient weights (every phase's).</summary>
    public int PackedWeightsTSize => _phaseOffsets[^1];

    /// <summary>Units a forward of one image splits into: channel groups x row bands (a band: 2 rows, so pooling windows never split).</summary>
    public int ForwardUnits => Units(Tail.Planes);

    /// <summary>Units a forward ending in a mean over the plane splits into: channel groups (a mean's sum runs over every row in order).</summary>
    public int MeanUnits => Units(Tail.Mean);

    /// <summary>What the forward writes: the output planes, a 2x2 max-pool of them, or each channel's mean over the plane.</summary>
    private enum Tail { Planes, MaxPool, Mean }

    /// <summary>Input phases, then the staged output tile and (pooling) the pooled tile and its arg-max.</summary>
    public int ForwardScratch => InputPhasesSize + Slack + BlockedProblem.StagingFloats(Shape.OutPlane) * 2;
    private int PaddedGradientSize => _dataInPlace ? 0 : Shape.OutC * _hd * _wd;

    /// <summary>The padded output gradient, the staged tile and (strided) its channel-major phase planes.</summary>
    public int BackwardDataScratch => PaddedGradientSize + Slack +
        BlockedProblem.StagingFloats(_phases.Max(p => p is null ? 0 : p.Rows * p.Cols)) * 2;
    /// <summary>Input phases, the transposed output gradient (pixels x padded channels) and the chunk's weight-gradient sums (terms x padded channels).</summary>
    public int BackwardWeightsScratch => InputPhasesSize + Slack + Shape.OutPlane * _ocPad + Shape.K * _ocPad + _ocPad;

    /// <summary>Rows of a unit: 2 (a 2x2 pooling window never straddles two units), or the whole plane for a mean.</summary>
    private int BandRows(Tail tail) => tail == Tail.Mean ? Shape.OutH : 2;

    /// <summary>Row bands of the output plane for <paramref name="tail"/>.</summary>
    private int Bands(Tail tail) => (Shape.OutH + BandRows(tail) - 1) / BandRows(tail);

    /// <summary>Units of one image's forward: channel groups x row bands.</summary>
    private int Units(Tail tail) => _forward.Groups.Length * Bands(tail);

    /// <summary>
    /// Forward of one image, units [a, b) of <see cref="ForwardUnits"/> for part <paramref name="part"/> of
    /// <paramref name="parts"/>: output := conv(image) then the epilogue (bias, clamp). Every part pads the image itself.
    /// </summary>
    public void Forward(ReadOnlySpan<float> image, ReadOnlySpan<float> packed, Span<float> output, in GemmEpilogue epilogue,
        Span<float> scratch, int part = 0, int parts = 1) =>
        Forward(image, packed, output, default, in epilogue, scratch, part, parts, Tail.Planes);

    /// <summary>
    /// Forward of one image followed by a floor-mode 2x2 stride-2 max-pool of its (clamped) output, pooled in the
    /// epilogue: writes only <paramref name="pooled"/> (OutC x OutH/2 x OutW/2) and, when not empty, the arg-max (the
    /// index in the convolution's output plane of each window's first maximum).
    /// </summary>
    public void ForwardPooled(ReadOnlySpan<float> image, ReadOnlySpan<float> packed, Span<float> pooled, Span<int> argmax,
        in GemmEpilogue epilogue, Span<float> scratch, int part = 0, int parts = 1) =>
        Forward(image, packed, pooled, argmax, in epilogue, scratch, part, parts, Tail.MaxPool);

    /// <summary>
    /// Forward of one image followed by the mean of each channel's (clamped) output over the plane, as a global average
    /// pool computes it (the sum over the pixels in row-major order from zero, times 1 / pixels): writes only
    /// <paramref name="means"/> (OutC values). Part <paramref name="part"/> of <paramref name="parts"/> of <see cref="MeanUnits"/>.
    /// </summary>
    public void ForwardMean(ReadOnlySpan<float> image, ReadOnlySpan<float> packed, Span<float> means, in GemmEpilogue epilogue,
        Span<float> scratch, int part = 0, int parts = 1) =>
        Forward(image, packed, means, default, in epilogue, scratch, part, parts, Tail.Mean);

    /// <summary>Floats a pixel takes in <see cref="ForwardToPixels"/>'s output: the output channels rounded up to 16.</summary>
    public int PixelPitch => _ocPad;

    /// <summary>True when <see cref="ForwardFromPixels"/> applies: a 1x1 layer at stride 1 without padding.</summary>
    public bool ReadsPixelMajor => InPlaceOneByOne;

    /// <summary>A 1x1 layer reading its input in place: one stream per input channel, which the tiles prefetch.</summary>
    private bool InPlaceOneByOne => _inPlace && Shape.KH == 1 && Shape.KW == 1;

    /// <summary>
    /// Forward of one image into pixel-major rows: <c>pixels[p * PixelPitch + c]</c> for each output pixel p and channel c,
    /// bias and clamp applied (channels past OutC hold the clamp of zero). What a following 1x1 layer reads with
    /// <see cref="ForwardFromPixels"/>: a chained pair's intermediate then goes through no transposes. Output rows
    /// [<paramref name="rowFrom"/>, <paramref name="rowTo"/>) only (-1: to the last), padding only the input rows they
    /// read: the parts of one image on several workers. Rows never change a result (each is the same chains).
    /// </summary>
    public void ForwardToPixels(ReadOnlySpan<float> image, ReadOnlySpan<float> packed, float* pixels, in GemmEpilogue epilogue, Span<float> scratch,
        int rowFrom = 0, int rowTo = -1)
    {
        var s = Shape;
        if (rowTo < 0) rowTo = s.OutH;
        if (scratch.Length < ForwardScratch) throw new ArgumentException($"scratch holds {scratch.Length} floats, the blocked forward needs {ForwardScratch}");
        fixed (float* img = image, w = packed, sc = scratch)
        {
            float* x = img;
            if (!_inPlace) PadPhases(img, x = sc, rowFrom, rowTo + (s.KH - 1) / s.StrideH);
            float* bias = stackalloc float[16 * BlockedTiles.MaxBlocks];
            // Row by row when the terms are one cache block (the weights stay in L1 either way): the bias and clamp then
            // find the row's values in L1, where a pass over the whole intermediate afterwards read them back from L2.
            int band = _forward.K <= _forward.KBlock ? 1 : s.OutH;
            for (int g = 0; g < _forward.Groups.Length; g++)
            {
                var (c0, nb) = _forward.Groups[g];
                if (epilogue.IsActive) GroupBias(g, in epilogue, bias);
                for (int r0 = rowFrom; r0 < rowTo; r0 += band)
                {
                    int r1 = Math.Min(rowTo, r0 + band);
                    float* at = pixels + (nint)r0 * s.OutW * _ocPad + c0;
                    _forward.Run(x, w, g, r0, r1, at, prefetch: InPlaceOneByOne, pitch: _ocPad);
                    if (epilogue.IsActive) BlockedEpilogue.BiasClamp(at, (r1 - r0) * s.OutW, 16 * nb, bias, epilogue.Low, epilogue.High, _ocPad);
                }
            }
        }
    }

    /// <summary>
    /// Forward of one image whose input is pixel-major, <c>input[p * pitch + c]</c> (<see cref="ForwardToPixels"/>'s
    /// output), into the output planes; only where <see cref="ReadsPixelMajor"/>. The same chains as a forward from the planes.
    /// Output rows [<paramref name="rowFrom"/>, <paramref name="rowTo"/>) only (-1: to the last).
    /// </summary>
    public void ForwardFromPixels(float* input, int pitch, ReadOnlySpan<float> packed, Span<float> output, in GemmEpilogue epilogue, Span<float> scratch,
        int rowFrom = 0, int rowTo = -1)
    {
        var s = Shape;
        if (rowTo < 0) rowTo = s.OutH;
        if (!ReadsPixelMajor) throw new InvalidOperationException("a pixel-major input needs a 1x1 layer at stride 1 without padding");
        if (scratch.Length < ForwardScratch) throw new ArgumentException($"scratch holds {scratch.Length} floats, the blocked forward needs {ForwardScratch}");
        fixed (float* w = packed, outp = output, sc = scratch)
        {
            float* staging = sc + InputPhasesSize + Slack;
            for (int g = 0; g < _forward.Groups.Length; g++)
            {
                var (c0, nb) = _forward.Groups[g];
                PrefetchPlanes(outp + (nint)c0 * s.OutPlane + rowFrom * s.OutW, Math.Min(16 * nb, s.OutC - c0), s.OutPlane, (rowTo - rowFrom) * s.OutW);
                _forward.RunPixelMajor(input, pitch, w, g, rowFrom, rowTo, staging);
                Finish(staging, g, rowFrom, rowTo, outp, in epilogue, Tail.Planes, null);
            }
        }
    }

    /// <summary>Group <paramref name="g"/>'s bias lanes (zero past the layer's channels, or without a bias).</summary>
    private void GroupBias(int g, in GemmEpilogue epilogue, float* bias)
    {
        var (c0, nb) = _forward.Groups[g];
        int valid = Math.Min(16 * nb, Shape.OutC - c0);
        for (int c = 0; c < 16 * nb; c++)
            bias[c] = epilogue.Bias == BiasMode.PerRow && c < valid ? epilogue.BiasValues![epilogue.BiasOffset + c0 + c] : 0f;
    }

    private void Forward(ReadOnlySpan<float> image, ReadOnlySpan<float> packed, Span<float> output, Span<int> argmax, in GemmEpilogue epilogue,
        Span<float> scratch, int part, int parts, Tail tail)
    {
        var s = Shape;
        int bandRows = BandRows(tail), bands = Bands(tail);
        int units = Units(tail), u0 = (int)((long)units * part / parts), u1 = (int)((long)units * (part + 1) / parts);
        if (u0 >= u1) return;
        if (scratch.Length < ForwardScratch) throw new ArgumentException($"scratch holds {scratch.Length} floats, the blocked forward needs {ForwardScratch}");
        fixed (float* img = image, w = packed, outp = output, sc = scratch)
        fixed (int* idx = argmax)
        {
            float* x = sc;
            // A part pads only the phase rows its output rows read (parts of one image run at once on batch 1): the
            // output rows of its units, widened by the taps' reach (KH - 1) / sh.
            int lo = s.OutH, hi = 0;
            for (int u = u0; u < u1;)
            {
                int g = u / bands, band0 = u % bands, end = Math.Min(u1, (g + 1) * bands);
                lo = Math.Min(lo, bandRows * band0);
                hi = Math.Max(hi, Math.Min(s.OutH, bandRows * (end - g * bands)));
                u = end;
            }
            if (_inPlace) x = img;
            else PadPhases(img, x, lo, Math.Min(_hq, hi + (s.KH - 1) / s.StrideH));
            float* staging = sc + InputPhasesSize + Slack;
            // Consecutive units of one group are one run of rows.
            for (int u = u0; u < u1;)
            {
                int g = u / bands, band0 = u % bands;
                int end = Math.Min(u1, (g + 1) * bands);
                int r0 = bandRows * band0, r1 = Math.Min(s.OutH, bandRows * (end - g * bands));
                if (tail == Tail.Planes)
                {
                    var (c0, nb) = _forward.Groups[g];
                    PrefetchPlanes(outp + (nint)c0 * s.OutPlane + r0 * s.OutW, Math.Min(16 * nb, s.OutC - c0), s.OutPlane, (r1 - r0) * s.OutW);
                }
                // The first group of a call reads the image from memory; the later ones find it in cache. A 1x1 layer's
                // prefetches (one a term and row) took 256x16x16->64 from 6.3-7.0 to 5.8-6.6 ms over a batch of 64;
                // with 3x3 taps sharing lines they cost more than they saved (128x8x8->128 unpadded 6.8 -> 7.3 ms).
                _forward.Run(x, w, g, r0, r1, staging, prefetch: InPlaceOneByOne && u == u0);
                Finish(staging, g, r0, r1, outp, in epilogue, tail, idx);
                u = end;
            }
        }
    }

    /// <summary>
    /// The forward epilogue of rows [r0, r1) of group g: bias and clamp on the staged tile, then channel-major into the
    /// output (pooled first, or summed into each channel's mean over the whole plane).
    /// </summary>
    private void Finish(float* staging, int g, int r0, int r1, float* output, in GemmEpilogue epilogue, Tail tail, int* argmax)
    {
        var s = Shape;
        var (c0, nb) = _forward.Groups[g];
        int lanes = 16 * nb, pixels = (r1 - r0) * s.OutW, valid = Math.Min(lanes, s.OutC - c0);
        float* bias = stackalloc float[16 * BlockedTiles.MaxBlocks];
        if (epilogue.IsActive) GroupBias(g, in epilogue, bias);
        if (tail == Tail.Planes)
        {
            // Bias and clamp on the way out: a pass of its own over the tile cost a tenth of a 1x1 layer's forward.
            BlockedTiles.Transpose(staging, lanes, pixels, valid, output + (nint)c0 * s.OutPlane + r0 * s.OutW, s.OutPlane,
                epilogue.IsActive ? bias : null, epilogue.Low, epilogue.High);
            return;
        }
        if (epilogue.IsActive) BlockedEpilogue.BiasClamp(staging, pixels, lanes, bias, epilogue.Low, epilogue.High);
        if (tail == Tail.Mean)
        {
            // The rows are the whole plane (a unit of a mean is a channel group), summed in pixel order.
            float* sum = stackalloc float[16 * BlockedTiles.MaxBlocks];
            new Span<float>(sum, lanes).Clear();
            BlockedEpilogue.AddRows(staging, pixels, lanes, sum);
            float inv = 1f / s.OutPlane;
            for (int c = 0; c < valid; c++) output[c0 + c] = sum[c] * inv;
            return;
        }
        int ph = (r1 - r0) / 2, pw = s.OutW / 2, pplane = (s.OutH / 2) * pw;
        if (ph == 0 || pw == 0) return;
        float* pooled = staging + (nint)(pixels + 16) * lanes;
        int* idx = (int*)(pooled + (nint)(ph * pw + 16) * lanes);
        BlockedPool.Max2x2(staging, r1 - r0, s.OutW, lanes, r0, pooled, idx);
        nint at = (nint)c0 * pplane + r0 / 2 * pw;
        BlockedTiles.Transpose(pooled, lanes, ph * pw, valid, output + at, pplane);
        if (argmax != null) BlockedTiles.Transpose((float*)idx, lanes, ph * pw, valid, (float*)argmax + at, pplane);
    }

    /// <summary>
    /// Asks for the lines of <paramref name="channels"/> runs of <paramref name="length"/> floats, <paramref name="pitch"/>
    /// apart, before a group's tiles compute what the transpose then stores there. The transpose writes a line to each of
    /// 16-64 planes in turn, a pattern the hardware prefetchers did not follow: a 1x1 layer writing 256 channels of
    /// 16 x 16 (256 KiB an image) spent 15-20% of its forward waiting on those lines, which now arrive while the tiles
    /// compute (BENCHMARKS.md). Prefetches never fault and change no value.
    /// </summary>
    private static void PrefetchPlanes(float* first, int channels, nint pitch, int length)
    {
        if (!Sse.IsSupported) return;
        for (int c = 0; c < channels; c++)
        {
            float* run = first + c * pitch;
            for (int q = 0; q < length; q += 16) Sse.Prefetch1(run + q);
        }
    }

    /// <summary>
    /// Writes the image padded and split into stride phases: plane (c, a, b) of Hq x Wq holds padded pixel
    /// (a + sh * i, b + sw * j) at (i, j); everything outside the image is zero. Only phase rows [i0, i1) are written
    /// (all of them by default). <paramref name="zmm"/> false takes the portable loop even where AVX-512 runs (the tests
    /// hold the zmm form to it).
    /// </summary>
    internal void PadPhases(float* img, float* x, int i0 = 0, int i1 = int.MaxValue, bool zmm = true)
    {
        var s = Shape;
        int sh = s.StrideH, sw = s.StrideW, plane = _hq * _wq;
        i1 = Math.Min(i1, _hq);
        if (zmm && Engine.UseAvx512 && sw <= 2)
        {
            PadPhasesAvx512(img, x, i0, i1);
            return;
        }
        for (int c = 0; c < s.InC; c++)
            for (int a = 0; a < sh; a++)
                for (int b = 0; b < sw; b++)
                {
                    float* dst = x + (nint)((c * sh + a) * sw + b) * plane;
                    // Columns j of this phase inside the image: b + sw * j - PadLeft in [0, InW).
                    int j0 = Math.Max(0, (s.PadLeft - b + sw - 1) / sw);
                    int j1 = Math.Min(_wq, (s.InW + s.PadLeft - b + sw - 1) / sw);
                    for (int i = i0; i < i1; i++)
                    {
                        float* row = dst + i * _wq;
                        int y = a + sh * i - s.PadTop;
                        if ((uint)y >= (uint)s.InH || j0 >= j1)
                        {
                            new Span<float>(row, _wq).Clear();
                            continue;
                        }
                        float* src = img + ((nint)c * s.InH + y) * s.InW;
                        for (int j = 0; j < j0; j++) row[j] = 0f;
                        if (sw == 1) new ReadOnlySpan<float>(src + j0 - s.PadLeft, j1 - j0).CopyTo(new Span<float>(row + j0, j1 - j0));
                        else if (sw == 2) EveryOther(src + b + 2 * j0 - s.PadLeft, row + j0, j1 - j0);
                        else for (int j = j0; j < j1; j++) row[j] = src[b + sw * j - s.PadLeft];
                        for (int j = j1; j < _wq; j++) row[j] = 0f;
                    }
                }
    }

    /// <summary>
    /// <see cref="PadPhases"/> in zmm for column strides 1 and 2: 16 columns of a phase row at a time, from one masked
    /// load of the image row (two and a permute taking every other value at stride 2), lanes outside the image reading
    /// as zero without touching memory, and a masked store ending at the row's width, where the portable loop copies a
    /// row in pieces (per-row overhead on 8-17-float rows). It moves the same values (BENCHMARKS.md has the timings).
    /// </summary>
    private void PadPhasesAvx512(float* img, float* x, int i0, int i1)
    {
        var s = Shape;
        int sh = s.StrideH, sw = s.StrideW, plane = _hq * _wq;
        var iota = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        var evens = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        var inW = Vector512.Create(s.InW);
        var width = Vector512.Create(_wq);
        for (int c = 0; c < s.InC; c++)
            for (int a = 0; a < sh; a++)
                for (int b = 0; b < sw; b++)
                {
                    float* dst = x + (nint)((c * sh + a) * sw + b) * plane;
                    for (int i = i0; i < i1; i++)
                    {
                        float* row = dst + i * _wq;
                        int y = a + sh * i - s.PadTop;
                        float* src = img + ((nint)c * s.InH + y) * s.InW;
                        bool inside = (uint)y < (uint)s.InH;
                        for (int j = 0; j < _wq; j += 16)
                        {
                            var store = Vector512.LessThan(iota + Vector512.Create(j), width).AsSingle();
                            var v = Vector512<float>.Zero;
                            if (inside)
                            {
                                // Lane l of the row is image column b - PadLeft + sw * (j + l).
                                int first = b - s.PadLeft + sw * j;
                                var col = iota + Vector512.Create(first);
                                v = Avx512F.MaskLoad(src + first, Within(col, inW), Vector512<float>.Zero);
                                if (sw == 2)
                                {
                                    var col2 = col + Vector512.Create(16);
                                    var hi = Avx512F.MaskLoad(src + first + 16, Within(col2, inW), Vector512<float>.Zero);
                                    v = Avx512F.PermuteVar16x32x2(v, evens, hi);
                                }
                            }
                            Avx512F.MaskStore(row + j, store, v);
                        }
                    }
                }

        static Vector512<float> Within(Vector512<int> col, Vector512<int> n) =>
            (Vector512.GreaterThanOrEqual(col, Vector512<int>.Zero) & Vector512.LessThan(col, n)).AsSingle();
    }

    /// <summary>
    /// <c>dst[j] = src[2 * j]</c> for j &lt; <paramref name="n"/>, reading nothing past src[2 (n - 1)]. Eight at a time
    /// with AVX2 shuffles (a stride-2 layer's input phases were copied one float at a time: a quarter of its forward).
    /// </summary>
    internal static void EveryOther(float* src, float* dst, int n)
    {
        int j = 0;
        if (Engine.UseAvx2)
            // The last vector reads src[2j + 15]; j + 8 < n keeps that at or before src[2 (n - 1)].
            for (; j + 8 < n; j += 8)
                Avx.Store(dst + j, Conv2dKernels.Even(Avx.LoadVector256(src + 2 * j), Avx.LoadVector256(src + 2 * j + 8)));
        for (; j < n; j++) dst[j] = src[2 * j];
    }

    /// <summary>Input gradient of one image: <paramref name="inGrad"/> := d loss / d input (overwritten).</summary>
    public void BackwardData(ReadOnlySpan<float> outGrad, ReadOnlySpan<float> packedT, Span<float> inGrad, Span<float> scratch)
    {
        var s = Shape;
        if (scratch.Length < BackwardDataScratch) throw new ArgumentException($"scratch holds {scratch.Length} floats, the blocked input gradient needs {BackwardDataScratch}");
        fixed (float* dy = outGrad, w = packedT, dx = inGrad, sc = scratch)
        {
            float* d = _dataInPlace ? dy : sc;
            int plane = _hd * _wd;
            if (!_dataInPlace)
                Conv2dKernels.PadPlanes(outGrad, s.OutC, s.OutH, s.OutW, _ptd, _pld, _hd - s.OutH - _ptd, _wd - s.OutW - _pld,
                    new Span<float>(d, s.OutC * plane));
            float* staging = sc + PaddedGradientSize + Slack;
            int sh = s.StrideH, sw = s.StrideW, inPlane = s.InH * s.InW;
            for (int a = 0; a < sh; a++)
                for (int b = 0; b < sw; b++)
                {
                    var problem = _phases[a * sw + b];
                    if (problem is null)
                    {
                        for (int c = 0; c < s.InC; c++)
                            for (int y = a; y < s.InH; y += sh)
                                for (int xx = b; xx < s.InW; xx += sw) dx[(nint)c * inPlane + y * s.InW + xx] = 0f;
                        continue;
                    }
                    float* pw = w + _phaseOffsets[a * sw + b];
                    for (int g = 0; g < problem.Groups.Length; g++)
                    {
                        var (c0, nb) = problem.Groups[g];
                        int lanes = 16 * nb, valid = Math.Min(lanes, s.InC - c0);
                        if (sh == 1 && sw == 1) PrefetchPlanes(dx + (nint)c0 * inPlane, valid, inPlane, inPlane);
                        problem.Run(d, pw, g, 0, problem.Rows, staging);
                        if (sh == 1 && sw == 1)
                        {
                            BlockedTiles.Transpose(staging, lanes, problem.Rows * problem.Cols, valid, dx + (nint)c0 * inPlane, inPlane);
                            continue;
                        }
                        // To channel-major phase planes first, then each plane row spread over its input row: writing
                        // pixel-major values straight into the channel planes touched one 4 KiB-apart line per float.
                        int pixels = problem.Rows * problem.Cols;
                        float* planes = staging + (nint)(pixels + 16) * lanes;
                        BlockedTiles.Transpose(staging, lanes, pixels, valid, planes, pixels);
                        for (int c = 0; c < valid; c++)
                            for (int r = 0; r < problem.Rows; r++)
                            {
                                float* v = planes + (nint)c * pixels + r * problem.Cols;
                                float* o = dx + (nint)(c0 + c) * inPlane + (a + sh * r) * s.InW + b;
                                if (sw == 2 && Engine.UseAvx512) SpreadEveryOther(v, o - b, problem.Cols, b);
                                else for (int q = 0; q < problem.Cols; q++) o[sw * q] = v[q];
                            }
                    }
                }
        }
    }

    /// <summary>
    /// <c>dst[2 q + parity] = src[q]</c> for q &lt; <paramref name="n"/>, nothing else read or written: a stride-2 phase
    /// row of the input gradient put in its place. Each 16 values go out as two vectors holding every value twice,
    /// stored under a mask of the lanes of the phase's parity. The one-float-at-a-time stores it replaces took a quarter
    /// of a stride-2 layer's input gradient (32x32x32->64: 2.5 of 8.7 ms over a batch of 64, timed inside the call).
    /// </summary>
    internal static void SpreadEveryOther(float* src, float* dst, int n, int parity)
    {
        var iota = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        var half = Vector512.ShiftRightLogical(iota, 1);
        var ofParity = Vector512.Equals(iota & Vector512.Create(1), Vector512.Create(parity));
        for (int q = 0; q < n; q += 16)
        {
            var count = Vector512.Create(n - q);
            var v = Avx512F.MaskLoad(src + q, Vector512.LessThan(iota, count).AsSingle(), Vector512<float>.Zero);
            Avx512F.MaskStore(dst + 2 * q, (ofParity & Vector512.LessThan(half, count)).AsSingle(), Avx512F.PermuteVar16x32(v, half));
            var upper = half + Vector512.Create(8);
            if (n - q > 8)
                Avx512F.MaskStore(dst + 2 * q + 16, (ofParity & Vector512.LessThan(upper, count)).AsSingle(), Avx512F.PermuteVar16x32(v, upper));
        }
    }

    /// <summary>
    /// Weight and bias gradients of <paramref name="count"/> consecutive images: <paramref name="weightGrad"/> (OutC x K)
    /// and <paramref name="biasGrad"/> (OutC, may be empty) are overwritten, or added to when <paramref name="accumulate"/>.
    /// Each gradient is the sum over the images' pixels in order (one FMA chain per weight).
    /// </summary>
    public void BackwardWeights(ReadOnlySpan<float> images, ReadOnlySpan<float> outGrads, int count, Span<float> weightGrad,
        Span<float> biasGrad, bool accumulate, Span<float> scratch) =>
        BackwardWeights(images, outGrads, count, weightGrad, biasGrad, accumulate, scratch, blocked: false);

    /// <summary>Floats of a weight gradient in the tiles' own layout: <c>[k][c]</c>, K rows of the padded channels.</summary>
    public int BlockedWeightGradFloats => Shape.K * _ocPad;

    /// <summary>
    /// <see cref="BackwardWeights(ReadOnlySpan{float}, ReadOnlySpan{float}, int, Span{float}, Span{float}, bool, Span{float})"/>
    /// into <paramref name="blockedGrad"/> in the tiles' layout (<see cref="BlockedWeightGradFloats"/>: term k of channel c
    /// at <c>k * 16 * blocks + c</c>, the padded channels' sums of zero too), not transposed into the weights' order: a
    /// chunk's partial gradient, summed with the others elementwise and transposed once (<see cref="TransposeWeightGrad"/>).
    /// </summary>
    public void BackwardWeightsBlocked(ReadOnlySpan<float> images, ReadOnlySpan<float> outGrads, int count, Span<float> blockedGrad,
        Span<float> biasGrad, Span<float> scratch)
    {
        if (blockedGrad.Length < BlockedWeightGradFloats) throw new ArgumentException($"the blocked gradient holds {blockedGrad.Length} floats, {BlockedWeightGradFloats} needed");
        BackwardWeights(images, outGrads, count, blockedGrad, biasGrad, false, scratch, blocked: true);
    }

    /// <summary>
    /// Terms [k0, k1) of a gradient in the tiles' layout (<paramref name="rows"/>: those terms' rows, from term k0) into
    /// the weights' order (OutC x K), terms [k0, k1) of each channel.
    /// </summary>
    public void TransposeWeightGrad(ReadOnlySpan<float> rows, int k0, int k1, Span<float> weightGrad)
    {
        var s = Shape;
        if (k0 >= k1) return;
        if (rows.Length < (k1 - k0) * _ocPad) throw new ArgumentException($"terms {k0}-{k1} of the blocked gradient need {(k1 - k0) * _ocPad} floats, got {rows.Length}");
        fixed (float* src = rows, dst = weightGrad)
            BlockedTiles.Transpose(src, _ocPad, k1 - k0, s.OutC, dst + k0, s.K);
    }

    private void BackwardWeights(ReadOnlySpan<float> images, ReadOnlySpan<float> outGrads, int count, Span<float> weightGrad,
        Span<float> biasGrad, bool accumulate, Span<float> scratch, bool blocked)
    {
        var s = Shape;
        if (scratch.Length < BackwardWeightsScratch) throw new ArgumentException($"scratch holds {scratch.Length} floats, the blocked weight gradient needs {BackwardWeightsScratch}");
        int pixels = s.OutPlane, ocp = _ocPad;
        fixed (float* img = images, dy = outGrads, dw = weightGrad, db = biasGrad, sc = scratch)
        fixed (int* off = _forwardOffsets)
        {
            float* x = sc;
            float* dyt = x + InputPhasesSize + Slack;
            // In the tiles' layout the sums go straight to the caller's gradient: no transpose.
            float* acc = blocked ? dw : dyt + (nint)pixels * ocp;
            float* bsum = dyt + (nint)pixels * ocp + (nint)s.K * ocp;
            if (s.OutC < ocp)
                for (int p = 0; p < pixels; p++) new Span<float>(dyt + (nint)p * ocp + s.OutC, ocp - s.OutC).Clear();
            new Span<float>(bsum, ocp).Clear();
            for (int n = 0; n < count; n++)
            {
                if (_inPlace) x = img + (nint)n * s.InSize;
                else PadPhases(img + (nint)n * s.InSize, x);
                BlockedTiles.Transpose(dy + (nint)n * s.OutSize, pixels, s.OutC, pixels, dyt, ocp);
                BlockedEpilogue.AddRows(dyt, pixels, ocp, bsum);
                for (int g = 0; g < _forward.Groups.Length; g++)
                {
                    var (c0, nb) = _forward.Groups[g];
                    foreach (var (j0, t) in _tapTiles)
                        BlockedTiles.G(t, nb, x, off + j0, s.OutH, s.OutW, _wq, dyt + c0, ocp, acc + (nint)j0 * ocp + c0, ocp, n > 0);
                }
            }
            // Into the weights' order (the tiles' layout is already the caller's gradient).
            if (!blocked)
            {
                if (!accumulate)
                    BlockedTiles.Transpose(acc, ocp, s.K, s.OutC, dw, s.K);
                else
                    for (int oc = 0; oc < s.OutC; oc++)
                        for (int k = 0; k < s.K; k++) dw[(nint)oc * s.K + k] += acc[(nint)k * ocp + oc];
            }
            if (!biasGrad.IsEmpty)
                for (int oc = 0; oc < s.OutC; oc++) db[oc] = accumulate ? db[oc] + bsum[oc] : bsum[oc];
        }
    }

    /// <summary>Packs the weights (OutC x InC x KH x KW) for the forward pass; once per weight update.</summary>
    public void PackWeights(ReadOnlySpan<float> weights, Span<float> packed) => _forward.Pack(weights, packed);

    /// <summary>Packs the weights for the input gradient (every phase's taps); once per weight update.</summary>
    public void PackWeightsTransposed(ReadOnlySpan<float> weights, Span<float> packed)
    {
        for (int p = 0; p < _phases.Length; p++)
            _phases[p]?.Pack(weights, packed.Slice(_phaseOffsets[p], _phaseOffsets[p + 1] - _phaseOffsets[p]));
    }
}
