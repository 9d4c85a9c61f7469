using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

// Winograd F(2x2, 3x3) (Lavin & Gray 2016). An output tile of 2x2 comes from a 4x4 input tile d:
//     Y = A^T [ (G g G^T) (.) (B^T d B) ] A
//     B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],  A^T = [1 1 1 0; 0 1 -1 -1]
// Over channels the 16 products become 16 GEMMs M[xi] (OutC x T) = U[xi] (OutC x InC) * V[xi] (InC x T), T tiles:
// 16 * 2 flops per tile and channel pair instead of 4 * 9 * 2 (2.25x fewer). The weight gradient is the same
// algebra transposed: dU[xi] = Mg[xi] V[xi]^T with Mg = A dY A^T, then dW = G^T dU G.
// Layouts here: V and M are [xi][channel][tile]; tiles t = image * TilesH * TilesW + ty * TilesW + tx.
// Transforms run on 8 horizontally adjacent tiles at once (lanes), reading rows with two 16-float loads that
// are deinterleaved into the tile columns; a scalar path does the same per tile.
public static partial class Conv2dKernels
{
    /// <summary>
    /// U[xi][o][i] = (G w[o][i] G^T)[xi] for 3x3 filters w (o x i x 3 x 3); <paramref name="rotate"/> uses the 180-degree
    /// rotated filters with o and i swapped (the backward-data convolution). Each U[xi] is written packed for the
    /// GEMM micro-kernel: strips of 6 rows, zero-padded, <see cref="WinogradPackedSize"/> floats per xi.
    /// </summary>
    public static unsafe void WinogradWeights(ReadOnlySpan<float> w, int outC, int inC, bool rotate, Span<float> u) =>
        PackFilters(w, outC, inC, rotate, u, 4, &G4, &G4x4);

    /// <summary>F(2x2)'s G times a 3-vector: (g0, (g0 + g1 + g2) / 2, (g0 - g1 + g2) / 2, g2).</summary>
    private static void G4(float g0, float g1, float g2, Span<float> r)
    {
        r[0] = g0;
        r[1] = 0.5f * (g0 + g1 + g2);
        r[2] = 0.5f * (g0 - g1 + g2);
        r[3] = g2;
    }

    /// <summary><see cref="G4"/> of four filters' values at once, the same float operations lane by lane.</summary>
    private static unsafe void G4x4(Vector128<float> g0, Vector128<float> g1, Vector128<float> g2, Vector128<float>* r)
    {
        var half = Vector128.Create(0.5f);
        r[0] = g0;
        r[1] = half * (g0 + g1 + g2);
        r[2] = half * (g0 - g1 + g2);
        r[3] = g2;
    }

