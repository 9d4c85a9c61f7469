using System.Buffers.Binary;
using System.Text;
using HpCnn.Imaging;

namespace HpCnn.Tests.Imaging;

public class PngErrorTests
{
    private static readonly int[][] GrayRows = [[0, 50, 100], [150, 200, 250]];

    private static byte[] ValidGray() => PngBuilder.Build(3, 2, 8, 0, GrayRows, filterOf: n => n % 5);

    private static byte[] Idat(byte[] raw) => PngBuilder.Chunk("IDAT", PngBuilder.Zlib(raw));

    private static void AssertRejected(byte[] file, params string[] fragments)
    {
        var e = Assert.Throws<InvalidDataException>(() => Png.Decode(file))!;
        foreach (var f in fragments) Assert.That(e.Message, Does.Contain(f).IgnoreCase, $"message: {e.Message}");
    }

    [Test]
    public void Crc32MatchesKnownValues()
    {
        Assert.That(HpCnn.IO.Crc32.Compute("123456789"u8), Is.EqualTo(0xCBF43926u), "the CRC-32/ISO-HDLC check value");
        Assert.That(HpCnn.IO.Crc32.Compute("IEND"u8), Is.EqualTo(0xAE426082u), "the CRC every PNG ends with");
        Assert.That(HpCnn.IO.Crc32.Compute([]), Is.EqualTo(0u));
        var rng = new Random(3);
        var data = new byte[1000];
        rng.NextBytes(data);
        Assert.That(HpCnn.IO.Crc32.Compute(data), Is.EqualTo(PngBuilder.Crc(data)));
    }

    [Test]
    public void RejectsABadSignature()
    {
        var file = ValidGray();
        file[1] = (byte)'J';
        AssertRejected(file, "not a PNG file", "signature");
        AssertRejected("GIF89a\0\0\0\0\0\0"u8.ToArray(), "not a PNG file");
        AssertRejected([], "not a PNG file");
    }

    [Test]
    public void RejectsEveryTruncation()
    {
        var file = ValidGray();
        for (int length = 0; length < file.Length; length++)
        {
            var e = Assert.Throws<InvalidDataException>(() => Png.Decode(file.AsSpan(0, length)), $"{length} of {file.Length} bytes")!;
            Assert.That(e.Message, Does.Contain("truncated").Or.Contain("not a PNG file"), $"{length} bytes: {e.Message}");
        }
    }

    [Test]
    public void RejectsEverySingleByteCorruption()
    {
        // CRC-32 catches every error confined to 32 bits; changes to a length field break the chunk framing.
        var file = ValidGray();
        for (int i = 0; i < file.Length; i++)
        {
            var bad = (byte[])file.Clone();
            bad[i] ^= 0x5A;
            Assert.Throws<InvalidDataException>(() => Png.Decode(bad), $"byte {i} changed");
        }
    }

    [Test]
    public void RejectsACrcMismatchNamingTheChunk()
    {
        var rows = PngBuilder.Zlib(PngBuilder.Scanlines(GrayRows, 3, 0, 8, false, _ => 0));
        var file = PngBuilder.File(PngBuilder.Ihdr(3, 2, 8, 0), PngBuilder.Chunk("IDAT", rows, crc: 0x12345678), PngBuilder.Iend());
        AssertRejected(file, "CRC mismatch", "'IDAT'", "0x12345678");
        // Ancillary chunks are checked too.
        file = PngBuilder.File(PngBuilder.Ihdr(3, 2, 8, 0), PngBuilder.Chunk("tEXt", "a\0b"u8, crc: 1), PngBuilder.Chunk("IDAT", rows), PngBuilder.Iend());
        AssertRejected(file, "CRC mismatch", "'tEXt'");
    }

