using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// Per-plane normalisation and batch normalisation against double formulas, and their backward passes against
/// central finite differences (of a double forward, tightly; and of the kernels' own forward, loosely).
/// </summary>
public class NormKernelsTests
{
    private const float Eps = 1e-5f;

    private static (double[] Y, double Inv) PlaneNorm(ReadOnlySpan<float> x, double eps)
    {
        int n = x.Length;
        double mean = 0;
        foreach (float v in x) mean += v;
        mean /= n;
        double var = 0;
        foreach (float v in x) var += (v - mean) * (v - mean);
        var /= n;
        double inv = 1 / Math.Sqrt(var + eps);
        var y = new double[n];
        for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv;
        return (y, inv);
    }

    private static double[] FiniteDifferences(float[] x, Func<float[], double> f, float h)
    {
        var g = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            float keep = x[i];
            x[i] = keep + h; float up = x[i];
            double fp = f(x);
            x[i] = keep - h; float down = x[i];
            double fm = f(x);
            x[i] = keep;
            g[i] = (fp - fm) / ((double)up - down);
        }
        return g;
    }

    [Test]
    public void PlaneNormForwardMatchesTheFormula()
    {
        var rng = new Random(1);
        foreach (int n in new[] { 1, 2, 5, 17, 196, 784 })
        {
            string what = $"plane norm n={n}";
            var x = TestData.Uniform(rng, n, 1f, 5f); // mean far from zero: the mean really has to be taken out
            var y = Sentinel.Buffer(n);
            float inv = NormKernels.PlaneNormForward(Sentinel.Wrap(x).AsSpan(0, n), y.AsSpan(0, n), Eps);
            var (ey, einv) = PlaneNorm(x, Eps);
            Assert.That(inv, Is.EqualTo(einv).Within(1e-5 * einv), what + " (1/std)");
            Close.All(y.AsSpan(0, n), ey, 1e-5, 1e-5, what);
            Sentinel.AssertTail(y, n, what);
        }
        // A constant plane normalises to zeros (variance 0, eps keeps it finite).
        var c = Enumerable.Repeat(3.25f, 20).ToArray();
        var yc = new float[20];
        float ic = NormKernels.PlaneNormForward(c, yc, Eps);
        Assert.That(yc, Is.All.EqualTo(0f));
        Assert.That(ic, Is.EqualTo(1 / Math.Sqrt(Eps)).Within(1e-3));
    }

    [Test]
    public void PlaneNormBackwardMatchesTheFormulaAndFiniteDifferences()
    {
        var rng = new Random(2);
        foreach (int n in new[] { 2, 5, 17, 196 })
        {
            string what = $"plane norm backward n={n}";
            var x = TestData.Uniform(rng, n, -1f, 3f);
            var dy = TestData.Uniform(rng, n);
            var y = new float[n];
            float inv = NormKernels.PlaneNormForward(x, y, Eps);
            var dx = Sentinel.Buffer(n);
            NormKernels.PlaneNormBackward(Sentinel.Wrap(y).AsSpan(0, n), Sentinel.Wrap(dy).AsSpan(0, n), dx.AsSpan(0, n), inv);
            Sentinel.AssertTail(dx, n, what);

            // f(x) = sum dy_i y_i(x): gradient of the double forward.
            var fd = FiniteDifferences(x, xx =>
            {
                var (yy, _) = PlaneNorm(xx, Eps);
                double f = 0;
                for (int i = 0; i < n; i++) f += dy[i] * yy[i];
                return f;
            }, 1e-3f);
            var scale = new double[n];
            for (int i = 0; i < n; i++) scale[i] = inv * (Math.Abs(dy[i]) + 2);
            Close.All(dx.AsSpan(0, n), fd, scale, 1e-4, 1e-6, what + " (finite differences)");
        }

        // Loosely, through the kernel's own float forward.
        var x2 = TestData.Uniform(rng, 17, -1f, 3f);
        var dy2 = TestData.Uniform(rng, 17);
        var y2 = new float[17];
        float inv2 = NormKernels.PlaneNormForward(x2, y2, Eps);
        var dx2 = new float[17];
        NormKernels.PlaneNormBackward(y2, dy2, dx2, inv2);
        var yk = new float[17];
        var fdk = FiniteDifferences(x2, xx =>
        {
            NormKernels.PlaneNormForward(xx, yk, Eps);
            double f = 0;
            for (int i = 0; i < yk.Length; i++) f += (double)dy2[i] * yk[i];
            return f;
        }, 2e-2f);
        Close.All(dx2, fdk, 2e-2, 2e-3, "plane norm backward vs finite differences of the kernel forward");
    }

    private static (double Mean, double Var) Stats(float[] x, int batch, int channels, int plane, int c)
    {
        double sum = 0;
        for (int n = 0; n < batch; n++)
            for (int i = 0; i < plane; i++) sum += x[(n * channels + c) * plane + i];
        double mean = sum / (batch * plane), sq = 0;
        for (int n = 0; n < batch; n++)
            for (int i = 0; i < plane; i++) { double d = x[(n * channels + c) * plane + i] - mean; sq += d * d; }
        return (mean, sq / (batch * plane));
    }

    [Test]
    public void PlaneMomentsCombinedInOrderMatchTheBatchFormula()
    {
        var rng = new Random(3);
        foreach (var (batch, channels, plane) in new[] { (1, 1, 1), (3, 4, 17), (2, 3, 196), (5, 2, 1), (4, 2, 1024) })
        {
            // An offset far from zero: the combination must not lose the variance to cancellation.
            var x = TestData.Uniform(rng, batch * channels * plane, 95f, 101f);
            for (int c = 0; c < channels; c++)
            {
                var means = new double[batch];
                var m2s = new double[batch];
                for (int n = 0; n < batch; n++)
                {
                    var (m, m2) = NormKernels.PlaneMoments(x.AsSpan((n * channels + c) * plane, plane));
                    means[n] = m;
                    m2s[n] = m2;
                }
                var (mean, var) = NormKernels.CombineMoments(means, m2s, plane);
                var (em, ev) = Stats(x, batch, channels, plane, c);
                Assert.That(mean, Is.EqualTo(em).Within(1e-6 * Math.Abs(em)), $"mean of channel {c}, {batch}x{channels}x{plane}");
                Assert.That(var, Is.EqualTo(ev).Within(1e-4 * ev + 1e-9), $"variance of channel {c}, {batch}x{channels}x{plane}");
            }
        }
    }

    [Test]
    public void AffineClampIsOneFmaThenTheClamp()
    {
        var rng = new Random(4);
        foreach (int n in new[] { 0, 1, 7, 8, 9, 63, 100 })
        {
            var x = TestData.Uniform(rng, n, -3f, 3f);
            var y = Sentinel.Buffer(n);
            float scale = 1.7f, shift = -0.3f, lo = 0f, hi = 2.5f;
            NormKernels.AffineClamp(x, y.AsSpan(0, n), scale, shift, lo, hi);
            for (int i = 0; i < n; i++)
                Assert.That(y[i], Is.EqualTo(MathF.Min(MathF.Max(MathF.FusedMultiplyAdd(x[i], scale, shift), lo), hi)), $"n {n}, element {i}");
            Sentinel.AssertTail(y, n, "affine clamp");
        }
    }

    [TestCase(float.PositiveInfinity)]
    [TestCase(6f)]
    public void TheMaskFromTheInputIsTheMaskOfTheClampedOutput(float cap)
    {
        // The batch norm's backward takes the ReLU's mask from x (0 < fma(x, scale, shift) < cap) instead of from the
        // output the forward clamped: bit for bit the same gradient, including values that land exactly on 0 and on the
        // cap, NaN, infinities and negative zero, on every length (the vector body and the scalar tail).
        const float scale = 0.75f, shift = -1.5f;
        float[] special = [2f, 2f + 1e-7f, 2f - 1e-7f, 10f, 10f - 1e-6f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, -0f, 0f];
        var rng = new Random(17);
        foreach (int n in new[] { 1, 7, 8, 9, 16, 37, 64, 100 })
        {
            var x = new float[n];
            for (int i = 0; i < n; i++) x[i] = i % 3 == 0 ? special[(i / 3) % special.Length] : (float)(rng.NextDouble() * 24 - 8);
            var dy = TestData.Uniform(rng, n);
            dy[0] = -0f;
            var y = new float[n];
            NormKernels.AffineClamp(x, y, scale, shift, 0f, cap);
            var expected = new float[n];
            ActivationKernels.ReluBackward(y, dy, expected, cap);
            var g = Sentinel.Buffer(n);
            NormKernels.MaskedGradientFromInput(x, dy, g.AsSpan(0, n), scale, shift, cap);
            for (int i = 0; i < n; i++)
                Assert.That(BitConverter.SingleToInt32Bits(g[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected[i])), $"n {n}, element {i}, x {x[i]}");
            Sentinel.AssertTail(g, n, "mask from the input");
        }
    }

    [Test]
    public void PooledMaskedGradientSendsEachWindowsGradientToItsWinner()
    {
        // A 4x4 plane, windows of a 3x3 stride-1 pool (overlapping: winners can be shared, their gradients add up).
        float[] pooled = [0.5f, 2f, -1f, 0.7f];
        float[] grad = [1f, 10f, 100f, 1000f];
        int[] argmax = [5, 5, 10, 6];
        var g = TestData.Uniform(new Random(5), 16); // not zero to begin with
        NormKernels.PooledMaskedGradient(pooled, grad, argmax, g, cap: 1.5f);
        var expected = new float[16];
        expected[5] = 1f;   // window 0 (0.5 inside the ReLU's range); window 1's 2 is above the cap: masked
        expected[6] = 1000f; // window 3; window 2 (-1) is masked
        Assert.That(g, Is.EqualTo(expected));
        NormKernels.PooledMaskedGradient(pooled, grad, argmax, g, cap: float.NaN); // no ReLU: every window counts
        expected[5] = 11f;
        expected[10] = 100f;
        Assert.That(g, Is.EqualTo(expected));
    }
}
