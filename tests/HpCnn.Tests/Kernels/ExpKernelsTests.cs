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
                     -0.5f, -0.625f, -1f, -9f, -20f, -80f, -87f, -87.3f, -90f, -1e10f, float.PositiveInfinity, float.NegativeInfinity,
                     MathF.BitDecrement(0.625f), -MathF.BitDecrement(0.625f), 1.4e-45f, -1.4e-45f })
            yield return v;
        for (int i = 0; i < 4000; i++) yield return (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.NextDouble() * 3 - 1.5));
    }

    private static void Check<TOp>(TOp op, Func<double, double> exact, double relTol, double absTol, string name) where TOp : struct, IWideUnaryOperator
    {
        var x = Inputs().ToArray();
        var scalar = new float[x.Length];
        ElementwiseKernels.MapScalar(x, scalar, op);
        var vector = new float[x.Length];
        ElementwiseKernels.Map(x, vector, op);
        var wide = new float[x.Length];
        ElementwiseKernels.MapWide(x, wide, op);
        for (int i = 0; i < x.Length; i++)
        {
            Assert.That(BitConverter.SingleToInt32Bits(vector[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(scalar[i])),
                $"{name}({x[i]:R}): vector {vector[i]:R}, scalar {scalar[i]:R}");
            Assert.That(BitConverter.SingleToInt32Bits(wide[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(scalar[i])),
                $"{name}({x[i]:R}): MapWide {wide[i]:R}, scalar {scalar[i]:R}");
            // The vector forms themselves, on every machine (emulated where not accelerated).
            var v = op.Invoke(Vector256.Create(x[i]));
            Assert.That(BitConverter.SingleToInt32Bits(v[3]), Is.EqualTo(BitConverter.SingleToInt32Bits(scalar[i])), $"{name}({x[i]:R}) in a vector of 8");
            var w = op.Invoke(Vector512.Create(x[i]));
            Assert.That(BitConverter.SingleToInt32Bits(w[11]), Is.EqualTo(BitConverter.SingleToInt32Bits(scalar[i])), $"{name}({x[i]:R}) in a vector of 16");
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

    private static IEnumerable<TestCaseData> Operators()
    {
        yield return new TestCaseData(new ExpOp()).SetArgDisplayNames("exp");
        yield return new TestCaseData(new SigmoidOp()).SetArgDisplayNames("sigmoid");
        yield return new TestCaseData(new TanhOp()).SetArgDisplayNames("tanh");
    }

    [TestCaseSource(nameof(Operators))]
    public void WideMapGivesTheScalarBitsForEveryLengthAndAlignment(IWideUnaryOperator boxed)
    {
        switch (boxed)
        {
            case ExpOp e: CheckLengths(e); break;
            case SigmoidOp g: CheckLengths(g); break;
            case TanhOp t: CheckLengths(t); break;
        }
    }

    /// <summary>
    /// Every length 0..80 (16-lane steps, one 8-lane step, scalar tail) at start offsets 0..3 (unaligned vectors), in a
    /// separate buffer and in place, against the scalar operator bit for bit; nothing after the span is written.
    /// </summary>
    private static void CheckLengths<TOp>(TOp op) where TOp : struct, IWideUnaryOperator
    {
        var all = Inputs().ToArray();
        for (int offset = 0; offset < 4; offset++)
            for (int n = 0; n <= 80; n++)
            {
                var x = all.AsSpan(7 * n + offset, n).ToArray();
                var expected = new float[n];
                ElementwiseKernels.MapScalar(x, expected, op);
                var src = new float[offset + n];
                x.CopyTo(src, offset);
                var dst = Sentinel.Buffer(offset + n);
                ElementwiseKernels.MapWide(src.AsSpan(offset, n), dst.AsSpan(offset, n), op);
                var inPlace = Sentinel.Wrap(src);
                ElementwiseKernels.MapWide(inPlace.AsSpan(offset, n), inPlace.AsSpan(offset, n), op);
                for (int i = 0; i < n; i++)
                {
                    Assert.That(BitConverter.SingleToInt32Bits(dst[offset + i]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected[i])),
                        $"{typeof(TOp).Name} n={n} offset={offset} element {i} ({x[i]:R})");
                    Assert.That(BitConverter.SingleToInt32Bits(inPlace[offset + i]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected[i])),
                        $"{typeof(TOp).Name} in place n={n} offset={offset} element {i} ({x[i]:R})");
                }
                for (int i = 0; i < offset; i++) Assert.That(Sentinel.IsMarker(dst[i]), Is.True, $"{typeof(TOp).Name} n={n}: element {i} before the span written");
                Sentinel.AssertTail(dst, offset + n, $"{typeof(TOp).Name} n={n} offset={offset}");
                Sentinel.AssertTail(inPlace, offset + n, $"{typeof(TOp).Name} in place n={n} offset={offset}");
            }
    }

    [Test]
    public void NaNStaysNaNOnEveryPath()
    {
        // The clamp must not turn a NaN into a finite value (vmaxps returns its second operand when either is NaN).
        var x = new float[37];
        x.AsSpan().Fill(float.NaN);
        foreach (var (name, got) in new (string, float[])[]
                 {
                     ("exp", Run(x, new ExpOp())), ("sigmoid", Run(x, new SigmoidOp())), ("tanh", Run(x, new TanhOp())),
                 })
            for (int i = 0; i < got.Length; i++) Assert.That(got[i], Is.NaN, $"{name}(NaN) element {i}");

        static float[] Run<TOp>(float[] x, TOp op) where TOp : struct, IWideUnaryOperator
        {
            var y = new float[x.Length];
            ElementwiseKernels.MapWide(x, y, op);
            var s = new float[x.Length];
            ElementwiseKernels.MapScalar(x, s, op);
            return [.. y, .. s, op.Invoke(Vector256.Create(float.NaN))[0], op.Invoke(Vector512.Create(float.NaN))[0]];
        }
    }
}
