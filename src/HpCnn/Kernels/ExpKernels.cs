using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

/// <summary>
/// e^x in single precision (Cephes' expf: Cody-Waite reduction by ln 2 in two parts, a degree-5 polynomial, scaling by
/// 2^n through the exponent bits), written once for vectors and once for scalars with the same operations: every
/// element gets the same bits whether it is computed in a vector of 8 or 16 or alone (TensorPrimitives' Exp, Sigmoid
/// and Tanh switch to the C library for short spans, so a prediction's last bits depended on the batch size).
/// Arguments are clamped to [-87.3, 88.37] (results from about 1.2e-38 to 2.4e38, 2^n a normal float); accurate to about 1 ulp.
/// </summary>
/// <remarks>
/// Every Invoke is AggressiveInlining: the JIT did not inline these bodies into the generic Map loop on its own, and a
/// call per vector passed it through the stack (tanh ran at about a third of the speed). n is a whole number in
/// [-125, 127] after the clamp, so the platform's own float-to-int conversion gives the same bits as the saturating
/// one without its fix-up instructions. The vector clamp is vmaxps(Lo, x) then vminps(Hi, .), not Vector256.Min/Max:
/// those follow IEEE 754-2019 in about ten AVX2 instructions each, while vmaxps/vminps return their second operand, x,
/// when it is NaN, and Lo and Hi are neither zero nor NaN, so the bits are MathF.Min/Max's.
/// </remarks>
public readonly struct ExpOp : IWideUnaryOperator
{
    private const float Hi = 88.37f, Lo = -87.3f, Log2E = 1.44269504088896341f, C1 = 0.693359375f, C2 = -2.12194440e-4f;
    private const float P0 = 1.9875691500E-4f, P1 = 1.3981999507E-3f, P2 = 8.3334519073E-3f, P3 = 4.1665795894E-2f,
        P4 = 1.6666665459E-1f, P5 = 5.0000001201E-1f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float x)
    {
        x = MathF.Min(MathF.Max(x, Lo), Hi);
        float n = MathF.Floor(MathF.FusedMultiplyAdd(x, Log2E, 0.5f));
        float r = MathF.FusedMultiplyAdd(n, -C1, x);
        r = MathF.FusedMultiplyAdd(n, -C2, r);
        float p = MathF.FusedMultiplyAdd(P0, r, P1);
        p = MathF.FusedMultiplyAdd(p, r, P2);
        p = MathF.FusedMultiplyAdd(p, r, P3);
        p = MathF.FusedMultiplyAdd(p, r, P4);
        p = MathF.FusedMultiplyAdd(p, r, P5);
        p = MathF.FusedMultiplyAdd(p, r * r, r) + 1f;
        return p * BitConverter.Int32BitsToSingle((float.ConvertToIntegerNative<int>(n) + 127) << 23);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> x)
    {
        Invoke(x, x, out var y, out _);
        return y;
    }

    /// <summary>Two vectors, their operations interleaved (see <see cref="IWideUnaryOperator.Invoke(Vector256{float}, Vector256{float}, out Vector256{float}, out Vector256{float})"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Invoke(Vector256<float> x0, Vector256<float> x1, out Vector256<float> y0, out Vector256<float> y1)
    {
        if (Avx.IsSupported) // see the remarks; tests run the emulated form anywhere
        {
            x0 = Avx.Min(Vector256.Create(Hi), Avx.Max(Vector256.Create(Lo), x0));
            x1 = Avx.Min(Vector256.Create(Hi), Avx.Max(Vector256.Create(Lo), x1));
        }
        else
        {
            x0 = Vector256.Min(Vector256.Max(x0, Vector256.Create(Lo)), Vector256.Create(Hi));
            x1 = Vector256.Min(Vector256.Max(x1, Vector256.Create(Lo)), Vector256.Create(Hi));
        }
        var n0 = Vector256.Floor(Vector256.FusedMultiplyAdd(x0, Vector256.Create(Log2E), Vector256.Create(0.5f)));
        var n1 = Vector256.Floor(Vector256.FusedMultiplyAdd(x1, Vector256.Create(Log2E), Vector256.Create(0.5f)));
        var r0 = Vector256.FusedMultiplyAdd(n0, Vector256.Create(-C1), x0);
        var r1 = Vector256.FusedMultiplyAdd(n1, Vector256.Create(-C1), x1);
        r0 = Vector256.FusedMultiplyAdd(n0, Vector256.Create(-C2), r0);
        r1 = Vector256.FusedMultiplyAdd(n1, Vector256.Create(-C2), r1);
        var p0 = Vector256.FusedMultiplyAdd(Vector256.Create(P0), r0, Vector256.Create(P1));
        var p1 = Vector256.FusedMultiplyAdd(Vector256.Create(P0), r1, Vector256.Create(P1));
        p0 = Vector256.FusedMultiplyAdd(p0, r0, Vector256.Create(P2));
        p1 = Vector256.FusedMultiplyAdd(p1, r1, Vector256.Create(P2));
        p0 = Vector256.FusedMultiplyAdd(p0, r0, Vector256.Create(P3));
        p1 = Vector256.FusedMultiplyAdd(p1, r1, Vector256.Create(P3));
        p0 = Vector256.FusedMultiplyAdd(p0, r0, Vector256.Create(P4));
        p1 = Vector256.FusedMultiplyAdd(p1, r1, Vector256.Create(P4));
        p0 = Vector256.FusedMultiplyAdd(p0, r0, Vector256.Create(P5));
        p1 = Vector256.FusedMultiplyAdd(p1, r1, Vector256.Create(P5));
        p0 = Vector256.FusedMultiplyAdd(p0, r0 * r0, r0) + Vector256<float>.One;
        p1 = Vector256.FusedMultiplyAdd(p1, r1 * r1, r1) + Vector256<float>.One;
        y0 = p0 * ((Vector256.ConvertToInt32Native(n0) + Vector256.Create(127)) << 23).AsSingle();
        y1 = p1 * ((Vector256.ConvertToInt32Native(n1) + Vector256.Create(127)) << 23).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<float> Invoke(Vector512<float> x)
    {
        x = Avx512F.IsSupported ? Avx512F.Min(Vector512.Create(Hi), Avx512F.Max(Vector512.Create(Lo), x)) // tests run this form anywhere
            : Vector512.Min(Vector512.Max(x, Vector512.Create(Lo)), Vector512.Create(Hi));
        var n = Vector512.Floor(Vector512.FusedMultiplyAdd(x, Vector512.Create(Log2E), Vector512.Create(0.5f)));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-C1), x);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-C2), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(P0), r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        p = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        var scale = ((Vector512.ConvertToInt32Native(n) + Vector512.Create(127)) << 23).AsSingle();
        return p * scale;
    }
}

