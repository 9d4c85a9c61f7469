using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace HpCnn.Tests.Imaging;

/// <summary>
/// An independent, deliberately plain PNG writer for the decoder tests: bitwise CRC-32, sample packing,
/// the five filters and Adam7 written straight from the specification, not sharing code with the library.
/// Images are given as samples: rows[y][x * samplesPerPixel + k] in the bit depth's own range.
/// </summary>
internal static class PngBuilder
{
    public static readonly byte[] Signature = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A];

    public static readonly (int X0, int Y0, int Dx, int Dy)[] Adam7Passes =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    public static int SamplesPerPixel(int colorType) => colorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, 6 => 4, _ => throw new ArgumentException("color type") };

    /// <summary>CRC-32 one bit at a time (the library uses a table).</summary>
    public static uint Crc(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (byte b in data)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc >> 1) ^ (0xEDB88320u & (uint)-(int)(crc & 1));
        }
        return ~crc;
    }

    public static byte[] Chunk(string type, ReadOnlySpan<byte> data, uint? crc = null)
    {
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteUInt32BigEndian(chunk, (uint)data.Length);
        Encoding.ASCII.GetBytes(type, chunk.AsSpan(4, 4));
        data.CopyTo(chunk.AsSpan(8));
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), crc ?? Crc(chunk.AsSpan(4, 4 + data.Length)));
        return chunk;
    }

    public static byte[] IhdrData(long width, long height, int bitDepth, int colorType, int interlace = 0, int compression = 0, int filter = 0)
    {
        var d = new byte[13];
        BinaryPrimitives.WriteUInt32BigEndian(d, (uint)width);
        BinaryPrimitives.WriteUInt32BigEndian(d.AsSpan(4), (uint)height);
        d[8] = (byte)bitDepth; d[9] = (byte)colorType; d[10] = (byte)compression; d[11] = (byte)filter; d[12] = (byte)interlace;
        return d;
    }

    public static byte[] Ihdr(long width, long height, int bitDepth, int colorType, int interlace = 0) =>
        Chunk("IHDR", IhdrData(width, height, bitDepth, colorType, interlace));

    public static byte[] Iend() => Chunk("IEND", []);

    public static byte[] File(params byte[][] chunks) => [.. Signature, .. chunks.SelectMany(c => c)];

    public static byte[] Zlib(byte[] raw, CompressionLevel level = CompressionLevel.Optimal)
    {
        var ms = new MemoryStream();
        using (var z = new ZLibStream(ms, level, leaveOpen: true)) z.Write(raw);
        return ms.ToArray();
    }

    /// <summary>Packs samples most significant bit first, the last byte padded with zeros.</summary>
    public static byte[] PackRow(IReadOnlyList<int> samples, int bitDepth)
    {
        var bytes = new byte[(samples.Count * bitDepth + 7) / 8];
        for (int i = 0; i < samples.Count; i++)
        {
            int s = samples[i];
            if (bitDepth == 16) { bytes[2 * i] = (byte)(s >> 8); bytes[2 * i + 1] = (byte)s; continue; }
            for (int bit = 0; bit < bitDepth; bit++)
            {
                // bit 0 of the sample field is its most significant bit
                int value = (s >> (bitDepth - 1 - bit)) & 1;
                int pos = i * bitDepth + bit;
                bytes[pos / 8] |= (byte)(value << (7 - pos % 8));
            }
        }
        return bytes;
    }

    private static int PaethPredictor(int a, int b, int c)
    {
        // Spec, section 9.4, word for word.
        int p = a + b - c;
        int pa = Math.Abs(p - a);
        int pb = Math.Abs(p - b);
        int pc = Math.Abs(p - c);
        if (pa <= pb && pa <= pc) return a;
        else if (pb <= pc) return b;
        else return c;
    }

    /// <summary>Filter byte + filtered bytes of <paramref name="row"/>, with <paramref name="prior"/> the unfiltered row above (null for the first).</summary>
    public static byte[] FilterRow(int filter, byte[] row, byte[]? prior, int bpp)
    {
        var output = new byte[row.Length + 1];
        output[0] = (byte)filter;
        for (int i = 0; i < row.Length; i++)
        {
            int x = row[i];
            int a = i >= bpp ? row[i - bpp] : 0;
            int b = prior is null ? 0 : prior[i];
            int c = prior is null || i < bpp ? 0 : prior[i - bpp];
            int predicted = filter switch
            {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => PaethPredictor(a, b, c),
                _ => 0, // an invalid filter type is written as "None" data; the decoder must reject the type byte
            };
            output[i + 1] = (byte)((x - predicted) & 0xFF);
        }
        return output;
    }

    /// <summary>
    /// The uncompressed scanlines of an image: one pass, or the seven Adam7 passes (empty ones omitted).
    /// <paramref name="filterOf"/> picks the filter of the n-th scanline written (counting over all passes).
    /// </summary>
    public static byte[] Scanlines(int[][] rows, int width, int colorType, int bitDepth, bool interlaced, Func<int, int> filterOf)
    {
        int spp = SamplesPerPixel(colorType), height = rows.Length;
        int bpp = Math.Max(1, spp * bitDepth / 8);
        var raw = new List<byte>();
        int line = 0;
        (int X0, int Y0, int Dx, int Dy)[] passes = interlaced ? Adam7Passes : [(0, 0, 1, 1)];
        foreach (var (x0, y0, dx, dy) in passes)
        {
            byte[]? prior = null;
            for (int y = y0; y < height; y += dy)
            {
                var samples = new List<int>();
                for (int x = x0; x < width; x += dx)
                    for (int k = 0; k < spp; k++) samples.Add(rows[y][x * spp + k]);
                if (samples.Count == 0) break; // pass is empty: no scanlines at all
                var packed = PackRow(samples, bitDepth);
                raw.AddRange(FilterRow(filterOf(line++), packed, prior, bpp));
                prior = packed;
            }
        }
        return raw.ToArray();
    }

    /// <summary>A complete PNG; <paramref name="idatPieces"/> splits the zlib stream over that many IDAT chunks.</summary>
    public static byte[] Build(int width, int height, int bitDepth, int colorType, int[][] rows, bool interlaced = false,
        Func<int, int>? filterOf = null, byte[]? plte = null, byte[]? trns = null, int idatPieces = 1, byte[][]? extraChunks = null)
    {
        var z = Zlib(Scanlines(rows, width, colorType, bitDepth, interlaced, filterOf ?? (_ => 0)));
        var chunks = new List<byte[]> { Ihdr(width, height, bitDepth, colorType, interlaced ? 1 : 0) };
        if (extraChunks is not null) chunks.AddRange(extraChunks);
        if (plte is not null) chunks.Add(Chunk("PLTE", plte));
        if (trns is not null) chunks.Add(Chunk("tRNS", trns));
        int piece = (z.Length + idatPieces - 1) / idatPieces;
        for (int at = 0; at < z.Length; at += piece) chunks.Add(Chunk("IDAT", z.AsSpan(at, Math.Min(piece, z.Length - at))));
        chunks.Add(Iend());
        return File([.. chunks]);
    }

    /// <summary>Random samples in [0, 2^bitDepth) (or [0, maxExclusive)) for a width x height image.</summary>
    public static int[][] RandomRows(Random rng, int width, int height, int spp, int bitDepth, int? maxExclusive = null)
    {
        int limit = maxExclusive ?? 1 << bitDepth;
        return Enumerable.Range(0, height).Select(_ => Enumerable.Range(0, width * spp).Select(_ => rng.Next(limit)).ToArray()).ToArray();
    }
}
