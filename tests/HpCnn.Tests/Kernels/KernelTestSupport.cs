using System.Text;

namespace HpCnn.Tests.Kernels;

/// <summary>Deterministic test data (System.Random with a fixed seed: the values only need to be fixed, not portable).</summary>
internal static class TestData
{
    public static float[] Uniform(Random rng, int n, float lo = -1f, float hi = 1f)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = lo + (hi - lo) * (float)rng.NextDouble();
        return a;
    }

    public static float[] Uniform(int seed, int n, float lo = -1f, float hi = 1f) => Uniform(new Random(seed), n, lo, hi);

    public static int[] Labels(Random rng, int n, int classes)
    {
        var a = new int[n];
        for (int i = 0; i < n; i++) a[i] = rng.Next(classes);
        return a;
    }

    public static float[] Abs(ReadOnlySpan<float> x)
    {
        var a = new float[x.Length];
        for (int i = 0; i < a.Length; i++) a[i] = MathF.Abs(x[i]);
        return a;
    }
}

/// <summary>
/// Sentinels: floats no kernel can produce (a NaN with a private payload), placed after outputs and in the
/// gaps between rows. Bit-compared, so "untouched" means not written at all. In inputs the same marker
/// poisons any element a kernel should not read: a NaN read into a sum shows up in the result.
/// </summary>
internal static class Sentinel
{
    public const int Guard = 37;
    public static readonly float Marker = BitConverter.Int32BitsToSingle(0x7FC0_1234);
    public const int IntMarker = unchecked((int)0xDEADBEEF);

    public static bool IsMarker(float v) => BitConverter.SingleToInt32Bits(v) == 0x7FC0_1234;

    /// <summary>An array of <paramref name="length"/> payload floats followed by <see cref="Guard"/> markers; the payload is markers too.</summary>
    public static float[] Buffer(int length)
    {
        var a = new float[length + Guard];
        a.AsSpan().Fill(Marker);
        return a;
    }

    /// <summary>An array holding <paramref name="values"/> followed by <see cref="Guard"/> markers.</summary>
    public static float[] Wrap(ReadOnlySpan<float> values)
    {
        var a = Buffer(values.Length);
        values.CopyTo(a);
        return a;
    }

    public static int[] IntBuffer(int length)
    {
        var a = new int[length + Guard];
        a.AsSpan().Fill(IntMarker);
        return a;
    }

    /// <summary>Asserts every element in [from, buffer.Length) is still the marker.</summary>
    public static void AssertTail(float[] buffer, int from, string what)
    {
        for (int i = from; i < buffer.Length; i++)
            if (!IsMarker(buffer[i]))
                Assert.Fail($"{what}: sentinel at {i} (payload ends at {from}) was overwritten with {buffer[i]}");
    }

    public static void AssertTail(int[] buffer, int from, string what)
    {
        for (int i = from; i < buffer.Length; i++)
            if (buffer[i] != IntMarker)
                Assert.Fail($"{what}: sentinel at {i} (payload ends at {from}) was overwritten with {buffer[i]}");
    }

    /// <summary>Asserts every element for which <paramref name="isPayload"/> is false is still the marker.</summary>
    public static void AssertOutside(float[] buffer, Func<int, bool> isPayload, string what)
    {
        for (int i = 0; i < buffer.Length; i++)
            if (!isPayload(i) && !IsMarker(buffer[i]))
                Assert.Fail($"{what}: sentinel at {i} was overwritten with {buffer[i]}");
    }
}

/// <summary>A row-major matrix inside a larger array: row gaps (ld &gt; cols) and a guard after the last row hold markers.</summary>
internal sealed class StridedMatrix
{
    public readonly int Rows, Cols, Ld;
    public readonly float[] Data;

    public StridedMatrix(int rows, int cols, int ld)
    {
        Rows = rows; Cols = cols; Ld = ld;
        int need = rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
        Data = Sentinel.Buffer(need);
    }