    [Test]
    public void RejectsImageDataThatIsTooShortOrTooLong()
    {
        var raw = PngBuilder.Scanlines(GrayRows, 3, 0, 8, false, _ => 0); // 2 x (1 + 3) bytes
        Assert.That(raw, Has.Length.EqualTo(8));
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(3, 2, 8, 0), Idat(raw[..^1]), PngBuilder.Iend()), "too short", "7", "8");
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(3, 2, 8, 0), Idat([.. raw, 0]), PngBuilder.Iend()), "too long", "8");
        // Interlaced, 3x2 has four non-empty passes of one row each: 4 filter bytes + 1 + 1 + 1 + 3 samples = 10.
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(3, 2, 8, 0, interlace: 1), Idat(raw), PngBuilder.Iend()), "too short", "needs 10");
    }

    [Test]
    public void RejectsCorruptZlibData()
    {
        var z = PngBuilder.Zlib(PngBuilder.Scanlines(GrayRows, 3, 0, 8, false, _ => 0));
        var garbage = Enumerable.Repeat((byte)0xFF, 40).ToArray();
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(3, 2, 8, 0), PngBuilder.Chunk("IDAT", garbage), PngBuilder.Iend()), "IDAT");
        var badAdler = (byte[])z.Clone();
        badAdler[^1] ^= 1;
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(3, 2, 8, 0), PngBuilder.Chunk("IDAT", badAdler), PngBuilder.Iend()), "corrupt zlib data");
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(3, 2, 8, 0), PngBuilder.Chunk("IDAT", z[..^6]), PngBuilder.Iend()), "IDAT");
    }

    [Test]
    public void RejectsAbsurdDimensionsWithoutAllocating()
    {
        // Tiny files that announce huge images: rejected from the header, before any buffer is sized from it.
        var tinyIdat = Idat([0, 0, 0, 0]);
        foreach (var (w, h, fragment) in new[]
        {
            (100000L, 100000L, "exceeds the limit of 16384 pixels per side"),
            (0xFFFFFFFFL, 1L, "exceeds the limit"),
            (1L, 0x80000000L, "exceeds the limit"),
            (16384L, 16384L, "exceeds the limit of 67108864 pixels"),
            (0L, 5L, "at least 1"),
        })
        {
            var file = PngBuilder.File(PngBuilder.Ihdr(w, h, 16, 6), tinyIdat, PngBuilder.Iend());
            long before = GC.GetAllocatedBytesForCurrentThread();
            var e = Assert.Throws<InvalidDataException>(() => Png.Decode(file))!;
            long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            Assert.That(e.Message, Does.Contain(fragment), e.Message);
            Assert.That(allocated, Is.LessThan(1 << 20), $"{w}x{h}: allocated {allocated} bytes");
        }
    }

    [Test]
    public void RejectsAHeaderLargerThanItsCompressedDataCouldHoldWithoutAllocating()
    {
        // 8192 x 8192 RGBA16 is within the limits (512 MiB of samples), but 10 bytes cannot inflate to that.
        var file = PngBuilder.File(PngBuilder.Ihdr(8192, 8192, 16, 6), Idat([0, 0, 0, 0]), PngBuilder.Iend());
        long before = GC.GetAllocatedBytesForCurrentThread();
        var e = Assert.Throws<InvalidDataException>(() => Png.Decode(file))!;
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(e.Message, Does.Contain("too short").And.Contain("cannot inflate"));
        Assert.That(allocated, Is.LessThan(1 << 20));
    }

    [Test]
    public void RejectsAChunkLengthBeyondTheFileOrTheFormatLimit()
    {
        var file = ValidGray();
        // The IDAT chunk follows the 8-byte signature and the 25-byte IHDR chunk.
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(33), 1_000_000);
        AssertRejected(file, "truncated", "'IDAT'", "1000000");
        BinaryPrimitives.WriteUInt32BigEndian(file.AsSpan(33), 0x80000000);
        AssertRejected(file, "2^31-1");
    }

    [TestCase(2, 4, "bit depth 4 is not allowed in an RGB image")]
    [TestCase(3, 16, "bit depth 16 is not allowed in a palette image")]
    [TestCase(6, 1, "bit depth 1 is not allowed")]
    [TestCase(0, 3, "bit depth 3 is not allowed")]
    [TestCase(5, 8, "unknown color type 5")]
    [TestCase(1, 8, "unknown color type 1")]
    public void RejectsInvalidColorTypeAndBitDepth(int colorType, int bitDepth, string fragment)
    {
        var file = PngBuilder.File(PngBuilder.Ihdr(3, 2, bitDepth, colorType), Idat(new byte[64]), PngBuilder.Iend());
        AssertRejected(file, fragment);
    }

    [Test]
    public void RejectsUnknownMethods()
    {
        byte[] Header(int compression = 0, int filter = 0, int interlace = 0) => PngBuilder.File(
            PngBuilder.Chunk("IHDR", PngBuilder.IhdrData(3, 2, 8, 0, interlace, compression, filter)), Idat(new byte[8]), PngBuilder.Iend());
        AssertRejected(Header(compression: 1), "unknown compression method 1");
        AssertRejected(Header(filter: 1), "unknown filter method 1");
        AssertRejected(Header(interlace: 2), "unknown interlace method 2");
        AssertRejected(PngBuilder.File(PngBuilder.Chunk("IHDR", new byte[12]), Idat(new byte[8]), PngBuilder.Iend()), "IHDR chunk of 12 bytes");
    }

    [Test]
    public void RejectsAnUnknownRowFilterNamingTheRow()
    {
        var raw = PngBuilder.Scanlines(GrayRows, 3, 0, 8, false, n => n == 1 ? 5 : 0);
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(3, 2, 8, 0), Idat(raw), PngBuilder.Iend()), "row 1", "unknown filter type 5");
        var rows = PngBuilder.RandomRows(new Random(1), 9, 9, 1, 8);
        raw = PngBuilder.Scanlines(rows, 9, 0, 8, true, n => n == 3 ? 200 : 0);
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(9, 9, 8, 0, 1), Idat(raw), PngBuilder.Iend()), "pass 2", "unknown filter type 200");
    }

    [Test]
    public void RejectsBrokenChunkStructure()
    {
        var ihdr = PngBuilder.Ihdr(3, 2, 8, 0);
        var raw = PngBuilder.Scanlines(GrayRows, 3, 0, 8, false, _ => 0);
        var z = PngBuilder.Zlib(raw);
        var idat = PngBuilder.Chunk("IDAT", z);
        var iend = PngBuilder.Iend();
        AssertRejected(PngBuilder.File(idat, ihdr, iend), "first chunk is 'IDAT', expected 'IHDR'");
        AssertRejected(PngBuilder.File(ihdr, ihdr, idat, iend), "more than one IHDR");
        AssertRejected(PngBuilder.File(ihdr, iend), "no IDAT chunk");
        AssertRejected(PngBuilder.File(ihdr, idat), "truncated", "before the IEND");
        AssertRejected(PngBuilder.File(ihdr, idat, PngBuilder.Chunk("IEND", [0])), "IEND chunk has 1 data bytes");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("IDAT", z.AsSpan(0, 4)), PngBuilder.Chunk("tEXt", "a\0b"u8),
            PngBuilder.Chunk("IDAT", z.AsSpan(4)), iend), "must be consecutive");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("ABCD", [1]), idat, iend), "unsupported critical chunk 'ABCD'");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("a1cd", [1]), idat, iend), "not four ASCII letters");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("PLTE", [1, 2, 3]), idat, iend), "PLTE chunk in a grayscale image");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("tRNS", [0, 1, 2]), idat, iend), "tRNS chunk of 3 bytes");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("tRNS", [0, 1]), PngBuilder.Chunk("tRNS", [0, 1]), idat, iend), "more than one tRNS");
        AssertRejected(PngBuilder.File(ihdr, idat, PngBuilder.Chunk("tRNS", [0, 1]), iend), "tRNS chunk after IDAT");
        var rgba = PngBuilder.Ihdr(1, 1, 8, 6);
        AssertRejected(PngBuilder.File(rgba, PngBuilder.Chunk("tRNS", [0, 1, 0, 1, 0, 1]), Idat(new byte[5]), iend), "alpha channel already");
    }

    [Test]
    public void RejectsPaletteProblems()
    {
        int[][] rows = [[0, 1, 2, 3]];
        var raw = PngBuilder.Scanlines(rows, 4, 3, 2, false, _ => 0);
        var ihdr = PngBuilder.Ihdr(4, 1, 2, 3);
        var idat = Idat(raw);
        var iend = PngBuilder.Iend();
        byte[] plte3 = [10, 11, 12, 20, 21, 22, 30, 31, 32]; // 3 entries; the image uses index 3
        AssertRejected(PngBuilder.File(ihdr, idat, iend), "without a PLTE");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("PLTE", plte3), idat, iend), "pixel (3, 0)", "palette index 3 is out of range", "3 entries");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("PLTE", new byte[15]), idat, iend), "5 entries, more than a 2-bit index");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("PLTE", new byte[10]), idat, iend), "PLTE chunk of 10 bytes");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("PLTE", new byte[12]), PngBuilder.Chunk("tRNS", new byte[5]), idat, iend),
            "5 alpha values, more than the 4 palette entries");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("tRNS", new byte[1]), PngBuilder.Chunk("PLTE", new byte[12]), idat, iend), "tRNS chunk before PLTE");
        AssertRejected(PngBuilder.File(ihdr, PngBuilder.Chunk("PLTE", new byte[12]), PngBuilder.Chunk("PLTE", new byte[12]), idat, iend), "more than one PLTE");
    }

    [Test]
    public void ReadNamesTheFileInItsMessages()
    {
        string path = Path.Combine(Path.GetTempPath(), $"hpcnn-bad-{Guid.NewGuid():N}.png");
        File.WriteAllBytes(path, Encoding.ASCII.GetBytes("not a png at all"));
        try
        {
            var e = Assert.Throws<InvalidDataException>(() => Png.Read(path))!;
            Assert.That(e.Message, Does.StartWith(path + ": ").And.Contain("not a PNG file"));
        }
        finally
        {
            File.Delete(path);
        }
        Assert.Throws<FileNotFoundException>(() => Png.Read(path));
    }
}
