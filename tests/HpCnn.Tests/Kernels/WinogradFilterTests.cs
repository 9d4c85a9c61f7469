using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// The Winograd filter transforms U = G g G^T, packed in 6-row strips, against the transform written out here one filter
/// at a time, bit for bit: the vector path (four filters a step) must do the same operations as the portable one.
/// </summary>
public class WinogradFilterTests
{
    // F(2x2)'s G times a 3-vector in float; F(4x4)'s in double, rounded to float (the engine's order of operations).
    private static float[] G2(float a, float b, float c) => [a, 0.5f * (a + b + c), 0.5f * (a - b + c), c];

    private static float[] G4(float a, float b, float c)
    {
        double x = a, y = b, z = c;
        return [(float)(x / 4), (float)(-(x + y + z) / 6), (float)(-(x - y + z) / 6),
            (float)(x / 24 + y / 12 + z / 6), (float)(x / 24 - y / 12 + z / 6), c];
    }

    private static float[] Reference(float[] w, int outC, int inC, bool rotate, int alpha)
    {
        Func<float, float, float, float[]> g = alpha == 4 ? G2 : G4;
        int rows = rotate ? inC : outC, cols = rotate ? outC : inC;
        int stride = Conv2dKernels.WinogradPackedSize(rows, cols);
        var u = new float[alpha * alpha * stride];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                var f = new float[9];
                for (int k = 0; k < 9; k++) f[k] = rotate ? w[(c * inC + r) * 9 + 8 - k] : w[(r * inC + c) * 9 + k];
                var t = new float[alpha, 3];
                for (int j = 0; j < 3; j++)
                {
                    var col = g(f[j], f[3 + j], f[6 + j]);
                    for (int i = 0; i < alpha; i++) t[i, j] = col[i];
                }
                for (int i = 0; i < alpha; i++)
                {
                    var row = g(t[i, 0], t[i, 1], t[i, 2]);
                    for (int j = 0; j < alpha; j++) u[(alpha * i + j) * stride + r / 6 * cols * 6 + c * 6 + r % 6] = row[j];
                }
            }
        return u;
    }

    [TestCase(7, 9, 4)]
    [TestCase(7, 9, 6)]
    [TestCase(13, 4, 6)]
    [TestCase(5, 3, 4)]
    [TestCase(16, 12, 6)]
    public void FilterTransformsGiveTheWrittenOutBits(int outC, int inC, int alpha)
    {
        var rng = new Random(outC * 31 + inC * 7 + alpha);
        var w = TestData.Uniform(rng, outC * inC * 9);
        // Zeros of both signs, a tiny value and a large one, where an operation done differently would show.
        w[0] = 0f; w[1] = -0f; w[2] = 1e-38f; w[3] = -3e5f; w[9] = -0f; w[10] = -0f; w[11] = -0f; w[12] = 0f;
        foreach (bool rotate in new[] { false, true })
        {
            int rows = rotate ? inC : outC, cols = rotate ? outC : inC;
            var u = Enumerable.Repeat(float.NaN, alpha * alpha * Conv2dKernels.WinogradPackedSize(rows, cols)).ToArray();
            if (alpha == 4) Conv2dKernels.WinogradWeights(w, outC, inC, rotate, u);
            else Conv2dKernels.Winograd4Weights(w, outC, inC, rotate, u);
            var expected = Reference(w, outC, inC, rotate, alpha);
            for (int i = 0; i < u.Length; i++)
                Assert.That(BitConverter.SingleToInt32Bits(u[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected[i])),
                    $"F({alpha - 2}x{alpha - 2}) {outC}->{inC} rotate {rotate}: element {i}, {u[i]:R} vs {expected[i]:R}");
        }
    }
}
