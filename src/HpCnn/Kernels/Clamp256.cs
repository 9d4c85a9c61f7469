using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

/// <summary>How an AVX2 epilogue clamps to [low, high], chosen once per call (<see cref="Clamp256.ModeOf"/>).</summary>
internal enum ClampMode { None, Relu, Full }

/// <summary>
/// min(max(v, low), high) and the max of two clamped values in ymm/xmm with the bits of MathF and Vector256.Min/Max,
/// cheaply for the two clamps the networks use. Vector256.Min and Max follow IEEE 754-2019 (a NaN propagates, -0 is
/// below +0) in about ten AVX2 instructions each: the clamp took half of a direct convolution block's time on Zen 1
/// (BENCHMARKS.md, 2026-12-04).
/// </summary>
internal static class Clamp256
{
    /// <summary>None for (-inf, +inf), ReLU for [+0, +inf), else Full.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ClampMode ModeOf(float low, float high) =>
        float.IsNegativeInfinity(low) && float.IsPositiveInfinity(high) ? ClampMode.None
        : low == 0f && !float.IsNegative(low) && float.IsPositiveInfinity(high) ? ClampMode.Relu
        : ClampMode.Full;

    /// <summary>
    /// None returns v (max with -inf and min with +inf change nothing, a NaN included); ReLU is vmaxps(+0, v), which
    /// returns v when v is NaN or a zero of either sign, plus +0, which turns -0 into +0 and leaves every other value (a
    /// quiet NaN's payload too) as it is; Full is the IEEE pair (as is ReLU where the instructions are absent: the same bits).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Apply(Vector256<float> v, Vector256<float> lo, Vector256<float> hi, ClampMode mode) =>
        mode == ClampMode.None ? v
        : mode == ClampMode.Relu && Avx.IsSupported ? Avx.Add(Avx.Max(lo, v), Vector256<float>.Zero)
        : Vector256.Min(Vector256.Max(v, lo), hi);

    /// <inheritdoc cref="Apply(Vector256{float}, Vector256{float}, Vector256{float}, ClampMode)"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Apply(Vector128<float> v, Vector128<float> lo, Vector128<float> hi, ClampMode mode) =>
        mode == ClampMode.None ? v
        : mode == ClampMode.Relu && Sse.IsSupported ? Sse.Add(Sse.Max(lo, v), Vector128<float>.Zero)
        : Vector128.Min(Vector128.Max(v, lo), hi);

    /// <inheritdoc cref="Apply(Vector256{float}, Vector256{float}, Vector256{float}, ClampMode)"/>
    /// <remarks>In zmm: vmaxps zmm treats NaNs and zeros as vmaxps ymm does, so the AVX-512 epilogues give the AVX2 bits.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Apply(Vector512<float> v, Vector512<float> lo, Vector512<float> hi, ClampMode mode) =>
        mode == ClampMode.None ? v
        : mode == ClampMode.Relu && Avx512F.IsSupported ? Avx512F.Add(Avx512F.Max(lo, v), Vector512<float>.Zero)
        : Vector512.Min(Vector512.Max(v, lo), hi);

    /// <summary>
    /// The IEEE maximum of two outputs of <see cref="Apply(Vector256{float}, Vector256{float}, Vector256{float}, ClampMode)"/>
    /// in <paramref name="mode"/>, with a NaN in a, then one in b, the NaN that wins. ReLU's outputs are NaN or at least +0
    /// (never -0), so vmaxps(a, b), which returns b when either is NaN, is that maximum once a NaN in a is put back. In
    /// the other modes Vector256.Max, with a's NaN put back likewise: which NaN it returns when both are is up to the
    /// JIT's code for the CPU (the second with AVX-512 on a Xeon, the first without), and a result must not depend on it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Max(Vector256<float> a, Vector256<float> b, ClampMode mode) =>
        !Avx.IsSupported ? Vector256.Max(a, b)
        : Avx.BlendVariable(mode == ClampMode.Relu ? Avx.Max(a, b) : Vector256.Max(a, b), a, Avx.CompareUnordered(a, a));

    /// <inheritdoc cref="Max(Vector256{float}, Vector256{float}, ClampMode)"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Max(Vector128<float> a, Vector128<float> b, ClampMode mode) =>
        !Sse41.IsSupported ? Vector128.Max(a, b)
        : Sse41.BlendVariable(mode == ClampMode.Relu ? Sse.Max(a, b) : Vector128.Max(a, b), a, Sse.CompareUnordered(a, a));
}
