using System.Runtime.Intrinsics.X86;
using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// The convolution building blocks against naive definitions written here: the implicit GEMM over shifted rows,
/// the shifted dot products of the weight gradient, im2col / col2im, plane padding; and the plain-loop
/// references themselves (against a differently ordered loop and against the adjoint identities).
/// </summary>
public class Conv2dKernelsTests
{
    private const int MR = Sgemm.MR, NR = Sgemm.NR;

    /// <summary>A packed in MR-row strips (aPack[s*k*MR + kk*MR + r]); rows past m hold NaN markers that must never reach an output.</summary>
    private static float[] PackRows(float[,] a, int m, int k)
    {
        int strips = (m + MR - 1) / MR;
        var p = Sentinel.Buffer(strips * MR * k);
        for (int s = 0; s < strips; s++)
            for (int kk = 0; kk < k; kk++)
                for (int r = 0; r < MR; r++)
                {
                    int i = s * MR + r;
                    if (i < m) p[s * k * MR + kk * MR + r] = a[i, kk];
                }
        return p;
    }

    // ---- implicit GEMM ----

    private static void CheckImplicitGemm(Random rng, int m, int k, int ho, int wo, int wp, int strip0, int strip1, GemmEpilogue epi, string label)
    {
        string what = $"implicit GEMM {label} m={m} k={k} ho={ho} wo={wo} wp={wp} strips [{strip0},{strip1})";
        var a = new float[m, k];
        for (int i = 0; i < m; i++)
            for (int kk = 0; kk < k; kk++) a[i, kk] = (float)(rng.NextDouble() * 2 - 1);
        var packed = PackRows(a, m, k);
        int packedLen = (m + MR - 1) / MR * MR * k;
        var offsets = new int[k];
        for (int kk = 0; kk < k; kk++) offsets[kk] = rng.Next(0, 41);
        int maxOff = offsets.Max();
        int strips = Conv2dKernels.ImplicitStrips(ho, wo, wp);
        int qEnd = (ho - 1) * wp + wo;
        Assert.That(strips, Is.EqualTo((qEnd + NR - 1) / NR), "strip count");

        // Only the elements some valid output reads get values; the rest are NaN markers.
        int srcLen = strips * NR + maxOff;
        var src = Sentinel.Buffer(srcLen);
        for (int y = 0; y < ho; y++)
            for (int x = 0; x < wo; x++)
                foreach (int o in offsets)
                {
                    int idx = y * wp + x + o;
                    if (Sentinel.IsMarker(src[idx])) src[idx] = (float)(rng.NextDouble() * 2 - 1);
                }

        int dstPlane = ho * wo + 3;
        var dst = Sentinel.Buffer(m * dstPlane);
        Conv2dKernels.ImplicitGemm(m, k, packed.AsSpan(0, packedLen), src.AsSpan(0, srcLen), offsets, ho, wo, wp, strip0, strip1,
            dst.AsSpan(0, m * dstPlane), dstPlane, in epi);

        int qLo = strip0 * NR, qHi = strip1 * NR;
        for (int i = 0; i < m; i++)
            for (int y = 0; y < ho; y++)
                for (int x = 0; x < wo; x++)
                {
                    int q = y * wp + x;
                    float got = dst[i * dstPlane + y * wo + x];
                    string where = $"{what}: row {i}, y {y}, x {x}";
                    if (q < qLo || q >= qHi)
                    {
                        Assert.That(Sentinel.IsMarker(got), Is.True, $"{where} is outside the strips but was written ({got})");
                        continue;
                    }
                    double sum = 0, mag = 0;
                    for (int kk = 0; kk < k; kk++)
                    {
                        double t = (double)a[i, kk] * src[q + offsets[kk]];
                        sum += t; mag += Math.Abs(t);
                    }
                    if (epi.Bias == BiasMode.PerRow) { sum += epi.BiasValues![epi.BiasOffset + i]; mag += Math.Abs(epi.BiasValues[epi.BiasOffset + i]); }
                    if (epi.Bias == BiasMode.PerColumn) { sum += epi.BiasValues![epi.BiasOffset + y * wo + x]; mag += Math.Abs(epi.BiasValues[epi.BiasOffset + y * wo + x]); }
                    if (epi.IsActive) sum = Math.Min(Math.Max(sum, epi.Low), epi.High);
                    double tol = Close.SumTolerance(k + 1, mag);
                    if (!(Math.Abs(got - sum) <= tol)) Assert.Fail($"{where}: got {got:R}, expected {sum:R}, tolerance {tol:G3}");
                }
        // Plane gaps and the guard: never written.
        for (int i = 0; i < m; i++)
            for (int g = ho * wo; g < dstPlane; g++)
                Assert.That(Sentinel.IsMarker(dst[i * dstPlane + g]), Is.True, $"{what}: gap {g} of row {i} was written");
        Sentinel.AssertTail(dst, m * dstPlane, what + " (dst)");
    }

