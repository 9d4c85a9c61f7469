using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

/// <summary>Cache blocking of the GEMM (BLIS names). Kept as data in one place, tuned by measurement.</summary>
/// <param name="MR">rows of the register tile (micro-kernel)</param>
/// <param name="NR">columns of the register tile</param>
/// <param name="MC">rows of A packed per block (A block MC x KC lives in L2)</param>
/// <param name="KC">depth of one packed block (B micro-panel KC x NR lives in L1)</param>
/// <param name="NC">columns of B packed per block (B block KC x NC lives in L3)</param>
public readonly record struct GemmBlocking(int MR, int NR, int MC, int KC, int NC);

/// <summary>
/// Single-precision GEMM, BLIS style: <c>C := (accumulate ? C : 0) + op(A) * op(B)</c>, then an optional
/// epilogue (bias, clamp) on each register tile while it is still in L1.
/// op(A) is m x k, op(B) is k x n, all matrices row-major. Transposed operands are handled by the packing,
/// never by a transposing copy. Deterministic: the k loop order is fixed, so a thread partition of the
/// (m, n) space never changes a result.
/// </summary>
public static partial class Sgemm
{
    public const int MR = 6;
    public const int NR = 16;

    /// <summary>The blocking used by <see cref="Multiply"/> (measured on this project's Zen 5 machines; see BENCHMARKS.md).</summary>
    public static GemmBlocking Blocking { get; } = new(MR, NR, MC: 144, KC: 320, NC: 3072);

    /// <summary>Floats of workspace one call of shape (m, n, k) needs.</summary>
    public static int WorkspaceSize(int m, int n, int k)
    {
        var b = Blocking;
        int mc = RoundUp(Math.Min(b.MC, Math.Max(m, 1)), MR);
        int nc = RoundUp(Math.Min(b.NC, Math.Max(n, 1)), NR);
        int kc = Math.Min(b.KC, Math.Max(k, 1));
        return checked(RoundUp(mc * kc, AlignFloats) + nc * kc + MR * NR + AlignFloats);
    }

    /// <summary>
    /// Whether <see cref="Multiply"/> computes the columns of C before its first cache line as a call of their own
    /// (shallow products over enough columns, every row of C at the same offset in its line).
    /// </summary>
    internal static bool SplitsOffLine(int k, int n, int ldc) => k < ShallowDepth && n > 4 * NR && ldc % AlignFloats == 0;

    /// <summary>Floats in 64 bytes: the packed blocks start on a cache line (a 16-float row of a packed B panel is then one line).</summary>
    private const int AlignFloats = 16;

    /// <summary>
    /// Floats to skip from the start of <paramref name="buffer"/> to the next 64-byte boundary (0-15; a buffer that is
    /// not 4-byte aligned counts as aligned). Only speed depends on it: a buffer the GC moves during the call (not pinned)
    /// computes the same products.
    /// </summary>
    internal static unsafe int AlignmentSkew(Span<float> buffer)
    {
        nuint address = (nuint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(buffer));
        if (address % sizeof(float) != 0) return 0;
        return (int)((64 - address % 64) % 64 / sizeof(float));
    }

    /// <summary>
    /// C (m x n, leading dimension ldc) := (accumulate ? C : 0) + op(A) op(B), then <paramref name="epilogue"/>.
    /// A is stored m x k (lda) or, when <paramref name="transA"/>, k x m; B is stored k x n (ldb) or,
    /// when <paramref name="transB"/>, n x k. <paramref name="workspace"/> holds at least
    /// <see cref="WorkspaceSize"/> floats. Allocates nothing.
    /// </summary>
    public static unsafe void Multiply(bool transA, bool transB, int m, int n, int k,
        ReadOnlySpan<float> a, int lda, ReadOnlySpan<float> b, int ldb,
        Span<float> c, int ldc, bool accumulate, Span<float> workspace, in GemmEpilogue epilogue = default)
    {
        Validate(transA, transB, m, n, k, a.Length, lda, b.Length, ldb, c.Length, ldc);
        if (m == 0 || n == 0) return;
        if (workspace.Length < WorkspaceSize(m, n, k))
            throw new ArgumentException($"workspace holds {workspace.Length} floats, GEMM {m}x{n}x{k} needs {WorkspaceSize(m, n, k)}", nameof(workspace));
        if (k == 0)
        {
            for (int i = 0; i < m; i++)
            {
                var row = c.Slice(i * ldc, n);
                if (!accumulate) row.Clear();
                if (epilogue.IsActive) epilogue.Apply(row, i, 0);
            }
            return;
        }

        if (m < MR)
        {
            // Fewer rows than one register strip (a batch of one, a single output unit): packing full panels would
            // cost more than the products. The choice depends on m alone, so splitting the columns over threads
            // never changes which path computes an element.
            SmallRows(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, workspace, in epilogue);
            return;
        }

        // Shallow products are mostly their C stores. Where the rows of C start off a cache line (ldc keeps every row at
        // the same offset), a 16-float tile row straddles two lines, and on C larger than L2 that cost a third of the
        // speed (32 x 50176 x 9: 60 against 91-94 GFLOP/s with C on a line). The first columns, up to the next line,
        // then run as a call of their own, and the rest from a line boundary. Columns never change a result.
        if (SplitsOffLine(k, n, ldc))
        {
            int head = AlignmentSkew(c);
            if (head > 0)
            {
                Multiply(transA, transB, m, head, k, a, lda, b, ldb, c, ldc, accumulate, workspace, in epilogue);
                Multiply(transA, transB, m, n - head, k, a, lda, transB ? b.Slice(head * ldb) : b.Slice(head), ldb,
                    c.Slice(head), ldc, accumulate, workspace, epilogue.FromColumn(head));
                return;
            }
        }

        var bl = Blocking;
        int kSteps = KSteps(k);
        int kcMax = KBlock(k, kSteps, 0).Kc;
        int mcMax = RoundUp(Math.Min(bl.MC, m), MR);
        int aFloats = RoundUp(mcMax * kcMax, AlignFloats), bFloats = RoundUp(Math.Min(bl.NC, n), NR) * kcMax;
        var aligned = workspace.Slice(AlignmentSkew(workspace));
        Span<float> aPack = aligned.Slice(0, mcMax * kcMax);
        Span<float> bPack = aligned.Slice(aFloats, bFloats);
        Span<float> edge = aligned.Slice(aFloats + bFloats, MR * NR);

        for (int jc = 0; jc < n; jc += bl.NC)
        {
            int nc = Math.Min(bl.NC, n - jc);
            for (int step = 0; step < kSteps; step++)
            {
                var (pc, kc) = KBlock(k, kSteps, step);
                bool acc = accumulate || pc > 0;
                bool last = pc + kc == k;
                for (int ic = 0; ic < m; ic += bl.MC)
                {
                    int mc = Math.Min(bl.MC, m - ic);
                    // A stored m x k (AVX2 path), deep blocks: the micro-kernel reads whole strips of A where they lie, six
                    // rows at stride lda; only an edge strip (fewer than MR rows) is packed. Packing A cost up to 8% of the
                    // time where an A block meets few B panels (128 x 64 x 3136: 4 panels). Shallow blocks (k < ShallowDepth)
                    // pack: their A block is tiny and the packed kernel's unrolled loop does better there (32 x 50176 x 9).
                    int inPlace = !transA && Engine.UseAvx2 && kc >= ShallowDepth && !(Engine.UseAvx512 && lda % ConflictingLda == 0) ? mc / MR * MR : 0;
                    if (inPlace < mc) PackA(transA, a, lda, ic + inPlace, mc - inPlace, pc, kc, aPack.Slice(inPlace * kc));
                    // The first row block packs each B micro-panel just before its register tiles use it, while it
                    // is hot in L1 (OpenBLAS does the same); the later row blocks reuse the packed panels.
                    var source = ic == 0 ? new PanelSource(transB, ldb, pc, jc, n, k) : default;
                    fixed (float* a0 = a)
                        MacroKernel(mc, nc, kc, aPack, bPack, c, ic * ldc + jc, ldc, acc, edge,
                            last && epilogue.IsActive, in epilogue, ic, jc, b, source, new RowsOfA(a0 + ic * lda + pc, lda, inPlace));
                }
            }
        }
    }

