using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

public static partial class Sgemm
{
    /// <summary>
    /// The 6x16 FMA micro-kernel: 12 ymm accumulators, 2 B loads and 6 broadcasts per k (15 of 16 ymm registers).
    /// C tile (6 rows, leading dimension ldc) := (accumulate ? C : 0) + A strip (kc x 6) * B strip (kc x 16).
    /// C is never read when accumulate is false. The k loop is unrolled by two.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Kernel6x16Avx2(int kc, ref float a, ref float b, ref float c, int ldc, bool accumulate) =>
        Tile6x16Avx2(kc, ref a, ref b, ref c, ldc, accumulate);

    /// <summary>
    /// <see cref="Kernel6x16Avx2"/> over <paramref name="panels"/> consecutive B micro-panels (kc x 16 each) and the C
    /// tiles beside each other: one call per row strip instead of one per tile (shallow blocks, where a tile's FMAs
    /// take little longer than its call). The same tile body, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Kernel6x16StripAvx2(int kc, ref float a, ref float b, int panels, ref float c, int ldc, bool accumulate)
    {
        for (int p = 0; p < panels; p++)
        {
            Tile6x16Avx2(kc, ref a, ref b, ref c, ldc, accumulate);
            b = ref Unsafe.Add(ref b, kc * NR);
            c = ref Unsafe.Add(ref c, NR);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Tile6x16Avx2(int kc, ref float a, ref float b, ref float c, int ldc, bool accumulate)
    {
        Vector256<float> c00 = Vector256<float>.Zero, c01 = Vector256<float>.Zero;
        Vector256<float> c10 = Vector256<float>.Zero, c11 = Vector256<float>.Zero;
        Vector256<float> c20 = Vector256<float>.Zero, c21 = Vector256<float>.Zero;
        Vector256<float> c30 = Vector256<float>.Zero, c31 = Vector256<float>.Zero;
        Vector256<float> c40 = Vector256<float>.Zero, c41 = Vector256<float>.Zero;
        Vector256<float> c50 = Vector256<float>.Zero, c51 = Vector256<float>.Zero;
        Vector256<float> b0, b1, av;
        int k = kc;
        while (k >= 2)
        {
            b0 = Vector256.LoadUnsafe(ref b, 0);
            b1 = Vector256.LoadUnsafe(ref b, 8);
            av = Vector256.Create(Unsafe.Add(ref a, 0));
            c00 = Fma.MultiplyAdd(av, b0, c00);
            c01 = Fma.MultiplyAdd(av, b1, c01);
            av = Vector256.Create(Unsafe.Add(ref a, 1));
            c10 = Fma.MultiplyAdd(av, b0, c10);
            c11 = Fma.MultiplyAdd(av, b1, c11);
            av = Vector256.Create(Unsafe.Add(ref a, 2));
            c20 = Fma.MultiplyAdd(av, b0, c20);
            c21 = Fma.MultiplyAdd(av, b1, c21);
            av = Vector256.Create(Unsafe.Add(ref a, 3));
            c30 = Fma.MultiplyAdd(av, b0, c30);
            c31 = Fma.MultiplyAdd(av, b1, c31);
            av = Vector256.Create(Unsafe.Add(ref a, 4));
            c40 = Fma.MultiplyAdd(av, b0, c40);
            c41 = Fma.MultiplyAdd(av, b1, c41);
            av = Vector256.Create(Unsafe.Add(ref a, 5));
            c50 = Fma.MultiplyAdd(av, b0, c50);
            c51 = Fma.MultiplyAdd(av, b1, c51);
            b0 = Vector256.LoadUnsafe(ref b, 16);
            b1 = Vector256.LoadUnsafe(ref b, 24);
            av = Vector256.Create(Unsafe.Add(ref a, 6));
            c00 = Fma.MultiplyAdd(av, b0, c00);
            c01 = Fma.MultiplyAdd(av, b1, c01);
            av = Vector256.Create(Unsafe.Add(ref a, 7));
            c10 = Fma.MultiplyAdd(av, b0, c10);
            c11 = Fma.MultiplyAdd(av, b1, c11);
            av = Vector256.Create(Unsafe.Add(ref a, 8));
            c20 = Fma.MultiplyAdd(av, b0, c20);
            c21 = Fma.MultiplyAdd(av, b1, c21);
            av = Vector256.Create(Unsafe.Add(ref a, 9));
            c30 = Fma.MultiplyAdd(av, b0, c30);
            c31 = Fma.MultiplyAdd(av, b1, c31);
            av = Vector256.Create(Unsafe.Add(ref a, 10));
            c40 = Fma.MultiplyAdd(av, b0, c40);
            c41 = Fma.MultiplyAdd(av, b1, c41);
            av = Vector256.Create(Unsafe.Add(ref a, 11));
            c50 = Fma.MultiplyAdd(av, b0, c50);
            c51 = Fma.MultiplyAdd(av, b1, c51);
            a = ref Unsafe.Add(ref a, 12);
            b = ref Unsafe.Add(ref b, 32);
            k -= 2;
        }
        if (k != 0)
        {
            b0 = Vector256.LoadUnsafe(ref b, 0);
            b1 = Vector256.LoadUnsafe(ref b, 8);
            av = Vector256.Create(Unsafe.Add(ref a, 0));
            c00 = Fma.MultiplyAdd(av, b0, c00);
            c01 = Fma.MultiplyAdd(av, b1, c01);
            av = Vector256.Create(Unsafe.Add(ref a, 1));
            c10 = Fma.MultiplyAdd(av, b0, c10);
            c11 = Fma.MultiplyAdd(av, b1, c11);
            av = Vector256.Create(Unsafe.Add(ref a, 2));
            c20 = Fma.MultiplyAdd(av, b0, c20);
            c21 = Fma.MultiplyAdd(av, b1, c21);
            av = Vector256.Create(Unsafe.Add(ref a, 3));
            c30 = Fma.MultiplyAdd(av, b0, c30);
            c31 = Fma.MultiplyAdd(av, b1, c31);
            av = Vector256.Create(Unsafe.Add(ref a, 4));
            c40 = Fma.MultiplyAdd(av, b0, c40);
            c41 = Fma.MultiplyAdd(av, b1, c41);
            av = Vector256.Create(Unsafe.Add(ref a, 5));
            c50 = Fma.MultiplyAdd(av, b0, c50);
            c51 = Fma.MultiplyAdd(av, b1, c51);
        }
        StoreRow(ref c, 0, c00, c01, accumulate);
        StoreRow(ref c, ldc, c10, c11, accumulate);
        StoreRow(ref c, 2 * ldc, c20, c21, accumulate);
        StoreRow(ref c, 3 * ldc, c30, c31, accumulate);
        StoreRow(ref c, 4 * ldc, c40, c41, accumulate);
        StoreRow(ref c, 5 * ldc, c50, c51, accumulate);
    }
}