    /// <summary>
    /// U[xi] = (G g G^T)[xi] of every 3x3 filter for tiles of <paramref name="alpha"/> x <paramref name="alpha"/> inputs
    /// (<paramref name="g"/>: G times a 3-vector), each of the alpha^2 matrices packed for the GEMM micro-kernel: strips of
    /// 6 rows, zero-padded, <see cref="WinogradPackedSize"/> floats apart. <paramref name="rotate"/>: the backward-data
    /// filters (turned by 180 degrees, o and i swapped). With AVX2, four filters of a row at a time through
    /// <paramref name="g4"/> (g lane by lane, the same operations): a training step transforms every filter twice (forward
    /// and input gradient), and one filter at a time with calls through spans was 5% of a VGG-style step (BENCHMARKS.md).
    /// </summary>
    private static unsafe void PackFilters(ReadOnlySpan<float> w, int outC, int inC, bool rotate, Span<float> u, int alpha,
        delegate*<float, float, float, Span<float>, void> g,
        delegate*<Vector128<float>, Vector128<float>, Vector128<float>, Vector128<float>*, void> g4)
    {
        int rows = rotate ? inC : outC, cols = rotate ? outC : inC;
        int xiStride = WinogradPackedSize(rows, cols);
        u.Slice(0, alpha * alpha * xiStride).Clear();
        Span<float> f = stackalloc float[9];
        Span<float> t = stackalloc float[3 * alpha];
        Span<float> r6 = stackalloc float[alpha];
        var f4 = stackalloc Vector128<float>[9];
        var t4 = stackalloc Vector128<float>[3 * 6];
        var r4 = stackalloc Vector128<float>[6];
        // Filter (r, c) is w[r][c], or rotated w[c][r] turned by 180 degrees: its tap k at w[at(r, c) + step * k].
        int cStride = rotate ? inC * 9 : 9, step = rotate ? -1 : 1;
        fixed (float* wp = w, up = u)
            for (int r = 0; r < rows; r++)
            {
                int c = 0;
                for (; Engine.UseAvx2 && c + 4 <= cols; c += 4)
                {
                    float* f0 = wp + (rotate ? (c * inC + r) * 9 + 8 : (r * inC + c) * 9);
                    for (int k = 0; k < 9; k++)
                    {
                        float* p = f0 + step * k;
                        f4[k] = Vector128.Create(p[0], p[cStride], p[2 * cStride], p[3 * cStride]);
                    }
                    for (int j = 0; j < 3; j++)
                    {
                        g4(f4[j], f4[3 + j], f4[6 + j], r4);
                        for (int i = 0; i < alpha; i++) t4[3 * i + j] = r4[i];
                    }
                    float* o = up + r / Sgemm.MR * cols * Sgemm.MR + c * Sgemm.MR + r % Sgemm.MR;
                    for (int i = 0; i < alpha; i++)
                    {
                        g4(t4[3 * i], t4[3 * i + 1], t4[3 * i + 2], r4);
                        for (int j = 0; j < alpha; j++)
                        {
                            float* d = o + (alpha * i + j) * xiStride;
                            var v = r4[j];
                            d[0] = v.GetElement(0); d[Sgemm.MR] = v.GetElement(1); d[2 * Sgemm.MR] = v.GetElement(2); d[3 * Sgemm.MR] = v.GetElement(3);
                        }
                    }
                }
                for (; c < cols; c++)
                    PackFilter(w, inC, rotate, u, alpha, g, r, c, cols, xiStride, f, t, r6);
            }
    }

    /// <summary>One filter (r, c) of <see cref="PackFilters"/>, the portable way.</summary>
    private static unsafe void PackFilter(ReadOnlySpan<float> w, int inC, bool rotate, Span<float> u, int alpha,
        delegate*<float, float, float, Span<float>, void> g, int r, int c, int cols, int xiStride, Span<float> f, Span<float> t, Span<float> r6)
    {
        // Filter (r, c): forward w[r][c]; rotated: w[c][r] turned by 180 degrees.
        var src = rotate ? w.Slice((c * inC + r) * 9, 9) : w.Slice((r * inC + c) * 9, 9);
        for (int k = 0; k < 9; k++) f[k] = rotate ? src[8 - k] : src[k];
        // t = G f (alpha x 3), column by column.
        for (int j = 0; j < 3; j++)
        {
            g(f[j], f[3 + j], f[6 + j], r6);
            for (int i = 0; i < alpha; i++) t[3 * i + j] = r6[i];
        }
        // U = t G^T (alpha x alpha), into strip r / 6, lane r % 6, depth c.
        int o = r / Sgemm.MR * cols * Sgemm.MR + c * Sgemm.MR + r % Sgemm.MR;
        for (int i = 0; i < alpha; i++)
        {
            g(t[3 * i], t[3 * i + 1], t[3 * i + 2], r6);
            for (int j = 0; j < alpha; j++) u[(alpha * i + j) * xiStride + o] = r6[j];
        }
    }

    /// <summary>Floats of one packed U[xi]: rows rounded up to whole 6-row strips, times the depth.</summary>
    public static int WinogradPackedSize(int rows, int cols) => Sgemm.RoundUp(rows, Sgemm.MR) * cols;

