using System.Runtime.Intrinsics;
using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// Every operator struct through ElementwiseKernels.Map (vector body + tail) against MapScalar and against the
/// operator's formula in double, for every length 0..256, out of place and in place; and the activation wrappers
/// (sigmoid and tanh go through TensorPrimitives) against System.Math.
/// </summary>
public class ElementwiseKernelsTests
{
    private const int MaxLength = 256;

    /// <summary>Inputs with the edge values of the operators mixed in: zeros of both signs, the cap, values around it.</summary>
    private static float[] Inputs(int seed, int n, float cap = 6f)
    {
        var rng = new Random(seed);
        var x = new float[n];
        float[] special = [0f, -0f, cap, -cap, MathF.BitIncrement(cap), MathF.BitDecrement(cap), 1f, -1f, 1e-30f, -1e-30f, 50f, -50f];
        for (int i = 0; i < n; i++)
            x[i] = rng.Next(4) == 0 ? special[rng.Next(special.Length)] : (float)(rng.NextDouble() * 16 - 8);
        return x;
    }

    /// <summary>Outputs of a sigmoid / tanh / relu (valid "y" inputs of the gradient operators), edges included.</summary>
    private static float[] ActivationOutputs(int seed, int n, float lo, float hi, params float[] special)
    {
        var rng = new Random(seed);
        var y = new float[n];
        for (int i = 0; i < n; i++)
            y[i] = special.Length > 0 && rng.Next(4) == 0 ? special[rng.Next(special.Length)] : lo + (hi - lo) * (float)rng.NextDouble();
        return y;
    }

    private static void CheckUnary<TOp>(TOp op, Func<double, double> formula, string name, float[]? xs = null)
        where TOp : struct, IUnaryOperator
    {
        for (int n = 0; n <= MaxLength; n++)
        {
            var x = xs is null ? Inputs(n, n) : xs.AsSpan(0, n).ToArray();
            string what = $"{name} n={n}";

            var y = Sentinel.Buffer(n);
            ElementwiseKernels.Map(Sentinel.Wrap(x).AsSpan(0, n), y.AsSpan(0, n), op);
            var yRef = Sentinel.Buffer(n);
            ElementwiseKernels.MapScalar(x, yRef.AsSpan(0, n), op);

            var expected = x.Select(v => formula(v)).ToArray();
            Close.All(y.AsSpan(0, n), yRef.AsSpan(0, n), 1e-6, 0, what + " (Map vs MapScalar)");
            Close.All(yRef.AsSpan(0, n), expected, 1e-6, 1e-30, what + " (MapScalar vs formula)");
            Close.All(y.AsSpan(0, n), expected, 1e-6, 1e-30, what + " (Map vs formula)");
            Sentinel.AssertTail(y, n, what);
            Sentinel.AssertTail(yRef, n, what + " (MapScalar)");

            // In place: y == x.
            var inPlace = Sentinel.Wrap(x);
            ElementwiseKernels.Map(inPlace.AsSpan(0, n), inPlace.AsSpan(0, n), op);
            Close.All(inPlace.AsSpan(0, n), yRef.AsSpan(0, n), 1e-6, 0, what + " (in place)");
            Sentinel.AssertTail(inPlace, n, what + " (in place)");
        }
    }

    /// <summary>
    /// <paramref name="magnitude"/> bounds the size of the terms of the formula (e.g. |dy| (1 + y^2) for tanh): float
    /// rounding of 1 - y^2 near |y| = 1 is small next to it, but not next to the result.
    /// </summary>
    private static void CheckBinary<TOp>(TOp op, Func<double, double, double> formula, string name, Func<int, int, float[]> first,
        Func<double, double, double>? magnitude = null)
        where TOp : struct, IBinaryOperator
    {
        for (int n = 0; n <= MaxLength; n++)
        {
            var a = first(n, n);
            var b = TestData.Uniform(1000 + n, n, -3f, 3f);
            string what = $"{name} n={n}";

            var z = Sentinel.Buffer(n);
            ElementwiseKernels.Map(Sentinel.Wrap(a).AsSpan(0, n), Sentinel.Wrap(b).AsSpan(0, n), z.AsSpan(0, n), op);
            var zRef = Sentinel.Buffer(n);
            ElementwiseKernels.MapScalar(a, b, zRef.AsSpan(0, n), op);

            var expected = new double[n];
            var tol = new double[n];
            for (int i = 0; i < n; i++)
            {
                expected[i] = formula(a[i], b[i]);
                tol[i] = 1e-6 * (magnitude is null ? Math.Abs(expected[i]) : magnitude(a[i], b[i])) + 1e-30;
            }
            var zRefD = Close.ToDouble(zRef.AsSpan(0, n));
            Close.All(z.AsSpan(0, n), zRefD, tol, what + " (Map vs MapScalar)");
            Close.All(zRef.AsSpan(0, n), expected, tol, what + " (MapScalar vs formula)");
            Close.All(z.AsSpan(0, n), expected, tol, what + " (Map vs formula)");
            Sentinel.AssertTail(z, n, what);

            // In place on either operand.
            var za = Sentinel.Wrap(a);
            ElementwiseKernels.Map(za.AsSpan(0, n), b, za.AsSpan(0, n), op);
            Close.All(za.AsSpan(0, n), zRefD, tol, what + " (z aliases x)");
            Sentinel.AssertTail(za, n, what + " (z aliases x)");
            var zb = Sentinel.Wrap(b);
            ElementwiseKernels.Map(a, zb.AsSpan(0, n), zb.AsSpan(0, n), op);
            Close.All(zb.AsSpan(0, n), zRefD, tol, what + " (z aliases y)");
            Sentinel.AssertTail(zb, n, what + " (z aliases y)");
        }
    }

