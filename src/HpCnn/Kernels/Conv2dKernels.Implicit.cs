using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HpCnn.Kernels;

// Padded-plane implicit GEMM (stride 1). With the input zero-padded into planes of Hp x Wp and the
// output indexed by q = y * Wp + x (x < Wp, only x < Wo valid), the im2col matrix is never built:
//     out[m][q] = sum_k A[m][k] * src[q + offset[k]],   offset[(c, ky, kx)] = c*Hp*Wp + ky*Wp + kx,
// so row k of the virtual im2col matrix is the padded input shifted by offset[k] - contiguous in q.
// The micro-kernel loads its B vectors straight from the padded planes; only Wp - Wo columns of each
// row are wasted. Backward-data is the same kernel on the padded output gradient with the filters
// rotated by 180 degrees and in/out channels swapped. Weight gradients are dot products over q
// (ShiftedDot) of the q-indexed output gradient with the same shifted rows.
public static partial class Conv2dKernels
{
    /// <summary>
    /// out = A (m x k, packed in MR strips, see <see cref="Sgemm.PackA"/>) times the shifted rows of
    /// <paramref name="src"/>, for q-strips [strip0, strip1) of 16 columns. Valid columns (x &lt; wo) of
    /// row i are written to dst[i * dstPlane + y * wo + x], then the epilogue runs on each written run.
    /// <paramref name="src"/> must be readable 16 floats past offset[k-1] + the last q.
    /// </summary>
    public static void ImplicitGemm(int m, int k, ReadOnlySpan<float> aPacked, ReadOnlySpan<float> src, ReadOnlySpan<int> offsets,
        int ho, int wo, int wp, int strip0, int strip1, Span<float> dst, int dstPlane, in GemmEpilogue epilogue)
    {
        const int MR = Sgemm.MR, NR = Sgemm.NR;
        int qEnd = (ho - 1) * wp + wo;
        if (k <= 0 || offsets.Length < k) throw new ArgumentException($"implicit GEMM: {offsets.Length} offsets for depth {k}");
        if (aPacked.Length < (m + MR - 1) / MR * MR * k) throw new ArgumentException("implicit GEMM: packed A is too short");
        int maxOff = 0;
        for (int kk = 0; kk < k; kk++) maxOff = Math.Max(maxOff, offsets[kk]);
        int lastQ = Math.Min(strip1 * NR, RoundUpStrip(qEnd)) - 1;
        if ((long)lastQ + maxOff >= src.Length || offsets.Slice(0, k).IndexOfAnyExceptInRange(0, int.MaxValue) >= 0)
            throw new ArgumentException("implicit GEMM: source planes lack the read-ahead slack");
        Span<float> tile = stackalloc float[MR * NR];
        ref float a0 = ref MemoryMarshal.GetReference(aPacked);
        ref int off = ref MemoryMarshal.GetReference(offsets);
        ref float t = ref MemoryMarshal.GetReference(tile);
        for (int s = strip0; s < strip1; s++)
        {
            int q0 = s * NR;
            if (q0 >= qEnd) break;
            ref float srcQ = ref Unsafe.AsRef(in src[q0]);
            for (int i0 = 0; i0 < m; i0 += MR)
            {
                ref float a = ref Unsafe.Add(ref a0, i0 * k);
                if (Engine.UseAvx2) ImplicitKernel6x16Avx2(k, ref a, ref srcQ, ref off, ref t);
                else ImplicitKernel6x16Scalar(k, ref a, ref srcQ, ref off, ref t);
                int rows = Math.Min(MR, m - i0);
                ScatterTile(tile, rows, i0, q0, Math.Min(NR, qEnd - q0), wo, wp, dst, dstPlane, in epilogue);
            }
        }
    }

    private static int RoundUpStrip(int q) => (q + Sgemm.NR - 1) / Sgemm.NR * Sgemm.NR;

    /// <summary>Number of 16-wide q strips of an implicit GEMM with ho rows of wp (wo valid).</summary>
    public static int ImplicitStrips(int ho, int wo, int wp) => ((ho - 1) * wp + wo + Sgemm.NR - 1) / Sgemm.NR;

    /// <summary>Writes the valid columns of a 6 x 16 q-tile into NCHW planes, applying the epilogue per run.</summary>
    private static void ScatterTile(Span<float> tile, int rows, int row0, int q0, int width, int wo, int wp,
        Span<float> dst, int dstPlane, in GemmEpilogue epilogue)
    {
        int y = q0 / wp, x = q0 - y * wp;
        int j = 0;
        while (j < width)
        {
            int run = Math.Min(width - j, wp - x);
            int valid = Math.Min(run, wo - x);
            if (valid > 0)
            {
                int d = y * wo + x;
                for (int r = 0; r < rows; r++)
                {
                    var seg = dst.Slice((row0 + r) * dstPlane + d, valid);
                    tile.Slice(r * Sgemm.NR + j, valid).CopyTo(seg);
                    if (epilogue.IsActive) epilogue.Apply(seg, row0 + r, d);
                }
            }
            j += run;
            x += run;
            if (x == wp) { x = 0; y++; }
        }
    }