    /// <summary>dW[o][i] (+)= G^T dU[.][o][i] G: folds the 16 Winograd-domain gradients back to 3x3 filters.</summary>
    public static void WinogradWeightGradient(ReadOnlySpan<float> du, int outC, int inC, Span<float> dw, bool accumulate)
    {
        int plane = outC * inC;
        Span<float> m = stackalloc float[16];
        Span<float> t = stackalloc float[12];
        for (int o = 0; o < outC; o++)
            for (int i = 0; i < inC; i++)
            {
                int p = o * inC + i;
                for (int x = 0; x < 16; x++) m[x] = du[x * plane + p];
                // t = G^T m (3 x 4), G^T = [1 .5 .5 0; 0 .5 -.5 0; 0 .5 .5 1]
                for (int j = 0; j < 4; j++)
                {
                    float m0 = m[j], m1 = m[4 + j], m2 = m[8 + j], m3 = m[12 + j];
                    t[j] = m0 + 0.5f * (m1 + m2);
                    t[4 + j] = 0.5f * (m1 - m2);
                    t[8 + j] = 0.5f * (m1 + m2) + m3;
                }
                var d = dw.Slice(p * 9, 9);
                for (int r = 0; r < 3; r++)
                {
                    float a = t[4 * r], b = t[4 * r + 1], c = t[4 * r + 2], e = t[4 * r + 3];
                    float v0 = a + 0.5f * (b + c), v1 = 0.5f * (b - c), v2 = 0.5f * (b + c) + e;
                    if (accumulate) { d[3 * r] += v0; d[3 * r + 1] += v1; d[3 * r + 2] += v2; }
                    else { d[3 * r] = v0; d[3 * r + 1] = v1; d[3 * r + 2] = v2; }
                }
            }
    }

    /// <summary>
    /// Input transform of one padded plane (hq x wq, at least 2 th + 2 by 2 tw + 2, readable 32 floats past its end):
    /// V[xi * vStride + t0 + ty * tw + tx] = (B^T d B)[xi] of the tile at (2 ty, 2 tx).
    /// </summary>
    public static void WinogradInput(ReadOnlySpan<float> plane, int wq, int th, int tw, Span<float> v, int vStride, int t0)
    {
        Span<float> d = stackalloc float[16];
        for (int ty = 0; ty < th; ty++)
        {
            int tx = 0;
            if (Engine.UseAvx2)
                for (; tx < tw; tx += 8)
                    InputTiles8(plane, wq, ty, tx, Math.Min(8, tw - tx), v, vStride, t0 + ty * tw + tx);
            for (; tx < tw; tx++)
            {
                for (int r = 0; r < 4; r++)
                    for (int c = 0; c < 4; c++) d[4 * r + c] = plane[(2 * ty + r) * wq + 2 * tx + c];
                int t = t0 + ty * tw + tx;
                for (int c = 0; c < 4; c++)
                {
                    // rows: B^T d
                    float d0 = d[c], d1 = d[4 + c], d2 = d[8 + c], d3 = d[12 + c];
                    d[c] = d0 - d2; d[4 + c] = d1 + d2; d[8 + c] = d2 - d1; d[12 + c] = d1 - d3;
                }
                for (int r = 0; r < 4; r++)
                {
                    // columns: (B^T d) B
                    float a = d[4 * r], b = d[4 * r + 1], c2 = d[4 * r + 2], e = d[4 * r + 3];
                    v[(4 * r + 0) * vStride + t] = a - c2;
                    v[(4 * r + 1) * vStride + t] = b + c2;
                    v[(4 * r + 2) * vStride + t] = c2 - b;
                    v[(4 * r + 3) * vStride + t] = b - e;
                }
            }
        }
    }

    /// <summary>
    /// Stores the first <paramref name="n"/> lanes of <paramref name="v"/>: a plain store for all 8 (a masked store
    /// costs more where the CPU lacks AVX-512), else <see cref="Masked.Store(float*, Vector256{float}, Vector256{float})"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Put(float* p, Vector256<float> mask, int n, Vector256<float> v)
    {
        if (n == 8) Avx.Store(p, v);
        else Masked.Store(p, mask, v);
    }

