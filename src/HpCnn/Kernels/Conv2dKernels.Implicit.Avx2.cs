using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

public static partial class Conv2dKernels
{
    /// <summary>
    /// AVX2/FMA implicit micro-kernel: tile (6 x 16, ld 16) := A strip (k x 6) x rows src[offset[kk] .. +16).
    /// 12 accumulators; per kk one offset load, two B loads, six broadcasts.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ImplicitKernel6x16Avx2(int k, ref float a, ref float src, ref int off, ref float tile)
    {
        Vector256<float> c00 = Vector256<float>.Zero, c01 = Vector256<float>.Zero;
        Vector256<float> c10 = Vector256<float>.Zero, c11 = Vector256<float>.Zero;
        Vector256<float> c20 = Vector256<float>.Zero, c21 = Vector256<float>.Zero;
        Vector256<float> c30 = Vector256<float>.Zero, c31 = Vector256<float>.Zero;
        Vector256<float> c40 = Vector256<float>.Zero, c41 = Vector256<float>.Zero;
        Vector256<float> c50 = Vector256<float>.Zero, c51 = Vector256<float>.Zero;
        Vector256<float> b0, b1, av;
        for (int kk = 0; kk < k; kk++)
        {
            ref float b = ref Unsafe.Add(ref src, Unsafe.Add(ref off, kk));
            b0 = Vector256.LoadUnsafe(ref b);
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
            a = ref Unsafe.Add(ref a, 6);
        }
        c00.StoreUnsafe(ref tile, 0);
        c01.StoreUnsafe(ref tile, 8);
        c10.StoreUnsafe(ref tile, 16);
        c11.StoreUnsafe(ref tile, 24);
        c20.StoreUnsafe(ref tile, 32);
        c21.StoreUnsafe(ref tile, 40);
        c30.StoreUnsafe(ref tile, 48);
        c31.StoreUnsafe(ref tile, 56);
        c40.StoreUnsafe(ref tile, 64);
        c41.StoreUnsafe(ref tile, 72);
        c50.StoreUnsafe(ref tile, 80);
        c51.StoreUnsafe(ref tile, 88);
    }

