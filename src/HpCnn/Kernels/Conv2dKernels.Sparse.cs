using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

// Backward of a convolution whose output went through a ReLU and a max-pool: the output gradient is non-zero only
// at each pooling window's winner (and only where the ReLU passed), so at most one value in four is non-zero for a
// 2x2 pool. These kernels take the pooled gradient and the arg-max as they are ("sparse" gradient: channel c, pooled
// position q -> conv output pixel argmax[c][q], value g), and never build the dense gradient:
//   weight gradient: dW[o][ky][kx][i] += g * X[i][y*s + ky][x*s + kx] for every non-zero (o, y, x), the input in
//                    channels-last layout so that the InC values of one tap are contiguous;
//   input gradient:  dX[i][y*s + ky][x*s + kx] += g * W[o][i][ky][kx], grouped by output pixel so that the
//                    contributions of all channels of a pixel are summed in registers before one update.
public static partial class Conv2dKernels
{
    /// <summary>
    /// The gradient a pooled gradient sends to the pixel of the convolution's output that won each window:
    /// <paramref name="pooledGrad"/> if the pooled value is in (0, cap) (the ReLU before the pool passed it), else 0.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float PassedGradient(float pooledGrad, float pooledValue, float cap) =>
        pooledValue > 0f && pooledValue < cap ? pooledGrad : 0f;

