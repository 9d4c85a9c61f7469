using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// SGD and Adam against a scalar transcription of PyTorch's update rules (torch.optim.SGD with dampening 0,
/// torch.optim.Adam without amsgrad; weight decay added to the gradient), in double, over several steps and for
/// every length 0..40 (vector body and tail).
/// </summary>
public class OptimizerKernelsTests
{
    private const int MaxLength = 40;
    private const int Steps = 3;

    /// <summary>
    /// torch.optim.SGD, one parameter:
    ///   d_p = g + wd * p
    ///   if momentum != 0: buf = d_p (first step) else momentum * buf + d_p; d_p = nesterov ? d_p + momentum * buf : buf
    ///   p -= lr * d_p
    /// </summary>
    /// <remarks>
    /// Alongside, the magnitudes of the terms (the same sums over absolute values) bound the rounding error
    /// of each result, however much the terms cancel.
    /// </remarks>
    private static void TorchSgd(double[] p, float[] g, double[]? buf, int step, double lr, double momentum, bool nesterov, double wd,
        double[] moved, double[] bufMag)
    {
        for (int i = 0; i < p.Length; i++)
        {
            double d = g[i] + wd * p[i], dMag = Math.Abs(g[i]) + Math.Abs(wd * p[i]);
            if (momentum != 0)
            {
                buf![i] = step == 0 ? d : momentum * buf[i] + d;
                bufMag[i] = step == 0 ? dMag : momentum * bufMag[i] + dMag;
                (d, dMag) = nesterov ? (d + momentum * buf[i], dMag + momentum * bufMag[i]) : (buf[i], bufMag[i]);
            }
            p[i] -= lr * d;
            moved[i] += lr * dMag;
        }
    }

    /// <summary>
    /// torch.optim.Adam, one parameter, step t (1-based):
    ///   g = g + wd * p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2
    ///   denom = sqrt(v) / sqrt(1 - b2^t) + eps; p -= lr / (1 - b1^t) * m / denom
    /// </summary>
    private static void TorchAdam(double[] p, float[] g, double[] m, double[] v, int t, double lr, double b1, double b2, double eps, double wd,
        double[] moved, double[] mMag)
    {
        double bc1 = 1 - Math.Pow(b1, t), bc2 = 1 - Math.Pow(b2, t);
        for (int i = 0; i < p.Length; i++)
        {
            double gi = g[i] + wd * p[i];
            m[i] = b1 * m[i] + (1 - b1) * gi;
            mMag[i] = b1 * mMag[i] + (1 - b1) * (Math.Abs(g[i]) + Math.Abs(wd * p[i]));
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            double denom = Math.Sqrt(v[i]) / Math.Sqrt(bc2) + eps;
            p[i] -= lr / bc1 * m[i] / denom;
            moved[i] += lr / bc1 * mMag[i] / denom;
        }
    }

    /// <summary>Gradients with a few tiny entries (where eps matters) and a few large ones.</summary>
    private static float[] Gradient(Random rng, int n)
    {
        var g = new float[n];
        for (int i = 0; i < n; i++)
            g[i] = rng.Next(6) switch
            {
                0 => (float)(rng.NextDouble() - 0.5) * 1e-6f,
                1 => (float)(rng.NextDouble() - 0.5) * 20f,
                _ => (float)(rng.NextDouble() * 2 - 1),
            };
        return g;
    }

    private static double[] Tolerance(double[] start, double[] expected, double[] moved)
    {
        // A few float roundings of the weight per step, plus a relative error on the total update.
        var tol = new double[expected.Length];
        for (int i = 0; i < tol.Length; i++)
            tol[i] = Steps * 4 * 6e-8 * (Math.Abs(start[i]) + Math.Abs(expected[i])) + 1e-5 * moved[i] + 1e-12;
        return tol;
    }

    private static IEnumerable<TestCaseData> SgdConfigs()
    {
        yield return new TestCaseData(0.1f, 0f, false, 0f).SetArgDisplayNames("plain");
        yield return new TestCaseData(0.05f, 0f, false, 1e-2f).SetArgDisplayNames("weight decay");
        yield return new TestCaseData(0.1f, 0.9f, false, 0f).SetArgDisplayNames("momentum 0.9");
        yield return new TestCaseData(0.1f, 0.9f, true, 0f).SetArgDisplayNames("nesterov 0.9");
        yield return new TestCaseData(0.02f, 0.9f, true, 5e-4f).SetArgDisplayNames("nesterov 0.9 + weight decay");
        yield return new TestCaseData(0.02f, 0.5f, false, 1e-1f).SetArgDisplayNames("momentum 0.5 + weight decay");
    }

