using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

public static partial class Sgemm
{
    // Packed layouts (zero-padded to whole strips so the micro-kernel never checks an edge):
    //   A block (mc x kc): strips of MR rows; strip s holds kc groups of MR values: aPack[s*kc*MR + kk*MR + r].
    //   B block (kc x nc): strips of NR columns; strip s holds kc groups of NR values: bPack[s*kc*NR + kk*NR + j].

    /// <summary>Packs rows [i0, i0+mc) x depth [p0, p0+kc) of op(A) into MR-row strips.</summary>
    internal static void PackA(bool transA, ReadOnlySpan<float> a, int lda, int i0, int mc, int p0, int kc, Span<float> dst)
    {
        ref float d = ref MemoryMarshal.GetReference(dst);
        ref float s = ref MemoryMarshal.GetReference(a);
        for (int ir = 0; ir < mc; ir += MR)
        {
            int mr = Math.Min(MR, mc - ir);
            ref float strip = ref Unsafe.Add(ref d, ir * kc);
            if (transA)
            {
                // A stored k x m: the MR values of one k are contiguous.
                for (int kk = 0; kk < kc; kk++)
                {
                    ref float src = ref Unsafe.Add(ref s, (p0 + kk) * lda + i0 + ir);
                    ref float o = ref Unsafe.Add(ref strip, kk * MR);
                    int r = 0;
                    for (; r < mr; r++) Unsafe.Add(ref o, r) = Unsafe.Add(ref src, r);
                    for (; r < MR; r++) Unsafe.Add(ref o, r) = 0f;
                }
            }
            else if (mr == MR && Engine.UseAvx2)
            {
                // A stored m x k: 8 k at a time, the 6 rows transposed in registers.
                int kk = 0;
                for (; kk + 8 <= kc; kk += 8)
                    TransposeRows6(ref Unsafe.Add(ref s, (i0 + ir) * lda + p0 + kk), lda, ref Unsafe.Add(ref strip, kk * MR));
                for (; kk < kc; kk++)
                    for (int r = 0; r < MR; r++)
                        Unsafe.Add(ref strip, kk * MR + r) = Unsafe.Add(ref s, (i0 + ir + r) * lda + p0 + kk);
            }
            else
            {
                // A stored m x k: one row at a time, written with stride MR.
                for (int r = 0; r < MR; r++)
                {
                    if (r < mr)
                    {
                        ref float src = ref Unsafe.Add(ref s, (i0 + ir + r) * lda + p0);
                        for (int kk = 0; kk < kc; kk++) Unsafe.Add(ref strip, kk * MR + r) = Unsafe.Add(ref src, kk);
                    }
                    else
                    {
                        for (int kk = 0; kk < kc; kk++) Unsafe.Add(ref strip, kk * MR + r) = 0f;
                    }
                }
            }
        }
    }

