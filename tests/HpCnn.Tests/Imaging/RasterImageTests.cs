using HpCnn.Imaging;

namespace HpCnn.Tests.Imaging;

public class PngImageTests
{
    private const float Tol = 1e-6f;

    private static RasterImage Image(int width, int height, PixelFormat format, params byte[] pixels) => new(width, height, format, pixels);

    [Test]
    public void GrayscaleUsesBt601LumaWeights()
    {
        var image = Image(4, 1, PixelFormat.Rgb, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255);
        Assert.That(image.ToGrayscale(), Is.EqualTo(new[] { 0.299f, 0.587f, 0.114f, 1f }).Within(Tol));
        var gray = Image(3, 1, PixelFormat.Gray, 0, 51, 255);
        Assert.That(gray.ToGrayscale(), Is.EqualTo(new[] { 0f, 0.2f, 1f }).Within(Tol));
    }

    [Test]
    public void AlphaIsCompositedOnTheChosenBackground()
    {
        // Opaque white, transparent white, 20 % opaque black.
        var rgba = Image(3, 1, PixelFormat.Rgba, 255, 255, 255, 255, 255, 255, 255, 0, 0, 0, 0, 51);
        Assert.That(rgba.ToGrayscale(), Is.EqualTo(new[] { 1f, 0f, 0f }).Within(Tol));
        Assert.That(rgba.ToGrayscale(AlphaBackground.White), Is.EqualTo(new[] { 1f, 1f, 0.8f }).Within(Tol));
        var ga = Image(2, 1, PixelFormat.GrayAlpha, 100, 255, 200, 0);
        Assert.That(ga.ToGrayscale(), Is.EqualTo(new[] { 100 / 255f, 0f }).Within(Tol));
        Assert.That(ga.ToGrayscale(AlphaBackground.White), Is.EqualTo(new[] { 100 / 255f, 1f }).Within(Tol));
    }

    [Test]
    public void PlanesAreChannelMajor()
    {
        var rgb = Image(2, 1, PixelFormat.Rgb, 10, 20, 30, 40, 50, 60);
        Assert.That(rgb.ToPlanes(3), Is.EqualTo(new[] { 10, 40, 20, 50, 30, 60 }.Select(v => v / 255f).ToArray()).Within(Tol));
        var gray = Image(2, 1, PixelFormat.Gray, 0, 255);
        Assert.That(gray.ToPlanes(3), Is.EqualTo(new[] { 0f, 1f, 0f, 1f, 0f, 1f }).Within(Tol));
        var into = new float[2];
        gray.ToPlanes(into, 1);
        Assert.That(into, Is.EqualTo(new[] { 0f, 1f }));
        Assert.Throws<ArgumentException>(() => gray.ToPlanes(2));
        Assert.Throws<ArgumentException>(() => gray.ToPlanes(new float[3], 1));
    }

    [Test]
    public void ConvertsBetweenFormats()
    {
        var rgb = Image(2, 1, PixelFormat.Rgb, 255, 0, 0, 10, 20, 30);
        Assert.That(rgb.ConvertTo(PixelFormat.Gray).Pixels, Is.EqualTo(new byte[] { 76, 18 })); // 76.245, 18.15
        Assert.That(rgb.ConvertTo(PixelFormat.Rgba).Pixels, Is.EqualTo(new byte[] { 255, 0, 0, 255, 10, 20, 30, 255 }));
        var gray = Image(1, 1, PixelFormat.Gray, 77);
        Assert.That(gray.ConvertTo(PixelFormat.Rgb).Pixels, Is.EqualTo(new byte[] { 77, 77, 77 }));
        var rgba = Image(2, 1, PixelFormat.Rgba, 0, 0, 0, 128, 200, 100, 50, 0);
        Assert.That(rgba.ConvertTo(PixelFormat.Rgb, AlphaBackground.White).Pixels, Is.EqualTo(new byte[] { 127, 127, 127, 255, 255, 255 }));
        Assert.That(rgba.ConvertTo(PixelFormat.Rgb).Pixels, Is.EqualTo(new byte[] { 0, 0, 0, 0, 0, 0 }));
        Assert.That(rgba.ConvertTo(PixelFormat.GrayAlpha).Pixels, Is.EqualTo(new byte[] { 0, 128, 124, 0 })); // 0.299*200+0.587*100+0.114*50 = 124.2
    }

