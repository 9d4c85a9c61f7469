using System.Buffers.Binary;
using HpCnn.Imaging;

namespace HpCnn.Tests.Imaging;

public class PngDecodeTests
{
    private static readonly (int ColorType, int[] Depths)[] Combinations =
        [(0, [1, 2, 4, 8, 16]), (2, [8, 16]), (3, [1, 2, 4, 8]), (4, [8, 16]), (6, [8, 16])];

    /// <summary>-1 stands for "row n uses filter n % 5", so every filter sees every other filter's row above it.</summary>
    private static readonly int[] Filters = [0, 1, 2, 3, 4, -1];

    private static IEnumerable<TestCaseData> EveryFormat()
    {
        foreach (var (colorType, depths) in Combinations)
            foreach (int depth in depths)
                foreach (int filter in Filters)
                    foreach (bool interlaced in new[] { false, true })
                        foreach (var (w, h) in new[] { (1, 1), (5, 3), (13, 11) })
                            yield return new TestCaseData(colorType, depth, filter, interlaced, w, h)
                                .SetName($"Decode_ct{colorType}_{depth}bit_filter{(filter < 0 ? "Mixed" : filter)}_{(interlaced ? "adam7" : "plain")}_{w}x{h}");
    }

    private static IEnumerable<TestCaseData> TransparencyCases()
    {
        foreach (var (colorType, depths) in Combinations.Where(c => c.ColorType is 0 or 2 or 3))
            foreach (int depth in depths)
                foreach (bool interlaced in new[] { false, true })
                    yield return new TestCaseData(colorType, depth, interlaced)
                        .SetName($"Decode_tRNS_ct{colorType}_{depth}bit_{(interlaced ? "adam7" : "plain")}");
    }

    [TestCaseSource(nameof(EveryFormat))]
    public void DecodesEveryColorTypeDepthFilterAndInterlace(int colorType, int bitDepth, int filter, bool interlaced, int width, int height)
    {
        var rng = new Random(colorType * 1000 + bitDepth * 100 + filter * 10 + width + (interlaced ? 7 : 0));
        int spp = PngBuilder.SamplesPerPixel(colorType);
        byte[]? plte = null;
        int? maxIndex = null;
        if (colorType == 3)
        {
            int entries = bitDepth == 8 ? 200 : 1 << bitDepth; // a short palette at 8 bits: indices stay below 200
            plte = new byte[3 * entries];
            rng.NextBytes(plte);
            maxIndex = entries;
        }
        var rows = PngBuilder.RandomRows(rng, width, height, spp, bitDepth, maxIndex);
        var file = PngBuilder.Build(width, height, bitDepth, colorType, rows, interlaced,
            filter < 0 ? n => n % 5 : _ => filter, plte, idatPieces: 3);

        var image = ImageDecoding.Decode(file);

        var (format, expected) = ExpectedPixels(rows, width, height, colorType, bitDepth, plte, trns: null);
        Assert.That(image.Width, Is.EqualTo(width));
        Assert.That(image.Height, Is.EqualTo(height));
        Assert.That(image.Format, Is.EqualTo(format));
        Assert.That(image.Pixels, Is.EqualTo(expected));
    }

