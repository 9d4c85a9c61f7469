using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

public static partial class Sgemm
{
    /// <summary>
    /// The 12x16 AVX-512 micro-kernel: two 6-row strips of A against one B micro-panel, 12 zmm accumulators (a row of
    /// 16 floats each), per k one B load and 12 FMAs with the A value broadcast from memory (EVEX embedded broadcast).
    /// On Zen 5 a zmm FMA runs at full width (twice the ymm peak); on Zen 4 it runs as two ymm halves and the kernel still
    /// saves instructions: 13 per 12 zmm FMAs against 20 per 12 ymm FMAs, and half as many tiles per block.
    /// A row r of the tile is at <paramref name="a"/> + r * <paramref name="rowStride"/> (rows 6-11 at
    /// <paramref name="a6"/>), its next k <paramref name="kStep"/> further: (1, MR) for packed strips, (lda, 1) for A
    /// read in place. Each element is summed in the same order, with the same FMA, as in <see cref="Kernel6x16Avx2"/>:
    /// the same bits as two 6x16 tiles.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel12x16Avx512(int kc, ref float a, ref float a6, nint rowStride, nint kStep, ref float b,
        ref float c, int ldc, bool accumulate) =>
        Kernel12x16Avx512<NoPanelCopy>(kc, ref a, ref a6, rowStride, kStep, ref b, NR, ref b, ref c, ldc, accumulate);

    /// <summary>
    /// <see cref="Kernel12x16Avx512(int, ref float, ref float, nint, nint, ref float, ref float, int, bool)"/> reading B
    /// where it lies (stored k x n, rows <paramref name="ldb"/> apart) and copying each 16-float row to
    /// <paramref name="panel"/>: the first tile of a micro-panel packs it for the others (as
    /// <see cref="Kernel6x16RowsPackingBAvx2"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel12x16PackingBAvx512(int kc, ref float a, ref float a6, nint rowStride, nint kStep, ref float b,
        nint ldb, ref float panel, ref float c, int ldc, bool accumulate) =>
        Kernel12x16Avx512<PanelCopy>(kc, ref a, ref a6, rowStride, kStep, ref b, ldb, ref panel, ref c, ldc, accumulate);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel12x16Avx512<TCopy>(int kc, ref float a, ref float a6, nint rowStride, nint kStep, ref float b,
        nint ldb, ref float panel, ref float c, int ldc, bool accumulate) where TCopy : struct
    {
        Vector512<float> c0 = Vector512<float>.Zero, c1 = Vector512<float>.Zero, c2 = Vector512<float>.Zero;
        Vector512<float> c3 = Vector512<float>.Zero, c4 = Vector512<float>.Zero, c5 = Vector512<float>.Zero;
        Vector512<float> c6 = Vector512<float>.Zero, c7 = Vector512<float>.Zero, c8 = Vector512<float>.Zero;
        Vector512<float> c9 = Vector512<float>.Zero, c10 = Vector512<float>.Zero, c11 = Vector512<float>.Zero;
        nint r1 = rowStride, r2 = 2 * rowStride, r3 = 3 * rowStride, r4 = 4 * rowStride, r5 = 5 * rowStride;
        for (int k = kc; k > 0; k--)
        {
            var bv = Vector512.LoadUnsafe(ref b);
            if (typeof(TCopy) == typeof(PanelCopy))
            {
                bv.StoreUnsafe(ref panel);
                panel = ref Unsafe.Add(ref panel, NR);
            }
            c0 = Avx512F.FusedMultiplyAdd(Vector512.Create(a), bv, c0);
            c1 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a, r1)), bv, c1);
            c2 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a, r2)), bv, c2);
            c3 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a, r3)), bv, c3);
            c4 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a, r4)), bv, c4);
            c5 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a, r5)), bv, c5);
            c6 = Avx512F.FusedMultiplyAdd(Vector512.Create(a6), bv, c6);
            c7 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a6, r1)), bv, c7);
            c8 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a6, r2)), bv, c8);
            c9 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a6, r3)), bv, c9);
            c10 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a6, r4)), bv, c10);
            c11 = Avx512F.FusedMultiplyAdd(Vector512.Create(Unsafe.Add(ref a6, r5)), bv, c11);
            a = ref Unsafe.Add(ref a, kStep);
            a6 = ref Unsafe.Add(ref a6, kStep);
            b = ref Unsafe.Add(ref b, ldb);
        }
        nint l = ldc;
        StoreRow(ref c, 0, c0, accumulate);
        StoreRow(ref c, l, c1, accumulate);
        StoreRow(ref c, 2 * l, c2, accumulate);
        StoreRow(ref c, 3 * l, c3, accumulate);
        StoreRow(ref c, 4 * l, c4, accumulate);
        StoreRow(ref c, 5 * l, c5, accumulate);
        StoreRow(ref c, 6 * l, c6, accumulate);
        StoreRow(ref c, 7 * l, c7, accumulate);
        StoreRow(ref c, 8 * l, c8, accumulate);
        StoreRow(ref c, 9 * l, c9, accumulate);
        StoreRow(ref c, 10 * l, c10, accumulate);
        StoreRow(ref c, 11 * l, c11, accumulate);
    }

    /// <summary>
    /// The 12x32 AVX-512 micro-kernel: two 6-row strips of A against two B micro-panels (the second
    /// <paramref name="bSecond"/> floats after the first), 24 zmm accumulators. Per k: 2 B loads, 12 broadcasts, 24 FMAs:
    /// 14 loads per 24 FMAs where the 12x16 kernel issues 13 per 12 (each embedded broadcast is a load), and Zen 5 takes
    /// at most two vector loads per cycle, so the 12x16 kernel cannot quite keep both FMA pipes busy. A as in
    /// <see cref="Kernel12x16Avx512(int, ref float, ref float, nint, nint, ref float, ref float, int, bool)"/>; the same bits
    /// as four 6x16 tiles.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel12x32Avx512(int kc, ref float a, ref float a6, nint rowStride, nint kStep, ref float b, nint bSecond,
        ref float c, int ldc, bool accumulate) =>
        Kernel12x32Avx512<NoPanelCopy>(kc, ref a, ref a6, rowStride, kStep, ref b, bSecond, NR, ref b, 0, ref c, ldc, accumulate);

    /// <summary>
    /// <see cref="Kernel12x32Avx512(int, ref float, ref float, nint, nint, ref float, nint, ref float, int, bool)"/> reading
    /// 32 columns of B where they lie (rows <paramref name="ldb"/> apart) and packing them into the two panels at
    /// <paramref name="panel"/> and <paramref name="panelSecond"/> floats after it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Kernel12x32PackingBAvx512(int kc, ref float a, ref float a6, nint rowStride, nint kStep, ref float b,
        nint ldb, ref float panel, nint panelSecond, ref float c, int ldc, bool accumulate) =>
        Kernel12x32Avx512<PanelCopy>(kc, ref a, ref a6, rowStride, kStep, ref b, NR, ldb, ref panel, panelSecond, ref c, ldc, accumulate);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel12x32Avx512<TCopy>(int kc, ref float a, ref float a6, nint rowStride, nint kStep, ref float b,
        nint bSecond, nint ldb, ref float panel, nint panelSecond, ref float c, int ldc, bool accumulate) where TCopy : struct
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector512<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        Vector512<float> c60 = default, c61 = default, c70 = default, c71 = default, c80 = default, c81 = default;
        Vector512<float> c90 = default, c91 = default, ca0 = default, ca1 = default, cb0 = default, cb1 = default;
        nint r1 = rowStride, r2 = 2 * rowStride, r3 = 3 * rowStride, r4 = 4 * rowStride, r5 = 5 * rowStride;
        for (int k = kc; k > 0; k--)
        {
            var b0 = Vector512.LoadUnsafe(ref b);
            var b1 = Vector512.LoadUnsafe(ref Unsafe.Add(ref b, bSecond));
            if (typeof(TCopy) == typeof(PanelCopy))
            {
                b0.StoreUnsafe(ref panel);
                b1.StoreUnsafe(ref Unsafe.Add(ref panel, panelSecond));
                panel = ref Unsafe.Add(ref panel, NR);
            }
            var av = Vector512.Create(a);
            c00 = Avx512F.FusedMultiplyAdd(av, b0, c00); c01 = Avx512F.FusedMultiplyAdd(av, b1, c01);
            av = Vector512.Create(Unsafe.Add(ref a, r1));
            c10 = Avx512F.FusedMultiplyAdd(av, b0, c10); c11 = Avx512F.FusedMultiplyAdd(av, b1, c11);
            av = Vector512.Create(Unsafe.Add(ref a, r2));
            c20 = Avx512F.FusedMultiplyAdd(av, b0, c20); c21 = Avx512F.FusedMultiplyAdd(av, b1, c21);
            av = Vector512.Create(Unsafe.Add(ref a, r3));
            c30 = Avx512F.FusedMultiplyAdd(av, b0, c30); c31 = Avx512F.FusedMultiplyAdd(av, b1, c31);
            av = Vector512.Create(Unsafe.Add(ref a, r4));
            c40 = Avx512F.FusedMultiplyAdd(av, b0, c40); c41 = Avx512F.FusedMultiplyAdd(av, b1, c41);
            av = Vector512.Create(Unsafe.Add(ref a, r5));
            c50 = Avx512F.FusedMultiplyAdd(av, b0, c50); c51 = Avx512F.FusedMultiplyAdd(av, b1, c51);
            av = Vector512.Create(a6);
            c60 = Avx512F.FusedMultiplyAdd(av, b0, c60); c61 = Avx512F.FusedMultiplyAdd(av, b1, c61);
            av = Vector512.Create(Unsafe.Add(ref a6, r1));
            c70 = Avx512F.FusedMultiplyAdd(av, b0, c70); c71 = Avx512F.FusedMultiplyAdd(av, b1, c71);
            av = Vector512.Create(Unsafe.Add(ref a6, r2));
            c80 = Avx512F.FusedMultiplyAdd(av, b0, c80); c81 = Avx512F.FusedMultiplyAdd(av, b1, c81);
            av = Vector512.Create(Unsafe.Add(ref a6, r3));
            c90 = Avx512F.FusedMultiplyAdd(av, b0, c90); c91 = Avx512F.FusedMultiplyAdd(av, b1, c91);
            av = Vector512.Create(Unsafe.Add(ref a6, r4));
            ca0 = Avx512F.FusedMultiplyAdd(av, b0, ca0); ca1 = Avx512F.FusedMultiplyAdd(av, b1, ca1);
            av = Vector512.Create(Unsafe.Add(ref a6, r5));
            cb0 = Avx512F.FusedMultiplyAdd(av, b0, cb0); cb1 = Avx512F.FusedMultiplyAdd(av, b1, cb1);
            a = ref Unsafe.Add(ref a, kStep);
            a6 = ref Unsafe.Add(ref a6, kStep);
            b = ref Unsafe.Add(ref b, ldb);
        }
        nint l = ldc;
        StoreRow(ref c, 0, c00, c01, accumulate);
        StoreRow(ref c, l, c10, c11, accumulate);
        StoreRow(ref c, 2 * l, c20, c21, accumulate);
        StoreRow(ref c, 3 * l, c30, c31, accumulate);
        StoreRow(ref c, 4 * l, c40, c41, accumulate);
        StoreRow(ref c, 5 * l, c50, c51, accumulate);
        StoreRow(ref c, 6 * l, c60, c61, accumulate);
        StoreRow(ref c, 7 * l, c70, c71, accumulate);
        StoreRow(ref c, 8 * l, c80, c81, accumulate);
        StoreRow(ref c, 9 * l, c90, c91, accumulate);
        StoreRow(ref c, 10 * l, ca0, ca1, accumulate);
        StoreRow(ref c, 11 * l, cb0, cb1, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(ref float c, nint offset, Vector512<float> lo, Vector512<float> hi, bool accumulate)
    {
        StoreRow(ref c, offset, lo, accumulate);
        StoreRow(ref c, offset + NR, hi, accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreRow(ref float c, nint offset, Vector512<float> row, bool accumulate)
    {
        if (accumulate) row += Vector512.LoadUnsafe(ref c, (nuint)offset);
        row.StoreUnsafe(ref c, (nuint)offset);
    }
}
