using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

/// <summary>
/// Normalisation over planes. Per-feature-map normalisation standardises each plane of each image
/// (zero mean, unit standard deviation, as in the deep-CNN tutorial); batch normalisation standardises each
/// channel over the batch and the plane, then scales and shifts. Variances are the biased ones (divide by
/// the count), as both PyTorch layers use for normalising. Statistics accumulate in double.
/// </summary>
public static class NormKernels
{
    /// <summary>y = (x - mean) / sqrt(var + eps) over one plane; returns 1/sqrt(var + eps).</summary>
    public static float PlaneNormForward(ReadOnlySpan<float> x, Span<float> y, float eps)
    {
        int n = x.Length;
        float mean = LaneSum.Sum(x) / n;
        TensorPrimitives.Subtract(x, mean, y);
        float var = LaneSum.Dot(y, y) / n;
        float inv = 1f / MathF.Sqrt(var + eps);
        TensorPrimitives.Multiply(y, inv, y);
        return inv;
    }

    /// <summary>dx = inv (dy - mean(dy) - y mean(dy y)) over one plane, from the output y.</summary>
    public static void PlaneNormBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, float inv)
    {
        int n = y.Length;
        float meanDy = LaneSum.Sum(dy) / n;
        float meanDyY = LaneSum.Dot(dy, y) / n;
        // dx = (fma(y, -meanDyY, dy) - meanDy) * inv
        ElementwiseKernels.Map(y, dy, dx, new PlaneNormGradOp(-meanDyY, meanDy, inv));
    }

    /// <summary>Mean and sum of squared deviations of one plane (<see cref="LaneSum"/>: the same bits on any vector width).</summary>
    public static (float Mean, float M2) PlaneMoments(ReadOnlySpan<float> x)
    {
        float mean = LaneSum.Sum(x) / x.Length;
        return (mean, LaneSum.SumOfSquaredDeviations(x, mean));
    }

    /// <summary>
    /// Mean and biased variance over planes of <paramref name="planeSize"/> values each, from their means and sums of
    /// squared deviations, combined in order (Chan, Golub and LeVeque's pairwise update, in double).
    /// </summary>
    public static (double Mean, double Var) CombineMoments(ReadOnlySpan<double> means, ReadOnlySpan<double> m2s, int planeSize)
    {
        double mean = 0, m2 = 0, n = 0;
        for (int i = 0; i < means.Length; i++)
        {
            double nb = planeSize, total = n + nb, delta = means[i] - mean;
            mean += delta * nb / total;
            m2 += m2s[i] + delta * delta * n * nb / total;
            n = total;
        }
        return (mean, n > 0 ? m2 / n : 0);
    }

    /// <summary>y = min(max(x * scale + shift, low), high), with one FMA (batch norm folded with a following ReLU).</summary>
    public static void AffineClamp(ReadOnlySpan<float> x, Span<float> y, float scale, float shift, float low, float high) =>
        ElementwiseKernels.Map(x, y, new AffineClampOp(scale, shift, low, high));

    /// <summary>
    /// The gradient reaching a batch norm's output through a fused ReLU clamped to [0, cap], g = dy where 0 &lt; y &lt; cap
    /// (<see cref="ActivationKernels.ReluBackward"/>), taken from the batch norm's input x instead of the output y: y is
    /// min(max(fma(x, scale, shift), 0), cap) (<see cref="AffineClampOp"/>), so 0 &lt; y &lt; cap exactly where
    /// 0 &lt; fma(x, scale, shift) &lt; cap, the same mask bit for bit. The backward reads x anyway, so the output is not read
    /// at all: a third less memory traffic in a pass that is all memory traffic.
    /// </summary>
    public static void MaskedGradientFromInput(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> g, float scale, float shift, float cap) =>
        ElementwiseKernels.Map(x, dy, g, new AffineReluGradOp(scale, shift, cap));

    /// <summary>
    /// The same through a max-pool after the ReLU: g is zero but at each window's winner (<paramref name="argmax"/>,
    /// an index in the plane), which gets the pooled gradient where the pooled value is inside the ReLU's open range
    /// (summed, in window order, where overlapping windows share a winner).
    /// </summary>
    public static void PooledMaskedGradient(ReadOnlySpan<float> pooled, ReadOnlySpan<float> pooledGrad, ReadOnlySpan<int> argmax, Span<float> g, float cap)
    {
        g.Clear();
        bool relu = !float.IsNaN(cap);
        for (int i = 0; i < pooled.Length; i++)
            if (!relu || (pooled[i] > 0f && pooled[i] < cap)) g[argmax[i]] += pooledGrad[i];
    }

    /// <summary>dx = g * a + (x * b + c), two FMAs per value: batch norm's input gradient with per-channel coefficients.</summary>
    public static void BatchNormInputGradient(ReadOnlySpan<float> g, ReadOnlySpan<float> x, Span<float> dx, float a, float b, float c) =>
        ElementwiseKernels.Map(g, x, dx, new BatchNormGradOp(a, b, c));
}

/// <summary>y = min(max(fma(x, scale, shift), low), high).</summary>
public readonly struct AffineClampOp(float scale, float shift, float low, float high) : IUnaryOperator
{
    private readonly ClampMode _mode = Clamp256.ModeOf(low, high);

    public float Invoke(float x) => MathF.Min(MathF.Max(MathF.FusedMultiplyAdd(x, scale, shift), low), high);
    public Vector256<float> Invoke(Vector256<float> x) =>
        Clamp256.Apply(Vector256.FusedMultiplyAdd(x, Vector256.Create(scale), Vector256.Create(shift)), Vector256.Create(low), Vector256.Create(high), _mode);
}

/// <summary>g = dy where 0 &lt; fma(x, scale, shift) &lt; cap, else 0 (<see cref="ReluGradOp"/> of the value <see cref="AffineClampOp"/> clamps).</summary>
public readonly struct AffineReluGradOp(float scale, float shift, float cap) : IBinaryOperator
{
    public float Invoke(float x, float dy)
    {
        float t = MathF.FusedMultiplyAdd(x, scale, shift);
        return t > 0f && t < cap ? dy : 0f;
    }

    public Vector256<float> Invoke(Vector256<float> x, Vector256<float> dy)
    {
        var t = Vector256.FusedMultiplyAdd(x, Vector256.Create(scale), Vector256.Create(shift));
        return dy & Vector256.GreaterThan(t, Vector256<float>.Zero) & Vector256.LessThan(t, Vector256.Create(cap));
    }
}

/// <summary>dx = (fma(y, a, dy) - b) * c.</summary>
public readonly struct PlaneNormGradOp(float a, float b, float c) : IBinaryOperator
{
    public float Invoke(float y, float dy) => (MathF.FusedMultiplyAdd(y, a, dy) - b) * c;
    public Vector256<float> Invoke(Vector256<float> y, Vector256<float> dy) =>
        (Vector256.FusedMultiplyAdd(y, Vector256.Create(a), dy) - Vector256.Create(b)) * Vector256.Create(c);
}

/// <summary>dx = fma(g, a, fma(x, b, c)).</summary>
public readonly struct BatchNormGradOp(float a, float b, float c) : IBinaryOperator
{
    public float Invoke(float g, float x) => MathF.FusedMultiplyAdd(g, a, MathF.FusedMultiplyAdd(x, b, c));
    public Vector256<float> Invoke(Vector256<float> g, Vector256<float> x) =>
        Vector256.FusedMultiplyAdd(g, Vector256.Create(a), Vector256.FusedMultiplyAdd(x, Vector256.Create(b), Vector256.Create(c)));
}