/// <summary>1 / (1 + e^-x), with <see cref="ExpOp"/>.</summary>
public readonly struct SigmoidOp : IWideUnaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float x) => 1f / (1f + new ExpOp().Invoke(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> x) => Vector256<float>.One / (Vector256<float>.One + new ExpOp().Invoke(-x));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Invoke(Vector256<float> x0, Vector256<float> x1, out Vector256<float> y0, out Vector256<float> y1)
    {
        new ExpOp().Invoke(-x0, -x1, out var e0, out var e1);
        y0 = Vector256<float>.One / (Vector256<float>.One + e0);
        y1 = Vector256<float>.One / (Vector256<float>.One + e1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<float> Invoke(Vector512<float> x) => Vector512<float>.One / (Vector512<float>.One + new ExpOp().Invoke(-x));
}

/// <summary>
/// tanh(x) (Cephes' tanhf): an odd polynomial for |x| &lt; 0.625, else sign(x) (1 - 2 / (e^2|x| + 1)) with
/// <see cref="ExpOp"/>. The vector forms compute both and select per element: the same bits as the scalar form.
/// </summary>
public readonly struct TanhOp : IWideUnaryOperator
{
    private const float Q0 = -5.70498872745E-3f, Q1 = 2.06390887954E-2f, Q2 = -5.37397155531E-2f, Q3 = 1.33314422036E-1f,
        Q4 = -3.33332819422E-1f, Small = 0.625f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float x)
    {
        float a = MathF.Abs(x);
        if (a < Small)
        {
            float z = x * x;
            float p = MathF.FusedMultiplyAdd(Q0, z, Q1);
            p = MathF.FusedMultiplyAdd(p, z, Q2);
            p = MathF.FusedMultiplyAdd(p, z, Q3);
            p = MathF.FusedMultiplyAdd(p, z, Q4);
            return MathF.FusedMultiplyAdd(p * z, x, x);
        }
        float t = 1f - 2f / (new ExpOp().Invoke(a + a) + 1f);
        return MathF.CopySign(t, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> x)
    {
        Invoke(x, x, out var y, out _);
        return y;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Invoke(Vector256<float> x0, Vector256<float> x1, out Vector256<float> y0, out Vector256<float> y1)
    {
        var a0 = Vector256.Abs(x0); var a1 = Vector256.Abs(x1);
        new ExpOp().Invoke(a0 + a0, a1 + a1, out var e0, out var e1);
        var z0 = x0 * x0; var z1 = x1 * x1;
        var p0 = Vector256.FusedMultiplyAdd(Vector256.Create(Q0), z0, Vector256.Create(Q1));
        var p1 = Vector256.FusedMultiplyAdd(Vector256.Create(Q0), z1, Vector256.Create(Q1));
        p0 = Vector256.FusedMultiplyAdd(p0, z0, Vector256.Create(Q2)); p1 = Vector256.FusedMultiplyAdd(p1, z1, Vector256.Create(Q2));
        p0 = Vector256.FusedMultiplyAdd(p0, z0, Vector256.Create(Q3)); p1 = Vector256.FusedMultiplyAdd(p1, z1, Vector256.Create(Q3));
        p0 = Vector256.FusedMultiplyAdd(p0, z0, Vector256.Create(Q4)); p1 = Vector256.FusedMultiplyAdd(p1, z1, Vector256.Create(Q4));
        var small0 = Vector256.FusedMultiplyAdd(p0 * z0, x0, x0); var small1 = Vector256.FusedMultiplyAdd(p1 * z1, x1, x1);
        var t0 = Vector256<float>.One - Vector256.Create(2f) / (e0 + Vector256<float>.One);
        var t1 = Vector256<float>.One - Vector256.Create(2f) / (e1 + Vector256<float>.One);
        y0 = Vector256.ConditionalSelect(Vector256.LessThan(a0, Vector256.Create(Small)), small0, Vector256.CopySign(t0, x0));
        y1 = Vector256.ConditionalSelect(Vector256.LessThan(a1, Vector256.Create(Small)), small1, Vector256.CopySign(t1, x1));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector512<float> Invoke(Vector512<float> x)
    {
        var a = Vector512.Abs(x);
        var z = x * x;
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(Q0), z, Vector512.Create(Q1));
        p = Vector512.FusedMultiplyAdd(p, z, Vector512.Create(Q2));
        p = Vector512.FusedMultiplyAdd(p, z, Vector512.Create(Q3));
        p = Vector512.FusedMultiplyAdd(p, z, Vector512.Create(Q4));
        var small = Vector512.FusedMultiplyAdd(p * z, x, x);
        var t = Vector512<float>.One - Vector512.Create(2f) / (new ExpOp().Invoke(a + a) + Vector512<float>.One);
        var large = Vector512.CopySign(t, x);
        return Vector512.ConditionalSelect(Vector512.LessThan(a, Vector512.Create(Small)), small, large);
    }
}
