using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

public static partial class Sgemm
{
    /// <summary>
    /// <see cref="Kernel6x16Avx2"/> with A read in place: 6 rows of A stored m x k (leading dimension lda) instead of a
    /// packed strip. The same products in the same order, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void Kernel6x16RowsAvx2(int kc, float* a, nint lda, ref float b, ref float c, int ldc, bool accumulate) =>
        Kernel6x16RowsAvx2<NoPanelCopy>(kc, a, lda, ref b, NR, ref b, ref c, ldc, accumulate);

    /// <summary>
    /// <see cref="Kernel6x16RowsAvx2(int, float*, nint, ref float, ref float, int, bool)"/> reading B where it lies (B
    /// stored k x n, rows <paramref name="ldb"/> apart) and copying each 16-float row of the panel to
    /// <paramref name="panel"/> on the way: the first tile of a B micro-panel packs it for the others while it computes.
    /// The B loads' latency then overlaps the FMAs instead of stalling a separate packing loop.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe void Kernel6x16RowsPackingBAvx2(int kc, float* a, nint lda, ref float b, nint ldb, ref float panel,
        ref float c, int ldc, bool accumulate) =>
        Kernel6x16RowsAvx2<PanelCopy>(kc, a, lda, ref b, ldb, ref panel, ref c, ldc, accumulate);

    private struct NoPanelCopy;
    private struct PanelCopy;

    /// <summary>The two kernels above from one body: <typeparamref name="TCopy"/> is fixed when the JIT compiles each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Kernel6x16RowsAvx2<TCopy>(int kc, float* a, nint lda, ref float b, nint ldb, ref float panel,
        ref float c, int ldc, bool accumulate) where TCopy : struct
    {
        Vector256<float> c00 = Vector256<float>.Zero, c01 = Vector256<float>.Zero;
        Vector256<float> c10 = Vector256<float>.Zero, c11 = Vector256<float>.Zero;
        Vector256<float> c20 = Vector256<float>.Zero, c21 = Vector256<float>.Zero;
        Vector256<float> c30 = Vector256<float>.Zero, c31 = Vector256<float>.Zero;
        Vector256<float> c40 = Vector256<float>.Zero, c41 = Vector256<float>.Zero;
        Vector256<float> c50 = Vector256<float>.Zero, c51 = Vector256<float>.Zero;
        Vector256<float> b0, b1, av;
        nint l1 = lda, l2 = 2 * lda, l3 = 3 * lda, l4 = 4 * lda, l5 = 5 * lda;
        float* end = a + kc;
        for (; a < end; a++)
        {
            b0 = Vector256.LoadUnsafe(ref b, 0);
            b1 = Vector256.LoadUnsafe(ref b, 8);
            if (typeof(TCopy) == typeof(PanelCopy))
            {
                b0.StoreUnsafe(ref panel, 0);
                b1.StoreUnsafe(ref panel, 8);
                panel = ref Unsafe.Add(ref panel, NR);
            }
            av = Vector256.Create(a[0]);
            c00 = Fma.MultiplyAdd(av, b0, c00);
            c01 = Fma.MultiplyAdd(av, b1, c01);
            av = Vector256.Create(a[l1]);
            c10 = Fma.MultiplyAdd(av, b0, c10);
            c11 = Fma.MultiplyAdd(av, b1, c11);
            av = Vector256.Create(a[l2]);
            c20 = Fma.MultiplyAdd(av, b0, c20);
            c21 = Fma.MultiplyAdd(av, b1, c21);
            av = Vector256.Create(a[l3]);
            c30 = Fma.MultiplyAdd(av, b0, c30);
            c31 = Fma.MultiplyAdd(av, b1, c31);
            av = Vector256.Create(a[l4]);
            c40 = Fma.MultiplyAdd(av, b0, c40);
            c41 = Fma.MultiplyAdd(av, b1, c41);
            av = Vector256.Create(a[l5]);
            c50 = Fma.MultiplyAdd(av, b0, c50);
            c51 = Fma.MultiplyAdd(av, b1, c51);
            b = ref Unsafe.Add(ref b, ldb);
        }
        StoreRow(ref c, 0, c00, c01, accumulate);
        StoreRow(ref c, ldc, c10, c11, accumulate);
        StoreRow(ref c, 2 * ldc, c20, c21, accumulate);
        StoreRow(ref c, 3 * ldc, c30, c31, accumulate);
        StoreRow(ref c, 4 * ldc, c40, c41, accumulate);
        StoreRow(ref c, 5 * ldc, c50, c51, accumulate);
    }
}
