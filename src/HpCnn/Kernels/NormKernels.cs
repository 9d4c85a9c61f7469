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
        float mean = TensorPrimitives.Sum(x) / n;
        TensorPrimitives.Subtract(x, mean, y);
        float var = TensorPrimitives.SumOfSquares(y) / n;
        float inv = 1f / MathF.Sqrt(var + eps);
        TensorPrimitives.Multiply(y, inv, y);
        return inv;
    }

    /// <summary>dx = inv (dy - mean(dy) - y mean(dy y)) over one plane, from the output y.</summary>
    public static void PlaneNormBackward(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> dx, float inv)
    {
        int n = y.Length;
        float meanDy = TensorPrimitives.Sum(dy) / n;
        float meanDyY = TensorPrimitives.Dot(dy, y) / n;
        // dx = (dy - meanDy - y * meanDyY) * inv
        TensorPrimitives.MultiplyAdd(y, -meanDyY, dy, dx);
        TensorPrimitives.Subtract(dx, meanDy, dx);
        TensorPrimitives.Multiply(dx, inv, dx);
    }

    /// <summary>Mean and biased variance of channel <paramref name="c"/> over a batch (N x C x plane).</summary>
    public static (double Mean, double Var) ChannelStats(ReadOnlySpan<float> x, int batch, int channels, int plane, int c)
    {
        double sum = 0, sq = 0;
        for (int n = 0; n < batch; n++)
            sum += TensorPrimitives.Sum(x.Slice((n * channels + c) * plane, plane));
        double mean = sum / ((double)batch * plane);
        for (int n = 0; n < batch; n++)
        {
            var p = x.Slice((n * channels + c) * plane, plane);
            for (int i = 0; i < p.Length; i++) { double d = p[i] - mean; sq += d * d; }
        }
        return (mean, sq / ((double)batch * plane));
    }

    /// <summary>y = gamma (x - mean) inv + beta for channel c of every image.</summary>
    public static void ChannelAffine(ReadOnlySpan<float> x, Span<float> y, int batch, int channels, int plane, int c,
        float mean, float inv, float gamma, float beta)
    {
        float scale = gamma * inv, shift = beta - mean * scale;
        for (int n = 0; n < batch; n++)
        {
            int o = (n * channels + c) * plane;
            TensorPrimitives.Multiply(x.Slice(o, plane), scale, y.Slice(o, plane));
            TensorPrimitives.Add(y.Slice(o, plane), shift, y.Slice(o, plane));
        }
    }

    /// <summary>
    /// Batch-norm backward for channel c: returns (dgamma, dbeta) and writes
    /// dx = gamma inv / M (M dy - sum dy - xhat sum(dy xhat)), xhat = (x - mean) inv, M = batch x plane.
    /// </summary>
    public static (float DGamma, float DBeta) BatchNormBackward(ReadOnlySpan<float> x, ReadOnlySpan<float> dy, Span<float> dx,
        int batch, int channels, int plane, int c, float mean, float inv, float gamma, bool needInputGrad)
    {
        double sumDy = 0, sumDyX = 0;
        for (int n = 0; n < batch; n++)
        {
            int o = (n * channels + c) * plane;
            var dyp = dy.Slice(o, plane);
            sumDy += TensorPrimitives.Sum(dyp);
            sumDyX += TensorPrimitives.Dot(dyp, x.Slice(o, plane));
        }
        double m = (double)batch * plane;
        // sum(dy xhat) = inv (sum(dy x) - mean sum(dy))
        double sumDyXhat = inv * (sumDyX - mean * sumDy);
        if (needInputGrad)
        {
            // dx = a dy + b x + c0 with a = gamma inv, b = -gamma inv^2 sum(dy xhat) / M, c0 = -a sum(dy)/M - b mean
            float a = gamma * inv;
            float b = (float)(-gamma * inv * inv * sumDyXhat / m);
            float c0 = (float)(-a * sumDy / m - b * mean);
            for (int n = 0; n < batch; n++)
            {
                int o = (n * channels + c) * plane;
                var dxp = dx.Slice(o, plane);
                TensorPrimitives.Multiply(dy.Slice(o, plane), a, dxp);
                TensorPrimitives.MultiplyAdd(x.Slice(o, plane), b, dxp, dxp);
                TensorPrimitives.Add(dxp, c0, dxp);
            }
        }
        return ((float)sumDyXhat, (float)sumDy);
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
    /// The gradient reaching a batch norm's output through a ReLU clamped to [0, cap] (from the ReLU's output y):
    /// g[i] = dy[i] where 0 &lt; y[i] &lt; cap, else 0. Without a ReLU (cap NaN) g = dy.
    /// </summary>
    public static void MaskedGradient(ReadOnlySpan<float> y, ReadOnlySpan<float> dy, Span<float> g, float cap)
    {
        if (float.IsNaN(cap)) dy.CopyTo(g);
        else ElementwiseKernels.Map(y, dy, g, new ReluGradOp(cap));
    }

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
    public float Invoke(float x) => MathF.Min(MathF.Max(MathF.FusedMultiplyAdd(x, scale, shift), low), high);
    public Vector256<float> Invoke(Vector256<float> x) =>
        Vector256.Min(Vector256.Max(Vector256.FusedMultiplyAdd(x, Vector256.Create(scale), Vector256.Create(shift)), Vector256.Create(low)), Vector256.Create(high));
}

/// <summary>dx = fma(g, a, fma(x, b, c)).</summary>
public readonly struct BatchNormGradOp(float a, float b, float c) : IBinaryOperator
{
    public float Invoke(float g, float x) => MathF.FusedMultiplyAdd(g, a, MathF.FusedMultiplyAdd(x, b, c));
    public Vector256<float> Invoke(Vector256<float> g, Vector256<float> x) =>
        Vector256.FusedMultiplyAdd(g, Vector256.Create(a), Vector256.FusedMultiplyAdd(x, Vector256.Create(b), Vector256.Create(c)));
}