    [Test]
    public void ResizeToTheSameSizeIsACopy()
    {
        var image = new RasterImage(13, 7, PixelFormat.Rgb);
        new Random(1).NextBytes(image.Pixels);
        Assert.That(image.Resize(13, 7).Pixels, Is.EqualTo(image.Pixels));
    }

    [Test]
    public void EnlargingInterpolatesBetweenPixelCentres()
    {
        var image = Image(2, 1, PixelFormat.Gray, 0, 255);
        // Output centres sit at input coordinates -0.25, 0.25, 0.75, 1.25 (edges hold their value).
        Assert.That(image.Resize(4, 1).Pixels, Is.EqualTo(new byte[] { 0, 64, 191, 255 }));
        Assert.That(image.Resize(4, 3).Pixels, Is.EqualTo(new byte[] { 0, 64, 191, 255, 0, 64, 191, 255, 0, 64, 191, 255 }));
    }

    [Test]
    public void ShrinkingAveragesWithAWidenedTriangle()
    {
        var image = Image(4, 1, PixelFormat.Gray, 0, 100, 200, 40);
        // Scale 2: weights 0.75, 0.75, 0.25 (and a dropped 0.25 outside the image), renormalised.
        byte first = (byte)Math.Round((0.75 * 0 + 0.75 * 100 + 0.25 * 200) / 1.75);
        byte second = (byte)Math.Round((0.25 * 100 + 0.75 * 200 + 0.75 * 40) / 1.75);
        Assert.That(image.Resize(2, 1).Pixels, Is.EqualTo(new[] { first, second }));
    }

    [Test]
    public void ResamplingKeepsConstantsAndInteriorRamps()
    {
        var constant = Enumerable.Repeat(0.375f, 2 * 30 * 17).ToArray();
        var output = new float[2 * 7 * 5];
        Resample.Bilinear(constant, 2, 30, 17, output, 7, 5);
        Assert.That(output, Is.All.EqualTo(0.375f).Within(Tol));

        // A ramp along x: inside the image the symmetric triangle reproduces the ramp at the output centres.
        var ramp = Enumerable.Range(0, 12).Select(i => (float)i).ToArray();
        var shrunk = new float[4];
        Resample.Bilinear(ramp, 1, 1, 12, shrunk, 1, 4);
        Assert.That(shrunk[1], Is.EqualTo(4f).Within(1e-5f));
        Assert.That(shrunk[2], Is.EqualTo(7f).Within(1e-5f));
        var grown = new float[36];
        Resample.Bilinear(ramp, 1, 1, 12, grown, 1, 36);
        for (int o = 2; o < 34; o++) Assert.That(grown[o], Is.EqualTo((o + 0.5f) / 3f - 0.5f).Within(1e-5f), $"output {o}");

        Assert.Throws<ArgumentException>(() => Resample.Bilinear(ramp, 1, 1, 11, shrunk, 1, 4));
        Assert.Throws<ArgumentException>(() => Resample.Bilinear(ramp, 1, 1, 12, shrunk, 1, 0));
    }

    [Test]
    public void ResizeDoesNotBleedTheColourOfTransparentPixels()
    {
        var image = Image(2, 1, PixelFormat.Rgba, 255, 0, 0, 255, 0, 255, 0, 0);
        Assert.That(image.Resize(1, 1).Pixels, Is.EqualTo(new byte[] { 255, 0, 0, 128 }));
    }
}
