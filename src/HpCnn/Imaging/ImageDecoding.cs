using StbImageSharp;

namespace HpCnn.Imaging;

/// <summary>
/// Decodes PNG, JPEG, BMP and GIF (the first frame) with StbImageSharp, a managed port of stb_image (also TGA, PSD
/// and PNM, which stb_image reads too). Image bytes are untrusted input: the header is read first and an image
/// whose size is zero, larger than <see cref="MaxDimension"/> on a side or than <see cref="MaxPixels"/> in all is
/// refused before any pixel memory is allocated; anything the decoder cannot read becomes an
/// <see cref="InvalidDataException"/> naming the file. <see cref="Decode(ReadOnlySpan{byte}, string)"/> is the one
/// entry point the decode fuzz test drives.
/// </summary>
public static class ImageDecoding
{
    /// <summary>Largest width or height accepted.</summary>
    public const int MaxDimension = 16384;
    /// <summary>Largest width x height accepted (64 Mi pixels: 256 MiB as RGBA bytes).</summary>
    public const long MaxPixels = 1L << 26;
    /// <summary>Largest image file accepted.</summary>
    public const long MaxFileBytes = 1L << 30;

    /// <summary>The file name extensions <see cref="Read"/> is meant for (any content stb_image knows is decoded).</summary>
    public static IReadOnlyList<string> Extensions { get; } = [".png", ".jpg", ".jpeg", ".bmp", ".gif"];

    /// <summary>Reads and decodes an image file.</summary>
    public static RasterImage Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"image file not found: {path}", path);
        long length = new FileInfo(path).Length;
        if (length > MaxFileBytes)
            throw new InvalidDataException($"{path}: {length} bytes, more than the {MaxFileBytes >> 20} MiB accepted for an image file");
        return Decode(File.ReadAllBytes(path), path);
    }

    /// <summary>Decodes image bytes (PNG, JPEG, BMP, GIF); <paramref name="name"/> is used in messages.</summary>
    public static RasterImage Decode(ReadOnlySpan<byte> data, string name = "image data")
    {
        if (data.IsEmpty) throw new InvalidDataException($"{name}: empty (0 bytes)");
        if (JpegStart(data) is int jpeg) CheckJpegStructure(data, jpeg, name);
        byte[] bytes = data.ToArray();
        ImageInfo? info;
        try
        {
            using var header = new MemoryStream(bytes, writable: false);
            info = ImageInfo.FromStream(header);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{name}: not a readable image ({e.Message})", e);
        }
        if (info is not { } i) throw new InvalidDataException($"{name}: not an image in a known format (PNG, JPEG, BMP or GIF)");
        CheckSize(i.Width, i.Height, msg => new InvalidDataException($"{name}: {msg}"));
        ImageResult result;
        try
        {
            result = ImageResult.FromMemory(bytes, ColorComponents.Default);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            throw new InvalidDataException($"{name}: corrupt or unsupported image data ({e.Message})", e);
        }
        if (result is null || result.Data is null) throw new InvalidDataException($"{name}: the image could not be decoded");
        if (result.Width != i.Width || result.Height != i.Height)
            throw new InvalidDataException($"{name}: the header says {i.Width}x{i.Height}, the decoder gave {result.Width}x{result.Height}");
        var format = result.Comp switch
        {
            ColorComponents.Grey => PixelFormat.Gray,
            ColorComponents.GreyAlpha => PixelFormat.GrayAlpha,
            ColorComponents.RedGreenBlue => PixelFormat.Rgb,
            ColorComponents.RedGreenBlueAlpha => PixelFormat.Rgba,
            _ => throw new InvalidDataException($"{name}: unsupported pixel layout {result.Comp}"),
        };
        if (result.Data.Length != (long)result.Width * result.Height * (int)format)
            throw new InvalidDataException($"{name}: the decoder gave {result.Data.Length} bytes for a {result.Width}x{result.Height} {format} image");
        return new RasterImage(result.Width, result.Height, format, result.Data);
    }

    /// <summary>
    /// Where the segments start when stb_image would take the data for a JPEG: a start-of-image marker, which it finds
    /// after any number of 0xFF fill bytes (a file of FF FF D8 ... is a JPEG to it); null otherwise.
    /// </summary>
    private static int? JpegStart(ReadOnlySpan<byte> d)
    {
        if (d.IsEmpty || d[0] != 0xFF) return null;
        int p = 1;
        while (p < d.Length && d[p] == 0xFF) p++;
        return p < d.Length && d[p] == 0xD8 ? p + 1 : null;
    }

    /// <summary>
    /// Walks a JPEG's marker segments up to the first scan and checks that each lies inside the data and that an end
    /// marker follows the scan. StbImageSharp 2.30.16 reads zeros past the end of its input and then looks for the next
    /// marker forever (a JPEG cut after 18 bytes hung both ImageInfo and ImageResult; found by the decode fuzz test), so
    /// truncated or desynchronised files are refused here, before the decoder sees them.
    /// </summary>
    private static void CheckJpegStructure(ReadOnlySpan<byte> d, int start, string name)
    {
        int p = start;
        while (true)
        {
            if (p >= d.Length || d[p] != 0xFF)
                throw new InvalidDataException($"{name}: corrupt JPEG (no marker at byte {p}; the file may be truncated)");
            while (p < d.Length && d[p] == 0xFF) p++; // fill bytes
            if (p >= d.Length) throw new InvalidDataException($"{name}: truncated JPEG (ends inside a marker)");
            byte m = d[p++];
            if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue; // markers without a segment
            if (m == 0xD8 || m == 0xD9 || m == 0x00)
                throw new InvalidDataException($"{name}: corrupt JPEG (marker 0x{m:X2} before the first scan)");
            if (p + 2 > d.Length) throw new InvalidDataException($"{name}: truncated JPEG (ends inside the length of marker 0x{m:X2})");
            int length = d[p] << 8 | d[p + 1];
            if (length < 2 || p + length > d.Length)
                throw new InvalidDataException($"{name}: corrupt or truncated JPEG (marker 0x{m:X2} at byte {p - 2} claims {length} bytes, {d.Length - p} remain)");
            p += length;
            if (m == 0xDA) break; // start of scan: entropy-coded data follows
        }
        if (d[p..].IndexOf([(byte)0xFF, (byte)0xD9]) < 0)
            throw new InvalidDataException($"{name}: truncated JPEG (no end-of-image marker after the scan)");
    }

    /// <summary>Checks an image size against the limits; <paramref name="error"/> makes the exception from a message.</summary>
    public static void CheckSize(long width, long height, Func<string, Exception> error)
    {
        if (width <= 0 || height <= 0) throw error($"image size {width}x{height}: width and height must be at least 1");
        if (width > MaxDimension || height > MaxDimension)
            throw error($"image size {width}x{height} exceeds the limit of {MaxDimension} pixels per side");
        if (width * height > MaxPixels)
            throw error($"image size {width}x{height} = {width * height} pixels exceeds the limit of {MaxPixels} pixels");
    }
}