    private static readonly (int Ho, int Wo, int Wp)[] ImplicitGeometries = [(1, 1, 1), (3, 5, 7), (7, 17, 17), (5, 16, 20), (4, 33, 35), (2, 8, 8)];

    /// <summary>
    /// The direct small-channel forward against its chain written out: each output is the bias, then one FMA per tap
    /// (channel, row, column) in order, then the clamp, so the bits must match exactly. Channel counts cover the
    /// 4-channel blocks and every remainder of 1-3 channels (4 rows a block), output heights not a multiple of 4 or 2,
    /// widths not a multiple of 8 (one channel takes two 8-column blocks at a time, the second moved back at a row's end),
    /// and channel ranges that start or end inside a block; every output outside the range
    /// keeps its marker.
    /// </summary>
    [Test]
    public void DirectForwardIsTheBiasThenOneFmaChainPerOutput(
        [Values(1, 2, 3, 4, 5, 6, 7, 9)] int outC, [Values(1, 3)] int inC, [Values(0, 2)] int from, [Values(0, 1, 2)] int clamp)
    {
        if (!Engine.UseAvx2) Assert.Ignore("the portable path of the direct forward is a plain loop of its own (no AVX2: no FMA chains)");
        foreach (var (ho, wo, kh, kw) in new[] { (7, 13, 3, 3), (6, 28, 5, 5), (1, 8, 3, 2), (5, 5, 1, 1), (10, 3, 3, 3), (9, 16, 3, 3), (3, 23, 3, 3), (5, 40, 3, 3), (2, 9, 2, 2) })
        {
            int hp = ho + kh - 1, wp = wo + kw - 1, taps = inC * kh * kw, oc0 = Math.Min(from, outC - 1);
            var rng = new Random(outC * 131 + inC * 17 + ho * 7 + wo + from);
            var padded = Sentinel.Buffer(inC * hp * wp + 16);
            for (int i = 0; i < inC * hp * wp; i++) padded[i] = (float)(rng.NextDouble() * 3 - 1.5);
            for (int i = inC * hp * wp; i < padded.Length; i++) padded[i] = 0f; // the read-ahead slack: read, never used
            var w = new float[outC * taps];
            for (int i = 0; i < w.Length; i++) w[i] = (float)(rng.NextDouble() * 2 - 1);
            var bias = new float[outC];
            for (int i = 0; i < outC; i++) bias[i] = (float)(rng.NextDouble() - 0.5);
            // The three clamps the kernels tell apart: a general one, ReLU's [+0, +inf) and none; a NaN in the input reaches
            // some outputs (the chain carries it, and every clamp must pass it on).
            var (low, high) = clamp switch { 0 => (-0.75f, 1.25f), 1 => (0f, float.PositiveInfinity), _ => (float.NegativeInfinity, float.PositiveInfinity) };
            padded[(inC - 1) * hp * wp + hp / 2 * wp + 1] = float.NaN;
            var epilogue = new GemmEpilogue(BiasMode.PerRow, bias, 0, low, high);
            var output = Sentinel.Buffer(outC * ho * wo);
            Conv2dKernels.DirectForward(padded, inC, hp, wp, w, outC, kh, kw, output, epilogue, oc0, outC);
            for (int oc = 0; oc < outC; oc++)
                for (int y = 0; y < ho; y++)
                    for (int x = 0; x < wo; x++)
                    {
                        float got = output[(oc * ho + y) * wo + x];
                        if (oc < oc0)
                        {
                            Assert.That(Sentinel.IsMarker(got), Is.True, $"channel {oc} is outside [{oc0}, {outC}) but was written");
                            continue;
                        }
                        float acc = bias[oc];
                        for (int ic = 0, t = 0; ic < inC; ic++)
                            for (int ky = 0; ky < kh; ky++)
                                for (int kx = 0; kx < kw; kx++, t++)
                                    acc = MathF.FusedMultiplyAdd(w[oc * taps + t], padded[(ic * hp + y + ky) * wp + x + kx], acc);
                        float expected = MathF.Min(MathF.Max(acc, low), high);
                        if (BitConverter.SingleToInt32Bits(got) != BitConverter.SingleToInt32Bits(expected))
                            Assert.Fail($"{outC} channels from {oc0}, {inC} in, {ho}x{wo} {kh}x{kw}: out[{oc}][{y}][{x}] = {got:R}, the chain gives {expected:R}");
                    }
            Sentinel.AssertTail(output, outC * ho * wo, "direct forward output");
        }
    }

