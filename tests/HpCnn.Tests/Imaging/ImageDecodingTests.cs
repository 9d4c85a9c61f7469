using HpCnn.Imaging;

namespace HpCnn.Tests.Imaging;

/// <summary>
/// Image decoding through StbImageSharp: PNG, JPEG, BMP and GIF give the pixels they hold; bad, truncated, absurdly
/// large and randomly mutated files are refused with an <see cref="InvalidDataException"/> and never crash.
/// </summary>
public class ImageDecodingTests
{
    /// <summary>A 4x3 palette GIF (PIL 9.4): colours black, red, green, blue at indices 0, 1, 2, 3, pixels 0 1 2 3 / 3 2 1 0 / 1 1 2 2.</summary>
    private static readonly byte[] Gif = Convert.FromBase64String("R0lGODdhBAADAIEAAAAAAP8AAAD/AAAA/ywAAAAABAADAAAIDgABBBAwYICAAAIHCggIADs=");
    private static readonly int[] GifIndices = [0, 1, 2, 3, 3, 2, 1, 0, 1, 1, 2, 2];
    private static readonly byte[][] GifPalette = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]];

    private static RasterImage Gradient(int width, int height, PixelFormat format)
    {
        var img = new RasterImage(width, height, format);
        for (int i = 0; i < img.Pixels.Length; i++) img.Pixels[i] = (byte)(i * 7 % 256);
        return img;
    }

    private static byte[] Jpeg(RasterImage img, int quality = 95)
    {
        using var ms = new MemoryStream();
        new StbImageWriteSharp.ImageWriter().WriteJpg(img.Pixels, img.Width, img.Height,
            img.Format == PixelFormat.Gray ? StbImageWriteSharp.ColorComponents.Grey : StbImageWriteSharp.ColorComponents.RedGreenBlue, ms, quality);
        return ms.ToArray();
    }

    private static byte[] Bmp(RasterImage img)
    {
        using var ms = new MemoryStream();
        new StbImageWriteSharp.ImageWriter().WriteBmp(img.Pixels, img.Width, img.Height, StbImageWriteSharp.ColorComponents.RedGreenBlue, ms);
        return ms.ToArray();
    }

    [Test]
    public void DecodesAGifWithItsPalette()
    {
        var img = ImageDecoding.Decode(Gif);
        Assert.That((img.Width, img.Height), Is.EqualTo((4, 3)));
        Assert.That(img.Channels, Is.AtLeast(3));
        for (int i = 0; i < 12; i++)
            for (int c = 0; c < 3; c++)
                Assert.That(img[i % 4, i / 4, c], Is.EqualTo(GifPalette[GifIndices[i]][c]), $"pixel {i} channel {c}");
    }

    [Test]
    public void DecodesABmpExactly()
    {
        var src = Gradient(5, 3, PixelFormat.Rgb);
        var img = ImageDecoding.Decode(Bmp(src));
        Assert.That((img.Width, img.Height, img.Format), Is.EqualTo((5, 3, PixelFormat.Rgb)));
        Assert.That(img.Pixels, Is.EqualTo(src.Pixels));
    }

    [Test]
    public void DecodesAJpegCloseToWhatWasEncoded()
    {
        // A smooth picture: JPEG keeps it within a few levels at quality 95.
        var src = new RasterImage(32, 24, PixelFormat.Rgb);
        for (int y = 0; y < 24; y++)
            for (int x = 0; x < 32; x++)
            {
                int o = (y * 32 + x) * 3;
                src.Pixels[o] = (byte)(x * 8); src.Pixels[o + 1] = (byte)(y * 10); src.Pixels[o + 2] = 128;
            }
        var img = ImageDecoding.Decode(Jpeg(src));
        Assert.That((img.Width, img.Height, img.Format), Is.EqualTo((32, 24, PixelFormat.Rgb)));
        double err = src.Pixels.Zip(img.Pixels, (a, b) => Math.Abs(a - b)).Average();
        Assert.That(err, Is.LessThan(4), "mean absolute error in levels");
    }

    [TestCase(PixelFormat.Gray)]
    [TestCase(PixelFormat.GrayAlpha)]
    [TestCase(PixelFormat.Rgb)]
    [TestCase(PixelFormat.Rgba)]
    public void PngEncodeThenDecodeGivesTheSameImage(PixelFormat format)
    {
        var src = Gradient(13, 6, format);
        var png = ImageEncoding.EncodePng(src);
        Assert.That(png.AsSpan(0, 8).ToArray(), Is.EqualTo(PngBuilder.Signature));
        var back = ImageDecoding.Decode(png);
        Assert.That((back.Width, back.Height, back.Format), Is.EqualTo((13, 6, format)));
        Assert.That(back.Pixels, Is.EqualTo(src.Pixels));
    }

    private static void AssertRejected(byte[] data, params string[] fragments)
    {
        var e = Assert.Throws<InvalidDataException>(() => ImageDecoding.Decode(data, "pic.png"))!;
        Assert.That(e.Message, Does.StartWith("pic.png"), "the message names the file");
        foreach (var f in fragments) Assert.That(e.Message, Does.Contain(f).IgnoreCase, $"message: {e.Message}");
    }

    [Test]
    public void RejectsWhatIsNotAnImage()
    {
        AssertRejected([], "empty");
        AssertRejected("hello, world"u8.ToArray(), "not an image");
        AssertRejected(PngBuilder.Signature, "not");
    }

    [Test]
    public void RejectsAbsurdSizesBeforeAllocating()
    {
        // Headers announcing 100,000 x 100,000 and 16,000 x 16,000 pixels, with a few bytes of data.
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(100_000, 100_000, 8, 0), PngBuilder.Iend())); // stb_image's own limit refuses it
        long before = GC.GetAllocatedBytesForCurrentThread();
        AssertRejected(PngBuilder.File(PngBuilder.Ihdr(16_000, 16_000, 8, 6), PngBuilder.Iend()), "16000x16000", "limit");
        Assert.That(GC.GetAllocatedBytesForCurrentThread() - before, Is.LessThan(1 << 20), "nothing of the announced size was allocated");
    }

    [Test]
    public void TruncatedFilesFailCleanly()
    {
        foreach (var file in new[] { ImageEncoding.EncodePng(Gradient(20, 10, PixelFormat.Rgb)), Jpeg(Gradient(20, 10, PixelFormat.Rgb)), Bmp(Gradient(20, 10, PixelFormat.Rgb)), Gif })
            for (int length = 0; length < file.Length; length += Math.Max(1, file.Length / 60))
            {
                try { ImageDecoding.Decode(file.AsSpan(0, length)); }
                catch (InvalidDataException) { }
            }
    }

    [Test]
    public void ReadNamesTheFile()
    {
        string dir = Directory.CreateTempSubdirectory("hpcnn-img-").FullName;
        try
        {
            string bad = Path.Combine(dir, "broken.jpg");
            File.WriteAllBytes(bad, [0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3]);
            var e = Assert.Throws<InvalidDataException>(() => ImageDecoding.Read(bad))!;
            Assert.That(e.Message, Does.Contain(bad));
            Assert.Throws<FileNotFoundException>(() => ImageDecoding.Read(Path.Combine(dir, "none.png")));
            string ok = Path.Combine(dir, "ok.png");
            ImageEncoding.WritePng(ok, Gradient(3, 2, PixelFormat.Gray));
            Assert.That(ImageDecoding.Read(ok).Pixels, Is.EqualTo(Gradient(3, 2, PixelFormat.Gray).Pixels));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Test]
    public void AJpegCutAfterItsFirstSegmentIsRefusedNotDecodedForever()
    {
        // Found by the decode fuzz test: StbImageSharp 2.30.16 looked for the next marker past the end forever.
        var cut = Jpeg(Gradient(24, 16, PixelFormat.Rgb))[..18];
        var task = Task.Run(() => ImageDecoding.Decode(cut, "cut.jpg"));
        Assert.That(Task.WaitAny([task], TimeSpan.FromSeconds(20)), Is.EqualTo(0), "the decoder returned");
        Assert.That(task.Exception?.InnerException, Is.TypeOf<InvalidDataException>().With.Message.Contains("cut.jpg").And.Message.Contains("truncated"));
        // Found by AFL: fill bytes before the start marker, then a segment longer than the file.
        byte[] filled = [0xFF, 0xFF, 0xD8, 0xFF, 0xE9, 0xD8, 0xFF, 0xFF];
        var hang = Task.Run(() => ImageDecoding.Decode(filled, "filled.jpg"));
        Assert.That(Task.WaitAny([hang], TimeSpan.FromSeconds(20)), Is.EqualTo(0), "the decoder returned");
        Assert.That(hang.Exception?.InnerException, Is.TypeOf<InvalidDataException>());
        var noEnd = Jpeg(Gradient(24, 16, PixelFormat.Rgb));
        Assert.That(() => ImageDecoding.Decode(noEnd[..^2], "noend.jpg"), Throws.TypeOf<InvalidDataException>().With.Message.Contains("end-of-image"));
    }

    /// <summary>
    /// Mutated PNG, JPEG, BMP and GIF files (bytes flipped, runs overwritten, cut, header fields set to extremes): each
    /// decodes or throws InvalidDataException. HPCNN_IMAGE_FUZZ_CASES sets how many (default 4,000).
    /// </summary>
    [Test]
    public void FuzzedFilesDecodeOrFailCleanly()
    {
        int cases = int.TryParse(Environment.GetEnvironmentVariable("HPCNN_IMAGE_FUZZ_CASES"), out int n) ? n : 4000;
        var seeds = new[]
        {
            ImageEncoding.EncodePng(Gradient(17, 9, PixelFormat.Rgba)), ImageEncoding.EncodePng(Gradient(8, 8, PixelFormat.Gray)),
            Jpeg(Gradient(24, 16, PixelFormat.Rgb)), Jpeg(Gradient(16, 16, PixelFormat.Gray), 50), Bmp(Gradient(7, 5, PixelFormat.Rgb)), Gif,
        };
        var rng = new Random(20261202);
        int decoded = 0, refused = 0;
        for (int i = 0; i < cases; i++)
        {
            var data = (byte[])seeds[i % seeds.Length].Clone();
            int edits = 1 + rng.Next(4);
            for (int e = 0; e < edits; e++)
            {
                int at = rng.Next(data.Length);
                switch (rng.Next(4))
                {
                    case 0: data[at] ^= (byte)(1 << rng.Next(8)); break;
                    case 1: data[at] = (byte)rng.Next(256); break;
                    case 2: for (int k = at; k < Math.Min(data.Length, at + 4); k++) data[k] = rng.Next(2) == 0 ? (byte)0xFF : (byte)0; break;
                    default: data = data[..Math.Max(1, at)]; break;
                }
            }
            try { ImageDecoding.Decode(data); decoded++; }
            catch (InvalidDataException) { refused++; }
        }
        TestContext.Out.WriteLine($"{cases} mutated files: {decoded} decoded, {refused} refused");
        Assert.That(decoded + refused, Is.EqualTo(cases));
    }
}
