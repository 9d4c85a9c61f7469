using System.Runtime.Intrinsics;
using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// The engine's own e^x, sigmoid and tanh: accurate (against double precision) and the same bits from the vector form as
/// from the scalar form, element by element, so that no result depends on where an element falls in a span.
/// </summary>
public class ExpKernelsTests
{
    private static IEnumerable<float> Inputs()
    {
        var rng = new Random(3);
        foreach (float v in new[] { 0f, -0f, 1e-30f, -1e-30f, 1e-7f, 0.5f, 0.624f, 0.625f, 0.626f, 1f, 2f, 9f, 10f, 20f, 80f, 88f, 88.7f, 90f, 1e10f,
                     -0.5f, -0.625f, -1f, -9f, -20f, -80f, -87f, -87.3f, -90f, -1e10f, float.PositiveInfinity, float.NegativeInfinity })
            yield return v;
        for (int i = 0; i < 4000; i++) yield return (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.NextDouble() * 3 - 1.5));
    }

    private static void Check<TOp>(TOp op, Func<double, double> exact, double relTol, double absTol, string name) where TOp : struct, IUnaryOperator
    {
        var x = Inputs().ToArray();
        var scalar = new float[x.Length];
        ElementwiseKernels.MapScalar(x, scalar, op);
        var vector = new float[x.Length];
        ElementwiseKernels.Map(x, vector, op);
        for (int i = 0; i < x.Length; i++)
        {
            Assert.That(BitConverter.SingleToInt32Bits(vector[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(scalar[i])),
                $"{name}({x[i]:R}): vector {vector[i]:R}, scalar {scalar[i]:R}");
            if (Vector256.IsHardwareAccelerated)
            {
                var v = op.Invoke(Vector256.Create(x[i]));
                Assert.That(BitConverter.SingleToInt32Bits(v[3]), Is.EqualTo(BitConverter.SingleToInt32Bits(scalar[i])), $"{name}({x[i]:R}) in a vector");
            }
            double e = exact(x[i]);
            if (name == "exp" && x[i] > 88.37f) { Assert.That(scalar[i], Is.EqualTo(Math.Exp(88.37f)).Within(3e-7 * Math.Exp(88.37f)), "exp saturates at e^88.37"); continue; }
            if (e < 1.2e-38 && e >= 0) { Assert.That(scalar[i], Is.LessThan(1.3e-38f), $"{name}({x[i]:R})"); continue; }
            Assert.That(scalar[i], Is.EqualTo(e).Within(relTol * Math.Abs(e) + absTol), $"{name}({x[i]:R})");
        }
    }

    [Test]
    public void ExpIsAccurateAndTheSameInVectorsAndAlone() => Check(new ExpOp(), Math.Exp, 3e-7, 0, "exp");

    [Test]
    public void SigmoidIsAccurateAndTheSameInVectorsAndAlone() => Check(new SigmoidOp(), v => 1 / (1 + Math.Exp(-v)), 4e-7, 1e-38, "sigmoid");

    [Test]
    public void TanhIsAccurateAndTheSameInVectorsAndAlone() => Check(new TanhOp(), Math.Tanh, 4e-7, 1e-38, "tanh");
}
