namespace HpCnn.Imaging;

/// <summary>Layout of one pixel of a <see cref="RasterImage"/>: 8-bit channels, interleaved; the value is the channel count.</summary>
public enum PixelFormat
{
    Gray = 1,
    GrayAlpha = 2,
    Rgb = 3,
    Rgba = 4,
}

/// <summary>What a transparent pixel is composited on when alpha is dropped.</summary>
public enum AlphaBackground
{
    /// <summary>Transparent becomes 0: the background of MNIST-style data (light object on black).</summary>
    Black,
    White,
}

/// <summary>
/// An 8-bit image: <see cref="Height"/> rows of <see cref="Width"/> pixels, each <see cref="Channels"/> bytes
/// in the order of <see cref="Format"/> (gray; gray, alpha; R, G, B; R, G, B, A), rows top to bottom with no
/// padding, so pixel (x, y) channel c is <c>Pixels[(y * Width + x) * Channels + c]</c>. Alpha is straight
/// (not premultiplied). <see cref="ImageDecoding.Decode(ReadOnlySpan{byte}, string)"/> produces every PNG, JPEG, BMP and GIF in this form
/// (16-bit samples keep their high byte).
/// </summary>
public sealed class RasterImage
{
    /// <summary>Luma weights of ITU-R BT.601, the ones of PIL's <c>convert("L")</c> and OpenCV's <c>cvtColor</c>.</summary>
    public const float LumaR = 0.299f, LumaG = 0.587f, LumaB = 0.114f;

    public int Width { get; }
    public int Height { get; }
    public PixelFormat Format { get; }
    public int Channels => (int)Format;
    public bool HasAlpha => Format is PixelFormat.GrayAlpha or PixelFormat.Rgba;
    /// <summary>Width * Height * Channels bytes; see the class summary for the layout.</summary>
    public byte[] Pixels { get; }

    /// <summary>
    /// An image over <paramref name="pixels"/> (not copied), or a new all-zero one when it is null.
    /// Width and height must be in 1..<see cref="ImageDecoding.MaxDimension"/> with at most <see cref="ImageDecoding.MaxPixels"/> pixels.
    /// </summary>
    public RasterImage(int width, int height, PixelFormat format, byte[]? pixels = null)
    {
        ImageDecoding.CheckSize(width, height, msg => new ArgumentException(msg));
        if (!Enum.IsDefined(format)) throw new ArgumentException($"unknown pixel format {(int)format}", nameof(format));
        int length = width * height * (int)format;
        if (pixels is not null && pixels.Length != length)
            throw new ArgumentException($"a {width}x{height} {format} image needs {length} bytes, got {pixels.Length}", nameof(pixels));
        Width = width;
        Height = height;
        Format = format;
        Pixels = pixels ?? new byte[length];
    }

    /// <summary>The bytes of row <paramref name="y"/>.</summary>
    public Span<byte> Row(int y)
    {
        if ((uint)y >= (uint)Height) throw new ArgumentOutOfRangeException(nameof(y), $"row {y} of an image {Height} rows high");
        int stride = Width * Channels;
        return Pixels.AsSpan(y * stride, stride);
    }

    /// <summary>Channel <paramref name="c"/> of pixel (<paramref name="x"/>, <paramref name="y"/>).</summary>
    public byte this[int x, int y, int c]
    {
        get
        {
            if ((uint)x >= (uint)Width || (uint)y >= (uint)Height || (uint)c >= (uint)Channels)
                throw new ArgumentOutOfRangeException(nameof(x), $"({x}, {y}, channel {c}) is outside a {Width}x{Height} {Format} image");
            return Pixels[(y * Width + x) * Channels + c];
        }
    }

    /// <summary>The luma plane (H x W) in [0, 1]; see <see cref="ToPlanes(Span{float}, int, AlphaBackground)"/>.</summary>
    public float[] ToGrayscale(AlphaBackground background = AlphaBackground.Black) => ToPlanes(1, background);

    /// <summary>
    /// The image as <paramref name="channels"/> float planes (C x H x W, CHW like the engine's input) in [0, 1]:
    /// 1 gives luma (0.299 R + 0.587 G + 0.114 B), 3 gives R, G, B (gray repeated). Alpha, if any, is
    /// composited on <paramref name="background"/> (black by default): out = value * a + background * (1 - a).
    /// </summary>
    public float[] ToPlanes(int channels, AlphaBackground background = AlphaBackground.Black)
    {
        if (channels is not (1 or 3)) throw new ArgumentException($"channels must be 1 (gray) or 3 (RGB), got {channels}", nameof(channels));
        var planes = new float[channels * Width * Height];
        ToPlanes(planes, channels, background);
        return planes;
    }

