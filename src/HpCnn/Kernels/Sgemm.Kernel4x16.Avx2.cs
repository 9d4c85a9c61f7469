using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

public static partial class Sgemm
{
    /// <summary>
    /// The micro-kernel of an edge strip of at most 4 rows (M = 64 ends in a 4-row strip, 32 and 128 in a 2-row one):
    /// rows 0-3 of a packed A strip (stride MR) against a B strip (kc x 16), 8 accumulators, C written for its first
    /// <paramref name="rows"/> rows only, straight into C. Two thirds of the 6x16 kernel's time for the same strip,
    /// and no detour through the edge tile. Each element's products are summed in the same order as in
    /// <see cref="Kernel6x16Avx2"/>, so the same bits.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Kernel4x16Avx2(int kc, ref float a, ref float b, ref float c, int ldc, bool accumulate, int rows)
    {
        Vector256<float> c00 = Vector256<float>.Zero, c01 = Vector256<float>.Zero;
        Vector256<float> c10 = Vector256<float>.Zero, c11 = Vector256<float>.Zero;
        Vector256<float> c20 = Vector256<float>.Zero, c21 = Vector256<float>.Zero;
        Vector256<float> c30 = Vector256<float>.Zero, c31 = Vector256<float>.Zero;
        Vector256<float> b0, b1, av;
        for (int k = 0; k < kc; k++)
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
            a = ref Unsafe.Add(ref a, MR);
            b = ref Unsafe.Add(ref b, NR);
        }
        StoreRow(ref c, 0, c00, c01, accumulate);
        if (rows > 1) StoreRow(ref c, ldc, c10, c11, accumulate);
        if (rows > 2) StoreRow(ref c, 2 * ldc, c20, c21, accumulate);
        if (rows > 3) StoreRow(ref c, 3 * ldc, c30, c31, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(ref float c, int offset, Vector256<float> lo, Vector256<float> hi, bool accumulate)
    {
        if (accumulate)
        {
            lo += Vector256.LoadUnsafe(ref c, (nuint)offset);
            hi += Vector256.LoadUnsafe(ref c, (nuint)(offset + 8));
        }
        lo.StoreUnsafe(ref c, (nuint)offset);
        hi.StoreUnsafe(ref c, (nuint)(offset + 8));
    }
}
