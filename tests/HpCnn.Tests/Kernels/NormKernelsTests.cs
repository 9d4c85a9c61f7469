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
    public void ChannelStatsMatchTheFormula()
    {
        var rng = new Random(3);
        foreach (var (batch, channels, plane) in new[] { (1, 1, 1), (3, 4, 17), (2, 3, 196), (5, 2, 1) })
        {
            var x = TestData.Uniform(rng, batch * channels * plane, -1f, 5f);
            for (int c = 0; c < channels; c++)
            {
                var (mean, var) = NormKernels.ChannelStats(x, batch, channels, plane, c);
                var (em, ev) = Stats(x, batch, channels, plane, c);
                Assert.That(mean, Is.EqualTo(em).Within(1e-6 * (1 + Math.Abs(em))), $"mean of channel {c}, {batch}x{channels}x{plane}");
                Assert.That(var, Is.EqualTo(ev).Within(1e-6 * (1 + ev)), $"variance of channel {c}, {batch}x{channels}x{plane}");
            }
        }
    }

    [Test]
    public void ChannelAffineWritesOnlyItsChannel()
    {
        var rng = new Random(4);
        int batch = 3, channels = 4, plane = 19, c = 2;
        var x = TestData.Uniform(rng, batch * channels * plane, -2f, 4f);
        float mean = 0.7f, inv = 1.9f, gamma = -1.3f, beta = 0.4f;
        var y = Sentinel.Buffer(batch * channels * plane);
        NormKernels.ChannelAffine(x, y.AsSpan(0, x.Length), batch, channels, plane, c, mean, inv, gamma, beta);
        for (int n = 0; n < batch; n++)
            for (int ch = 0; ch < channels; ch++)
                for (int i = 0; i < plane; i++)
                {
                    int idx = (n * channels + ch) * plane + i;
                    if (ch != c)
                    {
                        Assert.That(Sentinel.IsMarker(y[idx]), Is.True, $"image {n}, channel {ch} (not {c}) was written");
                        continue;
                    }
                    double e = gamma * (x[idx] - (double)mean) * inv + beta;
                    double tol = 1e-6 * (Math.Abs(gamma * inv) * (Math.Abs(x[idx]) + Math.Abs(mean)) + Math.Abs(beta)) + 1e-7;
                    Assert.That(y[idx], Is.EqualTo(e).Within(tol), $"image {n}, element {i}");
                }
        Sentinel.AssertTail(y, x.Length, "channel affine");
    }

    /// <summary>f = sum over channel c of dy * BN(x), training mode (batch statistics), in double.</summary>
    private static double BatchNormObjective(float[] x, float[] dy, int batch, int channels, int plane, int c, double gamma, double beta)
    {
        var (mean, var) = Stats(x, batch, channels, plane, c);
        double inv = 1 / Math.Sqrt(var + Eps), f = 0;
        for (int n = 0; n < batch; n++)
            for (int i = 0; i < plane; i++)
            {
                int idx = (n * channels + c) * plane + i;
                f += dy[idx] * (gamma * (x[idx] - mean) * inv + beta);
            }
        return f;
    }

    [Test]
    public void BatchNormBackwardMatchesTheFormulaAndFiniteDifferences([Values] bool needInputGrad)
    {
        var rng = new Random(needInputGrad ? 5 : 6);
        foreach (var (batch, channels, plane) in new[] { (3, 4, 10), (2, 3, 17), (8, 2, 1) })
            for (int c = 0; c < channels; c++)
            {
                string what = $"batch norm backward {batch}x{channels}x{plane} channel {c}";
                var x = TestData.Uniform(rng, batch * channels * plane, -1f, 3f);
                var dy = TestData.Uniform(rng, batch * channels * plane);
                var (m, v) = NormKernels.ChannelStats(x, batch, channels, plane, c);
                float mean = (float)m, inv = (float)(1 / Math.Sqrt(v + Eps)), gamma = 1.3f, beta = -0.2f;
                var dx = Sentinel.Buffer(x.Length);
                var (dGamma, dBeta) = NormKernels.BatchNormBackward(Sentinel.Wrap(x).AsSpan(0, x.Length), Sentinel.Wrap(dy).AsSpan(0, dy.Length),
                    dx.AsSpan(0, x.Length), batch, channels, plane, c, mean, inv, gamma, needInputGrad);

                double sumDy = 0, sumDyXhat = 0, absDy = 0;
                int count = batch * plane;
                for (int n = 0; n < batch; n++)
                    for (int i = 0; i < plane; i++)
                    {
                        int idx = (n * channels + c) * plane + i;
                        sumDy += dy[idx];
                        sumDyXhat += dy[idx] * (x[idx] - m) * inv;
                        absDy += Math.Abs(dy[idx]);
                    }
                Assert.That(dBeta, Is.EqualTo(sumDy).Within(1e-5 * absDy), what + " (dbeta)");
                Assert.That(dGamma, Is.EqualTo(sumDyXhat).Within(1e-5 * absDy * 3), what + " (dgamma)");
                // dgamma and dbeta are the derivatives of the objective in gamma and beta.
                double h = 1e-3;
                double fdGamma = (BatchNormObjective(x, dy, batch, channels, plane, c, gamma + h, beta) - BatchNormObjective(x, dy, batch, channels, plane, c, gamma - h, beta)) / (2 * h);
                double fdBeta = (BatchNormObjective(x, dy, batch, channels, plane, c, gamma, beta + h) - BatchNormObjective(x, dy, batch, channels, plane, c, gamma, beta - h)) / (2 * h);
                Assert.That(dGamma, Is.EqualTo(fdGamma).Within(1e-4 * absDy * 3), what + " (dgamma vs finite differences)");
                Assert.That(dBeta, Is.EqualTo(fdBeta).Within(1e-4 * absDy), what + " (dbeta vs finite differences)");

                if (!needInputGrad)
                {
                    Sentinel.AssertTail(dx, 0, what + " (no input gradient requested)");
                    continue;
                }
                // dx = gamma inv / M (M dy - sum dy - xhat sum(dy xhat)) on channel c; nothing elsewhere.
                var fd = FiniteDifferences(x, xx => BatchNormObjective(xx, dy, batch, channels, plane, c, gamma, beta), 1e-3f);
                for (int n = 0; n < batch; n++)
                    for (int ch = 0; ch < channels; ch++)
                        for (int i = 0; i < plane; i++)
                        {
                            int idx = (n * channels + ch) * plane + i;
                            if (ch != c)
                            {
                                Assert.That(Sentinel.IsMarker(dx[idx]), Is.True, $"{what}: image {n}, channel {ch} was written");
                                continue;
                            }
                            double xhat = (x[idx] - m) * inv;
                            double e = gamma * inv / count * (count * dy[idx] - sumDy - xhat * sumDyXhat);
                            double scale = Math.Abs(gamma) * inv * (Math.Abs(dy[idx]) + (absDy + Math.Abs(xhat) * absDy * 3) / count);
                            Assert.That(dx[idx], Is.EqualTo(e).Within(1e-5 * scale + 1e-7), $"{what}: image {n}, element {i} (formula)");
                            Assert.That(dx[idx], Is.EqualTo(fd[idx]).Within(1e-3 * scale + 1e-6), $"{what}: image {n}, element {i} (finite differences)");
                        }
                Sentinel.AssertTail(dx, x.Length, what);
            }
    }

    [Test]
    public void BatchNormBackwardMatchesFiniteDifferencesOfTheKernelForward()
    {
        // Through ChannelStats + ChannelAffine themselves, in float (loose tolerance).
        var rng = new Random(7);
        int batch = 3, channels = 2, plane = 6, c = 1;
        float gamma = 0.8f, beta = 0.1f;
        var x = TestData.Uniform(rng, batch * channels * plane, -1f, 2f);
        var dy = TestData.Uniform(rng, x.Length);
        var y = new float[x.Length];
        double Objective(float[] xx)
        {
            var (m, v) = NormKernels.ChannelStats(xx, batch, channels, plane, c);
            NormKernels.ChannelAffine(xx, y, batch, channels, plane, c, (float)m, (float)(1 / Math.Sqrt(v + Eps)), gamma, beta);
            double f = 0;
            for (int n = 0; n < batch; n++)
                for (int i = 0; i < plane; i++) f += (double)dy[(n * channels + c) * plane + i] * y[(n * channels + c) * plane + i];
            return f;
        }
        var fd = FiniteDifferences(x, Objective, 2e-2f);
        var (mean, var) = NormKernels.ChannelStats(x, batch, channels, plane, c);
        var dx = new float[x.Length];
        NormKernels.BatchNormBackward(x, dy, dx, batch, channels, plane, c, (float)mean, (float)(1 / Math.Sqrt(var + Eps)), gamma, true);
        for (int n = 0; n < batch; n++)
            for (int i = 0; i < plane; i++)
            {
                int idx = (n * channels + c) * plane + i;
                Assert.That(dx[idx], Is.EqualTo(fd[idx]).Within(5e-3 + 2e-2 * Math.Abs(fd[idx])), $"image {n}, element {i}");
            }
    }
}