    /// <summary>
    /// Packs depth [p0, p0+kc) x columns [j0, j0+nc) of op(B) into NR-column strips. <paramref name="prefetchAhead"/>:
    /// B stored k x n, also ask for the lines of the strip <see cref="PrefetchPanels"/> ahead (for callers that do not
    /// spread the requests over their products, see <see cref="MacroKernel"/>).
    /// </summary>
    internal static unsafe void PackB(bool transB, ReadOnlySpan<float> b, int ldb, int p0, int kc, int j0, int nc, Span<float> dst,
        bool prefetchAhead = false)
    {
        ref float d = ref MemoryMarshal.GetReference(dst);
        ref float s = ref MemoryMarshal.GetReference(b);
        for (int jr = 0; jr < nc; jr += NR)
        {
            int nr = Math.Min(NR, nc - jr);
            ref float strip = ref Unsafe.Add(ref d, jr * kc);
            if (!transB)
            {
                // B stored k x n: the NR values of one k are contiguous.
                if (nr == NR && Engine.UseAvx2)
                {
                    // Each row of the strip is one cache line of a different row of B (a large stride the hardware
                    // prefetchers do not follow): ask for the same row's line a few strips ahead now, so that
                    // packing that strip (after the register tiles of this one ran) finds it in cache. (A prefetch never
                    // faults: past the last column of the last row it only wastes a request.)
                    bool prefetch = prefetchAhead && j0 + jr + (PrefetchPanels + 1) * NR <= ldb;
                    for (int kk = 0; kk < kc; kk++)
                    {
                        ref float src = ref Unsafe.Add(ref s, (p0 + kk) * ldb + j0 + jr);
                        ref float o = ref Unsafe.Add(ref strip, kk * NR);
                        if (prefetch) Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref src, PrefetchPanels * NR)));
                        Vector256.LoadUnsafe(ref src).StoreUnsafe(ref o);
                        Vector256.LoadUnsafe(ref src, 8).StoreUnsafe(ref o, 8);
                    }
                }
                else
                {
                    for (int kk = 0; kk < kc; kk++)
                    {
                        ref float src = ref Unsafe.Add(ref s, (p0 + kk) * ldb + j0 + jr);
                        ref float o = ref Unsafe.Add(ref strip, kk * NR);
                        int j = 0;
                        for (; j < nr; j++) Unsafe.Add(ref o, j) = Unsafe.Add(ref src, j);
                        for (; j < NR; j++) Unsafe.Add(ref o, j) = 0f;
                    }
                }
            }
            else if (nr == NR && Engine.UseAvx2)
            {
                // B stored n x k: 8 k at a time, two 8x8 register transposes give 8 rows of 16.
                int kk = 0;
                for (; kk + 8 <= kc; kk += 8)
                {
                    ref float src = ref Unsafe.Add(ref s, (j0 + jr) * ldb + p0 + kk);
                    ref float o = ref Unsafe.Add(ref strip, kk * NR);
                    Transpose8x8(ref src, ldb, ref o, NR);
                    Transpose8x8(ref Unsafe.Add(ref src, 8 * ldb), ldb, ref Unsafe.Add(ref o, 8), NR);
                }
                for (; kk < kc; kk++)
                    for (int j = 0; j < NR; j++)
                        Unsafe.Add(ref strip, kk * NR + j) = Unsafe.Add(ref s, (j0 + jr + j) * ldb + p0 + kk);
            }
            else
            {
                // B stored n x k: column j of op(B) is row j of storage, contiguous in k.
                for (int j = 0; j < NR; j++)
                {
                    if (j < nr)
                    {
                        ref float src = ref Unsafe.Add(ref s, (j0 + jr + j) * ldb + p0);
                        for (int kk = 0; kk < kc; kk++) Unsafe.Add(ref strip, kk * NR + j) = Unsafe.Add(ref src, kk);
                    }
                    else
                    {
                        for (int kk = 0; kk < kc; kk++) Unsafe.Add(ref strip, kk * NR + j) = 0f;
                    }
                }
            }
        }
    }

    /// <summary>How many B micro-panels ahead <see cref="PackB"/> and <see cref="MacroKernel"/> ask for the lines they will
    /// read (measured on 64 x 12544 x 288 and 64 x 288 x 12544: 3 to 6 do equally well; 1 is worse than none).</summary>
    internal const int PrefetchPanels = 4;
    /// <summary>
    /// Packs whole panels [j0, j0+nc) (nc a multiple of NR) of op(B), B stored k x n, row by row: each row's nc floats are
    /// read as one contiguous run and spread over the panels. The rows <see cref="RowOrderAhead"/> ahead are asked for
    /// first (a short distance: they are used at once, and need not stay in cache).
    /// </summary>
    internal static unsafe void PackBRowOrder(ReadOnlySpan<float> b, int ldb, int p0, int kc, int j0, int nc, Span<float> dst)
    {
        ref float d = ref MemoryMarshal.GetReference(dst);
        ref float s = ref Unsafe.Add(ref MemoryMarshal.GetReference(b), p0 * ldb + j0);
        int panels = nc / NR;
        for (int kk = 0; kk < kc; kk++)
        {
            ref float src = ref Unsafe.Add(ref s, kk * ldb);
            if (kk + RowOrderAhead < kc)
            {
                ref float ahead = ref Unsafe.Add(ref src, RowOrderAhead * ldb);
                for (int q = 0; q < nc; q += NR) Sse.Prefetch0(Unsafe.AsPointer(ref Unsafe.Add(ref ahead, q)));
            }
            ref float o = ref Unsafe.Add(ref d, kk * NR);
            for (int q = 0; q < panels; q++)
            {
                Vector256.LoadUnsafe(ref src, (nuint)(q * NR)).StoreUnsafe(ref o, (nuint)(q * kc * NR));
                Vector256.LoadUnsafe(ref src, (nuint)(q * NR + 8)).StoreUnsafe(ref o, (nuint)(q * kc * NR + 8));
            }
        }
    }

    /// <summary>Rows ahead <see cref="PackBRowOrder"/> asks for (measured: 8 better than 4 or 16).</summary>
    internal const int RowOrderAhead = 8;

    /// <summary>
    /// Asks for rows [k0, k1) of a B micro-panel's source (B stored k x n: one line of each row, at column
    /// <paramref name="col"/>), into L2: see <see cref="MacroKernel"/>. A prefetch never faults.
    /// </summary>
    internal static unsafe void PrefetchPanelRows(ReadOnlySpan<float> b, int ldb, int k0, int k1, int col)
    {
        ref float s = ref Unsafe.Add(ref MemoryMarshal.GetReference(b), col);
        for (int kk = k0; kk < k1; kk++) Sse.Prefetch1(Unsafe.AsPointer(ref Unsafe.Add(ref s, kk * ldb)));
    }

    /// <summary>
    /// Transposes an 8x8 block: 8 rows of 8 floats at src (stride ldSrc) become 8 rows at dst (stride ldDst),
    /// row k of the result holding element k of every source row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Transpose8x8(ref float src, int ldSrc, ref float dst, int ldDst)
    {
        var r0 = Vector256.LoadUnsafe(ref src); var r1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, ldSrc));
        var r2 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 2 * ldSrc)); var r3 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 3 * ldSrc));
        var r4 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 4 * ldSrc)); var r5 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 5 * ldSrc));
        var r6 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 6 * ldSrc)); var r7 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 7 * ldSrc));
        BlockedTiles.Transpose8x8(ref r0, ref r1, ref r2, ref r3, ref r4, ref r5, ref r6, ref r7);
        r0.StoreUnsafe(ref dst); r1.StoreUnsafe(ref Unsafe.Add(ref dst, ldDst));
        r2.StoreUnsafe(ref Unsafe.Add(ref dst, 2 * ldDst)); r3.StoreUnsafe(ref Unsafe.Add(ref dst, 3 * ldDst));
        r4.StoreUnsafe(ref Unsafe.Add(ref dst, 4 * ldDst)); r5.StoreUnsafe(ref Unsafe.Add(ref dst, 5 * ldDst));
        r6.StoreUnsafe(ref Unsafe.Add(ref dst, 6 * ldDst)); r7.StoreUnsafe(ref Unsafe.Add(ref dst, 7 * ldDst));
    }

    /// <summary>
    /// Packs 6 rows x 8 k (rows at src, stride lda) into 8 groups of 6 at dst: rows 0-3 and rows 4-5 transposed apart
    /// (6 unpacks, 4 shuffles), each group then written as 4 + 2 floats (16- and 8-byte stores; the upper lanes
    /// stored straight from the register). Nothing past the 48 floats is touched.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void TransposeRows6(ref float src, int lda, ref float dst)
    {
        var r0 = Vector256.LoadUnsafe(ref src); var r1 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, lda));
        var r2 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 2 * lda)); var r3 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 3 * lda));
        var r4 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 4 * lda)); var r5 = Vector256.LoadUnsafe(ref Unsafe.Add(ref src, 5 * lda));
        // t0 = r0k0 r1k0 r0k1 r1k1 | k4 k5, t1 = the same for k2 k3 | k6 k7; t2, t3 rows 2-3; t4, t5 rows 4-5.
        var t0 = Avx.UnpackLow(r0, r1); var t1 = Avx.UnpackHigh(r0, r1);
        var t2 = Avx.UnpackLow(r2, r3); var t3 = Avx.UnpackHigh(r2, r3);
        var t4 = Avx.UnpackLow(r4, r5); var t5 = Avx.UnpackHigh(r4, r5);
        // u[j] = rows 0-3 of k j | of k j+4.
        var u0 = Avx.Shuffle(t0, t2, 0x44); var u1 = Avx.Shuffle(t0, t2, 0xEE);
        var u2 = Avx.Shuffle(t1, t3, 0x44); var u3 = Avx.Shuffle(t1, t3, 0xEE);
        fixed (float* d = &dst)
        {
            Sse.Store(d, u0.GetLower()); Sse.Store(d + 6, u1.GetLower()); Sse.Store(d + 12, u2.GetLower()); Sse.Store(d + 18, u3.GetLower());
            Sse.Store(d + 24, u0.GetUpper()); Sse.Store(d + 30, u1.GetUpper()); Sse.Store(d + 36, u2.GetUpper()); Sse.Store(d + 42, u3.GetUpper());
            Vector128<float> lo4 = t4.GetLower(), lo5 = t5.GetLower(), hi4 = t4.GetUpper(), hi5 = t5.GetUpper();
            Sse.StoreLow(d + 4, lo4); Sse.StoreHigh(d + 10, lo4); Sse.StoreLow(d + 16, lo5); Sse.StoreHigh(d + 22, lo5);
            Sse.StoreLow(d + 28, hi4); Sse.StoreHigh(d + 34, hi4); Sse.StoreLow(d + 40, hi5); Sse.StoreHigh(d + 46, hi5);
        }
    }
}
