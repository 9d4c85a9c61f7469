using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

/// <summary>
/// Convolution kernels over spans. Layouts: input N x InC x InH x InW, output N x OutC x OutH x OutW,
/// weights OutC x InC x KH x KW, bias OutC. This file: the plain-loop reference (the test oracle) and the
/// im2col / col2im tiles used by the general (strided) path. <see cref="Conv2dPlan"/> chooses the algorithm.
/// </summary>
public static partial class Conv2dKernels
{
    /// <summary>Reference forward: out = conv(input, weight) + bias for a batch. Plain loops, double accumulation.</summary>
    public static void ReferenceForward(in Conv2dShape s, int batch, ReadOnlySpan<float> input, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> bias, Span<float> output)
    {
        for (int n = 0; n < batch; n++)
            for (int oc = 0; oc < s.OutC; oc++)
                for (int oy = 0; oy < s.OutH; oy++)
                    for (int ox = 0; ox < s.OutW; ox++)
                    {
                        double acc = bias.IsEmpty ? 0 : bias[oc];
                        for (int ic = 0; ic < s.InC; ic++)
                            for (int ky = 0; ky < s.KH; ky++)
                            {
                                int iy = oy * s.StrideH + ky - s.PadTop;
                                if ((uint)iy >= (uint)s.InH) continue;
                                for (int kx = 0; kx < s.KW; kx++)
                                {
                                    int ix = ox * s.StrideW + kx - s.PadLeft;
                                    if ((uint)ix >= (uint)s.InW) continue;
                                    acc += (double)input[((n * s.InC + ic) * s.InH + iy) * s.InW + ix]
                                         * weight[((oc * s.InC + ic) * s.KH + ky) * s.KW + kx];
                                }
                            }
                        output[((n * s.OutC + oc) * s.OutH + oy) * s.OutW + ox] = (float)acc;
                    }
    }

    /// <summary>Reference backward: gradients of input, weight and bias from the output gradient. Any of the outputs may be empty (skipped).</summary>
    public static void ReferenceBackward(in Conv2dShape s, int batch, ReadOnlySpan<float> input, ReadOnlySpan<float> weight,
        ReadOnlySpan<float> outGrad, Span<float> inGrad, Span<float> weightGrad, Span<float> biasGrad)
    {
        var dIn = inGrad.IsEmpty ? null : new double[batch * s.InSize];
        var dW = weightGrad.IsEmpty ? null : new double[s.WeightCount];
        var dB = biasGrad.IsEmpty ? null : new double[s.OutC];
        for (int n = 0; n < batch; n++)
            for (int oc = 0; oc < s.OutC; oc++)
                for (int oy = 0; oy < s.OutH; oy++)
                    for (int ox = 0; ox < s.OutW; ox++)
                    {
                        double g = outGrad[((n * s.OutC + oc) * s.OutH + oy) * s.OutW + ox];
                        if (dB is not null) dB[oc] += g;
                        for (int ic = 0; ic < s.InC; ic++)
                            for (int ky = 0; ky < s.KH; ky++)
                            {
                                int iy = oy * s.StrideH + ky - s.PadTop;
                                if ((uint)iy >= (uint)s.InH) continue;
                                for (int kx = 0; kx < s.KW; kx++)
                                {
                                    int ix = ox * s.StrideW + kx - s.PadLeft;
                                    if ((uint)ix >= (uint)s.InW) continue;
                                    int ii = ((n * s.InC + ic) * s.InH + iy) * s.InW + ix;
                                    int wi = ((oc * s.InC + ic) * s.KH + ky) * s.KW + kx;
                                    if (dIn is not null) dIn[ii] += g * weight[wi];
                                    if (dW is not null) dW[wi] += g * input[ii];
                                }
                            }
                    }
        if (dIn is not null) for (int i = 0; i < dIn.Length; i++) inGrad[i] = (float)dIn[i];
        if (dW is not null) for (int i = 0; i < dW.Length; i++) weightGrad[i] = (float)dW[i];
        if (dB is not null) for (int i = 0; i < dB.Length; i++) biasGrad[i] = (float)dB[i];
    }

    /// <summary>
    /// im2col of one image for output pixels [p0, p0 + count): col (K x count, row-major) where
    /// row (ic, ky, kx) and column p hold input[ic][oy*sh + ky - pt][ox*sw + kx - pl] (zero outside).
    /// </summary>
    public static void Im2col(in Conv2dShape s, ReadOnlySpan<float> image, int p0, int count, Span<float> col)
    {
        int outW = s.OutW;
        for (int ic = 0; ic < s.InC; ic++)
        {
            var plane = image.Slice(ic * s.InH * s.InW, s.InH * s.InW);
            for (int ky = 0; ky < s.KH; ky++)
                for (int kx = 0; kx < s.KW; kx++)
                {
                    var row = col.Slice(((ic * s.KH + ky) * s.KW + kx) * count, count);
                    int oy = p0 / outW, ox = p0 % outW;
                    for (int j = 0; j < count; j++)
                    {
                        int iy = oy * s.StrideH + ky - s.PadTop;
                        int ix = ox * s.StrideW + kx - s.PadLeft;
                        row[j] = (uint)iy < (uint)s.InH && (uint)ix < (uint)s.InW ? plane[iy * s.InW + ix] : 0f;
                        if (++ox == outW) { ox = 0; oy++; }
                    }
                }
        }
    }