    public static StridedMatrix Random(Random rng, int rows, int cols, int ld, float lo = -1f, float hi = 1f)
    {
        var m = new StridedMatrix(rows, cols, ld);
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++)
                m[i, j] = lo + (hi - lo) * (float)rng.NextDouble();
        return m;
    }

    /// <summary>The span a kernel gets: exactly (rows-1)*ld + cols floats, the guard excluded.</summary>
    public Span<float> Span => Data.AsSpan(0, Data.Length - Sentinel.Guard);

    public ref float this[int i, int j] => ref Data[i * Ld + j];

    public bool IsPayload(int index)
    {
        if (index >= Data.Length - Sentinel.Guard) return false;
        return index % Ld < Cols;
    }

    public void AssertPaddingUntouched(string what) => Sentinel.AssertOutside(Data, IsPayload, what);
}

/// <summary>Element-wise comparison against a double-precision oracle with a per-element tolerance.</summary>
internal static class Close
{
    /// <summary>Asserts |actual[i] - expected[i]| &lt;= tol[i] for every i (NaN always fails), naming the first bad index.</summary>
    public static void All(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, ReadOnlySpan<double> tol, string what,
        Func<int, string>? describe = null)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), $"{what}: length");
        int bad = 0, first = -1;
        double worst = 0;
        for (int i = 0; i < actual.Length; i++)
        {
            if (actual[i] == expected[i]) continue; // also equal infinities
            double err = Math.Abs(actual[i] - expected[i]);
            if (!(err <= tol[i]))
            {
                if (first < 0) first = i;
                bad++;
            }
            else if (tol[i] > 0) worst = Math.Max(worst, err / tol[i]);
        }
        if (bad > 0)
        {
            var sb = new StringBuilder();
            sb.Append($"{what}: {bad} of {actual.Length} elements out of tolerance; first at {first}");
            if (describe is not null) sb.Append($" ({describe(first)})");
            sb.Append($": got {actual[first]:R}, expected {expected[first]:R}, tolerance {tol[first]:G3}");
            Assert.Fail(sb.ToString());
        }
    }

    /// <summary>Same, with tol[i] = rel * scale[i] + abs.</summary>
    public static void All(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, ReadOnlySpan<double> scale, double rel, double abs,
        string what, Func<int, string>? describe = null)
    {
        var tol = new double[scale.Length];
        for (int i = 0; i < tol.Length; i++) tol[i] = rel * scale[i] + abs;
        All(actual, expected, tol, what, describe);
    }

    /// <summary>Same, with tol[i] = rel * |expected[i]| + abs.</summary>
    public static void All(ReadOnlySpan<float> actual, ReadOnlySpan<double> expected, double rel, double abs, string what,
        Func<int, string>? describe = null)
    {
        var tol = new double[expected.Length];
        for (int i = 0; i < tol.Length; i++) tol[i] = rel * Math.Abs(expected[i]) + abs;
        All(actual, expected, tol, what, describe);
    }

    public static void All(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double rel, double abs, string what,
        Func<int, string>? describe = null)
    {
        var e = new double[expected.Length];
        for (int i = 0; i < e.Length; i++) e[i] = expected[i];
        All(actual, e, rel, abs, what, describe);
    }

    public static double[] ToDouble(ReadOnlySpan<float> x)
    {
        var d = new double[x.Length];
        for (int i = 0; i < d.Length; i++) d[i] = x[i];
        return d;
    }

    /// <summary>
    /// Rounding-error budget of a float sum of <paramref name="terms"/> products whose absolute values add up to
    /// <paramref name="absSum"/>: a generous multiple of the statistical bound sqrt(n) u, well below the size of
    /// any real error (a missing or misplaced term).
    /// </summary>
    public static double SumTolerance(int terms, double absSum) => 2e-6 * Math.Sqrt(Math.Max(terms, 1)) * absSum + 1e-6;
}
