using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

/// <summary>Geometry of 2-D pooling on C planes of InH x InW: window KH x KW, strides, per-side padding.</summary>
public readonly record struct Pool2dShape(int C, int InH, int InW, int KH, int KW, int StrideH, int StrideW,
    int PadTop = 0, int PadLeft = 0, int PadBottom = 0, int PadRight = 0)
{
    public int OutH => (InH + PadTop + PadBottom - KH) / StrideH + 1;
    public int OutW => (InW + PadLeft + PadRight - KW) / StrideW + 1;
    public int InPlane => InH * InW;
    public int OutPlane => OutH * OutW;

    /// <summary>One unpadded window over the whole input plane (a global pool): a 1 x 1 output.</summary>
    public bool IsWholePlane => KH == InH && KW == InW && PadTop == 0 && PadLeft == 0 && PadBottom == 0 && PadRight == 0;

    /// <summary>The common 2x2, stride 2, unpadded case that has a vector path.</summary>
    public bool IsTwoByTwo => KH == 2 && KW == 2 && StrideH == 2 && StrideW == 2 && PadTop == 0 && PadLeft == 0 && PadBottom == 0 && PadRight == 0;

    public void Validate()
    {
        if (KH <= 0 || KW <= 0 || StrideH <= 0 || StrideW <= 0)
            throw new ArgumentException($"kernel and stride must be positive, got kernel {KH}x{KW}, stride {StrideH}x{StrideW}");
        // At most half the window, as PyTorch requires: more only adds windows that see padding alone (a 256x256 window
        // with 255 padding is 15 s per 4x4 image of nothing real).
        if (PadTop < 0 || PadLeft < 0 || PadBottom < 0 || PadRight < 0 || PadTop > KH / 2 || PadBottom > KH / 2 || PadLeft > KW / 2 || PadRight > KW / 2)
            throw new ArgumentException($"padding ({PadTop},{PadLeft},{PadBottom},{PadRight}) must be non-negative and at most half the {KH}x{KW} window");
        if (InH + PadTop + PadBottom < KH || InW + PadLeft + PadRight < KW)
            throw new ArgumentException($"a {KH}x{KW} window does not fit the {InH}x{InW} input");
    }
}

/// <summary>
/// Max and average pooling over the planes of one image (C x InH x InW -> C x OutH x OutW).
/// Max pooling records, per output, the index of the winning input inside its plane (first maximum);
/// the backward pass scatters through it. Average pooling divides by KH x KW (padding counts as zeros,
/// PyTorch's default count_include_pad).
/// </summary>
public static class PoolKernels
{
    /// <summary>
    /// Each lane's 2x2 window maximum as the scalar pool takes it: max(max(top left, top right), max(bottom left,
    /// bottom right)), the first NaN winning (<see cref="Clamp256.Max(Vector256{float}, Vector256{float}, ClampMode)"/>).
    /// Every vector pool and fused pooled forward takes its windows through here and <see cref="WindowArgMax(Vector256{float}, Vector256{float}, Vector256{float}, Vector256{float}, Vector256{int}, int)"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> WindowMax(Vector256<float> tl, Vector256<float> tr, Vector256<float> bl, Vector256<float> br, ClampMode mode) =>
        Clamp256.Max(Clamp256.Max(tl, tr, mode), Clamp256.Max(bl, br, mode), mode);

    /// <inheritdoc cref="WindowMax(Vector256{float}, Vector256{float}, Vector256{float}, Vector256{float}, ClampMode)"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<float> WindowMax(Vector128<float> tl, Vector128<float> tr, Vector128<float> bl, Vector128<float> br, ClampMode mode) =>
        Clamp256.Max(Clamp256.Max(tl, tr, mode), Clamp256.Max(bl, br, mode), mode);

