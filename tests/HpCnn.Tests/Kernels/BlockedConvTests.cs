using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// The blocked convolution's register tiles, one by one: every generated AVX-512 tile and every AVX2 group gives the
/// scalar reference tile's bits (the same FMA chains), reads nothing outside its operands (NaN markers around them) and
/// writes nothing outside its accumulators; the transposes move every value once; the tile rule picks sensible tiles.
/// Whole convolutions are tested against the double-precision reference in Conv2dPlanTests.
/// </summary>
public unsafe class BlockedConvTests
{
    private static float[] Values(Random rng, int n)
    {
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 2 - 1);
        return a;
    }

    private delegate void FTile(int tw, int nb, float* src, int* off, int k0, int k1, float* w, nint ldw, float* acc, nint accPitch, bool accumulate);

    private static IEnumerable<(int Width, int Blocks)> FTiles()
    {
        for (int nb = 1; nb <= BlockedTiles.MaxBlocks; nb++)
            for (int tw = 1; tw <= BlockedTiles.MaxWidth(nb); tw++) yield return (tw, nb);
    }

    private static IEnumerable<(int Taps, int Blocks)> GTiles()
    {
        for (int nb = 1; nb <= BlockedTiles.MaxBlocks; nb++)
            for (int t = 1; t <= BlockedTiles.MaxTaps(nb); t++) yield return (t, nb);
    }

    /// <summary>Runs an F tile on fresh operands; returns the accumulator area (with a marker guard around it).</summary>
    private static float[] RunF(FTile tile, int tw, int nb, bool accumulate, int seed, int k1 = 31)
    {
        var rng = new Random(seed);
        const int k = 37, k0 = 3, srcLen = 400;
        int lanes = 16 * nb, accPitch = lanes + 16;
        var src = Values(rng, srcLen);
        var off = new int[k];
        for (int i = 0; i < k; i++) off[i] = rng.Next(srcLen - tw);
        int ldw = lanes + 16;
        var w = Sentinel.Buffer(k * ldw);
        for (int i = 0; i < k; i++)
            for (int c = 0; c < ldw; c++) w[i * ldw + c] = c < lanes ? (float)(rng.NextDouble() * 2 - 1) : Sentinel.Marker;
        var acc = Sentinel.Buffer(tw * accPitch);
        for (int t = 0; t < tw; t++)
            for (int c = 0; c < lanes; c++) acc[t * accPitch + c] = accumulate ? (float)rng.NextDouble() : Sentinel.Marker;
        fixed (float* ps = src, pw = w, pa = acc)
        fixed (int* po = off)
            tile(tw, nb, ps, po, k0, k1, pw, ldw, pa, accPitch, accumulate);
        return acc;
    }

    [Test]
    public void ForwardTilesGiveTheScalarTilesBits([Values(false, true)] bool accumulate)
    {
        var paths = new List<(string, FTile)>();
        if (Avx512F.IsSupported && Vector512.IsHardwareAccelerated) paths.Add(("avx512", BlockedConvAvx512.F));
        if (Avx2.IsSupported && Fma.IsSupported) paths.Add(("avx2", BlockedConvAvx2.F));
        if (paths.Count == 0) Assert.Ignore("no vector tiles on this CPU/runtime");
        // 28, 27 and 1 terms: the AVX2 tiles take two terms a step and the odd one last.
        foreach (int k1 in (int[])[31, 30, 4])
        foreach (var (tw, nb) in FTiles())
        {
            int seed = tw * 100 + nb;
            var expected = RunF(BlockedTiles.ScalarF, tw, nb, accumulate, seed, k1);
            int lanes = 16 * nb, accPitch = lanes + 16;
            for (int t = 0; t < tw; t++)
                for (int c = 0; c < lanes; c++)
                    Assert.That(Sentinel.IsMarker(expected[t * accPitch + c]), Is.False, $"scalar F{tw}x{nb} left ({t}, {c}) unwritten");
            foreach (var (name, tile) in paths)
            {
                var got = RunF(tile, tw, nb, accumulate, seed, k1);
                for (int i = 0; i < got.Length; i++)
                    if (BitConverter.SingleToInt32Bits(got[i]) != BitConverter.SingleToInt32Bits(expected[i]))
                        Assert.Fail($"{name} F{tw}x{nb} (accumulate {accumulate}, {k1 - 3} terms): element {i} is {got[i]:R}, the scalar tile gives {expected[i]:R}");
            }
        }
    }

    private delegate void GTile(int tt, int nb, float* x, int* off, int rows, int cols, nint pitch, float* dy, nint ldy, float* acc, nint accPitch, bool accumulate);

    private static float[] RunG(GTile tile, int tt, int nb, bool accumulate, int seed)
    {
        var rng = new Random(seed);
        const int rows = 3, cols = 5, pitch = 9, xLen = 200;
        int lanes = 16 * nb, ldy = lanes + 16, accPitch = lanes + 16;
        var x = Values(rng, xLen);
        var off = new int[tt];
        for (int j = 0; j < tt; j++) off[j] = rng.Next(xLen - (rows - 1) * pitch - cols);
        var dy = Sentinel.Buffer(rows * cols * ldy);
        for (int p = 0; p < rows * cols; p++)
            for (int c = 0; c < ldy; c++) dy[p * ldy + c] = c < lanes ? (float)(rng.NextDouble() * 2 - 1) : Sentinel.Marker;
        var acc = Sentinel.Buffer(tt * accPitch);
        for (int j = 0; j < tt; j++)
            for (int c = 0; c < lanes; c++) acc[j * accPitch + c] = accumulate ? (float)rng.NextDouble() : Sentinel.Marker;
        fixed (float* px = x, pd = dy, pa = acc)
        fixed (int* po = off)
            tile(tt, nb, px, po, rows, cols, pitch, pd, ldy, pa, accPitch, accumulate);
        return acc;
    }

    [Test]
    public void WeightGradientTilesGiveTheScalarTilesBits([Values(false, true)] bool accumulate)
    {
        var paths = new List<(string, GTile)>();
        if (Avx512F.IsSupported && Vector512.IsHardwareAccelerated) paths.Add(("avx512", BlockedConvAvx512.G));
        if (Avx2.IsSupported && Fma.IsSupported) paths.Add(("avx2", BlockedConvAvx2.G));
        if (paths.Count == 0) Assert.Ignore("no vector tiles on this CPU/runtime");
        foreach (var (tt, nb) in GTiles())
        {
            int seed = tt * 100 + nb + 7;
            var expected = RunG(BlockedTiles.ScalarG, tt, nb, accumulate, seed);
            foreach (var (name, tile) in paths)
            {
                var got = RunG(tile, tt, nb, accumulate, seed);
                for (int i = 0; i < got.Length; i++)
                    if (BitConverter.SingleToInt32Bits(got[i]) != BitConverter.SingleToInt32Bits(expected[i]))
                        Assert.Fail($"{name} G{tt}x{nb} (accumulate {accumulate}): element {i} is {got[i]:R}, the scalar tile gives {expected[i]:R}");
            }
        }
    }

    [Test]
    public void TheScalarTilesAreFmaChainsInOrder()
    {
        // F: acc = fma(src[off[k] + t], w[k][c], acc) for k = k0..k1-1, checked against the chain written out.
        float[] src = [0.1f, 0.7f, -1.3f, 2.5f, 0.01f];
        int[] off = [3, 0, 1];
        var w = new float[3 * 16];
        for (int i = 0; i < w.Length; i++) w[i] = 0.3f + i * 0.017f;
        var acc = new float[2 * 16];
        fixed (float* ps = src, pw = w, pa = acc)
        fixed (int* po = off)
            BlockedTiles.ScalarF(2, 1, ps, po, 0, 3, pw, 16, pa, 16, false);
        for (int t = 0; t < 2; t++)
            for (int c = 0; c < 16; c++)
            {
                float e = 0f;
                for (int k = 0; k < 3; k++) e = MathF.FusedMultiplyAdd(src[off[k] + t], w[k * 16 + c], e);
                Assert.That(acc[t * 16 + c], Is.EqualTo(e), $"pixel {t}, channel {c}");
            }
    }

    [TestCase(1, 1)]
    [TestCase(16, 16)]
    [TestCase(17, 5)]
    [TestCase(3, 40)]
    [TestCase(33, 31)]
    [TestCase(196, 64)]
    public void TransposeMovesEveryValueOnce(int rows, int cols)
    {
        var rng = new Random(rows * 1000 + cols);
        int srcPitch = cols + 3, dstPitch = rows + 5;
        var src = Sentinel.Buffer(rows * srcPitch);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) src[r * srcPitch + c] = (float)rng.NextDouble();
        var dst = Sentinel.Buffer(cols * dstPitch);
        fixed (float* ps = src, pd = dst)
            BlockedTiles.Transpose(ps, srcPitch, rows, cols, pd, dstPitch);
        for (int c = 0; c < cols; c++)
            for (int r = 0; r < dstPitch; r++)
            {
                float v = dst[c * dstPitch + r];
                if (r < rows) Assert.That(v, Is.EqualTo(src[r * srcPitch + c]), $"({r}, {c})");
                else Assert.That(Sentinel.IsMarker(v), Is.True, $"gap ({r}, {c}) was written");
            }
        Sentinel.AssertTail(dst, cols * dstPitch, "transpose output");
    }

    /// <summary>
    /// The zmm padding into stride phases writes what the portable loop writes, bit for bit, for row strides 1-3, column
    /// strides 1-2, paddings 0-3 on each side (uneven too, each below the kernel as shapes require), widths around the 16-lane edges and partial row ranges (a part
    /// of a batch-1 forward), and nothing else: the rows outside the range and the guard after the phases keep their
    /// markers. The image's neighbours are markers too, so a lane that read outside a row would show.
    /// </summary>
    [Test]
    public void ZmmPhasesAreThePortableLoopsPhases()
    {
        if (!Engine.UseAvx512) Assert.Ignore("no AVX-512 here: the zmm form does not run");
        var rng = new Random(7);
        int cases = 0;
        foreach (int w in new[] { 1, 3, 7, 15, 16, 17, 31, 32, 33, 40 })
            foreach (int sw in new[] { 1, 2 })
                foreach (int sh in new[] { 1, 2, 3 })
                    for (int t = 0; t < 3; t++)
                    {
                        int h = 1 + rng.Next(9), k = 1 + rng.Next(Math.Min(h, w) + 3);
                        int p = Math.Min(4, k);
                        int pl = rng.Next(p), pr = rng.Next(p), pt = rng.Next(p), pb = rng.Next(p);
                        if (w + pl + pr < k || h + pt + pb < k) continue;
                        var shape = new Conv2dShape(2, h, w, 3, k, k, sh, sw, pt, pl, pb, pr);
                        var conv = new BlockedConv(shape);
                        int size = conv.InputPhasesSize;
                        if (size == 0) continue;
                        var image = Sentinel.Buffer(shape.InSize + 64);
                        for (int i = 0; i < shape.InSize; i++) image[32 + i] = (float)(rng.NextDouble() * 2 - 1);
                        int hq = (h + pt + pb + sh - 1) / sh;
                        int i0 = rng.Next(hq), i1 = i0 + 1 + rng.Next(hq - i0);
                        foreach (var (a, b) in new[] { (0, int.MaxValue), (i0, i1) })
                        {
                            var portable = Sentinel.Buffer(size);
                            var zmm = Sentinel.Buffer(size);
                            fixed (float* img = image, pp = portable, pz = zmm)
                            {
                                conv.PadPhases(img + 32, pp, a, b, zmm: false);
                                conv.PadPhases(img + 32, pz, a, b, zmm: true);
                            }
                            for (int i = 0; i < portable.Length; i++)
                                Assert.That(BitConverter.SingleToInt32Bits(zmm[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(portable[i])),
                                    $"{shape}, rows [{a}, {b}): float {i} of {size}");
                            Sentinel.AssertTail(zmm, size, "phases");
                            cases++;
                        }
                    }
        Assert.That(cases, Is.GreaterThan(150));
    }

    /// <summary>
    /// The stride-2 spread of an input-gradient phase row writes src[q] to dst[2q + parity] for q &lt; n and nothing
    /// else (the other parity's positions and everything past the row keep their markers), reading nothing past src[n - 1].
    /// </summary>
    [Test]
    public void SpreadEveryOtherWritesOnlyItsParity()
    {
        if (!Engine.UseAvx512) Assert.Ignore("no AVX-512 here: the zmm spread does not run");
        var rng = new Random(3);
        for (int n = 1; n <= 41; n++)
            foreach (int parity in new[] { 0, 1 })
            {
                var src = Sentinel.Buffer(n);
                for (int q = 0; q < n; q++) src[q] = (float)(rng.NextDouble() * 2 - 1);
                var dst = Sentinel.Buffer(2 * n + 1);
                fixed (float* ps = src, pd = dst) BlockedConv.SpreadEveryOther(ps, pd, n, parity);
                for (int i = 0; i < dst.Length; i++)
                {
                    bool ours = i % 2 == parity && i / 2 < n;
                    if (ours) Assert.That(dst[i], Is.EqualTo(src[i / 2]), $"n {n}, parity {parity}: dst[{i}]");
                    else Assert.That(Sentinel.IsMarker(dst[i]), Is.True, $"n {n}, parity {parity}: dst[{i}] was written");
                }
            }
    }

    [Test]
    public void TheTileRuleCoversEveryChannelAndPixelWithKernelsThatExist()
    {
        for (int channels = 1; channels <= 300; channels += 7)
            for (int cols = 1; cols <= 40; cols += 3)
            {
                var (groups, widths) = TileRule.Choose(channels, cols);
                Assert.That(widths.Sum(), Is.EqualTo(cols), $"{channels} channels, {cols} columns: widths");
                Assert.That(groups[0].C0, Is.Zero);
                for (int g = 0; g < groups.Length; g++)
                {
                    Assert.That(groups[g].NB, Is.InRange(1, BlockedTiles.MaxBlocks));
                    Assert.That(widths.Max(), Is.LessThanOrEqualTo(BlockedTiles.MaxWidth(groups[g].NB)), $"{channels}/{cols}: group {g} tile too wide");
                    if (g > 0) Assert.That(groups[g].C0, Is.EqualTo(groups[g - 1].C0 + 16 * groups[g - 1].NB));
                }
                Assert.That(groups[^1].C0 + 16 * groups[^1].NB, Is.EqualTo(16 * ((channels + 15) / 16)), $"{channels}/{cols}: blocks");
            }
        // Rows of 14 pixels and 64 channels (the reference network's second convolution): 2 blocks x 14 pixels.
        var (g14, w14) = TileRule.Choose(64, 14);
        Assert.That(g14.Select(g => g.NB), Is.All.EqualTo(2));
        Assert.That(w14, Is.EqualTo(new[] { 14 }));
        // Rows of 4 pixels: wide channel groups keep enough accumulators busy.
        var (g4, _) = TileRule.Choose(128, 4);
        Assert.That(g4[0].NB, Is.EqualTo(4));
    }

    [Test]
    public void TheGeneratedTilesAreWhatTheGeneratorWrites()
    {
        string root = TestContext.CurrentContext.TestDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "HpCnn.sln"))) root = Path.GetDirectoryName(root)!;
        if (root is null || !File.Exists("/usr/bin/python3")) Assert.Ignore("needs the source tree and /usr/bin/python3");
        var psi = new System.Diagnostics.ProcessStartInfo("/usr/bin/python3", [Path.Combine(root, "build", "codegen", "blocked_conv.py"), "--check"])
        { RedirectStandardError = true, RedirectStandardOutput = true };
        using var p = System.Diagnostics.Process.Start(psi)!;
        string err = p.StandardError.ReadToEnd();
        p.WaitForExit();
        Assert.That(p.ExitCode, Is.Zero, err);
    }
}
