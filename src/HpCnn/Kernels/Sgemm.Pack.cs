using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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

    /// <summary>Packs depth [p0, p0+kc) x columns [j0, j0+nc) of op(B) into NR-column strips.</summary>
    internal static void PackB(bool transB, ReadOnlySpan<float> b, int ldb, int p0, int kc, int j0, int nc, Span<float> dst)
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
                    for (int kk = 0; kk < kc; kk++)
                    {
                        ref float src = ref Unsafe.Add(ref s, (p0 + kk) * ldb + j0 + jr);
                        ref float o = ref Unsafe.Add(ref strip, kk * NR);
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
}
