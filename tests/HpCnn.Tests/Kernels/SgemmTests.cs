using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// Sgemm.Multiply against Sgemm.Reference and against a double-precision triple loop written here.
/// Inputs carry NaN markers in their row gaps and after their last element (a read there poisons the result);
/// outputs carry markers in their row gaps and after their last row (bit-compared: never written).
/// </summary>
public class SgemmTests
{
    private static readonly int[] SmallSizes = [0, 1, 5, 7, 17];

    /// <summary>What one Multiply call should produce, in double, and the magnitude of each sum for the tolerance.</summary>
    private sealed record Oracle(double[] Expected, double[] Scale, int Terms);

    private static Oracle Naive(bool transA, bool transB, int m, int n, int k, StridedMatrix a, StridedMatrix b,
        double[]? c0, in GemmEpilogue epi)
    {
        var e = new double[m * n];
        var s = new double[m * n];
        // op(A) by rows and op(B) by columns, contiguous in p (keeps the large cases fast).
        var opA = new double[m * k];
        var opBt = new double[n * k];
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++) opA[i * k + p] = transA ? a[p, i] : a[i, p];
        for (int j = 0; j < n; j++)
            for (int p = 0; p < k; p++) opBt[j * k + p] = transB ? b[j, p] : b[p, j];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double sum = 0, mag = 0;
                var ar = opA.AsSpan(i * k, k);
                var bc = opBt.AsSpan(j * k, k);
                for (int p = 0; p < ar.Length; p++)
                {
                    double t = ar[p] * bc[p];
                    sum += t;
                    mag += Math.Abs(t);
                }
                if (c0 is not null) { sum += c0[i * n + j]; mag += Math.Abs(c0[i * n + j]); }
                if (epi.Bias == BiasMode.PerRow) { sum += epi.BiasValues![epi.BiasOffset + i]; mag += Math.Abs(epi.BiasValues[epi.BiasOffset + i]); }
                if (epi.Bias == BiasMode.PerColumn) { sum += epi.BiasValues![epi.BiasOffset + j]; mag += Math.Abs(epi.BiasValues[epi.BiasOffset + j]); }
                if (epi.IsActive) sum = Math.Min(Math.Max(sum, epi.Low), epi.High);
                e[i * n + j] = sum;
                s[i * n + j] = mag;
            }
        return new Oracle(e, s, k + 2);
    }

    /// <summary>Runs Multiply (and, without an epilogue, Reference) for one case and checks values and sentinels.</summary>
    private static void CheckCase(Random rng, bool transA, bool transB, int m, int n, int k, int padA, int padB, int padC,
        bool accumulate, GemmEpilogue epi = default, float range = 1f)
    {
        string name = $"GEMM {(transA ? "T" : "N")}{(transB ? "T" : "N")} m={m} n={n} k={k} pads=({padA},{padB},{padC}) acc={accumulate} bias={epi.Bias} clamp=[{epi.Low},{epi.High}]";
        int aRows = transA ? k : m, aCols = transA ? m : k;
        int bRows = transB ? n : k, bCols = transB ? k : n;
        var a = StridedMatrix.Random(rng, aRows, aCols, aCols + padA, -range, range);
        var b = StridedMatrix.Random(rng, bRows, bCols, bCols + padB, -range, range);
        int ldc = n + padC;
        var c = new StridedMatrix(m, n, ldc);
        var cRef = new StridedMatrix(m, n, ldc);
        double[]? c0 = null;
        if (accumulate)
        {
            c0 = new double[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++)
                {
                    float v = (float)(rng.NextDouble() * 2 - 1) * range;
                    c[i, j] = v; cRef[i, j] = v; c0[i * n + j] = v;
                }
        }
        else
        {
            // Plain NaN where C is overwritten: an element that is read (beta != 0) or never written shows up.
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) { c[i, j] = float.NaN; cRef[i, j] = float.NaN; }
        }

        int wsSize = Sgemm.WorkspaceSize(m, n, k);
        var ws = Sentinel.Buffer(wsSize); // starts as NaN markers: the kernel may not rely on a zeroed workspace

        Sgemm.Multiply(transA, transB, m, n, k, a.Span, a.Ld, b.Span, b.Ld, c.Span, ldc, accumulate, ws.AsSpan(0, wsSize), in epi);

        var oracle = Naive(transA, transB, m, n, k, a, b, c0, in epi);
        var got = new float[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) got[i * n + j] = c[i, j];
        var tol = new double[m * n];
        for (int i = 0; i < tol.Length; i++) tol[i] = Close.SumTolerance(oracle.Terms, oracle.Scale[i]);
        Close.All(got, oracle.Expected, tol, name, idx => $"row {idx / Math.Max(n, 1)}, column {idx % Math.Max(n, 1)}");
        c.AssertPaddingUntouched(name + " (C gaps and guard)");
        Sentinel.AssertTail(ws, wsSize, name + " (workspace guard)");

        if (!epi.IsActive)
        {
            Sgemm.Reference(transA, transB, m, n, k, a.Span, a.Ld, b.Span, b.Ld, cRef.Span, ldc, accumulate);
            var gotRef = new float[m * n];
            for (int i = 0; i < m; i++)
                for (int j = 0; j < n; j++) gotRef[i * n + j] = cRef[i, j];
            // The reference accumulates in double: it must agree with the oracle to float rounding.
            Close.All(gotRef, oracle.Expected, 2e-7, 1e-7, name + " (Sgemm.Reference vs oracle)");
            // And the optimised result must agree with the reference.
            var refD = Close.ToDouble(gotRef);
            Close.All(got, refD, tol, name + " (Multiply vs Sgemm.Reference)");
            cRef.AssertPaddingUntouched(name + " (Reference C gaps)");
        }
    }

    [Test]
    public void SmallShapesMatchReference([Values] bool transA, [Values] bool transB, [Values] bool accumulate)
    {
        var rng = new Random(1000 + (transA ? 1 : 0) + (transB ? 2 : 0) + (accumulate ? 4 : 0));
        foreach (int m in SmallSizes)
            foreach (int n in SmallSizes)
                foreach (int k in SmallSizes)
                {
                    CheckCase(rng, transA, transB, m, n, k, 0, 0, 0, accumulate);
                    CheckCase(rng, transA, transB, m, n, k, 3, 1, 5, accumulate);
                }
    }

    [Test]
    public void EdgeTilesAroundTheRegisterTile([Values] bool transA, [Values] bool transB)
    {
        // Every m in 1..13 against n around NR: full tiles, partial rows, partial columns, both.
        var rng = new Random(77);
        foreach (int m in new[] { 1, 2, 5, 6, 7, 11, 12, 13 })
            foreach (int n in new[] { 1, 15, 16, 17, 31, 32, 33 })
                CheckCase(rng, transA, transB, m, n, 9, 2, 0, 4, accumulate: (m + n) % 2 == 0);
    }

    private static IEnumerable<TestCaseData> LargeShapes()
    {
        var b = Sgemm.Blocking;
        // Not multiples of the block sizes; each crosses at least one of MC, KC, NC.
        yield return new TestCaseData(255, 17, 33).SetArgDisplayNames("255x17x33");
        yield return new TestCaseData(7, 255, 255).SetArgDisplayNames("7x255x255");
        yield return new TestCaseData(b.MC + 7, 41, b.KC + 13).SetArgDisplayNames("MC+7 x 41 x KC+13");
        yield return new TestCaseData(2 * b.MC + 1, 19, 2 * b.KC + 5).SetArgDisplayNames("2MC+1 x 19 x 2KC+5");
        yield return new TestCaseData(13, b.NC + 29, 9).SetArgDisplayNames("13 x NC+29 x 9");
    }

    [TestCaseSource(nameof(LargeShapes))]
    public void LargeShapesCrossTheBlocking(int m, int n, int k)
    {
        var rng = new Random(m * 31 + n * 7 + k);
        foreach (bool transA in new[] { false, true })
            foreach (bool transB in new[] { false, true })
                CheckCase(rng, transA, transB, m, n, k, 3, 5, 2, accumulate: transA != transB);
    }

    [Test]
    public void AllThreeBlockBoundariesAtOnceWithEpilogue()
    {
        var b = Sgemm.Blocking;
        int m = b.MC + 5, n = b.NC + 19, k = b.KC + 3;
        var rng = new Random(4242);
        var bias = TestData.Uniform(rng, m + 4, -2f, 2f);
        CheckCase(rng, false, false, m, n, k, 1, 0, 3, accumulate: true, new GemmEpilogue(BiasMode.PerRow, bias, 4, 0f, 6f), range: 0.5f);
    }

    private static IEnumerable<TestCaseData> Epilogues()
    {
        var rng = new Random(5);
        float[] rowBias = TestData.Uniform(rng, 64, -3f, 3f), colBias = TestData.Uniform(rng, 3200, -3f, 3f);
        yield return new TestCaseData(new GemmEpilogue(BiasMode.PerRow, rowBias, 0, float.NegativeInfinity, float.PositiveInfinity)).SetArgDisplayNames("row bias");
        yield return new TestCaseData(new GemmEpilogue(BiasMode.PerRow, rowBias, 5, float.NegativeInfinity, float.PositiveInfinity)).SetArgDisplayNames("row bias, offset 5");
        yield return new TestCaseData(new GemmEpilogue(BiasMode.PerColumn, colBias, 0, float.NegativeInfinity, float.PositiveInfinity)).SetArgDisplayNames("column bias");
        yield return new TestCaseData(new GemmEpilogue(BiasMode.PerColumn, colBias, 3, float.NegativeInfinity, float.PositiveInfinity)).SetArgDisplayNames("column bias, offset 3");
        yield return new TestCaseData(GemmEpilogue.Clamp(0f, float.PositiveInfinity)).SetArgDisplayNames("relu");
        yield return new TestCaseData(GemmEpilogue.Clamp(0f, 6f)).SetArgDisplayNames("relu6");
        yield return new TestCaseData(new GemmEpilogue(BiasMode.PerRow, rowBias, 7, 0f, float.PositiveInfinity)).SetArgDisplayNames("row bias offset 7 + relu");
        yield return new TestCaseData(new GemmEpilogue(BiasMode.PerColumn, colBias, 11, 0f, 6f)).SetArgDisplayNames("column bias offset 11 + relu6");
        yield return new TestCaseData(new GemmEpilogue(BiasMode.PerRow, rowBias, 1, -1.5f, 2.5f)).SetArgDisplayNames("row bias + [-1.5, 2.5]");
    }

    [TestCaseSource(nameof(Epilogues))]
    public void EpilogueMatchesBiasThenClamp(GemmEpilogue epi)
    {
        Assert.That(epi.IsActive, Is.True);
        var rng = new Random(99);
        // Inputs in [-2, 2]: sums reach well past 6 and below 0, so both clamp bounds bite.
        foreach (bool transA in new[] { false, true })
            foreach (bool transB in new[] { false, true })
                foreach (var (m, n, k) in new[] { (1, 1, 1), (5, 7, 17), (7, 17, 5), (17, 33, 12), (13, 5, 0), (6, 16, 3) })
                    foreach (bool acc in new[] { false, true })
                        CheckCase(rng, transA, transB, m, n, k, 2, 1, 3, acc, epi, range: 2f);
    }

    [Test]
    public void EpilogueRunsOnceWhenKSpansSeveralBlocks()
    {
        // If the bias were added after every KC block it would be counted twice or three times.
        var rng = new Random(8);
        int k = 2 * Sgemm.Blocking.KC + 7;
        var bias = TestData.Uniform(rng, 40, 5f, 10f);
        CheckCase(rng, false, false, 9, 21, k, 0, 0, 0, accumulate: false, new GemmEpilogue(BiasMode.PerRow, bias, 2, float.NegativeInfinity, float.PositiveInfinity));
        CheckCase(rng, true, true, 9, 21, k, 0, 0, 0, accumulate: true, new GemmEpilogue(BiasMode.PerColumn, bias, 1, float.NegativeInfinity, float.PositiveInfinity));
    }

    [Test]
    public void KZeroClearsOrKeepsC([Values] bool accumulate)
    {
        var rng = new Random(3);
        CheckCase(rng, false, false, 7, 17, 0, 0, 0, 2, accumulate);
        CheckCase(rng, true, true, 17, 5, 0, 1, 1, 0, accumulate);
    }

    [Test]
    public void IsInvariantToThePartitionOfC()
    {
        // Computing C in two column halves (as a thread partition would) gives the same bits as one call.
        var rng = new Random(21);
        int m = 23, n = 45, k = 350, split = 16;
        var a = TestData.Uniform(rng, m * k);
        var b = TestData.Uniform(rng, k * n);
        var whole = new float[m * n];
        var parts = new float[m * n];
        var ws = new float[Sgemm.WorkspaceSize(m, n, k)];
        Sgemm.Multiply(false, false, m, n, k, a, k, b, n, whole, n, false, ws);
        Sgemm.Multiply(false, false, m, split, k, a, k, b, n, parts, n, false, ws);
        Sgemm.Multiply(false, false, m, n - split, k, a, k, b.AsSpan(split), n, parts.AsSpan(split), n, false, ws);
        Assert.That(parts, Is.EqualTo(whole).AsCollection, "column partition changed the bits of C");
    }

    [Test]
    public void ShallowCallsGiveTheSameBitsWhereverTheRowsOfCStart([Values] bool transB)
    {
        // A shallow call whose rows of C start off a cache line computes its first columns (up to the line) as a call of
        // their own: every start of C within a line must give the bits of the reference, per-column bias included.
        var rng = new Random(transB ? 5 : 6);
        int m = 13, n = 100, k = 9, ldc = 112;
        var a = TestData.Uniform(rng, m * k);
        var b = TestData.Uniform(rng, k * n);
        var bias = TestData.Uniform(rng, n + 2);
        var epi = new GemmEpilogue(BiasMode.PerColumn, bias, 2, -0.25f, 0.5f);
        int ldb = transB ? k : n;
        if (transB)
        {
            var bt = new float[n * k];
            for (int p = 0; p < k; p++)
                for (int j = 0; j < n; j++) bt[j * k + p] = b[p * n + j];
            b = bt;
        }
        var ws = new float[Sgemm.WorkspaceSize(m, n, k)];
        float[]? first = null;
        for (int start = 0; start < 16; start++)
        {
            var buffer = new float[start + m * ldc];
            Sgemm.Multiply(false, transB, m, n, k, a, k, b, ldb, buffer.AsSpan(start), ldc, false, ws, in epi);
            var got = Enumerable.Range(0, m * n).Select(i => buffer[start + i / n * ldc + i % n]).ToArray();
            if (first is null)
            {
                var expected = new float[m * n];
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < n; j++)
                    {
                        double sum = 0;
                        for (int p = 0; p < k; p++) sum += (double)a[i * k + p] * (transB ? b[j * k + p] : b[p * n + j]);
                        expected[i * n + j] = (float)Math.Clamp(sum + bias[2 + j], -0.25, 0.5);
                    }
                Assert.That(got, Is.EqualTo(expected).Within(1e-5f).AsCollection, "against the reference");
                first = got;
            }
            else Assert.That(got, Is.EqualTo(first).AsCollection, $"C starting {start} floats into the buffer");
        }
    }

    [Test]
    public void TooSmallWorkspaceThrowsWithTheSizes()
    {
        int m = 7, n = 17, k = 5;
        var a = new float[m * k];
        var b = new float[k * n];
        var c = new float[m * n];
        int need = Sgemm.WorkspaceSize(m, n, k);
        var ws = new float[need - 1];
        var ex = Assert.Throws<ArgumentException>(() => Sgemm.Multiply(false, false, m, n, k, a, k, b, n, c, n, false, ws));
        Assert.That(ex!.Message, Does.Contain("workspace").And.Contain(need.ToString()).And.Contain((need - 1).ToString()));
        Assert.That(ex.ParamName, Is.EqualTo("workspace"));
    }

    [Test]
    public void TooShortOperandsThrowNamingTheOperand()
    {
        int m = 5, n = 7, k = 3;
        var ws = new float[Sgemm.WorkspaceSize(m, n, k)];
        float[] a = new float[m * k], b = new float[k * n], c = new float[m * n];

        var ex = Assert.Throws<ArgumentException>(() => Sgemm.Multiply(false, false, m, n, k, a.AsSpan(1), k, b, n, c, n, false, ws));
        Assert.That(ex!.Message, Does.Contain("A is 5x3").And.Contain("needs 15").And.Contain("holds 14"));
        ex = Assert.Throws<ArgumentException>(() => Sgemm.Multiply(false, true, m, n, k, a, k, b.AsSpan(1), k, c, n, false, ws));
        Assert.That(ex!.Message, Does.Contain("B is 7x3").And.Contain("holds 20"));
        ex = Assert.Throws<ArgumentException>(() => Sgemm.Multiply(false, false, m, n, k, a, k, b, n, c.AsSpan(0, m * n - 1), n, false, ws));
        Assert.That(ex!.Message, Does.Contain("C is 5x7"));
        // A leading dimension larger than the columns needs (rows-1)*ld + cols floats.
        ex = Assert.Throws<ArgumentException>(() => Sgemm.Multiply(false, false, m, n, k, a, k + 1, b, n, c, n, false, ws));
        Assert.That(ex!.Message, Does.Contain("A is 5x3 (ld 4)").And.Contain("needs 19"));
        ex = Assert.Throws<ArgumentException>(() => Sgemm.Multiply(false, false, m, n, k, a, k, b, n - 1, c, n, false, ws));
        Assert.That(ex!.Message, Does.Contain("leading dimension of B").And.Contain("6"));
        ex = Assert.Throws<ArgumentException>(() => Sgemm.Multiply(false, false, -1, n, k, a, k, b, n, c, n, false, ws));
        Assert.That(ex!.Message, Does.Contain("m=-1"));
        // The reference validates the same way.
        Assert.Throws<ArgumentException>(() => Sgemm.Reference(false, false, m, n, k, a.AsSpan(1), k, b, n, c, n, false));
        // Nothing was written by the failed calls.
        Assert.That(c, Is.All.EqualTo(0f));
    }

    [Test]
    public void WorkspaceSizeIsMonotoneAndCoversTheBlocks()
    {
        var b = Sgemm.Blocking;
        Assert.That(b.MR, Is.EqualTo(Sgemm.MR));
        Assert.That(b.NR, Is.EqualTo(Sgemm.NR));
        Assert.That(b.MC % b.MR, Is.Zero, "MC must be a whole number of register tiles");
        Assert.That(b.NC % b.NR, Is.Zero, "NC must be a whole number of register tiles");
        int previous = 0;
        foreach (int s in new[] { 1, 5, 17, 255, 1000, 5000 })
        {
            int w = Sgemm.WorkspaceSize(s, s, s);
            Assert.That(w, Is.GreaterThanOrEqualTo(previous));
            previous = w;
        }
        Assert.That(Sgemm.WorkspaceSize(10_000, 10_000, 10_000), Is.EqualTo(Sgemm.WorkspaceSize(b.MC, b.NC, b.KC)));
    }

    // ---- packing and micro-kernels, against the documented layouts ----

    /// <summary>
    /// Asserts dst holds rows [i0, i0+rows) x depth [p0, p0+kc) of op(A) packed into MR-row strips (zero rows past the
    /// edge), followed by untouched sentinels.
    /// </summary>
    private static void AssertPackedA(float[] dst, StridedMatrix a, bool transA, int i0, int rows, int p0, int kc, string what)
    {
        int strips = (rows + Sgemm.MR - 1) / Sgemm.MR;
        for (int s = 0; s < strips; s++)
            for (int kk = 0; kk < kc; kk++)
                for (int r = 0; r < Sgemm.MR; r++)
                {
                    int i = s * Sgemm.MR + r;
                    float expected = i < rows ? (transA ? a[p0 + kk, i0 + i] : a[i0 + i, p0 + kk]) : 0f;
                    float got = dst[s * kc * Sgemm.MR + kk * Sgemm.MR + r];
                    if (got != expected) Assert.Fail($"{what}: strip {s}, k {kk}, row {r} is {got}, expected {expected}");
                }
        Sentinel.AssertTail(dst, strips * Sgemm.MR * kc, what);
    }

    /// <summary>
    /// Asserts dst holds depth [p0, p0+kc) x columns [j0, j0+cols) of op(B) packed into NR-column strips (zero columns past
    /// the edge), followed by untouched sentinels.
    /// </summary>
    private static void AssertPackedB(float[] dst, StridedMatrix b, bool transB, int j0, int cols, int p0, int kc, string what)
    {
        int strips = (cols + Sgemm.NR - 1) / Sgemm.NR;
        for (int s = 0; s < strips; s++)
            for (int kk = 0; kk < kc; kk++)
                for (int jj = 0; jj < Sgemm.NR; jj++)
                {
                    int j = s * Sgemm.NR + jj;
                    float expected = j < cols ? (transB ? b[j0 + j, p0 + kk] : b[p0 + kk, j0 + j]) : 0f;
                    float got = dst[s * kc * Sgemm.NR + kk * Sgemm.NR + jj];
                    if (got != expected) Assert.Fail($"{what}: strip {s}, k {kk}, column {jj} is {got}, expected {expected}");
                }
        Sentinel.AssertTail(dst, strips * Sgemm.NR * kc, what);
    }

    [Test]
    public void PackAMatchesTheStripLayout([Values] bool transA)
    {
        var rng = new Random(12);
        foreach (var (mc, kc, i0, p0) in new[] { (1, 1, 0, 0), (5, 3, 2, 1), (6, 4, 0, 2), (7, 5, 3, 0), (13, 2, 1, 3) })
        {
            int m = i0 + mc + 2, k = p0 + kc + 1;
            int rows = transA ? k : m, cols = transA ? m : k;
            var a = StridedMatrix.Random(rng, rows, cols, cols + 2);
            int strips = (mc + Sgemm.MR - 1) / Sgemm.MR;
            var dst = Sentinel.Buffer(strips * Sgemm.MR * kc);
            Sgemm.PackA(transA, a.Span, a.Ld, i0, mc, p0, kc, dst);
            AssertPackedA(dst, a, transA, i0, mc, p0, kc, $"PackA mc={mc} kc={kc}");
        }
    }

    [Test]
    public void PackBMatchesTheStripLayout([Values] bool transB)
    {
        var rng = new Random(13);
        foreach (var (nc, kc, j0, p0) in new[] { (1, 1, 0, 0), (15, 3, 2, 1), (16, 4, 0, 2), (17, 5, 3, 0), (40, 2, 1, 3) })
        {
            int n = j0 + nc + 2, k = p0 + kc + 1;
            int rows = transB ? n : k, cols = transB ? k : n;
            var b = StridedMatrix.Random(rng, rows, cols, cols + 3);
            int strips = (nc + Sgemm.NR - 1) / Sgemm.NR;
            var dst = Sentinel.Buffer(strips * Sgemm.NR * kc);
            Sgemm.PackB(transB, b.Span, b.Ld, p0, kc, j0, nc, dst);
            AssertPackedB(dst, b, transB, j0, nc, p0, kc, $"PackB nc={nc} kc={kc}");
        }
    }

    [Test]
    public void PackingByRegisterTransposesMatchesTheStripLayout([Values] bool transposed)
    {
        // kc >= 8 with whole MR / NR strips takes the 8-wide register-transpose paths (non-transposed A, transposed B);
        // kc % 8 != 0 adds their scalar tails, a partial last strip the plain path. Destinations are exactly the packed
        // size, followed by sentinels: the register transposes' stores must stay inside.
        var rng = new Random(14);
        foreach (var (rows, kc, i0, p0) in new[] { (6, 8, 0, 0), (6, 9, 1, 3), (12, 16, 0, 1), (13, 17, 2, 0), (18, 40, 0, 5), (7, 23, 0, 0) })
        {
            int m = i0 + rows + 1, k = p0 + kc + 2;
            var a = transposed ? StridedMatrix.Random(rng, k, m, m + 3) : StridedMatrix.Random(rng, m, k, k + 3);
            int strips = (rows + Sgemm.MR - 1) / Sgemm.MR;
            var dst = Sentinel.Buffer(strips * Sgemm.MR * kc);
            Sgemm.PackA(transposed, a.Span, a.Ld, i0, rows, p0, kc, dst.AsSpan(0, strips * Sgemm.MR * kc));
            AssertPackedA(dst, a, transposed, i0, rows, p0, kc, $"PackA trans={transposed} mc={rows} kc={kc}");
        }
        foreach (var (cols, kc, j0, p0) in new[] { (16, 8, 0, 0), (16, 9, 1, 3), (32, 16, 0, 1), (33, 17, 2, 0), (48, 40, 0, 5), (15, 23, 0, 0) })
        {
            int n = j0 + cols + 1, k = p0 + kc + 2;
            var b = transposed ? StridedMatrix.Random(rng, n, k, k + 3) : StridedMatrix.Random(rng, k, n, n + 3);
            int strips = (cols + Sgemm.NR - 1) / Sgemm.NR;
            var dst = Sentinel.Buffer(strips * Sgemm.NR * kc);
            Sgemm.PackB(transposed, b.Span, b.Ld, p0, kc, j0, cols, dst.AsSpan(0, strips * Sgemm.NR * kc));
            AssertPackedB(dst, b, transposed, j0, cols, p0, kc, $"PackB trans={transposed} nc={cols} kc={kc}");
        }
    }

    /// <summary>
    /// B stored k x n (rows <paramref name="ldb"/> apart, NaN everywhere else) holding the packed panels (kc x 16 each, one
    /// after the other) side by side from column <paramref name="col0"/>: what the packing-on-the-way kernels read.
    /// </summary>
    private static float[] PanelsAsRows(float[] panels, int kc, int ldb, int col0)
    {
        int cols = panels.Length / kc;
        var rows = Enumerable.Repeat(float.NaN, kc * ldb).ToArray();
        for (int p = 0; p < kc; p++)
            for (int j = 0; j < cols; j++) rows[p * ldb + col0 + j] = panels[j / Sgemm.NR * Sgemm.NR * kc + p * Sgemm.NR + j % Sgemm.NR];
        return rows;
    }

    [Test]
    public unsafe void InPlaceRowsKernelGivesThePackedKernelsBits([Values(1, 2, 9, 64, 301)] int kc, [Values] bool accumulate)
    {
        // Multiply reads whole strips of a non-transposed A in place (AVX2 path): the same products in the same order
        // as the micro-kernel on the packed strip, so the same bits, wherever the strip starts.
        if (!Avx2.IsSupported || !Fma.IsSupported) Assert.Ignore("AVX2/FMA not available in this process");
        var rng = new Random(kc);
        int lda = kc + 5, ldc = Sgemm.NR + 3;
        var a = Enumerable.Range(0, (Sgemm.MR + 2) * lda).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var bPanel = Enumerable.Range(0, kc * Sgemm.NR).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var c0 = Enumerable.Range(0, Sgemm.MR * ldc).Select(_ => (float)rng.NextDouble()).ToArray();
        var aPack = new float[Sgemm.MR * kc];
        Sgemm.PackA(false, a, lda, 1, Sgemm.MR, 2, kc, aPack);
        var packed = (float[])c0.Clone();
        var inPlace = (float[])c0.Clone();
        Sgemm.Kernel6x16Avx2(kc, ref aPack[0], ref bPanel[0], ref packed[0], ldc, accumulate);
        fixed (float* ap = a)
            Sgemm.Kernel6x16RowsAvx2(kc, ap + 1 * lda + 2, lda, ref bPanel[0], ref inPlace[0], ldc, accumulate);
        Assert.That(inPlace, Is.EqualTo(packed).AsCollection);

        // The variant that reads B where it lies (rows ldb apart, here 3 columns in) and packs the panel on the way.
        int ldb = Sgemm.NR + 7;
        var bRows = PanelsAsRows(bPanel, kc, ldb, 3);
        var repacked = Enumerable.Repeat(float.NaN, kc * Sgemm.NR + 1).ToArray();
        var packing = (float[])c0.Clone();
        fixed (float* ap = a)
            Sgemm.Kernel6x16RowsPackingBAvx2(kc, ap + 1 * lda + 2, lda, ref bRows[3], ldb, ref repacked[0], ref packing[0], ldc, accumulate);
        Assert.That(packing, Is.EqualTo(packed).AsCollection, "packing on the way");
        Assert.That(repacked.AsSpan(0, kc * Sgemm.NR).ToArray(), Is.EqualTo(bPanel).AsCollection, "the panel it packed");
        Assert.That(float.IsNaN(repacked[kc * Sgemm.NR]), "nothing written past the panel");
    }

    [Test]
    public unsafe void TwelveRowAvx512KernelGivesTwoPackedTilesBits([Values(1, 2, 9, 64, 301)] int kc, [Values] bool accumulate)
    {
        // The AVX-512 tile is two 6-row strips against one panel: each element summed in the same order with the same FMA as
        // the AVX2 kernel's, so the same bits - from packed strips, from A in place, and while packing B on the way.
        if (!Avx512F.IsSupported || !Fma.IsSupported) Assert.Ignore("AVX-512F not available in this process");
        const int rows = 2 * Sgemm.MR;
        var rng = new Random(kc + 7);
        int lda = kc + 5, ldc = Sgemm.NR + 3;
        var a = Enumerable.Range(0, (rows + 2) * lda).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var bPanel = Enumerable.Range(0, kc * Sgemm.NR).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var c0 = Enumerable.Range(0, rows * ldc + 4).Select(_ => (float)rng.NextDouble()).ToArray();
        var aPack = new float[rows * kc];
        Sgemm.PackA(false, a, lda, 1, rows, 2, kc, aPack);
        var expected = (float[])c0.Clone();
        Sgemm.Kernel6x16Avx2(kc, ref aPack[0], ref bPanel[0], ref expected[0], ldc, accumulate);
        Sgemm.Kernel6x16Avx2(kc, ref aPack[Sgemm.MR * kc], ref bPanel[0], ref expected[Sgemm.MR * ldc], ldc, accumulate);

        var packed = (float[])c0.Clone();
        Sgemm.Kernel12x16Avx512(kc, ref aPack[0], ref aPack[Sgemm.MR * kc], 1, Sgemm.MR, ref bPanel[0], ref packed[0], ldc, accumulate);
        Assert.That(packed, Is.EqualTo(expected).AsCollection, "packed strips");

        var inPlace = (float[])c0.Clone();
        ref float a0 = ref a[1 * lda + 2];
        Sgemm.Kernel12x16Avx512(kc, ref a0, ref a[(1 + Sgemm.MR) * lda + 2], lda, 1, ref bPanel[0], ref inPlace[0], ldc, accumulate);
        Assert.That(inPlace, Is.EqualTo(expected).AsCollection, "A in place");

        int ldb = Sgemm.NR + 7;
        var bRows = PanelsAsRows(bPanel, kc, ldb, 3);
        var repacked = Enumerable.Repeat(float.NaN, kc * Sgemm.NR + 1).ToArray();
        var packing = (float[])c0.Clone();
        Sgemm.Kernel12x16PackingBAvx512(kc, ref a0, ref a[(1 + Sgemm.MR) * lda + 2], lda, 1, ref bRows[3], ldb, ref repacked[0],
            ref packing[0], ldc, accumulate);
        Assert.That(packing, Is.EqualTo(expected).AsCollection, "packing B on the way");
        Assert.That(repacked.AsSpan(0, kc * Sgemm.NR).ToArray(), Is.EqualTo(bPanel).AsCollection, "the panel it packed");
        Assert.That(float.IsNaN(repacked[kc * Sgemm.NR]), "nothing written past the panel");
    }

    [Test]
    public void ColumnTailGivesTheMicroKernelsBitsForItsColumnsOnly([Values(1, 2, 9, 32, 301)] int kc, [Values(1, 5, 15)] int cols)
    {
        // Two 6-row strips against one packed panel: the tail's columns are the tile's columns bit for bit (on the AVX2 and
        // the scalar path alike), and the columns past them and the padding of C stay as they were (NaN).
        const int rows = 2 * Sgemm.MR, ldc = Sgemm.NR + 3;
        var rng = new Random(kc * 31 + cols);
        var aPack = TestData.Uniform(rng, rows * kc);
        var panel = TestData.Uniform(rng, kc * Sgemm.NR);
        var tile = new float[rows * ldc];
        for (int s = 0; s < 2; s++)
            Sgemm.MicroKernel(kc, ref aPack[s * Sgemm.MR * kc], ref panel[0], ref tile[s * Sgemm.MR * ldc], ldc, false);
        var c = Enumerable.Repeat(float.NaN, rows * ldc).ToArray();
        Sgemm.ColumnTail(rows, kc, cols, aPack, panel, c, ldc);
        for (int r = 0; r < rows; r++)
            for (int j = 0; j < ldc; j++)
                if (j < cols) Assert.That(BitConverter.SingleToInt32Bits(c[r * ldc + j]), Is.EqualTo(BitConverter.SingleToInt32Bits(tile[r * ldc + j])), $"row {r}, column {j}");
                else Assert.That(float.IsNaN(c[r * ldc + j]), $"row {r}, column {j} past the tail was written");
    }

    [Test]
    public void FewColumnsGivesTheMicroKernelsBitsFromTransposedA([Values(1, 2, 9, 301)] int kc, [Values(1, 4, 7, 15)] int cols,
        [Values(1, 13, 64, 70, 132)] int rows)
    {
        // The same product as 6-row strips against one packed panel, with A given transposed (rows along a row of At):
        // each element is the micro-kernel's bits (on the AVX-512, AVX2 and scalar paths alike), and C past the rows and
        // columns asked for stays NaN.
        int strips = (rows + Sgemm.MR - 1) / Sgemm.MR, padded = strips * Sgemm.MR, ldc = Sgemm.NR + 3, ldat = Sgemm.RoundUp(rows, 16) + 5;
        var rng = new Random(kc * 131 + cols * 7 + rows);
        var at = TestData.Uniform(rng, kc * ldat);
        var panel = TestData.Uniform(rng, kc * Sgemm.NR);
        var aPack = new float[padded * kc];
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < kc; k++) aPack[r / Sgemm.MR * Sgemm.MR * kc + k * Sgemm.MR + r % Sgemm.MR] = at[k * ldat + r];
        var tile = new float[padded * ldc];
        for (int s = 0; s < strips; s++)
            Sgemm.MicroKernel(kc, ref aPack[s * Sgemm.MR * kc], ref panel[0], ref tile[s * Sgemm.MR * ldc], ldc, false);
        var c = Enumerable.Repeat(float.NaN, padded * ldc).ToArray();
        Sgemm.FewColumns(rows, kc, cols, at, ldat, panel, c, ldc);
        for (int r = 0; r < padded; r++)
            for (int j = 0; j < ldc; j++)
                if (r < rows && j < cols)
                    Assert.That(BitConverter.SingleToInt32Bits(c[r * ldc + j]), Is.EqualTo(BitConverter.SingleToInt32Bits(tile[r * ldc + j])), $"row {r}, column {j}");
                else Assert.That(float.IsNaN(c[r * ldc + j]), $"row {r}, column {j} outside the product was written");
    }

    [Test]
    public void TwelveByThirtyTwoAvx512KernelGivesFourPackedTilesBits([Values(1, 2, 9, 64, 301)] int kc, [Values] bool accumulate)
    {
        // Two strips against two panels (24 zmm accumulators): the same bits as four 6x16 tiles, from packed strips, from A
        // in place, and while packing both panels from B where it lies.
        if (!Avx512F.IsSupported || !Fma.IsSupported) Assert.Ignore("AVX-512F not available in this process");
        const int rows = 2 * Sgemm.MR, cols = 2 * Sgemm.NR;
        var rng = new Random(kc + 11);
        int lda = kc + 5, ldc = cols + 3;
        var a = TestData.Uniform(rng, (rows + 2) * lda);
        var bPanels = TestData.Uniform(rng, 2 * kc * Sgemm.NR); // panel 0, then panel 1 (kc x 16 each)
        var c0 = TestData.Uniform(rng, rows * ldc + 4);
        var aPack = new float[rows * kc];
        Sgemm.PackA(false, a, lda, 1, rows, 2, kc, aPack);
        var expected = (float[])c0.Clone();
        for (int s = 0; s < 2; s++)
            for (int p = 0; p < 2; p++)
                Sgemm.Kernel6x16Avx2(kc, ref aPack[s * Sgemm.MR * kc], ref bPanels[p * Sgemm.NR * kc],
                    ref expected[s * Sgemm.MR * ldc + p * Sgemm.NR], ldc, accumulate);

        var packed = (float[])c0.Clone();
        Sgemm.Kernel12x32Avx512(kc, ref aPack[0], ref aPack[Sgemm.MR * kc], 1, Sgemm.MR, ref bPanels[0], Sgemm.NR * kc,
            ref packed[0], ldc, accumulate);
        Assert.That(packed, Is.EqualTo(expected).AsCollection, "packed strips");

        var inPlace = (float[])c0.Clone();
        Sgemm.Kernel12x32Avx512(kc, ref a[1 * lda + 2], ref a[(1 + Sgemm.MR) * lda + 2], lda, 1, ref bPanels[0], Sgemm.NR * kc,
            ref inPlace[0], ldc, accumulate);
        Assert.That(inPlace, Is.EqualTo(expected).AsCollection, "A in place");

        int ldb = cols + 7;
        var bRows = PanelsAsRows(bPanels, kc, ldb, 3);
        var repacked = Enumerable.Repeat(float.NaN, 2 * kc * Sgemm.NR + 1).ToArray();
        var packing = (float[])c0.Clone();
        Sgemm.Kernel12x32PackingBAvx512(kc, ref a[1 * lda + 2], ref a[(1 + Sgemm.MR) * lda + 2], lda, 1, ref bRows[3], ldb,
            ref repacked[0], Sgemm.NR * kc, ref packing[0], ldc, accumulate);
        Assert.That(packing, Is.EqualTo(expected).AsCollection, "packing B on the way");
        Assert.That(repacked.AsSpan(0, 2 * kc * Sgemm.NR).ToArray(), Is.EqualTo(bPanels).AsCollection, "the panels it packed");
        Assert.That(float.IsNaN(repacked[2 * kc * Sgemm.NR]), "nothing written past the panels");
    }

    [TestCase(36, 50, 9, false)]     // shallow, below TwelveMinDepth: 6-row tiles only
    [TestCase(36, 50, 40, false)]    // shallow: 12-row tiles from packed strips
    [TestCase(40, 70, 300, false)]   // deep: A in place, B packed by the first (12x32) tile while it computes, a 4-row edge strip
    [TestCase(30, 40, 512, false)]   // deep, lda a multiple of ConflictingLda: A packed under AVX-512, a 32-wide and an edge panel
    [TestCase(8, 100, 200, false)]   // deep, fewer than 12 rows: 6-row tiles pack the two panels of a 32-wide step each
    [TestCase(25, 33, 350, true)]    // A transposed (packed), edge columns, a 1-row edge strip
    public void TwelveRowTilesGiveTheBitsOfSixRowCalls(int m, int n, int k, bool transA)
    {
        // One call over all rows runs 12-row tiles where the AVX-512 kernel is in use; calls of 6 rows each never do.
        // Both must give the same bits (on the AVX2 and scalar paths the test is trivially true, and still must pass).
        var rng = new Random(m * 31 + k);
        var a = TestData.Uniform(rng, m * k);
        var b = TestData.Uniform(rng, k * n);
        int lda = transA ? m : k;
        var whole = new float[m * n];
        var strips = new float[m * n];
        var ws = new float[Sgemm.WorkspaceSize(m, n, k)];
        Sgemm.Multiply(transA, false, m, n, k, a, lda, b, n, whole, n, false, ws);
        for (int i = 0; i < m; i += Sgemm.MR)
        {
            // A last partial strip goes with the strip before it (7-11 rows, still no 12-row tile): alone, fewer than MR
            // rows take the small-rows path, which sums in another order.
            int rows = m - i < 2 * Sgemm.MR ? m - i : Sgemm.MR;
            Sgemm.Multiply(transA, false, rows, n, k, a.AsSpan(transA ? i : i * lda), lda, b, n, strips.AsSpan(i * n), n, false, ws);
            if (rows > Sgemm.MR) break;
        }
        Assert.That(whole, Is.EqualTo(strips).AsCollection, $"GEMM kernel {Engine.GemmKernel}");
    }

    [Test]
    public void StripKernelGivesEachTilesBitsAndWritesOnlyItsTiles([Values(1, 9, 31)] int kc, [Values(1, 3)] int panels,
        [Values] bool accumulate)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) Assert.Ignore("AVX2/FMA not available in this process");
        var rng = new Random(kc * 10 + panels);
        int ldc = panels * Sgemm.NR + 5;
        var aStrip = TestData.Uniform(rng, kc * Sgemm.MR);
        var bPanels = TestData.Uniform(rng, panels * kc * Sgemm.NR);
        var c0 = TestData.Uniform(rng, Sgemm.MR * ldc);
        var tiles = (float[])c0.Clone();
        for (int p = 0; p < panels; p++)
            Sgemm.Kernel6x16Avx2(kc, ref aStrip[0], ref bPanels[p * kc * Sgemm.NR], ref tiles[p * Sgemm.NR], ldc, accumulate);
        var strip = (float[])c0.Clone();
        Sgemm.Kernel6x16StripAvx2(kc, ref aStrip[0], ref bPanels[0], panels, ref strip[0], ldc, accumulate);
        Assert.That(strip, Is.EqualTo(tiles).AsCollection, "tile by tile, the last 5 columns of each row untouched");
    }

    [Test]
    public void EdgeStripKernelGivesTheFullKernelsBitsAndWritesOnlyItsRows([Values(1, 2, 3, 4)] int rows,
        [Values(1, 8, 301)] int kc, [Values] bool accumulate)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) Assert.Ignore("AVX2/FMA not available in this process");
        var rng = new Random(rows * 1000 + kc);
        int ldc = Sgemm.NR + 3;
        var aStrip = Enumerable.Range(0, kc * Sgemm.MR).Select(i => i % Sgemm.MR < rows ? (float)(rng.NextDouble() * 2 - 1) : 0f).ToArray();
        var bPanel = Enumerable.Range(0, kc * Sgemm.NR).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var c0 = Enumerable.Range(0, Sgemm.MR * ldc).Select(_ => (float)rng.NextDouble()).ToArray();
        var full = (float[])c0.Clone();
        var edge = (float[])c0.Clone();
        Sgemm.Kernel6x16Avx2(kc, ref aStrip[0], ref bPanel[0], ref full[0], ldc, accumulate);
        Sgemm.Kernel4x16Avx2(kc, ref aStrip[0], ref bPanel[0], ref edge[0], ldc, accumulate, rows);
        for (int i = 0; i < c0.Length; i++)
        {
            bool written = i / ldc < rows && i % ldc < Sgemm.NR;
            Assert.That(edge[i], Is.EqualTo(written ? full[i] : c0[i]), $"element {i / ldc},{i % ldc}");
        }
    }

    [Test]
    public void RowOrderPackingGivesThePanelOrderLayout()
    {
        if (!Avx2.IsSupported) Assert.Ignore("AVX2 not available in this process");
        var rng = new Random(16);
        foreach (var (panels, kc, j0, p0, extra) in new[] { (1, 1, 0, 0, 0), (4, 9, 3, 2, 5), (8, 40, 0, 1, 0), (3, 300, 16, 7, 1) })
        {
            int cols = panels * Sgemm.NR, n = j0 + cols + extra, k = p0 + kc + 3;
            var b = StridedMatrix.Random(rng, k, n, n + 2);
            var byPanel = Sentinel.Buffer(cols * kc);
            var byRow = Sentinel.Buffer(cols * kc);
            Sgemm.PackB(false, b.Span, b.Ld, p0, kc, j0, cols, byPanel.AsSpan(0, cols * kc));
            Sgemm.PackBRowOrder(b.Span, b.Ld, p0, kc, j0, cols, byRow.AsSpan(0, cols * kc));
            Assert.That(byRow, Is.EqualTo(byPanel).AsCollection, $"{panels} panels, kc {kc}");
            Sentinel.AssertTail(byRow, cols * kc, $"{panels} panels, kc {kc}");
        }
    }

    [Test]
    public void Transpose8x8MatchesItsDefinition()
    {
        if (!Avx2.IsSupported) Assert.Ignore("AVX2 not available in this process");
        var rng = new Random(15);
        foreach (var (ldSrc, ldDst) in new[] { (8, 8), (11, 16), (8, 13) })
        {
            var src = new StridedMatrix(8, 8, ldSrc);
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 8; j++) src[i, j] = (float)rng.NextDouble();
            var dst = new StridedMatrix(8, 8, ldDst);
            Sgemm.Transpose8x8(ref src[0, 0], ldSrc, ref dst[0, 0], ldDst);
            for (int i = 0; i < 8; i++)
                for (int j = 0; j < 8; j++)
                    Assert.That(dst[i, j], Is.EqualTo(src[j, i]), $"ld ({ldSrc}, {ldDst}): element ({i}, {j})");
            dst.AssertPaddingUntouched($"transpose ld ({ldSrc}, {ldDst})");
        }
    }

    private delegate void MicroKernelFn(int kc, ref float a, ref float b, ref float c, int ldc, bool accumulate);

    private static void CheckMicroKernel(MicroKernelFn kernel, string name)
    {
        const int MR = Sgemm.MR, NR = Sgemm.NR;
        var rng = new Random(31);
        foreach (int kc in new[] { 0, 1, 2, 3, 4, 7, 8, 33 })
            foreach (int ldc in new[] { NR, NR + 5 })
                foreach (bool acc in new[] { false, true })
                {
                    var ap = TestData.Uniform(rng, Math.Max(kc, 1) * MR);
                    var bp = TestData.Uniform(rng, Math.Max(kc, 1) * NR);
                    var c = new StridedMatrix(MR, NR, ldc);
                    var c0 = new double[MR * NR];
                    for (int i = 0; i < MR; i++)
                        for (int j = 0; j < NR; j++)
                        {
                            float v = acc ? (float)rng.NextDouble() : float.NaN;
                            c[i, j] = v;
                            c0[i * NR + j] = acc ? v : 0;
                        }
                    kernel(kc, ref ap[0], ref bp[0], ref MemoryMarshal.GetReference(c.Span), ldc, acc);
                    var expected = new double[MR * NR];
                    var scale = new double[MR * NR];
                    var got = new float[MR * NR];
                    for (int i = 0; i < MR; i++)
                        for (int j = 0; j < NR; j++)
                        {
                            double s = c0[i * NR + j], mag = Math.Abs(s);
                            for (int p = 0; p < kc; p++) { s += (double)ap[p * MR + i] * bp[p * NR + j]; mag += Math.Abs((double)ap[p * MR + i] * bp[p * NR + j]); }
                            expected[i * NR + j] = s;
                            scale[i * NR + j] = mag;
                            got[i * NR + j] = c[i, j];
                        }
                    var tol = scale.Select(x => Close.SumTolerance(kc + 1, x)).ToArray();
                    string what = $"{name} kc={kc} ldc={ldc} acc={acc}";
                    Close.All(got, expected, tol, what);
                    c.AssertPaddingUntouched(what);
                }
    }

    [Test]
    public void ScalarMicroKernelMatchesThePanelContract() => CheckMicroKernel(Sgemm.Kernel6x16Scalar, "scalar 6x16");

    [Test]
    public void DispatchedMicroKernelMatchesThePanelContract() => CheckMicroKernel(Sgemm.MicroKernel, $"{Engine.PathName} 6x16");

    [Test]
    public void Avx2MicroKernelMatchesThePanelContract()
    {
        if (!(Avx2.IsSupported && Fma.IsSupported)) Assert.Ignore("AVX2/FMA not available in this process");
        CheckMicroKernel(Sgemm.Kernel6x16Avx2, "avx2 6x16");
    }

    [TestCase(false, false, 37, 700)]
    [TestCase(false, true, 37, 700)]
    [TestCase(true, false, 70, 33)]
    [TestCase(true, true, 17, 1)]
    [TestCase(false, true, 129, 3136)]
    [TestCase(false, true, 1, 784)]   // one column of op(B) read in place from B's row (a single-unit dense layer)
    [TestCase(true, true, 1, 300)]
    [TestCase(false, false, 217, 300)] // B read by rows: 128-, 64-, 16-column chains and single columns
    [TestCase(true, false, 130, 50)]
    [TestCase(false, true, 1, 3136)]  // fewer than 8 columns over 10 depth blocks: chains of 4, 4 and 2 blocks interleaved
    [TestCase(false, false, 7, 961)]  // 4 blocks, the first one deeper
    [TestCase(true, true, 3, 1283)]   // 5 blocks, three deeper
    [TestCase(true, false, 5, 641)]   // 3 blocks, the first one deeper
    public void ARowGetsTheSameBitsAloneOrAmongMany(bool transA, bool transB, int n, int k)
    {
        ARowGetsTheSameBits(transA, transB, n, k, accumulate: false);
        ARowGetsTheSameBits(transA, transB, n, k, accumulate: true);
    }

    private static void ARowGetsTheSameBits(bool transA, bool transB, int n, int k, bool accumulate)
    {
        // A prediction must not depend on the batch it is computed in: rows computed one to five at a time (fewer than a
        // register strip) equal, bit for bit, the same rows computed among 13 by the register tiles; with an epilogue,
        // and added to C's values when accumulating.
        const int m = 13;
        var rng = new Random(n * 7 + k);
        var a = TestData.Uniform(rng, m * k);
        var b = TestData.Uniform(rng, n * k);
        var bias = TestData.Uniform(rng, n);
        int lda = transA ? m : k, ldb = transB ? k : n;
        // The clamp cuts about a third of the sums (standard deviation sqrt(k) / 3) and leaves the rest to compare.
        float sd = MathF.Sqrt(k) / 3f;
        var epi = new GemmEpilogue(BiasMode.PerColumn, bias, 0, -0.5f * sd, sd);
        var c0 = TestData.Uniform(rng, m * n);
        var all = accumulate ? (float[])c0.Clone() : new float[m * n];
        var ws = new float[Sgemm.WorkspaceSize(m, n, k)];
        Sgemm.Multiply(transA, transB, m, n, k, a, lda, b, ldb, all, n, accumulate, ws, in epi);
        foreach (int rows in new[] { 1, 2, 3, 5 })
            for (int i0 = 0; i0 + rows <= m; i0 += rows)
            {
                // op(A) rows i0.. as their own matrix.
                var sub = new float[rows * k];
                for (int r = 0; r < rows; r++)
                    for (int p = 0; p < k; p++) sub[r * k + p] = transA ? a[p * m + i0 + r] : a[(i0 + r) * k + p];
                var got = accumulate ? c0.AsSpan(i0 * n, rows * n).ToArray() : new float[rows * n];
                var ws2 = new float[Sgemm.WorkspaceSize(rows, n, k)];
                Sgemm.Multiply(false, transB, rows, n, k, sub, k, b, ldb, got, n, accumulate, ws2, in epi);
                for (int r = 0; r < rows; r++)
                    for (int j = 0; j < n; j++)
                        Assert.That(BitConverter.SingleToInt32Bits(got[r * n + j]), Is.EqualTo(BitConverter.SingleToInt32Bits(all[(i0 + r) * n + j])),
                            $"row {i0 + r} computed {rows} at a time, column {j}, accumulate {accumulate}: {got[r * n + j]:R} vs {all[(i0 + r) * n + j]:R}");
            }
    }
}