    [Test]
    public void ReluOp([Values(float.PositiveInfinity, 6f, 1f)] float cap) =>
        CheckUnary(new ReluOp(cap), x => Math.Min(Math.Max(x, 0), cap), $"relu cap {cap}", Inputs(7, MaxLength, cap));

    [Test]
    public void LeakyReluOp([Values(0f, 0.01f, 0.3f)] float alpha) =>
        CheckUnary(new LeakyReluOp(alpha), x => x > 0 ? x : alpha * x, $"leaky relu {alpha}");

    [Test]
    public void ReluGradOp([Values(float.PositiveInfinity, 6f)] float cap) =>
        // y on both bounds: the gradient is zero at y == 0 and at y == cap.
        CheckBinary(new ReluGradOp(cap), (y, dy) => y > 0 && y < cap ? dy : 0, $"relu grad cap {cap}",
            (seed, n) => ActivationOutputs(seed, n, 0f, 8f, 0f, float.IsInfinity(cap) ? 1e30f : cap, 1e-30f));

    [Test]
    public void LeakyReluGradOp([Values(0f, 0.01f, 0.3f)] float alpha) =>
        CheckBinary(new LeakyReluGradOp(alpha), (y, dy) => y > 0 ? dy : alpha * dy, $"leaky relu grad {alpha}",
            (seed, n) => ActivationOutputs(seed, n, -2f, 8f, 0f, -0f, 1e-30f));

    [Test]
    public void SigmoidGradOp() =>
        CheckBinary(new SigmoidGradOp(), (y, dy) => dy * y * (1 - y), "sigmoid grad",
            (seed, n) => ActivationOutputs(seed, n, 0f, 1f, 0f, 1f, 0.5f), (y, dy) => Math.Abs(dy) * Math.Abs(y) * (1 + Math.Abs(y)));

    [Test]
    public void TanhGradOp() =>
        CheckBinary(new TanhGradOp(), (y, dy) => dy * (1 - y * y), "tanh grad",
            (seed, n) => ActivationOutputs(seed, n, -1f, 1f, -1f, 1f, 0f), (y, dy) => Math.Abs(dy) * (1 + y * y));

    [Test]
    public void MultiplyOp() =>
        CheckBinary(new MultiplyOp(), (x, y) => x * y, "multiply", (seed, n) => ActivationOutputs(seed, n, 0f, 2f, 0f, 2f));

    [Test]
    public void VectorInvokeMatchesScalarInvokeLaneByLane()
    {
        // The operators' own contract, independent of the Map loop (runs on any machine: Vector256 is emulated when not accelerated).
        var x = Inputs(3, 64);
        var d = TestData.Uniform(4, 64, -3f, 3f);
        for (int i = 0; i < 64; i += 8)
        {
            var vx = Vector256.Create(x.AsSpan(i, 8));
            var vd = Vector256.Create(d.AsSpan(i, 8));
            var ops = new (string Name, Vector256<float> Got, Func<int, float> Scalar)[]
            {
                ("relu6", new ReluOp(6f).Invoke(vx), j => new ReluOp(6f).Invoke(x[i + j])),
                ("leaky", new LeakyReluOp(0.1f).Invoke(vx), j => new LeakyReluOp(0.1f).Invoke(x[i + j])),
                ("relu grad", new ReluGradOp(6f).Invoke(vx, vd), j => new ReluGradOp(6f).Invoke(x[i + j], d[i + j])),
                ("leaky grad", new LeakyReluGradOp(0.1f).Invoke(vx, vd), j => new LeakyReluGradOp(0.1f).Invoke(x[i + j], d[i + j])),
                ("sigmoid grad", new SigmoidGradOp().Invoke(vx, vd), j => new SigmoidGradOp().Invoke(x[i + j], d[i + j])),
                ("tanh grad", new TanhGradOp().Invoke(vx, vd), j => new TanhGradOp().Invoke(x[i + j], d[i + j])),
                ("multiply", new MultiplyOp().Invoke(vx, vd), j => new MultiplyOp().Invoke(x[i + j], d[i + j])),
            };
            foreach (var (name, got, scalar) in ops)
                for (int j = 0; j < 8; j++)
                {
                    float e = scalar(j);
                    Assert.That(got[j], Is.EqualTo(e).Within(1e-6 * Math.Abs(e) + 1e-30), $"{name} lane {j} of block {i / 8}, x={x[i + j]}, dy={d[i + j]}");
                }
        }
    }

