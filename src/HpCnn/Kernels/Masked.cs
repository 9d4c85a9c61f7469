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
