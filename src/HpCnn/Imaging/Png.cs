using System.IO.Compression;

namespace HpCnn.Imaging;

/// <summary>The filter the encoder applies to each row before compression (PNG filter method 0).</summary>
public enum PngFilter
{
    None = 0,
    Sub = 1,
    Up = 2,
    Average = 3,
    Paeth = 4,
    /// <summary>Per row, the filter whose output has the smallest sum of absolute values (as signed bytes): libpng's heuristic.</summary>
    Adaptive = 5,
}

/// <summary>
/// PNG reader and writer, no dependencies beyond the base library (zlib through <see cref="ZLibStream"/>).
/// <para>
/// Decoding covers the whole of PNG's image model: colour types 0 (gray), 2 (RGB), 3 (palette, PLTE and
/// optional tRNS), 4 (gray + alpha) and 6 (RGBA) at every bit depth the specification allows (1, 2, 4, 8, 16),
/// the five filter types, Adam7 interlacing, IDAT split over any number of chunks. Every image comes out as
/// 8-bit <see cref="PngImage"/>: gray, gray + alpha, RGB or RGBA; low bit depths are scaled to 0..255
/// (a 1-bit 1 is 255), 16-bit samples are rounded to the nearest 8-bit value (v / 257), a tRNS colour key or
/// palette alpha adds an alpha channel. Ancillary chunks (gAMA, iCCP, sRGB, pHYs, text, APNG frames, ...)
/// are CRC-checked and ignored: no gamma or colour-profile correction is applied. Bytes after IEND are ignored.
/// </para>
/// <para>
/// The input is not trusted: the signature, every chunk's length (against what is left of the file) and CRC-32,
/// the IHDR fields, chunk order, palette indices and the exact size of the inflated data are checked, and
/// any problem is an <see cref="InvalidDataException"/> saying what and where. Nothing is allocated from a
/// size before it has been checked: the image is at most <see cref="MaxDimension"/> on a side and
/// <see cref="MaxPixels"/> in all, and the IDAT bytes must be able to inflate to the size the header asks for
/// (deflate cannot expand more than 1032:1) before the buffer for them is allocated.
/// </para>
/// <para>Encoding writes 8-bit gray, gray + alpha, RGB or RGBA, non-interlaced.</para>
/// </summary>
public static partial class Png
{
    /// <summary>Largest width or height accepted.</summary>
    public const int MaxDimension = 16384;
    /// <summary>Largest width * height accepted (64 Mi pixels, e.g. 8192 x 8192).</summary>
    public const long MaxPixels = 1L << 26;
    /// <summary>Largest file <see cref="Read"/> loads.</summary>
    public const long MaxFileBytes = 1L << 30;

    internal static ReadOnlySpan<byte> Signature => [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A];

    /// <summary>Reads and decodes the PNG file at <paramref name="path"/>; messages start with the path.</summary>
    public static PngImage Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"PNG file not found: {path}", path);
        long length = new FileInfo(path).Length;
        if (length > MaxFileBytes)
            throw new InvalidDataException($"{path}: {length} bytes, more than the {MaxFileBytes >> 20} MiB accepted for a PNG file");
        return Decode(File.ReadAllBytes(path), path);
    }

    /// <summary>Decodes a PNG held in memory.</summary>
    public static PngImage Decode(ReadOnlySpan<byte> data) => Decode(data, "PNG data");

    /// <summary>Encodes <paramref name="image"/> as an 8-bit, non-interlaced PNG.</summary>
    public static byte[] Encode(PngImage image, PngFilter filter = PngFilter.Adaptive, CompressionLevel compression = CompressionLevel.Optimal)
    {
        ArgumentNullException.ThrowIfNull(image);
        if (!Enum.IsDefined(filter)) throw new ArgumentException($"unknown filter {(int)filter}", nameof(filter));
        return EncodeImage(image, filter, compression);
    }

    /// <summary>Encodes <paramref name="image"/> (see <see cref="Encode"/>) and writes it to <paramref name="path"/>.</summary>
    public static void Write(string path, PngImage image, PngFilter filter = PngFilter.Adaptive, CompressionLevel compression = CompressionLevel.Optimal) =>
        File.WriteAllBytes(path, Encode(image, filter, compression));

    internal static void CheckSize(long width, long height, Func<string, Exception> error)
    {
        if (width <= 0 || height <= 0) throw error($"image size {width}x{height}: width and height must be at least 1");
        if (width > MaxDimension || height > MaxDimension)
            throw error($"image size {width}x{height} exceeds the limit of {MaxDimension} pixels per side");
        if (width * height > MaxPixels)
            throw error($"image size {width}x{height} = {width * height} pixels exceeds the limit of {MaxPixels} pixels");
    }
}
