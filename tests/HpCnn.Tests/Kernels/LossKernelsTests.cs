using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// Softmax and the losses against double-precision formulas written here, and every gradient against central
/// finite differences of the kernel's own loss value (so the value and the gradient are checked to belong together).
/// </summary>
public class LossKernelsTests
{
    private static readonly (int Rows, int Cols)[] Shapes = [(1, 1), (1, 2), (3, 10), (5, 17), (4, 7), (2, 256), (8, 3)];

    private static double[] SoftmaxRow(ReadOnlySpan<float> z)
    {
        double max = double.NegativeInfinity;
        foreach (float v in z) max = Math.Max(max, v);
        var p = new double[z.Length];
        double sum = 0;
        for (int i = 0; i < z.Length; i++) { p[i] = Math.Exp(z[i] - max); sum += p[i]; }
        for (int i = 0; i < z.Length; i++) p[i] /= sum;
        return p;
    }

    private static double[] Softmax(float[] z, int rows, int cols)
    {
        var p = new double[rows * cols];
        for (int r = 0; r < rows; r++) SoftmaxRow(z.AsSpan(r * cols, cols)).CopyTo(p, r * cols);
        return p;
    }

    /// <summary>Central difference of <paramref name="loss"/> in every coordinate of <paramref name="x"/> (x is restored).</summary>
    private static double[] FiniteDifferences(float[] x, Func<float[], double> loss, float h)
    {
        var g = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            float keep = x[i];
            x[i] = keep + h; float up = x[i];
            double lp = loss(x);
            x[i] = keep - h; float down = x[i];
            double lm = loss(x);
            x[i] = keep;
            g[i] = (lp - lm) / ((double)up - down); // the step actually taken in float
        }
        return g;
    }

    [Test]
    public void SoftmaxRowsSumToOneAndMatchTheFormula()
    {
        var rng = new Random(1);
        foreach (var (rows, cols) in Shapes)
        {
            string what = $"softmax {rows}x{cols}";
            var z = TestData.Uniform(rng, rows * cols, -5f, 5f);
            var p = Sentinel.Buffer(rows * cols);
            LossKernels.Softmax(Sentinel.Wrap(z).AsSpan(0, z.Length), p.AsSpan(0, rows * cols), rows, cols);
            Close.All(p.AsSpan(0, rows * cols), Softmax(z, rows, cols), 1e-5, 1e-8, what);
            for (int r = 0; r < rows; r++)
            {
                double sum = 0;
                for (int c = 0; c < cols; c++) sum += p[r * cols + c];
                Assert.That(sum, Is.EqualTo(1.0).Within(1e-5), $"{what}: row {r} sums to {sum}");
            }
            Sentinel.AssertTail(p, rows * cols, what);
        }
    }

    [Test]
    public void SoftmaxIsStableForHugeLogits()
    {
        float[] z =
        [
            1e4f, 1e4f - 1f, -1e4f, 0f, 1e4f,
            -1e4f, -1e4f, -1e4f, -1e4f, -1e4f + 2f,
            3e38f, -3e38f, 0f, 1f, 2f,
        ];
        var p = new float[z.Length];
        LossKernels.Softmax(z, p, 3, 5);
        Assert.That(p, Has.None.NaN);
        Close.All(p, Softmax(z, 3, 5), 1e-5, 1e-8, "softmax of huge logits");
        Assert.That(p[0], Is.EqualTo(p[4]), "equal logits, equal probabilities");
    }

    [Test]
    public void SoftmaxBackwardMatchesTheFormulaAndFiniteDifferences()
    {
        var rng = new Random(2);
        foreach (var (rows, cols) in Shapes)
        {
            string what = $"softmax backward {rows}x{cols}";
            var z = TestData.Uniform(rng, rows * cols, -3f, 3f);
            var dy = TestData.Uniform(rng, rows * cols);
            var y = new float[rows * cols];
            LossKernels.Softmax(z, y, rows, cols);
            var dx = Sentinel.Buffer(rows * cols);
            LossKernels.SoftmaxBackward(Sentinel.Wrap(y).AsSpan(0, y.Length), Sentinel.Wrap(dy).AsSpan(0, dy.Length), dx.AsSpan(0, rows * cols), rows, cols);
            Sentinel.AssertTail(dx, rows * cols, what);

            // dx_i = y_i (dy_i - sum_j dy_j y_j), from the kernel's own y.
            var expected = new double[rows * cols];
            for (int r = 0; r < rows; r++)
            {
                double dot = 0;
                for (int c = 0; c < cols; c++) dot += (double)dy[r * cols + c] * y[r * cols + c];
                for (int c = 0; c < cols; c++) expected[r * cols + c] = y[r * cols + c] * (dy[r * cols + c] - dot);
            }
            Close.All(dx.AsSpan(0, rows * cols), expected, 1e-5, 1e-7, what + " (formula)");

            // The gradient of f(z) = sum_i dy_i softmax(z)_i (double softmax, so the difference is exact enough).
            var fd = FiniteDifferences(z, zz =>
            {
                var p = Softmax(zz, rows, cols);
                double f = 0;
                for (int i = 0; i < p.Length; i++) f += dy[i] * p[i];
                return f;
            }, 1e-3f);
            Close.All(dx.AsSpan(0, rows * cols), fd, 1e-3, 1e-5, what + " (finite differences)");
        }
    }

    [Test]
    public void SoftmaxCrossEntropyMatchesTheFormula([Values] bool withGrad)
    {
        var rng = new Random(withGrad ? 3 : 4);
        foreach (var (rows, cols) in Shapes)
        {
            string what = $"softmax cross-entropy {rows}x{cols}";
            var z = TestData.Uniform(rng, rows * cols, -4f, 4f);
            var labels = TestData.Labels(rng, rows, cols);
            var probs = Sentinel.Buffer(rows * cols);
            var grad = Sentinel.Buffer(rows * cols);
            double loss = LossKernels.SoftmaxCrossEntropy(Sentinel.Wrap(z).AsSpan(0, z.Length), labels, probs.AsSpan(0, rows * cols),
                withGrad ? grad.AsSpan(0, rows * cols) : default, rows, cols);

            var p = Softmax(z, rows, cols);
            double expectedLoss = 0;
            for (int r = 0; r < rows; r++) expectedLoss -= Math.Log(p[r * cols + labels[r]]);
            expectedLoss /= rows;
            Assert.That(loss, Is.EqualTo(expectedLoss).Within(1e-6 * (1 + expectedLoss)), what + " (loss)");
            Close.All(probs.AsSpan(0, rows * cols), p, 1e-5, 1e-8, what + " (probabilities)");
            Sentinel.AssertTail(probs, rows * cols, what + " (probabilities)");
            if (withGrad)
            {
                var g = new double[rows * cols];
                for (int i = 0; i < g.Length; i++) g[i] = (p[i] - (labels[i / cols] == i % cols ? 1 : 0)) / rows;
                Close.All(grad.AsSpan(0, rows * cols), g, 1e-5, 1e-8, what + " (gradient)");
                Sentinel.AssertTail(grad, rows * cols, what + " (gradient)");
            }
            else Sentinel.AssertTail(grad, 0, what + " (no gradient requested)");
        }
    }

    [Test]
    public void SoftmaxCrossEntropyGradientMatchesFiniteDifferences()
    {
        var rng = new Random(5);
        foreach (var (rows, cols) in new[] { (1, 2), (5, 7), (3, 10) })
        {
            var z = TestData.Uniform(rng, rows * cols, -3f, 3f);
            var labels = TestData.Labels(rng, rows, cols);
            var probs = new float[rows * cols];
            var grad = new float[rows * cols];
            LossKernels.SoftmaxCrossEntropy(z, labels, probs, grad, rows, cols);
            var fd = FiniteDifferences(z, zz => LossKernels.SoftmaxCrossEntropy(zz, labels, probs, default, rows, cols), 1e-2f);
            Close.All(grad, fd, 2e-3, 2e-5, $"softmax cross-entropy {rows}x{cols} vs finite differences");
        }
    }

    [Test]
    public void SoftmaxCrossEntropyIsStableForHugeLogits()
    {
        float[] z = [1e4f, 0f, -1e4f, 1e4f, 0f, -1e4f];
        int[] labels = [0, 1];
        var probs = new float[6];
        var grad = new float[6];
        double loss = LossKernels.SoftmaxCrossEntropy(z, labels, probs, grad, 2, 3);
        // Row 0 is right with certainty (loss 0), row 1 is wrong by 1e4 (loss 1e4).
        Assert.That(loss, Is.EqualTo(1e4 / 2).Within(1e-3));
        Assert.That(probs, Has.None.NaN);
        Assert.That(grad, Has.None.NaN);
        Close.All(grad, new double[] { 0, 0, 0, 0.5, -0.5, 0 }, 0, 1e-7, "gradient at saturation");
    }

    [Test]
    public void OutOfRangeLabelsThrowNamingTheSample()
    {
        var z = new float[12];
        var p = new float[12];
        var g = new float[12];
        Assert.That(() => LossKernels.SoftmaxCrossEntropy(z, new[] { 0, 3, 4 }, p, g, 3, 4),
            Throws.ArgumentException.With.Message.Contains("sample 2").And.Message.Contains("label 4"));
        Assert.That(() => LossKernels.SoftmaxCrossEntropy(z, new[] { -1, 0, 0 }, p, g, 3, 4),
            Throws.ArgumentException.With.Message.Contains("sample 0").And.Message.Contains("label -1"));
        Assert.That(() => LossKernels.BinaryCrossEntropy(z, new[] { 0, 1, 2 }, p, g, 3),
            Throws.ArgumentException.With.Message.Contains("sample 2").And.Message.Contains("label 2"));
        Assert.That(() => LossKernels.BinaryCrossEntropy(z, new[] { 0, -1, 1 }, p, g, 3),
            Throws.ArgumentException.With.Message.Contains("sample 1"));
        Assert.That(() => LossKernels.MeanSquaredError(z, new[] { 0, 1, 4 }, g, 3, 4),
            Throws.ArgumentException.With.Message.Contains("sample 2").And.Message.Contains("label 4"));
        Assert.That(() => LossKernels.MeanSquaredError(z, new[] { 0, 2, 1 }, g, 3, 1),
            Throws.ArgumentException.With.Message.Contains("sample 1"));
    }

    private static double NaiveLogLoss(double z, int label)
    {
        double s = 1 / (1 + Math.Exp(-z));
        return -(label * Math.Log(s) + (1 - label) * Math.Log(1 - s));
    }

    [Test]
    public void BinaryCrossEntropyMatchesTheFormulaAndFiniteDifferences()
    {
        var rng = new Random(6);
        foreach (int rows in new[] { 1, 2, 9, 33 })
        {
            string what = $"binary log-loss rows={rows}";
            var z = TestData.Uniform(rng, rows, -6f, 6f);
            var labels = TestData.Labels(rng, rows, 2);
            var probs = Sentinel.Buffer(rows);
            var grad = Sentinel.Buffer(rows);
            double loss = LossKernels.BinaryCrossEntropy(Sentinel.Wrap(z).AsSpan(0, rows), labels, probs.AsSpan(0, rows), grad.AsSpan(0, rows), rows);

            double expected = 0;
            for (int r = 0; r < rows; r++) expected += NaiveLogLoss(z[r], labels[r]);
            expected /= rows;
            Assert.That(loss, Is.EqualTo(expected).Within(1e-9 * (1 + expected)), what + " (loss)");
            Close.All(probs.AsSpan(0, rows), z.Select(v => 1 / (1 + Math.Exp(-(double)v))).ToArray(), 1e-6, 1e-9, what + " (probabilities)");
            Close.All(grad.AsSpan(0, rows), z.Select((v, r) => (1 / (1 + Math.Exp(-(double)v)) - labels[r]) / rows).ToArray(), 1e-6, 1.2e-7 / rows, what + " (gradient)"); // p is a float: p - 1 keeps only its absolute precision
            Sentinel.AssertTail(probs, rows, what + " (probabilities)");
            Sentinel.AssertTail(grad, rows, what + " (gradient)");

            var scratch = new float[rows];
            var fd = FiniteDifferences(z, zz => LossKernels.BinaryCrossEntropy(zz, labels, scratch, default, rows), 1e-2f);
            Close.All(grad.AsSpan(0, rows), fd, 1e-3, 1e-6, what + " (finite differences)");
        }
    }

    [Test]
    public void BinaryCrossEntropyIsStableForHugeLogits()
    {
        float[] z = [1e4f, -1e4f, 1e4f, -1e4f, 40f, -40f];
        int[] labels = [1, 0, 0, 1, 0, 0];
        var probs = new float[6];
        var grad = new float[6];
        double loss = LossKernels.BinaryCrossEntropy(z, labels, probs, grad, 6);
        // Two certain right answers (0), two certain wrong ones (1e4 each), 40 wrong (~40), -40 right (~0).
        double expected = (0 + 0 + 1e4 + 1e4 + (40 + Math.Log(1 + Math.Exp(-40))) + Math.Log(1 + Math.Exp(-40))) / 6;
        Assert.That(loss, Is.EqualTo(expected).Within(1e-9 * expected));
        Assert.That(probs, Has.None.NaN);
        Close.All(grad, new double[] { 0, 0, 1.0 / 6, -1.0 / 6, 1.0 / 6, 0 }, 1e-6, 1e-9, "binary log-loss gradient at saturation");
    }

    [Test]
    public void MeanSquaredErrorMatchesTheFormulaAndFiniteDifferences()
    {
        var rng = new Random(7);
        foreach (var (rows, cols) in new[] { (1, 1), (6, 1), (4, 5), (3, 10), (2, 17) })
        {
            string what = $"mean squared error {rows}x{cols}";
            var y = TestData.Uniform(rng, rows * cols, -1f, 2f);
            var labels = TestData.Labels(rng, rows, cols == 1 ? 2 : cols);
            var grad = Sentinel.Buffer(rows * cols);
            double loss = LossKernels.MeanSquaredError(Sentinel.Wrap(y).AsSpan(0, y.Length), labels, grad.AsSpan(0, rows * cols), rows, cols);

            // Target: one-hot of the label, or the label itself for one column.
            double Target(int i) => cols == 1 ? labels[i] : (i % cols == labels[i / cols] ? 1 : 0);
            double expected = 0;
            for (int i = 0; i < y.Length; i++) expected += (y[i] - Target(i)) * (y[i] - Target(i));
            expected /= rows * cols;
            Assert.That(loss, Is.EqualTo(expected).Within(1e-9 * (1 + expected)), what + " (loss)");
            Close.All(grad.AsSpan(0, rows * cols), y.Select((v, i) => 2 * (v - Target(i)) / (rows * cols)).ToArray(), 1e-6, 1e-9, what + " (gradient)");
            Sentinel.AssertTail(grad, rows * cols, what + " (gradient)");

            var fd = FiniteDifferences(y, yy => LossKernels.MeanSquaredError(yy, labels, default, rows, cols), 1e-2f);
            Close.All(grad.AsSpan(0, rows * cols), fd, 1e-4, 1e-7, what + " (finite differences)");
        }
    }

    [Test]
    public void CountCorrectUsesTheFirstArgMaxOrTheThreshold()
    {
        var rng = new Random(8);
        int rows = 50, cols = 7;
        var scores = TestData.Uniform(rng, rows * cols);
        var labels = TestData.Labels(rng, rows, cols);
        // Make about half the rows right.
        for (int r = 0; r < rows; r += 2) scores[r * cols + labels[r]] = 2f;
        int expected = 0;
        for (int r = 0; r < rows; r++)
        {
            int best = 0;
            for (int c = 1; c < cols; c++) if (scores[r * cols + c] > scores[r * cols + best]) best = c;
            if (best == labels[r]) expected++;
        }
        Assert.That(expected, Is.InRange(25, 49), "test data sanity");
        Assert.That(LossKernels.CountCorrect(scores, labels, rows, cols, 0.5f), Is.EqualTo(expected));

        // Ties: the first maximum is the prediction.
        float[] tied = [1f, 3f, 3f, 0f, 0f, 0f];
        Assert.That(LossKernels.CountCorrect(tied, new[] { 1, 0 }, 2, 3, 0.5f), Is.EqualTo(2));
        Assert.That(LossKernels.CountCorrect(tied, new[] { 2, 1 }, 2, 3, 0.5f), Is.EqualTo(0));

        // One column: score >= threshold predicts 1.
        float[] single = [0.5f, 0.49f, 0.9f, 0.1f, -3f];
        Assert.That(LossKernels.CountCorrect(single, new[] { 1, 0, 0, 0, 1 }, 5, 1, 0.5f), Is.EqualTo(3));
        Assert.That(LossKernels.CountCorrect(single, new[] { 1, 0, 0, 0, 1 }, 5, 1, 0f), Is.EqualTo(1));
    }
}