    [TestCaseSource(nameof(TransparencyCases))]
    public void DecodesTransparencyChunkIntoAlpha(int colorType, int bitDepth, bool interlaced)
    {
        const int width = 13, height = 11;
        var rng = new Random(colorType * 31 + bitDepth);
        int spp = PngBuilder.SamplesPerPixel(colorType);
        byte[]? plte = null;
        byte[] trns;
        int? maxIndex = null;
        if (colorType == 3)
        {
            int entries = Math.Min(1 << bitDepth, 64);
            plte = new byte[3 * entries];
            rng.NextBytes(plte);
            trns = new byte[entries / 2]; // the later half of the palette has no alpha entry: opaque
            rng.NextBytes(trns);
            trns[0] = 0;
            maxIndex = entries;
        }
        else
        {
            trns = new byte[2 * spp];
        }
        var rows = PngBuilder.RandomRows(rng, width, height, spp, bitDepth, maxIndex);
        if (colorType == 3) rows[0][0] = 0; // pixel (0, 0) uses the fully transparent entry
        else
        {
            // Pixel (0, 0) is the key; pixels (1..spp, 0) differ from it in one sample each and must stay opaque.
            for (int k = 0; k < spp; k++) BinaryPrimitives.WriteUInt16BigEndian(trns.AsSpan(2 * k), (ushort)rows[0][k]);
            for (int p = 1; p <= spp; p++)
                for (int k = 0; k < spp; k++) rows[0][p * spp + k] = k == p - 1 ? rows[0][k] ^ 1 : rows[0][k];
        }
        var file = PngBuilder.Build(width, height, bitDepth, colorType, rows, interlaced, n => n % 5, plte, trns);

        var image = ImageDecoding.Decode(file);

        var (format, expected) = ExpectedPixels(rows, width, height, colorType, bitDepth, plte, trns);
        Assert.That(image.Format, Is.EqualTo(format));
        Assert.That(image.HasAlpha, Is.True);
        Assert.That(image.Pixels, Is.EqualTo(expected));
        Assert.That(image[0, 0, image.Channels - 1], Is.EqualTo(0), "pixel (0, 0) carries the transparent key");
        if (colorType != 3)
            for (int p = 1; p <= spp; p++) Assert.That(image[p, 0, image.Channels - 1], Is.EqualTo(255), $"pixel ({p}, 0) is one sample off the key");
    }

    /// <summary>What the decoder must produce, computed from the samples with the specification's formulas.</summary>
    private static (PixelFormat Format, byte[] Pixels) ExpectedPixels(int[][] rows, int width, int height, int colorType, int bitDepth, byte[]? plte, byte[]? trns)
    {
        byte Scale(int s) => bitDepth == 16 ? (byte)(s >> 8) : (byte)(s * 255 / ((1 << bitDepth) - 1));
        int spp = PngBuilder.SamplesPerPixel(colorType);
        var format = colorType switch
        {
            0 => trns is null ? PixelFormat.Gray : PixelFormat.GrayAlpha,
            2 or 3 => trns is null ? PixelFormat.Rgb : PixelFormat.Rgba,
            4 => PixelFormat.GrayAlpha,
            _ => PixelFormat.Rgba,
        };
        var output = new List<byte>();
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
            {
                var s = rows[y].AsSpan(x * spp, spp);
                if (colorType == 3)
                {
                    output.AddRange(plte!.AsSpan(3 * s[0], 3).ToArray());
                    if (trns is not null) output.Add(s[0] < trns.Length ? trns[s[0]] : (byte)255);
                    continue;
                }
                foreach (int v in s) output.Add(Scale(v));
                if (trns is not null)
                {
                    bool key = true;
                    for (int k = 0; k < spp; k++) key &= s[k] == BinaryPrimitives.ReadUInt16BigEndian(trns.AsSpan(2 * k));
                    output.Add(key ? (byte)0 : (byte)255);
                }
            }
        return (format, output.ToArray());
    }

    [Test]
    public void Every16BitValueKeepsItsHighByte()
    {
        var rows = Enumerable.Range(0, 256).Select(y => Enumerable.Range(0, 256).Select(x => y * 256 + x).ToArray()).ToArray();
        var image = ImageDecoding.Decode(PngBuilder.Build(256, 256, 16, 0, rows, filterOf: n => n % 5));
        for (int v = 0; v < 65536; v++)
            Assert.That(image.Pixels[v], Is.EqualTo((byte)(v >> 8)), $"16-bit value {v} (stb_image keeps the high byte)");
    }

