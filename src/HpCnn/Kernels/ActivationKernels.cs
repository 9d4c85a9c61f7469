using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

// Every Invoke is AggressiveInlining: without it the JIT called the vector form once per vector from the generic Map
// loop, passing the vectors through the stack. These operators have no 16-lane form: they are a load or two, a few
// operations and a store per element, and 64-byte vectors did not run them faster (every unaligned one crosses a
// cache line); sigmoid and tanh run through MapWide.

/// <summary>y = min(max(x, 0), cap): ReLU, capped when cap is finite (the deep-CNN tutorial's "max activation").</summary>
public readonly struct ReluOp(float cap) : IUnaryOperator
{
    private readonly ClampMode _mode = Clamp256.ModeOf(0f, cap);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float x) => MathF.Min(MathF.Max(x, 0f), cap);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> x) => Clamp256.Apply(x, Vector256<float>.Zero, Vector256.Create(cap), _mode);
}

/// <summary>dx = dy where 0 &lt; y &lt; cap, else 0 (from the ReLU's output y).</summary>
public readonly struct ReluGradOp(float cap) : IBinaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float y, float dy) => y > 0f && y < cap ? dy : 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) =>
        dy & Vector256.GreaterThan(y, Vector256<float>.Zero) & Vector256.LessThan(y, Vector256.Create(cap));
}

/// <summary>
/// dx = v where 0 &lt; y &lt; cap, else 0: <see cref="ReluGradOp"/> of a gradient that is v everywhere (what an average
/// pool over the whole plane hands every pixel), without reading it.
/// </summary>
public readonly struct ReluGradOfConstantOp(float v, float cap) : IUnaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float y) => y > 0f && y < cap ? v : 0f;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> y) =>
        Vector256.Create(v) & Vector256.GreaterThan(y, Vector256<float>.Zero) & Vector256.LessThan(y, Vector256.Create(cap));
}

/// <summary>y = x &gt; 0 ? x : alpha x.</summary>
public readonly struct LeakyReluOp(float alpha) : IUnaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float x) => x > 0f ? x : alpha * x;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> x) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(x, Vector256<float>.Zero), x, x * alpha);
}

/// <summary>dx = y &gt; 0 ? dy : alpha dy (y has the sign of x because alpha &gt;= 0).</summary>
public readonly struct LeakyReluGradOp(float alpha) : IBinaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float y, float dy) => y > 0f ? dy : alpha * dy;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) =>
        Vector256.ConditionalSelect(Vector256.GreaterThan(y, Vector256<float>.Zero), dy, dy * alpha);
}

/// <summary>dx = dy y (1 - y), from the sigmoid's output.</summary>
public readonly struct SigmoidGradOp : IBinaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float y, float dy) => dy * y * (1f - y);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) => dy * y * (Vector256<float>.One - y);
}

/// <summary>dx = dy (1 - y^2), from the tanh's output.</summary>
public readonly struct TanhGradOp : IBinaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float y, float dy) => dy * (1f - y * y);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) => dy * (Vector256<float>.One - y * y);
}

/// <summary>z = x * y (dropout masks).</summary>
public readonly struct MultiplyOp : IBinaryOperator
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public float Invoke(float x, float y) => x * y;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Vector256<float> Invoke(Vector256<float> x, Vector256<float> y) => x * y;
}

/// <summary>Activation functions and their gradients (from the activation's output), over spans.</summary>
public static class ActivationKernels
{
    public static void ReluForward(ReadOnlySpan<float> x, Span<float> y, float cap = float.PositiveInfinity) =>
        ElementwiseKernels.Map(x, y, new ReluOp(cap));

    public static void ReluBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, float cap = float.PositiveInfinity) =>
        ElementwiseKernels.Map(y, dy, dx, new ReluGradOp(cap));

    public static void LeakyReluForward(ReadOnlySpan<float> x, Span<float> y, float alpha) =>
        ElementwiseKernels.Map(x, y, new LeakyReluOp(alpha));

    public static void LeakyReluBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, float alpha) =>
        ElementwiseKernels.Map(y, dy, dx, new LeakyReluGradOp(alpha));

    public static void SigmoidForward(ReadOnlySpan<float> x, Span<float> y) => ElementwiseKernels.MapWide(x, y, new SigmoidOp());

    public static void SigmoidBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) =>
        ElementwiseKernels.Map(y, dy, dx, new SigmoidGradOp());

    public static void TanhForward(ReadOnlySpan<float> x, Span<float> y) => ElementwiseKernels.MapWide(x, y, new TanhOp());

    public static void TanhBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx) =>
        ElementwiseKernels.Map(y, dy, dx, new TanhGradOp());
}
