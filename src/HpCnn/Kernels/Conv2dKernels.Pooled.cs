using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

// Convolution -> ReLU -> 2x2 max-pool in one pass: the kernels below produce each 2x2 window of the (clamped)
// convolution output in registers and write only its maximum and, for training, the index of the first maximum in
// window order (top-left, top-right, bottom-left, bottom-right) within the convolution's output plane: exactly what
// PoolKernels.MaxForward would have written. The full-resolution output is never stored.
public static partial class Conv2dKernels
{
    /// <summary>
    /// Winograd output transform with pooling: for tile (ty, tx) with ty &lt; ph and tx &lt; pw (the windows a floor-mode
    /// 2x2 pool keeps), pooled[ty * pw + tx] = max of the clamped 2x2 tile and argmax (may be empty) its index in the
    /// wo-wide convolution output plane, counted from <paramref name="firstPixel"/> (the plane pixel of tile row 0).
    /// </summary>
    public static void WinogradOutputPooled(ReadOnlySpan<float> m, int mStride, int t0, int tw, Span<float> pooled, Span<int> argmax,
        int ph, int pw, int wo, float bias, float lo, float hi, int firstPixel = 0)
    {
        bool keep = !argmax.IsEmpty;
        if (Engine.UseAvx2)
        {
            if (pw == tw)
            {
                // The kept tiles are the first ph rows of whole tile rows: contiguous in m, in pooled order. 8 at a time
                // across rows; only the last group is masked.
                OutputPooledRun(m, mStride, t0, ph * pw, pooled, argmax, keep, pw, wo, firstPixel, bias, lo, hi);
                return;
            }
            // A tile row has one more tile than the pool keeps (odd width): one run per row.
            for (int ty = 0; ty < ph; ty++)
                OutputPooledRun(m, mStride, t0 + ty * tw, pw, pooled.Slice(ty * pw, pw), keep ? argmax.Slice(ty * pw, pw) : default,
                    keep, pw, wo, firstPixel + 2 * ty * wo, bias, lo, hi);
            return;
        }
        Span<float> z = stackalloc float[8];
        for (int ty = 0; ty < ph; ty++)
            for (int tx = 0; tx < pw; tx++)
            {
                int t = t0 + ty * tw + tx;
                for (int c = 0; c < 4; c++)
                {
                    float m0 = m[c * mStride + t], m1 = m[(4 + c) * mStride + t], m2 = m[(8 + c) * mStride + t], m3 = m[(12 + c) * mStride + t];
                    z[c] = m0 + m1 + m2;
                    z[4 + c] = m1 - m2 - m3;
                }
                float y00 = MathF.Min(MathF.Max(z[0] + z[1] + z[2] + bias, lo), hi);
                float y01 = MathF.Min(MathF.Max(z[1] - z[2] - z[3] + bias, lo), hi);
                float y10 = MathF.Min(MathF.Max(z[4] + z[5] + z[6] + bias, lo), hi);
                float y11 = MathF.Min(MathF.Max(z[5] - z[6] - z[7] + bias, lo), hi);
                int b = firstPixel + 2 * ty * wo + 2 * tx;
                (float best, int at) = (y00, b);
                if (y01 > best) (best, at) = (y01, b + 1);
                if (y10 > best) (best, at) = (y10, b + wo);
                if (y11 > best) (best, at) = (y11, b + wo + 1);
                pooled[ty * pw + tx] = best;
                if (keep) argmax[ty * pw + tx] = at;
            }
    }