    /// <summary>
    /// Copies one image (c planes of h x w) into zero-padded channels-last rows: dst[((y + top) * wp + x + left) * c + i].
    /// <paramref name="c"/> must be a multiple of 8 on the vector path.
    /// </summary>
    public static void ToChannelsLast(ReadOnlySpan<float> image, int c, int h, int w, int top, int left, int hp, int wp, Span<float> dst)
    {
        dst.Slice(0, hp * wp * c).Clear();
        if (Engine.UseAvx2 && c % 8 == 0)
        {
            ref float s = ref MemoryMarshal.GetReference(image);
            ref float d = ref MemoryMarshal.GetReference(dst);
            for (int y = 0; y < h; y++)
            {
                int x = 0;
                for (; x + 8 <= w; x += 8)
                    for (int i = 0; i < c; i += 8)
                        // 8 channels x 8 pixels -> 8 pixels x 8 channels
                        Sgemm.Transpose8x8(ref Unsafe.Add(ref s, (i * h + y) * w + x), h * w,
                            ref Unsafe.Add(ref d, ((y + top) * wp + x + left) * c + i), c);
                for (; x < w; x++)
                    for (int i = 0; i < c; i++) Unsafe.Add(ref d, ((y + top) * wp + x + left) * c + i) = Unsafe.Add(ref s, (i * h + y) * w + x);
            }
            return;
        }
        for (int i = 0; i < c; i++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    dst[((y + top) * wp + x + left) * c + i] = image[(i * h + y) * w + x];
    }

    /// <summary>The inverse of <see cref="ToChannelsLast"/>: the interior of padded channels-last rows back to c planes of h x w.</summary>
    public static void FromChannelsLast(ReadOnlySpan<float> src, int c, int h, int w, int top, int left, int wp, Span<float> image)
    {
        if (Engine.UseAvx2 && c % 8 == 0)
        {
            ref float s = ref MemoryMarshal.GetReference(src);
            ref float d = ref MemoryMarshal.GetReference(image);
            for (int y = 0; y < h; y++)
            {
                int x = 0;
                for (; x + 8 <= w; x += 8)
                    for (int i = 0; i < c; i += 8)
                        Sgemm.Transpose8x8(ref Unsafe.Add(ref s, ((y + top) * wp + x + left) * c + i), c,
                            ref Unsafe.Add(ref d, (i * h + y) * w + x), h * w);
                for (; x < w; x++)
                    for (int i = 0; i < c; i++) Unsafe.Add(ref d, (i * h + y) * w + x) = Unsafe.Add(ref s, ((y + top) * wp + x + left) * c + i);
            }
            return;
        }
        for (int i = 0; i < c; i++)
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    image[(i * h + y) * w + x] = src[((y + top) * wp + x + left) * c + i];
    }

    /// <summary>
    /// For every output pixel p = oy * OutW + ox, the offset of its receptive field's corner in padded channels-last rows
    /// of width <paramref name="wp"/>: ((oy * sh) * wp + ox * sw) * InC. Built once per shape (no division per non-zero).
    /// </summary>
    public static int[] PixelOffsets(in Conv2dShape s, int wp)
    {
        var t = new int[s.OutPlane];
        for (int oy = 0, p = 0; oy < s.OutH; oy++)
            for (int ox = 0; ox < s.OutW; ox++, p++) t[p] = ((oy * s.StrideH) * wp + ox * s.StrideW) * s.InC;
        return t;
    }

    /// <summary>
    /// One pass over an image's pooled gradient: the non-zero gradients each channel sends to its convolution output,
    /// as (pixel, value) pairs in channel order; channel o owns entries [start[o], start[o+1]). Returns the count.
    /// </summary>
    public static int CollectByChannel(ReadOnlySpan<float> pooledGrad, ReadOnlySpan<float> pooled, ReadOnlySpan<int> argmax, int channels,
        int pooledPlane, float cap, Span<int> start, Span<int> pixel, Span<float> value)
    {
        int total = channels * pooledPlane;
        if (pooledGrad.Length < total || pooled.Length < total || argmax.Length < total || pixel.Length < total || value.Length < total)
            throw new ArgumentException("collect: spans shorter than channels x pooled plane");
        if (Engine.UseAvx2) return CollectAvx2(pooledGrad, pooled, argmax, channels, pooledPlane, cap, start, pixel, value);
        int e = 0;
        for (int o = 0; o < channels; o++)
        {
            start[o] = e;
            int k0 = o * pooledPlane;
            for (int q = 0; q < pooledPlane; q++)
            {
                float gv = PassedGradient(pooledGrad[k0 + q], pooled[k0 + q], cap);
                if (gv == 0f) continue;
                pixel[e] = argmax[k0 + q];
                value[e++] = gv;
            }
        }
        start[channels] = e;
        return e;
    }

    /// <summary>Lane permutations that move the set lanes of an 8-bit mask to the front (AVX2 has no compress instruction).</summary>
    private static readonly int[] s_leftPack = BuildLeftPack();

    private static int[] BuildLeftPack()
    {
        var t = new int[256 * 8];
        for (int m = 0; m < 256; m++)
        {
            int k = 0;
            for (int lane = 0; lane < 8; lane++) if ((m & (1 << lane)) != 0) t[m * 8 + k++] = lane;
            for (; k < 8; k++) t[m * 8 + k] = 0;
        }
        return t;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int CollectAvx2(ReadOnlySpan<float> pooledGrad, ReadOnlySpan<float> pooled, ReadOnlySpan<int> argmax, int channels,
        int pooledPlane, float cap, Span<int> start, Span<int> pixel, Span<float> value)
    {
        ref float gr = ref MemoryMarshal.GetReference(pooledGrad);
        ref float vr = ref MemoryMarshal.GetReference(pooled);
        ref int ir = ref MemoryMarshal.GetReference(argmax);
        ref int pr = ref MemoryMarshal.GetReference(pixel);
        ref float valr = ref MemoryMarshal.GetReference(value);
        ref int lut = ref MemoryMarshal.GetArrayDataReference(s_leftPack);
        var vcap = Vector256.Create(cap);
        int e = 0, limit = pixel.Length;
        for (int o = 0; o < channels; o++)
        {
            start[o] = e;
            int k0 = o * pooledPlane;
            int q = 0;
            for (; q + 8 <= pooledPlane; q += 8)
            {
                var g = Vector256.LoadUnsafe(ref gr, (nuint)(k0 + q));
                var v = Vector256.LoadUnsafe(ref vr, (nuint)(k0 + q));
                var pass = Vector256.GreaterThan(v, Vector256<float>.Zero) & Vector256.LessThan(v, vcap) & ~Vector256.Equals(g, Vector256<float>.Zero);
                int m = (int)Vector256.ExtractMostSignificantBits(pass);
                if (m == 0) continue;
                var perm = Vector256.LoadUnsafe(ref lut, (nuint)(m * 8));
                int cnt = System.Numerics.BitOperations.PopCount((uint)m);
                var pg = Avx2.PermuteVar8x32(g, perm);
                var pi = Avx2.PermuteVar8x32(Vector256.LoadUnsafe(ref ir, (nuint)(k0 + q)), perm);
                if (e + 8 <= limit)
                {
                    // Whole vectors: the lanes past cnt are overwritten by the next store (or lie past the entries).
                    pg.StoreUnsafe(ref valr, (nuint)e);
                    pi.StoreUnsafe(ref pr, (nuint)e);
                }
                else
                {
                    for (int l = 0; l < cnt; l++) { Unsafe.Add(ref valr, e + l) = pg[l]; Unsafe.Add(ref pr, e + l) = pi[l]; }
                }
                e += cnt;
            }
            for (; q < pooledPlane; q++)
            {
                float gv = PassedGradient(Unsafe.Add(ref gr, k0 + q), Unsafe.Add(ref vr, k0 + q), cap);
                if (gv == 0f) continue;
                Unsafe.Add(ref pr, e) = Unsafe.Add(ref ir, k0 + q);
                Unsafe.Add(ref valr, e++) = gv;
            }
        }
        start[channels] = e;
        return e;
    }

    /// <summary>
    /// Weight gradient from collected non-zeros (<see cref="CollectByChannel"/>) and the channels-last padded input:
    /// dWcl[o][ky][kx][i] (+)= sum over channel o's entries of value * xcl[offsets[pixel] + (ky * wp + kx) * InC + i].
    /// Register blocks of 3 taps x 32 channels (12 accumulators). <paramref name="rowScratch"/> holds at least as many
    /// ints as there are entries (each entry's input offset, looked up once).
    /// </summary>
    public static void SparseWeightGradient(in Conv2dShape s, ReadOnlySpan<int> offsets, ReadOnlySpan<int> start, ReadOnlySpan<int> pixel,
        ReadOnlySpan<float> value, ReadOnlySpan<float> xcl, int wp, Span<float> dwcl, bool accumulate, Span<int> rowScratch)
    {
        int c = s.InC, taps = s.KH * s.KW;
        if (!accumulate) dwcl.Slice(0, s.OutC * taps * c).Clear();
        bool vector = Engine.UseAvx2 && c % 8 == 0, fast = vector && s.KW == 3 && c % 32 == 0;
        int count = start[s.OutC];
        if (rowScratch.Length < count) throw new ArgumentException("sparse weight gradient: row scratch shorter than the entries");
        for (int e = 0; e < count; e++) rowScratch[e] = offsets[pixel[e]]; // each entry's receptive-field corner in xcl
        for (int o = 0; o < s.OutC; o++)
        {
            int e0 = start[o], e1 = start[o + 1];
            if (e0 == e1) continue;
            var dwo = dwcl.Slice(o * taps * c, taps * c);
            if (fast)
            {
                // The common case: one call runs all filter rows of this channel.
                for (int i0 = 0; i0 < c; i0 += 32)
                    if (Engine.UseAvx512)
                        GatherRows3x32Avx512(rowScratch.Slice(e0, e1 - e0), value.Slice(e0, e1 - e0), xcl, i0, wp * c, dwo, i0, s.KW * c, s.KH, c);
                    else
                        GatherRows3x32Avx2(rowScratch.Slice(e0, e1 - e0), value.Slice(e0, e1 - e0), xcl, i0, wp * c, dwo, i0, s.KW * c, s.KH, c);
                continue;
            }
            if (vector)
            {
                for (int ky = 0; ky < s.KH; ky++)
                    for (int kx0 = 0; kx0 < s.KW; kx0 += 3)
                        for (int i0 = 0; i0 < c; i0 += 32)
                            GatherRowsAvx2(rowScratch.Slice(e0, e1 - e0), value.Slice(e0, e1 - e0), xcl, c, (ky * wp + kx0) * c + i0,
                                dwo, (ky * s.KW + kx0) * c + i0, Math.Min(3, s.KW - kx0), Math.Min(32, c - i0) / 8);
                continue;
            }
            for (int e = e0; e < e1; e++)
            {
                float gv = value[e];
                int b = rowScratch[e];
                for (int ky = 0; ky < s.KH; ky++)
                    for (int kx = 0; kx < s.KW; kx++)
                    {
                        var xs = xcl.Slice(b + (ky * wp + kx) * c, c);
                        var d = dwo.Slice((ky * s.KW + kx) * c, c);
                        for (int i = 0; i < c; i++) d[i] += gv * xs[i];
                    }
            }
        }
    }

    /// <summary>
    /// The register block both sparse gradients run on: up to 3 taps x 32 channels (12 accumulators) of
    /// dst[dOffset + kx * c + i] += sum over entries e of value[e] * src[rowOffsets[e] + srcOffset + kx * c + i],
    /// kx &lt; <paramref name="nkx"/>, i &lt; 8 <paramref name="nv"/>. The weight gradient gathers input rows (each
    /// entry's pixel's receptive-field corner), the input gradient gathers filter rows (each entry's channel's filter).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GatherRowsAvx2(ReadOnlySpan<int> rowOffsets, ReadOnlySpan<float> value, ReadOnlySpan<float> src,
        int c, int srcOffset, Span<float> dst, int dOffset, int nkx, int nv)
    {
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
        Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
        ref float xr = ref Unsafe.Add(ref MemoryMarshal.GetReference(src), srcOffset);
        ref int off = ref MemoryMarshal.GetReference(rowOffsets);
        ref float val = ref MemoryMarshal.GetReference(value);
        int n = rowOffsets.Length;
        // Any block (fewer taps or channels at the edges); whole 3 x 32 blocks over all filter rows run in GatherRows3x32Avx2.
        for (int e = 0; e < n; e++)
        {
            var vg = Vector256.Create(Unsafe.Add(ref val, e));
            ref float x0 = ref Unsafe.Add(ref xr, Unsafe.Add(ref off, e));
            ref float x1 = ref Unsafe.Add(ref x0, c);
            ref float x2 = ref Unsafe.Add(ref x1, c);
            a00 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x0), a00);
            if (nv > 1) a01 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x0, 8), a01);
            if (nv > 2) a02 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x0, 16), a02);
            if (nv > 3) a03 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x0, 24), a03);
            if (nkx > 1)
            {
                a10 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x1), a10);
                if (nv > 1) a11 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x1, 8), a11);
                if (nv > 2) a12 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x1, 16), a12);
                if (nv > 3) a13 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x1, 24), a13);
            }
            if (nkx > 2)
            {
                a20 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x2), a20);
                if (nv > 1) a21 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x2, 8), a21);
                if (nv > 2) a22 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x2, 16), a22);
                if (nv > 3) a23 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref x2, 24), a23);
            }
        }
        ref float d = ref Unsafe.Add(ref MemoryMarshal.GetReference(dst), dOffset);
        AddRow(ref d, nv, a00, a01, a02, a03);
        if (nkx > 1) AddRow(ref Unsafe.Add(ref d, c), nv, a10, a11, a12, a13);
        if (nkx > 2) AddRow(ref Unsafe.Add(ref d, 2 * c), nv, a20, a21, a22, a23);
    }

    /// <summary>
    /// <see cref="GatherRowsAvx2"/> for 3 taps x 32 channels over <paramref name="rows"/> filter rows in one call, with
    /// each entry's source offset already looked up (<paramref name="rowOffsets"/>):
    /// row r reads src from rowOffsets[e] + srcOffset + r * srcRowStep and adds into dst at dOffset + r * dstRowStep.
    /// Two entries per iteration (measured: 15-25% faster than one).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void GatherRows3x32Avx2(ReadOnlySpan<int> rowOffsets, ReadOnlySpan<float> value, ReadOnlySpan<float> src,
        int srcOffset, int srcRowStep, Span<float> dst, int dOffset, int dstRowStep, int rows, int c)
    {
        ref int off = ref MemoryMarshal.GetReference(rowOffsets);
        ref float val = ref MemoryMarshal.GetReference(value);
        int n = rowOffsets.Length;
        for (int r = 0; r < rows; r++)
        {
            ref float xr = ref Unsafe.Add(ref MemoryMarshal.GetReference(src), srcOffset + r * srcRowStep);
            Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
            int e = 0;
            for (; e + 2 <= n; e += 2)
            {
                Accumulate(Vector256.Create(Unsafe.Add(ref val, e)), ref Unsafe.Add(ref xr, Unsafe.Add(ref off, e)), c,
                    ref a00, ref a01, ref a02, ref a03, ref a10, ref a11, ref a12, ref a13, ref a20, ref a21, ref a22, ref a23);
                Accumulate(Vector256.Create(Unsafe.Add(ref val, e + 1)), ref Unsafe.Add(ref xr, Unsafe.Add(ref off, e + 1)), c,
                    ref a00, ref a01, ref a02, ref a03, ref a10, ref a11, ref a12, ref a13, ref a20, ref a21, ref a22, ref a23);
            }
            if (e < n)
                Accumulate(Vector256.Create(Unsafe.Add(ref val, e)), ref Unsafe.Add(ref xr, Unsafe.Add(ref off, e)), c,
                    ref a00, ref a01, ref a02, ref a03, ref a10, ref a11, ref a12, ref a13, ref a20, ref a21, ref a22, ref a23);
            ref float d = ref Unsafe.Add(ref MemoryMarshal.GetReference(dst), dOffset + r * dstRowStep);
            AddRow(ref d, 4, a00, a01, a02, a03);
            AddRow(ref Unsafe.Add(ref d, c), 4, a10, a11, a12, a13);
            AddRow(ref Unsafe.Add(ref d, 2 * c), 4, a20, a21, a22, a23);
        }
    }

    /// <summary>a[k][j] += g * x[k * c + 8 j] for 3 taps k and 4 vectors j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate(Vector256<float> g, ref float x, int c,
        ref Vector256<float> a00, ref Vector256<float> a01, ref Vector256<float> a02, ref Vector256<float> a03,
        ref Vector256<float> a10, ref Vector256<float> a11, ref Vector256<float> a12, ref Vector256<float> a13,
        ref Vector256<float> a20, ref Vector256<float> a21, ref Vector256<float> a22, ref Vector256<float> a23)
    {
        ref float x1 = ref Unsafe.Add(ref x, c);
        ref float x2 = ref Unsafe.Add(ref x1, c);
        a00 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x), a00); a01 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x, 8), a01);
        a02 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x, 16), a02); a03 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x, 24), a03);
        a10 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x1), a10); a11 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x1, 8), a11);
        a12 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x1, 16), a12); a13 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x1, 24), a13);
        a20 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x2), a20); a21 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x2, 8), a21);
        a22 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x2, 16), a22); a23 = Fma.MultiplyAdd(g, Vector256.LoadUnsafe(ref x2, 24), a23);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRow(ref float d, int nv, Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        (Vector256.LoadUnsafe(ref d) + a0).StoreUnsafe(ref d);
        if (nv > 1) (Vector256.LoadUnsafe(ref d, 8) + a1).StoreUnsafe(ref d, 8);
        if (nv > 2) (Vector256.LoadUnsafe(ref d, 16) + a2).StoreUnsafe(ref d, 16);
        if (nv > 3) (Vector256.LoadUnsafe(ref d, 24) + a3).StoreUnsafe(ref d, 24);
    }

    /// <summary>dW[o][i][ky][kx] (+)= dWcl[o][ky][kx][i]: from the channels-last order of the sparse kernels to the weights' order.</summary>
    public static void WeightsFromChannelsLast(ReadOnlySpan<float> dwcl, int outC, int inC, int taps, Span<float> dw, bool accumulate)
    {
        if (dwcl.Length < outC * taps * inC || dw.Length < outC * inC * taps) throw new ArgumentException("weights from channels-last: spans too short");
        ref float s0 = ref MemoryMarshal.GetReference(dwcl);
        ref float d0 = ref MemoryMarshal.GetReference(dw);
        for (int o = 0; o < outC; o++)
            for (int i = 0; i < inC; i++)
            {
                ref float d = ref Unsafe.Add(ref d0, (o * inC + i) * taps);
                ref float src = ref Unsafe.Add(ref s0, o * taps * inC + i);
                for (int t = 0; t < taps; t++)
                {
                    float v = Unsafe.Add(ref src, t * inC);
                    Unsafe.Add(ref d, t) = accumulate ? Unsafe.Add(ref d, t) + v : v;
                }
            }
    }

    /// <summary>Wcl[o][ky][kx][i] = W[o][i][ky][kx]: filters in channels-last order for <see cref="SparseDataGradient"/>.</summary>
    public static void WeightsToChannelsLast(ReadOnlySpan<float> w, int outC, int inC, int taps, Span<float> wcl)
    {
        for (int o = 0; o < outC; o++)
            for (int i = 0; i < inC; i++)
                for (int t = 0; t < taps; t++)
                    wcl[(o * taps + t) * inC + i] = w[(o * inC + i) * taps + t];
    }

    /// <summary>
    /// Regroups collected non-zeros by the output pixel they land on (a counting sort, channel order kept within a pixel):
    /// pixel p owns entries [pixStart[p], pixStart[p+1]) of <paramref name="sortedChannel"/> / <paramref name="sortedValue"/>.
    /// </summary>
    public static void SortByPixel(ReadOnlySpan<int> start, ReadOnlySpan<int> pixel, ReadOnlySpan<float> value, int channels, int pixels,
        Span<int> pixStart, Span<int> sortedChannel, Span<float> sortedValue)
    {
        int count = start[channels];
        pixStart.Slice(0, pixels + 1).Clear();
        for (int e = 0; e < count; e++) pixStart[pixel[e] + 1]++;
        for (int p = 0; p < pixels; p++) pixStart[p + 1] += pixStart[p];
        for (int o = 0; o < channels; o++)
            for (int e = start[o]; e < start[o + 1]; e++)
            {
                int at = pixStart[pixel[e]]++;
                sortedChannel[at] = o;
                sortedValue[at] = value[e];
            }
        for (int p = pixels; p > 0; p--) pixStart[p] = pixStart[p - 1];
        pixStart[0] = 0;
    }

    /// <summary>
    /// Input gradient from non-zeros sorted by pixel (<see cref="SortByPixel"/>), channels-last filters Wcl[o][ky][kx][i]
    /// and a zeroed, padded channels-last gradient dxcl: per pixel and filter row, the channels' contributions to 3 taps
    /// x 32 input channels are summed in registers and added once. <paramref name="rowScratch"/> holds at least as many
    /// ints as there are entries (each entry's filter offset in wcl, computed once).
    /// </summary>
    public static void SparseDataGradient(in Conv2dShape s, ReadOnlySpan<int> offsets, ReadOnlySpan<int> pixStart,
        ReadOnlySpan<int> channel, ReadOnlySpan<float> value, ReadOnlySpan<float> wcl, Span<float> dxcl, int wp, Span<int> rowScratch)
    {
        int c = s.InC, taps = s.KH * s.KW, filter = taps * c;
        bool vector = Engine.UseAvx2 && c % 8 == 0, fast = vector && s.KW == 3 && c % 32 == 0;
        int count = pixStart[s.OutPlane];
        if (rowScratch.Length < count) throw new ArgumentException("sparse input gradient: row scratch shorter than the entries");
        for (int e = 0; e < count; e++) rowScratch[e] = channel[e] * filter; // each entry's filter in wcl
        for (int p = 0; p < s.OutPlane; p++)
        {
            int e0 = pixStart[p], e1 = pixStart[p + 1];
            if (e0 == e1) continue;
            if (fast)
            {
                for (int i0 = 0; i0 < c; i0 += 32)
                    if (Engine.UseAvx512)
                        GatherRows3x32Avx512(rowScratch.Slice(e0, e1 - e0), value.Slice(e0, e1 - e0), wcl, i0, s.KW * c,
                            dxcl, offsets[p] + i0, wp * c, s.KH, c);
                    else
                        GatherRows3x32Avx2(rowScratch.Slice(e0, e1 - e0), value.Slice(e0, e1 - e0), wcl, i0, s.KW * c,
                            dxcl, offsets[p] + i0, wp * c, s.KH, c);
                continue;
            }
            if (vector)
            {
                for (int ky = 0; ky < s.KH; ky++)
                    for (int kx0 = 0; kx0 < s.KW; kx0 += 3)
                        for (int i0 = 0; i0 < c; i0 += 32)
                            GatherRowsAvx2(rowScratch.Slice(e0, e1 - e0), value.Slice(e0, e1 - e0), wcl, c, (ky * s.KW + kx0) * c + i0,
                                dxcl, offsets[p] + (ky * wp + kx0) * c + i0, Math.Min(3, s.KW - kx0), Math.Min(32, c - i0) / 8);
                continue;
            }
            for (int e = e0; e < e1; e++)
                for (int ky = 0; ky < s.KH; ky++)
                    for (int kx = 0; kx < s.KW; kx++)
                    {
                        var wr = wcl.Slice(rowScratch[e] + (ky * s.KW + kx) * c, c);
                        var d = dxcl.Slice(offsets[p] + (ky * wp + kx) * c, c);
                        float gv = value[e];
                        for (int i = 0; i < c; i++) d[i] += gv * wr[i];
                    }
        }
    }

    /// <summary>
    /// Weight gradient from collected non-zeros for layers with few taps (InC x KH x KW &lt;= 64; a first layer): every
    /// output pixel's im2col column is built once into <paramref name="patches"/> (kPad floats per pixel, a multiple of 8),
    /// then each channel adds value x column for its entries. dw is in the weights' own order.
    /// </summary>
    public static void SparseWeightGradientPatches(in Conv2dShape s, ReadOnlySpan<int> start, ReadOnlySpan<int> pixel, ReadOnlySpan<float> value,
        ReadOnlySpan<float> padded, int hp, int wp, Span<float> patches, int kPad, Span<float> dw, bool accumulate)
    {
        int k = s.K;
        if (kPad > 64 || kPad % 8 != 0 || kPad < k) throw new ArgumentException($"patches: {kPad} values per column (at least {k}, at most 64, a multiple of 8)");
        if (patches.Length < s.OutPlane * kPad) throw new ArgumentException("patches: buffer too short");
        ref float pr = ref MemoryMarshal.GetReference(patches);
        ref float src = ref MemoryMarshal.GetReference(padded);
        bool fast = Engine.UseAvx2 && s.InC == 1 && s.KH == 3 && s.KW == 3 && s.StrideW == 1 && kPad == 16;
        Span<float> taps = stackalloc float[16 * 8];
        ref float tr = ref MemoryMarshal.GetReference(taps);
        for (int oy = 0, p = 0; oy < s.OutH; oy++)
            for (int ox = 0; ox < s.OutW; ox++, p++)
            {
                if (fast && ox + 8 <= s.OutW)
                {
                    // 8 pixels at once: the 9 taps as 9 shifted row loads, transposed into 8 columns of 16.
                    ref float r0 = ref Unsafe.Add(ref src, (oy * s.StrideH) * wp + ox);
                    ref float r1 = ref Unsafe.Add(ref r0, wp);
                    ref float r2 = ref Unsafe.Add(ref r1, wp);
                    Vector256.LoadUnsafe(ref r0).StoreUnsafe(ref tr, 0); Vector256.LoadUnsafe(ref r0, 1).StoreUnsafe(ref tr, 8); Vector256.LoadUnsafe(ref r0, 2).StoreUnsafe(ref tr, 16);
                    Vector256.LoadUnsafe(ref r1).StoreUnsafe(ref tr, 24); Vector256.LoadUnsafe(ref r1, 1).StoreUnsafe(ref tr, 32); Vector256.LoadUnsafe(ref r1, 2).StoreUnsafe(ref tr, 40);
                    Vector256.LoadUnsafe(ref r2).StoreUnsafe(ref tr, 48); Vector256.LoadUnsafe(ref r2, 1).StoreUnsafe(ref tr, 56); Vector256.LoadUnsafe(ref r2, 2).StoreUnsafe(ref tr, 64);
                    for (int z = 72; z < 128; z += 8) Vector256<float>.Zero.StoreUnsafe(ref tr, (nuint)z);
                    // taps[t][pixel] (16 x 8) -> column[pixel][t] (8 x 16)
                    ref float dst = ref Unsafe.Add(ref pr, p * 16);
                    Sgemm.Transpose8x8(ref tr, 8, ref dst, 16);
                    Sgemm.Transpose8x8(ref Unsafe.Add(ref tr, 64), 8, ref Unsafe.Add(ref dst, 8), 16);
                    ox += 7;
                    p += 7;
                    continue;
                }
                ref float col = ref Unsafe.Add(ref pr, p * kPad);
                int j = 0;
                for (int i = 0; i < s.InC; i++)
                    for (int ky = 0; ky < s.KH; ky++)
                    {
                        ref float row = ref Unsafe.Add(ref src, (i * hp + oy * s.StrideH + ky) * wp + ox * s.StrideW);
                        for (int kx = 0; kx < s.KW; kx++) Unsafe.Add(ref col, j++) = Unsafe.Add(ref row, kx);
                    }
                for (; j < kPad; j++) Unsafe.Add(ref col, j) = 0f;
            }
        Span<float> acc = stackalloc float[64];
        ref float ar = ref MemoryMarshal.GetReference(acc);
        ref int pix = ref MemoryMarshal.GetReference(pixel);
        ref float val = ref MemoryMarshal.GetReference(value);
        for (int o = 0; o < s.OutC; o++)
        {
            int e0 = start[o], e1 = start[o + 1];
            if (Engine.UseAvx2 && kPad == 16)
            {
                // Up to 16 taps (a 3x3 filter on one channel): the accumulators stay in registers, four entries per
                // iteration into four pairs so that consecutive FMAs do not wait on each other (summed in a fixed order).
                Vector256<float> a0 = default, a1 = default, b0 = default, b1 = default;
                Vector256<float> c0 = default, c1 = default, d0 = default, d1 = default;
                int e = e0;
                for (; e + 4 <= e1; e += 4)
                {
                    ref float ca = ref Unsafe.Add(ref pr, Unsafe.Add(ref pix, e) * 16);
                    ref float cb = ref Unsafe.Add(ref pr, Unsafe.Add(ref pix, e + 1) * 16);
                    ref float cc = ref Unsafe.Add(ref pr, Unsafe.Add(ref pix, e + 2) * 16);
                    ref float cd = ref Unsafe.Add(ref pr, Unsafe.Add(ref pix, e + 3) * 16);
                    var va = Vector256.Create(Unsafe.Add(ref val, e));
                    var vb = Vector256.Create(Unsafe.Add(ref val, e + 1));
                    var vc = Vector256.Create(Unsafe.Add(ref val, e + 2));
                    var vd = Vector256.Create(Unsafe.Add(ref val, e + 3));
                    a0 = Fma.MultiplyAdd(va, Vector256.LoadUnsafe(ref ca), a0);
                    a1 = Fma.MultiplyAdd(va, Vector256.LoadUnsafe(ref ca, 8), a1);
                    b0 = Fma.MultiplyAdd(vb, Vector256.LoadUnsafe(ref cb), b0);
                    b1 = Fma.MultiplyAdd(vb, Vector256.LoadUnsafe(ref cb, 8), b1);
                    c0 = Fma.MultiplyAdd(vc, Vector256.LoadUnsafe(ref cc), c0);
                    c1 = Fma.MultiplyAdd(vc, Vector256.LoadUnsafe(ref cc, 8), c1);
                    d0 = Fma.MultiplyAdd(vd, Vector256.LoadUnsafe(ref cd), d0);
                    d1 = Fma.MultiplyAdd(vd, Vector256.LoadUnsafe(ref cd, 8), d1);
                }
                for (; e < e1; e++)
                {
                    var vg = Vector256.Create(Unsafe.Add(ref val, e));
                    ref float col = ref Unsafe.Add(ref pr, Unsafe.Add(ref pix, e) * 16);
                    a0 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref col), a0);
                    a1 = Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref col, 8), a1);
                }
                ((a0 + b0) + (c0 + d0)).StoreUnsafe(ref ar);
                ((a1 + b1) + (c1 + d1)).StoreUnsafe(ref ar, 8);
            }
            else
            {
                acc.Slice(0, kPad).Clear();
                for (int e = e0; e < e1; e++)
                {
                    float gv = Unsafe.Add(ref val, e);
                    ref float col = ref Unsafe.Add(ref pr, Unsafe.Add(ref pix, e) * kPad);
                    if (Engine.UseAvx2)
                    {
                        var vg = Vector256.Create(gv);
                        for (int j = 0; j < kPad; j += 8)
                            Fma.MultiplyAdd(vg, Vector256.LoadUnsafe(ref col, (nuint)j), Vector256.LoadUnsafe(ref ar, (nuint)j)).StoreUnsafe(ref ar, (nuint)j);
                    }
                    else
                    {
                        for (int j = 0; j < k; j++) Unsafe.Add(ref ar, j) += gv * Unsafe.Add(ref col, j);
                    }
                }
            }
            var d = dw.Slice(o * k, k);
            if (accumulate) System.Numerics.Tensors.TensorPrimitives.Add(d, acc.Slice(0, k), d);
            else acc.Slice(0, k).CopyTo(d);
        }
    }
}
