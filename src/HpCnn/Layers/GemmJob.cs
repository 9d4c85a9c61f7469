using HpCnn.Kernels;

namespace HpCnn.Layers;

/// <summary>
/// A GEMM split into blocks of C that run as pool items: column blocks (multiples of NR), or row blocks (multiples
/// of MR) when C has more rows than columns. Every item reads the whole of the other operand (all of op(A) for a
/// column split, all of op(B) for a row split); with a <see cref="Shared"/> buffer, that operand is packed once, in
/// parallel, before the products (<see cref="Run"/> runs the two phases), instead of once per item. Splitting the
/// output never splits a sum, every block of a row split has at least MR rows (the same register-tile path as the
/// whole), and the shared packing is the one each item would have made, so the result is the same for any number of
/// blocks and threads.
/// </summary>
internal sealed class GemmJob : ParallelJob
{
    public bool TransA, TransB, Accumulate;
    public int M, N, K, Lda, Ldb, Ldc;
    public Buffer A, B, C;
    public GemmEpilogue Epilogue;
    public Buffer[] Scratch = [];
    /// <summary>Room for the shared packed operand (see <see cref="SharedFloats"/>); empty: every item packs its own.</summary>
    public Buffer Shared;
    public int ColumnsPerItem, RowsPerItem;
    private bool _packShared;
    private bool _packing;

    public static int ColumnsFor(int n, int items) => Sgemm.RoundUp((n + items - 1) / Math.Max(1, items), Sgemm.NR);

    /// <summary>Rows per block of a row split into about <paramref name="items"/> blocks, or 0 when some block would have fewer than MR rows.</summary>
    public static int RowsFor(int m, int items)
    {
        int rows = Sgemm.RoundUp((m + items - 1) / Math.Max(1, items), Sgemm.MR);
        int last = m - (m - 1) / rows * rows;
        return last >= Sgemm.MR ? rows : 0;
    }

    /// <summary>
    /// Floats a <see cref="Shared"/> buffer needs for a GEMM of (m, n, k): op(B) packed whole for a row split (m &gt; n),
    /// op(A) otherwise. (A smaller buffer is allowed: the items then pack their own.)
    /// </summary>
    public static int SharedFloats(int m, int n, int k) => m > n ? Sgemm.PackedBSize(n, k) : Sgemm.PackedASize(m, k);

    /// <summary>Whether <see cref="Run"/> packs the shared operand once (set by <see cref="Set"/>).</summary>
    public bool SharesPacking => _packShared;

    public int Items => RowsPerItem > 0 ? (M + RowsPerItem - 1) / RowsPerItem : (N + ColumnsPerItem - 1) / ColumnsPerItem;

    public void Set(bool transA, bool transB, int m, int n, int k, Buffer a, int lda, Buffer b, int ldb, Buffer c, int ldc,
        bool accumulate, GemmEpilogue epilogue, int items)
    {
        TransA = transA; TransB = transB; M = m; N = n; K = k; A = a; Lda = lda; B = b; Ldb = ldb; C = c; Ldc = ldc;
        Accumulate = accumulate; Epilogue = epilogue;
        ColumnsPerItem = ColumnsFor(n, items);
        RowsPerItem = items > 1 && m > n ? RowsFor(m, items) : 0;
        // Share the packing when there is more than one item and the register-tile path runs (m >= MR).
        _packShared = Items > 1 && m >= Sgemm.MR && k > 0 && Shared.Length >= SharedPackFloats;
    }

    /// <summary>Runs the GEMM on the layer's pool (the shared packing first, then the products).</summary>
    public void Run(LayerRun run, long flops)
    {
        if (_packShared)
        {
            _packing = true;
            run.Parallel(this, Items, SharedPackFloats / Items);
        }
        _packing = false;
        run.Parallel(this, Items, flops / Items);
    }

    /// <summary>Runs the GEMM on <paramref name="pool"/> (benchmarks).</summary>
    public void RunOn(WorkerPool pool)
    {
        if (_packShared)
        {
            _packing = true;
            pool.Run(this, Items);
        }
        _packing = false;
        pool.Run(this, Items);
    }

    private long SharedPackFloats => RowsPerItem > 0 ? Sgemm.PackedBSize(N, K) : Sgemm.PackedASize(M, K);

    public override void Execute(int item, int worker)
    {
        if (_packing)
        {
            // Packs this item's share of the shared operand's strips (column split) or panels (row split).
            if (RowsPerItem > 0)
            {
                var (q0, q1) = LayerRun.Range(Sgemm.RoundUp(N, Sgemm.NR) / Sgemm.NR, item, Items);
                Sgemm.PackBPanels(TransB, B.Span, Ldb, N, K, q0, q1, Shared.Span);
            }
            else
            {
                var (s0, s1) = LayerRun.Range(Sgemm.RoundUp(M, Sgemm.MR) / Sgemm.MR, item, Items);
                Sgemm.PackAStrips(TransA, A.Span, Lda, M, K, s0, s1, Shared.Span);
            }
            return;
        }
        ReadOnlySpan<float> packed = _packShared ? Shared.Span : default;
        if (RowsPerItem > 0)
        {
            int i0 = item * RowsPerItem;
            int mi = Math.Min(RowsPerItem, M - i0);
            // Rows i0.. of op(A): rows of A stored m x k, or columns of A stored k x m.
            var a = TransA ? A.Span.Slice(i0) : A.Span.Slice(i0 * Lda);
            var rowEpi = Epilogue.Bias == BiasMode.PerRow
                ? new GemmEpilogue(BiasMode.PerRow, Epilogue.BiasValues, Epilogue.BiasOffset + i0, Epilogue.Low, Epilogue.High)
                : Epilogue;
            Sgemm.MultiplyShared(TransA, TransB, mi, N, K, a, Lda, B.Span, Ldb, C.Span.Slice(i0 * Ldc), Ldc, Accumulate,
                Scratch[worker].Span, in rowEpi, default, packed);
            return;
        }
        int j0 = item * ColumnsPerItem;
        int nj = Math.Min(ColumnsPerItem, N - j0);
        // Columns j0.. of op(B): columns of B stored k x n, or rows of B stored n x k.
        var b = TransB ? B.Span.Slice(j0 * Ldb) : B.Span.Slice(j0);
        var epi = Epilogue.Bias == BiasMode.PerColumn
            ? new GemmEpilogue(BiasMode.PerColumn, Epilogue.BiasValues, Epilogue.BiasOffset + j0, Epilogue.Low, Epilogue.High)
            : Epilogue;
        Sgemm.MultiplyShared(TransA, TransB, M, nj, K, A.Span, Lda, b, Ldb, C.Span.Slice(j0), Ldc, Accumulate, Scratch[worker].Span, in epi,
            packed, default);
    }
}
