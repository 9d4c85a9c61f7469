using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

/// <summary>
/// The register tiles of <see cref="BlockedConv"/>, picked once per process: the AVX-512 tiles, their AVX2 halves or
/// the scalar reference. All three compute every result as the same FMA chain in the same order (the scalar one with
/// <see cref="MathF.FusedMultiplyAdd"/>), so they give the same bits; the tests hold the fast ones to the scalar one.
/// Contracts (generated tiles: build/codegen/blocked_conv.py):
/// <list type="bullet">
/// <item>F: acc[t * accPitch + c] (+)= sum over k in [k0, k1) of src[off[k] + t] * w[k * ldw + c], for t &lt; tw pixels
/// and c &lt; 16 * nb channels.</item>
/// <item>G: acc[j * accPitch + c] (+)= sum over r &lt; rows, q &lt; cols of x[off[j] + r * pitch + q] *
/// dy[(r * cols + q) * ldy + c], for j &lt; tt taps and c &lt; 16 * nb channels.</item>
/// </list>
/// "(+)=" adds to acc when accumulate is set, else overwrites it.
/// </summary>
internal static unsafe class BlockedTiles
{
    /// <summary>Widest forward tile for <paramref name="nb"/> blocks (the AVX-512 menu; the other paths follow it).</summary>
    public static int MaxWidth(int nb) => BlockedConvAvx512.MaxF[nb];

    /// <summary>Most taps of a weight-gradient tile for <paramref name="nb"/> blocks.</summary>
    public static int MaxTaps(int nb) => BlockedConvAvx512.MaxG[nb];

