using System.Runtime.CompilerServices;

namespace HpCnn.Kernels;

public static partial class Sgemm
{
    /// <summary>
    /// Portable micro-kernel with the same contract as <see cref="Kernel6x16Avx2"/>: used when AVX2/FMA
    /// are not available. Accumulates in a stack tile with the same FMA chains as the vector kernels (MathF's FMA is
    /// exact, with or without the instruction), so every path gives the same bits, and rows computed here or by the
    /// few-rows path agree.
    /// </summary>
    internal static void Kernel6x16Scalar(int kc, ref float a, ref float b, ref float c, int ldc, bool accumulate)
    {
        Span<float> acc = stackalloc float[MR * NR];
        acc.Clear();
        for (int k = 0; k < kc; k++)
        {
            ref float ak = ref Unsafe.Add(ref a, k * MR);
            ref float bk = ref Unsafe.Add(ref b, k * NR);
            for (int r = 0; r < MR; r++)
            {
                float av = Unsafe.Add(ref ak, r);
                var row = acc.Slice(r * NR, NR);
                for (int j = 0; j < NR; j++) row[j] = MathF.FusedMultiplyAdd(av, Unsafe.Add(ref bk, j), row[j]);
            }
        }
        for (int r = 0; r < MR; r++)
        {
            ref float cr = ref Unsafe.Add(ref c, r * ldc);
            for (int j = 0; j < NR; j++)
                Unsafe.Add(ref cr, j) = accumulate ? Unsafe.Add(ref cr, j) + acc[r * NR + j] : acc[r * NR + j];
        }
    }

    /// <summary>
    /// The algorithmic reference (triple loop, double accumulation): the oracle every optimised path is tested
    /// against. C := (accumulate ? C : 0) + op(A) op(B). Slow on purpose.
    /// </summary>
    public static void Reference(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, bool accumulate)
    {
        Validate(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = accumulate ? c[i * ldc + j] : 0.0;
                for (int p = 0; p < k; p++)
                {
                    float av = transA ? a[p * lda + i] : a[i * lda + p];
                    float bv = transB ? b[j * ldb + p] : b[p * ldb + j];
                    s += (double)av * bv;
                }
                c[i * ldc + j] = (float)s;
            }
    }
}
