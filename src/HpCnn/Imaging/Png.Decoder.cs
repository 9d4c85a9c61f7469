using System.Buffers.Binary;
using System.IO.Compression;

namespace HpCnn.Imaging;

public static partial class Png
{
    /// <summary>Deflate's largest possible expansion (a 258-byte match in 2 bits), plus room for the zlib wrapper.</summary>
    private const long MaxInflateRatio = 1032;

    /// <summary>The IHDR fields that shape the pixel data.</summary>
    private readonly record struct Header(int Width, int Height, int BitDepth, int ColorType, bool Interlaced)
    {
        public int SamplesPerPixel => ColorType switch { 0 => 1, 2 => 3, 3 => 1, 4 => 2, _ => 4 };
        public int BitsPerPixel => SamplesPerPixel * BitDepth;
        /// <summary>The byte distance of the Sub/Average/Paeth predictors: whole bytes per pixel, at least 1.</summary>
        public int FilterStride => Math.Max(1, BitsPerPixel / 8);
        public long RowBytes(int pixels) => ((long)pixels * BitsPerPixel + 7) / 8;
        public string Describe() =>
            $"{Width}x{Height}, {ColorTypeName(ColorType)}, {BitDepth}-bit{(Interlaced ? ", Adam7-interlaced" : "")}";
    }

