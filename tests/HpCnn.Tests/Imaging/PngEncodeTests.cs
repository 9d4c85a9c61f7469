using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using HpCnn.Imaging;

namespace HpCnn.Tests.Imaging;

public class PngEncodeTests
{
    private static IEnumerable<TestCaseData> RoundTripCases()
    {
        foreach (var format in Enum.GetValues<PixelFormat>())
            foreach (var (w, h) in new[] { (1, 1), (3, 5), (28, 28), (100, 7) })
                foreach (var filter in Enum.GetValues<PngFilter>())
                    yield return new TestCaseData(format, w, h, filter).SetName($"RoundTrip_{format}_{w}x{h}_{filter}");
    }

    /// <summary>Noise, a smooth gradient and flat areas, so every filter wins somewhere under the adaptive heuristic.</summary>
    private static PngImage TestImage(PixelFormat format, int width, int height, int seed)
    {
        var rng = new Random(seed);
        var image = new PngImage(width, height, format);
        int n = image.Channels;
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                for (int c = 0; c < n; c++)
                {
                    int i = (y * width + x) * n + c;
                    image.Pixels[i] = (y % 3) switch
                    {
                        0 => (byte)rng.Next(256),
                        1 => (byte)(x * 7 + y * 3 + c * 40),
                        _ => (byte)(x < width / 2 ? 200 : 10 + c),
                    };
                }
        return image;
    }

    [TestCaseSource(nameof(RoundTripCases))]
    public void EncodeThenDecodeGivesTheSameImage(PixelFormat format, int width, int height, PngFilter filter)
    {
        var image = TestImage(format, width, height, width * 31 + height);
        var decoded = Png.Decode(Png.Encode(image, filter));
        Assert.That((decoded.Width, decoded.Height, decoded.Format), Is.EqualTo((width, height, format)));
        Assert.That(decoded.Pixels, Is.EqualTo(image.Pixels));
    }

    [Test]
    public void WritesAWellFormedFile()
    {
        var image = TestImage(PixelFormat.Rgb, 5, 4, 1);
        var file = Png.Encode(image);
        Assert.That(file.AsSpan(0, 8).ToArray(), Is.EqualTo(PngBuilder.Signature));

        // Walk the chunks with the test's own CRC: IHDR, IDAT..., IEND.
        var types = new List<string>();
        var idat = new MemoryStream();
        int pos = 8;
        while (pos < file.Length)
        {
            int length = (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos));
            string type = Encoding.ASCII.GetString(file, pos + 4, 4);
            uint crc = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos + 8 + length));
            Assert.That(crc, Is.EqualTo(PngBuilder.Crc(file.AsSpan(pos + 4, 4 + length))), $"CRC of {type}");
            if (type == "IHDR")
                Assert.That(file.AsSpan(pos + 8, 13).ToArray(), Is.EqualTo(PngBuilder.IhdrData(5, 4, 8, 2)));
            if (type == "IDAT") idat.Write(file, pos + 8, length);
            types.Add(type);
            pos += 12 + length;
        }
        Assert.That(pos, Is.EqualTo(file.Length));
        Assert.That(types, Is.EqualTo(new[] { "IHDR", "IDAT", "IEND" }));

        // The scanlines inflate (with the framework's zlib, not the decoder) to 4 rows of filter byte + 15 bytes.
        idat.Position = 0;
        using var z = new ZLibStream(idat, CompressionMode.Decompress);
        var raw = new MemoryStream();
        z.CopyTo(raw);
        Assert.That(raw.Length, Is.EqualTo(4 * 16));
        Assert.That(raw.ToArray().Where((_, i) => i % 16 == 0), Is.All.InRange(0, 4));
    }

    [TestCase(PngFilter.None)]
    [TestCase(PngFilter.Sub)]
    [TestCase(PngFilter.Up)]
    [TestCase(PngFilter.Average)]
    [TestCase(PngFilter.Paeth)]
    public void AFixedFilterIsUsedOnEveryRow(PngFilter filter)
    {
        var file = Png.Encode(TestImage(PixelFormat.Gray, 7, 6, 2), filter);
        int idatLength = (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(33));
        using var z = new ZLibStream(new MemoryStream(file, 41, idatLength), CompressionMode.Decompress);
        var raw = new MemoryStream();
        z.CopyTo(raw);
        Assert.That(raw.ToArray().Where((_, i) => i % 8 == 0), Is.All.EqualTo((byte)filter));
    }

    [Test]
    public void LargeImagesSpanSeveralIdatChunks()
    {
        var image = new PngImage(700, 700, PixelFormat.Rgb);
        new Random(9).NextBytes(image.Pixels); // noise does not compress: about 1.5 MB of IDAT data
        var file = Png.Encode(image, PngFilter.None, CompressionLevel.Fastest);
        int idats = 0;
        for (int pos = 8; pos < file.Length; pos += 12 + (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos)))
            if (Encoding.ASCII.GetString(file, pos + 4, 4) == "IDAT") idats++;
        Assert.That(idats, Is.GreaterThan(1));
        Assert.That(Png.Decode(file).Pixels, Is.EqualTo(image.Pixels));
    }

    [Test]
    public void WriteThenReadAFile()
    {
        var image = TestImage(PixelFormat.Rgba, 9, 3, 3);
        string path = Path.Combine(Path.GetTempPath(), $"hpcnn-write-{Guid.NewGuid():N}.png");
        try
        {
            Png.Write(path, image);
            Assert.That(Png.Read(path).Pixels, Is.EqualTo(image.Pixels));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Test]
    public void ImageConstructorChecksItsArguments()
    {
        Assert.Throws<ArgumentException>(() => new PngImage(0, 1, PixelFormat.Gray));
        Assert.Throws<ArgumentException>(() => new PngImage(20000, 1, PixelFormat.Gray));
        Assert.Throws<ArgumentException>(() => new PngImage(2, 2, PixelFormat.Rgb, new byte[11]));
        Assert.Throws<ArgumentException>(() => new PngImage(2, 2, (PixelFormat)5));
        Assert.Throws<ArgumentException>(() => Png.Encode(new PngImage(1, 1, PixelFormat.Gray), (PngFilter)9));
    }
}
