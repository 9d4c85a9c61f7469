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
                    int n = Math.Min(8, ow - ox);
                    Vector256<float> a0, a1, b0, b1;
                    if (n == 8)
                    {
                        a0 = Avx.LoadVector256(r0 + 2 * ox); a1 = Avx.LoadVector256(r0 + 2 * ox + 8);
                        b0 = Avx.LoadVector256(r1 + 2 * ox); b1 = Avx.LoadVector256(r1 + 2 * ox + 8);
                    }
                    else
                    {
                        // 2n inputs of each row remain: lanes past them are masked off (not read).
                        var m0 = Mask(Math.Min(8, 2 * n)).AsSingle();
                        var m1 = Mask(Math.Max(0, 2 * n - 8)).AsSingle();
                        a0 = Avx.MaskLoad(r0 + 2 * ox, m0); a1 = Avx.MaskLoad(r0 + 2 * ox + 8, m1);
                        b0 = Avx.MaskLoad(r1 + 2 * ox, m0); b1 = Avx.MaskLoad(r1 + 2 * ox + 8, m1);
                    }
                    var tl = Deinterleave(a0, a1, even: true);
                    var tr = Deinterleave(a0, a1, even: false);
                    var bl = Deinterleave(b0, b1, even: true);
                    var br = Deinterleave(b0, b1, even: false);
                    var m = Vector256.Max(Vector256.Max(tl, tr), Vector256.Max(bl, br));
                    Vector256<int> idx = default;
                    if (keep)
                    {
                        var baseIdx = Vector256.Create(2 * oy * w + 2 * ox) + lane2;
                        idx = baseIdx + Vector256.Create(w + 1);
                        idx = Vector256.ConditionalSelect(Vector256.Equals(bl, m).AsInt32(), baseIdx + Vector256.Create(w), idx);
                        idx = Vector256.ConditionalSelect(Vector256.Equals(tr, m).AsInt32(), baseIdx + Vector256<int>.One, idx);
                        idx = Vector256.ConditionalSelect(Vector256.Equals(tl, m).AsInt32(), baseIdx, idx);
                    }
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Deinterleave(Vector256<float> lo, Vector256<float> hi, bool even)
    {
        // Shuffle within 128-bit lanes, then fix the lane order: [lo0 lo2 lo4 lo6 hi0 hi2 hi4 hi6].
        var sh = even ? Avx.Shuffle(lo, hi, 0b10_00_10_00) : Avx.Shuffle(lo, hi, 0b11_01_11_01);
        return Avx2.Permute4x64(sh.AsDouble(), 0b11_01_10_00).AsSingle();
    }

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
    /// left to right, as <see cref="AvgForwardScalar"/> does, bit for bit. Four planes run side by side: one plane's sum
    /// is a chain of dependent adds, and a global pool (16 x 16 windows over 256 channels) spent 13% of a network's
    /// inference waiting on that chain.
    /// </summary>
    public static unsafe void AvgForward(in Pool2dShape s, ReadOnlySpan<float> input, Span<float> output, int c0, int c1)
    {
        if ((long)c1 * s.InPlane > input.Length || (long)c1 * s.OutPlane > output.Length || c0 < 0)
            throw new ArgumentException($"planes [{c0}, {c1}) do not fit the input ({input.Length}) or output ({output.Length})");
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

    /// <summary>Average-pool backward of planes [c0, c1): inGrad is overwritten.</summary>
    public static void AvgBackward(in Pool2dShape s, ReadOnlySpan<float> outGrad, Span<float> inGrad, int c0, int c1)
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
