using HpCnn.Kernels;

namespace HpCnn.Layers;

/// <summary>
/// A GEMM split into blocks of C that run as pool items: column blocks (multiples of NR), or row blocks (multiples
/// of MR) when C has more rows than columns. Every item packs its own copy of the operand all items read (all of
/// op(A) for a column split, all of op(B) for a row split), block by block into its worker's L2-sized workspace:
/// packing it once into a shared buffer instead (tried) was no faster on two cores and slower when that operand
/// outgrew L2 (64 x 288 x 12544: 116-148 against 156 GFLOP/s). Splitting the output never splits a sum, and every
/// block of a row split has at least MR rows (the same register-tile path as the whole), so the result is the same
/// for any number of blocks and threads.
/// </summary>
internal sealed class GemmJob : ParallelJob
{
    public bool TransA, TransB, Accumulate;
    public int M, N, K, Lda, Ldb, Ldc;
    public Buffer A, B, C;
    public GemmEpilogue Epilogue;
    public Buffer[] Scratch = [];
    public int ColumnsPerItem, RowsPerItem;

    /// <summary>
    /// Column blocks per thread of a shallow product over many columns (32 x 50176 x 9 on 2 threads, 12 alternated runs
    /// against OpenBLAS: 0.99-1.12, mean 1.05, with 4; 0.92-1.19, mean 1.02, with 1).
    /// </summary>
    internal const int ShallowSplit = 4;

    public static int ColumnsFor(int n, int items) => Sgemm.RoundUp((n + items - 1) / Math.Max(1, items), Sgemm.NR);

    /// <summary>Rows per block of a row split into about <paramref name="items"/> blocks, or 0 when some block would have fewer than MR rows.</summary>
    public static int RowsFor(int m, int items)
    {
        int rows = Sgemm.RoundUp((m + items - 1) / Math.Max(1, items), Sgemm.MR);
        int last = m - (m - 1) / rows * rows;
        return last >= Sgemm.MR ? rows : 0;
    }

    public int Items => RowsPerItem > 0 ? (M + RowsPerItem - 1) / RowsPerItem : Math.Max(1, (N - ColumnShift + ColumnsPerItem - 1) / ColumnsPerItem);

    public void Set(bool transA, bool transB, int m, int n, int k, Buffer a, int lda, Buffer b, int ldb, Buffer c, int ldc,
        bool accumulate, GemmEpilogue epilogue, int items)
    {
        TransA = transA; TransB = transB; M = m; N = n; K = k; A = a; Lda = lda; B = b; Ldb = ldb; C = c; Ldc = ldc;
        Accumulate = accumulate; Epilogue = epilogue;
        RowsPerItem = items > 1 && m > n ? RowsFor(m, items) : 0;
        // Shallow products over many columns are bound by their stores of C, and a thread slowed by the other tenants
        // of a shared machine then holds the other one up at the end. Smaller column blocks, handed out as the threads
        // ask for them, even that out. Columns never change a result.
        int split = items > 1 && RowsPerItem == 0 && k < Sgemm.ShallowDepth && n >= ShallowSplit * 64 * items ? ShallowSplit : 1;
        ColumnsPerItem = ColumnsFor(n, items * split);
        // Where Multiply would split off the first columns of a block whose rows of C start off a cache line (shallow
        // products), the blocks after the first start on a line instead, so that only the first block pays for it (with
        // 8 blocks per call of 32 x 50176 x 9, 8 small calls cost ~10%).
        ColumnShift = RowsPerItem == 0 && ColumnsPerItem < n && Sgemm.SplitsOffLine(k, n, ldc) ? Sgemm.AlignmentSkew(c.Span) : 0;
    }

    /// <summary>Columns the first column block has beyond <see cref="ColumnsPerItem"/>, so that the others start on a cache line of C.</summary>
    public int ColumnShift;

    /// <summary>Runs the GEMM on the layer's pool.</summary>
    public void Run(LayerRun run, long flops) => run.Parallel(this, Items, flops / Items);

    /// <summary>Runs the GEMM on <paramref name="pool"/> (benchmarks).</summary>
    public void RunOn(WorkerPool pool) => pool.Run(this, Items);

    public override void Execute(int item, int worker)
    {
        if (RowsPerItem > 0)
        {
            int i0 = item * RowsPerItem;
            int mi = Math.Min(RowsPerItem, M - i0);
            // Rows i0.. of op(A): rows of A stored m x k, or columns of A stored k x m.
            var a = TransA ? A.Span.Slice(i0) : A.Span.Slice(i0 * Lda);
            var rowEpi = Epilogue.FromRow(i0);
            Sgemm.Multiply(TransA, TransB, mi, N, K, a, Lda, B.Span, Ldb, C.Span.Slice(i0 * Ldc), Ldc, Accumulate,
                Scratch[worker].Span, in rowEpi);
            return;
        }
        int j0 = item == 0 ? 0 : ColumnShift + item * ColumnsPerItem;
        int nj = Math.Min(ColumnShift + (item + 1) * ColumnsPerItem, N) - j0;
        // Columns j0.. of op(B): columns of B stored k x n, or rows of B stored n x k.
        var b = TransB ? B.Span.Slice(j0 * Ldb) : B.Span.Slice(j0);
        var epi = Epilogue.FromColumn(j0);
        Sgemm.Multiply(TransA, TransB, M, nj, K, A.Span, Lda, b, Ldb, C.Span.Slice(j0), Ldc, Accumulate, Scratch[worker].Span, in epi);
    }
}