    /// <summary>
    /// Outputs that are exactly -0 (weights and bias -0, inputs positive: every product and sum is -0) through each clamp:
    /// ReLU gives +0 (MathF.Max(-0, +0)), no clamp and a clamp below zero keep -0, bit for bit.
    /// </summary>
    [Test]
    public void DirectForwardClampsNegativeZeroAsMathFDoes([Values(1, 4, 6)] int outC)
    {
        if (!Engine.UseAvx2) Assert.Ignore("the portable path of the direct forward is a plain loop of its own (no AVX2: no FMA chains)");
        const int ho = 5, wo = 11, k = 3, hp = ho + k - 1, wp = wo + k - 1;
        var padded = new float[hp * wp + 16];
        Array.Fill(padded, 1.5f);
        var w = new float[outC * k * k];
        Array.Fill(w, -0f);
        var bias = new float[outC];
        Array.Fill(bias, -0f);
        foreach (var (low, high) in new[] { (0f, float.PositiveInfinity), (float.NegativeInfinity, float.PositiveInfinity), (-1f, 2f) })
        {
            var output = new float[outC * ho * wo];
            Conv2dKernels.DirectForward(padded, 1, hp, wp, w, outC, k, k, output, new GemmEpilogue(BiasMode.PerRow, bias, 0, low, high));
            int expected = BitConverter.SingleToInt32Bits(MathF.Min(MathF.Max(-0f, low), high));
            for (int i = 0; i < output.Length; i++)
                Assert.That(BitConverter.SingleToInt32Bits(output[i]), Is.EqualTo(expected), $"[{low}, {high}] output {i}: {output[i]:R}");
        }
    }

    [Test]
    public void ImplicitGemmMatchesNaiveShiftedSums()
    {
        var rng = new Random(101);
        foreach (int m in new[] { 1, 5, 6, 7, 13 })
            foreach (int k in new[] { 1, 2, 3, 7, 30 })
                foreach (var (ho, wo, wp) in ImplicitGeometries)
                    CheckImplicitGemm(rng, m, k, ho, wo, wp, 0, Conv2dKernels.ImplicitStrips(ho, wo, wp), default, "plain");
    }

    [Test]
    public void ImplicitGemmWritesOnlyItsStrips()
    {
        var rng = new Random(102);
        foreach (var (ho, wo, wp) in ImplicitGeometries)
        {
            int strips = Conv2dKernels.ImplicitStrips(ho, wo, wp);
            for (int s0 = 0; s0 < strips; s0++)
                foreach (int s1 in new[] { s0, s0 + 1, strips, strips + 2 })
                    if (s1 >= s0) CheckImplicitGemm(rng, 7, 4, ho, wo, wp, s0, s1, default, "partial");
        }
    }

    [Test]
    public void ImplicitGemmAppliesTheEpiloguePerValidRun()
    {
        var rng = new Random(103);
        var bias = TestData.Uniform(rng, 200, -1f, 1f);
        var epilogues = new[]
        {
            new GemmEpilogue(BiasMode.PerRow, bias, 2, -1f, 1f),
            new GemmEpilogue(BiasMode.PerRow, bias, 0, 0f, float.PositiveInfinity),
            new GemmEpilogue(BiasMode.PerColumn, bias, 4, float.NegativeInfinity, float.PositiveInfinity),
            GemmEpilogue.Clamp(0f, 0.5f),
        };
        foreach (var epi in epilogues)
            foreach (var (ho, wo, wp) in ImplicitGeometries)
                CheckImplicitGemm(rng, 13, 5, ho, wo, wp, 0, Conv2dKernels.ImplicitStrips(ho, wo, wp), epi, $"epilogue {epi.Bias} [{epi.Low}, {epi.High}]");
    }

