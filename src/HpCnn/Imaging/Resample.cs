namespace HpCnn.Imaging;

/// <summary>
/// Resampling of float planes (C x H x W), separable: rows first, then columns. Kept here rather than taken from a
/// library because StbImageSharp decodes but does not resize, and this small resampler (Pillow's BILINEAR, tested
/// against it) works on the float planes the models take, which an 8-bit image library would round.
/// </summary>
public static class Resample
{
    /// <summary>
    /// Bilinear resampling of <paramref name="channels"/> planes of <paramref name="srcH"/> x <paramref name="srcW"/>
    /// into planes of <paramref name="dstH"/> x <paramref name="dstW"/>. Pixel centres are aligned
    /// (output pixel i samples input coordinate (i + 0.5) * in / out - 0.5), so enlarging is plain
    /// bilinear interpolation; when shrinking, the triangle widens by the scale factor so every input pixel
    /// contributes (Pillow's BILINEAR, including its renormalisation at the edges; a photo shrunk to 28x28 is averaged, not aliased). Same size is a copy.
    /// </summary>
    public static void Bilinear(ReadOnlySpan<float> source, int channels, int srcH, int srcW, Span<float> destination, int dstH, int dstW)
    {
        if (channels <= 0 || srcH <= 0 || srcW <= 0 || dstH <= 0 || dstW <= 0)
            throw new ArgumentException($"every size must be positive: {channels} channel(s), {srcH}x{srcW} to {dstH}x{dstW}");
        long srcLen = (long)channels * srcH * srcW, dstLen = (long)channels * dstH * dstW;
        if (source.Length != srcLen) throw new ArgumentException($"source holds {source.Length} floats, {channels}x{srcH}x{srcW} needs {srcLen}", nameof(source));
        if (destination.Length != dstLen) throw new ArgumentException($"destination holds {destination.Length} floats, {channels}x{dstH}x{dstW} needs {dstLen}", nameof(destination));

        var cols = Taps.For(srcW, dstW);
        var rows = Taps.For(srcH, dstH);
        // Horizontal pass into C x srcH x dstW, then vertical pass into the destination.
        var temp = new float[channels * srcH * dstW];
        for (int r = 0; r < channels * srcH; r++)
        {
            var src = source.Slice(r * srcW, srcW);
            var dst = temp.AsSpan(r * dstW, dstW);
            for (int x = 0; x < dstW; x++)
            {
                int start = cols.Start[x];
                var w = cols.Weights(x);
                float sum = 0;
                for (int k = 0; k < w.Length; k++) sum += w[k] * src[start + k];
                dst[x] = sum;
            }
        }
        for (int c = 0; c < channels; c++)
        {
            var src = temp.AsSpan(c * srcH * dstW, srcH * dstW);
            var dst = destination.Slice(c * dstH * dstW, dstH * dstW);
            for (int y = 0; y < dstH; y++)
            {
                int start = rows.Start[y];
                var w = rows.Weights(y);
                var outRow = dst.Slice(y * dstW, dstW);
                outRow.Clear();
                for (int k = 0; k < w.Length; k++)
                {
                    float wk = w[k];
                    var inRow = src.Slice((start + k) * dstW, dstW);
                    for (int x = 0; x < dstW; x++) outRow[x] += wk * inRow[x];
                }
            }
        }
    }

    /// <summary>For each output index along one axis: the first input index and the normalised weights that follow it.</summary>
    private sealed class Taps
    {
        public readonly int[] Start;
        private readonly int[] _offset;
        private readonly float[] _weights;

        private Taps(int[] start, int[] offset, float[] weights) { Start = start; _offset = offset; _weights = weights; }

        public ReadOnlySpan<float> Weights(int i) => _weights.AsSpan(_offset[i], _offset[i + 1] - _offset[i]);

        public static Taps For(int inSize, int outSize)
        {
            double scale = (double)inSize / outSize;
            double radius = Math.Max(scale, 1.0);
            var start = new int[outSize];
            var offset = new int[outSize + 1];
            var weights = new List<float>(outSize * ((int)Math.Ceiling(radius) * 2 + 1));
            for (int o = 0; o < outSize; o++)
            {
                // Input pixel i covers [i, i + 1); taps outside the image are dropped and the rest renormalised.
                double centre = (o + 0.5) * scale;
                int lo = Math.Max(0, (int)Math.Floor(centre - radius));
                int hi = Math.Min(inSize - 1, (int)Math.Ceiling(centre + radius));
                double total = 0;
                for (int i = lo; i <= hi; i++) total += Tent(i, centre, radius);
                start[o] = lo;
                offset[o] = weights.Count;
                for (int i = lo; i <= hi; i++) weights.Add((float)(Tent(i, centre, radius) / total));
            }
            offset[outSize] = weights.Count;
            return new Taps(start, offset, weights.ToArray());
        }

        private static double Tent(int i, double centre, double radius) => Math.Max(0.0, 1.0 - Math.Abs((i + 0.5 - centre) / radius));
    }
}
