using System.Runtime.InteropServices;

namespace HpCnn.Benchmarks;

/// <summary>OpenBLAS (Debian libopenblas0) as the GEMM baseline: cblas_sgemm, row-major.</summary>
internal static unsafe partial class OpenBlas
{
    private const string Lib = "libopenblas.so.0";
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    [LibraryImport(Lib, EntryPoint = "cblas_sgemm")]
    private static partial void cblas_sgemm(int order, int transA, int transB, int m, int n, int k, float alpha,
        float* a, int lda, float* b, int ldb, float beta, float* c, int ldc);

    [LibraryImport(Lib, EntryPoint = "openblas_set_num_threads")]
    public static partial void SetThreads(int n);

    public static bool IsAvailable
    {
        get
        {
            try { SetThreads(1); return true; }
            catch (DllNotFoundException) { return false; }
        }
    }

    /// <summary>C = op(A) op(B) (beta 0).</summary>
    public static void Sgemm(bool transA, bool transB, int m, int n, int k, float[] a, int lda, float[] b, int ldb, float[] c, int ldc)
    {
        fixed (float* pa = a, pb = b, pc = c)
            cblas_sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, 1f, pa, lda, pb, ldb, 0f, pc, ldc);
    }
}