    [Test]
    public void MapRejectsShortDestinations()
    {
        var x = new float[9];
        Assert.That(() => ElementwiseKernels.Map(x, new float[8], new ReluOp(float.PositiveInfinity)), Throws.ArgumentException);
        Assert.That(() => ElementwiseKernels.Map(x, new float[8], new float[9], new MultiplyOp()), Throws.ArgumentException);
        Assert.That(() => ElementwiseKernels.Map(x, new float[9], new float[8], new MultiplyOp()), Throws.ArgumentException);
    }

    [Test]
    public void SigmoidAndTanhForwardMatchMath()
    {
        for (int n = 0; n <= MaxLength; n++)
        {
            var x = Inputs(500 + n, n);
            // Saturating inputs must give 0 / 1 / +-1, never NaN.
            if (n >= 4) { x[0] = 1e4f; x[1] = -1e4f; x[2] = 88.8f; x[3] = -104f; }
            var input = Sentinel.Wrap(x);

            var y = Sentinel.Buffer(n);
            ActivationKernels.SigmoidForward(input.AsSpan(0, n), y.AsSpan(0, n));
            Close.All(y.AsSpan(0, n), x.Select(v => 1 / (1 + Math.Exp(-(double)v))).ToArray(), 2e-6, 1e-7, $"sigmoid n={n}");
            Sentinel.AssertTail(y, n, $"sigmoid n={n}");

            var t = Sentinel.Buffer(n);
            ActivationKernels.TanhForward(input.AsSpan(0, n), t.AsSpan(0, n));
            Close.All(t.AsSpan(0, n), x.Select(v => Math.Tanh(v)).ToArray(), 2e-6, 1e-7, $"tanh n={n}");
            Sentinel.AssertTail(t, n, $"tanh n={n}");

            // In place.
            var s = x.ToArray();
            ActivationKernels.SigmoidForward(s, s);
            Close.All(s, y.AsSpan(0, n), 0, 0, $"sigmoid in place n={n}");
        }
    }

    [Test]
    public void ActivationWrappersUseTheirOperators()
    {
        var x = Inputs(77, 45);
        var dy = TestData.Uniform(78, 45, -1f, 1f);
        var y = new float[45];
        var dx = new float[45];

        ActivationKernels.ReluForward(x, y, 6f);
        Close.All(y, x.Select(v => Math.Min(Math.Max((double)v, 0), 6)).ToArray(), 0, 0, "relu forward");
        ActivationKernels.ReluBackward(y, dy, dx, 6f);
        Close.All(dx, y.Select((v, i) => v > 0 && v < 6 ? (double)dy[i] : 0).ToArray(), 0, 0, "relu backward");

        ActivationKernels.LeakyReluForward(x, y, 0.2f);
        Close.All(y, x.Select(v => v > 0 ? v : 0.2 * v).ToArray(), 1e-6, 1e-30, "leaky forward");
        ActivationKernels.LeakyReluBackward(y, dy, dx, 0.2f);
        Close.All(dx, y.Select((v, i) => v > 0 ? dy[i] : 0.2 * dy[i]).ToArray(), 1e-6, 1e-30, "leaky backward");

        ActivationKernels.SigmoidForward(x, y);
        ActivationKernels.SigmoidBackward(y, dy, dx);
        // d sigmoid / dx = s (1 - s), from the true sigmoid.
        Close.All(dx, x.Select((v, i) => { double s = 1 / (1 + Math.Exp(-(double)v)); return dy[i] * s * (1 - s); }).ToArray(), 1e-5, 1e-7, "sigmoid backward");

        ActivationKernels.TanhForward(x, y);
        ActivationKernels.TanhBackward(y, dy, dx);
        Close.All(dx, x.Select((v, i) => { double t = Math.Tanh(v); return dy[i] * (1 - t * t); }).ToArray(), 1e-5, 1e-6, "tanh backward");
    }
}
