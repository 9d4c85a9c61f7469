using HpCnn.Imaging;

namespace HpCnn.Tests.Imaging;

public class ImageGridTests
{
    private static byte Gray(float t) => (byte)MathF.Round(t * 255f);

    [Test]
    public void LaysTilesOutRowByRowWithScaleAndGaps()
    {
        const int tiles = 5, tileH = 2, tileW = 3, columns = 3, scale = 2, gap = 1;
        var values = Enumerable.Range(0, tiles * tileH * tileW).Select(i => (float)i).ToArray();
        var options = new TileGridOptions { Columns = columns, Scale = scale, Gap = gap, Normalization = TileNormalization.Global, GapShade = 7 };

        var image = ImageGrid.RenderTiles(values, tiles, tileH, tileW, options);

        Assert.That(image.Format, Is.EqualTo(PixelFormat.Gray));
        Assert.That(image.Width, Is.EqualTo(columns * tileW * scale + (columns - 1) * gap)); // 20
        Assert.That(image.Height, Is.EqualTo(2 * tileH * scale + gap));                      // 9
        var expected = Enumerable.Repeat((byte)7, image.Width * image.Height).ToArray();
        for (int t = 0; t < tiles; t++)
            for (int y = 0; y < tileH; y++)
                for (int x = 0; x < tileW; x++)
                    for (int sy = 0; sy < scale; sy++)
                        for (int sx = 0; sx < scale; sx++)
                        {
                            int px = t % columns * (tileW * scale + gap) + x * scale + sx;
                            int py = t / columns * (tileH * scale + gap) + y * scale + sy;
                            expected[py * image.Width + px] = Gray(values[(t * tileH + y) * tileW + x] / 29f);
                        }
        Assert.That(image.Pixels, Is.EqualTo(expected));
        Assert.That(image.Pixels.Min(), Is.EqualTo(0));
        Assert.That(image.Pixels.Max(), Is.EqualTo(255));
    }

    [Test]
    public void PerTileNormalizationStretchesEveryTile()
    {
        float[] values = [1, 2, 3, /**/ -50, 0, 50, /**/ 4, 4, 4];
        var image = ImageGrid.RenderTiles(values, 3, 1, 3, new TileGridOptions { Columns = 3, Gap = 0 });
        Assert.That(image.Pixels, Is.EqualTo(new byte[] { 0, 128, 255, 0, 128, 255, 0, 0, 0 }), "a flat tile is black");
    }

    [Test]
    public void SymmetricDivergingMapsZeroToWhite()
    {
        float[] values = [-2, 0, 1, 2];
        var image = ImageGrid.RenderTiles(values, 1, 1, 4, new TileGridOptions { Symmetric = true, ColorMap = ColorMap.Diverging });
        Assert.That(image.Format, Is.EqualTo(PixelFormat.Rgb));
        Assert.That(image.Pixels, Is.EqualTo(new byte[] { 0, 0, 255, 255, 255, 255, 255, 128, 128, 255, 0, 0 }));

        var zeros = ImageGrid.RenderTiles(new float[4], 1, 2, 2, new TileGridOptions { Symmetric = true });
        Assert.That(zeros.Pixels, Is.All.EqualTo(128), "an all-zero symmetric tile is mid-gray");
    }

    [Test]
    public void AFixedRangeClampsAndIsSharedByAllTiles()
    {
        float[] values = [-1, 0, 0.5f, 1, 3];
        var image = ImageGrid.RenderTiles(values, 5, 1, 1, new TileGridOptions { Range = new ValueRange(0, 1), Columns = 5, Gap = 0 });
        Assert.That(image.Pixels, Is.EqualTo(new byte[] { 0, 0, 128, 255, 255 }));
        Assert.Throws<ArgumentException>(() => ImageGrid.RenderTiles(values, 5, 1, 1, new TileGridOptions { Range = new ValueRange(1, 0) }));
    }

    [Test]
    public void NonFiniteValuesDoNotWidenTheRange()
    {
        float[] values = [float.NaN, 1, 2, float.PositiveInfinity, float.NegativeInfinity];
        var image = ImageGrid.RenderTiles(values, 1, 1, 5, new TileGridOptions { GapShade = 99 });
        Assert.That(image.Pixels, Is.EqualTo(new byte[] { 99, 0, 255, 255, 0 }));
        Assert.That(ValueRange.Of(values), Is.EqualTo(new ValueRange(1, 2)));
        Assert.That(ValueRange.SymmetricOf([float.NaN, -3, 2]), Is.EqualTo(new ValueRange(-3, 3)));
    }