    /// <summary>Writes <see cref="ToPlanes(int, AlphaBackground)"/> into <paramref name="destination"/> (exactly C * H * W floats) without allocating.</summary>
    public void ToPlanes(Span<float> destination, int channels, AlphaBackground background = AlphaBackground.Black)
    {
        if (channels is not (1 or 3)) throw new ArgumentException($"channels must be 1 (gray) or 3 (RGB), got {channels}", nameof(channels));
        int plane = Width * Height;
        if (destination.Length != channels * plane)
            throw new ArgumentException($"destination holds {destination.Length} floats, {channels}x{Height}x{Width} needs {channels * plane}", nameof(destination));
        float bg = background == AlphaBackground.White ? 1f : 0f;
        int n = Channels;
        ReadOnlySpan<byte> px = Pixels;
        const float inv = 1f / 255f;
        for (int i = 0; i < plane; i++)
        {
            var p = px.Slice(i * n, n);
            float r, g, b;
            if (n <= 2) r = g = b = p[0] * inv;
            else { r = p[0] * inv; g = p[1] * inv; b = p[2] * inv; }
            if (n is 2 or 4)
            {
                float a = p[n - 1] * inv, keep = bg * (1 - a);
                r = r * a + keep; g = g * a + keep; b = b * a + keep;
            }
            if (channels == 1)
                destination[i] = n <= 2 ? r : LumaR * r + LumaG * g + LumaB * b;
            else
            {
                destination[i] = r;
                destination[plane + i] = g;
                destination[2 * plane + i] = b;
            }
        }
    }

    /// <summary>This image with alpha composited on <paramref name="background"/> and colour reduced to luma or gray expanded, as needed.</summary>
    public RasterImage ConvertTo(PixelFormat format, AlphaBackground background = AlphaBackground.Black)
    {
        if (!Enum.IsDefined(format)) throw new ArgumentException($"unknown pixel format {(int)format}", nameof(format));
        if (format == Format) return new RasterImage(Width, Height, Format, (byte[])Pixels.Clone());
        int plane = Width * Height, n = Channels, m = (int)format;
        bool srcColor = n >= 3, dstColor = m >= 3, srcAlpha = HasAlpha, dstAlpha = m is 2 or 4;
        var output = new RasterImage(Width, Height, format);
        var dst = output.Pixels;
        int bg = background == AlphaBackground.White ? 255 : 0;
        for (int i = 0; i < plane; i++)
        {
            int s = i * n, d = i * m;
            int r = Pixels[s], g = srcColor ? Pixels[s + 1] : r, b = srcColor ? Pixels[s + 2] : r;
            int a = srcAlpha ? Pixels[s + n - 1] : 255;
            if (srcAlpha && !dstAlpha)
            {
                r = (r * a + bg * (255 - a) + 127) / 255;
                g = (g * a + bg * (255 - a) + 127) / 255;
                b = (b * a + bg * (255 - a) + 127) / 255;
            }
            if (dstColor) { dst[d] = (byte)r; dst[d + 1] = (byte)g; dst[d + 2] = (byte)b; }
            else dst[d] = srcColor ? (byte)Math.Clamp(MathF.Round(LumaR * r + LumaG * g + LumaB * b), 0, 255) : (byte)r;
            if (dstAlpha) dst[d + m - 1] = (byte)a;
        }
        return output;
    }

    /// <summary>
    /// This image resampled to <paramref name="width"/> x <paramref name="height"/> with <see cref="Resample.Bilinear"/>
    /// (antialiased when shrinking). Colour is weighted by alpha so transparent pixels do not bleed their colour.
    /// </summary>
    public RasterImage Resize(int width, int height)
    {
        ImageDecoding.CheckSize(width, height, msg => new ArgumentException(msg));
        int n = Channels, srcPlane = Width * Height, dstPlane = width * height;
        var src = new float[n * srcPlane];
        for (int i = 0; i < srcPlane; i++)
            for (int c = 0; c < n; c++) src[c * srcPlane + i] = Pixels[i * n + c];
        if (HasAlpha)
        {
            var alpha = src.AsSpan((n - 1) * srcPlane, srcPlane);
            for (int c = 0; c < n - 1; c++)
            {
                var p = src.AsSpan(c * srcPlane, srcPlane);
                for (int i = 0; i < srcPlane; i++) p[i] *= alpha[i] * (1f / 255f);
            }
        }
        var dst = new float[n * dstPlane];
        Resample.Bilinear(src, n, Height, Width, dst, height, width);
        var output = new RasterImage(width, height, Format);
        for (int i = 0; i < dstPlane; i++)
        {
            float a = HasAlpha ? dst[(n - 1) * dstPlane + i] : 255f;
            float unpremultiply = HasAlpha ? (a > 0 ? 255f / a : 0f) : 1f;
            for (int c = 0; c < n; c++)
            {
                float v = dst[c * dstPlane + i];
                if (HasAlpha && c < n - 1) v *= unpremultiply;
                output.Pixels[i * n + c] = (byte)Math.Clamp(MathF.Round(v), 0f, 255f);
            }
        }
        return output;
    }
}