    /// <summary>
    /// How many blocks the depth k is cut into. The blocks are equal (k = 1024 runs as 4 x 256, not 320 + 320 + 320 + 64):
    /// a short last block would pay the C tile's load and store for little work. The cut depends on k alone.
    /// </summary>
    internal static int KSteps(int k) => (k + Blocking.KC - 1) / Blocking.KC;

    /// <summary>
    /// Start and depth of block <paramref name="step"/> of <paramref name="steps"/>: the first k % steps blocks are one
    /// deeper than the others.
    /// </summary>
    internal static (int P0, int Kc) KBlock(int k, int steps, int step)
    {
        int q = k / steps, r = k % steps;
        return (step * q + Math.Min(step, r), q + (step < r ? 1 : 0));
    }

    /// <summary>
    /// C (m &lt; MR rows) without register tiles: for each depth block of <see cref="KBlock"/>, each element's products
    /// are summed from zero with one FMA each, in k order, then added to C: exactly the sums the micro-kernels form, so
    /// a row computes the same bits whether it is one of a few rows or one of many (a prediction does not depend on the
    /// batch it is in) and whatever the vector width. B is read by rows of n (op(B) k x n); a transposed B is first
    /// copied block by block into the workspace.
    /// </summary>
    private static unsafe void SmallRows(bool transA, bool transB, int m, int n, int k, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, bool accumulate, Span<float> workspace, in GemmEpilogue epilogue)
    {
        var bl = Blocking;
        int kSteps = KSteps(k);
        if (n < 8 && kSteps > 1)
        {
            ScalarColumns(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
            if (epilogue.IsActive)
                for (int i = 0; i < m; i++) epilogue.Apply(c.Slice(i * ldc, n), i, 0);
            return;
        }
        for (int jc = 0; jc < n; jc += bl.NC)
        {
            int nc = Math.Min(bl.NC, n - jc);
            for (int step = 0; step < kSteps; step++)
            {
                var (p0, kc) = KBlock(k, kSteps, step);
                ReadOnlySpan<float> rows;
                int ldr;
                if (transB && nc == 1)
                {
                    // One column of op(B) is one row of B: read in place (a dense layer with a single unit).
                    rows = b.Slice(jc * ldb + p0);
                    ldr = 1;
                }
                else if (transB)
                {
                    // op(B)[p][j] = B[j][p]: the block's kc x nc values, row p contiguous, transposed in register tiles (an
                    // element-by-element copy strides through a cache line per value: a dense layer's 128 x 3136 weights
                    // took longer than the product itself).
                    var t = workspace.Slice(0, kc * nc);
                    fixed (float* src = b, dst = t)
                        BlockedTiles.Transpose(src + (nint)jc * ldb + p0, ldb, nc, kc, dst, nc);
                    rows = t;
                    ldr = nc;
                }
                else
                {
                    rows = b.Slice(p0 * ldb + jc);
                    ldr = ldb;
                }
                for (int i = 0; i < m; i++)
                {
                    var row = c.Slice(i * ldc + jc, nc);
                    bool add = accumulate || step > 0;
                    fixed (float* pr = rows, pc = row, pa = a)
                    {
                        nint aStep = transA ? lda : 1;
                        float* ai = transA ? pa + p0 * lda + i : pa + i * lda + p0;
                        RowChains(ai, aStep, kc, pr, ldr, nc, pc, add);
                    }
                }
            }
            if (epilogue.IsActive)
                for (int i = 0; i < m; i++) epilogue.FromColumn(jc).Apply(c.Slice(i * ldc + jc, nc), i, 0);
        }
    }

    /// <summary>
    /// <see cref="SmallRows"/> for fewer than 8 columns over several depth blocks, where every element is one scalar chain
    /// per block: the blocks' chains are independent (each from zero), so up to four run interleaved, and they are added
    /// to C in block order as SmallRows adds them: the same bits. One chain at a time left a dense layer with one unit at
    /// batch 1 (784 terms, three blocks) waiting on the FMA latency for every term.
    /// </summary>
    private static unsafe void ScalarColumns(bool transA, bool transB, int m, int n, int k, ReadOnlySpan<float> a, int lda,
        ReadOnlySpan<float> b, int ldb, Span<float> c, int ldc, bool accumulate)
    {
        int kSteps = KSteps(k);
        nint aStep = transA ? lda : 1, bStep = transB ? 1 : ldb;
        fixed (float* pa = a, pb = b, pc = c)
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    float* ai = transA ? pa + i : pa + (nint)i * lda;
                    float* bj = transB ? pb + (nint)j * ldb : pb + j;
                    float* cij = pc + (nint)i * ldc + j;
                    for (int s = 0; s < kSteps; s += 4)
                    {
                        // Chains past the last block repeat the group's first block and are dropped.
                        int count = Math.Min(4, kSteps - s);
                        var (q0, d0) = KBlock(k, kSteps, s);
                        var (q1, d1) = count > 1 ? KBlock(k, kSteps, s + 1) : (q0, d0);
                        var (q2, d2) = count > 2 ? KBlock(k, kSteps, s + 2) : (q0, d0);
                        var (q3, d3) = count > 3 ? KBlock(k, kSteps, s + 3) : (q0, d0);
                        // Blocks are at most one term apart (the first k % kSteps are the deeper ones): the shallowest
                        // depth runs interleaved, a deeper block's last term after it.
                        int common = KBlock(k, kSteps, s + count - 1).Kc;
                        float* a0 = ai + q0 * aStep, a1 = ai + q1 * aStep, a2 = ai + q2 * aStep, a3 = ai + q3 * aStep;
                        float* b0 = bj + q0 * bStep, b1 = bj + q1 * bStep, b2 = bj + q2 * bStep, b3 = bj + q3 * bStep;
                        float t0 = 0f, t1 = 0f, t2 = 0f, t3 = 0f;
                        for (int p = 0; p < common; p++, a0 += aStep, a1 += aStep, a2 += aStep, a3 += aStep, b0 += bStep, b1 += bStep, b2 += bStep, b3 += bStep)
                        {
                            t0 = MathF.FusedMultiplyAdd(*a0, *b0, t0);
                            t1 = MathF.FusedMultiplyAdd(*a1, *b1, t1);
                            t2 = MathF.FusedMultiplyAdd(*a2, *b2, t2);
                            t3 = MathF.FusedMultiplyAdd(*a3, *b3, t3);
                        }
                        if (d0 > common) t0 = MathF.FusedMultiplyAdd(*a0, *b0, t0);
                        if (count > 1 && d1 > common) t1 = MathF.FusedMultiplyAdd(*a1, *b1, t1);
                        if (count > 2 && d2 > common) t2 = MathF.FusedMultiplyAdd(*a2, *b2, t2);
                        if (count > 3 && d3 > common) t3 = MathF.FusedMultiplyAdd(*a3, *b3, t3);
                        *cij = s > 0 || accumulate ? *cij + t0 : t0;
                        if (count > 1) *cij += t1;
                        if (count > 2) *cij += t2;
                        if (count > 3) *cij += t3;
                    }
                }
    }

