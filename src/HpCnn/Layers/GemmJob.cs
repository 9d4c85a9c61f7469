using HpCnn.Kernels;

namespace HpCnn.Layers;

/// <summary>
/// A GEMM split into column blocks (multiples of NR) that run as pool items. Splitting the output never
/// splits a sum, so the result is the same for any number of blocks.
/// </summary>
internal sealed class GemmJob : ParallelJob
{
    public bool TransA, TransB, Accumulate;
    public int M, N, K, Lda, Ldb, Ldc;
    public Buffer A, B, C;
    public GemmEpilogue Epilogue;
    public Buffer[] Scratch = [];
    public int ColumnsPerItem;

    /// <summary>Workspace floats per worker for a GEMM of (m, n, k) split this way.</summary>
    public static int WorkspaceFor(int m, int n, int k, int items) => Sgemm.WorkspaceSize(m, ColumnsFor(n, items), k);

    public static int ColumnsFor(int n, int items) => Sgemm.RoundUp((n + items - 1) / Math.Max(1, items), Sgemm.NR);

    public int Items => (N + ColumnsPerItem - 1) / ColumnsPerItem;

    public void Set(bool transA, bool transB, int m, int n, int k, Buffer a, int lda, Buffer b, int ldb, Buffer c, int ldc,
        bool accumulate, GemmEpilogue epilogue, int items)
    {
        TransA = transA; TransB = transB; M = m; N = n; K = k; A = a; Lda = lda; B = b; Ldb = ldb; C = c; Ldc = ldc;
        Accumulate = accumulate; Epilogue = epilogue;
        ColumnsPerItem = ColumnsFor(n, items);
    }

    public override void Execute(int item, int worker)
    {
        int j0 = item * ColumnsPerItem;
        int nj = Math.Min(ColumnsPerItem, N - j0);
        // Columns j0.. of op(B): columns of B stored k x n, or rows of B stored n x k.
        var b = TransB ? B.Span.Slice(j0 * Ldb) : B.Span.Slice(j0);
        var epi = Epilogue.Bias == BiasMode.PerColumn
            ? new GemmEpilogue(BiasMode.PerColumn, Epilogue.BiasValues, Epilogue.BiasOffset + j0, Epilogue.Low, Epilogue.High)
            : Epilogue;
        Sgemm.Multiply(TransA, TransB, M, nj, K, A.Span, Lda, b, Ldb, C.Span.Slice(j0), Ldc, Accumulate, Scratch[worker].Span, in epi);
    }
}