    [TestCaseSource(nameof(SgdConfigs))]
    public void SgdMatchesPyTorch(float lr, float momentum, bool nesterov, float weightDecay)
    {
        for (int n = 0; n <= MaxLength; n++)
        {
            var rng = new Random(n);
            string what = $"SGD lr={lr} momentum={momentum} nesterov={nesterov} wd={weightDecay} n={n}";
            var w0 = TestData.Uniform(rng, n, -2f, 2f);
            var w = Sentinel.Wrap(w0);
            var vel = Sentinel.Buffer(n);
            if (momentum != 0) Array.Clear(vel, 0, n); // the velocity starts at zero; with momentum 0 it must not be touched at all
            var p = Close.ToDouble(w0);
            var buf = new double[n];
            var bufMag = new double[n];
            var moved = new double[n];
            for (int step = 0; step < Steps; step++)
            {
                var g = Gradient(rng, n);
                TorchSgd(p, g, momentum != 0 ? buf : null, step, lr, momentum, nesterov, weightDecay, moved, bufMag);
                OptimizerKernels.Sgd(w.AsSpan(0, n), Sentinel.Wrap(g).AsSpan(0, n), vel.AsSpan(0, n), lr, momentum, nesterov, weightDecay);
            }
            Close.All(w.AsSpan(0, n), p, Tolerance(Close.ToDouble(w0), p, moved), what + " (weights)");
            Sentinel.AssertTail(w, n, what + " (weights)");
            if (momentum != 0)
            {
                Close.All(vel.AsSpan(0, n), buf, bufMag, 1e-6, 1e-12, what + " (velocity)");
                Sentinel.AssertTail(vel, n, what + " (velocity)");
            }
            else Sentinel.AssertTail(vel, 0, what + " (velocity must be untouched without momentum)");
        }
    }

    [Test]
    public void SgdWithoutMomentumAcceptsAnEmptyVelocity()
    {
        var w = new[] { 1f, -2f, 3f, 0.5f, 1f, 1f, 1f, 1f, 1f };
        var g = new[] { 0.5f, 0.5f, -1f, 0f, 1f, 2f, 3f, 4f, 5f };
        var expected = w.Select((v, i) => v - 0.1 * g[i]).ToArray();
        OptimizerKernels.Sgd(w, g, Span<float>.Empty, 0.1f, 0f, false, 0f);
        Close.All(w, expected, 1e-6, 1e-7, "SGD without velocity");
        Assert.That(() => OptimizerKernels.Sgd(w, g, Span<float>.Empty, 0.1f, 0.9f, false, 0f), Throws.ArgumentException);
        Assert.That(() => OptimizerKernels.Sgd(w, g.AsSpan(0, 8), Span<float>.Empty, 0.1f, 0f, false, 0f), Throws.ArgumentException);
    }

    private static IEnumerable<TestCaseData> AdamConfigs()
    {
        yield return new TestCaseData(1e-3f, 0.9f, 0.999f, 1e-8f, 0f).SetArgDisplayNames("defaults");
        yield return new TestCaseData(1e-2f, 0.9f, 0.999f, 1e-6f, 1e-2f).SetArgDisplayNames("weight decay, eps 1e-6");
        yield return new TestCaseData(5e-2f, 0.5f, 0.9f, 1e-3f, 0f).SetArgDisplayNames("short memory, large eps");
    }

    [TestCaseSource(nameof(AdamConfigs))]
    public void AdamMatchesPyTorch(float lr, float beta1, float beta2, float eps, float weightDecay)
    {
        for (int n = 0; n <= MaxLength; n++)
        {
            var rng = new Random(100 + n);
            string what = $"Adam lr={lr} betas=({beta1},{beta2}) eps={eps} wd={weightDecay} n={n}";
            var w0 = TestData.Uniform(rng, n, -2f, 2f);
            var w = Sentinel.Wrap(w0);
            var m = Sentinel.Buffer(n);
            var v = Sentinel.Buffer(n);
            Array.Clear(m, 0, n);
            Array.Clear(v, 0, n);
            var p = Close.ToDouble(w0);
            var em = new double[n];
            var ev = new double[n];
            var moved = new double[n];
            var mMag = new double[n];
            for (int t = 1; t <= Steps; t++)
            {
                var g = Gradient(rng, n);
                TorchAdam(p, g, em, ev, t, lr, beta1, beta2, eps, weightDecay, moved, mMag);
                // The caller supplies the bias corrections of step t (computed in double: 1 - 0.999^t in float loses digits).
                float c1 = (float)(1 - Math.Pow(beta1, t)), c2 = (float)(1 - Math.Pow(beta2, t));
                OptimizerKernels.Adam(w.AsSpan(0, n), Sentinel.Wrap(g).AsSpan(0, n), m.AsSpan(0, n), v.AsSpan(0, n), lr, beta1, beta2, eps, weightDecay, c1, c2);
            }
            Close.All(w.AsSpan(0, n), p, Tolerance(Close.ToDouble(w0), p, moved), what + " (weights)");
            Close.All(m.AsSpan(0, n), em, mMag, 1e-6, 1e-15, what + " (first moment)");
            Close.All(v.AsSpan(0, n), ev, 1e-5, 1e-18, what + " (second moment)");
            Sentinel.AssertTail(w, n, what + " (weights)");
            Sentinel.AssertTail(m, n, what + " (first moment)");
            Sentinel.AssertTail(v, n, what + " (second moment)");
        }
    }

    [Test]
    public void AdamRejectsShortState()
    {
        var w = new float[9];
        Assert.That(() => OptimizerKernels.Adam(w, new float[9], new float[8], new float[9], 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 0.1f, 0.001f), Throws.ArgumentException);
        Assert.That(() => OptimizerKernels.Adam(w, new float[9], new float[9], new float[8], 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 0.1f, 0.001f), Throws.ArgumentException);
        Assert.That(() => OptimizerKernels.Adam(w, new float[8], new float[9], new float[9], 1e-3f, 0.9f, 0.999f, 1e-8f, 0f, 0.1f, 0.001f), Throws.ArgumentException);
    }
}
