using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

/// <summary>
/// Sums and dot products whose result does not depend on the vector width: element i goes to lane i mod 64 (added in
/// order within its lane; products with one FMA), and the 64 lanes are combined by halving (lane j + lane j + 32, then
/// + 16, ... + 1). The AVX-512 path keeps the lanes in four zmm registers, the AVX2 path in eight ymm, the scalar path
/// in an array: the same additions in the same order, so the same bits (TensorPrimitives' sums follow the vector width,
/// and an AVX2 and an AVX-512 machine would disagree in the last bits). Sixty-four lanes are four independent chains of
/// vector adds per element group, enough to keep the adders busy on data in L1.
/// </summary>
public static class LaneSum
{
    private const int Lanes = 64;

    /// <summary>The sum of <paramref name="x"/>.</summary>
    public static float Sum(ReadOnlySpan<float> x) => Reduce(x, default, product: false, shift: 0f, square: false);

    /// <summary>The sum of x[i] * y[i].</summary>
    public static float Dot(ReadOnlySpan<float> x, ReadOnlySpan<float> y)
    {
        if (y.Length != x.Length) throw new ArgumentException($"dot: lengths {x.Length} and {y.Length} differ");
        return Reduce(x, y, product: true, shift: 0f, square: false);
    }

    /// <summary>The sum of (x[i] - shift)^2 (one subtraction and one FMA per element).</summary>
    public static float SumOfSquaredDeviations(ReadOnlySpan<float> x, float shift) => Reduce(x, default, product: false, shift, square: true);

