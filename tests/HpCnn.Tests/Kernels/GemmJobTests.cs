using HpCnn.Kernels;
using HpCnn.Layers;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// The pool's GEMM split (column blocks, or row blocks when C is taller than wide; each item packing its own copy of
/// the operand all items read) against one whole Multiply call: the same bits for any number of items and threads,
/// bias offsets carried into each block.
/// </summary>
public class GemmJobTests
{
    private static IEnumerable<TestCaseData> Shapes()
    {
        // (m, n, k, transA, transB, bias): tall (row split), wide (column split), shallow and deep, edges everywhere.
        yield return new TestCaseData(128, 64, 700, false, false, BiasMode.PerRow);
        yield return new TestCaseData(97, 40, 33, true, false, BiasMode.PerRow);
        yield return new TestCaseData(64, 10, 128, false, true, BiasMode.PerColumn);
        yield return new TestCaseData(13, 5, 9, false, false, BiasMode.None);
        yield return new TestCaseData(32, 1000, 9, false, false, BiasMode.PerRow);
        // Shallow and wide enough for ShallowSplit column blocks per thread, per-column bias carried into each.
        yield return new TestCaseData(20, 2100, 9, false, true, BiasMode.PerColumn);
        yield return new TestCaseData(64, 300, 400, false, true, BiasMode.PerColumn);
        yield return new TestCaseData(7, 77, 65, true, true, BiasMode.None);
        // More than one k block and more than one row / column block of the packing (KC, MC, NC crossed).
        yield return new TestCaseData(Sgemm.Blocking.MC + 11, 37, Sgemm.Blocking.KC + 29, false, false, BiasMode.PerRow);
        yield return new TestCaseData(20, Sgemm.Blocking.NC + 45, Sgemm.Blocking.KC + 3, true, true, BiasMode.PerColumn);
    }

    [TestCaseSource(nameof(Shapes))]
    public void AnySplitGivesTheWholeCallsBits(int m, int n, int k, bool transA, bool transB, BiasMode bias)
    {
        var rng = new Random(m * 1000 + n * 10 + k);
        float[] Rand(int len) => Enumerable.Range(0, len).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var a = Rand(m * k);
        var b = Rand(k * n);
        var biasValues = Rand(Math.Max(m, n) + 3);
        var epi = bias == BiasMode.None ? GemmEpilogue.Clamp(0f, float.PositiveInfinity) : new GemmEpilogue(bias, biasValues, 3, -0.5f, 2f);
        int lda = transA ? m : k, ldb = transB ? k : n;

        var whole = new float[m * n];
        Sgemm.Multiply(transA, transB, m, n, k, a, lda, b, ldb, whole, n, false, new float[Sgemm.WorkspaceSize(m, n, k)], in epi);

        foreach (int threads in new[] { 1, 2, 3 })
        {
            using var pool = new WorkerPool(threads);
            foreach (int items in new[] { 1, 2, 3, 5 })
            {
                var c = new float[m * n];
                var job = new GemmJob
                {
                    Scratch = Enumerable.Range(0, threads).Select(_ => new HpCnn.Buffer(new float[Sgemm.WorkspaceSize(m, n, k)])).ToArray(),
                };
                job.Set(transA, transB, m, n, k, new HpCnn.Buffer(a), lda, new HpCnn.Buffer(b), ldb, new HpCnn.Buffer(c), n, false, epi, items);
                if (items > 1 && m > n && GemmJob.RowsFor(m, items) > 0)
                    Assert.That(job.RowsPerItem, Is.GreaterThan(0), "a tall C is split by rows");
                job.RunOn(pool);
                Assert.That(c, Is.EqualTo(whole).AsCollection, $"{threads} threads, {items} items (rows per item {job.RowsPerItem})");
            }
        }
    }

    [Test]
    public void RowBlocksNeverFallBelowOneRegisterStrip()
    {
        for (int m = 1; m <= 200; m++)
            foreach (int items in new[] { 2, 3, 4, 8 })
            {
                int rows = GemmJob.RowsFor(m, items);
                if (rows == 0) continue;
                Assert.That(rows % Sgemm.MR, Is.Zero);
                int last = m - (m - 1) / rows * rows;
                Assert.That(last, Is.InRange(Sgemm.MR, rows), $"m={m} items={items}");
            }
        Assert.That(GemmJob.RowsFor(13, 2), Is.Zero, "13 rows in blocks of 12 would leave a 1-row block");
    }

    [Test]
    public void ShallowWideProductsSplitIntoSeveralColumnBlocksPerThread()
    {
        var job = new GemmJob();
        job.Set(false, false, 32, 50176, 9, default, 9, default, 50176, default, 50176, false, default, 2);
        Assert.That(job.Items, Is.EqualTo(2 * GemmJob.ShallowSplit), "32 x 50176 x 9 on 2 threads");
        job.Set(false, false, 32, 50176, 288, default, 288, default, 50176, default, 50176, false, default, 2);
        Assert.That(job.Items, Is.EqualTo(2), "a deep product keeps one block per thread");
        job.Set(false, false, 32, 300, 9, default, 9, default, 300, default, 300, false, default, 2);
        Assert.That(job.Items, Is.EqualTo(2), "too few columns to split further");
    }

    [Test]
    public void ColumnBlocksAfterTheFirstStartOnACacheLineOfC()
    {
        // A shallow, wide product whose rows of C start anywhere in a cache line: the first block takes the columns up to
        // the line, the others start on one; the result is the whole call's, bit for bit, wherever C starts.
        var rng = new Random(3);
        int m = 14, n = 1500, k = 7, ldc = 1504;
        var a = TestData.Uniform(rng, m * k);
        var b = TestData.Uniform(rng, k * n);
        var whole = new float[m * n];
        Sgemm.Multiply(false, false, m, n, k, a, k, b, n, whole, n, false, new float[Sgemm.WorkspaceSize(m, n, k)]);
        using var pool = new WorkerPool(2);
        var buffer = GC.AllocateArray<float>(16 + m * ldc, pinned: true);
        var shifts = new HashSet<int>();
        for (int start = 0; start < 16; start++)
        {
            Array.Clear(buffer);
            var c = new HpCnn.Buffer(buffer, start, m * ldc);
            var job = new GemmJob { Scratch = [new HpCnn.Buffer(new float[Sgemm.WorkspaceSize(m, n, k)]), new HpCnn.Buffer(new float[Sgemm.WorkspaceSize(m, n, k)])] };
            job.Set(false, false, m, n, k, new HpCnn.Buffer(a), k, new HpCnn.Buffer(b), n, c, ldc, false, default, 2);
            shifts.Add(job.ColumnShift);
            Assert.That(Sgemm.AlignmentSkew(c.Span.Slice(job.ColumnShift + job.ColumnsPerItem)), Is.Zero, $"C from float {start}: second block on a line");
            job.RunOn(pool);
            for (int i = 0; i < m; i++)
                Assert.That(c.Span.Slice(i * ldc, n).ToArray(), Is.EqualTo(whole.AsSpan(i * n, n).ToArray()).AsCollection, $"C from float {start}, row {i}");
        }
        Assert.That(shifts, Has.Count.EqualTo(16), "every offset within a line was tried");
    }
}