    /// <summary>Portable implicit micro-kernel: tile (6 x 16) := A strip (k x 6) x shifted source rows.</summary>
    internal static void ImplicitKernel6x16Scalar(int k, ref float a, ref float src, ref int off, ref float tile)
    {
        const int MR = Sgemm.MR, NR = Sgemm.NR;
        for (int i = 0; i < MR * NR; i++) Unsafe.Add(ref tile, i) = 0f;
        for (int kk = 0; kk < k; kk++)
        {
            ref float b = ref Unsafe.Add(ref src, Unsafe.Add(ref off, kk));
            ref float ak = ref Unsafe.Add(ref a, kk * MR);
            for (int r = 0; r < MR; r++)
            {
                float av = Unsafe.Add(ref ak, r);
                ref float tr = ref Unsafe.Add(ref tile, r * NR);
                for (int j = 0; j < NR; j++) Unsafe.Add(ref tr, j) += av * Unsafe.Add(ref b, j);
            }
        }
    }

    /// <summary>
    /// dw[i][j] := (accumulate ? dw[i][j] : 0) + sum over t &lt; len of a[i*lda + t] * src[offset[j] + t],
    /// for i &lt; m, j &lt; n. <paramref name="len"/> must be a multiple of 8. Used for weight gradients
    /// (a = q-indexed output gradient, src = padded input planes) and, with n = 1 columns, for sums.
    /// </summary>
    public static void ShiftedDot(int m, int n, int len, ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> src,
        ReadOnlySpan<int> offsets, Span<float> dw, int lddw, bool accumulate)
    {
        if ((len & 7) != 0) throw new ArgumentException($"shifted dot: length {len} is not a multiple of 8");
        if (m == 0 || n == 0) return;
        if ((long)(m - 1) * lda + len > a.Length) throw new ArgumentException("shifted dot: a is too short");
        int maxOff = 0;
        for (int j = 0; j < n; j++) maxOff = Math.Max(maxOff, offsets[j]);
        if ((long)maxOff + len > src.Length) throw new ArgumentException("shifted dot: source is too short");
        if ((long)(m - 1) * lddw + n > dw.Length) throw new ArgumentException("shifted dot: dw is too short");
        ref float ar = ref MemoryMarshal.GetReference(a);
        ref float sr = ref MemoryMarshal.GetReference(src);
        ref int off = ref MemoryMarshal.GetReference(offsets);
        ref float dr = ref MemoryMarshal.GetReference(dw);
        int i = 0;
        if (Engine.UseAvx2)
        {
            for (; i + 4 <= m; i += 4)
            {
                int j = 0;
                for (; j + 3 <= n; j += 3)
                    ShiftedDot4x3Avx2(len, ref Unsafe.Add(ref ar, i * lda), lda, ref sr, ref Unsafe.Add(ref off, j),
                        ref Unsafe.Add(ref dr, i * lddw + j), lddw, accumulate);
                for (; j < n; j++)
                    for (int r = 0; r < 4; r++)
                        Store(ref Unsafe.Add(ref dr, (i + r) * lddw + j),
                            DotAvx2(len, ref Unsafe.Add(ref ar, (i + r) * lda), ref Unsafe.Add(ref sr, Unsafe.Add(ref off, j))), accumulate);
            }
            for (; i < m; i++)
            {
                int j = 0;
                // A 3x3 kernel's nine taps (three rows of three consecutive offsets) in one zmm pass.
                if (Engine.UseAvx512)
                    for (; j + 9 <= n && RowsOfThree(offsets.Slice(j, 9))
                           && Math.Max(offsets[j], Math.Max(offsets[j + 3], offsets[j + 6])) + (long)len + 16 <= src.Length; j += 9)
                        ShiftedDot1x9Avx512(len, ref Unsafe.Add(ref ar, i * lda), ref sr, ref Unsafe.Add(ref off, j), ref Unsafe.Add(ref dr, i * lddw + j), accumulate);
                for (; j + 3 <= n; j += 3)
                    ShiftedDot1x3Avx2(len, ref Unsafe.Add(ref ar, i * lda), ref sr, ref Unsafe.Add(ref off, j), ref Unsafe.Add(ref dr, i * lddw + j), accumulate);
                for (; j < n; j++)
                    Store(ref Unsafe.Add(ref dr, i * lddw + j),
                        DotAvx2(len, ref Unsafe.Add(ref ar, i * lda), ref Unsafe.Add(ref sr, Unsafe.Add(ref off, j))), accumulate);
            }
            return;
        }
        for (; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                ref float x = ref Unsafe.Add(ref ar, i * lda);
                ref float y = ref Unsafe.Add(ref sr, Unsafe.Add(ref off, j));
                float s = 0;
                for (int t = 0; t < len; t++) s += Unsafe.Add(ref x, t) * Unsafe.Add(ref y, t);
                Store(ref Unsafe.Add(ref dr, i * lddw + j), s, accumulate);
            }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(ref float d, float v, bool accumulate) => d = accumulate ? d + v : v;

    /// <summary>Nine offsets in three runs of three consecutive values.</summary>
    private static bool RowsOfThree(ReadOnlySpan<int> o) =>
        o[1] == o[0] + 1 && o[2] == o[0] + 2 && o[4] == o[3] + 1 && o[5] == o[3] + 2 && o[7] == o[6] + 1 && o[8] == o[6] + 2;
}