    [Test]
    public void ImplicitGemmRejectsShortOperands()
    {
        int m = 7, k = 3, ho = 3, wo = 5, wp = 7;
        int strips = Conv2dKernels.ImplicitStrips(ho, wo, wp);
        var offsets = new[] { 0, 1, 9 };
        var packed = new float[2 * MR * k];
        var dst = new float[m * ho * wo];
        int srcLen = strips * NR + 9;
        Assert.That(() => Conv2dKernels.ImplicitGemm(m, k, packed, new float[srcLen - 1], offsets, ho, wo, wp, 0, strips, dst, ho * wo, default),
            Throws.ArgumentException.With.Message.Contains("slack"));
        Assert.That(() => Conv2dKernels.ImplicitGemm(m, k, packed.AsSpan(1), new float[srcLen], offsets, ho, wo, wp, 0, strips, dst, ho * wo, default),
            Throws.ArgumentException.With.Message.Contains("packed A"));
        Assert.That(() => Conv2dKernels.ImplicitGemm(m, k, packed, new float[srcLen], offsets.AsSpan(0, 2), ho, wo, wp, 0, strips, dst, ho * wo, default),
            Throws.ArgumentException.With.Message.Contains("offsets"));
        Assert.That(() => Conv2dKernels.ImplicitGemm(m, k, packed, new float[srcLen], new[] { 0, -1, 2 }, ho, wo, wp, 0, strips, dst, ho * wo, default),
            Throws.ArgumentException);
        // The exact size is accepted.
        Assert.That(() => Conv2dKernels.ImplicitGemm(m, k, packed, new float[srcLen], offsets, ho, wo, wp, 0, strips, dst, ho * wo, default), Throws.Nothing);
    }

    private delegate void ImplicitKernelFn(int k, ref float a, ref float src, ref int off, ref float tile);

    private static void CheckImplicitMicroKernel(ImplicitKernelFn kernel, string name)
    {
        var rng = new Random(104);
        foreach (int k in new[] { 1, 2, 5, 27 })
        {
            var a = TestData.Uniform(rng, k * MR);
            var offsets = Enumerable.Range(0, k).Select(_ => rng.Next(0, 50)).ToArray();
            var src = TestData.Uniform(rng, 50 + NR);
            var tile = Sentinel.Buffer(MR * NR);
            kernel(k, ref a[0], ref src[0], ref offsets[0], ref tile[0]);
            var expected = new double[MR * NR];
            var scale = new double[MR * NR];
            for (int r = 0; r < MR; r++)
                for (int j = 0; j < NR; j++)
                    for (int kk = 0; kk < k; kk++)
                    {
                        double t = (double)a[kk * MR + r] * src[offsets[kk] + j];
                        expected[r * NR + j] += t;
                        scale[r * NR + j] += Math.Abs(t);
                    }
            Close.All(tile.AsSpan(0, MR * NR), expected, scale.Select(s => Close.SumTolerance(k, s)).ToArray(), $"{name} k={k}");
            Sentinel.AssertTail(tile, MR * NR, $"{name} k={k} (tile)");
        }
    }

    [Test]
    public void ImplicitScalarMicroKernelMatchesNaive() => CheckImplicitMicroKernel(Conv2dKernels.ImplicitKernel6x16Scalar, "implicit scalar 6x16");

    [Test]
    public void ImplicitAvx2MicroKernelMatchesNaive()
    {
        if (!(Avx2.IsSupported && Fma.IsSupported)) Assert.Ignore("AVX2/FMA not available in this process");
        CheckImplicitMicroKernel(Conv2dKernels.ImplicitKernel6x16Avx2, "implicit avx2 6x16");
    }

    // ---- shifted dot products ----

