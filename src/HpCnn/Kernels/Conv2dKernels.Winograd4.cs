using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

// Winograd F(4x4, 3x3) (Lavin & Gray 2016, interpolation points 0, +-1, +-2, infinity). A 4x4 output tile comes from a
// 6x6 input tile d:  Y = A^T [ (G g G^T) (.) (B^T d B) ] A  with
//     B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1]
//     G   = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//     A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// 36 GEMMs of 2 flops per tile and channel pair instead of 16 * 9 * 2: 4x fewer multiplies (F(2x2) saves 2.25x), and
// the Winograd-domain matrices hold 2.25 floats per output pixel instead of 4. The price is precision: the transforms'
// larger coefficients leave errors several times F(2x2)'s (still far below what training notices; the tests bound them
// against the sum of absolute terms). M is [xi][channel][tile] as in F(2x2), xi = 6 row + column; V is written as the
// GEMM's packed B (see Winograd4Inputs).
// Every transform fixes its order of operations (input: across each row's columns, then across rows; output: across
// rows, then across columns) and the 8-lane and one-tile paths follow it exactly, so both give the same bits.
public static partial class Conv2dKernels
{
    /// <summary>The F(4x4, 3x3) counterpart of <see cref="WinogradWeights"/>: 36 packed matrices U[xi] = (G w G^T)[xi].</summary>
    public static unsafe void Winograd4Weights(ReadOnlySpan<float> w, int outC, int inC, bool rotate, Span<float> u) =>
        PackFilters(w, outC, inC, rotate, u, 6, &G6, &G6x4);

    /// <summary>
    /// The <paramref name="count"/> matrices of <paramref name="strips"/> (each <paramref name="rows"/> x <paramref name="cols"/>
    /// in 6-row strips, <see cref="WinogradPackedSize"/> apart) transposed: element (r, c) of matrix x at
    /// <paramref name="t"/>[(x * cols + c) * ld + r]; rows past <paramref name="rows"/> are zero (Sgemm.FewColumns reads
    /// whole vectors).
    /// </summary>
    public static void TransposeStrips(ReadOnlySpan<float> strips, int count, int rows, int cols, Span<float> t, int ld)
    {
        int stride = WinogradPackedSize(rows, cols);
        t.Slice(0, count * cols * ld).Clear();
        // Row r0 + i of a strip at (strip, c) is strip[c * MR + i]: each (strip, column) pair is a short contiguous copy.
        for (int x = 0; x < count; x++)
            for (int c = 0; c < cols; c++)
                for (int r0 = 0; r0 < rows; r0 += Sgemm.MR)
                {
                    int n = Math.Min(Sgemm.MR, rows - r0);
                    strips.Slice(x * stride + r0 * cols + c * Sgemm.MR, n).CopyTo(t.Slice((x * cols + c) * ld + r0, n));
                }
    }

    /// <summary><see cref="G6"/> of four filters' values at once: the same double operations lane by lane, then rounded to float.</summary>
    private static unsafe void G6x4(Vector128<float> a, Vector128<float> b, Vector128<float> c, Vector128<float>* r)
    {
        Vector256<double> x = Avx.ConvertToVector256Double(a), y = Avx.ConvertToVector256Double(b), z = Avx.ConvertToVector256Double(c);
        r[0] = Avx.ConvertToVector128Single(x / 4);
        r[1] = Avx.ConvertToVector128Single(-(x + y + z) / 6);
        r[2] = Avx.ConvertToVector128Single(-(x - y + z) / 6);
        r[3] = Avx.ConvertToVector128Single(x / 24 + y / 12 + z / 6);
        r[4] = Avx.ConvertToVector128Single(x / 24 - y / 12 + z / 6);
        r[5] = c;
    }

    /// <summary>G times a 3-vector (computed in double: the weights are transformed once per update, so exactness is free).</summary>
    private static void G6(float a, float b, float c, Span<float> r)
    {
        double x = a, y = b, z = c;
        r[0] = (float)(x / 4);
        r[1] = (float)(-(x + y + z) / 6);
        r[2] = (float)(-(x - y + z) / 6);
        r[3] = (float)(x / 24 + y / 12 + z / 6);
        r[4] = (float)(x / 24 - y / 12 + z / 6);
        r[5] = c;
    }