    [Test]
    public void DecodesAPngMadeByAnotherEncoder()
    {
        // The widely copied 1x1 "red, half transparent" PNG: RGBA 8-bit, Sub filter, zlib level 9 header (78 DA).
        var file = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==");
        var image = ImageDecoding.Decode(file);
        Assert.That((image.Width, image.Height, image.Format), Is.EqualTo((1, 1, PixelFormat.Rgba)));
        Assert.That(image.Pixels, Is.EqualTo(new byte[] { 255, 0, 0, 127 }));
    }

    [Test]
    public void IgnoresAncillaryChunksSplitIdatAndBytesAfterIend()
    {
        var rng = new Random(5);
        var rows = PngBuilder.RandomRows(rng, 6, 4, 3, 8);
        var z = PngBuilder.Zlib(PngBuilder.Scanlines(rows, 6, 2, 8, false, n => n % 5));
        var file = PngBuilder.File(
            PngBuilder.Ihdr(6, 4, 8, 2),
            PngBuilder.Chunk("gAMA", [0, 0, 0xB1, 0x8F]),
            PngBuilder.Chunk("PLTE", [1, 2, 3, 4, 5, 6]), // a suggested palette in an RGB image changes nothing
            PngBuilder.Chunk("tEXt", "Comment\0made by a test"u8),
            PngBuilder.Chunk("IDAT", z.AsSpan(0, 5)),
            PngBuilder.Chunk("IDAT", z.AsSpan(5)),
            PngBuilder.Chunk("vpAg", [1, 2, 3]),
            PngBuilder.Iend(),
            "trailing garbage"u8.ToArray());

        var image = ImageDecoding.Decode(file);

        Assert.That(image.Format, Is.EqualTo(PixelFormat.Rgb));
        Assert.That(image.Pixels, Is.EqualTo(rows.SelectMany(r => r.Select(v => (byte)v)).ToArray()));
    }

    [Test]
    public void ReadsAFile()
    {
        var rows = new[] { new[] { 0, 128, 255 } };
        string path = Path.Combine(Path.GetTempPath(), $"hpcnn-png-{Guid.NewGuid():N}.png");
        File.WriteAllBytes(path, PngBuilder.Build(3, 1, 8, 0, rows));
        try
        {
            var image = ImageDecoding.Read(path);
            Assert.That(image.Pixels, Is.EqualTo(new byte[] { 0, 128, 255 }));
        }
        finally
        {
            File.Delete(path);
        }
    }

    /// <summary>Fuzzing regression (tests/HpCnn.Fuzz/regressions/png): corrupt IDAT streams on which zlib throws
    /// ZLibException (an IOException) came out as such, not as the InvalidDataException a corrupt file gives.</summary>
    [Test]
    public void CorruptZlibStreamsFoundByFuzzingAreInvalidData()
    {
        var dir = new DirectoryInfo(TestContext.CurrentContext.TestDirectory);
        while (dir != null && !Directory.Exists(Path.Combine(dir.FullName, "tests/HpCnn.Fuzz/regressions/png"))) dir = dir.Parent;
        Assert.That(dir, Is.Not.Null, "tests/HpCnn.Fuzz/regressions/png not found above the test directory");
        var files = Directory.GetFiles(Path.Combine(dir!.FullName, "tests/HpCnn.Fuzz/regressions/png"));
        Assert.That(files, Is.Not.Empty);
        foreach (var f in files)
        {
            var data = File.ReadAllBytes(f);
            // The fuzz harness rewrites each chunk's CRC before decoding; do the same.
            for (long pos = 8; pos + 12 <= data.Length;)
            {
                long length = System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan((int)pos));
                if (pos + 12 + length > data.Length) break;
                System.Buffers.Binary.BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan((int)(pos + 8 + length)),
                    System.IO.Hashing.Crc32.HashToUInt32(data.AsSpan((int)pos + 4, (int)length + 4)));
                pos += 12 + length;
            }
            Assert.That(() => ImageDecoding.Decode(data), Throws.InstanceOf<InvalidDataException>(), Path.GetFileName(f));
        }
    }
}