    /// <summary>Most 16-channel blocks a tile holds.</summary>
    public const int MaxBlocks = 4;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void F(int tw, int nb, float* src, int* off, int k0, int k1, float* w, nint ldw, float* acc, nint accPitch, bool accumulate)
    {
        if (Engine.UseAvx512) BlockedConvAvx512.F(tw, nb, src, off, k0, k1, w, ldw, acc, accPitch, accumulate);
        else if (Engine.UseAvx2) BlockedConvAvx2.F(tw, nb, src, off, k0, k1, w, ldw, acc, accPitch, accumulate);
        else ScalarF(tw, nb, src, off, k0, k1, w, ldw, acc, accPitch, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void G(int tt, int nb, float* x, int* off, int rows, int cols, nint pitch, float* dy, nint ldy, float* acc, nint accPitch, bool accumulate)
    {
        if (Engine.UseAvx512) BlockedConvAvx512.G(tt, nb, x, off, rows, cols, pitch, dy, ldy, acc, accPitch, accumulate);
        else if (Engine.UseAvx2) BlockedConvAvx2.G(tt, nb, x, off, rows, cols, pitch, dy, ldy, acc, accPitch, accumulate);
        else ScalarG(tt, nb, x, off, rows, cols, pitch, dy, ldy, acc, accPitch, accumulate);
    }

    /// <summary>The scalar reference of the F tile.</summary>
    public static void ScalarF(int tw, int nb, float* src, int* off, int k0, int k1, float* w, nint ldw, float* acc, nint accPitch, bool accumulate)
    {
        int lanes = 16 * nb;
        for (int t = 0; t < tw; t++)
            for (int c = 0; c < lanes; c++)
            {
                float sum = accumulate ? acc[t * accPitch + c] : 0f;
                for (int k = k0; k < k1; k++) sum = MathF.FusedMultiplyAdd(src[off[k] + t], w[k * ldw + c], sum);
                acc[t * accPitch + c] = sum;
            }
    }

    /// <summary>The scalar reference of the G tile.</summary>
    public static void ScalarG(int tt, int nb, float* x, int* off, int rows, int cols, nint pitch, float* dy, nint ldy, float* acc, nint accPitch, bool accumulate)
    {
        int lanes = 16 * nb;
        for (int j = 0; j < tt; j++)
            for (int c = 0; c < lanes; c++)
            {
                float sum = accumulate ? acc[j * accPitch + c] : 0f;
                for (int r = 0; r < rows; r++)
                    for (int q = 0; q < cols; q++)
                        sum = MathF.FusedMultiplyAdd(x[off[j] + r * pitch + q], dy[(r * cols + q) * ldy + c], sum);
                acc[j * accPitch + c] = sum;
            }
    }

    /// <summary>
    /// <c>dst[c * dstPitch + r] = src[r * srcPitch + c]</c> for r &lt; <paramref name="rows"/>, c &lt; <paramref name="cols"/>:
    /// between the pixel-major tiles and the channel-major planes every other layer reads. 16x16 blocks transposed in
    /// registers where the CPU has AVX-512 (8x8 with AVX2); partial blocks are moved element by element, so nothing outside
    /// the two rectangles is read or written.
    /// </summary>
    public static void Transpose(float* src, nint srcPitch, int rows, int cols, float* dst, nint dstPitch) =>
        Transpose(src, srcPitch, rows, cols, dst, dstPitch, null, 0f, 0f);

    /// <summary>
    /// <see cref="Transpose(float*, nint, int, int, float*, nint)"/> of <c>min(max(src[r * srcPitch + c] + bias[c], low),
    /// high)</c> when <paramref name="bias"/> is not null (the same operations as <see cref="BlockedEpilogue.BiasClamp"/>,
    /// so the same bits): a convolution's epilogue applied on the way out instead of in a pass of its own over the tile.
    /// </summary>
    public static void Transpose(float* src, nint srcPitch, int rows, int cols, float* dst, nint dstPitch, float* bias, float low, float high)
    {
        int n = Engine.UseAvx512 ? 16 : Engine.UseAvx2 ? 8 : 0;
        if (n == 0)
        {
            for (int r = 0; r < rows; r++)
                for (int c = 0; c < cols; c++) dst[c * dstPitch + r] = Out(src[r * srcPitch + c], c);
            return;
        }
        for (int r0 = 0; r0 < rows; r0 += n)
            for (int c0 = 0; c0 < cols; c0 += n)
            {
                int nr = Math.Min(n, rows - r0), nc = Math.Min(n, cols - c0);
                float* s = src + r0 * srcPitch + c0;
                float* d = dst + c0 * dstPitch + r0;
                if (nr == n && nc == n)
                {
                    if (n == 16) Transpose16(s, srcPitch, d, dstPitch, bias == null ? null : bias + c0, low, high);
                    else Transpose8(s, srcPitch, d, dstPitch, bias == null ? null : bias + c0, low, high);
                    continue;
                }
                // A partial block element by element: staging it through a zeroed tile cost more than the moves
                // (a 1 x 784 row, a dense layer's single unit, took 27% of a batch-1 training step that way).
                for (int r = 0; r < nr; r++)
                    for (int c = 0; c < nc; c++) d[c * dstPitch + r] = Out(s[r * srcPitch + c], c0 + c);
            }

        float Out(float v, int c) => bias == null ? v : MathF.Min(MathF.Max(v + bias[c], low), high);
    }

    /// <summary>dst[c * dstPitch + r] = src[r * srcPitch + c] for r, c &lt; 16 (reads 16 full rows of src).</summary>
    private static void Transpose16(float* src, nint srcPitch, float* dst, nint dstPitch, float* bias, float low, float high)
    {
        var r0 = Avx512F.LoadVector512(src); var r1 = Avx512F.LoadVector512(src + srcPitch);
        var r2 = Avx512F.LoadVector512(src + 2 * srcPitch); var r3 = Avx512F.LoadVector512(src + 3 * srcPitch);
        var r4 = Avx512F.LoadVector512(src + 4 * srcPitch); var r5 = Avx512F.LoadVector512(src + 5 * srcPitch);
        var r6 = Avx512F.LoadVector512(src + 6 * srcPitch); var r7 = Avx512F.LoadVector512(src + 7 * srcPitch);
        var r8 = Avx512F.LoadVector512(src + 8 * srcPitch); var r9 = Avx512F.LoadVector512(src + 9 * srcPitch);
        var r10 = Avx512F.LoadVector512(src + 10 * srcPitch); var r11 = Avx512F.LoadVector512(src + 11 * srcPitch);
        var r12 = Avx512F.LoadVector512(src + 12 * srcPitch); var r13 = Avx512F.LoadVector512(src + 13 * srcPitch);
        var r14 = Avx512F.LoadVector512(src + 14 * srcPitch); var r15 = Avx512F.LoadVector512(src + 15 * srcPitch);
        if (bias != null)
        {
            var b = Vector512.Load(bias);
            var lo = Vector512.Create(low);
            var hi = Vector512.Create(high);
            r0 = Vector512.Min(Vector512.Max(r0 + b, lo), hi); r1 = Vector512.Min(Vector512.Max(r1 + b, lo), hi);
            r2 = Vector512.Min(Vector512.Max(r2 + b, lo), hi); r3 = Vector512.Min(Vector512.Max(r3 + b, lo), hi);
            r4 = Vector512.Min(Vector512.Max(r4 + b, lo), hi); r5 = Vector512.Min(Vector512.Max(r5 + b, lo), hi);
            r6 = Vector512.Min(Vector512.Max(r6 + b, lo), hi); r7 = Vector512.Min(Vector512.Max(r7 + b, lo), hi);
            r8 = Vector512.Min(Vector512.Max(r8 + b, lo), hi); r9 = Vector512.Min(Vector512.Max(r9 + b, lo), hi);
            r10 = Vector512.Min(Vector512.Max(r10 + b, lo), hi); r11 = Vector512.Min(Vector512.Max(r11 + b, lo), hi);
            r12 = Vector512.Min(Vector512.Max(r12 + b, lo), hi); r13 = Vector512.Min(Vector512.Max(r13 + b, lo), hi);
            r14 = Vector512.Min(Vector512.Max(r14 + b, lo), hi); r15 = Vector512.Min(Vector512.Max(r15 + b, lo), hi);
        }
        // Pairs of rows interleaved, then columns of 4 rows per 128-bit lane, then 128-bit lanes regrouped twice.
        var t0 = Avx512F.UnpackLow(r0, r1); var t1 = Avx512F.UnpackHigh(r0, r1);
        var t2 = Avx512F.UnpackLow(r2, r3); var t3 = Avx512F.UnpackHigh(r2, r3);
        var t4 = Avx512F.UnpackLow(r4, r5); var t5 = Avx512F.UnpackHigh(r4, r5);
        var t6 = Avx512F.UnpackLow(r6, r7); var t7 = Avx512F.UnpackHigh(r6, r7);
        var t8 = Avx512F.UnpackLow(r8, r9); var t9 = Avx512F.UnpackHigh(r8, r9);
        var t10 = Avx512F.UnpackLow(r10, r11); var t11 = Avx512F.UnpackHigh(r10, r11);
        var t12 = Avx512F.UnpackLow(r12, r13); var t13 = Avx512F.UnpackHigh(r12, r13);
        var t14 = Avx512F.UnpackLow(r14, r15); var t15 = Avx512F.UnpackHigh(r14, r15);
        var u0 = Avx512F.Shuffle(t0, t2, 0x44); var u1 = Avx512F.Shuffle(t0, t2, 0xEE);
        var u2 = Avx512F.Shuffle(t1, t3, 0x44); var u3 = Avx512F.Shuffle(t1, t3, 0xEE);
        var u4 = Avx512F.Shuffle(t4, t6, 0x44); var u5 = Avx512F.Shuffle(t4, t6, 0xEE);
        var u6 = Avx512F.Shuffle(t5, t7, 0x44); var u7 = Avx512F.Shuffle(t5, t7, 0xEE);
        var u8 = Avx512F.Shuffle(t8, t10, 0x44); var u9 = Avx512F.Shuffle(t8, t10, 0xEE);
        var u10 = Avx512F.Shuffle(t9, t11, 0x44); var u11 = Avx512F.Shuffle(t9, t11, 0xEE);
        var u12 = Avx512F.Shuffle(t12, t14, 0x44); var u13 = Avx512F.Shuffle(t12, t14, 0xEE);
        var u14 = Avx512F.Shuffle(t13, t15, 0x44); var u15 = Avx512F.Shuffle(t13, t15, 0xEE);
        var v0 = Avx512F.Shuffle4x128(u0, u4, 0x88); var v4 = Avx512F.Shuffle4x128(u0, u4, 0xDD);
        var v1 = Avx512F.Shuffle4x128(u1, u5, 0x88); var v5 = Avx512F.Shuffle4x128(u1, u5, 0xDD);
        var v2 = Avx512F.Shuffle4x128(u2, u6, 0x88); var v6 = Avx512F.Shuffle4x128(u2, u6, 0xDD);
        var v3 = Avx512F.Shuffle4x128(u3, u7, 0x88); var v7 = Avx512F.Shuffle4x128(u3, u7, 0xDD);
        var v8 = Avx512F.Shuffle4x128(u8, u12, 0x88); var v12 = Avx512F.Shuffle4x128(u8, u12, 0xDD);
        var v9 = Avx512F.Shuffle4x128(u9, u13, 0x88); var v13 = Avx512F.Shuffle4x128(u9, u13, 0xDD);
        var v10 = Avx512F.Shuffle4x128(u10, u14, 0x88); var v14 = Avx512F.Shuffle4x128(u10, u14, 0xDD);
        var v11 = Avx512F.Shuffle4x128(u11, u15, 0x88); var v15 = Avx512F.Shuffle4x128(u11, u15, 0xDD);
        Avx512F.Store(dst, Avx512F.Shuffle4x128(v0, v8, 0x88));
        Avx512F.Store(dst + 8 * dstPitch, Avx512F.Shuffle4x128(v0, v8, 0xDD));
        Avx512F.Store(dst + dstPitch, Avx512F.Shuffle4x128(v1, v9, 0x88));
        Avx512F.Store(dst + 9 * dstPitch, Avx512F.Shuffle4x128(v1, v9, 0xDD));
        Avx512F.Store(dst + 2 * dstPitch, Avx512F.Shuffle4x128(v2, v10, 0x88));
        Avx512F.Store(dst + 10 * dstPitch, Avx512F.Shuffle4x128(v2, v10, 0xDD));
        Avx512F.Store(dst + 3 * dstPitch, Avx512F.Shuffle4x128(v3, v11, 0x88));
        Avx512F.Store(dst + 11 * dstPitch, Avx512F.Shuffle4x128(v3, v11, 0xDD));
        Avx512F.Store(dst + 4 * dstPitch, Avx512F.Shuffle4x128(v4, v12, 0x88));
        Avx512F.Store(dst + 12 * dstPitch, Avx512F.Shuffle4x128(v4, v12, 0xDD));
        Avx512F.Store(dst + 5 * dstPitch, Avx512F.Shuffle4x128(v5, v13, 0x88));
        Avx512F.Store(dst + 13 * dstPitch, Avx512F.Shuffle4x128(v5, v13, 0xDD));
        Avx512F.Store(dst + 6 * dstPitch, Avx512F.Shuffle4x128(v6, v14, 0x88));
        Avx512F.Store(dst + 14 * dstPitch, Avx512F.Shuffle4x128(v6, v14, 0xDD));
        Avx512F.Store(dst + 7 * dstPitch, Avx512F.Shuffle4x128(v7, v15, 0x88));
        Avx512F.Store(dst + 15 * dstPitch, Avx512F.Shuffle4x128(v7, v15, 0xDD));
    }

    /// <summary>dst[c * dstPitch + r] = src[r * srcPitch + c] for r, c &lt; 8.</summary>
    private static void Transpose8(float* src, nint srcPitch, float* dst, nint dstPitch, float* bias, float low, float high)
    {
        var r0 = Avx.LoadVector256(src); var r1 = Avx.LoadVector256(src + srcPitch);
        var r2 = Avx.LoadVector256(src + 2 * srcPitch); var r3 = Avx.LoadVector256(src + 3 * srcPitch);
        var r4 = Avx.LoadVector256(src + 4 * srcPitch); var r5 = Avx.LoadVector256(src + 5 * srcPitch);
        var r6 = Avx.LoadVector256(src + 6 * srcPitch); var r7 = Avx.LoadVector256(src + 7 * srcPitch);
        if (bias != null)
        {
            var b = Vector256.Load(bias);
            var lo = Vector256.Create(low);
            var hi = Vector256.Create(high);
            var mode = Clamp256.ModeOf(low, high);
            r0 = Clamp256.Apply(r0 + b, lo, hi, mode); r1 = Clamp256.Apply(r1 + b, lo, hi, mode);
            r2 = Clamp256.Apply(r2 + b, lo, hi, mode); r3 = Clamp256.Apply(r3 + b, lo, hi, mode);
            r4 = Clamp256.Apply(r4 + b, lo, hi, mode); r5 = Clamp256.Apply(r5 + b, lo, hi, mode);
            r6 = Clamp256.Apply(r6 + b, lo, hi, mode); r7 = Clamp256.Apply(r7 + b, lo, hi, mode);
        }
        Transpose8x8(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
        Avx.Store(dst, r0); Avx.Store(dst + dstPitch, r1);
        Avx.Store(dst + 2 * dstPitch, r2); Avx.Store(dst + 3 * dstPitch, r3);
        Avx.Store(dst + 4 * dstPitch, r4); Avx.Store(dst + 5 * dstPitch, r5);
        Avx.Store(dst + 6 * dstPitch, r6); Avx.Store(dst + 7 * dstPitch, r7);
    }

    /// <summary>
    /// In-register 8x8 transpose (unpack, shuffle, 128-bit lane permute): row k becomes column k. The one copy, for the
    /// GEMM's packing, the tile transposes and the pooling lanes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose8x8(ref Vector256<float> r0, ref Vector256<float> r1, ref Vector256<float> r2, ref Vector256<float> r3,
        ref Vector256<float> r4, ref Vector256<float> r5, ref Vector256<float> r6, ref Vector256<float> r7)
    {
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        var t6 = Avx.UnpackLow(r6, r7); var t7 = Avx.UnpackHigh(r6, r7);
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        var u4 = Avx.Shuffle(t4, t6, 0x44); var u5 = Avx.Shuffle(t4, t6, 0xEE);
        var u6 = Avx.Shuffle(t5, t7, 0x44); var u7 = Avx.Shuffle(t5, t7, 0xEE);
        r0 = Avx.Permute2x128(u0, u4, 0x20); r1 = Avx.Permute2x128(u1, u5, 0x20);
        r2 = Avx.Permute2x128(u2, u6, 0x20); r3 = Avx.Permute2x128(u3, u7, 0x20);
        r4 = Avx.Permute2x128(u0, u4, 0x31); r5 = Avx.Permute2x128(u1, u5, 0x31);
        r6 = Avx.Permute2x128(u2, u6, 0x31); r7 = Avx.Permute2x128(u3, u7, 0x31);
    }
}
