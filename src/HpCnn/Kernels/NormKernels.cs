using System.Numerics.Tensors;

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
}