    /// <summary>
    /// c[j] = (add ? c[j] : 0) + (sum over p &lt; kc of a[p * aStep] * b[p * ldb + j], one FMA chain from zero per j),
    /// for j &lt; n: 128 columns at a time in registers (eight zmm: a row of B read as one run of eight lines, as in
    /// a dense layer's 128 units at batch 1), then 64, then 16, then one by one (ymm: 32, 8).
    /// </summary>
    private static unsafe void RowChains(float* a, nint aStep, int kc, float* b, nint ldb, int n, float* c, bool add)
    {
        int j = 0;
        if (Engine.UseAvx512 && Vector512.IsHardwareAccelerated)
        {
            for (; j + 128 <= n; j += 128)
            {
                Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
                float* bp = b + j;
                for (int p = 0; p < kc; p++, bp += ldb)
                {
                    var av = Vector512.Create(a[p * aStep]);
                    s0 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp), s0);
                    s1 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 16), s1);
                    s2 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 32), s2);
                    s3 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 48), s3);
                    s4 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 64), s4);
                    s5 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 80), s5);
                    s6 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 96), s6);
                    s7 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 112), s7);
                }
                StoreChain(c + j, s0, add); StoreChain(c + j + 16, s1, add); StoreChain(c + j + 32, s2, add); StoreChain(c + j + 48, s3, add);
                StoreChain(c + j + 64, s4, add); StoreChain(c + j + 80, s5, add); StoreChain(c + j + 96, s6, add); StoreChain(c + j + 112, s7, add);
            }
            for (; j + 64 <= n; j += 64)
            {
                Vector512<float> s0 = default, s1 = default, s2 = default, s3 = default;
                float* bp = b + j;
                for (int p = 0; p < kc; p++, bp += ldb)
                {
                    var av = Vector512.Create(a[p * aStep]);
                    s0 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp), s0);
                    s1 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 16), s1);
                    s2 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 32), s2);
                    s3 = Vector512.FusedMultiplyAdd(av, Vector512.Load(bp + 48), s3);
                }
                StoreChain(c + j, s0, add); StoreChain(c + j + 16, s1, add); StoreChain(c + j + 32, s2, add); StoreChain(c + j + 48, s3, add);
            }
            for (; j + 16 <= n; j += 16)
            {
                Vector512<float> s0 = default;
                float* bp = b + j;
                for (int p = 0; p < kc; p++, bp += ldb) s0 = Vector512.FusedMultiplyAdd(Vector512.Create(a[p * aStep]), Vector512.Load(bp), s0);
                StoreChain(c + j, s0, add);
            }
        }
        else if (Engine.UseAvx2 && Vector256.IsHardwareAccelerated)
        {
            for (; j + 32 <= n; j += 32)
            {
                Vector256<float> s0 = default, s1 = default, s2 = default, s3 = default;
                float* bp = b + j;
                for (int p = 0; p < kc; p++, bp += ldb)
                {
                    var av = Vector256.Create(a[p * aStep]);
                    s0 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp), s0);
                    s1 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp + 8), s1);
                    s2 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp + 16), s2);
                    s3 = Vector256.FusedMultiplyAdd(av, Vector256.Load(bp + 24), s3);
                }
                StoreChain(c + j, s0, add); StoreChain(c + j + 8, s1, add); StoreChain(c + j + 16, s2, add); StoreChain(c + j + 24, s3, add);
            }
            for (; j + 8 <= n; j += 8)
            {
                Vector256<float> s0 = default;
                float* bp = b + j;
                for (int p = 0; p < kc; p++, bp += ldb) s0 = Vector256.FusedMultiplyAdd(Vector256.Create(a[p * aStep]), Vector256.Load(bp), s0);
                StoreChain(c + j, s0, add);
            }
        }
        for (; j < n; j++)
        {
            float s = 0f;
            for (int p = 0; p < kc; p++) s = MathF.FusedMultiplyAdd(a[p * aStep], b[p * ldb + j], s);
            c[j] = add ? c[j] + s : s;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreChain(float* c, Vector512<float> s, bool add) => Vector512.Store(add ? Vector512.Load(c) + s : s, c);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void StoreChain(float* c, Vector256<float> s, bool add) => Vector256.Store(add ? Vector256.Load(c) + s : s, c);

    /// <summary>Where <see cref="MacroKernel"/> packs B micro-panels from, when it packs them itself: op(B) is k x n, the block starts at (P0, J0).</summary>
    internal readonly record struct PanelSource(bool TransB, int Ldb, int P0, int J0, int N, int K)
    {
        public bool Packs => Ldb > 0;
    }

    /// <summary>
    /// Runs the register tiles of one (mc x kc) A block against one packed (kc x nc) B block. A comes from
    /// <paramref name="aPack"/>, or for the strips <paramref name="rowsOfA"/> covers, from A itself. When
    /// <paramref name="source"/> packs, each B micro-panel is packed from <paramref name="bSource"/> into its place in
    /// <paramref name="bPack"/> just before its first use: by <see cref="PackB"/>, by <see cref="PackBRowOrder"/> a few panels
    /// at a time (<see cref="UsesRowOrder"/>), or by the panel's first tile as it computes (B stored k x n, A in place).
    /// Deep blocks run jr outside ir: the B micro-panel stays in L1 while A strips stream from L2. Shallow blocks
    /// (kc below <see cref="ShallowDepth"/>: little work per tile, the C stores dominate) run ir outside jr: the
    /// tiles of one row strip are stored left to right, row by row in address order, which the hardware prefetchers
    /// follow; down the columns every tile would land on the same cache sets (ldc a multiple of 1024 floats).
    /// The order never changes a result: each tile is one call of the same micro-kernel.
    /// </summary>
    internal static unsafe void MacroKernel(int mc, int nc, int kc, ReadOnlySpan<float> aPack, Span<float> bPack,
        Span<float> c, int cOffset, int ldc, bool accumulate, Span<float> edge,
        bool applyEpilogue, in GemmEpilogue epilogue, int row0, int col0,
        ReadOnlySpan<float> bSource = default, PanelSource source = default, RowsOfA rowsOfA = default)
    {
        bool pack = source.Packs;
        if (kc < ShallowDepth)
        {
            for (int ir = 0, rows; ir < mc; ir += rows)
            {
                // AVX-512: rows ir..ir+11 as one 12x16 tile per panel.
                bool twelve = Engine.UseAvx512 && mc - ir >= 2 * MR && kc >= TwelveMinDepth;
                rows = twelve ? 2 * MR : MR;
                int whole = nc / NR * NR;
                if (!twelve && Engine.UseAvx2 && !applyEpilogue && mc - ir >= MR && whole > 0)
                {
                    // A whole strip of 6-row tiles in one call: at k = 9 a tile is ~55 cycles of FMAs, and the call and
                    // checks of one Tile per 16 columns came on top (32 x 50176 x 9 against OpenBLAS, 3 alternated runs:
                    // 1T 1.06-1.28 against 1.01-1.09, 2T 1.23-1.28 against 1.14-1.17). The first strip packs the block's
                    // panels before it starts.
                    if (pack && ir == 0)
                        PackB(source.TransB, bSource, source.Ldb, source.P0, kc, source.J0, nc, bPack.Slice(0, RoundUp(nc, NR) * kc), prefetchAhead: true);
                    _ = c[cOffset + (ir + MR - 1) * ldc + whole - 1];
                    _ = bPack[whole * kc - 1];
                    Kernel6x16StripAvx2(kc, ref Unsafe.AsRef(in aPack[ir * kc]), ref bPack[0], whole / NR, ref c[cOffset + ir * ldc], ldc, accumulate);
                    for (int jr = whole; jr < nc; jr += NR)
                        Tile(ir, jr, mc, nc, kc, aPack, bPack, c, cOffset, ldc, accumulate, edge, applyEpilogue, in epilogue, row0, col0,
                            null, 0, ref Unsafe.NullRef<float>(), 0);
                    continue;
                }
                for (int jr = 0; jr < nc; jr += NR)
                {
                    if (pack && ir == 0)
                        PackB(source.TransB, bSource, source.Ldb, source.P0, kc, source.J0 + jr, Math.Min(NR, nc - jr),
                            bPack.Slice(jr * kc, NR * kc), prefetchAhead: true);
                    if (twelve && nc - jr >= NR)
                        Tile12(ir, jr, NR, kc, aPack, bPack, c, cOffset, ldc, accumulate, applyEpilogue, in epilogue, row0, col0,
                            rowsOfA.Strip(ir), rowsOfA.Lda, ref Unsafe.NullRef<float>(), 0);
                    else
                        for (int i = ir; i < ir + rows; i += MR)
                            Tile(i, jr, mc, nc, kc, aPack, bPack, c, cOffset, ldc, accumulate, edge, applyEpilogue, in epilogue, row0, col0,
                                rowsOfA.Strip(i), rowsOfA.Lda, ref Unsafe.NullRef<float>(), 0);
                }
            }
            return;
        }
        int strips = (mc + MR - 1) / MR;
        bool rowOrder = pack && !source.TransB && Engine.UseAvx2 && UsesRowOrder(nc, source.Ldb);
        for (int jr = 0; jr < nc;)
        {
            // AVX-512: two panels at a time where the block has them (12x32 tiles; see Kernel12x32Avx512).
            int width = Engine.UseAvx512 && nc - jr >= 2 * NR ? 2 * NR : NR;
            if (rowOrder)
            {
                // Row order: RowOrderPanels panels at a time, each row of B read as one contiguous run.
                if (jr % (RowOrderPanels * NR) == 0)
                {
                    int w = Math.Min(RowOrderPanels * NR, nc - jr), whole = w / NR * NR;
                    if (whole > 0) PackBRowOrder(bSource, source.Ldb, source.P0, kc, source.J0 + jr, whole, bPack.Slice(jr * kc));
                    if (whole < w) PackB(false, bSource, source.Ldb, source.P0, kc, source.J0 + jr + whole, w - whole, bPack.Slice((jr + whole) * kc));
                }
            }
            // Full panels of B stored k x n, with A read in place: the first tile packs them as it computes
            // (Kernel6x16RowsPackingBAvx2; 64 x 12544 x 288 and 64 x 288 x 12544 at 1 thread: 95-98 -> 102-105 GFLOP/s).
            bool fused = false;
            int pfRow = 0, pfRows = 0, pfCol = 0, pfRow2 = 0, pfRows2 = 0, pfCol2 = 0;
            if (!rowOrder && pack)
            {
                fused = !source.TransB && Engine.UseAvx2 && nc - jr >= NR && rowsOfA.Rows >= MR;
                if (!fused)
                    PackB(source.TransB, bSource, source.Ldb, source.P0, kc, source.J0 + jr, Math.Min(width, nc - jr), bPack.Slice(jr * kc, width * kc));
                if (!source.TransB && Engine.UseAvx2)
                {
                    (pfRow, pfRows, pfCol) = PanelAhead(source, jr, nc, kc);
                    if (width > NR) (pfRow2, pfRows2, pfCol2) = PanelAhead(source, jr + NR, nc, kc);
                }
            }
            for (int ir = 0; ir < mc;)
            {
                // AVX-512: two strips as one 12-row tile (both in place or both packed: only a last, partial strip differs).
                int rows = Engine.UseAvx512 && mc - ir >= 2 * MR && nc - jr >= NR ? 2 * MR : MR;
                // B stored k x n: each row of a panel is a line of a different row of B, a stride no hardware prefetcher
                // follows. The requests for the panel PrefetchPanels ahead are spread over this panel's tiles, a share
                // per tile: issued all at once (while packing) most of them find the miss queues full and are dropped.
                int s0 = ir / MR, s1 = Math.Min(strips, (ir + rows) / MR);
                if (pfRows > 0)
                    PrefetchPanelRows(bSource, source.Ldb, pfRow + s0 * pfRows / strips, pfRow + s1 * pfRows / strips, pfCol);
                if (pfRows2 > 0)
                    PrefetchPanelRows(bSource, source.Ldb, pfRow2 + s0 * pfRows2 / strips, pfRow2 + s1 * pfRows2 / strips, pfCol2);
                ref float bFrom = ref fused && ir == 0
                    ? ref Unsafe.Add(ref MemoryMarshal.GetReference(bSource), source.P0 * source.Ldb + source.J0 + jr)
                    : ref Unsafe.NullRef<float>();
                if (rows > MR)
                    Tile12(ir, jr, width, kc, aPack, bPack, c, cOffset, ldc, accumulate, applyEpilogue, in epilogue, row0, col0,
                        rowsOfA.Strip(ir), rowsOfA.Lda, ref bFrom, source.Ldb);
                else
                    for (int j = jr; j < jr + width; j += NR)
                        Tile(ir, j, mc, nc, kc, aPack, bPack, c, cOffset, ldc, accumulate, edge, applyEpilogue, in epilogue, row0, col0,
                            rowsOfA.Strip(ir), rowsOfA.Lda,
                            ref Unsafe.IsNullRef(ref bFrom) ? ref bFrom : ref Unsafe.Add(ref bFrom, j - jr), source.Ldb);
                ir += rows;
            }
            jr += width;
        }
    }

    /// <summary>
    /// Rows (first, count) and column of the B micro-panel that <see cref="Multiply"/> packs <see cref="PrefetchPanels"/>
    /// after panel <paramref name="jr"/> of this block: further on in the block, else at the start of the next k block
    /// (same columns), else in the next column block (first k block). Count 0: there is none.
    /// </summary>
    private static (int Row, int Rows, int Col) PanelAhead(in PanelSource source, int jr, int nc, int kc)
    {
        int ahead = jr + PrefetchPanels * NR;
        int row = source.P0, col = source.J0 + ahead;
        if (ahead >= nc)
        {
            if (source.P0 + kc < source.K) { row = source.P0 + kc; col = source.J0 + ahead - nc; }
            else row = 0;
        }
        return col + NR <= source.N ? (row, Math.Min(kc, source.K - row), col) : (0, 0, 0);
    }

    /// <summary>Depth under which <see cref="MacroKernel"/> stores its tiles row strip by row strip (measured).</summary>
    internal const int ShallowDepth = 64;

    /// <summary>
    /// Depth from which shallow blocks also run 12-row AVX-512 tiles. Below it (32 x 50176 x 9: k = 9) a tile is mostly its
    /// C stores, and twelve rows stored at once ran 0.97-1.01 of OpenBLAS against 1.00-1.07 for six (64 x 3136 x 32, the
    /// Winograd GEMMs' depth: 132-142 against 90-99 GFLOP/s).
    /// </summary>
    internal const int TwelveMinDepth = 16;

    /// <summary>
    /// With 12-row tiles, A is packed instead of read in place when its rows are a multiple of this many floats (2 KiB) apart:
    /// the twelve rows then share a few sets of L1 (4 KiB apart, all twelve one 12-way set) and evict each other and B
    /// (1024^3: 114-165 in place, 153-183 GFLOP/s packed).
    /// </summary>
    internal const int ConflictingLda = 512;

    /// <summary>Panels <see cref="MacroKernel"/> packs at a time in row order (measured: 4 and 8 do alike, 16 no better).</summary>
    internal const int RowOrderPanels = 8;

    /// <summary>
    /// Whether <see cref="MacroKernel"/> packs a block of B stored k x n in row order, <see cref="RowOrderPanels"/> panels at
    /// a time, instead of panel by panel: when the block is at most that wide (each row then one short contiguous run; 128 x
    /// 64 x 3136: 1.01 -> 1.04 of OpenBLAS, 64 x 128 x 3136: 0.95 -> 0.98), or when rows of B are a multiple of 4 KiB apart:
    /// the lines of a panel then fall into 16 sets of L2, 256 lines for its 288 rows, and panel-order reads miss
    /// (60 x 1024 x 288: 0.90 -> 0.97). Otherwise panel order with the spread prefetch does better (64 x 12544 x 288, 64 x
    /// 288 x 12544: row order 0.89-0.99 against 0.94-1.04). Either order packs the same panels.
    /// </summary>
    internal static bool UsesRowOrder(int nc, int ldb) => nc <= RowOrderPanels * NR || ldb % 1024 == 0;

    /// <summary>
    /// The rows of an A block that <see cref="MacroKernel"/> reads in place instead of from the packed block: A stored
    /// m x k with leading dimension <see cref="Lda"/>, <see cref="First"/> the block's first element, its first
    /// <see cref="Rows"/> rows (whole strips). The default reads everything packed.
    /// </summary>
    internal readonly unsafe struct RowsOfA(float* first, int lda, int rows)
    {
        public readonly float* First = first;
        public readonly int Lda = lda;
        public readonly int Rows = rows;

        /// <summary>Strip starting at row <paramref name="ir"/> of the block, or null when it is packed.</summary>
        public float* Strip(int ir) => ir < Rows ? First + (nint)ir * Lda : null;
    }

    /// <summary>
    /// One register tile (rows ir.., columns jr.. of the block): full tiles straight into C, edge tiles via
    /// <paramref name="edge"/>. A comes from the packed block, or from <paramref name="aRows"/> (six rows, stride
    /// <paramref name="lda"/>) when not null: the same products either way.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Tile(int ir, int jr, int mc, int nc, int kc, ReadOnlySpan<float> aPack, ReadOnlySpan<float> bPack,
        Span<float> c, int cOffset, int ldc, bool accumulate, Span<float> edge,
        bool applyEpilogue, in GemmEpilogue epilogue, int row0, int col0, float* aRows, int lda,
        ref float bFrom, int ldbFrom)
    {
        int mr = Math.Min(MR, mc - ir), nr = Math.Min(NR, nc - jr);
        ref float ap = ref Unsafe.Add(ref MemoryMarshal.GetReference(aPack), ir * kc);
        ref float bp = ref Unsafe.Add(ref MemoryMarshal.GetReference(bPack), jr * kc);
        int cIndex = cOffset + ir * ldc + jr;
        if (mr == MR && nr == NR)
        {
            // Bounds: the full tile's last element must be inside c.
            _ = c[cIndex + (MR - 1) * ldc + NR - 1];
            if (!Unsafe.IsNullRef(ref bFrom)) Kernel6x16RowsPackingBAvx2(kc, aRows, lda, ref bFrom, ldbFrom, ref bp, ref c[cIndex], ldc, accumulate);
            else if (aRows != null) Kernel6x16RowsAvx2(kc, aRows, lda, ref bp, ref c[cIndex], ldc, accumulate);
            else MicroKernel(kc, ref ap, ref bp, ref c[cIndex], ldc, accumulate);
        }
        else if (mr <= 4 && nr == NR && Engine.UseAvx2)
        {
            _ = c[cIndex + (mr - 1) * ldc + NR - 1];
            Kernel4x16Avx2(kc, ref ap, ref bp, ref c[cIndex], ldc, accumulate, mr);
        }
        else
        {
            if (aRows != null) Kernel6x16RowsAvx2(kc, aRows, lda, ref bp, ref MemoryMarshal.GetReference(edge), NR, false);
            else MicroKernel(kc, ref ap, ref bp, ref MemoryMarshal.GetReference(edge), NR, false);
            for (int r = 0; r < mr; r++)
            {
                var src = edge.Slice(r * NR, nr);
                var dst = c.Slice(cIndex + r * ldc, nr);
                if (accumulate) VectorMath.AddInPlace(dst, src);
                else src.CopyTo(dst);
            }
        }
        if (applyEpilogue)
        {
            // The portable path keeps Apply's scalar loop (the tests' oracle path runs no vector code).
            if (nr == NR && Engine.UseAvx2) TileEpilogue(ref c[cIndex], ldc, mr, NR, in epilogue, row0 + ir, col0 + jr);
            else
                for (int r = 0; r < mr; r++)
                    epilogue.Apply(c.Slice(cIndex + r * ldc, nr), row0 + ir + r, col0 + jr);
        }
    }

    /// <summary>
    /// Rows ir..ir+11 and columns jr..jr+<paramref name="width"/>-1 of the block (two whole strips; one or two whole
    /// panels, width NR or 2 NR) by the 12x16 or 12x32 AVX-512 kernel, straight into C: the same products, in the same
    /// order, as two or four <see cref="Tile"/> calls.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Tile12(int ir, int jr, int width, int kc, ReadOnlySpan<float> aPack, ReadOnlySpan<float> bPack,
        Span<float> c, int cOffset, int ldc, bool accumulate, bool applyEpilogue, in GemmEpilogue epilogue, int row0, int col0,
        float* aRows, int lda, ref float bFrom, int ldbFrom)
    {
        int cIndex = cOffset + ir * ldc + jr;
        _ = c[cIndex + (2 * MR - 1) * ldc + width - 1];
        _ = bPack[(jr + width) * kc - 1];
        bool wide = width > NR;
        ref float bp = ref Unsafe.Add(ref MemoryMarshal.GetReference(bPack), jr * kc);
        ref float cc = ref c[cIndex];
        nint rowStride = 1, kStep = MR;
        ref float a = ref Unsafe.NullRef<float>();
        if (aRows != null)
        {
            a = ref Unsafe.AsRef<float>(aRows);
            (rowStride, kStep) = (lda, 1);
        }
        else
        {
            _ = aPack[(ir + 2 * MR) * kc - 1];
            a = ref Unsafe.Add(ref MemoryMarshal.GetReference(aPack), ir * kc);
        }
        // Rows 6-11: the next packed strip, or six rows of A further on.
        ref float a6 = ref Unsafe.Add(ref a, aRows != null ? MR * rowStride : MR * kc);
        if (!Unsafe.IsNullRef(ref bFrom))
        {
            // Only a tile reading A in place packs B (MacroKernel's fused panels).
            if (wide) Kernel12x32PackingBAvx512(kc, ref a, ref a6, rowStride, kStep, ref bFrom, ldbFrom, ref bp, NR * kc, ref cc, ldc, accumulate);
            else Kernel12x16PackingBAvx512(kc, ref a, ref a6, rowStride, kStep, ref bFrom, ldbFrom, ref bp, ref cc, ldc, accumulate);
        }
        else if (wide) Kernel12x32Avx512(kc, ref a, ref a6, rowStride, kStep, ref bp, NR * kc, ref cc, ldc, accumulate);
        else Kernel12x16Avx512(kc, ref a, ref a6, rowStride, kStep, ref bp, ref cc, ldc, accumulate);
        if (applyEpilogue) TileEpilogue(ref cc, ldc, 2 * MR, width, in epilogue, row0 + ir, col0 + jr);
    }

    /// <summary>
    /// <see cref="GemmEpilogue.Apply"/> on <paramref name="rows"/> rows of a tile just stored, <paramref name="width"/> (16 or
    /// 32) columns, once for the tile, in zmm (ymm without AVX-512): each value plus its bias, then the clamp (the same
    /// operations, so the same bits). Row by row through Apply, its per-call setup cost a third of the product's time on
    /// short depths (a 1x1 layer's 64 input channels).
    /// </summary>
    private static void TileEpilogue(ref float c, int ldc, int rows, int width, in GemmEpilogue e, int row0, int col0)
    {
        var mode = Clamp256.ModeOf(e.Low, e.High);
        bool perColumn = e.Bias == BiasMode.PerColumn;
        if (!Engine.UseAvx512)
        {
            var lo8 = Vector256.Create(e.Low);
            var hi8 = Vector256.Create(e.High);
            for (int r = 0; r < rows; r++)
            {
                ref float row = ref Unsafe.Add(ref c, (nint)r * ldc);
                // A bias of +0 where there is none: Apply adds it too.
                var rb = Vector256.Create(e.Bias == BiasMode.PerRow ? e.BiasValues![e.BiasOffset + row0 + r] : 0f);
                for (int j = 0; j < width; j += 8)
                {
                    var b = perColumn ? Vector256.Create(new ReadOnlySpan<float>(e.BiasValues, e.BiasOffset + col0 + j, 8)) : rb;
                    Clamp256.Apply(Vector256.LoadUnsafe(ref row, (nuint)j) + b, lo8, hi8, mode).StoreUnsafe(ref row, (nuint)j);
                }
            }
            return;
        }
        var lo = Vector512.Create(e.Low);
        var hi = Vector512.Create(e.High);
        var b0 = perColumn ? Vector512.Create(new ReadOnlySpan<float>(e.BiasValues, e.BiasOffset + col0, 16)) : default;
        var b1 = perColumn && width > NR ? Vector512.Create(new ReadOnlySpan<float>(e.BiasValues, e.BiasOffset + col0 + NR, 16)) : default;
        for (int r = 0; r < rows; r++)
        {
            ref float row = ref Unsafe.Add(ref c, (nint)r * ldc);
            var rb = Vector512.Create(e.Bias == BiasMode.PerRow ? e.BiasValues![e.BiasOffset + row0 + r] : 0f);
            Clamp256.Apply(Vector512.LoadUnsafe(ref row) + (perColumn ? b0 : rb), lo, hi, mode).StoreUnsafe(ref row);
            if (width > NR)
                Clamp256.Apply(Vector512.LoadUnsafe(ref row, NR) + (perColumn ? b1 : rb), lo, hi, mode).StoreUnsafe(ref row, NR);
        }
    }

    /// <summary>
    /// Columns [0, <paramref name="cols"/>) (fewer than NR) of one packed B micro-panel against <paramref name="mc"/> rows of
    /// packed A strips (mc a multiple of MR): C (ldc) := Apanel * Bpanel for those columns only, where a register tile would
    /// compute all NR (a batch-1 Winograd GEMM over a 14 x 14 image's 49 tiles ran 64 columns; BENCHMARKS.md has what the
    /// tail saved). Each element is the micro-kernels' sum: from zero, one FMA per k in
    /// order, so a column's bits do not depend on whether a tile or this tail computed it. A strip's six rows sit in the
    /// lanes of one vector (the packed strip holds them side by side for each k); eight (strip, column) pairs run at once,
    /// so that eight FMA chains hide each other's latency.
    /// </summary>
    internal static void ColumnTail(int mc, int kc, int cols, ReadOnlySpan<float> aPack, ReadOnlySpan<float> bPanel, Span<float> c, int ldc)
    {
        if (cols <= 0) return;
        if (cols >= NR || mc % MR != 0 || kc < 1) throw new ArgumentException($"column tail: {cols} columns of {mc} rows, depth {kc} (fewer than {NR} columns, whole strips of {MR})");
        _ = aPack[mc * kc - 1];
        _ = bPanel[(kc - 1) * NR + cols - 1];
        _ = c[(mc - 1) * ldc + cols - 1];
        int pairs = mc / MR * cols;
        if (!Engine.UseAvx2)
        {
            for (int p = 0; p < pairs; p++)
            {
                int ir = p / cols * MR, j = p % cols;
                var strip = aPack.Slice(ir * kc, MR * kc);
                for (int r = 0; r < MR; r++)
                {
                    float acc = 0f;
                    for (int k = 0; k < kc; k++) acc = MathF.FusedMultiplyAdd(strip[k * MR + r], bPanel[k * NR + j], acc);
                    c[(ir + r) * ldc + j] = acc;
                }
            }
            return;
        }
        // The last k's six floats are copied: an 8-float load there would read past the last strip. Eight (strip, column)
        // pairs run at once: eight FMA chains cover the FMA latency on both pipes, and their offsets live in registers
        // (read from a span inside the k loop, they were bounds-checked loads that left the loop 3x slower).
        Span<float> lastA = stackalloc float[8 * 8];
        Span<int> aAt = stackalloc int[8], bAt = stackalloc int[8];
        ref float a = ref MemoryMarshal.GetReference(aPack);
        ref float b = ref MemoryMarshal.GetReference(bPanel);
        for (int p0 = 0; p0 < pairs; p0 += 8)
        {
            for (int q = 0; q < 8; q++)
            {
                int p = Math.Min(p0 + q, pairs - 1); // a group past the end repeats the last pair and does not store it
                aAt[q] = p / cols * MR * kc;
                bAt[q] = p % cols;
                aPack.Slice(aAt[q] + (kc - 1) * MR, MR).CopyTo(lastA.Slice(8 * q));
            }
            ref float a0 = ref Unsafe.Add(ref a, aAt[0]), a1 = ref Unsafe.Add(ref a, aAt[1]), a2 = ref Unsafe.Add(ref a, aAt[2]), a3 = ref Unsafe.Add(ref a, aAt[3]);
            ref float a4 = ref Unsafe.Add(ref a, aAt[4]), a5 = ref Unsafe.Add(ref a, aAt[5]), a6 = ref Unsafe.Add(ref a, aAt[6]), a7 = ref Unsafe.Add(ref a, aAt[7]);
            ref float b0 = ref Unsafe.Add(ref b, bAt[0]), b1 = ref Unsafe.Add(ref b, bAt[1]), b2 = ref Unsafe.Add(ref b, bAt[2]), b3 = ref Unsafe.Add(ref b, bAt[3]);
            ref float b4 = ref Unsafe.Add(ref b, bAt[4]), b5 = ref Unsafe.Add(ref b, bAt[5]), b6 = ref Unsafe.Add(ref b, bAt[6]), b7 = ref Unsafe.Add(ref b, bAt[7]);
            Vector256<float> c0 = Vector256<float>.Zero, c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
            for (nint k = 0, ak = 0, bk = 0; k < kc - 1; k++, ak += MR, bk += NR)
            {
                c0 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(Vector256.LoadUnsafe(ref Unsafe.Add(ref a0, ak)), Vector256.Create(Unsafe.Add(ref b0, bk)), c0);
                c1 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(Vector256.LoadUnsafe(ref Unsafe.Add(ref a1, ak)), Vector256.Create(Unsafe.Add(ref b1, bk)), c1);
                c2 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(Vector256.LoadUnsafe(ref Unsafe.Add(ref a2, ak)), Vector256.Create(Unsafe.Add(ref b2, bk)), c2);
                c3 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(Vector256.LoadUnsafe(ref Unsafe.Add(ref a3, ak)), Vector256.Create(Unsafe.Add(ref b3, bk)), c3);
                c4 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(Vector256.LoadUnsafe(ref Unsafe.Add(ref a4, ak)), Vector256.Create(Unsafe.Add(ref b4, bk)), c4);
                c5 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(Vector256.LoadUnsafe(ref Unsafe.Add(ref a5, ak)), Vector256.Create(Unsafe.Add(ref b5, bk)), c5);
                c6 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(Vector256.LoadUnsafe(ref Unsafe.Add(ref a6, ak)), Vector256.Create(Unsafe.Add(ref b6, bk)), c6);
                c7 = System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(Vector256.LoadUnsafe(ref Unsafe.Add(ref a7, ak)), Vector256.Create(Unsafe.Add(ref b7, bk)), c7);
            }
            int lk = (kc - 1) * NR;
            Store(c, ldc, cols, p0, pairs, Last(lastA, bPanel, lk, bAt, 0, c0));
            Store(c, ldc, cols, p0 + 1, pairs, Last(lastA, bPanel, lk, bAt, 1, c1));
            Store(c, ldc, cols, p0 + 2, pairs, Last(lastA, bPanel, lk, bAt, 2, c2));
            Store(c, ldc, cols, p0 + 3, pairs, Last(lastA, bPanel, lk, bAt, 3, c3));
            Store(c, ldc, cols, p0 + 4, pairs, Last(lastA, bPanel, lk, bAt, 4, c4));
            Store(c, ldc, cols, p0 + 5, pairs, Last(lastA, bPanel, lk, bAt, 5, c5));
            Store(c, ldc, cols, p0 + 6, pairs, Last(lastA, bPanel, lk, bAt, 6, c6));
            Store(c, ldc, cols, p0 + 7, pairs, Last(lastA, bPanel, lk, bAt, 7, c7));
        }

        // The last k of pair q, from its copied strip row.
        static Vector256<float> Last(Span<float> lastA, ReadOnlySpan<float> bPanel, int lk, Span<int> bAt, int q, Vector256<float> acc) =>
            System.Runtime.Intrinsics.X86.Fma.MultiplyAdd(Vector256.Create<float>(lastA.Slice(8 * q, 8)), Vector256.Create(bPanel[lk + bAt[q]]), acc);

        static void Store(Span<float> c, int ldc, int cols, int p, int pairs, Vector256<float> acc)
        {
            if (p >= pairs) return;
            int ir = p / cols * MR, j = p % cols;
            for (int r = 0; r < MR; r++) c[(ir + r) * ldc + j] = acc.GetElement(r);
        }
    }

    /// <summary>The MR x NR micro-kernel of the chosen path: C tile (ldc) := (accumulate ? C : 0) + Apanel * Bpanel.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void MicroKernel(int kc, ref float a, ref float b, ref float c, int ldc, bool accumulate)
    {
        if (Engine.UseAvx2) Kernel6x16Avx2(kc, ref a, ref b, ref c, ldc, accumulate);
        else Kernel6x16Scalar(kc, ref a, ref b, ref c, ldc, accumulate);
    }

    internal static int RoundUp(int x, int multiple) => (x + multiple - 1) / multiple * multiple;

    private static void Validate(bool transA, bool transB, int m, int n, int k, int aLen, int lda, int bLen, int ldb, int cLen, int ldc)
    {
        if (m < 0 || n < 0 || k < 0) throw new ArgumentException($"GEMM sizes must be non-negative, got m={m} n={n} k={k}");
        int aRows = transA ? k : m, aCols = transA ? m : k;
        int bRows = transB ? n : k, bCols = transB ? k : n;
        CheckMatrix("A", aRows, aCols, lda, aLen);
        CheckMatrix("B", bRows, bCols, ldb, bLen);
        CheckMatrix("C", m, n, ldc, cLen);
    }

    private static void CheckMatrix(string name, int rows, int cols, int ld, int length)
    {
        if (rows == 0 || cols == 0) return;
        if (ld < cols) throw new ArgumentException($"GEMM: leading dimension of {name} is {ld}, less than its {cols} columns");
        long need = (long)(rows - 1) * ld + cols;
        if (need > length) throw new ArgumentException($"GEMM: {name} is {rows}x{cols} (ld {ld}) and needs {need} floats, the span holds {length}");
    }
}