    /// <summary>B^T times a 6-vector (one row or column of an input tile), the order of operations every path uses.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Bt(float d0, float d1, float d2, float d3, float d4, float d5,
        out float r0, out float r1, out float r2, out float r3, out float r4, out float r5)
    {
        r0 = 4f * d0 - 5f * d2 + d4;
        r1 = (d3 + d4) - 4f * (d1 + d2);
        r2 = 4f * (d1 - d2) + (d4 - d3);
        r3 = 2f * (d3 - d1) + (d4 - d2);
        r4 = 2f * (d1 - d3) + (d4 - d2);
        r5 = 4f * d1 - 5f * d3 + d5;
    }

    /// <summary><see cref="Bt(float, float, float, float, float, float, out float, out float, out float, out float, out float, out float)"/> on 8 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Bt(Vector256<float> d0, Vector256<float> d1, Vector256<float> d2, Vector256<float> d3, Vector256<float> d4, Vector256<float> d5,
        out Vector256<float> r0, out Vector256<float> r1, out Vector256<float> r2, out Vector256<float> r3, out Vector256<float> r4, out Vector256<float> r5)
    {
        var four = Vector256.Create(4f); var five = Vector256.Create(5f); var two = Vector256.Create(2f);
        r0 = four * d0 - five * d2 + d4;
        r1 = (d3 + d4) - four * (d1 + d2);
        r2 = four * (d1 - d2) + (d4 - d3);
        r3 = two * (d3 - d1) + (d4 - d2);
        r4 = two * (d1 - d3) + (d4 - d2);
        r5 = four * d1 - five * d3 + d5;
    }

    /// <summary>A^T times a 6-vector (one column or row of a Winograd-domain tile).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void At(float m0, float m1, float m2, float m3, float m4, float m5, out float y0, out float y1, out float y2, out float y3)
    {
        float s12 = m1 + m2, d12 = m1 - m2, s34 = m3 + m4, d34 = m3 - m4;
        y0 = m0 + s12 + s34;
        y1 = d12 + 2f * d34;
        y2 = s12 + 4f * s34;
        y3 = d12 + 8f * d34 + m5;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void At(Vector256<float> m0, Vector256<float> m1, Vector256<float> m2, Vector256<float> m3, Vector256<float> m4, Vector256<float> m5,
        out Vector256<float> y0, out Vector256<float> y1, out Vector256<float> y2, out Vector256<float> y3)
    {
        var s12 = m1 + m2; var d12 = m1 - m2; var s34 = m3 + m4; var d34 = m3 - m4;
        y0 = m0 + s12 + s34;
        y1 = d12 + Vector256.Create(2f) * d34;
        y2 = s12 + Vector256.Create(4f) * s34;
        y3 = d12 + Vector256.Create(8f) * d34 + m5;
    }

    /// <summary>
    /// Input transform of a group: <paramref name="count"/> images of <paramref name="c"/> padded planes each (hq x wq, at
    /// least 4 th + 2 by 4 tw + 2, the last readable 8 floats past its end) into V[xi * vStride + <see cref="PackedAt"/>(u,
    /// ch, c)] = (B^T d B)[xi] of tile u = image * th * tw + ty * tw + tx, the 6x6 input tile at (4 ty, 4 tx): each V[xi]
    /// is written as the GEMM's packed B (panels of 16 tiles, channel-major within), so no packing pass copies it again;
    /// the padding tiles of the last panel are never read. Eight consecutive tiles run as the 8 lanes wherever they lie
    /// (across tile rows and images): the zoo's 16 x 16 and 8 x 8 planes have only 4 and 2 tiles a row, and lanes along a
    /// row alone ran half and a quarter empty.
    /// </summary>
    public static unsafe void Winograd4Inputs(ReadOnlySpan<float> padded, int count, int c, int hq, int wq, int th, int tw, Span<float> v,
        int vStride)
    {
        int planeQ = hq * wq, used = count * th * tw, u0 = 0;
        var off = stackalloc int[8];
        Span<float> zs = stackalloc float[36];
        var z = stackalloc Vector256<float>[36];
        if (Engine.UseAvx2 && tw % 8 == 0)
        {
            // Whole groups of 8 along each tile row: every group starts at a multiple of 8, inside one 16-tile panel.
            for (int ch = 0; ch < c; ch++)
                for (int n = 0; n < count; n++)
                    InputRowsOfTiles(padded.Slice((n * c + ch) * planeQ), wq, th, tw, v, vStride, n * th * tw, ch, c, z);
            u0 = used;
        }
        else if (Engine.UseAvx2)
        {
            // Groups of 8 tiles outside, channels inside: the lanes' offsets are found once per group.
            for (var at = new TileWalk(th, tw); u0 < used; u0 += 8)
            {
                int n = Math.Min(8, used - u0);
                for (int k = 0; k < 8; k++)
                {
                    off[k] = k < n ? at.Image * c * planeQ + 4 * at.Y * wq + 4 * at.X : off[0];
                    at.Next();
                }
                for (int ch = 0; ch < c; ch++)
                    InputTiles8x4(padded.Slice(ch * planeQ), wq, off, n, v.Slice(PackedAt(u0, ch, c)), vStride, z);
            }
        }
        for (int ch = 0; ch < c; ch++)
        {
            int u = u0;
            for (var at = new TileWalk(th, tw, u); u < used; u++, at.Next())
            {
                var vc = v.Slice(PackedAt(u, ch, c));
                var d = padded.Slice((at.Image * c + ch) * planeQ + 4 * at.Y * wq + 4 * at.X);
                for (int r = 0; r < 6; r++)
                {
                    var p = d.Slice(r * wq, 6);
                    Bt(p[0], p[1], p[2], p[3], p[4], p[5], out zs[6 * r], out zs[6 * r + 1], out zs[6 * r + 2], out zs[6 * r + 3],
                        out zs[6 * r + 4], out zs[6 * r + 5]);
                }
                for (int j = 0; j < 6; j++)
                {
                    Bt(zs[j], zs[6 + j], zs[12 + j], zs[18 + j], zs[24 + j], zs[30 + j], out float r0, out float r1, out float r2,
                        out float r3, out float r4, out float r5);
                    vc[(0 + j) * vStride] = r0; vc[(6 + j) * vStride] = r1; vc[(12 + j) * vStride] = r2;
                    vc[(18 + j) * vStride] = r3; vc[(24 + j) * vStride] = r4; vc[(30 + j) * vStride] = r5;
                }
            }
        }
    }

    /// <summary>Where tile u of channel ch (of c) sits in a packed V[xi]: its 16-tile panel, then the channel's 16 floats.</summary>
    internal static int PackedAt(int u, int ch, int c) => u / Sgemm.NR * (c * Sgemm.NR) + ch * Sgemm.NR + u % Sgemm.NR;

    /// <summary>Tile coordinates (image, tile row, tile column) walked in tile order.</summary>
    private struct TileWalk
    {
        private readonly int _th, _tw;
        public int Image, Y, X;

        public TileWalk(int th, int tw, int u = 0)
        {
            (_th, _tw) = (th, tw);
            Image = u / (th * tw);
            Y = u % (th * tw) / tw;
            X = u % tw;
        }

        public void Next()
        {
            if (++X < _tw) return;
            X = 0;
            if (++Y < _th) return;
            Y = 0;
            Image++;
        }
    }

    /// <summary>8 tiles (<paramref name="n"/> of them real) whose top-left floats are at <paramref name="off"/>; V from <paramref name="v"/>[0].</summary>
    private static unsafe void InputTiles8x4(ReadOnlySpan<float> padded, int wq, int* off, int n, Span<float> v, int vStride, Vector256<float>* z)
    {
        var mask = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(n)).AsSingle();
        fixed (float* p0 = padded, vp = v)
        {
            for (int r = 0; r < 6; r++)
            {
                int ro = r * wq;
                // Row r of each tile (8 floats, 6 used) as a row of an 8 x 8 block, transposed: c[j] holds column j of the 8 tiles.
                var v0 = Avx.LoadVector256(p0 + off[0] + ro); var v1 = Avx.LoadVector256(p0 + off[1] + ro);
                var v2 = Avx.LoadVector256(p0 + off[2] + ro); var v3 = Avx.LoadVector256(p0 + off[3] + ro);
                var v4 = Avx.LoadVector256(p0 + off[4] + ro); var v5 = Avx.LoadVector256(p0 + off[5] + ro);
                var v6 = Avx.LoadVector256(p0 + off[6] + ro); var v7 = Avx.LoadVector256(p0 + off[7] + ro);
                BlockedTiles.Transpose8x8(ref v0, ref v1, ref v2, ref v3, ref v4, ref v5, ref v6, ref v7);
                Bt(v0, v1, v2, v3, v4, v5, out z[6 * r], out z[6 * r + 1], out z[6 * r + 2], out z[6 * r + 3], out z[6 * r + 4], out z[6 * r + 5]);
            }
            for (int j = 0; j < 6; j++)
            {
                Bt(z[j], z[6 + j], z[12 + j], z[18 + j], z[24 + j], z[30 + j], out var r0, out var r1, out var r2, out var r3, out var r4, out var r5);
                Put(vp + (0 + j) * vStride, mask, n, r0); Put(vp + (6 + j) * vStride, mask, n, r1);
                Put(vp + (12 + j) * vStride, mask, n, r2); Put(vp + (18 + j) * vStride, mask, n, r3);
                Put(vp + (24 + j) * vStride, mask, n, r4); Put(vp + (30 + j) * vStride, mask, n, r5);
            }
        }
    }

    /// <summary>
    /// Output transform of <paramref name="channels"/> channels over a group: tile u (as in <see cref="Winograd4Inputs"/>)
    /// of channel c's M (m[c * t + xi * mStride + u]) becomes y = A^T m A plus bias[c] (none when empty), clamped to
    /// [lo, hi], written at (4 ty, 4 tx) of its image's ho x wo plane (image n's plane of channel c at
    /// y[c * channelStride + n * imageStride]), clipped to the plane. Lanes run across tile rows and images where a tile
    /// row holds fewer than 8 tiles.
    /// </summary>
    public static unsafe void Winograd4Output(ReadOnlySpan<float> m, int mStride, int t, int channels, int count, int th, int tw,
        Span<float> y, int channelStride, int imageStride, int ho, int wo, ReadOnlySpan<float> bias, float lo, float hi)
    {
        int used = count * th * tw, u0 = 0;
        var z = stackalloc Vector256<float>[40]; // OutputTiles8x4's output (16 vectors) and its intermediate (24)
        var off = stackalloc int[8];
        var rows = stackalloc int[8];
        var cols = stackalloc int[8];
        Span<float> zs = stackalloc float[24];
        Span<float> v4 = stackalloc float[4];
        fixed (float* yp = y)
        {
            if (Engine.UseAvx2 && tw >= 8)
            {
                for (int c = 0; c < channels; c++)
                    for (int n = 0; n < count; n++)
                        OutputRowsOfTiles(m.Slice(c * t), mStride, n * th * tw, th, tw, yp + c * channelStride + n * imageStride, ho, wo,
                            bias.IsEmpty ? 0f : bias[c], lo, hi, z);
                u0 = used;
            }
            else if (Engine.UseAvx2)
                // Groups of 8 tiles outside, channels inside: the lanes' places are found once per group.
                for (var at = new TileWalk(th, tw); u0 < used; u0 += 8)
                {
                    int n = Math.Min(8, used - u0);
                    bool whole = true;
                    for (int k = 0; k < n; k++, at.Next())
                    {
                        off[k] = at.Image * imageStride + 4 * at.Y * wo + 4 * at.X;
                        rows[k] = Math.Min(4, ho - 4 * at.Y);
                        cols[k] = Math.Min(4, wo - 4 * at.X);
                        whole &= rows[k] == 4 && cols[k] == 4;
                    }
                    for (int c = 0; c < channels; c++)
                    {
                        OutputTiles8x4(m.Slice(c * t + u0), mStride, n, bias.IsEmpty ? 0f : bias[c], lo, hi, z);
                        float* yc = yp + c * channelStride;
                        var rowsOut = (Vector128<float>*)z; // row r of tile k at rowsOut[8 r + k]
                        if (whole)
                            for (int k = 0; k < n; k++)
                            {
                                float* dst = yc + off[k];
                                Sse.Store(dst, rowsOut[k]); Sse.Store(dst + wo, rowsOut[8 + k]);
                                Sse.Store(dst + 2 * wo, rowsOut[16 + k]); Sse.Store(dst + 3 * wo, rowsOut[24 + k]);
                            }
                        else
                            for (int k = 0; k < n; k++)
                                for (int r = 0; r < rows[k]; r++)
                                {
                                    float* dst = yc + off[k] + r * wo, src = (float*)(rowsOut + 8 * r + k);
                                    if (cols[k] == 4) Sse.Store(dst, rowsOut[8 * r + k]);
                                    else for (int x = 0; x < cols[k]; x++) dst[x] = src[x];
                                }
                    }
                }
            for (int c = 0; c < channels; c++)
            {
                var mc = m.Slice(c * t);
                float b = bias.IsEmpty ? 0f : bias[c];
                int u = u0;
                for (var at = new TileWalk(th, tw, u); u < used; u++, at.Next())
                {
                    int r4 = Math.Min(4, ho - 4 * at.Y), c4 = Math.Min(4, wo - 4 * at.X);
                    if (r4 <= 0) continue; // a pooled plane's staged rows stop before the last tile row
                    for (int j = 0; j < 6; j++)
                        At(mc[j * mStride + u], mc[(6 + j) * mStride + u], mc[(12 + j) * mStride + u], mc[(18 + j) * mStride + u],
                            mc[(24 + j) * mStride + u], mc[(30 + j) * mStride + u], out zs[j], out zs[6 + j], out zs[12 + j], out zs[18 + j]);
                    var dst = y.Slice(c * channelStride + at.Image * imageStride + 4 * at.Y * wo + 4 * at.X);
                    for (int r = 0; r < r4; r++)
                    {
                        At(zs[6 * r], zs[6 * r + 1], zs[6 * r + 2], zs[6 * r + 3], zs[6 * r + 4], zs[6 * r + 5], out v4[0], out v4[1], out v4[2], out v4[3]);
                        for (int x = 0; x < c4; x++) dst[r * wo + x] = MathF.Min(MathF.Max(v4[x] + b, lo), hi);
                    }
                }
            }
        }
    }

    /// <summary>
    /// The output transform of 8 tiles (n real) of m[xi * mStride + k]: leaves in <paramref name="z"/>'s first 16 vectors
    /// (z + 4 r: output row r of tiles 0..7, 32 floats, each tile's 4 together) the clamped 4x4 tiles; z holds 40 (the
    /// rest is its work area).
    /// </summary>
    private static unsafe void OutputTiles8x4(ReadOnlySpan<float> m, int mStride, int n, float bias, float lo, float hi, Vector256<float>* z)
    {
        OutputLanes8x4(m, mStride, n, bias, lo, hi, z + 16, z);
        for (int r = 0; r < 4; r++)
        {
            Vector256<float> a = z[4 * r], b = z[4 * r + 1], c = z[4 * r + 2], d = z[4 * r + 3];
            // Lanes are tiles; each tile's 4 columns go together: a 4 x 8 transpose into [tile k | tile k + 4] pairs.
            var u0 = Avx.UnpackLow(a, b); var u1 = Avx.UnpackHigh(a, b);
            var u2 = Avx.UnpackLow(c, d); var u3 = Avx.UnpackHigh(c, d);
            var s0 = Avx.Shuffle(u0, u2, 0x44); var s1 = Avx.Shuffle(u0, u2, 0xEE);
            var s2 = Avx.Shuffle(u1, u3, 0x44); var s3 = Avx.Shuffle(u1, u3, 0xEE);
            z[4 * r] = Avx.Permute2x128(s0, s1, 0x20); z[4 * r + 1] = Avx.Permute2x128(s2, s3, 0x20);
            z[4 * r + 2] = Avx.Permute2x128(s0, s1, 0x31); z[4 * r + 3] = Avx.Permute2x128(s2, s3, 0x31);
        }
    }

    /// <summary>
    /// The output transform of 8 tiles (n real) with the tiles as lanes: <paramref name="y"/>[4 r + x] is output (r, x) of
    /// tiles 0..7, biased and clamped; <paramref name="w"/> (24 vectors) is its work area.
    /// </summary>
    private static unsafe void OutputLanes8x4(ReadOnlySpan<float> m, int mStride, int n, float bias, float lo, float hi, Vector256<float>* w,
        Vector256<float>* y)
    {
        var mask = Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(n)).AsSingle();
        var vb = Vector256.Create(bias); var vlo = Vector256.Create(lo); var vhi = Vector256.Create(hi);
        var mode = Clamp256.ModeOf(lo, hi);
        fixed (float* s = m)
        {
            for (int j = 0; j < 6; j++)
            {
                var m0 = Avx.MaskLoad(s + j * mStride, mask); var m1 = Avx.MaskLoad(s + (6 + j) * mStride, mask);
                var m2 = Avx.MaskLoad(s + (12 + j) * mStride, mask); var m3 = Avx.MaskLoad(s + (18 + j) * mStride, mask);
                var m4 = Avx.MaskLoad(s + (24 + j) * mStride, mask); var m5 = Avx.MaskLoad(s + (30 + j) * mStride, mask);
                At(m0, m1, m2, m3, m4, m5, out w[j], out w[6 + j], out w[12 + j], out w[18 + j]);
            }
            for (int r = 0; r < 4; r++)
            {
                At(w[6 * r], w[6 * r + 1], w[6 * r + 2], w[6 * r + 3], w[6 * r + 4], w[6 * r + 5], out var a, out var b, out var c, out var d);
                y[4 * r] = Clamp256.Apply(a + vb, vlo, vhi, mode); y[4 * r + 1] = Clamp256.Apply(b + vb, vlo, vhi, mode);
                y[4 * r + 2] = Clamp256.Apply(c + vb, vlo, vhi, mode); y[4 * r + 3] = Clamp256.Apply(d + vb, vlo, vhi, mode);
            }
        }
    }

    /// <summary>
    /// Lane k's two values (<paramref name="src"/>[k] and [8 + k], 32-bit floats or ints alike) as one 8-byte pair at
    /// <paramref name="dst"/> + at[k]: UnpackLow and UnpackHigh interleave them as [lanes 0, 1 | 4, 5] and [2, 3 | 6, 7].
    /// Overwrites src.
    /// </summary>
    private static unsafe void StorePairs(int* src, int* dst, int* at)
    {
        Vector256<int> left = Vector256.Load(src), right = Vector256.Load(src + 8);
        Vector256.Store(Avx2.UnpackLow(left, right), src);
        Vector256.Store(Avx2.UnpackHigh(left, right), src + 8);
        var pairs = (long*)src;
        for (int k = 0; k < 8; k++) *(long*)(dst + at[k]) = pairs[PairAt[k]];
    }

    /// <summary>Where lane k's pair sits among the 8-byte pairs of UnpackLow then UnpackHigh of two 8-lane vectors.</summary>
    private static ReadOnlySpan<byte> PairAt => [0, 1, 4, 5, 2, 3, 6, 7];

    /// <summary>
    /// <see cref="Winograd4Output"/> followed by 2x2 stride-2 max pooling (floor mode), without the output planes: a 4x4
    /// tile holds four whole pooling windows, so with the tiles as lanes each window is the maximum of four vectors, in
    /// the unfused pool's order (max(max(top left, top right), max(bottom left, bottom right)), the first NaN winning)
    /// and with its first-maximum arg-max (an index into the ho x wo output plane). Tile rows start at <paramref name="a"/>
    /// of the plane; pooled[n * imageStride + c * channelStride + py * pw + px], windows past ph x pw not written. AVX2.
    /// </summary>
    public static unsafe void Winograd4OutputPooled(ReadOnlySpan<float> m, int mStride, int t, int channels, int count, int th, int tw, int a,
        Span<float> pooled, Span<int> argmax, int channelStride, int imageStride, int ph, int pw, int wo, ReadOnlySpan<float> bias,
        float lo, float hi)
    {
        int used = count * th * tw;
        var w = stackalloc Vector256<float>[24];
        var y = stackalloc Vector256<float>[16];
        var outAt = stackalloc int[8]; // a lane's first pooled value in the image's planes (channel 0)
        var winAt = stackalloc int[8]; // its window's top-left in the output plane
        var rows = stackalloc int[8];
        var cols = stackalloc int[8];
        var best = stackalloc float[32]; // window (pr, pc) of lane k at best[8 (2 pr + pc) + k]
        var idx = stackalloc int[32];
        var mode = Clamp256.ModeOf(lo, hi);
        bool keep = !argmax.IsEmpty;
        fixed (float* pp = pooled)
        fixed (int* ap = argmax)
        {
            for (var at = new TileWalk(th, tw); at.Image < count;)
            {
                int u0 = at.Image * th * tw + at.Y * tw + at.X, n = Math.Min(8, used - u0), any = 0;
                bool whole = n == 8;
                for (int k = 0; k < n; k++, at.Next())
                {
                    int py = 2 * (a + at.Y), px = 2 * at.X;
                    rows[k] = Math.Clamp(ph - py, 0, 2);
                    cols[k] = Math.Clamp(pw - px, 0, 2);
                    any |= rows[k] * cols[k];
                    whole &= rows[k] * cols[k] == 4;
                    outAt[k] = at.Image * imageStride + py * pw + px;
                    winAt[k] = 2 * py * wo + 2 * px;
                }
                if (any == 0) continue; // tiles past the last whole window (a plane's last odd rows): computed, never kept
                var win = Vector256.Load(winAt);
                for (int c = 0; c < channels; c++)
                {
                    OutputLanes8x4(m.Slice(c * t + u0), mStride, n, bias.IsEmpty ? 0f : bias[c], lo, hi, w, y);
                    for (int pr = 0; pr < 2; pr++)
                        for (int pc = 0; pc < 2; pc++)
                        {
                            Vector256<float> tl = y[8 * pr + 2 * pc], tr = y[8 * pr + 2 * pc + 1], bl = y[8 * pr + 4 + 2 * pc], br = y[8 * pr + 5 + 2 * pc];
                            var max = PoolKernels.WindowMax(tl, tr, bl, br, mode);
                            Vector256.Store(max, best + 8 * (2 * pr + pc));
                            if (!keep) continue;
                            Vector256.Store(PoolKernels.WindowArgMax(tl, tr, bl, max, win + Vector256.Create(2 * pr * wo + 2 * pc), wo), idx + 8 * (2 * pr + pc));
                        }
                    int plane = c * channelStride;
                    if (whole)
                    {
                        for (int pr = 0; pr < 2; pr++)
                        {
                            StorePairs((int*)best + 16 * pr, (int*)pp + plane + pr * pw, outAt);
                            if (keep) StorePairs(idx + 16 * pr, ap + plane + pr * pw, outAt);
                        }
                        continue;
                    }
                    for (int k = 0; k < n; k++)
                        for (int pr = 0; pr < rows[k]; pr++)
                            for (int pc = 0; pc < cols[k]; pc++)
                            {
                                int o = plane + outAt[k] + pr * pw + pc;
                                pp[o] = best[8 * (2 * pr + pc) + k];
                                if (keep) ap[o] = idx[8 * (2 * pr + pc) + k];
                            }
                }
            }
        }
    }

    /// <summary>
    /// <see cref="Winograd4Inputs"/> of one plane whose tile rows hold a multiple of 8 tiles: lanes run along a tile row,
    /// each row of 8 tiles read with four 8-float loads and transposed in 4 x 4 blocks (cheaper than gathering 8 tiles'
    /// rows), and each group's 8 values of a matrix stored whole inside one packed panel.
    /// </summary>
    private static unsafe void InputRowsOfTiles(ReadOnlySpan<float> plane, int wq, int th, int tw, Span<float> v, int vStride, int t0,
        int ch, int c, Vector256<float>* z)
    {
        var next = Vector256.Create(1, 2, 3, 4, 5, 6, 7, 7);
        fixed (float* p0 = plane, vp = v)
            for (int ty = 0; ty < th; ty++)
                for (int tx = 0; tx < tw; tx += 8)
                {
                    float* row = p0 + 4 * ty * wq + 4 * tx;
                    for (int r = 0; r < 6; r++, row += wq)
                    {
                        Columns4(row, out var c0, out var c1, out var c2, out var c3);
                        // Columns 4 and 5 are columns 0 and 1 of the next tile: one lane on, the last lane from past the 8 tiles.
                        var c4 = Avx.Blend(Avx2.PermuteVar8x32(c0, next), Vector256.Create(row[32]), 0x80);
                        var c5 = Avx.Blend(Avx2.PermuteVar8x32(c1, next), Vector256.Create(row[33]), 0x80);
                        Bt(c0, c1, c2, c3, c4, c5, out z[6 * r], out z[6 * r + 1], out z[6 * r + 2], out z[6 * r + 3], out z[6 * r + 4], out z[6 * r + 5]);
                    }
                    float* o = vp + PackedAt(t0 + ty * tw + tx, ch, c);
                    for (int j = 0; j < 6; j++)
                    {
                        Bt(z[j], z[6 + j], z[12 + j], z[18 + j], z[24 + j], z[30 + j], out var r0, out var r1, out var r2, out var r3, out var r4, out var r5);
                        Avx.Store(o + (0 + j) * vStride, r0); Avx.Store(o + (6 + j) * vStride, r1);
                        Avx.Store(o + (12 + j) * vStride, r2); Avx.Store(o + (18 + j) * vStride, r3);
                        Avx.Store(o + (24 + j) * vStride, r4); Avx.Store(o + (30 + j) * vStride, r5);
                    }
                }
    }

    /// <summary>Columns 0..3 of 8 tiles of one row (tile k starts at column 4k): 32 floats loaded and transposed in 4 x 4 blocks.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Columns4(float* p, out Vector256<float> c0, out Vector256<float> c1, out Vector256<float> c2, out Vector256<float> c3)
    {
        var x0 = Avx.LoadVector256(p); var x1 = Avx.LoadVector256(p + 8);
        var x2 = Avx.LoadVector256(p + 16); var x3 = Avx.LoadVector256(p + 24);
        // Tiles 0..3 in the low halves, 4..7 in the high halves.
        var y0 = Avx.Permute2x128(x0, x2, 0x20); var y1 = Avx.Permute2x128(x0, x2, 0x31);
        var y2 = Avx.Permute2x128(x1, x3, 0x20); var y3 = Avx.Permute2x128(x1, x3, 0x31);
        var t0 = Avx.UnpackLow(y0, y1); var t1 = Avx.UnpackHigh(y0, y1);
        var t2 = Avx.UnpackLow(y2, y3); var t3 = Avx.UnpackHigh(y2, y3);
        c0 = Avx.Shuffle(t0, t2, 0b01_00_01_00); c1 = Avx.Shuffle(t0, t2, 0b11_10_11_10);
        c2 = Avx.Shuffle(t1, t3, 0b01_00_01_00); c3 = Avx.Shuffle(t1, t3, 0b11_10_11_10);
    }

    /// <summary>
    /// <see cref="Winograd4Output"/> of one plane whose tile rows hold 8 or more tiles: lanes along a tile row, each output
    /// row of 8 tiles written as 32 consecutive floats.
    /// </summary>
    private static unsafe void OutputRowsOfTiles(ReadOnlySpan<float> m, int mStride, int t0, int th, int tw, float* y, int ho, int wo,
        float bias, float lo, float hi, Vector256<float>* z)
    {
        for (int ty = 0; ty < th; ty++)
            for (int tx = 0; tx < tw; tx += 8)
            {
                int n = Math.Min(8, tw - tx), cols = Math.Min(4 * n, wo - 4 * tx);
                OutputTiles8x4(m.Slice(t0 + ty * tw + tx), mStride, n, bias, lo, hi, z);
                // z + 4 r holds output row r of the 8 tiles as 32 consecutive floats.
                for (int r = 0; r < 4 && 4 * ty + r < ho; r++)
                {
                    float* dst = y + (4 * ty + r) * wo + 4 * tx;
                    for (int q = 0; q < 4; q++) StoreCols(dst, cols, 8 * q, z[4 * r + q]);
                }
            }
    }

    /// <summary>Stores the columns of <paramref name="v"/> (columns at..at+7 of a row) below <paramref name="cols"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreCols(float* row, int cols, int at, Vector256<float> v)
    {
        if (cols >= at + 8) Avx.Store(row + at, v);
        else if (cols > at)
            Masked.Store(row + at, Vector256.LessThan(Vector256.Create(0, 1, 2, 3, 4, 5, 6, 7), Vector256.Create(cols - at)).AsSingle(), v);
    }
}
