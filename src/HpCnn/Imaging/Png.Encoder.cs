using System.Buffers.Binary;
using System.IO.Compression;

namespace HpCnn.Imaging;

public static partial class Png
{
    /// <summary>Compressed data is split into IDAT chunks of at most this many bytes.</summary>
    private const int MaxIdatChunk = 1 << 20;

    private static byte[] EncodeImage(PngImage image, PngFilter filter, CompressionLevel compression)
    {
        int n = image.Channels, stride = image.Width * n;
        byte colorType = image.Format switch
        {
            PixelFormat.Gray => 0,
            PixelFormat.GrayAlpha => 4,
            PixelFormat.Rgb => 2,
            _ => 6,
        };

        var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, compression, leaveOpen: true))
        {
            var zeros = new byte[stride];
            var candidate = new byte[1 + stride];
            var best = new byte[1 + stride];
            for (int y = 0; y < image.Height; y++)
            {
                ReadOnlySpan<byte> row = image.Row(y), prior = y == 0 ? zeros : image.Row(y - 1);
                if (filter != PngFilter.Adaptive)
                {
                    ApplyFilter((int)filter, row, prior, n, best);
                }
                else
                {
                    long bestCost = long.MaxValue;
                    for (int f = 0; f <= 4; f++)
                    {
                        ApplyFilter(f, row, prior, n, candidate);
                        long cost = 0;
                        foreach (byte b in candidate.AsSpan(1)) cost += b < 128 ? b : 256 - b;
                        if (cost < bestCost)
                        {
                            bestCost = cost;
                            candidate.CopyTo(best, 0);
                        }
                    }
                }
                zlib.Write(best);
            }
        }

        var output = new MemoryStream((int)Math.Min(int.MaxValue, compressed.Length + 64 + compressed.Length / MaxIdatChunk * 12));
        output.Write(Signature);
        Span<byte> ihdr = stackalloc byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, image.Width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr[4..], image.Height);
        ihdr[8] = 8;          // bit depth
        ihdr[9] = colorType;
        ihdr[10] = 0;         // deflate
        ihdr[11] = 0;         // adaptive filtering with five basic filter types
        ihdr[12] = 0;         // not interlaced
        WriteChunk(output, "IHDR", ihdr);
        var idat = compressed.GetBuffer().AsSpan(0, (int)compressed.Length);
        for (int at = 0; at < idat.Length; at += MaxIdatChunk)
            WriteChunk(output, "IDAT", idat.Slice(at, Math.Min(MaxIdatChunk, idat.Length - at)));
        WriteChunk(output, "IEND", []);
        return output.ToArray();
    }

    /// <summary>Writes filter byte <paramref name="filter"/> and the filtered <paramref name="row"/> to <paramref name="output"/> (1 + row length bytes).</summary>
    private static void ApplyFilter(int filter, ReadOnlySpan<byte> row, ReadOnlySpan<byte> prior, int stride, Span<byte> output)
    {
        output[0] = (byte)filter;
        var dst = output[1..];
        for (int i = 0; i < row.Length; i++)
        {
            byte a = i >= stride ? row[i - stride] : (byte)0;
            byte c = i >= stride ? prior[i - stride] : (byte)0;
            byte b = prior[i];
            dst[i] = filter switch
            {
                0 => row[i],
                1 => (byte)(row[i] - a),
                2 => (byte)(row[i] - b),
                3 => (byte)(row[i] - ((a + b) >> 1)),
                _ => (byte)(row[i] - Paeth(a, b, c)),
            };
        }
    }

    private static void WriteChunk(Stream output, string type, ReadOnlySpan<byte> data)
    {
        Span<byte> head = stackalloc byte[8];
        BinaryPrimitives.WriteInt32BigEndian(head, data.Length);
        for (int i = 0; i < 4; i++) head[4 + i] = (byte)type[i];
        output.Write(head);
        output.Write(data);
        uint crc = HpCnn.IO.Crc32.Append(HpCnn.IO.Crc32.Compute(head[4..]), data);
        Span<byte> tail = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(tail, crc);
        output.Write(tail);
    }
}
