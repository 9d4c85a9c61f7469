using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

/// <summary>
/// Masked stores for the AVX2 kernels' partial vectors: AVX-512's (a k-mask store, as fast as a plain one) where the
/// CPU has it, else AVX's vmaskmovps, whose store form is microcoded on AMD cores (the Winograd input transform of
/// 7-tile rows spent most of its time in its 16 masked stores). A mask lane is set when its sign bit is; the kernels'
/// masks are all ones or all zeros per lane.
/// </summary>
internal static unsafe class Masked
{
    /// <summary>
    /// Where a step of 8 outputs from <paramref name="x"/> in a row of <paramref name="width"/> starts: the last, partial
    /// step moves back to end at the row's end when the row holds 8, so that it stores a whole vector (kernels whose
    /// outputs are independent of their neighbours recompute a few with the same operations, the same bits) instead of
    /// a masked store. A 2x2 pool of 28 x 28 planes ran at half the speed per input of 32 x 32 ones on Zen 1.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int TailStart(int x, int width) => x + 8 > width && width >= 8 ? width - 8 : x;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector256<float> mask, Vector256<float> v)
    {
        if (Avx512F.VL.IsSupported) Avx512F.VL.MaskStore(p, mask, v);
        else Avx.MaskStore(p, mask, v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(int* p, Vector256<int> mask, Vector256<int> v)
    {
        if (Avx512F.VL.IsSupported) Avx512F.VL.MaskStore(p, mask, v);
        else Avx2.MaskStore(p, mask, v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(float* p, Vector128<float> mask, Vector128<float> v)
    {
        if (Avx512F.VL.IsSupported) Avx512F.VL.MaskStore(p, mask, v);
        else Avx.MaskStore(p, mask, v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Store(int* p, Vector128<int> mask, Vector128<int> v)
    {
        if (Avx512F.VL.IsSupported) Avx512F.VL.MaskStore(p, mask, v);
        else Avx2.MaskStore(p, mask, v);
    }
}
