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
        if (PadTop < 0 || PadLeft < 0 || PadBottom < 0 || PadRight < 0 || PadTop >= KH || PadBottom >= KH || PadLeft >= KW || PadRight >= KW)
            throw new ArgumentException($"padding ({PadTop},{PadLeft},{PadBottom},{PadRight}) must be non-negative and smaller than the {KH}x{KW} window");
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

    private static void MaxPlane2x2Avx2(in Pool2dShape s, ReadOnlySpan<float> inP, Span<float> outP, Span<int> idxP, bool keep)
    {
        int w = s.InW, ow = s.OutW;
        ref float ir = ref MemoryMarshal.GetReference(inP);
        ref float or = ref MemoryMarshal.GetReference(outP);
        ref int xr = ref MemoryMarshal.GetReference(idxP);
        var lane2 = Vector256.Create(0, 2, 4, 6, 8, 10, 12, 14);
        for (int oy = 0; oy < s.OutH; oy++)
        {
            ref float r0 = ref Unsafe.Add(ref ir, 2 * oy * w);
            ref float r1 = ref Unsafe.Add(ref r0, w);
            int ox = 0;
            for (; ox <= ow - 8; ox += 8)
            {
                // 16 inputs of each row -> even/odd columns of 8 windows.
                var a0 = Vector256.LoadUnsafe(ref r0, (nuint)(2 * ox));
                var a1 = Vector256.LoadUnsafe(ref r0, (nuint)(2 * ox + 8));
                var b0 = Vector256.LoadUnsafe(ref r1, (nuint)(2 * ox));
                var b1 = Vector256.LoadUnsafe(ref r1, (nuint)(2 * ox + 8));
                var tlE = Deinterleave(a0, a1, even: true);
                var trO = Deinterleave(a0, a1, even: false);
                var blE = Deinterleave(b0, b1, even: true);
                var brO = Deinterleave(b0, b1, even: false);
                var m = Vector256.Max(Vector256.Max(tlE, trO), Vector256.Max(blE, brO));
                m.StoreUnsafe(ref or, (nuint)(oy * ow + ox));
                if (keep)
                {
                    // First maximum in window order top-left, top-right, bottom-left, bottom-right.
                    var baseIdx = Vector256.Create(2 * oy * w + 2 * ox) + lane2;
                    var idx = baseIdx + Vector256.Create(w + 1);
                    idx = Vector256.ConditionalSelect(Vector256.Equals(blE, m).AsInt32(), baseIdx + Vector256.Create(w), idx);
                    idx = Vector256.ConditionalSelect(Vector256.Equals(trO, m).AsInt32(), baseIdx + Vector256<int>.One, idx);
                    idx = Vector256.ConditionalSelect(Vector256.Equals(tlE, m).AsInt32(), baseIdx, idx);
                    idx.StoreUnsafe(ref xr, (nuint)(oy * ow + ox));
                }
            }
            if (ox < ow)
            {
                // Scalar tail of this row.
                for (; ox < ow; ox++)
                {
                    int i0 = 2 * oy * w + 2 * ox;
                    float best = inP[i0]; int bi = i0;
                    if (inP[i0 + 1] > best) { best = inP[i0 + 1]; bi = i0 + 1; }
                    if (inP[i0 + w] > best) { best = inP[i0 + w]; bi = i0 + w; }
                    if (inP[i0 + w + 1] > best) { best = inP[i0 + w + 1]; bi = i0 + w + 1; }
                    outP[oy * ow + ox] = best;
                    if (keep) idxP[oy * ow + ox] = bi;
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Deinterleave(Vector256<float> lo, Vector256<float> hi, bool even)
    {
        // Shuffle within 128-bit lanes, then fix the lane order: [lo0 lo2 lo4 lo6 hi0 hi2 hi4 hi6].
        var sh = even ? Avx.Shuffle(lo, hi, 0b10_00_10_00) : Avx.Shuffle(lo, hi, 0b11_01_11_01);
        return Avx2.Permute4x64(sh.AsDouble(), 0b11_01_10_00).AsSingle();
    }

    /// <summary>Max-pool backward of planes [c0, c1): inGrad is overwritten (zero except at each window's winner).</summary>
    public static void MaxBackward(in Pool2dShape s, ReadOnlySpan<float> outGrad, ReadOnlySpan<int> argmax, Span<float> inGrad, int c0, int c1)
    {
        for (int c = c0; c < c1; c++)
        {
            var g = inGrad.Slice(c * s.InPlane, s.InPlane);
            g.Clear();
            var dy = outGrad.Slice(c * s.OutPlane, s.OutPlane);
            var idx = argmax.Slice(c * s.OutPlane, s.OutPlane);
            for (int i = 0; i < dy.Length; i++) g[idx[i]] += dy[i];
        }
    }

    /// <summary>Average pooling of planes [c0, c1) (divisor KH x KW).</summary>
    public static void AvgForward(in Pool2dShape s, ReadOnlySpan<float> input, Span<float> output, int c0, int c1)
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