    /// <summary>
    /// <see cref="WinogradOutputPooled"/> for <paramref name="count"/> kept tiles that are contiguous in m from t0 and map
    /// one to one onto pooled values (whole tile rows of pw tiles, or part of one row). Tile q sits at row q / pw, column
    /// q % pw of the run; its window's top-left pixel is base0 + 2 (q / pw) wo + 2 (q % pw).
    /// </summary>
    private static unsafe void OutputPooledRun(ReadOnlySpan<float> m, int mStride, int t0, int count, Span<float> pooled, Span<int> argmax,
        bool keep, int pw, int wo, int base0, float bias, float lo, float hi)
    {
        if (pooled.Length < count || (keep && argmax.Length < count) || m.Length < 15 * mStride + t0 + count)
            throw new ArgumentException("pooled Winograd output: spans too short");
        var vb = Vector256.Create(bias); var vlo = Vector256.Create(lo); var vhi = Vector256.Create(hi);
        var mode = Clamp256.ModeOf(lo, hi);
        var vpw = Vector256.Create(pw);
        // Tile coordinates of the 8 lanes, advanced by 8 tiles per group (rows wrap at pw).
        var tx = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        var ty = Vector256<int>.Zero;
        Wrap(ref tx, ref ty, vpw);
        var step = Vector256.Create(8);
        fixed (float* mp = m, pp = pooled)
        fixed (int* ap = argmax)
        {
            for (int q = 0; q < count; q += 8)
            {
                float* s = mp + t0 + q;
                int n = count - q;
                Vector256<float> l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11, l12, l13, l14, l15;
                if (n >= 8)
                {
                    l0 = Avx.LoadVector256(s); l1 = Avx.LoadVector256(s + mStride); l2 = Avx.LoadVector256(s + 2 * mStride); l3 = Avx.LoadVector256(s + 3 * mStride);
                    l4 = Avx.LoadVector256(s + 4 * mStride); l5 = Avx.LoadVector256(s + 5 * mStride); l6 = Avx.LoadVector256(s + 6 * mStride); l7 = Avx.LoadVector256(s + 7 * mStride);
                    l8 = Avx.LoadVector256(s + 8 * mStride); l9 = Avx.LoadVector256(s + 9 * mStride); l10 = Avx.LoadVector256(s + 10 * mStride); l11 = Avx.LoadVector256(s + 11 * mStride);
                    l12 = Avx.LoadVector256(s + 12 * mStride); l13 = Avx.LoadVector256(s + 13 * mStride); l14 = Avx.LoadVector256(s + 14 * mStride); l15 = Avx.LoadVector256(s + 15 * mStride);
                }
                else
                {
                    var mk = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(n)).AsSingle();
                    l0 = Avx.MaskLoad(s, mk); l1 = Avx.MaskLoad(s + mStride, mk); l2 = Avx.MaskLoad(s + 2 * mStride, mk); l3 = Avx.MaskLoad(s + 3 * mStride, mk);
                    l4 = Avx.MaskLoad(s + 4 * mStride, mk); l5 = Avx.MaskLoad(s + 5 * mStride, mk); l6 = Avx.MaskLoad(s + 6 * mStride, mk); l7 = Avx.MaskLoad(s + 7 * mStride, mk);
                    l8 = Avx.MaskLoad(s + 8 * mStride, mk); l9 = Avx.MaskLoad(s + 9 * mStride, mk); l10 = Avx.MaskLoad(s + 10 * mStride, mk); l11 = Avx.MaskLoad(s + 11 * mStride, mk);
                    l12 = Avx.MaskLoad(s + 12 * mStride, mk); l13 = Avx.MaskLoad(s + 13 * mStride, mk); l14 = Avx.MaskLoad(s + 14 * mStride, mk); l15 = Avx.MaskLoad(s + 15 * mStride, mk);
                }
                var z0 = l0 + l4 + l8; var z4 = l4 - l8 - l12;
                var z1 = l1 + l5 + l9; var z5 = l5 - l9 - l13;
                var z2 = l2 + l6 + l10; var z6 = l6 - l10 - l14;
                var z3 = l3 + l7 + l11; var z7 = l7 - l11 - l15;
                var y00 = Clamp256.Apply(z0 + z1 + z2 + vb, vlo, vhi, mode);
                var y01 = Clamp256.Apply(z1 - z2 - z3 + vb, vlo, vhi, mode);
                var y10 = Clamp256.Apply(z4 + z5 + z6 + vb, vlo, vhi, mode);
                var y11 = Clamp256.Apply(z5 - z6 - z7 + vb, vlo, vhi, mode);
                var best = PoolKernels.WindowMax(y00, y01, y10, y11, mode);
                var idx = keep ? PoolKernels.WindowArgMax(y00, y01, y10, best, Vector256.Create(base0) + (ty * Vector256.Create(2 * wo)) + tx + tx, wo) : default;
                if (n >= 8)
                {
                    Avx.Store(pp + q, best);
                    if (keep) Avx.Store(ap + q, idx);
                }
                else
                {
                    var mk = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(n));
                    Masked.Store(pp + q, mk.AsSingle(), best);
                    if (keep) Masked.Store(ap + q, mk, idx);
                }
                tx += step;
                Wrap(ref tx, ref ty, vpw);
            }
        }
    }

    /// <summary>Moves lanes whose column passed the row's end to the next rows: tx -= pw, ty += 1 until tx &lt; pw.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Wrap(ref Vector256<int> tx, ref Vector256<int> ty, Vector256<int> pw)
    {
        while (true)
        {
            var over = Vector256.GreaterThanOrEqual(tx, pw);
            if (over == Vector256<int>.Zero) return;
            tx -= pw & over;
            ty -= over; // over lanes are -1
        }
    }

    /// <summary>
    /// Direct convolution (few input channels, stride 1, 4 filters at a time) with pooling: each 2 x 8 block of a filter's
    /// clamped output becomes 4 pooled values (and their arg-max in the wo-wide output plane). outC must be a multiple of 4;
    /// only rows and columns a floor-mode 2x2 pool keeps are computed.
    /// </summary>
    public static void DirectForwardPooled(ReadOnlySpan<float> padded, int inC, int hp, int wp, ReadOnlySpan<float> weights, int outC, int kh, int kw,
        Span<float> pooled, Span<int> argmax, in GemmEpilogue epilogue, int oc0 = 0, int oc1 = int.MaxValue)
    {
        int ho = hp - kh + 1, wo = wp - kw + 1, ph = ho / 2, pw = wo / 2;
        oc1 = Math.Min(oc1, outC);
        if (outC % 4 != 0 || oc0 % 4 != 0 || oc1 % 4 != 0) throw new ArgumentException($"pooled direct convolution: {outC} filters is not a multiple of 4");
        if (padded.Length < inC * hp * wp + 16) throw new ArgumentException("pooled direct convolution: padded planes lack the read-ahead slack");
        if (pooled.Length < outC * ph * pw || (!argmax.IsEmpty && argmax.Length < outC * ph * pw)) throw new ArgumentException("pooled direct convolution: outputs too short");
        float lo = epilogue.IsActive ? epilogue.Low : float.NegativeInfinity, hi = epilogue.IsActive ? epilogue.High : float.PositiveInfinity;
        var bias = epilogue.Bias == BiasMode.PerRow ? epilogue.BiasValues.AsSpan(epilogue.BiasOffset, outC) : default;
        if (!Engine.UseAvx2)
        {
            DirectPooledScalar(padded, inC, hp, wp, weights, oc0, oc1, kh, kw, pooled, argmax, bias, lo, hi);
            return;
        }
        for (int oc = oc0; oc < oc1; oc += 4)
            if (Engine.UseAvx512)
                switch (Clamp256.ModeOf(lo, hi))
                {
                    case ClampMode.Relu: DirectPooledBlock4Avx512<ReluClamp>(padded, inC, hp, wp, weights, oc, kh, kw, pooled, argmax, bias, lo, hi, ph, pw, wo); break;
                    case ClampMode.None: DirectPooledBlock4Avx512<NoClamp>(padded, inC, hp, wp, weights, oc, kh, kw, pooled, argmax, bias, lo, hi, ph, pw, wo); break;
                    default: DirectPooledBlock4Avx512<FullClamp>(padded, inC, hp, wp, weights, oc, kh, kw, pooled, argmax, bias, lo, hi, ph, pw, wo); break;
                }
            else DirectPooledBlock4(padded, inC, hp, wp, weights, oc, kh, kw, pooled, argmax, bias, lo, hi, ph, pw, wo);
    }

    private static void DirectPooledScalar(ReadOnlySpan<float> padded, int inC, int hp, int wp, ReadOnlySpan<float> weights, int oc0, int oc1, int kh, int kw,
        Span<float> pooled, Span<int> argmax, ReadOnlySpan<float> bias, float lo, float hi)
    {
        int ho = hp - kh + 1, wo = wp - kw + 1, ph = ho / 2, pw = wo / 2;
        for (int oc = oc0; oc < oc1; oc++)
            for (int py = 0; py < ph; py++)
                for (int px = 0; px < pw; px++)
                {
                    float best = 0;
                    int at = -1;
                    for (int r = 0; r < 4; r++)
                    {
                        int y = 2 * py + r / 2, x = 2 * px + r % 2;
                        float acc = bias.IsEmpty ? 0f : bias[oc];
                        for (int ic = 0; ic < inC; ic++)
                            for (int ky = 0; ky < kh; ky++)
                                for (int kx = 0; kx < kw; kx++)
                                    acc += weights[((oc * inC + ic) * kh + ky) * kw + kx] * padded[(ic * hp + y + ky) * wp + x + kx];
                        acc = MathF.Min(MathF.Max(acc, lo), hi);
                        if (at < 0 || acc > best) { best = acc; at = y * wo + x; }
                    }
                    pooled[(oc * ph + py) * pw + px] = best;
                    if (!argmax.IsEmpty) argmax[(oc * ph + py) * pw + px] = at;
                }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DirectPooledBlock4(ReadOnlySpan<float> padded, int inC, int hp, int wp, ReadOnlySpan<float> weights, int oc, int kh, int kw,
        Span<float> pooled, Span<int> argmax, ReadOnlySpan<float> bias, float lo, float hi, int ph, int pw, int wo)
    {
        int taps = inC * kh * kw, pplane = ph * pw;
        bool keep = !argmax.IsEmpty;
        var vlo = Vector256.Create(lo);
        var vhi = Vector256.Create(hi);
        var mode = Clamp256.ModeOf(lo, hi);
        var split = Vector256.Create(0, 2, 4, 6, 1, 3, 5, 7); // even columns to the low half, odd to the high half
        var lanes4 = Vector128.Create(0, 1, 2, 3);
        Vector256<float> b0 = Vector256.Create(bias.IsEmpty ? 0f : bias[oc]), b1 = Vector256.Create(bias.IsEmpty ? 0f : bias[oc + 1]);
        Vector256<float> b2 = Vector256.Create(bias.IsEmpty ? 0f : bias[oc + 2]), b3 = Vector256.Create(bias.IsEmpty ? 0f : bias[oc + 3]);
        fixed (float* pp = padded, wptr = weights, op = pooled)
        fixed (int* ap = argmax)
        {
            float* w0 = wptr + oc * taps, w1 = w0 + taps, w2 = w1 + taps, w3 = w2 + taps;
            for (int py = 0; py < ph; py++)
            {
                int y = 2 * py;
                for (int x = 0; x < 2 * pw; x += 8)
                {
                    x = Masked.TailStart(x, 2 * pw); // even, so px is whole
                    Vector256<float> a00 = b0, a01 = b0, a10 = b1, a11 = b1, a20 = b2, a21 = b2, a30 = b3, a31 = b3;
                    int t = 0;
                    for (int ic = 0; ic < inC; ic++)
                        for (int ky = 0; ky < kh; ky++)
                        {
                            float* row = pp + (ic * hp + y + ky) * wp + x;
                            for (int kx = 0; kx < kw; kx++, t++)
                            {
                                var i0 = Avx.LoadVector256(row + kx);
                                var i1 = Avx.LoadVector256(row + wp + kx);
                                var c = Vector256.Create(w0[t]); a00 = Fma.MultiplyAdd(c, i0, a00); a01 = Fma.MultiplyAdd(c, i1, a01);
                                c = Vector256.Create(w1[t]); a10 = Fma.MultiplyAdd(c, i0, a10); a11 = Fma.MultiplyAdd(c, i1, a11);
                                c = Vector256.Create(w2[t]); a20 = Fma.MultiplyAdd(c, i0, a20); a21 = Fma.MultiplyAdd(c, i1, a21);
                                c = Vector256.Create(w3[t]); a30 = Fma.MultiplyAdd(c, i0, a30); a31 = Fma.MultiplyAdd(c, i1, a31);
                            }
                        }
                    int px = x / 2, n = Math.Min(4, pw - px);
                    var baseIdx = Vector128.Create(y * wo + x) + lanes4 + lanes4;
                    PoolBlock(a00, a01, vlo, vhi, mode, split, baseIdx, wo, n, op + (oc * ph + py) * pw + px, keep ? ap + (oc * ph + py) * pw + px : null);
                    PoolBlock(a10, a11, vlo, vhi, mode, split, baseIdx, wo, n, op + pplane + (oc * ph + py) * pw + px, keep ? ap + pplane + (oc * ph + py) * pw + px : null);
                    PoolBlock(a20, a21, vlo, vhi, mode, split, baseIdx, wo, n, op + 2 * pplane + (oc * ph + py) * pw + px, keep ? ap + 2 * pplane + (oc * ph + py) * pw + px : null);
                    PoolBlock(a30, a31, vlo, vhi, mode, split, baseIdx, wo, n, op + 3 * pplane + (oc * ph + py) * pw + px, keep ? ap + 3 * pplane + (oc * ph + py) * pw + px : null);
                }
            }
        }
    }

    /// <summary>
    /// <see cref="DirectPooledBlock4"/> with 16 columns a vector (2 x 16 blocks, 8 windows each): the same chains, the same
    /// window maxima and first-maximum arg-max, so the same bits; see <see cref="DirectBlock4Avx512"/> for why zmm.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DirectPooledBlock4Avx512<TMode>(ReadOnlySpan<float> padded, int inC, int hp, int wp, ReadOnlySpan<float> weights, int oc, int kh, int kw,
        Span<float> pooled, Span<int> argmax, ReadOnlySpan<float> bias, float lo, float hi, int ph, int pw, int wo) where TMode : struct, IClampMode
    {
        int taps = inC * kh * kw, pplane = ph * pw;
        bool keep = !argmax.IsEmpty;
        var vlo = Vector512.Create(lo);
        var vhi = Vector512.Create(hi);
        var mode = TMode.Mode; // a constant in each instantiation: the clamp's and the maxima's branches fold away
        var split = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15); // even columns low, odd high
        var lanes8 = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        Vector512<float> b0 = Vector512.Create(bias.IsEmpty ? 0f : bias[oc]), b1 = Vector512.Create(bias.IsEmpty ? 0f : bias[oc + 1]);
        Vector512<float> b2 = Vector512.Create(bias.IsEmpty ? 0f : bias[oc + 2]), b3 = Vector512.Create(bias.IsEmpty ? 0f : bias[oc + 3]);
        fixed (float* pp = padded, wptr = weights, op = pooled)
        fixed (int* ap = argmax)
        {
            float* w0 = wptr + oc * taps, w1 = w0 + taps, w2 = w1 + taps, w3 = w2 + taps;
            int py0 = 0;
            // Two pooled rows (four output rows) a block where there are: 16 chains, each tap's 4 weights loaded once for
            // 16 FMAs instead of 8. Measured alone this changed nothing (the FMA part was not the limit); the epilogue is
            // half the kernel's time (BENCHMARKS.md, Intel Xeon 2026-12-05 evening).
            for (; py0 + 1 < ph; py0 += 2)
            {
                int y = 2 * py0;
                for (int x = 0; x < 2 * pw; x += 16)
                {
                    Vector512<float> a00 = b0, a01 = b0, a02 = b0, a03 = b0, a10 = b1, a11 = b1, a12 = b1, a13 = b1;
                    Vector512<float> a20 = b2, a21 = b2, a22 = b2, a23 = b2, a30 = b3, a31 = b3, a32 = b3, a33 = b3;
                    int t = 0;
                    for (int ic = 0; ic < inC; ic++)
                        for (int ky = 0; ky < kh; ky++)
                        {
                            float* row = pp + (ic * hp + y + ky) * wp + x, row1 = row + wp, row2 = row1 + wp, row3 = row2 + wp;
                            for (int kx = 0; kx < kw; kx++, t++)
                            {
                                var i0 = Vector512.Load(row + kx);
                                var i1 = Vector512.Load(row1 + kx);
                                var i2 = Vector512.Load(row2 + kx);
                                var i3 = Vector512.Load(row3 + kx);
                                var c = Vector512.Create(w0[t]);
                                a00 = Avx512F.FusedMultiplyAdd(c, i0, a00); a01 = Avx512F.FusedMultiplyAdd(c, i1, a01);
                                a02 = Avx512F.FusedMultiplyAdd(c, i2, a02); a03 = Avx512F.FusedMultiplyAdd(c, i3, a03);
                                c = Vector512.Create(w1[t]);
                                a10 = Avx512F.FusedMultiplyAdd(c, i0, a10); a11 = Avx512F.FusedMultiplyAdd(c, i1, a11);
                                a12 = Avx512F.FusedMultiplyAdd(c, i2, a12); a13 = Avx512F.FusedMultiplyAdd(c, i3, a13);
                                c = Vector512.Create(w2[t]);
                                a20 = Avx512F.FusedMultiplyAdd(c, i0, a20); a21 = Avx512F.FusedMultiplyAdd(c, i1, a21);
                                a22 = Avx512F.FusedMultiplyAdd(c, i2, a22); a23 = Avx512F.FusedMultiplyAdd(c, i3, a23);
                                c = Vector512.Create(w3[t]);
                                a30 = Avx512F.FusedMultiplyAdd(c, i0, a30); a31 = Avx512F.FusedMultiplyAdd(c, i1, a31);
                                a32 = Avx512F.FusedMultiplyAdd(c, i2, a32); a33 = Avx512F.FusedMultiplyAdd(c, i3, a33);
                            }
                        }
                    int px = x / 2, n = Math.Min(8, pw - px);
                    var baseIdx = Vector256.Create(y * wo + x) + lanes8 + lanes8;
                    var store = Vector256.LessThan(lanes8, Vector256.Create(n));
                    var baseIdx1 = baseIdx + Vector256.Create(2 * wo);
                    int at = (oc * ph + py0) * pw + px, at1 = at + pw;
                    PoolBlock16(a00, a01, vlo, vhi, mode, split, baseIdx, wo, n, store, op + at, keep ? ap + at : null);
                    PoolBlock16(a02, a03, vlo, vhi, mode, split, baseIdx1, wo, n, store, op + at1, keep ? ap + at1 : null);
                    PoolBlock16(a10, a11, vlo, vhi, mode, split, baseIdx, wo, n, store, op + pplane + at, keep ? ap + pplane + at : null);
                    PoolBlock16(a12, a13, vlo, vhi, mode, split, baseIdx1, wo, n, store, op + pplane + at1, keep ? ap + pplane + at1 : null);
                    PoolBlock16(a20, a21, vlo, vhi, mode, split, baseIdx, wo, n, store, op + 2 * pplane + at, keep ? ap + 2 * pplane + at : null);
                    PoolBlock16(a22, a23, vlo, vhi, mode, split, baseIdx1, wo, n, store, op + 2 * pplane + at1, keep ? ap + 2 * pplane + at1 : null);
                    PoolBlock16(a30, a31, vlo, vhi, mode, split, baseIdx, wo, n, store, op + 3 * pplane + at, keep ? ap + 3 * pplane + at : null);
                    PoolBlock16(a32, a33, vlo, vhi, mode, split, baseIdx1, wo, n, store, op + 3 * pplane + at1, keep ? ap + 3 * pplane + at1 : null);
                }
            }
            for (int py = py0; py < ph; py++)
            {
                int y = 2 * py;
                for (int x = 0; x < 2 * pw; x += 16)
                {
                    Vector512<float> a00 = b0, a01 = b0, a10 = b1, a11 = b1, a20 = b2, a21 = b2, a30 = b3, a31 = b3;
                    int t = 0;
                    for (int ic = 0; ic < inC; ic++)
                        for (int ky = 0; ky < kh; ky++)
                        {
                            float* row = pp + (ic * hp + y + ky) * wp + x;
                            for (int kx = 0; kx < kw; kx++, t++)
                            {
                                var i0 = Vector512.Load(row + kx);
                                var i1 = Vector512.Load(row + wp + kx);
                                var c = Vector512.Create(w0[t]); a00 = Avx512F.FusedMultiplyAdd(c, i0, a00); a01 = Avx512F.FusedMultiplyAdd(c, i1, a01);
                                c = Vector512.Create(w1[t]); a10 = Avx512F.FusedMultiplyAdd(c, i0, a10); a11 = Avx512F.FusedMultiplyAdd(c, i1, a11);
                                c = Vector512.Create(w2[t]); a20 = Avx512F.FusedMultiplyAdd(c, i0, a20); a21 = Avx512F.FusedMultiplyAdd(c, i1, a21);
                                c = Vector512.Create(w3[t]); a30 = Avx512F.FusedMultiplyAdd(c, i0, a30); a31 = Avx512F.FusedMultiplyAdd(c, i1, a31);
                            }
                        }
                    int px = x / 2, n = Math.Min(8, pw - px);
                    var baseIdx = Vector256.Create(y * wo + x) + lanes8 + lanes8;
                    var store = Vector256.LessThan(lanes8, Vector256.Create(n));
                    int at = (oc * ph + py) * pw + px;
                    PoolBlock16(a00, a01, vlo, vhi, mode, split, baseIdx, wo, n, store, op + at, keep ? ap + at : null);
                    PoolBlock16(a10, a11, vlo, vhi, mode, split, baseIdx, wo, n, store, op + pplane + at, keep ? ap + pplane + at : null);
                    PoolBlock16(a20, a21, vlo, vhi, mode, split, baseIdx, wo, n, store, op + 2 * pplane + at, keep ? ap + 2 * pplane + at : null);
                    PoolBlock16(a30, a31, vlo, vhi, mode, split, baseIdx, wo, n, store, op + 3 * pplane + at, keep ? ap + 3 * pplane + at : null);
                }
            }
        }
    }

    /// <summary>A clamp mode fixed at compile time.</summary>
    private interface IClampMode { static abstract ClampMode Mode { get; } }
    private struct ReluClamp : IClampMode { public static ClampMode Mode => ClampMode.Relu; }
    private struct NoClamp : IClampMode { public static ClampMode Mode => ClampMode.None; }
    private struct FullClamp : IClampMode { public static ClampMode Mode => ClampMode.Full; }

    /// <summary><see cref="PoolBlock"/> for two rows of 16 outputs: 8 windows.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void PoolBlock16(Vector512<float> top, Vector512<float> bottom, Vector512<float> lo, Vector512<float> hi, ClampMode mode,
        Vector512<int> split, Vector256<int> baseIdx, int wo, int n, Vector256<int> keep, float* dst, int* idxDst)
    {
        var t = Avx512F.PermuteVar16x32(Clamp256.Apply(top, lo, hi, mode), split);
        var b = Avx512F.PermuteVar16x32(Clamp256.Apply(bottom, lo, hi, mode), split);
        Vector256<float> tl = t.GetLower(), tr = t.GetUpper(), bl = b.GetLower(), br = b.GetUpper();
        var best = PoolKernels.WindowMax(tl, tr, bl, br, mode);
        Put(dst, keep.AsSingle(), n, best);
        if (idxDst == null) return;
        var idx = PoolKernels.WindowArgMax(tl, tr, bl, best, baseIdx, wo);
        if (n == 8) Avx.Store(idxDst, idx);
        else Masked.Store(idxDst, keep, idx);
    }

    /// <summary>Clamps two rows of 8 outputs, pools them into 4 windows and stores the first n maxima (and arg-maxima).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void PoolBlock(Vector256<float> top, Vector256<float> bottom, Vector256<float> lo, Vector256<float> hi, ClampMode mode, Vector256<int> split,
        Vector128<int> baseIdx, int wo, int n, float* dst, int* idxDst)
    {
        var t = Avx2.PermuteVar8x32(Clamp(top, lo, hi, mode), split);
        var b = Avx2.PermuteVar8x32(Clamp(bottom, lo, hi, mode), split);
        Vector128<float> tl = t.GetLower(), tr = t.GetUpper(), bl = b.GetLower(), br = b.GetUpper();
        var best = PoolKernels.WindowMax(tl, tr, bl, br, mode);
        if (n == 4) Sse.Store(dst, best);
        else Masked.Store(dst, Vector128.LessThan(Vector128.Create(0, 1, 2, 3), Vector128.Create(n)).AsSingle(), best);
        if (idxDst == null) return;
        var idx = PoolKernels.WindowArgMax(tl, tr, bl, best, baseIdx, wo);
        if (n == 4) Sse2.Store(idxDst, idx);
        else Masked.Store(idxDst, Vector128.LessThan(Vector128.Create(0, 1, 2, 3), Vector128.Create(n)), idx);
    }
}
