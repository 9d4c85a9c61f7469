using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

// Direct convolution for few input channels (a first layer on gray or RGB images), stride 1, on zero-padded
// planes. With K = InC x KH x KW of 9 or 27, a GEMM formulation spends its time on packing and tile edges; here a
// register block of 4 output channels x 2 rows x 8 columns (8 accumulators) walks the kernel taps: per tap two
// input loads and four weight broadcasts feed eight FMAs. Bias and clamp are applied in registers.
public static partial class Conv2dKernels
{
    /// <summary>
    /// out[oc][y][x] = epilogue(sum over (ic, ky, kx) w[oc][ic][ky][kx] * padded[ic][y + ky][x + kx]) for one image.
    /// <paramref name="padded"/> holds inC planes of hp x wp (ho = hp - kh + 1, wo = wp - kw + 1 outputs) and must be
    /// readable 16 floats past its last plane.
    /// </summary>
    public static void DirectForward(ReadOnlySpan<float> padded, int inC, int hp, int wp, ReadOnlySpan<float> weights, int outC, int kh, int kw,
        Span<float> output, in GemmEpilogue epilogue, int oc0 = 0, int oc1 = int.MaxValue)
    {
        int ho = hp - kh + 1, wo = wp - kw + 1;
        oc1 = Math.Min(oc1, outC);
        if (padded.Length < inC * hp * wp + 16) throw new ArgumentException("direct convolution: padded planes lack the read-ahead slack");
        if (weights.Length < outC * inC * kh * kw || output.Length < outC * ho * wo) throw new ArgumentException("direct convolution: weights or output too short");
        float lo = epilogue.IsActive ? epilogue.Low : float.NegativeInfinity, hi = epilogue.IsActive ? epilogue.High : float.PositiveInfinity;
        var bias = epilogue.Bias == BiasMode.PerRow ? epilogue.BiasValues.AsSpan(epilogue.BiasOffset, outC) : default;
        int oc = oc0;
        if (Engine.UseAvx2)
        {
            for (; oc + 4 <= oc1; oc += 4)
                if (Engine.UseAvx512) DirectBlock4Avx512(padded, inC, hp, wp, weights, oc, kh, kw, output, ho, wo, bias, lo, hi);
                else DirectBlock4Avx2(padded, inC, hp, wp, weights, oc, kh, kw, output, ho, wo, bias, lo, hi);
            switch (oc1 - oc)
            {
                case 1: DirectRowsAvx2<OneChannel>(padded, inC, hp, wp, weights, oc, kh, kw, output, ho, wo, bias, lo, hi); break;
                case 2: DirectRowsAvx2<TwoChannels>(padded, inC, hp, wp, weights, oc, kh, kw, output, ho, wo, bias, lo, hi); break;
                case 3: DirectRowsAvx2<ThreeChannels>(padded, inC, hp, wp, weights, oc, kh, kw, output, ho, wo, bias, lo, hi); break;
            }
            oc = oc1;
        }
        for (; oc < oc1; oc++)
            for (int y = 0; y < ho; y++)
                for (int x = 0; x < wo; x++)
                {
                    float acc = bias.IsEmpty ? 0f : bias[oc];
                    for (int ic = 0; ic < inC; ic++)
                        for (int ky = 0; ky < kh; ky++)
                            for (int kx = 0; kx < kw; kx++)
                                acc += weights[((oc * inC + ic) * kh + ky) * kw + kx] * padded[(ic * hp + y + ky) * wp + x + kx];
                    output[(oc * ho + y) * wo + x] = MathF.Min(MathF.Max(acc, lo), hi);
                }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DirectBlock4Avx2(ReadOnlySpan<float> padded, int inC, int hp, int wp, ReadOnlySpan<float> weights, int oc, int kh, int kw,
        Span<float> output, int ho, int wo, ReadOnlySpan<float> bias, float lo, float hi)
    {
        int taps = inC * kh * kw, plane = ho * wo;
        var vlo = Vector256.Create(lo);
        var vhi = Vector256.Create(hi);
        var mode = Clamp256.ModeOf(lo, hi);
        var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        Vector256<float> b0 = Vector256.Create(bias.IsEmpty ? 0f : bias[oc]), b1 = Vector256.Create(bias.IsEmpty ? 0f : bias[oc + 1]);
        Vector256<float> b2 = Vector256.Create(bias.IsEmpty ? 0f : bias[oc + 2]), b3 = Vector256.Create(bias.IsEmpty ? 0f : bias[oc + 3]);
        fixed (float* pp = padded, wptr = weights, op = output)
        {
            float* w0 = wptr + oc * taps, w1 = w0 + taps, w2 = w1 + taps, w3 = w2 + taps;
            for (int y = 0; y < ho; y += 2)
            {
                bool two = y + 1 < ho;
                for (int x = 0; x < wo; x += 8)
                {
                    x = Masked.TailStart(x, wo);
                    Vector256<float> a00 = b0, a01 = b0, a10 = b1, a11 = b1, a20 = b2, a21 = b2, a30 = b3, a31 = b3;
                    int t = 0;
                    for (int ic = 0; ic < inC; ic++)
                        for (int ky = 0; ky < kh; ky++)
                        {
                            float* row = pp + (ic * hp + y + ky) * wp + x;
                            // The second output row reads one padded row further down (the same row when ho is odd,
                            // so nothing past the plane is read; its results are not stored).
                            float* row1 = two ? row + wp : row;
                            for (int kx = 0; kx < kw; kx++, t++)
                            {
                                var i0 = Avx.LoadVector256(row + kx);
                                var i1 = Avx.LoadVector256(row1 + kx);
                                var c = Vector256.Create(w0[t]); a00 = Fma.MultiplyAdd(c, i0, a00); a01 = Fma.MultiplyAdd(c, i1, a01);
                                c = Vector256.Create(w1[t]); a10 = Fma.MultiplyAdd(c, i0, a10); a11 = Fma.MultiplyAdd(c, i1, a11);
                                c = Vector256.Create(w2[t]); a20 = Fma.MultiplyAdd(c, i0, a20); a21 = Fma.MultiplyAdd(c, i1, a21);
                                c = Vector256.Create(w3[t]); a30 = Fma.MultiplyAdd(c, i0, a30); a31 = Fma.MultiplyAdd(c, i1, a31);
                            }
                        }
                    int n = Math.Min(8, wo - x);
                    float* o = op + oc * plane + y * wo + x;
                    if (n == 8)
                    {
                        Avx.Store(o, Clamp(a00, vlo, vhi, mode)); Avx.Store(o + plane, Clamp(a10, vlo, vhi, mode));
                        Avx.Store(o + 2 * plane, Clamp(a20, vlo, vhi, mode)); Avx.Store(o + 3 * plane, Clamp(a30, vlo, vhi, mode));
                        if (two)
                        {
                            Avx.Store(o + wo, Clamp(a01, vlo, vhi, mode)); Avx.Store(o + plane + wo, Clamp(a11, vlo, vhi, mode));
                            Avx.Store(o + 2 * plane + wo, Clamp(a21, vlo, vhi, mode)); Avx.Store(o + 3 * plane + wo, Clamp(a31, vlo, vhi, mode));
                        }
                    }
                    else
                    {
                        var m = Vector256.LessThan(lanes, Vector256.Create(n)).AsSingle();
                        Masked.Store(o, m, Clamp(a00, vlo, vhi, mode)); Masked.Store(o + plane, m, Clamp(a10, vlo, vhi, mode));
                        Masked.Store(o + 2 * plane, m, Clamp(a20, vlo, vhi, mode)); Masked.Store(o + 3 * plane, m, Clamp(a30, vlo, vhi, mode));
                        if (two)
                        {
                            Masked.Store(o + wo, m, Clamp(a01, vlo, vhi, mode)); Masked.Store(o + plane + wo, m, Clamp(a11, vlo, vhi, mode));
                            Masked.Store(o + 2 * plane + wo, m, Clamp(a21, vlo, vhi, mode)); Masked.Store(o + 3 * plane + wo, m, Clamp(a31, vlo, vhi, mode));
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// <see cref="DirectBlock4Avx2"/> with 16 columns a vector: the same eight FMA chains per block, but on a core whose zmm
    /// FMA is one a cycle (Zen 4) eight chains of latency four keep it busy, where eight ymm chains at two a cycle left it
    /// waiting; and half the loads and broadcasts per output. Each output is the same chain over the taps, so the same bits.
    /// Reads up to 15 floats past a row's last output column (within the planes' 16-float slack).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DirectBlock4Avx512(ReadOnlySpan<float> padded, int inC, int hp, int wp, ReadOnlySpan<float> weights, int oc, int kh, int kw,
        Span<float> output, int ho, int wo, ReadOnlySpan<float> bias, float lo, float hi)
    {
        int taps = inC * kh * kw, plane = ho * wo;
        var vlo = Vector512.Create(lo);
        var vhi = Vector512.Create(hi);
        var lanes = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        Vector512<float> b0 = Vector512.Create(bias.IsEmpty ? 0f : bias[oc]), b1 = Vector512.Create(bias.IsEmpty ? 0f : bias[oc + 1]);
        Vector512<float> b2 = Vector512.Create(bias.IsEmpty ? 0f : bias[oc + 2]), b3 = Vector512.Create(bias.IsEmpty ? 0f : bias[oc + 3]);
        fixed (float* pp = padded, wptr = weights, op = output)
        {
            float* w0 = wptr + oc * taps, w1 = w0 + taps, w2 = w1 + taps, w3 = w2 + taps;
            for (int y = 0; y < ho; y += 2)
            {
                bool two = y + 1 < ho;
                for (int x = 0; x < wo; x += 16)
                {
                    Vector512<float> a00 = b0, a01 = b0, a10 = b1, a11 = b1, a20 = b2, a21 = b2, a30 = b3, a31 = b3;
                    int t = 0;
                    for (int ic = 0; ic < inC; ic++)
                        for (int ky = 0; ky < kh; ky++)
                        {
                            float* row = pp + (ic * hp + y + ky) * wp + x;
                            float* row1 = two ? row + wp : row; // as in the AVX2 block: an odd last row reads its own row again
                            for (int kx = 0; kx < kw; kx++, t++)
                            {
                                var i0 = Vector512.Load(row + kx);
                                var i1 = Vector512.Load(row1 + kx);
                                var c = Vector512.Create(w0[t]); a00 = Avx512F.FusedMultiplyAdd(c, i0, a00); a01 = Avx512F.FusedMultiplyAdd(c, i1, a01);
                                c = Vector512.Create(w1[t]); a10 = Avx512F.FusedMultiplyAdd(c, i0, a10); a11 = Avx512F.FusedMultiplyAdd(c, i1, a11);
                                c = Vector512.Create(w2[t]); a20 = Avx512F.FusedMultiplyAdd(c, i0, a20); a21 = Avx512F.FusedMultiplyAdd(c, i1, a21);
                                c = Vector512.Create(w3[t]); a30 = Avx512F.FusedMultiplyAdd(c, i0, a30); a31 = Avx512F.FusedMultiplyAdd(c, i1, a31);
                            }
                        }
                    int n = Math.Min(16, wo - x);
                    float* o = op + oc * plane + y * wo + x;
                    var m = Vector512.LessThan(lanes, Vector512.Create(n)).AsSingle();
                    Store16(o, m, n, Clamp16(a00, vlo, vhi)); Store16(o + plane, m, n, Clamp16(a10, vlo, vhi));
                    Store16(o + 2 * plane, m, n, Clamp16(a20, vlo, vhi)); Store16(o + 3 * plane, m, n, Clamp16(a30, vlo, vhi));
                    if (two)
                    {
                        Store16(o + wo, m, n, Clamp16(a01, vlo, vhi)); Store16(o + plane + wo, m, n, Clamp16(a11, vlo, vhi));
                        Store16(o + 2 * plane + wo, m, n, Clamp16(a21, vlo, vhi)); Store16(o + 3 * plane + wo, m, n, Clamp16(a31, vlo, vhi));
                    }
                }
            }
        }

        static Vector512<float> Clamp16(Vector512<float> v, Vector512<float> lo, Vector512<float> hi) => Vector512.Min(Vector512.Max(v, lo), hi);

        static void Store16(float* p, Vector512<float> mask, int n, Vector512<float> v)
        {
            if (n == 16) Vector512.Store(v, p);
            else Avx512F.MaskStore(p, mask, v);
        }
    }

    /// <summary>A number of output channels fixed at compile time (the JIT drops the other channels' code).</summary>
    private interface IChannelCount { static abstract int Count { get; } }
    private struct OneChannel : IChannelCount { public static int Count => 1; }
    private struct TwoChannels : IChannelCount { public static int Count => 2; }
    private struct ThreeChannels : IChannelCount { public static int Count => 3; }

    /// <summary>
    /// The 1-3 output channels left after the 4-channel blocks (all of a layer of 1-3 filters): a block of 4 rows x 8
    /// columns per channel, so 4-12 FMA chains run side by side (one channel's 2 rows had 2 chains, and the FMA units
    /// waited on their latency). Each output is the same chain as in the 4-channel blocks: the bias, then the taps in
    /// order. Rows past the plane's last re-read that last row (nothing is read past the padded planes' slack) and are
    /// not stored.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DirectRowsAvx2<TC>(ReadOnlySpan<float> padded, int inC, int hp, int wp, ReadOnlySpan<float> weights, int oc, int kh, int kw,
        Span<float> output, int ho, int wo, ReadOnlySpan<float> bias, float lo, float hi) where TC : struct, IChannelCount
    {
        int taps = inC * kh * kw, plane = ho * wo;
        var vlo = Vector256.Create(lo);
        var vhi = Vector256.Create(hi);
        var mode = Clamp256.ModeOf(lo, hi);
        var b0 = Vector256.Create(bias.IsEmpty ? 0f : bias[oc]);
        var b1 = TC.Count > 1 ? Vector256.Create(bias.IsEmpty ? 0f : bias[oc + 1]) : default;
        var b2 = TC.Count > 2 ? Vector256.Create(bias.IsEmpty ? 0f : bias[oc + 2]) : default;
        // One channel: where each tap reads, from a band's first row (one loop over the taps, not three nested ones).
        int* toff = stackalloc int[TC.Count == 1 && taps <= MaxOneTaps ? taps : 0];
        if (TC.Count == 1 && taps <= MaxOneTaps)
            for (int ic = 0, t = 0; ic < inC; ic++)
                for (int ky = 0; ky < kh; ky++)
                    for (int kx = 0; kx < kw; kx++) toff[t++] = (ic * hp + ky) * wp + kx;
        fixed (float* pp = padded, wptr = weights, op = output)
        {
            float* w0 = wptr + oc * taps, w1 = w0 + taps, w2 = w1 + taps;
            for (int y = 0; y < ho; y += 4)
            {
                int rows = Math.Min(4, ho - y);
                nint d1 = rows > 1 ? wp : 0, d2 = rows > 2 ? 2 * wp : d1, d3 = rows > 3 ? 3 * wp : d2;
                int x0 = 0;
                // One filter over one plane, 3x3, in zmm: two 16-column blocks at once while 17 or more columns remain (a
                // 28-column row in one step).
                if (TC.Count == 1 && inC == 1 && kh == 3 && kw == 3 && Engine.UseAvx512)
                    for (; wo - x0 > 16; x0 += 32)
                        DirectRowsOne3x3Avx512(pp + y * wp, w0, wp, rows, x0, Math.Min(x0 + 16, wo - 16), Vector512.Create(b0.ToScalar()), lo, hi, mode, op + oc * plane + y * wo, wo);
                // One channel: two column blocks at once (8 chains, not 4) while 9 or more columns remain.
                if (TC.Count == 1 && taps <= MaxOneTaps)
                    for (; wo - x0 > 8; x0 += 16)
                        DirectRowsOneAvx2(pp + y * wp, toff, taps, w0, wp, rows, x0, Math.Min(x0 + 8, wo - 8), b0, vlo, vhi, mode, op + oc * plane + y * wo, wo);
                for (int x = x0; x < wo; x += 8)
                {
                    x = Masked.TailStart(x, wo);
                    Vector256<float> a00 = b0, a01 = b0, a02 = b0, a03 = b0, a10 = b1, a11 = b1, a12 = b1, a13 = b1, a20 = b2, a21 = b2, a22 = b2, a23 = b2;
                    int t = 0;
                    for (int ic = 0; ic < inC; ic++)
                        for (int ky = 0; ky < kh; ky++)
                        {
                            float* row = pp + (ic * hp + y + ky) * wp + x;
                            for (int kx = 0; kx < kw; kx++, t++)
                            {
                                var i0 = Avx.LoadVector256(row + kx);
                                var i1 = Avx.LoadVector256(row + d1 + kx);
                                var i2 = Avx.LoadVector256(row + d2 + kx);
                                var i3 = Avx.LoadVector256(row + d3 + kx);
                                var c = Vector256.Create(w0[t]);
                                a00 = Fma.MultiplyAdd(c, i0, a00); a01 = Fma.MultiplyAdd(c, i1, a01);
                                a02 = Fma.MultiplyAdd(c, i2, a02); a03 = Fma.MultiplyAdd(c, i3, a03);
                                if (TC.Count > 1)
                                {
                                    c = Vector256.Create(w1[t]);
                                    a10 = Fma.MultiplyAdd(c, i0, a10); a11 = Fma.MultiplyAdd(c, i1, a11);
                                    a12 = Fma.MultiplyAdd(c, i2, a12); a13 = Fma.MultiplyAdd(c, i3, a13);
                                }
                                if (TC.Count > 2)
                                {
                                    c = Vector256.Create(w2[t]);
                                    a20 = Fma.MultiplyAdd(c, i0, a20); a21 = Fma.MultiplyAdd(c, i1, a21);
                                    a22 = Fma.MultiplyAdd(c, i2, a22); a23 = Fma.MultiplyAdd(c, i3, a23);
                                }
                            }
                        }
                    int n = Math.Min(8, wo - x);
                    float* o = op + oc * plane + y * wo + x;
                    StoreRows(o, wo, rows, n, Clamp(a00, vlo, vhi, mode), Clamp(a01, vlo, vhi, mode), Clamp(a02, vlo, vhi, mode), Clamp(a03, vlo, vhi, mode));
                    if (TC.Count > 1)
                        StoreRows(o + plane, wo, rows, n, Clamp(a10, vlo, vhi, mode), Clamp(a11, vlo, vhi, mode), Clamp(a12, vlo, vhi, mode), Clamp(a13, vlo, vhi, mode));
                    if (TC.Count > 2)
                        StoreRows(o + 2 * plane, wo, rows, n, Clamp(a20, vlo, vhi, mode), Clamp(a21, vlo, vhi, mode), Clamp(a22, vlo, vhi, mode), Clamp(a23, vlo, vhi, mode));
                }
            }
        }
    }

    /// <summary>Most taps the one-channel blocks take (their offsets sit on the stack).</summary>
    private const int MaxOneTaps = 256;

    /// <summary>
    /// One output channel, up to 4 rows from <paramref name="band"/> (the padded input at the band's first output row) at
    /// two 8-column blocks starting at <paramref name="xa"/> and <paramref name="xb"/> (the second may overlap the first at
    /// a row's end: the same outputs again, the same bits): 8 FMA chains where one block had 4, each output the bias then
    /// the taps in order, tap t reading at <paramref name="toff"/>[t]. A 1-channel 3x3 layer on 28 x 28 (the seed
    /// tutorial's) waited on the FMA latency with 4.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DirectRowsOneAvx2(float* band, int* toff, int taps, float* w0, nint wp, int rows, int xa, int xb,
        Vector256<float> bias, Vector256<float> vlo, Vector256<float> vhi, ClampMode mode, float* o, int wo)
    {
        nint d1 = rows > 1 ? wp : 0, d2 = rows > 2 ? 2 * wp : d1, d3 = rows > 3 ? 3 * wp : d2, db = xb - xa;
        Vector256<float> a0 = bias, a1 = bias, a2 = bias, a3 = bias, e0 = bias, e1 = bias, e2 = bias, e3 = bias;
        float* start = band + xa;
        for (int t = 0; t < taps; t++)
        {
            float* s = start + toff[t];
            var c = Vector256.Create(w0[t]);
            a0 = Fma.MultiplyAdd(c, Avx.LoadVector256(s), a0);
            a1 = Fma.MultiplyAdd(c, Avx.LoadVector256(s + d1), a1);
            a2 = Fma.MultiplyAdd(c, Avx.LoadVector256(s + d2), a2);
            a3 = Fma.MultiplyAdd(c, Avx.LoadVector256(s + d3), a3);
            s += db;
            e0 = Fma.MultiplyAdd(c, Avx.LoadVector256(s), e0);
            e1 = Fma.MultiplyAdd(c, Avx.LoadVector256(s + d1), e1);
            e2 = Fma.MultiplyAdd(c, Avx.LoadVector256(s + d2), e2);
            e3 = Fma.MultiplyAdd(c, Avx.LoadVector256(s + d3), e3);
        }
        StoreRows(o + xa, wo, rows, 8, Clamp(a0, vlo, vhi, mode), Clamp(a1, vlo, vhi, mode), Clamp(a2, vlo, vhi, mode), Clamp(a3, vlo, vhi, mode));
        StoreRows(o + xb, wo, rows, 8, Clamp(e0, vlo, vhi, mode), Clamp(e1, vlo, vhi, mode), Clamp(e2, vlo, vhi, mode), Clamp(e3, vlo, vhi, mode));
    }

    /// <summary>
    /// <see cref="DirectRowsOneAvx2"/> in zmm (two 16-column blocks) for one input plane and a 3x3 kernel (the seed
    /// tutorial's layer): each input row is loaded once per block and shifted in registers (valignd) for the kernel's
    /// three columns, where loading every tap's values (across cache lines) bound a plain zmm loop: 542 -> 311 ns for
    /// the loads, 239 with the shifts (28 x 28, one image). Input row i feeds output rows r = i - 2 .. i, output row r
    /// with kernel row i - r, so each output still takes the bias, then the taps in order: the same chains, the same
    /// bits. Reads up to 14 floats past the band's last input row (DirectForward's 16 floats of slack).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DirectRowsOne3x3Avx512(float* band, float* w, nint wp, int rows, int xa, int xb,
        Vector512<float> bias, float lo, float hi, ClampMode mode, float* o, int wo)
    {
        Vector512<float> a0 = bias, a1 = bias, a2 = bias, a3 = bias, e0 = bias, e1 = bias, e2 = bias, e3 = bias;
        var w00 = Vector512.Create(w[0]); var w01 = Vector512.Create(w[1]); var w02 = Vector512.Create(w[2]);
        var w10 = Vector512.Create(w[3]); var w11 = Vector512.Create(w[4]); var w12 = Vector512.Create(w[5]);
        var w20 = Vector512.Create(w[6]); var w21 = Vector512.Create(w[7]); var w22 = Vector512.Create(w[8]);
        for (int i = 0; i < rows + 2; i++)
        {
            float* row = band + i * wp;
            var l = Vector512.Load(row + xa).AsUInt32();
            var r = Vector512.Load(row + xa + 16).AsUInt32();
            var p0 = l.AsSingle();
            var p1 = Avx512F.AlignRight32(r, l, 1).AsSingle();
            var p2 = Avx512F.AlignRight32(r, l, 2).AsSingle();
            l = Vector512.Load(row + xb).AsUInt32();
            r = Vector512.Load(row + xb + 16).AsUInt32();
            var q0 = l.AsSingle();
            var q1 = Avx512F.AlignRight32(r, l, 1).AsSingle();
            var q2 = Avx512F.AlignRight32(r, l, 2).AsSingle();
            // Output row i - k takes kernel row k from this input row, in the order its chain needs (k = 0 first).
            switch (i)
            {
                case 0:
                    Row3(ref a0, ref e0, w00, w01, w02, p0, p1, p2, q0, q1, q2);
                    break;
                case 1:
                    Row3(ref a0, ref e0, w10, w11, w12, p0, p1, p2, q0, q1, q2);
                    if (rows > 1) Row3(ref a1, ref e1, w00, w01, w02, p0, p1, p2, q0, q1, q2);
                    break;
                case 2:
                    Row3(ref a0, ref e0, w20, w21, w22, p0, p1, p2, q0, q1, q2);
                    if (rows > 1) Row3(ref a1, ref e1, w10, w11, w12, p0, p1, p2, q0, q1, q2);
                    if (rows > 2) Row3(ref a2, ref e2, w00, w01, w02, p0, p1, p2, q0, q1, q2);
                    break;
                case 3:
                    Row3(ref a1, ref e1, w20, w21, w22, p0, p1, p2, q0, q1, q2);
                    if (rows > 2) Row3(ref a2, ref e2, w10, w11, w12, p0, p1, p2, q0, q1, q2);
                    if (rows > 3) Row3(ref a3, ref e3, w00, w01, w02, p0, p1, p2, q0, q1, q2);
                    break;
                case 4:
                    Row3(ref a2, ref e2, w20, w21, w22, p0, p1, p2, q0, q1, q2);
                    if (rows > 3) Row3(ref a3, ref e3, w10, w11, w12, p0, p1, p2, q0, q1, q2);
                    break;
                default:
                    Row3(ref a3, ref e3, w20, w21, w22, p0, p1, p2, q0, q1, q2);
                    break;
            }
        }
        var vlo = Vector512.Create(lo);
        var vhi = Vector512.Create(hi);
        float* oa = o + xa, ob = o + xb;
        Clamp256.Apply(a0, vlo, vhi, mode).Store(oa);
        Clamp256.Apply(e0, vlo, vhi, mode).Store(ob);
        if (rows > 1) { Clamp256.Apply(a1, vlo, vhi, mode).Store(oa + wo); Clamp256.Apply(e1, vlo, vhi, mode).Store(ob + wo); }
        if (rows > 2) { Clamp256.Apply(a2, vlo, vhi, mode).Store(oa + 2 * wo); Clamp256.Apply(e2, vlo, vhi, mode).Store(ob + 2 * wo); }
        if (rows > 3) { Clamp256.Apply(a3, vlo, vhi, mode).Store(oa + 3 * wo); Clamp256.Apply(e3, vlo, vhi, mode).Store(ob + 3 * wo); }
    }

    /// <summary>One kernel row's three taps into an output row of both blocks, in tap order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Row3(ref Vector512<float> a, ref Vector512<float> e, Vector512<float> c0, Vector512<float> c1, Vector512<float> c2,
        Vector512<float> p0, Vector512<float> p1, Vector512<float> p2, Vector512<float> q0, Vector512<float> q1, Vector512<float> q2)
    {
        a = Avx512F.FusedMultiplyAdd(c0, p0, a); a = Avx512F.FusedMultiplyAdd(c1, p1, a); a = Avx512F.FusedMultiplyAdd(c2, p2, a);
        e = Avx512F.FusedMultiplyAdd(c0, q0, e); e = Avx512F.FusedMultiplyAdd(c1, q1, e); e = Avx512F.FusedMultiplyAdd(c2, q2, e);
    }

    /// <summary>The first <paramref name="rows"/> of four rows of <paramref name="n"/> columns (a whole vector plainly: AVX's masked store is slow on AMD).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreRows(float* o, int pitch, int rows, int n, Vector256<float> r0, Vector256<float> r1, Vector256<float> r2, Vector256<float> r3)
    {
        if (n == 8)
        {
            Avx.Store(o, r0);
            if (rows > 1) Avx.Store(o + pitch, r1);
            if (rows > 2) Avx.Store(o + 2 * pitch, r2);
            if (rows > 3) Avx.Store(o + 3 * pitch, r3);
            return;
        }
        var m = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(n)).AsSingle();
        Masked.Store(o, m, r0);
        if (rows > 1) Masked.Store(o + pitch, m, r1);
        if (rows > 2) Masked.Store(o + 2 * pitch, m, r2);
        if (rows > 3) Masked.Store(o + 3 * pitch, m, r3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Clamp(Vector256<float> v, Vector256<float> lo, Vector256<float> hi, ClampMode mode) => Clamp256.Apply(v, lo, hi, mode);
}