    private static unsafe void InputTiles8(ReadOnlySpan<float> plane, int wq, int ty, int tx, int n, Span<float> v, int vStride, int t)
    {
        var mask = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(n)).AsSingle();
        fixed (float* p0 = plane, vp = v)
        {
            // d[r][c] for 8 tiles: columns 2 tx + c of rows 2 ty + r.
            Vector256<float> d00, d01, d02, d03, d10, d11, d12, d13, d20, d21, d22, d23, d30, d31, d32, d33;
            Row(p0 + (2 * ty) * wq + 2 * tx, out d00, out d01, out d02, out d03);
            Row(p0 + (2 * ty + 1) * wq + 2 * tx, out d10, out d11, out d12, out d13);
            Row(p0 + (2 * ty + 2) * wq + 2 * tx, out d20, out d21, out d22, out d23);
            Row(p0 + (2 * ty + 3) * wq + 2 * tx, out d30, out d31, out d32, out d33);
            // B^T d (rows)
            var a0 = d00 - d20; var a1 = d01 - d21; var a2 = d02 - d22; var a3 = d03 - d23;
            var b0 = d10 + d20; var b1 = d11 + d21; var b2 = d12 + d22; var b3 = d13 + d23;
            var c0 = d20 - d10; var c1 = d21 - d11; var c2 = d22 - d12; var c3 = d23 - d13;
            var e0 = d10 - d30; var e1 = d11 - d31; var e2 = d12 - d32; var e3 = d13 - d33;
            float* o = vp + t;
            // (.) B (columns), written per xi with a lane mask.
            Put(o + 0 * vStride, mask, n, a0 - a2); Put(o + 1 * vStride, mask, n, a1 + a2);
            Put(o + 2 * vStride, mask, n, a2 - a1); Put(o + 3 * vStride, mask, n, a1 - a3);
            Put(o + 4 * vStride, mask, n, b0 - b2); Put(o + 5 * vStride, mask, n, b1 + b2);
            Put(o + 6 * vStride, mask, n, b2 - b1); Put(o + 7 * vStride, mask, n, b1 - b3);
            Put(o + 8 * vStride, mask, n, c0 - c2); Put(o + 9 * vStride, mask, n, c1 + c2);
            Put(o + 10 * vStride, mask, n, c2 - c1); Put(o + 11 * vStride, mask, n, c1 - c3);
            Put(o + 12 * vStride, mask, n, e0 - e2); Put(o + 13 * vStride, mask, n, e1 + e2);
            Put(o + 14 * vStride, mask, n, e2 - e1); Put(o + 15 * vStride, mask, n, e1 - e3);
        }
    }

    /// <summary>Columns 0..3 of 8 tiles of one row (tile k starts at column 2k): deinterleaved 16-float loads.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Row(float* p, out Vector256<float> c0, out Vector256<float> c1, out Vector256<float> c2, out Vector256<float> c3)
    {
        var lo = Avx.LoadVector256(p); var hi = Avx.LoadVector256(p + 8);
        var lo2 = Avx.LoadVector256(p + 2); var hi2 = Avx.LoadVector256(p + 10);
        c0 = Even(lo, hi); c1 = Odd(lo, hi); c2 = Even(lo2, hi2); c3 = Odd(lo2, hi2);
    }

    /// <summary>The even-numbered floats of lo then hi (16 consecutive floats in, 8 out).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Even(Vector256<float> lo, Vector256<float> hi) =>
        Avx2.Permute4x64(Avx.Shuffle(lo, hi, 0b10_00_10_00).AsDouble(), 0b11_01_10_00).AsSingle();

    /// <summary>The odd-numbered floats of lo then hi (16 consecutive floats in, 8 out).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Odd(Vector256<float> lo, Vector256<float> hi) =>
        Avx2.Permute4x64(Avx.Shuffle(lo, hi, 0b11_01_11_01).AsDouble(), 0b11_01_10_00).AsSingle();

    /// <summary>
    /// Output transform of one output plane (ho x wo): y = A^T m A of each tile, written at (2 ty, 2 tx) clipped to the plane,
    /// then bias and clamp (lo, hi). m[xi * mStride + t0 + ty * tw + tx].
    /// </summary>
    public static void WinogradOutput(ReadOnlySpan<float> m, int mStride, int t0, int th, int tw, Span<float> y, int ho, int wo,
        float bias, float lo, float hi)
    {
        Span<float> z = stackalloc float[8];
        for (int ty = 0; ty < th; ty++)
        {
            int tx = 0;
            if (Engine.UseAvx2)
                for (; tx < tw; tx += 8)
                    OutputTiles8(m, mStride, t0 + ty * tw + tx, Math.Min(8, tw - tx), y, ho, wo, ty, tx, bias, lo, hi);
            for (; tx < tw; tx++)
            {
                int t = t0 + ty * tw + tx;
                for (int c = 0; c < 4; c++)
                {
                    float m0 = m[c * mStride + t], m1 = m[(4 + c) * mStride + t], m2 = m[(8 + c) * mStride + t], m3 = m[(12 + c) * mStride + t];
                    z[c] = m0 + m1 + m2;
                    z[4 + c] = m1 - m2 - m3;
                }
                for (int r = 0; r < 2; r++)
                {
                    int oy = 2 * ty + r;
                    if (oy >= ho) break;
                    float v0 = z[4 * r] + z[4 * r + 1] + z[4 * r + 2], v1 = z[4 * r + 1] - z[4 * r + 2] - z[4 * r + 3];
                    y[oy * wo + 2 * tx] = MathF.Min(MathF.Max(v0 + bias, lo), hi);
                    if (2 * tx + 1 < wo) y[oy * wo + 2 * tx + 1] = MathF.Min(MathF.Max(v1 + bias, lo), hi);
                }
            }
        }
    }

    private static unsafe void OutputTiles8(ReadOnlySpan<float> m, int mStride, int t, int n, Span<float> y, int ho, int wo, int ty, int tx,
        float bias, float lo, float hi)
    {
        var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        var mask = Vector256.LessThan(lanes, Vector256.Create(n)).AsSingle();
        // Output columns 2 tx .. 2 tx + 15 that exist in the plane.
        int cols = Math.Min(2 * n, wo - 2 * tx);
        var mlo = Vector256.LessThan(lanes, Vector256.Create(cols)).AsSingle();
        var mhi = Vector256.LessThan(lanes, Vector256.Create(cols - 8)).AsSingle();
        var vb = Vector256.Create(bias); var vlo = Vector256.Create(lo); var vhi = Vector256.Create(hi);
        var mode = Clamp256.ModeOf(lo, hi);
        fixed (float* mp = m, yp = y)
        {
            float* s = mp + t;
            Vector256<float> L(int xi) => Avx.MaskLoad(s + xi * mStride, mask);
            // z = A^T m (2 x 4)
            var m0 = L(0); var m4 = L(4); var m8 = L(8); var m12 = L(12);
            var z0 = m0 + m4 + m8; var z4 = m4 - m8 - m12;
            var m1 = L(1); var m5 = L(5); var m9 = L(9); var m13 = L(13);
            var z1 = m1 + m5 + m9; var z5 = m5 - m9 - m13;
            var m2 = L(2); var m6 = L(6); var m10 = L(10); var m14 = L(14);
            var z2 = m2 + m6 + m10; var z6 = m6 - m10 - m14;
            var m3 = L(3); var m7 = L(7); var m11 = L(11); var m15 = L(15);
            var z3 = m3 + m7 + m11; var z7 = m7 - m11 - m15;
            // y = z A (2 x 2)
            var y00 = Clamp256.Apply(z0 + z1 + z2 + vb, vlo, vhi, mode);
            var y01 = Clamp256.Apply(z1 - z2 - z3 + vb, vlo, vhi, mode);
            var y10 = Clamp256.Apply(z4 + z5 + z6 + vb, vlo, vhi, mode);
            var y11 = Clamp256.Apply(z5 - z6 - z7 + vb, vlo, vhi, mode);
            StoreRow(yp + (2 * ty) * wo + 2 * tx, y00, y01, cols, mlo, mhi);
            if (2 * ty + 1 < ho) StoreRow(yp + (2 * ty + 1) * wo + 2 * tx, y10, y11, cols, mlo, mhi);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreRow(float* dst, Vector256<float> even, Vector256<float> odd, int cols, Vector256<float> mlo, Vector256<float> mhi)
    {
        var u0 = Avx.UnpackLow(even, odd); var u1 = Avx.UnpackHigh(even, odd);
        Put(dst, mlo, Math.Min(cols, 8), Avx.Permute2x128(u0, u1, 0x20));
        if (cols > 8) Put(dst + 8, mhi, cols - 8, Avx.Permute2x128(u0, u1, 0x31));
    }

    /// <summary>
    /// Gradient transform of one output-gradient plane (ho x wo): Mg[xi * mStride + t0 + ty * tw + tx] = (A dY A^T)[xi]
    /// of the 2x2 gradient tile at (2 ty, 2 tx) (zero outside the plane).
    /// </summary>
    public static void WinogradGradient(ReadOnlySpan<float> dy, int ho, int wo, int th, int tw, Span<float> mg, int mStride, int t0)
    {
        for (int ty = 0; ty < th; ty++)
        {
            int tx = 0;
            if (Engine.UseAvx2)
                for (; tx < tw; tx += 8)
                    GradientTiles8(dy, ho, wo, ty, tx, Math.Min(8, tw - tx), mg, mStride, t0 + ty * tw + tx);
            for (; tx < tw; tx++)
            {
                bool right = 2 * tx + 1 < wo, down = 2 * ty + 1 < ho;
                int at = 2 * ty * wo + 2 * tx;
                float g00 = dy[at], g01 = right ? dy[at + 1] : 0f;
                float g10 = down ? dy[at + wo] : 0f, g11 = down && right ? dy[at + wo + 1] : 0f;
                // z = A dY (4 x 2), A = [1 0; 1 1; 1 -1; 0 -1]
                Span<float> z = [g00, g01, g00 + g10, g01 + g11, g00 - g10, g01 - g11, -g10, -g11];
                int t = t0 + ty * tw + tx;
                for (int r = 0; r < 4; r++)
                {
                    float a = z[2 * r], b = z[2 * r + 1];
                    mg[(4 * r + 0) * mStride + t] = a;
                    mg[(4 * r + 1) * mStride + t] = a + b;
                    mg[(4 * r + 2) * mStride + t] = a - b;
                    mg[(4 * r + 3) * mStride + t] = -b;
                }
            }
        }
    }

    private static unsafe void GradientTiles8(ReadOnlySpan<float> dy, int ho, int wo, int ty, int tx, int n, Span<float> mg, int mStride, int t)
    {
        var lanes = Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7);
        var mask = Vector256.LessThan(lanes, Vector256.Create(n)).AsSingle();
        int cols = Math.Min(2 * n, wo - 2 * tx);
        var mlo = Vector256.LessThan(lanes, Vector256.Create(cols)).AsSingle();
        var mhi = Vector256.LessThan(lanes, Vector256.Create(cols - 8)).AsSingle();
        fixed (float* dp = dy, mp = mg)
        {
            float* r0 = dp + (2 * ty) * wo + 2 * tx;
            var lo0 = Avx.MaskLoad(r0, mlo); var hi0 = Avx.MaskLoad(r0 + 8, mhi);
            Vector256<float> lo1 = default, hi1 = default;
            if (2 * ty + 1 < ho) { lo1 = Avx.MaskLoad(r0 + wo, mlo); hi1 = Avx.MaskLoad(r0 + wo + 8, mhi); }
            var g00 = Even(lo0, hi0); var g01 = Odd(lo0, hi0); var g10 = Even(lo1, hi1); var g11 = Odd(lo1, hi1);
            var a1 = g00 + g10; var b1 = g01 + g11; var a2 = g00 - g10; var b2 = g01 - g11;
            float* o = mp + t;
            Put(o + 0 * mStride, mask, n, g00); Put(o + 1 * mStride, mask, n, g00 + g01);
            Put(o + 2 * mStride, mask, n, g00 - g01); Put(o + 3 * mStride, mask, n, -g01);
            Put(o + 4 * mStride, mask, n, a1); Put(o + 5 * mStride, mask, n, a1 + b1);
            Put(o + 6 * mStride, mask, n, a1 - b1); Put(o + 7 * mStride, mask, n, -b1);
            Put(o + 8 * mStride, mask, n, a2); Put(o + 9 * mStride, mask, n, a2 + b2);
            Put(o + 10 * mStride, mask, n, a2 - b2); Put(o + 11 * mStride, mask, n, -b2);
            Put(o + 12 * mStride, mask, n, -g10); Put(o + 13 * mStride, mask, n, -g10 - g11);
            Put(o + 14 * mStride, mask, n, g11 - g10); Put(o + 15 * mStride, mask, n, g11);
        }
    }
}