    /// <summary>
    /// AVX2/FMA 4 x 3 block of shifted dot products over len (multiple of 8): 12 accumulators, per 8 values
    /// three source loads and four A loads. Lanes are summed in a fixed order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ShiftedDot4x3Avx2(int len, ref float a, int lda, ref float src, ref int off, ref float dw, int lddw, bool accumulate)
    {
        Vector256<float> c00 = Vector256<float>.Zero, c01 = Vector256<float>.Zero, c02 = Vector256<float>.Zero;
        Vector256<float> c10 = Vector256<float>.Zero, c11 = Vector256<float>.Zero, c12 = Vector256<float>.Zero;
        Vector256<float> c20 = Vector256<float>.Zero, c21 = Vector256<float>.Zero, c22 = Vector256<float>.Zero;
        Vector256<float> c30 = Vector256<float>.Zero, c31 = Vector256<float>.Zero, c32 = Vector256<float>.Zero;
        ref float s0 = ref Unsafe.Add(ref src, off);
        ref float s1 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 1));
        ref float s2 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 2));
        ref float a1 = ref Unsafe.Add(ref a, lda);
        ref float a2 = ref Unsafe.Add(ref a, 2 * lda);
        ref float a3 = ref Unsafe.Add(ref a, 3 * lda);
        for (nuint t = 0; t < (nuint)len; t += 8)
        {
            var b0 = Vector256.LoadUnsafe(ref s0, t);
            var b1 = Vector256.LoadUnsafe(ref s1, t);
            var b2 = Vector256.LoadUnsafe(ref s2, t);
            var v0 = Vector256.LoadUnsafe(ref a, t);
            c00 = Fma.MultiplyAdd(v0, b0, c00);
            c01 = Fma.MultiplyAdd(v0, b1, c01);
            c02 = Fma.MultiplyAdd(v0, b2, c02);
            var v1 = Vector256.LoadUnsafe(ref a1, t);
            c10 = Fma.MultiplyAdd(v1, b0, c10);
            c11 = Fma.MultiplyAdd(v1, b1, c11);
            c12 = Fma.MultiplyAdd(v1, b2, c12);
            var v2 = Vector256.LoadUnsafe(ref a2, t);
            c20 = Fma.MultiplyAdd(v2, b0, c20);
            c21 = Fma.MultiplyAdd(v2, b1, c21);
            c22 = Fma.MultiplyAdd(v2, b2, c22);
            var v3 = Vector256.LoadUnsafe(ref a3, t);
            c30 = Fma.MultiplyAdd(v3, b0, c30);
            c31 = Fma.MultiplyAdd(v3, b1, c31);
            c32 = Fma.MultiplyAdd(v3, b2, c32);
        }
        Store(ref Unsafe.Add(ref dw, 0 * lddw + 0), Vector256.Sum(c00), accumulate);
        Store(ref Unsafe.Add(ref dw, 0 * lddw + 1), Vector256.Sum(c01), accumulate);
        Store(ref Unsafe.Add(ref dw, 0 * lddw + 2), Vector256.Sum(c02), accumulate);
        Store(ref Unsafe.Add(ref dw, 1 * lddw + 0), Vector256.Sum(c10), accumulate);
        Store(ref Unsafe.Add(ref dw, 1 * lddw + 1), Vector256.Sum(c11), accumulate);
        Store(ref Unsafe.Add(ref dw, 1 * lddw + 2), Vector256.Sum(c12), accumulate);
        Store(ref Unsafe.Add(ref dw, 2 * lddw + 0), Vector256.Sum(c20), accumulate);
        Store(ref Unsafe.Add(ref dw, 2 * lddw + 1), Vector256.Sum(c21), accumulate);
        Store(ref Unsafe.Add(ref dw, 2 * lddw + 2), Vector256.Sum(c22), accumulate);
        Store(ref Unsafe.Add(ref dw, 3 * lddw + 0), Vector256.Sum(c30), accumulate);
        Store(ref Unsafe.Add(ref dw, 3 * lddw + 1), Vector256.Sum(c31), accumulate);
        Store(ref Unsafe.Add(ref dw, 3 * lddw + 2), Vector256.Sum(c32), accumulate);
    }

    /// <summary>
    /// One row against three shifted source rows (the rows left over by the 4 x 3 blocks): one A load feeds three FMAs,
    /// two accumulators per column hide the FMA latency.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ShiftedDot1x3Avx2(int len, ref float a, ref float src, ref int off, ref float dw, bool accumulate)
    {
        ref float s0 = ref Unsafe.Add(ref src, off);
        ref float s1 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 1));
        ref float s2 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 2));
        Vector256<float> c0 = default, c1 = default, c2 = default, d0 = default, d1 = default, d2 = default;
        nuint t = 0, n = (nuint)len;
        for (; t + 16 <= n; t += 16)
        {
            var v = Vector256.LoadUnsafe(ref a, t);
            c0 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s0, t), c0);
            c1 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s1, t), c1);
            c2 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s2, t), c2);
            var u = Vector256.LoadUnsafe(ref a, t + 8);
            d0 = Fma.MultiplyAdd(u, Vector256.LoadUnsafe(ref s0, t + 8), d0);
            d1 = Fma.MultiplyAdd(u, Vector256.LoadUnsafe(ref s1, t + 8), d1);
            d2 = Fma.MultiplyAdd(u, Vector256.LoadUnsafe(ref s2, t + 8), d2);
        }
        for (; t < n; t += 8)
        {
            var v = Vector256.LoadUnsafe(ref a, t);
            c0 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s0, t), c0);
            c1 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s1, t), c1);
            c2 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s2, t), c2);
        }
        Store(ref dw, Vector256.Sum(c0 + d0), accumulate);
        Store(ref Unsafe.Add(ref dw, 1), Vector256.Sum(c1 + d1), accumulate);
        Store(ref Unsafe.Add(ref dw, 2), Vector256.Sum(c2 + d2), accumulate);
    }

    /// <summary>
    /// One row against nine shifted source rows in zmm (a one-filter 3x3 layer's whole weight gradient in one pass: nine
    /// chains, where three calls of <see cref="ShiftedDot1x3Avx2"/> had six each and waited on the FMA latency). The same
    /// sums as that kernel: a zmm accumulator over 16 values holds its two ymm chains (values 0-7 and 8-15 of each 16) in
    /// its halves, a last 8 values go to the low half alone, and the halves are added and summed as there.
    /// The taps must be three runs of three consecutive offsets (a 3x3 kernel's rows), and the source readable 16 values
    /// past the third run's last value.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ShiftedDot1x9Avx512(int len, ref float a, ref float src, ref int off, ref float dw, bool accumulate)
    {
        ref float s0 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 0));
        ref float s1 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 1));
        ref float s2 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 2));
        ref float s3 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 3));
        ref float s4 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 4));
        ref float s5 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 5));
        ref float s6 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 6));
        ref float s7 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 7));
        ref float s8 = ref Unsafe.Add(ref src, Unsafe.Add(ref off, 8));
        Vector512<float> z0 = default, z1 = default, z2 = default, z3 = default, z4 = default, z5 = default, z6 = default, z7 = default, z8 = default;
        nuint t = 0, n = (nuint)len;
        // Taps 3r, 3r + 1, 3r + 2 read one run at shifts 0, 1, 2: one load of the next 16 values a run and two
        // in-register shifts (valignd) instead of three loads across cache lines: on a 28 x 28 image the AVX2 kernels took
        // 310 ns, nine zmm chains of plain loads 304-313 (the loads bound them), these 187.
        var l0 = Vector512.LoadUnsafe(ref s0); var l1 = Vector512.LoadUnsafe(ref s3); var l2 = Vector512.LoadUnsafe(ref s6);
        for (; t + 16 <= n; t += 16)
        {
            var v = Vector512.LoadUnsafe(ref a, t);
            var r0 = Vector512.LoadUnsafe(ref s0, t + 16); var r1 = Vector512.LoadUnsafe(ref s3, t + 16); var r2 = Vector512.LoadUnsafe(ref s6, t + 16);
            z0 = Avx512F.FusedMultiplyAdd(v, l0, z0);
            z1 = Avx512F.FusedMultiplyAdd(v, Avx512F.AlignRight32(r0.AsUInt32(), l0.AsUInt32(), 1).AsSingle(), z1);
            z2 = Avx512F.FusedMultiplyAdd(v, Avx512F.AlignRight32(r0.AsUInt32(), l0.AsUInt32(), 2).AsSingle(), z2);
            z3 = Avx512F.FusedMultiplyAdd(v, l1, z3);
            z4 = Avx512F.FusedMultiplyAdd(v, Avx512F.AlignRight32(r1.AsUInt32(), l1.AsUInt32(), 1).AsSingle(), z4);
            z5 = Avx512F.FusedMultiplyAdd(v, Avx512F.AlignRight32(r1.AsUInt32(), l1.AsUInt32(), 2).AsSingle(), z5);
            z6 = Avx512F.FusedMultiplyAdd(v, l2, z6);
            z7 = Avx512F.FusedMultiplyAdd(v, Avx512F.AlignRight32(r2.AsUInt32(), l2.AsUInt32(), 1).AsSingle(), z7);
            z8 = Avx512F.FusedMultiplyAdd(v, Avx512F.AlignRight32(r2.AsUInt32(), l2.AsUInt32(), 2).AsSingle(), z8);
            l0 = r0; l1 = r1; l2 = r2;
        }
        Vector256<float> c0 = z0.GetLower(), c1 = z1.GetLower(), c2 = z2.GetLower(), c3 = z3.GetLower(), c4 = z4.GetLower(), c5 = z5.GetLower(), c6 = z6.GetLower(), c7 = z7.GetLower(), c8 = z8.GetLower();
        if (t < n)
        {
            var v = Vector256.LoadUnsafe(ref a, t);
            c0 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s0, t), c0);
            c1 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s1, t), c1);
            c2 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s2, t), c2);
            c3 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s3, t), c3);
            c4 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s4, t), c4);
            c5 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s5, t), c5);
            c6 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s6, t), c6);
            c7 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s7, t), c7);
            c8 = Fma.MultiplyAdd(v, Vector256.LoadUnsafe(ref s8, t), c8);
        }
        Store(ref dw, Vector256.Sum(c0 + z0.GetUpper()), accumulate);
        Store(ref Unsafe.Add(ref dw, 1), Vector256.Sum(c1 + z1.GetUpper()), accumulate);
        Store(ref Unsafe.Add(ref dw, 2), Vector256.Sum(c2 + z2.GetUpper()), accumulate);
        Store(ref Unsafe.Add(ref dw, 3), Vector256.Sum(c3 + z3.GetUpper()), accumulate);
        Store(ref Unsafe.Add(ref dw, 4), Vector256.Sum(c4 + z4.GetUpper()), accumulate);
        Store(ref Unsafe.Add(ref dw, 5), Vector256.Sum(c5 + z5.GetUpper()), accumulate);
        Store(ref Unsafe.Add(ref dw, 6), Vector256.Sum(c6 + z6.GetUpper()), accumulate);
        Store(ref Unsafe.Add(ref dw, 7), Vector256.Sum(c7 + z7.GetUpper()), accumulate);
        Store(ref Unsafe.Add(ref dw, 8), Vector256.Sum(c8 + z8.GetUpper()), accumulate);
    }

    /// <summary>
    /// AVX2/FMA dot product of two runs of len floats (len a multiple of 8): four independent accumulators (an FMA
    /// chain would wait on the FMA latency), combined in a fixed order.
    /// </summary>
    internal static float DotAvx2(int len, ref float x, ref float y)
    {
        Vector256<float> a0 = Vector256<float>.Zero, a1 = Vector256<float>.Zero, a2 = Vector256<float>.Zero, a3 = Vector256<float>.Zero;
        nuint t = 0, n = (nuint)len;
        for (; t + 32 <= n; t += 32)
        {
            a0 = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref x, t), Vector256.LoadUnsafe(ref y, t), a0);
            a1 = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref x, t + 8), Vector256.LoadUnsafe(ref y, t + 8), a1);
            a2 = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref x, t + 16), Vector256.LoadUnsafe(ref y, t + 16), a2);
            a3 = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref x, t + 24), Vector256.LoadUnsafe(ref y, t + 24), a3);
        }
        for (; t < n; t += 8)
            a0 = Fma.MultiplyAdd(Vector256.LoadUnsafe(ref x, t), Vector256.LoadUnsafe(ref y, t), a0);
        return Vector256.Sum((a0 + a1) + (a2 + a3));
    }
}