    /// <summary>
    /// The index of each lane's window maximum <paramref name="best"/>: the first of top left, top right, bottom left
    /// that equals it, else the bottom right (ties go to the first in window order, as in the scalar pool), from the
    /// top-left pixel's index and the row width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> WindowArgMax(Vector256<float> tl, Vector256<float> tr, Vector256<float> bl, Vector256<float> best,
        Vector256<int> topLeft, int width)
    {
        var idx = topLeft + Vector256.Create(width + 1);
        idx = Vector256.ConditionalSelect(Vector256.Equals(bl, best).AsInt32(), topLeft + Vector256.Create(width), idx);
        idx = Vector256.ConditionalSelect(Vector256.Equals(tr, best).AsInt32(), topLeft + Vector256<int>.One, idx);
        return Vector256.ConditionalSelect(Vector256.Equals(tl, best).AsInt32(), topLeft, idx);
    }

    /// <inheritdoc cref="WindowArgMax(Vector256{float}, Vector256{float}, Vector256{float}, Vector256{float}, Vector256{int}, int)"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector128<int> WindowArgMax(Vector128<float> tl, Vector128<float> tr, Vector128<float> bl, Vector128<float> best,
        Vector128<int> topLeft, int width) =>
        // In the lower half of a 256-bit vector (the upper lanes are not looked at): one copy of the select chain.
        WindowArgMax(tl.ToVector256Unsafe(), tr.ToVector256Unsafe(), bl.ToVector256Unsafe(), best.ToVector256Unsafe(),
            topLeft.ToVector256Unsafe(), width).GetLower();

    /// <summary>Max pooling of planes [c0, c1). <paramref name="argmax"/> may be empty (inference).</summary>
    public static void MaxForward(in Pool2dShape s, ReadOnlySpan<float> input, Span<float> output, Span<int> argmax, int c0, int c1)
    {
        bool keep = !argmax.IsEmpty;
        for (int c = c0; c < c1; c++)
        {
            var inP = input.Slice(c * s.InPlane, s.InPlane);
            var outP = output.Slice(c * s.OutPlane, s.OutPlane);
            var idxP = keep ? argmax.Slice(c * s.OutPlane, s.OutPlane) : default;
            if (s.IsTwoByTwo && Engine.UseAvx2) MaxPlane2x2Avx2(s, inP, outP, idxP, keep);
            else MaxPlaneScalar(s, inP, outP, idxP, keep, 0, s.OutH);
        }
    }

    /// <summary>The reference max pooling of one plane (rows [y0, y1) of the output).</summary>
    public static void MaxPlaneScalar(in Pool2dShape s, ReadOnlySpan<float> inP, Span<float> outP, Span<int> idxP, bool keep, int y0, int y1)
    {
        for (int oy = y0; oy < y1; oy++)
            for (int ox = 0; ox < s.OutW; ox++)
            {
                float best = float.NegativeInfinity;
                int bestIdx = -1;
                for (int ky = 0; ky < s.KH; ky++)
                {
                    int iy = oy * s.StrideH + ky - s.PadTop;
                    if ((uint)iy >= (uint)s.InH) continue;
                    for (int kx = 0; kx < s.KW; kx++)
                    {
                        int ix = ox * s.StrideW + kx - s.PadLeft;
                        if ((uint)ix >= (uint)s.InW) continue;
                        float v = inP[iy * s.InW + ix];
                        if (v > best || bestIdx < 0) { best = v; bestIdx = iy * s.InW + ix; }
                    }
                }
                outP[oy * s.OutW + ox] = best;
                if (keep) idxP[oy * s.OutW + ox] = bestIdx;
            }
    }

    /// <summary>
    /// 2x2 stride-2 max pooling of one plane, 8 outputs per step: the four window values come from
    /// deinterleaving 16 inputs of each of the two rows; row tails use masked loads and stores, so nothing
    /// outside the plane is read or written. Ties go to the first maximum in row-major window order.
    /// </summary>
    private static unsafe void MaxPlane2x2Avx2(in Pool2dShape s, ReadOnlySpan<float> inP, Span<float> outP, Span<int> idxP, bool keep)
    {
        int w = s.InW, ow = s.OutW;
        var lane2 = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
        fixed (float* ip = inP, op = outP)
        fixed (int* xp = idxP)
        {
            for (int oy = 0; oy < s.OutH; oy++)
            {
                float* r0 = ip + 2 * oy * w;
                float* r1 = r0 + w;
                for (int ox = 0; ox < ow; ox += 8)
                {
                    ox = Masked.TailStart(ox, ow);
                    int n = Math.Min(8, ow - ox);
                    LoadWindowRows(r0 + 2 * ox, r1 + 2 * ox, n, out var a0, out var a1, out var b0, out var b1);
                    var tl = Deinterleave(a0, a1, even: true);
                    var tr = Deinterleave(a0, a1, even: false);
                    var bl = Deinterleave(b0, b1, even: true);
                    var br = Deinterleave(b0, b1, even: false);
                    var m = WindowMax(tl, tr, bl, br, ClampMode.None);
                    var idx = keep ? WindowArgMax(tl, tr, bl, m, Vector256.Create(2 * oy * w + 2 * ox) + lane2, w) : default;
                    float* o = op + oy * ow + ox;
                    if (n == 8)
                    {
                        Avx.Store(o, m);
                        if (keep) Avx.Store(xp + oy * ow + ox, idx);
                    }
                    else
                    {
                        var mo = Mask(n);
                        Avx.MaskStore(o, mo.AsSingle(), m);
                        if (keep) Avx2.MaskStore(xp + oy * ow + ox, mo, idx);
                    }
                }
            }
        }
    }

    /// <summary>A lane mask with the first <paramref name="n"/> of 8 lanes set.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Mask(int n) => Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(n));

    /// <summary>
    /// The 2n inputs of n 2x2 windows (n &lt;= 8) from two rows: a0, a1 from r0 and b0, b1 from r1, 16 floats each; for
    /// n &lt; 8 the lanes past the 2n inputs are masked off (not read) and zero.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void LoadWindowRows(float* r0, float* r1, int n, out Vector256<float> a0, out Vector256<float> a1,
        out Vector256<float> b0, out Vector256<float> b1)
    {
        if (n == 8)
        {
            a0 = Avx.LoadVector256(r0); a1 = Avx.LoadVector256(r0 + 8);
            b0 = Avx.LoadVector256(r1); b1 = Avx.LoadVector256(r1 + 8);
            return;
        }
        var m0 = Mask(Math.Min(8, 2 * n)).AsSingle();
        var m1 = Mask(Math.Max(0, 2 * n - 8)).AsSingle();
        a0 = Avx.MaskLoad(r0, m0); a1 = Avx.MaskLoad(r0 + 8, m1);
        b0 = Avx.MaskLoad(r1, m0); b1 = Avx.MaskLoad(r1 + 8, m1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Deinterleave(Vector256<float> lo, Vector256<float> hi, bool even)
        => even ? Conv2dKernels.Even(lo, hi) : Conv2dKernels.Odd(lo, hi);

    /// <summary>The inverse of two deinterleaves: (even, odd) lanes back to 16 consecutive values (lo, hi).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector256<float> Lo, Vector256<float> Hi) Interleave(Vector256<float> even, Vector256<float> odd)
    {
        var u0 = Avx.UnpackLow(even, odd);   // e0 o0 e1 o1 | e4 o4 e5 o5
        var u1 = Avx.UnpackHigh(even, odd);  // e2 o2 e3 o3 | e6 o6 e7 o7
        return (Avx.Permute2x128(u0, u1, 0x20), Avx.Permute2x128(u0, u1, 0x31));
    }

    /// <summary>
    /// Max-pool backward of planes [c0, c1): inGrad is overwritten (zero except at each window's winner).
    /// With <paramref name="pooled"/> given, the gradient of a ReLU (capped at <paramref name="cap"/>) that came
    /// before the pooling is applied too: a window passes its gradient only where its maximum is in (0, cap).
    /// </summary>
    public static void MaxBackward(in Pool2dShape s, ReadOnlySpan<float> outGrad, ReadOnlySpan<int> argmax, Span<float> inGrad, int c0, int c1,
        ReadOnlySpan<float> pooled, float cap = float.PositiveInfinity)
    {
        bool relu = !pooled.IsEmpty;
        for (int c = c0; c < c1; c++)
        {
            var g = inGrad.Slice(c * s.InPlane, s.InPlane);
            var dy = outGrad.Slice(c * s.OutPlane, s.OutPlane);
            var idx = argmax.Slice(c * s.OutPlane, s.OutPlane);
            var y = relu ? pooled.Slice(c * s.OutPlane, s.OutPlane) : default;
            if (s.IsTwoByTwo && Engine.UseAvx2)
            {
                MaxBackward2x2Avx2(s, dy, idx, g, y, relu, cap);
                continue;
            }
            g.Clear();
            for (int i = 0; i < dy.Length; i++)
                if (!relu || (y[i] > 0f && y[i] < cap)) g[idx[i]] += dy[i];
        }
    }

    /// <summary>2x2 stride-2 backward: every window writes its four gradients (winner gets dy, others 0); rows and columns no window covers are zeroed.</summary>
    private static unsafe void MaxBackward2x2Avx2(in Pool2dShape s, ReadOnlySpan<float> dy, ReadOnlySpan<int> idx, Span<float> g,
        ReadOnlySpan<float> pooled, bool relu, float cap)
    {
        int w = s.InW, ow = s.OutW;
        var lane2 = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
        var vcap = Vector256.Create(cap);
        fixed (float* dyp = dy, gp = g, yp = pooled)
        fixed (int* xp = idx)
        {
            for (int oy = 0; oy < s.OutH; oy++)
            {
                float* g0 = gp + 2 * oy * w;
                float* g1 = g0 + w;
                for (int ox = 0; ox < ow; ox += 8)
                {
                    ox = Masked.TailStart(ox, ow);
                    int n = Math.Min(8, ow - ox);
                    var mo = Mask(n);
                    var d = n == 8 ? Avx.LoadVector256(dyp + oy * ow + ox) : Avx.MaskLoad(dyp + oy * ow + ox, mo.AsSingle());
                    var code = (n == 8 ? Avx.LoadVector256(xp + oy * ow + ox) : Avx2.MaskLoad(xp + oy * ow + ox, mo))
                               - (Vector256.Create(2 * oy * w + 2 * ox) + lane2);
                    if (relu)
                    {
                        var y = n == 8 ? Avx.LoadVector256(yp + oy * ow + ox) : Avx.MaskLoad(yp + oy * ow + ox, mo.AsSingle());
                        d &= Vector256.GreaterThan(y, Vector256<float>.Zero) & Vector256.LessThan(y, vcap);
                    }
                    var tl = d & Vector256.Equals(code, Vector256<int>.Zero).AsSingle();
                    var tr = d & Vector256.Equals(code, Vector256<int>.One).AsSingle();
                    var bl = d & Vector256.Equals(code, Vector256.Create(w)).AsSingle();
                    var br = d & Vector256.Equals(code, Vector256.Create(w + 1)).AsSingle();
                    var (t0, t1) = Interleave(tl, tr);
                    var (b0, b1) = Interleave(bl, br);
                    if (n == 8)
                    {
                        Avx.Store(g0 + 2 * ox, t0); Avx.Store(g0 + 2 * ox + 8, t1);
                        Avx.Store(g1 + 2 * ox, b0); Avx.Store(g1 + 2 * ox + 8, b1);
                    }
                    else
                    {
                        var m0 = Mask(Math.Min(8, 2 * n)).AsSingle();
                        var m1 = Mask(Math.Max(0, 2 * n - 8)).AsSingle();
                        Avx.MaskStore(g0 + 2 * ox, m0, t0); Avx.MaskStore(g0 + 2 * ox + 8, m1, t1);
                        Avx.MaskStore(g1 + 2 * ox, m0, b0); Avx.MaskStore(g1 + 2 * ox + 8, m1, b1);
                    }
                }
                // An odd width leaves the last column outside every window.
                if ((w & 1) != 0) { g0[w - 1] = 0f; g1[w - 1] = 0f; }
            }
            // An odd height leaves the last row outside every window.
            for (int y = 2 * s.OutH; y < s.InH; y++) new Span<float>(gp + y * w, w).Clear();
        }
    }

    /// <summary>Max-pool backward of planes [c0, c1): inGrad is overwritten (zero except at each window's winner).</summary>
    public static void MaxBackward(in Pool2dShape s, ReadOnlySpan<float> outGrad, ReadOnlySpan<int> argmax, Span<float> inGrad, int c0, int c1) =>
        MaxBackward(s, outGrad, argmax, inGrad, c0, c1, default);

    /// <summary>
    /// Average pooling of planes [c0, c1) (divisor KH x KW): each output sums its window's rows top to bottom, each row
    /// left to right, starting from 0, then multiplies by 1 / (KH KW), as <see cref="AvgForwardScalar"/> does, bit for bit.
    /// With AVX2: 2x2 stride 2 deinterleaves the even and odd columns of two rows (16 or 8 outputs per step); other
    /// shapes put 16 (or 8) planes side by side in vector lanes (<see cref="AvgLanes"/>), so that one vector add takes
    /// each plane's sum one element further. Without: four planes side by side in scalar registers (one plane's sum is a
    /// chain of dependent adds).
    /// </summary>
    public static unsafe void AvgForward(in Pool2dShape s, ReadOnlySpan<float> input, Span<float> output, int c0, int c1)
    {
        if ((long)c1 * s.InPlane > input.Length || (long)c1 * s.OutPlane > output.Length || c0 < 0)
            throw new ArgumentException($"planes [{c0}, {c1}) do not fit the input ({input.Length}) or output ({output.Length})");
        if (c0 >= c1) return;
        fixed (float* pin = input, pout = output)
        {
            if (s.IsTwoByTwo && Engine.UseAvx512) { Avg2x2Avx512(s, pin, pout, c0, c1); return; }
            if (s.IsTwoByTwo && Engine.UseAvx2) { Avg2x2Avx2(s, pin, pout, c0, c1); return; }
            // Fewer than four planes would fill too few lanes to pay for the transposes.
            if (Engine.UseAvx2 && s.InW <= MaxLaneRow && c1 - c0 >= 4) { AvgLanes(s, pin, pout, c0, c1); return; }
        }
        float inv = 1f / (s.KH * s.KW);
        int c = c0;
        nint inPlane = s.InPlane, outPlane = s.OutPlane;
        fixed (float* pin = input, pout = output)
            for (; c + 4 <= c1; c += 4)
            {
                float* p0 = pin + c * inPlane;
                float* q0 = pout + c * outPlane;
                for (int oy = 0; oy < s.OutH; oy++)
                {
                    int y0 = oy * s.StrideH - s.PadTop;
                    int yLo = Math.Max(0, y0), yHi = Math.Min(s.InH, y0 + s.KH);
                    for (int ox = 0; ox < s.OutW; ox++)
                    {
                        int x0 = ox * s.StrideW - s.PadLeft;
                        int xLo = Math.Max(0, x0), width = Math.Min(s.InW, x0 + s.KW) - xLo;
                        var sum = WindowSums4(p0 + yLo * s.InW + xLo, inPlane, s.InW, yHi - yLo, width);
                        float* q = q0 + oy * s.OutW + ox;
                        q[0] = sum.GetElement(0) * inv;
                        q[outPlane] = sum.GetElement(1) * inv;
                        q[2 * outPlane] = sum.GetElement(2) * inv;
                        q[3 * outPlane] = sum.GetElement(3) * inv;
                    }
                }
            }
        if (c < c1) AvgForwardScalar(s, input, output, c, c1);
    }

    /// <summary>A lane mask with the first <paramref name="n"/> of 16 lanes set (n may be below 0 or above 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Mask16(int n) =>
        Vector512.LessThan(Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), Vector512.Create(n)).AsSingle();

    /// <summary>
    /// 2x2 stride-2 average pooling of planes [c0, c1), 16 outputs per step: 32 inputs of each of the two rows are split
    /// into even and odd columns (vpermt2ps) and each output is ((((0 + tl) + tr) + bl) + br) / 4, the scalar order
    /// (the leading 0 turns a -0 sum into +0 as the scalar loop's does). Row tails use masked loads and stores: nothing
    /// outside the row pair is read, nothing outside the output row written.
    /// </summary>
    private static unsafe void Avg2x2Avx512(in Pool2dShape s, float* pin, float* pout, int c0, int c1)
    {
        int w = s.InW, ow = s.OutW, oh = s.OutH;
        nint inPlane = s.InPlane, outPlane = s.OutPlane;
        var even = Vector512.Create(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        var odd = even + Vector512<int>.One;
        var quarter = Vector512.Create(0.25f);
        for (int c = c0; c < c1; c++)
            for (int oy = 0; oy < oh; oy++)
            {
                float* r0 = pin + c * inPlane + 2 * oy * w;
                float* r1 = r0 + w;
                float* o = pout + c * outPlane + oy * ow;
                int ox = 0;
                for (; ox + 16 <= ow; ox += 16)
                {
                    var a0 = Vector512.Load(r0 + 2 * ox); var a1 = Vector512.Load(r0 + 2 * ox + 16);
                    var b0 = Vector512.Load(r1 + 2 * ox); var b1 = Vector512.Load(r1 + 2 * ox + 16);
                    var sum = Vector512<float>.Zero + Avx512F.PermuteVar16x32x2(a0, even, a1);
                    sum += Avx512F.PermuteVar16x32x2(a0, odd, a1);
                    sum += Avx512F.PermuteVar16x32x2(b0, even, b1);
                    sum += Avx512F.PermuteVar16x32x2(b0, odd, b1);
                    Vector512.Store(sum * quarter, o + ox);
                }
                if (ox < ow)
                {
                    // 2n inputs of each row remain: lanes past them are masked off (not read).
                    int n = ow - ox;
                    var m0 = Mask16(2 * n);
                    var m1 = Mask16(2 * n - 16);
                    var z = Vector512<float>.Zero;
                    var a0 = Avx512F.MaskLoad(r0 + 2 * ox, m0, z); var a1 = Avx512F.MaskLoad(r0 + 2 * ox + 16, m1, z);
                    var b0 = Avx512F.MaskLoad(r1 + 2 * ox, m0, z); var b1 = Avx512F.MaskLoad(r1 + 2 * ox + 16, m1, z);
                    var sum = Vector512<float>.Zero + Avx512F.PermuteVar16x32x2(a0, even, a1);
                    sum += Avx512F.PermuteVar16x32x2(a0, odd, a1);
                    sum += Avx512F.PermuteVar16x32x2(b0, even, b1);
                    sum += Avx512F.PermuteVar16x32x2(b0, odd, b1);
                    Avx512F.MaskStore(o + ox, Mask16(n), sum * quarter);
                }
            }
    }

    /// <summary>The AVX2 form of <see cref="Avg2x2Avx512"/>: 8 outputs per step, the same operations per output.</summary>
    private static unsafe void Avg2x2Avx2(in Pool2dShape s, float* pin, float* pout, int c0, int c1)
    {
        int w = s.InW, ow = s.OutW, oh = s.OutH;
        nint inPlane = s.InPlane, outPlane = s.OutPlane;
        var quarter = Vector256.Create(0.25f);
        for (int c = c0; c < c1; c++)
            for (int oy = 0; oy < oh; oy++)
            {
                float* r0 = pin + c * inPlane + 2 * oy * w;
                float* r1 = r0 + w;
                float* o = pout + c * outPlane + oy * ow;
                for (int ox = 0; ox < ow; ox += 8)
                {
                    ox = Masked.TailStart(ox, ow);
                    int n = Math.Min(8, ow - ox);
                    LoadWindowRows(r0 + 2 * ox, r1 + 2 * ox, n, out var a0, out var a1, out var b0, out var b1);
                    var sum = Vector256<float>.Zero + Deinterleave(a0, a1, even: true);
                    sum += Deinterleave(a0, a1, even: false);
                    sum += Deinterleave(b0, b1, even: true);
                    sum += Deinterleave(b0, b1, even: false);
                    if (n == 8) Avx.Store(o + ox, sum * quarter);
                    else Avx.MaskStore(o + ox, Mask(n).AsSingle(), sum * quarter);
                }
            }
    }

    /// <summary>The widest input row <see cref="AvgLanes"/> transposes on the stack (16 planes of it: 16 KiB).</summary>
    private const int MaxLaneRow = 256;

    /// <summary>How many 16-plane groups ahead <see cref="AvgLanes"/> prefetches.</summary>
    private const int PrefetchGroups = 2;

    /// <summary>
    /// Average pooling of any shape with planes side by side in vector lanes: 16 planes at a time (8 when no more than 8
    /// remain; lanes past the last plane repeat it and are not stored). Each input row the windows need is transposed
    /// from the planes into <c>row[x * L + lane]</c> by 8 x 8 blocks, then every output of the row of windows adds its
    /// columns to its own accumulator, row after row of the window: per lane exactly the scalar order (rows and columns
    /// of the window outside the input are skipped, as the scalar loop skips them). A global 16 x 16 pool over 256
    /// channels was a chain of dependent scalar adds per plane.
    /// </summary>
    [SkipLocalsInit]
    private static unsafe void AvgLanes(in Pool2dShape s, float* pin, float* pout, int c0, int c1)
    {
        int w = s.InW, ow = s.OutW;
        nint inPlane = s.InPlane, outPlane = s.OutPlane;
        float inv = 1f / (s.KH * s.KW);
        float* row = stackalloc float[w * 16];
        float* acc = stackalloc float[ow * 16];
        float** planes = stackalloc float*[16];
        for (int c = c0; c < c1; c += 16)
        {
            int count = Math.Min(16, c1 - c);
            int lanes = count > 8 ? 16 : 8;
            for (int j = 0; j < lanes; j++) planes[j] = pin + (c + Math.Min(j, count - 1)) * inPlane;
            int next = Math.Clamp(c1 - (c + 16 * PrefetchGroups), 0, 16);
            for (int oy = 0; oy < s.OutH; oy++)
            {
                int y0 = oy * s.StrideH - s.PadTop;
                int yLo = Math.Max(0, y0), yHi = Math.Min(s.InH, y0 + s.KH);
                new Span<float>(acc, ow * lanes).Clear();
                for (int iy = yLo; iy < yHi; iy++)
                {
                    // The same row of the planes two groups ahead: 16 planes read a line at a time each kept too few
                    // misses in flight (a global pool over a batch far larger than the caches ran at a third of a
                    // streaming read's speed; with the prefetches, about half).
                    for (int j = 0; j < next; j++)
                        for (int x = 0; x < w; x += 16) Sse.Prefetch0(pin + (c + 16 * PrefetchGroups + j) * inPlane + iy * w + x);
                    TransposeRow(planes, lanes, iy * w, w, row);
                    if (lanes == 16) AccumulateRow16(s, row, acc);
                    else AccumulateRow8(s, row, acc);
                }
                for (int ox = 0; ox < ow; ox++)
                {
                    float* a = acc + ox * lanes;
                    float* q = pout + c * outPlane + oy * ow + ox;
                    for (int j = 0; j < count; j++) q[j * outPlane] = a[j] * inv;
                }
            }
        }
    }

    /// <summary>
    /// One row of windows, 16 lanes: acc[ox] += row[x] for the window's columns x in order (one 512-bit add, or two
    /// 256-bit ones without AVX-512: the same sum per lane).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void AccumulateRow16(in Pool2dShape s, float* row, float* acc)
    {
        int w = s.InW;
        for (int ox = 0; ox < s.OutW; ox++)
        {
            int x0 = ox * s.StrideW - s.PadLeft;
            int xLo = Math.Max(0, x0), xHi = Math.Min(w, x0 + s.KW);
            float* a = acc + ox * 16;
            if (Engine.UseAvx512)
            {
                var sum = Vector512.Load(a);
                for (int x = xLo; x < xHi; x++) sum += Vector512.Load(row + x * 16);
                sum.Store(a);
            }
            else
            {
                var lo = Vector256.Load(a);
                var hi = Vector256.Load(a + 8);
                for (int x = xLo; x < xHi; x++)
                {
                    lo += Vector256.Load(row + x * 16);
                    hi += Vector256.Load(row + x * 16 + 8);
                }
                lo.Store(a);
                hi.Store(a + 8);
            }
        }
    }

    /// <summary><see cref="AccumulateRow16"/> for 8 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void AccumulateRow8(in Pool2dShape s, float* row, float* acc)
    {
        int w = s.InW;
        for (int ox = 0; ox < s.OutW; ox++)
        {
            int x0 = ox * s.StrideW - s.PadLeft;
            int xLo = Math.Max(0, x0), xHi = Math.Min(w, x0 + s.KW);
            float* a = acc + ox * 8;
            var sum = Vector256.Load(a);
            for (int x = xLo; x < xHi; x++) sum += Vector256.Load(row + x * 8);
            sum.Store(a);
        }
    }

    /// <summary>
    /// row[x * lanes + j] = planes[j][offset + x] for x in [0, width), j in [0, lanes) (lanes 8 or 16), by 8 x 8 blocks;
    /// a last block narrower than 8 loads with a mask (nothing past the row is read) and stores only its columns.
    /// </summary>
    private static unsafe void TransposeRow(float** planes, int lanes, nint offset, int width, float* row)
    {
        for (int g = 0; g < lanes; g += 8)
        {
            float** p = planes + g;
            for (int x = 0; x < width; x += 8)
            {
                int n = Math.Min(8, width - x);
                Vector256<float> r0, r1, r2, r3, r4, r5, r6, r7;
                nint o = offset + x;
                if (n == 8)
                {
                    r0 = Avx.LoadVector256(p[0] + o); r1 = Avx.LoadVector256(p[1] + o);
                    r2 = Avx.LoadVector256(p[2] + o); r3 = Avx.LoadVector256(p[3] + o);
                    r4 = Avx.LoadVector256(p[4] + o); r5 = Avx.LoadVector256(p[5] + o);
                    r6 = Avx.LoadVector256(p[6] + o); r7 = Avx.LoadVector256(p[7] + o);
                }
                else
                {
                    var m = Mask(n).AsSingle();
                    r0 = Avx.MaskLoad(p[0] + o, m); r1 = Avx.MaskLoad(p[1] + o, m);
                    r2 = Avx.MaskLoad(p[2] + o, m); r3 = Avx.MaskLoad(p[3] + o, m);
                    r4 = Avx.MaskLoad(p[4] + o, m); r5 = Avx.MaskLoad(p[5] + o, m);
                    r6 = Avx.MaskLoad(p[6] + o, m); r7 = Avx.MaskLoad(p[7] + o, m);
                }
                BlockedTiles.Transpose8x8(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
                float* d = row + x * lanes + g;
                nint step = lanes;
                Avx.Store(d, r0);
                if (n > 1) Avx.Store(d + step, r1);
                if (n > 2) Avx.Store(d + 2 * step, r2);
                if (n > 3) Avx.Store(d + 3 * step, r3);
                if (n > 4) Avx.Store(d + 4 * step, r4);
                if (n > 5) Avx.Store(d + 5 * step, r5);
                if (n > 6) Avx.Store(d + 6 * step, r6);
                if (n > 7) Avx.Store(d + 7 * step, r7);
            }
        }
    }

    /// <summary>
    /// The sums of one window (rows x width values, rows <paramref name="pitch"/> apart) in four planes
    /// <paramref name="plane"/> apart, each in row-major order. A method of its own so that the four sums stay in
    /// registers (inside the caller's loops the JIT kept them on the stack, adding a store and a load to every add).
    /// </summary>
    private static unsafe Vector128<float> WindowSums4(float* r, nint plane, nint pitch, int rows, int width)
    {
        float a = 0, b = 0, d = 0, e = 0;
        for (int y = 0; y < rows; y++, r += pitch)
        {
            float* r1 = r + plane, r2 = r + 2 * plane, r3 = r + 3 * plane;
            for (int i = 0; i < width; i++)
            {
                a += r[i];
                b += r1[i];
                d += r2[i];
                e += r3[i];
            }
        }
        return Vector128.Create(a, b, d, e);
    }

    /// <summary>The scalar reference of <see cref="AvgForward"/>: one output at a time, window rows and columns in order.</summary>
    public static void AvgForwardScalar(in Pool2dShape s, ReadOnlySpan<float> input, Span<float> output, int c0, int c1)
    {
        float inv = 1f / (s.KH * s.KW);
        for (int c = c0; c < c1; c++)
        {
            var inP = input.Slice(c * s.InPlane, s.InPlane);
            var outP = output.Slice(c * s.OutPlane, s.OutPlane);
            for (int oy = 0; oy < s.OutH; oy++)
                for (int ox = 0; ox < s.OutW; ox++)
                {
                    float sum = 0;
                    for (int ky = 0; ky < s.KH; ky++)
                    {
                        int iy = oy * s.StrideH + ky - s.PadTop;
                        if ((uint)iy >= (uint)s.InH) continue;
                        for (int kx = 0; kx < s.KW; kx++)
                        {
                            int ix = ox * s.StrideW + kx - s.PadLeft;
                            if ((uint)ix < (uint)s.InW) sum += inP[iy * s.InW + ix];
                        }
                    }
                    outP[oy * s.OutW + ox] = sum * inv;
                }
        }
    }

    /// <summary>
    /// Average-pool backward of planes [c0, c1): inGrad is overwritten. 2x2 stride 2 with AVX2 writes each input's
    /// gradient once, (dy / 4) + 0 (the reference's add to a cleared plane), instead of clearing and adding; the same bits
    /// as <see cref="AvgBackwardScalar"/>.
    /// </summary>
    /// <remarks>
    /// With <paramref name="reluOutput"/> (the pool's input, a ReLU's output capped at <paramref name="cap"/>) the ReLU's
    /// backward is applied too: each input's gradient is kept where 0 &lt; y &lt; cap and is 0 elsewhere, the bits of the
    /// ReLU's own backward pass after the pool's, without that pass over the tensor. An average pool over the whole
    /// plane (a global-average-pool head) fills each plane with its one value, 0 + dy / (KH KW) as the reference adds it
    /// to a cleared plane: the reference's element-by-element adds took 4.8 ms of a bottleneck-network training step.
    /// </remarks>
    public static unsafe void AvgBackward(in Pool2dShape s, ReadOnlySpan<float> outGrad, Span<float> inGrad, int c0, int c1,
        ReadOnlySpan<float> reluOutput = default, float cap = float.PositiveInfinity)
    {
        if (s.IsWholePlane && c0 < c1)
        {
            float inv = 1f / (s.KH * s.KW);
            for (int c = c0; c < c1; c++)
            {
                float v = 0f + outGrad[c] * inv;
                var g = inGrad.Slice(c * s.InPlane, s.InPlane);
                // With the mask, one pass: a fill followed by the ReLU's backward over it cost 0.5 ms more a bottleneck step.
                if (reluOutput.IsEmpty) g.Fill(v);
                else ElementwiseKernels.Map(reluOutput.Slice(c * s.InPlane, s.InPlane), g, new ReluGradOfConstantOp(v, cap));
            }
            return;
        }
        if (s.IsTwoByTwo && Engine.UseAvx2 && c0 < c1)
        {
            if ((long)c1 * s.OutPlane > outGrad.Length || (long)c1 * s.InPlane > inGrad.Length || c0 < 0)
                throw new ArgumentException($"planes [{c0}, {c1}) do not fit the output gradient ({outGrad.Length}) or input gradient ({inGrad.Length})");
            fixed (float* dy = outGrad, g = inGrad)
                if (Engine.UseAvx512) AvgBackward2x2Avx512(s, dy, g, c0, c1);
                else AvgBackward2x2Avx2(s, dy, g, c0, c1);
        }
        else AvgBackwardScalar(s, outGrad, inGrad, c0, c1);
        if (!reluOutput.IsEmpty)
            for (int c = c0; c < c1; c++)
            {
                var g = inGrad.Slice(c * s.InPlane, s.InPlane);
                ActivationKernels.ReluBackward(reluOutput.Slice(c * s.InPlane, s.InPlane), g, g, cap);
            }
    }

    /// <summary>
    /// 2x2 stride-2 backward, 16 outputs per step: v = dy / 4 + 0 is written to both columns of both rows of its window
    /// (lanes duplicated with vpermps); masked at row ends; an odd last row or column (no window covers it) gets +0.
    /// </summary>
    private static unsafe void AvgBackward2x2Avx512(in Pool2dShape s, float* pdy, float* pg, int c0, int c1)
    {
        int w = s.InW, ow = s.OutW, oh = s.OutH;
        nint inPlane = s.InPlane, outPlane = s.OutPlane;
        var lower = Vector512.Create(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        var upper = lower + Vector512.Create(8);
        var quarter = Vector512.Create(0.25f);
        for (int c = c0; c < c1; c++)
        {
            float* gp = pg + c * inPlane;
            for (int oy = 0; oy < oh; oy++)
            {
                float* g0 = gp + 2 * oy * w;
                float* g1 = g0 + w;
                float* d = pdy + c * outPlane + oy * ow;
                int ox = 0;
                for (; ox + 16 <= ow; ox += 16)
                {
                    var v = Vector512.Load(d + ox) * quarter + Vector512<float>.Zero;
                    var lo = Avx512F.PermuteVar16x32(v, lower);
                    var hi = Avx512F.PermuteVar16x32(v, upper);
                    lo.Store(g0 + 2 * ox); hi.Store(g0 + 2 * ox + 16);
                    lo.Store(g1 + 2 * ox); hi.Store(g1 + 2 * ox + 16);
                }
                if (ox < ow)
                {
                    int n = ow - ox;
                    var v = Avx512F.MaskLoad(d + ox, Mask16(n), Vector512<float>.Zero) * quarter + Vector512<float>.Zero;
                    var lo = Avx512F.PermuteVar16x32(v, lower);
                    var hi = Avx512F.PermuteVar16x32(v, upper);
                    var m0 = Mask16(2 * n);
                    var m1 = Mask16(2 * n - 16);
                    Avx512F.MaskStore(g0 + 2 * ox, m0, lo); Avx512F.MaskStore(g0 + 2 * ox + 16, m1, hi);
                    Avx512F.MaskStore(g1 + 2 * ox, m0, lo); Avx512F.MaskStore(g1 + 2 * ox + 16, m1, hi);
                }
                if ((w & 1) != 0) { g0[w - 1] = 0f; g1[w - 1] = 0f; }
            }
            for (int y = 2 * oh; y < s.InH; y++) new Span<float>(gp + y * w, w).Clear();
        }
    }

    /// <summary>The AVX2 form of <see cref="AvgBackward2x2Avx512"/> (8 outputs per step).</summary>
    private static unsafe void AvgBackward2x2Avx2(in Pool2dShape s, float* pdy, float* pg, int c0, int c1)
    {
        int w = s.InW, ow = s.OutW, oh = s.OutH;
        nint inPlane = s.InPlane, outPlane = s.OutPlane;
        var quarter = Vector256.Create(0.25f);
        for (int c = c0; c < c1; c++)
        {
            float* gp = pg + c * inPlane;
            for (int oy = 0; oy < oh; oy++)
            {
                float* g0 = gp + 2 * oy * w;
                float* g1 = g0 + w;
                float* d = pdy + c * outPlane + oy * ow;
                for (int ox = 0; ox < ow; ox += 8)
                {
                    ox = Masked.TailStart(ox, ow);
                    int n = Math.Min(8, ow - ox);
                    var dv = n == 8 ? Avx.LoadVector256(d + ox) : Avx.MaskLoad(d + ox, Mask(n).AsSingle());
                    var v = dv * quarter + Vector256<float>.Zero;
                    var (lo, hi) = Interleave(v, v);
                    if (n == 8)
                    {
                        Avx.Store(g0 + 2 * ox, lo); Avx.Store(g0 + 2 * ox + 8, hi);
                        Avx.Store(g1 + 2 * ox, lo); Avx.Store(g1 + 2 * ox + 8, hi);
                    }
                    else
                    {
                        var m0 = Mask(Math.Min(8, 2 * n)).AsSingle();
                        var m1 = Mask(Math.Max(0, 2 * n - 8)).AsSingle();
                        Avx.MaskStore(g0 + 2 * ox, m0, lo); Avx.MaskStore(g0 + 2 * ox + 8, m1, hi);
                        Avx.MaskStore(g1 + 2 * ox, m0, lo); Avx.MaskStore(g1 + 2 * ox + 8, m1, hi);
                    }
                }
                if ((w & 1) != 0) { g0[w - 1] = 0f; g1[w - 1] = 0f; }
            }
            for (int y = 2 * oh; y < s.InH; y++) new Span<float>(gp + y * w, w).Clear();
        }
    }

    /// <summary>The reference average-pool backward of planes [c0, c1): each plane cleared, then every window adds dy / (KH KW) to its inputs.</summary>
    public static void AvgBackwardScalar(in Pool2dShape s, ReadOnlySpan<float> outGrad, Span<float> inGrad, int c0, int c1)
    {
        float inv = 1f / (s.KH * s.KW);
        for (int c = c0; c < c1; c++)
        {
            var g = inGrad.Slice(c * s.InPlane, s.InPlane);
            g.Clear();
            var dy = outGrad.Slice(c * s.OutPlane, s.OutPlane);
            for (int oy = 0; oy < s.OutH; oy++)
                for (int ox = 0; ox < s.OutW; ox++)
                {
                    float v = dy[oy * s.OutW + ox] * inv;
                    for (int ky = 0; ky < s.KH; ky++)
                    {
                        int iy = oy * s.StrideH + ky - s.PadTop;
                        if ((uint)iy >= (uint)s.InH) continue;
                        for (int kx = 0; kx < s.KW; kx++)
                        {
                            int ix = ox * s.StrideW + kx - s.PadLeft;
                            if ((uint)ix < (uint)s.InW) g[iy * s.InW + ix] += v;
                        }
                    }
                }
        }
    }
}