    /// <summary>Adam7 passes: first column, first row, column step, row step.</summary>
    private static readonly (int X0, int Y0, int Dx, int Dy)[] Adam7 =
        [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)];

    private static readonly (int X0, int Y0, int Dx, int Dy)[] SinglePass = [(0, 0, 1, 1)];

    private static string ColorTypeName(int colorType) => colorType switch
    {
        0 => "grayscale",
        2 => "RGB",
        3 => "palette",
        4 => "grayscale+alpha",
        6 => "RGBA",
        _ => $"color type {colorType}",
    };

    /// <summary>"a grayscale image", "an RGB image", ...</summary>
    private static string AnImage(int colorType) => (colorType is 2 or 6 ? "an " : "a ") + ColorTypeName(colorType) + " image";

    private static string ChunkName(ReadOnlySpan<byte> type)
    {
        foreach (byte b in type)
            if (!char.IsAsciiLetter((char)b)) return $"0x{Convert.ToHexString(type)}";
        return $"'{(char)type[0]}{(char)type[1]}{(char)type[2]}{(char)type[3]}'";
    }

    private static uint Tag(string s) => (uint)s[0] << 24 | (uint)s[1] << 16 | (uint)s[2] << 8 | s[3];

    private static readonly uint IHDR = Tag("IHDR"), PLTE = Tag("PLTE"), tRNS = Tag("tRNS"), IDAT = Tag("IDAT"), IEND = Tag("IEND");

    private static PngImage Decode(ReadOnlySpan<byte> data, string name)
    {
        InvalidDataException Bad(string message) => new($"{name}: {message}");

        var signature = Signature;
        if (data.Length < signature.Length)
        {
            if (data.Length > 0 && signature.StartsWith(data))
                throw Bad($"truncated: {data.Length} bytes, shorter than the 8-byte PNG signature");
            throw Bad($"not a PNG file ({data.Length} bytes, the PNG signature is 8)");
        }
        if (!data[..8].SequenceEqual(signature))
            throw Bad($"not a PNG file (signature {Convert.ToHexString(data[..8])}, expected {Convert.ToHexString(signature)})");

        Header? header = null;
        byte[]? palette = null;       // RGB triples
        byte[]? paletteAlpha = null;  // tRNS of a palette image, one alpha per entry (missing entries are opaque)
        int[]? colorKey = null;       // tRNS of a gray (1 value) or RGB (3 values) image, in sample units
        var idat = new List<(int Offset, int Length)>();
        long idatBytes = 0;
        bool idatEnded = false;
        int pos = signature.Length;
        while (true)
        {
            int left = data.Length - pos;
            if (left == 0) throw Bad(header is null ? "truncated: no IHDR chunk after the signature" : "truncated: the file ends before the IEND chunk");
            if (left < 12) throw Bad($"truncated: {left} bytes at offset {pos}, a chunk needs at least 12");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(data[pos..]);
            var typeBytes = data.Slice(pos + 4, 4);
            string chunk = ChunkName(typeBytes);
            if (chunk.StartsWith("0x", StringComparison.Ordinal))
                throw Bad($"corrupt chunk at offset {pos}: type {chunk} is not four ASCII letters");
            if (length > int.MaxValue) throw Bad($"chunk {chunk} at offset {pos}: length {length} exceeds the PNG limit of 2^31-1");
            if (length > left - 12)
                throw Bad($"truncated: chunk {chunk} at offset {pos} declares {length} data bytes, only {Math.Max(0, left - 12)} remain (plus its 4-byte CRC)");
            var body = data.Slice(pos + 8, (int)length);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(data[(pos + 8 + (int)length)..]);
            uint computed = HpCnn.IO.Crc32.Compute(data.Slice(pos + 4, 4 + (int)length));
            if (stored != computed)
                throw Bad($"CRC mismatch in chunk {chunk} at offset {pos} (stored 0x{stored:X8}, computed 0x{computed:X8}): the file is corrupt");
            uint type = BinaryPrimitives.ReadUInt32BigEndian(typeBytes);

            if (header is null && type != IHDR) throw Bad($"the first chunk is {chunk}, expected 'IHDR'");
            if (idat.Count > 0 && type != IDAT) idatEnded = true;

            if (type == IHDR)
            {
                if (header is not null) throw Bad("more than one IHDR chunk");
                header = ParseHeader(body, Bad);
            }
            else if (type == PLTE)
            {
                var h = header!.Value;
                if (h.ColorType is 0 or 4) throw Bad($"PLTE chunk in {AnImage(h.ColorType)}");
                if (palette is not null) throw Bad("more than one PLTE chunk");
                if (idat.Count > 0) throw Bad("PLTE chunk after IDAT");
                if (paletteAlpha is not null) throw Bad("PLTE chunk after tRNS");
                if (length == 0 || length % 3 != 0 || length > 768)
                    throw Bad($"PLTE chunk of {length} bytes: expected 1 to 256 RGB entries (a multiple of 3 up to 768 bytes)");
                int entries = (int)length / 3;
                if (h.ColorType == 3 && entries > 1 << h.BitDepth)
                    throw Bad($"PLTE chunk has {entries} entries, more than a {h.BitDepth}-bit index can address");
                palette = body.ToArray();
            }
            else if (type == tRNS)
            {
                var h = header!.Value;
                if (paletteAlpha is not null || colorKey is not null) throw Bad("more than one tRNS chunk");
                if (idat.Count > 0) throw Bad("tRNS chunk after IDAT");
                switch (h.ColorType)
                {
                    case 0:
                        if (length != 2) throw Bad($"tRNS chunk of {length} bytes in a grayscale image, expected 2");
                        colorKey = [BinaryPrimitives.ReadUInt16BigEndian(body)];
                        break;
                    case 2:
                        if (length != 6) throw Bad($"tRNS chunk of {length} bytes in an RGB image, expected 6");
                        colorKey = [BinaryPrimitives.ReadUInt16BigEndian(body), BinaryPrimitives.ReadUInt16BigEndian(body[2..]), BinaryPrimitives.ReadUInt16BigEndian(body[4..])];
                        break;
                    case 3:
                        if (palette is null) throw Bad("tRNS chunk before PLTE in a palette image");
                        if (length > palette.Length / 3)
                            throw Bad($"tRNS chunk has {length} alpha values, more than the {palette.Length / 3} palette entries");
                        paletteAlpha = new byte[palette.Length / 3];
                        paletteAlpha.AsSpan().Fill(255);
                        body.CopyTo(paletteAlpha);
                        break;
                    default:
                        throw Bad($"tRNS chunk in {AnImage(h.ColorType)}, which has an alpha channel already");
                }
            }
            else if (type == IDAT)
            {
                if (idatEnded) throw Bad($"IDAT chunk at offset {pos} after other chunks: the IDAT chunks must be consecutive");
                if (header!.Value.ColorType == 3 && palette is null) throw Bad("palette image without a PLTE chunk before its IDAT");
                idat.Add((pos + 8, (int)length));
                idatBytes += length;
            }
            else if (type == IEND)
            {
                if (length != 0) throw Bad($"IEND chunk has {length} data bytes, expected 0");
                break;
            }
            else if ((typeBytes[0] & 0x20) == 0)
            {
                // Bit 5 of the first letter clear (uppercase): critical, and not one we know how to honour.
                throw Bad($"unsupported critical chunk {chunk} at offset {pos}");
            }
            pos += 12 + (int)length;
        }

        var hdr = header!.Value;
        if (idat.Count == 0) throw Bad("no IDAT chunk: the file holds no image data");

        var passes = hdr.Interlaced ? Adam7 : SinglePass;
        long expected = 0;
        foreach (var (x0, y0, dx, dy) in passes)
        {
            int pw = (hdr.Width - x0 + dx - 1) / dx, ph = (hdr.Height - y0 + dy - 1) / dy;
            if (pw > 0 && ph > 0) expected += ph * (1 + hdr.RowBytes(pw));
        }
        if (expected > idatBytes * MaxInflateRatio + 64)
            throw Bad($"IDAT data too short: {idatBytes} compressed bytes cannot inflate to the {expected} bytes a {hdr.Describe()} image needs");

        var compressed = new byte[idatBytes];
        int at = 0;
        foreach (var (offset, len) in idat)
        {
            data.Slice(offset, len).CopyTo(compressed.AsSpan(at));
            at += len;
        }
        var raw = new byte[expected];
        using (var zlib = new ZLibStream(new MemoryStream(compressed, writable: false), CompressionMode.Decompress))
        {
            int got, extra;
            try
            {
                got = zlib.ReadAtLeast(raw, raw.Length, throwOnEndOfStream: false);
                extra = got == raw.Length ? zlib.ReadByte() : -1;
            }
            // zlib reports some corrupt streams as ZLibException, an IOException, not InvalidDataException (found by
            // fuzzing: a C caller got HPCNN_IO_ERROR for a corrupt file); both are the file's fault.
            catch (Exception e) when (e is InvalidDataException or IOException) // the source is a MemoryStream: an IOException is zlib's
            {
                throw new InvalidDataException($"{name}: corrupt zlib data in IDAT ({e.Message})", e);
            }
            if (got < raw.Length)
                throw Bad($"IDAT data too short: it inflates to {got} bytes, a {hdr.Describe()} image needs {expected}");
            if (extra >= 0)
                throw Bad($"IDAT data too long: it inflates to more than the {expected} bytes a {hdr.Describe()} image needs");
        }

        var format = hdr.ColorType switch
        {
            0 => colorKey is null ? PixelFormat.Gray : PixelFormat.GrayAlpha,
            2 or 3 => colorKey is null && paletteAlpha is null ? PixelFormat.Rgb : PixelFormat.Rgba,
            4 => PixelFormat.GrayAlpha,
            _ => PixelFormat.Rgba,
        };
        var image = new PngImage(hdr.Width, hdr.Height, format);
        var pixelSource = new PixelSource(hdr, palette, paletteAlpha, colorKey, image);

        int rowStart = 0;
        for (int p = 0; p < passes.Length; p++)
        {
            var (x0, y0, dx, dy) = passes[p];
            int pw = (hdr.Width - x0 + dx - 1) / dx, ph = (hdr.Height - y0 + dy - 1) / dy;
            if (pw == 0 || ph == 0) continue;
            int rowBytes = (int)hdr.RowBytes(pw);
            var prior = new byte[rowBytes]; // the row above the first row is zeros
            for (int r = 0; r < ph; r++)
            {
                var rowSpan = raw.AsSpan(rowStart, 1 + rowBytes);
                var row = rowSpan[1..];
                int filter = rowSpan[0];
                if (filter > 4)
                {
                    string where = hdr.Interlaced ? $"row {r} of Adam7 pass {p + 1}" : $"row {r}";
                    throw Bad($"{where}: unknown filter type {filter} (expected 0 to 4)");
                }
                Unfilter(filter, row, r == 0 ? prior : raw.AsSpan(rowStart - rowBytes, rowBytes), hdr.FilterStride);
                string? error = pixelSource.Expand(row, pw, y0 + r * dy, x0, dx);
                if (error is not null) throw Bad(error);
                rowStart += 1 + rowBytes;
            }
        }
        return image;
    }

    private static Header ParseHeader(ReadOnlySpan<byte> body, Func<string, InvalidDataException> bad)
    {
        if (body.Length != 13) throw bad($"IHDR chunk of {body.Length} bytes, expected 13");
        uint width = BinaryPrimitives.ReadUInt32BigEndian(body);
        uint height = BinaryPrimitives.ReadUInt32BigEndian(body[4..]);
        int bitDepth = body[8], colorType = body[9], compression = body[10], filter = body[11], interlace = body[12];
        CheckSize(width, height, msg => bad(msg));
        int[] allowed = colorType switch
        {
            0 => [1, 2, 4, 8, 16],
            2 or 4 or 6 => [8, 16],
            3 => [1, 2, 4, 8],
            _ => throw bad($"unknown color type {colorType} (expected 0, 2, 3, 4 or 6)"),
        };
        if (Array.IndexOf(allowed, bitDepth) < 0)
            throw bad($"bit depth {bitDepth} is not allowed in {AnImage(colorType)} (color type {colorType} allows {string.Join(", ", allowed)})");
        if (compression != 0) throw bad($"unknown compression method {compression} (only 0, deflate, exists)");
        if (filter != 0) throw bad($"unknown filter method {filter} (only 0 exists)");
        if (interlace > 1) throw bad($"unknown interlace method {interlace} (expected 0, none, or 1, Adam7)");
        return new Header((int)width, (int)height, bitDepth, colorType, interlace == 1);
    }

    /// <summary>Reverses a PNG filter in place: <paramref name="row"/> holds the filtered bytes, <paramref name="prior"/> the decoded row above.</summary>
    private static void Unfilter(int filter, Span<byte> row, ReadOnlySpan<byte> prior, int stride)
    {
        int n = row.Length;
        switch (filter)
        {
            case 1:
                for (int i = stride; i < n; i++) row[i] += row[i - stride];
                break;
            case 2:
                for (int i = 0; i < n; i++) row[i] += prior[i];
                break;
            case 3:
                for (int i = 0; i < stride && i < n; i++) row[i] += (byte)(prior[i] >> 1);
                for (int i = stride; i < n; i++) row[i] += (byte)((row[i - stride] + prior[i]) >> 1);
                break;
            case 4:
                for (int i = 0; i < stride && i < n; i++) row[i] += prior[i]; // Paeth with a = c = 0 picks b
                for (int i = stride; i < n; i++) row[i] += Paeth(row[i - stride], prior[i], prior[i - stride]);
                break;
        }
    }

    internal static byte Paeth(byte a, byte b, byte c)
    {
        int p = a + b - c;
        int pa = Math.Abs(p - a), pb = Math.Abs(p - b), pc = Math.Abs(p - c);
        return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }

    /// <summary>Turns unfiltered rows of PNG samples into 8-bit pixels of the output image.</summary>
    private sealed class PixelSource(Header header, byte[]? palette, byte[]? paletteAlpha, int[]? colorKey, PngImage image)
    {
        private readonly int _channels = image.Channels;
        private readonly byte[] _pixels = image.Pixels;

        /// <summary>Writes the <paramref name="count"/> pixels of <paramref name="row"/> to (x0 + i * dx, y); returns an error or null.</summary>
        public string? Expand(ReadOnlySpan<byte> row, int count, int y, int x0, int dx)
        {
            int n = _channels, bitDepth = header.BitDepth, spp = header.SamplesPerPixel;
            int baseIndex = (y * header.Width + x0) * n, step = dx * n;
            var px = _pixels;
            if (bitDepth == 8 && header.ColorType != 3 && colorKey is null && dx == 1)
            {
                row.CopyTo(px.AsSpan(baseIndex, count * n));
                return null;
            }
            Span<int> s = stackalloc int[4];
            for (int i = 0, o = baseIndex; i < count; i++, o += step)
            {
                for (int k = 0; k < spp; k++) s[k] = Sample(row, i * spp + k, bitDepth);
                if (header.ColorType == 3)
                {
                    int index = s[0], entries = palette!.Length / 3;
                    if (index >= entries)
                        return $"pixel ({x0 + i * dx}, {y}): palette index {index} is out of range (the palette has {entries} entries)";
                    px[o] = palette[3 * index];
                    px[o + 1] = palette[3 * index + 1];
                    px[o + 2] = palette[3 * index + 2];
                    if (paletteAlpha is not null) px[o + 3] = paletteAlpha[index];
                    continue;
                }
                for (int k = 0; k < spp; k++) px[o + k] = To8Bit(s[k], bitDepth);
                if (colorKey is not null)
                {
                    bool transparent = s[0] == colorKey[0] && (spp == 1 || (s[1] == colorKey[1] && s[2] == colorKey[2]));
                    px[o + spp] = transparent ? (byte)0 : (byte)255;
                }
            }
            return null;
        }

        private static int Sample(ReadOnlySpan<byte> row, int index, int bitDepth)
        {
            switch (bitDepth)
            {
                case 8: return row[index];
                case 16: return row[2 * index] << 8 | row[2 * index + 1];
                default:
                    int bit = index * bitDepth;
                    return (row[bit >> 3] >> (8 - bitDepth - (bit & 7))) & ((1 << bitDepth) - 1);
            }
        }

        private static byte To8Bit(int sample, int bitDepth) => bitDepth switch
        {
            1 => (byte)(sample * 255),
            2 => (byte)(sample * 85),
            4 => (byte)(sample * 17),
            8 => (byte)sample,
            _ => (byte)((sample + 128) / 257), // round(sample * 255 / 65535): 257 is odd, so there are no ties
        };
    }
}
