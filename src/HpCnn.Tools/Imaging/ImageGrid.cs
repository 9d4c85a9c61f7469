namespace HpCnn.Imaging;

/// <summary>Which values set the range a tile's colours span.</summary>
public enum TileNormalization
{
    /// <summary>Each tile spans the full colour range on its own (feature maps: shows the pattern of every channel).</summary>
    PerTile,
    /// <summary>One range for all tiles (filters: shows which are strong and which are weak).</summary>
    Global,
}

/// <summary>How a normalised value t in [0, 1] becomes a colour.</summary>
public enum ColorMap
{
    /// <summary>Black (0) to white (1); renders a gray image.</summary>
    Gray,
    /// <summary>Blue (0, 0, 255) through white (t = 0.5) to red (255, 0, 0); with a symmetric range, zero is white. Renders RGB.</summary>
    Diverging,
}

/// <summary>A closed range of values; <see cref="Min"/> maps to t = 0 and <see cref="Max"/> to t = 1.</summary>
public readonly record struct ValueRange(float Min, float Max)
{
    /// <summary>Smallest and largest finite value (0, 0 when there is none).</summary>
    public static ValueRange Of(ReadOnlySpan<float> values)
    {
        float lo = float.PositiveInfinity, hi = float.NegativeInfinity;
        foreach (float v in values)
        {
            if (!float.IsFinite(v)) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        return lo <= hi ? new ValueRange(lo, hi) : new ValueRange(0, 0);
    }

    /// <summary>(-m, m) for m the largest finite |value|, so that zero sits in the middle.</summary>
    public static ValueRange SymmetricOf(ReadOnlySpan<float> values)
    {
        float m = 0;
        foreach (float v in values)
            if (float.IsFinite(v)) m = Math.Max(m, Math.Abs(v));
        return new ValueRange(-m, m);
    }

    /// <summary>The smallest range holding both.</summary>
    public ValueRange Union(ValueRange other) => new(Math.Min(Min, other.Min), Math.Max(Max, other.Max));
}

/// <summary>Layout and colouring of <see cref="ImageGrid.RenderTiles"/>.</summary>
public sealed record TileGridOptions
{
    /// <summary>Tiles per row; 0 picks ceil(sqrt(tiles)). Never more than the number of tiles.</summary>
    public int Columns { get; init; }
    /// <summary>Each value becomes a Scale x Scale block of pixels (nearest neighbour), 1 to 64.</summary>
    public int Scale { get; init; } = 1;
    /// <summary>Pixels between neighbouring tiles (none around the edge), 0 to 64.</summary>
    public int Gap { get; init; } = 1;
    public TileNormalization Normalization { get; init; } = TileNormalization.PerTile;
    /// <summary>Use (-m, m) with m the largest |value| in scope, so zero maps to the middle colour.</summary>
    public bool Symmetric { get; init; }
    public ColorMap ColorMap { get; init; } = ColorMap.Gray;
    /// <summary>A fixed range for every tile, overriding <see cref="Normalization"/> and <see cref="Symmetric"/>.</summary>
    public ValueRange? Range { get; init; }
    /// <summary>Gray level of the gaps, of unused cells of the last row and of NaN values.</summary>
    public byte GapShade { get; init; } = 64;
}

/// <summary>
/// Pictures of float tensors: a grid of equally sized tiles, each one plane of values. Values are mapped
/// linearly to t in [0, 1] by a range (see <see cref="TileGridOptions"/>), clamped, and coloured by a
/// <see cref="ColorMap"/>. Non-finite values never widen a range; +inf and -inf draw as the ends of the
/// colour map, NaN in the gap shade. When a range is empty (min = max) every value in it maps to t = 0,
/// or to 0.5 when the range is symmetric, so an all-zero feature map is black and an all-zero filter white.
/// </summary>
public static class ImageGrid
{
    /// <summary>
    /// Renders <paramref name="tiles"/> planes of <paramref name="tileH"/> x <paramref name="tileW"/> values
    /// (<paramref name="values"/> is tiles x tileH x tileW, row-major) into a grid, tile t at row t / columns,
    /// column t % columns. The image is columns * tileW * scale + (columns - 1) * gap pixels wide and
    /// rows * tileH * scale + (rows - 1) * gap high; it is gray for <see cref="ColorMap.Gray"/>, RGB otherwise.
    /// </summary>
    public static RasterImage RenderTiles(ReadOnlySpan<float> values, int tiles, int tileH, int tileW, TileGridOptions? options = null)
    {
        var o = options ?? new TileGridOptions();
        if (tiles <= 0 || tileH <= 0 || tileW <= 0)
            throw new ArgumentException($"tiles, tile height and tile width must be positive, got {tiles} tiles of {tileH}x{tileW}");
        long tileSize = (long)tileH * tileW;
        if (values.Length != tiles * tileSize)
            throw new ArgumentException($"{tiles} tiles of {tileH}x{tileW} need {tiles * tileSize} values, got {values.Length}", nameof(values));
        if (o.Scale is < 1 or > 64) throw new ArgumentException($"scale must be 1 to 64, got {o.Scale}", nameof(options));
        if (o.Gap is < 0 or > 64) throw new ArgumentException($"gap must be 0 to 64, got {o.Gap}", nameof(options));
        if (o.Columns < 0) throw new ArgumentException($"columns must be 0 (automatic) or positive, got {o.Columns}", nameof(options));
        if (o.Range is { } fixedRange && !(float.IsFinite(fixedRange.Min) && float.IsFinite(fixedRange.Max) && fixedRange.Min <= fixedRange.Max))
            throw new ArgumentException($"range must be finite with min <= max, got [{fixedRange.Min}, {fixedRange.Max}]", nameof(options));

        int columns = Math.Min(tiles, o.Columns > 0 ? o.Columns : (int)Math.Ceiling(Math.Sqrt(tiles)));
        int rows = (tiles + columns - 1) / columns;
        int cellW = tileW * o.Scale, cellH = tileH * o.Scale;
        long width = (long)columns * cellW + (long)(columns - 1) * o.Gap;
        long height = (long)rows * cellH + (long)(rows - 1) * o.Gap;
        ImageDecoding.CheckSize(width, height, msg => new ArgumentException($"the tile grid is too large: {msg}"));

        var format = o.ColorMap == ColorMap.Gray ? PixelFormat.Gray : PixelFormat.Rgb;
        var image = new RasterImage((int)width, (int)height, format);
        image.Pixels.AsSpan().Fill(o.GapShade);

        bool symmetric = o.Range is null && o.Symmetric;
        ValueRange global = o.Range ?? (symmetric ? ValueRange.SymmetricOf(values) : ValueRange.Of(values));
        int n = image.Channels, stride = (int)width * n;
        Span<byte> colour = stackalloc byte[3];
        for (int t = 0; t < tiles; t++)
        {
            var tile = values.Slice((int)(t * tileSize), (int)tileSize);
            var range = o.Range is not null || o.Normalization == TileNormalization.Global ? global
                : symmetric ? ValueRange.SymmetricOf(tile) : ValueRange.Of(tile);
            int x0 = t % columns * (cellW + o.Gap), y0 = t / columns * (cellH + o.Gap);
            for (int y = 0; y < tileH; y++)
                for (int x = 0; x < tileW; x++)
                {
                    float v = tile[y * tileW + x];
                    if (float.IsNaN(v)) continue; // stays in the gap shade
                    Colour(Normalise(v, range, symmetric), o.ColorMap, colour);
                    for (int sy = 0; sy < o.Scale; sy++)
                    {
                        var line = image.Pixels.AsSpan((y0 + y * o.Scale + sy) * stride + (x0 + x * o.Scale) * n, o.Scale * n);
                        for (int sx = 0; sx < o.Scale; sx++) colour[..n].CopyTo(line[(sx * n)..]);
                    }
                }
        }
        return image;
    }

    /// <summary>
    /// Convolution weights (outChannels x inChannels x kernelH x kernelW) as a grid with one row per output
    /// channel and one column per input channel (or a square-ish grid when there is one input channel), one
    /// range for all (symmetric around zero, or <paramref name="range"/>), blue-white-red.
    /// Pass the union of two weight sets' <see cref="ValueRange.SymmetricOf"/> as <paramref name="range"/> to
    /// compare them on one scale (e.g. initial and learned filters, joined with <see cref="Concat"/>).
    /// </summary>
    public static RasterImage RenderFilters(ReadOnlySpan<float> weights, int outChannels, int inChannels, int kernelH, int kernelW,
        int scale = 8, ValueRange? range = null)
    {
        if (outChannels <= 0 || inChannels <= 0)
            throw new ArgumentException($"channel counts must be positive, got {outChannels} out x {inChannels} in");
        return RenderTiles(weights, outChannels * inChannels, kernelH, kernelW, new TileGridOptions
        {
            Columns = inChannels > 1 ? inChannels : 0,
            Scale = scale,
            Gap = 1,
            Normalization = TileNormalization.Global,
            Symmetric = true,
            ColorMap = ColorMap.Diverging,
            Range = range,
        });
    }

    /// <summary>The feature maps of one sample (channels x height x width), each stretched to black..white on its own.</summary>
    public static RasterImage RenderFeatureMaps(ReadOnlySpan<float> maps, int channels, int height, int width, int scale = 2) =>
        RenderTiles(maps, channels, height, width, new TileGridOptions { Scale = scale, Gap = 2, Normalization = TileNormalization.PerTile });

    /// <summary>
    /// Places images next to each other (left to right, or top to bottom), aligned at the top or left edge,
    /// <paramref name="gap"/> pixels apart, on a background of gray level <paramref name="shade"/>. The result
    /// is RGB if any input has colour, gray otherwise, with alpha if any input has alpha.
    /// </summary>
    public static RasterImage Concat(IReadOnlyList<RasterImage> images, int gap = 8, bool horizontal = true, byte shade = 255)
    {
        ArgumentNullException.ThrowIfNull(images);
        if (images.Count == 0) throw new ArgumentException("no images to join", nameof(images));
        if (gap is < 0 or > 1024) throw new ArgumentException($"gap must be 0 to 1024, got {gap}", nameof(gap));
        bool colour = images.Any(i => i.Channels >= 3), alpha = images.Any(i => i.HasAlpha);
        var format = (colour, alpha) switch
        {
            (false, false) => PixelFormat.Gray,
            (false, true) => PixelFormat.GrayAlpha,
            (true, false) => PixelFormat.Rgb,
            _ => PixelFormat.Rgba,
        };
        long along = images.Sum(i => (long)(horizontal ? i.Width : i.Height)) + (long)gap * (images.Count - 1);
        long across = images.Max(i => horizontal ? i.Height : i.Width);
        long width = horizontal ? along : across, height = horizontal ? across : along;
        ImageDecoding.CheckSize(width, height, msg => new ArgumentException($"the joined image is too large: {msg}"));

        var output = new RasterImage((int)width, (int)height, format);
        int n = output.Channels;
        for (int i = 0; i < output.Pixels.Length; i += n)
        {
            output.Pixels.AsSpan(i, alpha ? n - 1 : n).Fill(shade);
            if (alpha) output.Pixels[i + n - 1] = 255;
        }
        int offset = 0;
        foreach (var source in images)
        {
            var img = source.Format == format ? source : source.ConvertTo(format);
            int x0 = horizontal ? offset : 0, y0 = horizontal ? 0 : offset;
            for (int y = 0; y < img.Height; y++)
                img.Row(y).CopyTo(output.Row(y0 + y)[(x0 * n)..]);
            offset += (horizontal ? img.Width : img.Height) + gap;
        }
        return output;
    }

    private static float Normalise(float v, ValueRange range, bool symmetric)
    {
        if (range.Max > range.Min) return Math.Clamp((v - range.Min) / (range.Max - range.Min), 0f, 1f);
        return v > range.Max ? 1f : v < range.Min ? 0f : symmetric ? 0.5f : 0f;
    }

    private static void Colour(float t, ColorMap map, Span<byte> rgb)
    {
        if (map == ColorMap.Gray)
        {
            rgb[0] = (byte)MathF.Round(t * 255f);
            return;
        }
        if (t < 0.5f)
        {
            byte s = (byte)MathF.Round(2f * t * 255f);
            rgb[0] = s; rgb[1] = s; rgb[2] = 255;
        }
        else
        {
            byte s = (byte)MathF.Round((2f - 2f * t) * 255f);
            rgb[0] = 255; rgb[1] = s; rgb[2] = s;
        }
    }
}