    private static unsafe float Reduce(ReadOnlySpan<float> x, ReadOnlySpan<float> y, bool product, float shift, bool square)
    {
        float* lanes = stackalloc float[Lanes];
        int n = x.Length, whole = n / Lanes * Lanes;
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        if (Vector512.IsHardwareAccelerated && Engine.UseAvx512)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            var s = Vector512.Create(shift);
            for (int i = 0; i < whole; i += Lanes)
            {
                var x0 = Vector512.LoadUnsafe(ref xr, (nuint)i); var x1 = Vector512.LoadUnsafe(ref xr, (nuint)i + 16);
                var x2 = Vector512.LoadUnsafe(ref xr, (nuint)i + 32); var x3 = Vector512.LoadUnsafe(ref xr, (nuint)i + 48);
                if (product)
                {
                    a0 = Vector512.FusedMultiplyAdd(x0, Vector512.LoadUnsafe(ref yr, (nuint)i), a0);
                    a1 = Vector512.FusedMultiplyAdd(x1, Vector512.LoadUnsafe(ref yr, (nuint)i + 16), a1);
                    a2 = Vector512.FusedMultiplyAdd(x2, Vector512.LoadUnsafe(ref yr, (nuint)i + 32), a2);
                    a3 = Vector512.FusedMultiplyAdd(x3, Vector512.LoadUnsafe(ref yr, (nuint)i + 48), a3);
                }
                else if (square)
                {
                    x0 -= s; x1 -= s; x2 -= s; x3 -= s;
                    a0 = Vector512.FusedMultiplyAdd(x0, x0, a0); a1 = Vector512.FusedMultiplyAdd(x1, x1, a1);
                    a2 = Vector512.FusedMultiplyAdd(x2, x2, a2); a3 = Vector512.FusedMultiplyAdd(x3, x3, a3);
                }
                else { a0 += x0; a1 += x1; a2 += x2; a3 += x3; }
            }
            Vector512.Store(a0, lanes); Vector512.Store(a1, lanes + 16); Vector512.Store(a2, lanes + 32); Vector512.Store(a3, lanes + 48);
        }
        else if (Vector256.IsHardwareAccelerated && Engine.UseAvx2)
        {
            Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
            var s = Vector256.Create(shift);
            for (int i = 0; i < whole; i += Lanes)
            {
                var x0 = Vector256.LoadUnsafe(ref xr, (nuint)i); var x1 = Vector256.LoadUnsafe(ref xr, (nuint)i + 8);
                var x2 = Vector256.LoadUnsafe(ref xr, (nuint)i + 16); var x3 = Vector256.LoadUnsafe(ref xr, (nuint)i + 24);
                var x4 = Vector256.LoadUnsafe(ref xr, (nuint)i + 32); var x5 = Vector256.LoadUnsafe(ref xr, (nuint)i + 40);
                var x6 = Vector256.LoadUnsafe(ref xr, (nuint)i + 48); var x7 = Vector256.LoadUnsafe(ref xr, (nuint)i + 56);
                if (product)
                {
                    a0 = Vector256.FusedMultiplyAdd(x0, Vector256.LoadUnsafe(ref yr, (nuint)i), a0);
                    a1 = Vector256.FusedMultiplyAdd(x1, Vector256.LoadUnsafe(ref yr, (nuint)i + 8), a1);
                    a2 = Vector256.FusedMultiplyAdd(x2, Vector256.LoadUnsafe(ref yr, (nuint)i + 16), a2);
                    a3 = Vector256.FusedMultiplyAdd(x3, Vector256.LoadUnsafe(ref yr, (nuint)i + 24), a3);
                    a4 = Vector256.FusedMultiplyAdd(x4, Vector256.LoadUnsafe(ref yr, (nuint)i + 32), a4);
                    a5 = Vector256.FusedMultiplyAdd(x5, Vector256.LoadUnsafe(ref yr, (nuint)i + 40), a5);
                    a6 = Vector256.FusedMultiplyAdd(x6, Vector256.LoadUnsafe(ref yr, (nuint)i + 48), a6);
                    a7 = Vector256.FusedMultiplyAdd(x7, Vector256.LoadUnsafe(ref yr, (nuint)i + 56), a7);
                }
                else if (square)
                {
                    x0 -= s; x1 -= s; x2 -= s; x3 -= s; x4 -= s; x5 -= s; x6 -= s; x7 -= s;
                    a0 = Vector256.FusedMultiplyAdd(x0, x0, a0); a1 = Vector256.FusedMultiplyAdd(x1, x1, a1);
                    a2 = Vector256.FusedMultiplyAdd(x2, x2, a2); a3 = Vector256.FusedMultiplyAdd(x3, x3, a3);
                    a4 = Vector256.FusedMultiplyAdd(x4, x4, a4); a5 = Vector256.FusedMultiplyAdd(x5, x5, a5);
                    a6 = Vector256.FusedMultiplyAdd(x6, x6, a6); a7 = Vector256.FusedMultiplyAdd(x7, x7, a7);
                }
                else { a0 += x0; a1 += x1; a2 += x2; a3 += x3; a4 += x4; a5 += x5; a6 += x6; a7 += x7; }
            }
            Vector256.Store(a0, lanes); Vector256.Store(a1, lanes + 8); Vector256.Store(a2, lanes + 16); Vector256.Store(a3, lanes + 24);
            Vector256.Store(a4, lanes + 32); Vector256.Store(a5, lanes + 40); Vector256.Store(a6, lanes + 48); Vector256.Store(a7, lanes + 56);
        }
        else
        {
            for (int l = 0; l < Lanes; l++) lanes[l] = 0f;
            for (int i = 0; i < whole; i++) lanes[i % Lanes] = Step(lanes[i % Lanes], Unsafe.Add(ref xr, i), product ? Unsafe.Add(ref yr, i) : 0f, product, shift, square);
        }
        for (int i = whole; i < n; i++)
            lanes[i - whole] = Step(lanes[i - whole], Unsafe.Add(ref xr, i), product ? Unsafe.Add(ref yr, i) : 0f, product, shift, square);
        return Combine(lanes);
    }

    /// <summary>
    /// lanes[j] += lanes[j + half] for half = 32, 16, ..., 1, and lanes[0]: with vector adds of the two halves where the
    /// CPU has them (the same additions, so the same bits; a scalar loop of 63 dependent adds cost as much as summing a
    /// 32 x 32 plane).
    /// </summary>
    private static unsafe float Combine(float* lanes)
    {
        int half = Lanes / 2;
        if (Vector256.IsHardwareAccelerated && Engine.UseAvx2)
        {
            for (; half >= 8; half /= 2)
                for (int j = 0; j < half; j += 8)
                    Vector256.Store(Vector256.Load(lanes + j) + Vector256.Load(lanes + j + half), lanes + j);
            Vector128.Store(Vector128.Load(lanes) + Vector128.Load(lanes + 4), lanes);
            half = 2;
        }
        for (; half >= 1; half /= 2)
            for (int j = 0; j < half; j++) lanes[j] += lanes[j + half];
        return lanes[0];
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Step(float acc, float x, float y, bool product, float shift, bool square)
    {
        if (product) return MathF.FusedMultiplyAdd(x, y, acc);
        if (square)
        {
            float d = x - shift;
            return MathF.FusedMultiplyAdd(d, d, acc);
        }
        return acc + x;
    }
}