    [Test]
    public void ShiftedDotMatchesNaive([Values] bool accumulate)
    {
        var rng = new Random(accumulate ? 201 : 202);
        foreach (int m in new[] { 1, 3, 4, 5, 8, 9 })
            foreach (int n in new[] { 1, 2, 3, 4, 5, 7 })
                foreach (int len in new[] { 8, 16, 24, 64, 200 })
                {
                    string what = $"shifted dot m={m} n={n} len={len} acc={accumulate}";
                    var a = StridedMatrix.Random(rng, m, len, len + 3);
                    var offsets = Enumerable.Range(0, n).Select(_ => rng.Next(0, 31)).ToArray();
                    int srcLen = offsets.Max() + len;
                    var src = Sentinel.Buffer(srcLen);
                    foreach (int o in offsets)
                        for (int t = 0; t < len; t++)
                            if (Sentinel.IsMarker(src[o + t])) src[o + t] = (float)(rng.NextDouble() * 2 - 1);
                    var dw = new StridedMatrix(m, n, n + 2);
                    var init = new double[m * n];
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++)
                        {
                            float v = accumulate ? (float)(rng.NextDouble() * 4 - 2) : float.NaN;
                            dw[i, j] = v;
                            init[i * n + j] = accumulate ? v : 0;
                        }
                    Conv2dKernels.ShiftedDot(m, n, len, a.Span, a.Ld, src.AsSpan(0, srcLen), offsets, dw.Span, dw.Ld, accumulate);

                    var expected = new double[m * n];
                    var scale = new double[m * n];
                    var got = new float[m * n];
                    for (int i = 0; i < m; i++)
                        for (int j = 0; j < n; j++)
                        {
                            double s = init[i * n + j], mag = Math.Abs(s);
                            for (int t = 0; t < len; t++) { double p = (double)a[i, t] * src[offsets[j] + t]; s += p; mag += Math.Abs(p); }
                            expected[i * n + j] = s; scale[i * n + j] = mag; got[i * n + j] = dw[i, j];
                        }
                    Close.All(got, expected, scale.Select(x => Close.SumTolerance(len + 1, x)).ToArray(), what, idx => $"row {idx / n}, column {idx % n}");
                    dw.AssertPaddingUntouched(what + " (dw)");
                }
    }

    [Test]
    public void ShiftedDotOfLengthZeroClearsOrKeeps([Values] bool accumulate)
    {
        var dw = new[] { 1f, 2f, 3f, 4f, 5f, 6f };
        Conv2dKernels.ShiftedDot(2, 3, 0, ReadOnlySpan<float>.Empty, 0, ReadOnlySpan<float>.Empty, new[] { 0, 0, 0 }, dw, 3, accumulate);
        Assert.That(dw, Is.EqualTo(accumulate ? new[] { 1f, 2f, 3f, 4f, 5f, 6f } : new float[6]).AsCollection);
    }

    [Test]
    public void ShiftedDotRejectsBadArguments()
    {
        var a = new float[64];
        var src = new float[64];
        var dw = new float[16];
        int[] offsets = [0, 1, 2];
        Assert.That(() => Conv2dKernels.ShiftedDot(2, 3, 12, a, 16, src, offsets, dw, 3, false),
            Throws.ArgumentException.With.Message.Contains("not a multiple of 8"));
        Assert.That(() => Conv2dKernels.ShiftedDot(2, 3, 16, a.AsSpan(0, 31), 16, src, offsets, dw, 3, false),
            Throws.ArgumentException.With.Message.Contains("a is too short"));
        Assert.That(() => Conv2dKernels.ShiftedDot(2, 3, 16, a, 16, src.AsSpan(0, 17), offsets, dw, 3, false),
            Throws.ArgumentException.With.Message.Contains("source is too short"));
        Assert.That(() => Conv2dKernels.ShiftedDot(2, 3, 16, a, 16, src, offsets, dw.AsSpan(0, 5), 3, false),
            Throws.ArgumentException.With.Message.Contains("dw is too short"));
    }

    // ---- im2col, col2im, padding ----

    private static readonly Conv2dShape[] DataMovementShapes =
    [
        new(3, 9, 11, 5, 3, 2, 1, 1, 1, 0, 2, 1),
        new(2, 7, 13, 4, 1, 5, 1, 1, 0, 2, 0, 1),
        new(3, 15, 17, 5, 3, 3, 2, 2, 1, 1, 0, 1),
        new(2, 11, 10, 3, 3, 2, 2, 1, 0, 1, 2, 0),
        new(1, 5, 5, 1, 5, 5),
        new(4, 6, 6, 2, 1, 1, 2, 2),
    ];

    private static float NaiveIm2col(in Conv2dShape s, float[] image, int row, int pixel)
    {
        int ic = row / (s.KH * s.KW), ky = row / s.KW % s.KH, kx = row % s.KW;
        int oy = pixel / s.OutW, ox = pixel % s.OutW;
        int iy = oy * s.StrideH + ky - s.PadTop, ix = ox * s.StrideW + kx - s.PadLeft;
        return iy >= 0 && iy < s.InH && ix >= 0 && ix < s.InW ? image[(ic * s.InH + iy) * s.InW + ix] : 0f;
    }

    private static IEnumerable<(int P0, int Count)> PixelRanges(Conv2dShape s)
    {
        yield return (0, s.OutPlane);
        if (s.OutPlane > 4) yield return (3, Math.Min(10, s.OutPlane - 3));
        yield return (s.OutPlane - 1, 1);
    }

    [Test]
    public void Im2colMatchesItsDefinition()
    {
        var rng = new Random(301);
        foreach (var s in DataMovementShapes)
        {
            var image = Sentinel.Wrap(TestData.Uniform(rng, s.InSize));
            foreach (var (p0, count) in PixelRanges(s))
            {
                var col = Sentinel.Buffer(s.K * count);
                Conv2dKernels.Im2col(s, image.AsSpan(0, s.InSize), p0, count, col.AsSpan(0, s.K * count));
                for (int r = 0; r < s.K; r++)
                    for (int j = 0; j < count; j++)
                    {
                        float expected = NaiveIm2col(s, image, r, p0 + j);
                        if (BitConverter.SingleToInt32Bits(col[r * count + j]) != BitConverter.SingleToInt32Bits(expected))
                            Assert.Fail($"im2col {s} pixels [{p0},{p0 + count}): row {r}, column {j} is {col[r * count + j]}, expected {expected}");
                    }
                Sentinel.AssertTail(col, s.K * count, $"im2col {s} pixels [{p0},{p0 + count})");
            }
        }
    }

    [Test]
    public void Col2imAddMatchesItsDefinitionAndIsTheAdjointOfIm2col()
    {
        var rng = new Random(302);
        foreach (var s in DataMovementShapes)
            foreach (var (p0, count) in PixelRanges(s))
            {
                string what = $"col2im {s} pixels [{p0},{p0 + count})";
                var col = Sentinel.Wrap(TestData.Uniform(rng, s.K * count));
                var initial = TestData.Uniform(rng, s.InSize);
                var image = Sentinel.Wrap(initial);
                Conv2dKernels.Col2imAdd(s, col.AsSpan(0, s.K * count), p0, count, image.AsSpan(0, s.InSize));

                var expected = Close.ToDouble(initial);
                var scale = Close.ToDouble(TestData.Abs(initial));
                for (int r = 0; r < s.K; r++)
                    for (int j = 0; j < count; j++)
                    {
                        int ic = r / (s.KH * s.KW), ky = r / s.KW % s.KH, kx = r % s.KW;
                        int pixel = p0 + j, oy = pixel / s.OutW, ox = pixel % s.OutW;
                        int iy = oy * s.StrideH + ky - s.PadTop, ix = ox * s.StrideW + kx - s.PadLeft;
                        if (iy < 0 || iy >= s.InH || ix < 0 || ix >= s.InW) continue;
                        int idx = (ic * s.InH + iy) * s.InW + ix;
                        expected[idx] += col[r * count + j];
                        scale[idx] += Math.Abs(col[r * count + j]);
                    }
                Close.All(image.AsSpan(0, s.InSize), expected, scale, 1e-6, 1e-7, what);
                Sentinel.AssertTail(image, s.InSize, what);

                // <im2col(x), c> == <x, col2im(c)>.
                var x = TestData.Uniform(rng, s.InSize);
                var cx = new float[s.K * count];
                Conv2dKernels.Im2col(s, x, p0, count, cx);
                var back = new float[s.InSize];
                Conv2dKernels.Col2imAdd(s, col.AsSpan(0, s.K * count), p0, count, back);
                double lhs = 0, rhs = 0, mag = 0;
                for (int i = 0; i < cx.Length; i++) { lhs += (double)cx[i] * col[i]; mag += Math.Abs((double)cx[i] * col[i]); }
                for (int i = 0; i < x.Length; i++) rhs += (double)x[i] * back[i];
                Assert.That(rhs, Is.EqualTo(lhs).Within(1e-5 * mag + 1e-9), what + " (adjoint)");
            }
    }

    [Test]
    public void PadPlanesWritesZeroBordersAndCopiesTheInterior()
    {
        var rng = new Random(303);
        foreach (var (c, h, w, top, left, bottom, right) in new[]
                 { (3, 4, 5, 1, 2, 0, 3), (1, 1, 1, 0, 0, 0, 0), (2, 3, 7, 2, 2, 2, 2), (1, 6, 2, 0, 0, 4, 0), (2, 2, 9, 0, 5, 1, 0),
                   (2, 3, 28, 1, 1, 1, 1), (1, 2, 16, 0, 3, 0, 1), (1, 2, 8, 1, 0, 1, 2),
                   // Borders of 8 (one zero vector each), 9 (the scalar loop), rows of 8-13 values.
                   (2, 3, 8, 8, 8, 1, 8), (2, 3, 11, 2, 8, 0, 1), (1, 2, 12, 0, 9, 0, 0), (1, 3, 13, 0, 0, 2, 5), (3, 2, 10, 1, 1, 3, 1) })
        {
            string what = $"pad {c}x{h}x{w} by ({top},{left},{bottom},{right})";
            int hp = h + top + bottom, wp = w + left + right;
            var src = Sentinel.Wrap(TestData.Uniform(rng, c * h * w));
            var dst = Sentinel.Buffer(c * hp * wp); // the payload starts as markers: every element must be written
            Conv2dKernels.PadPlanes(src.AsSpan(0, c * h * w), c, h, w, top, left, bottom, right, dst.AsSpan(0, c * hp * wp));
            for (int ch = 0; ch < c; ch++)
                for (int y = 0; y < hp; y++)
                    for (int x = 0; x < wp; x++)
                    {
                        int sy = y - top, sx = x - left;
                        float expected = sy >= 0 && sy < h && sx >= 0 && sx < w ? src[(ch * h + sy) * w + sx] : 0f;
                        Assert.That(dst[(ch * hp + y) * wp + x], Is.EqualTo(expected), $"{what}: channel {ch}, y {y}, x {x}");
                    }
            Sentinel.AssertTail(dst, c * hp * wp, what);
        }
    }

    // ---- the references themselves ----

    private static readonly Conv2dShape[] ReferenceShapes =
    [
        new(3, 9, 11, 5, 3, 2, 1, 1, 1, 0, 2, 1),
        new(3, 15, 17, 5, 3, 3, 2, 2, 1, 1, 0, 1),
        new(2, 8, 20, 4, 2, 4, 1, 3, 1, 0, 0, 3),
        new(4, 10, 8, 7, 1, 1),
    ];

    [Test]
    public void ReferenceForwardMatchesAScatterOrderedLoop()
    {
        var rng = new Random(401);
        const int batch = 2;
        foreach (var s in ReferenceShapes)
        {
            var x = TestData.Uniform(rng, batch * s.InSize);
            var w = TestData.Uniform(rng, s.WeightCount);
            var b = TestData.Uniform(rng, s.OutC);
            var y = Sentinel.Buffer(batch * s.OutSize);
            Conv2dKernels.ReferenceForward(s, batch, x, w, b, y.AsSpan(0, batch * s.OutSize));

            // Scatter each input element into the outputs whose window covers it.
            var e = new double[batch * s.OutSize];
            for (int n = 0; n < batch; n++)
                for (int oc = 0; oc < s.OutC; oc++)
                    for (int p = 0; p < s.OutPlane; p++) e[(n * s.OutC + oc) * s.OutPlane + p] = b[oc];
            for (int n = 0; n < batch; n++)
                for (int ic = 0; ic < s.InC; ic++)
                    for (int iy = 0; iy < s.InH; iy++)
                        for (int ix = 0; ix < s.InW; ix++)
                            for (int ky = 0; ky < s.KH; ky++)
                                for (int kx = 0; kx < s.KW; kx++)
                                {
                                    int ty = iy + s.PadTop - ky, tx = ix + s.PadLeft - kx;
                                    if (ty < 0 || tx < 0 || ty % s.StrideH != 0 || tx % s.StrideW != 0) continue;
                                    int oy = ty / s.StrideH, ox = tx / s.StrideW;
                                    if (oy >= s.OutH || ox >= s.OutW) continue;
                                    for (int oc = 0; oc < s.OutC; oc++)
                                        e[((n * s.OutC + oc) * s.OutH + oy) * s.OutW + ox] +=
                                            (double)x[((n * s.InC + ic) * s.InH + iy) * s.InW + ix] * w[((oc * s.InC + ic) * s.KH + ky) * s.KW + kx];
                                }
            Close.All(y.AsSpan(0, batch * s.OutSize), e, 1e-6, 1e-6, $"reference forward {s}");
            Sentinel.AssertTail(y, batch * s.OutSize, $"reference forward {s}");
        }
    }

    [Test]
    public void ReferenceBackwardSatisfiesTheAdjointIdentities()
    {
        // For y = conv(x, w) + b and any dy: <dy, conv(x, w)> = <x, dx> = <w, dw>, and <dy, b> = <b, db>.
        var rng = new Random(402);
        const int batch = 2;
        foreach (var s in ReferenceShapes)
        {
            var x = TestData.Uniform(rng, batch * s.InSize);
            var w = TestData.Uniform(rng, s.WeightCount);
            var b = TestData.Uniform(rng, s.OutC);
            var dy = TestData.Uniform(rng, batch * s.OutSize);
            var y = new float[batch * s.OutSize];
            Conv2dKernels.ReferenceForward(s, batch, x, w, default, y);
            var dx = new float[batch * s.InSize];
            var dw = new float[s.WeightCount];
            var db = new float[s.OutC];
            Conv2dKernels.ReferenceBackward(s, batch, x, w, dy, dx, dw, db);

            double dyY = Dot(dy, y), xDx = Dot(x, dx), wDw = Dot(w, dw), bDb = Dot(b, db);
            double dyB = 0;
            for (int n = 0; n < batch; n++)
                for (int oc = 0; oc < s.OutC; oc++)
                    for (int p = 0; p < s.OutPlane; p++) dyB += (double)dy[(n * s.OutC + oc) * s.OutPlane + p] * b[oc];
            double tol = 1e-5 * Math.Sqrt(y.Length) * (1 + Math.Abs(dyY));
            Assert.That(xDx, Is.EqualTo(dyY).Within(tol), $"{s}: <x, dx> vs <dy, y>");
            Assert.That(wDw, Is.EqualTo(dyY).Within(tol), $"{s}: <w, dw> vs <dy, y>");
            Assert.That(bDb, Is.EqualTo(dyB).Within(tol), $"{s}: <b, db> vs <dy, b>");

            // Each output alone may be requested (the others empty).
            var dxOnly = new float[batch * s.InSize];
            Conv2dKernels.ReferenceBackward(s, batch, x, w, dy, dxOnly, default, default);
            Assert.That(dxOnly, Is.EqualTo(dx).AsCollection);
        }
    }

    private static double Dot(float[] a, float[] b)
    {
        double s = 0;
        for (int i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }

    [Test]
    public void SparseGatherAvx512GivesTheAvx2KernelsBits([Values(1, 2, 3, 4)] int rows, [Values(0, 1, 2, 7)] int entries)
    {
        // The sparse gradients' register block: 3 taps x 32 channels per filter row, summed over entries (value x a row of
        // src at that entry's offset). The zmm kernel runs two filter rows at a time; every lane must see the same FMAs in
        // the same order as in the ymm kernel, so the same bits.
        if (!Avx512F.IsSupported || !Fma.IsSupported) Assert.Ignore("AVX-512F not available in this process");
        var rng = new Random(rows * 10 + entries);
        const int c = 64, srcOffset = 32;
        int srcRowStep = 5 * c, dstRowStep = 3 * c + 16, dOffset = 8;
        var src = TestData.Uniform(rng, 40 * c + rows * srcRowStep);
        var rowOffsets = Enumerable.Range(0, entries).Select(_ => rng.Next(30) * c).ToArray();
        var value = TestData.Uniform(rng, entries);
        var d0 = TestData.Uniform(rng, dOffset + rows * dstRowStep + 3 * c);
        var ymm = (float[])d0.Clone();
        var zmm = (float[])d0.Clone();
        Conv2dKernels.GatherRows3x32Avx2(rowOffsets, value, src, srcOffset, srcRowStep, ymm, dOffset, dstRowStep, rows, c);
        Conv2dKernels.GatherRows3x32Avx512(rowOffsets, value, src, srcOffset, srcRowStep, zmm, dOffset, dstRowStep, rows, c);
        Assert.That(zmm, Is.EqualTo(ymm).AsCollection);
        if (entries > 0) Assert.That(ymm, Is.Not.EqualTo(d0).AsCollection, "the block added something");
    }
}