    /// <summary>col2im: adds the columns of pixels [p0, p0 + count) of <paramref name="col"/> (K x count) back into the image gradient.</summary>
    public static void Col2imAdd(in Conv2dShape s, ReadOnlySpan<float> col, int p0, int count, Span<float> image)
    {
        int outW = s.OutW;
        for (int ic = 0; ic < s.InC; ic++)
        {
            var plane = image.Slice(ic * s.InH * s.InW, s.InH * s.InW);
            for (int ky = 0; ky < s.KH; ky++)
                for (int kx = 0; kx < s.KW; kx++)
                {
                    var row = col.Slice(((ic * s.KH + ky) * s.KW + kx) * count, count);
                    int oy = p0 / outW, ox = p0 % outW;
                    for (int j = 0; j < count; j++)
                    {
                        int iy = oy * s.StrideH + ky - s.PadTop;
                        int ix = ox * s.StrideW + kx - s.PadLeft;
                        if ((uint)iy < (uint)s.InH && (uint)ix < (uint)s.InW) plane[iy * s.InW + ix] += row[j];
                        if (++ox == outW) { ox = 0; oy++; }
                    }
                }
        }
    }

    /// <summary>
    /// Copies image planes (c x h x w) into zero-padded planes (c x (h+top+bottom) x (w+left+right)).
    /// The destination's border is written with zeros on every call, so the buffer needs no clearing.
    /// </summary>
    public static void PadPlanes(ReadOnlySpan<float> src, int c, int h, int w, int top, int left, int bottom, int right, Span<float> dst)
    {
        int hp = h + top + bottom, wp = w + left + right;
        if (src.Length < c * h * w || dst.Length < c * hp * wp)
            throw new ArgumentException($"pad: {c} planes of {h}x{w} into {hp}x{wp} need {c * h * w} source and {c * hp * wp} destination floats");
        ref float sr = ref MemoryMarshal.GetReference(src);
        ref float dr = ref MemoryMarshal.GetReference(dst);
        if (Engine.UseAvx2 && w >= 8 && left <= 8 && right <= 8)
        {
            PadPlanesAvx2(ref sr, c, h, w, top, left, bottom, right, ref dr);
            return;
        }
        for (int ch = 0; ch < c; ch++)
        {
            ref float d = ref Unsafe.Add(ref dr, ch * hp * wp);
            MemoryMarshal.CreateSpan(ref d, top * wp).Clear();
            MemoryMarshal.CreateSpan(ref Unsafe.Add(ref d, (top + h) * wp), bottom * wp).Clear();
            for (int y = 0; y < h; y++)
            {
                ref float row = ref Unsafe.Add(ref d, (top + y) * wp);
                ref float from = ref Unsafe.Add(ref sr, (ch * h + y) * w);
                for (int x = 0; x < left; x++) Unsafe.Add(ref row, x) = 0f;
                for (int i = 0; i < w; i++) Unsafe.Add(ref row, left + i) = Unsafe.Add(ref from, i);
                for (int x = left + w; x < wp; x++) Unsafe.Add(ref row, x) = 0f;
            }
        }
    }

    /// <summary>
    /// <see cref="PadPlanes"/> for rows of 8 or more floats and borders of at most 8: only whole-vector stores. A row's
    /// borders are one zero vector at each end, stored before the row's values (which overwrite what they overlap), the
    /// values are vectors with the last 8 copied once more instead of a scalar tail, and the top and bottom borders are
    /// zero vectors likewise. The scalar border loops and a Clear call per border (short rows, many planes) cost 23 us
    /// an image for 128 planes of 8 x 8 on a Xeon, several times the copy itself (BENCHMARKS.md).
    /// </summary>
    private static void PadPlanesAvx2(ref float sr, int c, int h, int w, int top, int left, int bottom, int right, ref float dr)
    {
        int hp = h + top + bottom, wp = w + left + right;
        var zero = Vector256<float>.Zero;
        for (int ch = 0; ch < c; ch++)
        {
            ref float d = ref Unsafe.Add(ref dr, ch * hp * wp);
            Zero(ref d, top * wp);
            Zero(ref Unsafe.Add(ref d, (top + h) * wp), bottom * wp);
            for (int y = 0; y < h; y++)
            {
                ref float row = ref Unsafe.Add(ref d, (top + y) * wp);
                ref float from = ref Unsafe.Add(ref sr, (ch * h + y) * w);
                if (left > 0) zero.StoreUnsafe(ref row);
                if (right > 0) zero.StoreUnsafe(ref row, (nuint)(wp - 8));
                ref float to = ref Unsafe.Add(ref row, left);
                int i = 0;
                for (; i + 8 <= w; i += 8) Vector256.LoadUnsafe(ref from, (nuint)i).StoreUnsafe(ref to, (nuint)i);
                if (i < w) Vector256.LoadUnsafe(ref from, (nuint)(w - 8)).StoreUnsafe(ref to, (nuint)(w - 8));
            }
        }

        // n floats of zeros (n = 0, or 8 or more: a border row is at least one image row wide).
        static void Zero(ref float p, int n)
        {
            var z = Vector256<float>.Zero;
            int i = 0;
            for (; i + 8 <= n; i += 8) z.StoreUnsafe(ref p, (nuint)i);
            if (i < n) z.StoreUnsafe(ref p, (nuint)(n - 8));
        }
    }
}