    [Test]
    public void RendersConvolutionFiltersOneRowPerOutputChannel()
    {
        const int outC = 4, inC = 3, k = 3, scale = 8;
        var weights = new float[outC * inC * k * k];
        weights[(2 * inC + 1) * k * k + 4] = -0.5f; // output 2, input 1, centre
        weights[(3 * inC + 2) * k * k + 0] = 0.25f;  // output 3, input 2, top left

        var image = ImageGrid.RenderFilters(weights, outC, inC, k, k, scale);

        Assert.That(image.Format, Is.EqualTo(PixelFormat.Rgb));
        Assert.That((image.Width, image.Height), Is.EqualTo((inC * k * scale + inC - 1, outC * k * scale + outC - 1)));
        byte[] Pixel(int x, int y) => image.Pixels.AsSpan((y * image.Width + x) * 3, 3).ToArray();
        int cell = k * scale + 1;
        Assert.That(Pixel(1 * cell + 1 * scale, 2 * cell + 1 * scale), Is.EqualTo(new byte[] { 0, 0, 255 }), "the strongest weight is full blue");
        Assert.That(Pixel(2 * cell + scale - 1, 3 * cell + scale - 1), Is.EqualTo(new byte[] { 255, 128, 128 }), "half of it in red is pink");
        Assert.That(Pixel(0, 0), Is.EqualTo(new byte[] { 255, 255, 255 }), "zero is white");

        // A shared range keeps two weight sets comparable: the same weights look paler against a wider range.
        var paler = ImageGrid.RenderFilters(weights, outC, inC, k, k, scale, new ValueRange(-1, 1));
        Assert.That(paler.Pixels.AsSpan(((2 * cell + scale) * paler.Width + cell + scale) * 3, 3).ToArray(), Is.EqualTo(new byte[] { 128, 128, 255 }));

        var single = ImageGrid.RenderFilters(new float[10 * 9], 10, 1, 3, 3, scale: 2);
        Assert.That(single.Width, Is.EqualTo(4 * 6 + 3), "one input channel: a square-ish grid of ceil(sqrt(10)) = 4 columns");
    }

    [Test]
    public void RendersFeatureMapsEachOnItsOwnScale()
    {
        var maps = new float[3 * 4 * 5];
        for (int i = 0; i < 20; i++) { maps[i] = i; maps[20 + i] = -1000 * i; maps[40 + i] = 0.001f * i; }
        var image = ImageGrid.RenderFeatureMaps(maps, 3, 4, 5, scale: 2);
        Assert.That((image.Width, image.Height), Is.EqualTo((2 * 10 + 2, 2 * 8 + 2)));
        // The first pixel of each map: its minimum in maps 0 and 2, its maximum in map 1.
        Assert.That(image.Pixels[0], Is.EqualTo(0));
        Assert.That(image.Pixels[12], Is.EqualTo(255));
        Assert.That(image.Pixels[10 * image.Width], Is.EqualTo(0));
        Assert.That(image.Pixels[(10 + 7) * image.Width + 9], Is.EqualTo(255));
    }

    [Test]
    public void ConcatJoinsImagesOnACommonFormat()
    {
        var gray = new RasterImage(3, 2, PixelFormat.Gray, [1, 2, 3, 4, 5, 6]);
        var rgb = new RasterImage(2, 3, PixelFormat.Rgb, Enumerable.Range(100, 18).Select(i => (byte)i).ToArray());
        var joined = ImageGrid.Concat([gray, rgb], gap: 2, shade: 9);
        Assert.That((joined.Width, joined.Height, joined.Format), Is.EqualTo((7, 3, PixelFormat.Rgb)));
        Assert.That(joined.Row(0).ToArray(), Is.EqualTo(new byte[] { 1, 1, 1, 2, 2, 2, 3, 3, 3, 9, 9, 9, 9, 9, 9, 100, 101, 102, 103, 104, 105 }));
        Assert.That(joined.Row(2).ToArray(), Is.EqualTo(new byte[] { 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 112, 113, 114, 115, 116, 117 }));

        var stacked = ImageGrid.Concat([gray, gray], gap: 1, horizontal: false);
        Assert.That((stacked.Width, stacked.Height, stacked.Format), Is.EqualTo((3, 5, PixelFormat.Gray)));
        Assert.That(stacked.Row(2).ToArray(), Is.EqualTo(new byte[] { 255, 255, 255 }));
        Assert.That(stacked.Row(4).ToArray(), Is.EqualTo(new byte[] { 4, 5, 6 }));
    }

    [Test]
    public void ChecksItsArguments()
    {
        Assert.Throws<ArgumentException>(() => ImageGrid.RenderTiles(new float[5], 1, 2, 3));
        Assert.Throws<ArgumentException>(() => ImageGrid.RenderTiles(new float[6], 1, 2, 3, new TileGridOptions { Scale = 0 }));
        Assert.Throws<ArgumentException>(() => ImageGrid.RenderTiles(new float[6], 0, 2, 3));
        Assert.Throws<ArgumentException>(() => ImageGrid.RenderTiles(new float[20000], 1, 1, 20000), "wider than a PNG may be");
        Assert.Throws<ArgumentException>(() => ImageGrid.Concat([]));
    }
}
