using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

public static partial class Conv2dKernels
{
    /// <summary>
    /// <see cref="GatherRows3x32Avx2"/> with zmm registers: 3 taps x 32 channels in 6 accumulators, half the loads and FMAs
    /// (Zen 5 runs a zmm FMA at the ymm rate). Each lane sums the same products in the same order with the same FMA, so
    /// the same bits. Two filter rows at a time when there are two left: 12 independent accumulators, enough to cover
    /// the FMA latency (6 would leave the pipes a quarter idle).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void GatherRows3x32Avx512(ReadOnlySpan<int> rowOffsets, ReadOnlySpan<float> value, ReadOnlySpan<float> src,
        int srcOffset, int srcRowStep, Span<float> dst, int dOffset, int dstRowStep, int rows, int c)
    {
        ref int off = ref MemoryMarshal.GetReference(rowOffsets);
        ref float val = ref MemoryMarshal.GetReference(value);
        int n = rowOffsets.Length;
        int r = 0;
        for (; r + 2 <= rows; r += 2)
        {
            ref float xr = ref Unsafe.Add(ref MemoryMarshal.GetReference(src), srcOffset + r * srcRowStep);
            ref float xs = ref Unsafe.Add(ref xr, srcRowStep);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
            Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default;
            for (int e = 0; e < n; e++)
            {
                var g = Vector512.Create(Unsafe.Add(ref val, e));
                int o = Unsafe.Add(ref off, e);
                Accumulate(g, ref Unsafe.Add(ref xr, o), c, ref a0, ref a1, ref a2, ref a3, ref a4, ref a5);
                Accumulate(g, ref Unsafe.Add(ref xs, o), c, ref b0, ref b1, ref b2, ref b3, ref b4, ref b5);
            }
            ref float d = ref Unsafe.Add(ref MemoryMarshal.GetReference(dst), dOffset + r * dstRowStep);
            AddRows(ref d, c, a0, a1, a2, a3, a4, a5);
            AddRows(ref Unsafe.Add(ref d, dstRowStep), c, b0, b1, b2, b3, b4, b5);
        }
        if (r < rows)
        {
            ref float xr = ref Unsafe.Add(ref MemoryMarshal.GetReference(src), srcOffset + r * srcRowStep);
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default;
            for (int e = 0; e < n; e++)
                Accumulate(Vector512.Create(Unsafe.Add(ref val, e)), ref Unsafe.Add(ref xr, Unsafe.Add(ref off, e)), c,
                    ref a0, ref a1, ref a2, ref a3, ref a4, ref a5);
            AddRows(ref Unsafe.Add(ref MemoryMarshal.GetReference(dst), dOffset + r * dstRowStep), c, a0, a1, a2, a3, a4, a5);
        }
    }

    /// <summary>a[2k + j] += g * x[k * c + 16 j] for 3 taps k and 2 vectors j.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate(Vector512<float> g, ref float x, int c, ref Vector512<float> a0, ref Vector512<float> a1,
        ref Vector512<float> a2, ref Vector512<float> a3, ref Vector512<float> a4, ref Vector512<float> a5)
    {
        ref float x1 = ref Unsafe.Add(ref x, c);
        ref float x2 = ref Unsafe.Add(ref x1, c);
        a0 = Avx512F.FusedMultiplyAdd(g, Vector512.LoadUnsafe(ref x), a0); a1 = Avx512F.FusedMultiplyAdd(g, Vector512.LoadUnsafe(ref x, 16), a1);
        a2 = Avx512F.FusedMultiplyAdd(g, Vector512.LoadUnsafe(ref x1), a2); a3 = Avx512F.FusedMultiplyAdd(g, Vector512.LoadUnsafe(ref x1, 16), a3);
        a4 = Avx512F.FusedMultiplyAdd(g, Vector512.LoadUnsafe(ref x2), a4); a5 = Avx512F.FusedMultiplyAdd(g, Vector512.LoadUnsafe(ref x2, 16), a5);
    }

    /// <summary>Adds 3 taps x 32 channels (taps <paramref name="c"/> apart) into d.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddRows(ref float d, int c, Vector512<float> a0, Vector512<float> a1, Vector512<float> a2,
        Vector512<float> a3, Vector512<float> a4, Vector512<float> a5)
    {
        ref float d1 = ref Unsafe.Add(ref d, c);
        ref float d2 = ref Unsafe.Add(ref d1, c);
        (Vector512.LoadUnsafe(ref d) + a0).StoreUnsafe(ref d);
        (Vector512.LoadUnsafe(ref d, 16) + a1).StoreUnsafe(ref d, 16);
        (Vector512.LoadUnsafe(ref d1) + a2).StoreUnsafe(ref d1);
        (Vector512.LoadUnsafe(ref d1, 16) + a3).StoreUnsafe(ref d1, 16);
        (Vector512.LoadUnsafe(ref d2) + a4).StoreUnsafe(ref d2);
        (Vector512.LoadUnsafe(ref d2, 16) + a5).StoreUnsafe(ref d2, 16);
    }
}
