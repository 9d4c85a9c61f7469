using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// Max and average pooling against naive loops written here. The 2x2 stride-2 shapes run the vector path on
/// AVX2 machines (8 windows per step, scalar tail), with widths that are and are not multiples of 16.
/// Argmax must name the first maximum in window order (row by row, left to right).
/// </summary>
public class PoolKernelsTests
{
    private static IEnumerable<TestCaseData> Shapes()
    {
        static TestCaseData Case(string name, Pool2dShape s) => new TestCaseData(s).SetArgDisplayNames(name);
        foreach (var (h, w) in new[] { (28, 28), (14, 14), (7, 7), (5, 33), (9, 17), (2, 16), (4, 32), (3, 2), (13, 47) })
            yield return Case($"2x2/2 {h}x{w}", new Pool2dShape(3, h, w, 2, 2, 2, 2));
        yield return Case("3x3/2 15x15", new Pool2dShape(2, 15, 15, 3, 3, 2, 2));
        yield return Case("3x3/2 14x17 pad 1", new Pool2dShape(2, 14, 17, 3, 3, 2, 2, 1, 1, 1, 1));
        yield return Case("2x2/2 7x9 pad (1,1,0,0)", new Pool2dShape(2, 7, 9, 2, 2, 2, 2, 1, 1, 0, 0));
        yield return Case("3x2/(1,2) 6x11 pad (1,0,1,1)", new Pool2dShape(3, 6, 11, 3, 2, 1, 2, 1, 0, 1, 1));
        yield return Case("2x2/1 5x5", new Pool2dShape(1, 5, 5, 2, 2, 1, 1));
        yield return Case("5x5/5 5x5 (global)", new Pool2dShape(4, 5, 5, 5, 5, 5, 5));
    }

    private static IEnumerable<(int Y, int X)> Window(Pool2dShape s, int oy, int ox)
    {
        for (int ky = 0; ky < s.KH; ky++)
            for (int kx = 0; kx < s.KW; kx++)
            {
                int iy = oy * s.StrideH + ky - s.PadTop, ix = ox * s.StrideW + kx - s.PadLeft;
                if (iy >= 0 && iy < s.InH && ix >= 0 && ix < s.InW) yield return (iy, ix);
            }
    }

    /// <summary>Naive max pooling of one image: values and first-maximum indices (within each plane).</summary>
    private static (float[] Out, int[] Idx) NaiveMax(Pool2dShape s, float[] input)
    {
        var o = new float[s.C * s.OutPlane];
        var idx = new int[s.C * s.OutPlane];
        for (int c = 0; c < s.C; c++)
            for (int oy = 0; oy < s.OutH; oy++)
                for (int ox = 0; ox < s.OutW; ox++)
                {
                    int best = -1;
                    foreach (var (iy, ix) in Window(s, oy, ox))
                    {
                        int i = iy * s.InW + ix;
                        if (best < 0 || input[c * s.InPlane + i] > input[c * s.InPlane + best]) best = i;
                    }
                    o[c * s.OutPlane + oy * s.OutW + ox] = input[c * s.InPlane + best];
                    idx[c * s.OutPlane + oy * s.OutW + ox] = best;
                }
        return (o, idx);
    }

    private static float[] Input(Pool2dShape s, Random rng, bool ties)
    {
        var x = new float[s.C * s.InPlane];
        // With ties: values from {-1, 0, 1}, so most windows hold several maxima.
        for (int i = 0; i < x.Length; i++) x[i] = ties ? rng.Next(3) - 1 : (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    [TestCaseSource(nameof(Shapes))]
    public void MaxForwardMatchesNaive(Pool2dShape s)
    {
        s.Validate();
        var rng = new Random(s.InH * 100 + s.InW);
        foreach (bool ties in new[] { false, true })
        {
            string what = $"max pool {s} ties={ties}";
            var x = Input(s, rng, ties);
            var (eOut, eIdx) = NaiveMax(s, x);
            var input = Sentinel.Wrap(x);
            var output = Sentinel.Buffer(s.C * s.OutPlane);
            var argmax = Sentinel.IntBuffer(s.C * s.OutPlane);
            PoolKernels.MaxForward(s, input.AsSpan(0, x.Length), output.AsSpan(0, s.C * s.OutPlane), argmax.AsSpan(0, s.C * s.OutPlane), 0, s.C);
            Close.All(output.AsSpan(0, s.C * s.OutPlane), eOut, 0, 0, what);
            for (int i = 0; i < eIdx.Length; i++)
                if (argmax[i] != eIdx[i])
                    Assert.Fail($"{what}: argmax of output {i} (channel {i / s.OutPlane}, y {i % s.OutPlane / s.OutW}, x {i % s.OutW}) is {argmax[i]}, the first maximum is at {eIdx[i]}");
            Sentinel.AssertTail(output, s.C * s.OutPlane, what + " (output)");
            Sentinel.AssertTail(argmax, s.C * s.OutPlane, what + " (argmax)");

            // Inference: no argmax, same values.
            var output2 = Sentinel.Buffer(s.C * s.OutPlane);
            PoolKernels.MaxForward(s, input.AsSpan(0, x.Length), output2.AsSpan(0, s.C * s.OutPlane), default, 0, s.C);
            Close.All(output2.AsSpan(0, s.C * s.OutPlane), eOut, 0, 0, what + " without argmax");
            Sentinel.AssertTail(output2, s.C * s.OutPlane, what + " without argmax (output)");
        }
    }

    [Test]
    public void ArgmaxPrefersTheFirstMaximumInWindowOrder()
    {
        // Every 2x2 window of a constant plane ties four ways; then each position wins against the later ones.
        foreach (int w in new[] { 32, 34, 6 })
        {
            var s = new Pool2dShape(1, 2, w, 2, 2, 2, 2);
            int ow = s.OutW;
            // Pattern per window (ox % 5): all equal, TR=BL=BR max, BL=BR max, BR max alone, TL=BR max.
            var x = new float[2 * w];
            for (int ox = 0; ox < ow; ox++)
            {
                int tl = 2 * ox, tr = 2 * ox + 1, bl = w + 2 * ox, br = w + 2 * ox + 1;
                switch (ox % 5)
                {
                    case 0: x[tl] = x[tr] = x[bl] = x[br] = 3f; break;
                    case 1: x[tl] = 1f; x[tr] = x[bl] = x[br] = 2f; break;
                    case 2: x[tl] = x[tr] = -1f; x[bl] = x[br] = 0f; break;
                    case 3: x[tl] = x[tr] = x[bl] = -5f; x[br] = -4f; break;
                    case 4: x[tl] = x[br] = 7f; x[tr] = x[bl] = 6f; break;
                }
            }
            var expectedIdx = new int[ow];
            for (int ox = 0; ox < ow; ox++)
                expectedIdx[ox] = (ox % 5) switch { 0 => 2 * ox, 1 => 2 * ox + 1, 2 => w + 2 * ox, 3 => w + 2 * ox + 1, _ => 2 * ox };
            var output = new float[ow];
            var argmax = new int[ow];
            PoolKernels.MaxForward(s, x, output, argmax, 0, 1);
            Assert.That(argmax, Is.EqualTo(expectedIdx).AsCollection, $"2x2 ties, width {w}");
        }

        // Overlapping, padded windows: an all-negative plane with equal values (padding never wins).
        var p = new Pool2dShape(1, 4, 5, 3, 3, 2, 2, 1, 1, 1, 1);
        var plane = Enumerable.Repeat(-2f, 20).ToArray();
        var o = new float[p.OutPlane];
        var idx = new int[p.OutPlane];
        PoolKernels.MaxForward(p, plane, o, idx, 0, 1);
        Assert.That(o, Is.All.EqualTo(-2f));
        for (int oy = 0; oy < p.OutH; oy++)
            for (int ox = 0; ox < p.OutW; ox++)
                Assert.That(idx[oy * p.OutW + ox], Is.EqualTo(Math.Max(0, 2 * oy - 1) * 5 + Math.Max(0, 2 * ox - 1)), $"window ({oy},{ox})");
    }

    [TestCaseSource(nameof(Shapes))]
    public void MaxBackwardScattersThroughTheArgmax(Pool2dShape s)
    {
        var rng = new Random(s.InH * 31 + s.InW + 1);
        var x = Input(s, rng, ties: true);
        var (_, eIdx) = NaiveMax(s, x);
        var dy = TestData.Uniform(rng, s.C * s.OutPlane);
        var expected = new double[s.C * s.InPlane];
        var scale = new double[s.C * s.InPlane];
        for (int c = 0; c < s.C; c++)
            for (int o = 0; o < s.OutPlane; o++)
            {
                expected[c * s.InPlane + eIdx[c * s.OutPlane + o]] += dy[c * s.OutPlane + o];
                scale[c * s.InPlane + eIdx[c * s.OutPlane + o]] += Math.Abs(dy[c * s.OutPlane + o]);
            }
        // Argmax as the forward pass produced it.
        var output = new float[s.C * s.OutPlane];
        var argmax = new int[s.C * s.OutPlane];
        PoolKernels.MaxForward(s, x, output, argmax, 0, s.C);
        var inGrad = Sentinel.Buffer(s.C * s.InPlane); // markers in the payload: overwritten, not added to
        PoolKernels.MaxBackward(s, Sentinel.Wrap(dy).AsSpan(0, dy.Length), argmax, inGrad.AsSpan(0, s.C * s.InPlane), 0, s.C);
        Close.All(inGrad.AsSpan(0, s.C * s.InPlane), expected, scale, 1e-6, 0, $"max pool backward {s}");
        Sentinel.AssertTail(inGrad, s.C * s.InPlane, $"max pool backward {s}");
    }

    [TestCaseSource(nameof(Shapes))]
    public void MaxBackwardWithAFusedReluMaskPassesOnlyInsideTheOpenInterval(Pool2dShape s)
    {
        // A ReLU (capped or not) before the pooling: its gradient is 1 where the pooled value is in (0, cap), else 0.
        var rng = new Random(s.InH * 53 + s.InW + 3);
        foreach (float cap in new[] { float.PositiveInfinity, 6f, 0.5f })
        {
            string what = $"max pool backward with relu mask, cap {cap}, {s}";
            // Planes by kind: (c+1) % 3 == 1 inside (0, cap) or at 0, 2 wide (above the cap, exactly 0 and exactly the
            // cap too), 0 all negative.
            var x = new float[s.C * s.InPlane];
            float top = float.IsInfinity(cap) ? 8f : cap;
            float[] special = [0f, -0f, float.IsInfinity(cap) ? 7f : cap, -0.25f];
            for (int i = 0; i < x.Length; i++)
            {
                int kind = (i / s.InPlane + 1) % 3;
                double u = rng.NextDouble();
                x[i] = kind switch
                {
                    0 => (float)(-0.1 - u * top),
                    1 when rng.Next(4) == 0 => special[rng.Next(2)],
                    2 when rng.Next(4) == 0 => special[rng.Next(special.Length)],
                    1 => (float)((u * 1.4 - 0.5) * top),
                    _ => (float)((u * 4 - 2) * top),
                };
            }
            var pooled = new float[s.C * s.OutPlane];
            var argmax = new int[s.C * s.OutPlane];
            PoolKernels.MaxForward(s, x, pooled, argmax, 0, s.C);
            var (_, eIdx) = NaiveMax(s, x);
            Assert.That(argmax, Is.EqualTo(eIdx).AsCollection, what + " (argmax)");
            var dy = TestData.Uniform(rng, s.C * s.OutPlane);

            var expected = new double[s.C * s.InPlane];
            var scale = new double[s.C * s.InPlane];
            int passed = 0, blocked = 0;
            for (int c = 0; c < s.C; c++)
                for (int o = 0; o < s.OutPlane; o++)
                {
                    float y = pooled[c * s.OutPlane + o];
                    if (!(y > 0 && y < cap)) { blocked++; continue; }
                    passed++;
                    expected[c * s.InPlane + eIdx[c * s.OutPlane + o]] += dy[c * s.OutPlane + o];
                    scale[c * s.InPlane + eIdx[c * s.OutPlane + o]] += Math.Abs(dy[c * s.OutPlane + o]);
                }
            if (s.C >= 3)
            {
                Assert.That(passed, Is.Positive, what + ": test data lets some gradient through");
                Assert.That(blocked, Is.Positive, what + ": test data blocks some gradient");
            }

            var inGrad = Sentinel.Buffer(s.C * s.InPlane);
            PoolKernels.MaxBackward(s, Sentinel.Wrap(dy).AsSpan(0, dy.Length), argmax, inGrad.AsSpan(0, s.C * s.InPlane), 0, s.C,
                Sentinel.Wrap(pooled).AsSpan(0, pooled.Length), cap);
            Close.All(inGrad.AsSpan(0, s.C * s.InPlane), expected, scale, 1e-6, 0, what);
            Sentinel.AssertTail(inGrad, s.C * s.InPlane, what);
        }
    }

    [TestCaseSource(nameof(Shapes))]
    public void AvgForwardAndBackwardMatchNaive(Pool2dShape s)
    {
        var rng = new Random(s.InH * 17 + s.InW + 2);
        var x = TestData.Uniform(rng, s.C * s.InPlane);
        var dy = TestData.Uniform(rng, s.C * s.OutPlane);
        double div = s.KH * s.KW; // padding counts as zeros (count_include_pad)

        var eOut = new double[s.C * s.OutPlane];
        var eIn = new double[s.C * s.InPlane];
        var sIn = new double[s.C * s.InPlane];
        for (int c = 0; c < s.C; c++)
            for (int oy = 0; oy < s.OutH; oy++)
                for (int ox = 0; ox < s.OutW; ox++)
                {
                    double sum = 0;
                    foreach (var (iy, ix) in Window(s, oy, ox))
                    {
                        sum += x[c * s.InPlane + iy * s.InW + ix];
                        eIn[c * s.InPlane + iy * s.InW + ix] += dy[c * s.OutPlane + oy * s.OutW + ox] / div;
                        sIn[c * s.InPlane + iy * s.InW + ix] += Math.Abs(dy[c * s.OutPlane + oy * s.OutW + ox] / div);
                    }
                    eOut[c * s.OutPlane + oy * s.OutW + ox] = sum / div;
                }
        var output = Sentinel.Buffer(s.C * s.OutPlane);
        PoolKernels.AvgForward(s, Sentinel.Wrap(x).AsSpan(0, x.Length), output.AsSpan(0, s.C * s.OutPlane), 0, s.C);
        Close.All(output.AsSpan(0, s.C * s.OutPlane), eOut, Enumerable.Repeat(1.0, eOut.Length).ToArray(), 1e-6 * s.KH * s.KW, 0, $"avg pool {s}");
        Sentinel.AssertTail(output, s.C * s.OutPlane, $"avg pool {s}");

        var inGrad = Sentinel.Buffer(s.C * s.InPlane);
        PoolKernels.AvgBackward(s, Sentinel.Wrap(dy).AsSpan(0, dy.Length), inGrad.AsSpan(0, s.C * s.InPlane), 0, s.C);
        Close.All(inGrad.AsSpan(0, s.C * s.InPlane), eIn, sIn, 1e-6, 0, $"avg pool backward {s}");
        Sentinel.AssertTail(inGrad, s.C * s.InPlane, $"avg pool backward {s}");
    }

    /// <summary>
    /// Shapes for the bit-exact comparisons: 2x2 stride 2 at odd and even sizes (16- and 8-output steps with masked row
    /// tails), global pools (7x7, 8x8, 16x16: whole and partial 8-column transpose blocks), padding, strides, overlapping
    /// windows, a row too wide for the lane path; plane counts not multiples of 4, 8 or 16.
    /// </summary>
    private static IEnumerable<TestCaseData> BitShapes()
    {
        static TestCaseData Case(string name, Pool2dShape s) => new TestCaseData(s).SetArgDisplayNames($"{name} C={s.C}");
        foreach (int c in new[] { 3, 6, 17 })
            foreach (var (h, w) in new[] { (28, 28), (10, 10), (2, 2), (3, 3), (5, 33), (9, 17), (4, 32), (6, 34), (7, 64), (3, 66), (2, 95), (13, 47), (1 + 1, 31) })
                yield return Case($"2x2/2 {h}x{w}", new Pool2dShape(c, h, w, 2, 2, 2, 2));
        foreach (int c in new[] { 1, 4, 5, 8, 9, 16, 21, 35 })
        {
            yield return Case("global 16x16", new Pool2dShape(c, 16, 16, 16, 16, 16, 16));
            yield return Case("global 7x7", new Pool2dShape(c, 7, 7, 7, 7, 7, 7));
        }
        foreach (int c in new[] { 8, 13, 32 })
        {
            yield return Case("global 8x8", new Pool2dShape(c, 8, 8, 8, 8, 8, 8));
            yield return Case("global 3x20", new Pool2dShape(c, 3, 20, 3, 20, 3, 20));
            yield return Case("3x3/2 14x17 pad 1", new Pool2dShape(c, 14, 17, 3, 3, 2, 2, 1, 1, 1, 1));
            yield return Case("3x3/1 9x9 pad 1", new Pool2dShape(c, 9, 9, 3, 3, 1, 1, 1, 1, 1, 1));
            yield return Case("2x2/2 7x9 pad (1,1,0,0)", new Pool2dShape(c, 7, 9, 2, 2, 2, 2, 1, 1, 0, 0));
            yield return Case("2x2/2 8x8 pad (0,0,1,1)", new Pool2dShape(c, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1));
            yield return Case("3x2/(1,2) 6x11 pad (1,0,1,1)", new Pool2dShape(c, 6, 11, 3, 2, 1, 2, 1, 0, 1, 1));
            yield return Case("2x2/1 5x5", new Pool2dShape(c, 5, 5, 2, 2, 1, 1));
            yield return Case("4x4/4 12x20", new Pool2dShape(c, 12, 20, 4, 4, 4, 4));
            yield return Case("5x9/(3,4) 11x30 pad (2,4,1,3)", new Pool2dShape(c, 11, 30, 5, 9, 3, 4, 2, 4, 1, 3));
            yield return Case("3x3/2 5x300 (wider than the lanes' row)", new Pool2dShape(c, 5, 300, 3, 3, 2, 2));
        }
    }

    /// <summary>Random values with the edge cases of a sum mixed in: -0 (whole windows of it too), +0, subnormals, NaN-free large and tiny values.</summary>
    private static float[] SumInputs(Pool2dShape s, int seed)
    {
        var rng = new Random(seed);
        var x = new float[s.C * s.InPlane];
        float[] special = [-0f, 0f, 1.4e-45f, -1.4e-45f, 3e-39f, 1e30f, -1e30f, 1e-30f, 3.4e38f];
        for (int i = 0; i < x.Length; i++)
            x[i] = rng.Next(8) == 0 ? special[rng.Next(special.Length)] : (float)((rng.NextDouble() * 2 - 1) * Math.Pow(10, rng.Next(-3, 4)));
        // Plane 1 (when there is one) is all -0: the scalar sum starts from +0, so every output is +0.
        if (s.C > 1) x.AsSpan(s.InPlane, s.InPlane).Fill(-0f);
        return x;
    }

    private static IEnumerable<(int C0, int C1)> PlaneRanges(int c)
    {
        yield return (0, c);
        if (c > 2) yield return (1, c - 1);
        if (c > 1) yield return (c - 1, c);
    }

    [TestCaseSource(nameof(BitShapes))]
    public void AvgForwardGivesTheScalarReferenceBits(Pool2dShape s)
    {
        s.Validate();
        var x = Sentinel.Wrap(SumInputs(s, s.C * 1000 + s.InH * 31 + s.InW));
        int n = s.C * s.OutPlane;
        foreach (var (c0, c1) in PlaneRanges(s.C))
        {
            string what = $"{s} planes [{c0}, {c1})";
            var fast = Sentinel.Buffer(n);
            var reference = Sentinel.Buffer(n);
            PoolKernels.AvgForward(s, x.AsSpan(0, s.C * s.InPlane), fast.AsSpan(0, n), c0, c1);
            PoolKernels.AvgForwardScalar(s, x.AsSpan(0, s.C * s.InPlane), reference.AsSpan(0, n), c0, c1);
            for (int i = 0; i < fast.Length; i++)
                if (BitConverter.SingleToInt32Bits(fast[i]) != BitConverter.SingleToInt32Bits(reference[i]))
                    Assert.Fail($"{what}: output {i} (plane {i / s.OutPlane}, y {i % s.OutPlane / s.OutW}, x {i % s.OutW}) is {fast[i]:R} " +
                                $"(0x{BitConverter.SingleToInt32Bits(fast[i]):X8}), the reference {reference[i]:R} (0x{BitConverter.SingleToInt32Bits(reference[i]):X8})");
            for (int i = 0; i < n; i++)
                Assert.That(Sentinel.IsMarker(fast[i]), Is.EqualTo(i < c0 * s.OutPlane || i >= c1 * s.OutPlane), $"{what}: output {i} written or not");
            if (s.C > 1 && c0 <= 1 && c1 > 1)
                for (int i = s.OutPlane; i < 2 * s.OutPlane; i++)
                    Assert.That(BitConverter.SingleToInt32Bits(fast[i]), Is.Zero, $"{what}: an all -0 window sums to +0 (output {i})");
        }
    }

    [TestCaseSource(nameof(BitShapes))]
    public void AvgBackwardGivesTheScalarReferenceBits(Pool2dShape s)
    {
        var dy = Sentinel.Wrap(SumInputs(new Pool2dShape(s.C, s.OutH, s.OutW, 1, 1, 1, 1), s.C * 7 + s.InW));
        int n = s.C * s.InPlane;
        foreach (var (c0, c1) in PlaneRanges(s.C))
        {
            string what = $"avg backward {s} planes [{c0}, {c1})";
            var fast = Sentinel.Buffer(n);
            var reference = Sentinel.Buffer(n);
            PoolKernels.AvgBackward(s, dy.AsSpan(0, s.C * s.OutPlane), fast.AsSpan(0, n), c0, c1);
            PoolKernels.AvgBackwardScalar(s, dy.AsSpan(0, s.C * s.OutPlane), reference.AsSpan(0, n), c0, c1);
            for (int i = 0; i < fast.Length; i++)
                if (BitConverter.SingleToInt32Bits(fast[i]) != BitConverter.SingleToInt32Bits(reference[i]))
                    Assert.Fail($"{what}: input gradient {i} (plane {i / s.InPlane}, y {i % s.InPlane / s.InW}, x {i % s.InW}) is {fast[i]:R}, the reference {reference[i]:R}");
            for (int i = 0; i < n; i++)
                Assert.That(Sentinel.IsMarker(fast[i]), Is.EqualTo(i < c0 * s.InPlane || i >= c1 * s.InPlane), $"{what}: input gradient {i} written or not");
        }
    }

    /// <summary>
    /// With a fused ReLU's output the backward gives the bits of the reference backward followed by the ReLU's own
    /// backward (kept where 0 &lt; y &lt; cap, 0 elsewhere): whole-plane pools through their fill, the others through
    /// the mask after the pool; y holds -0, 0, the cap itself and values on both sides.
    /// </summary>
    [TestCaseSource(nameof(BitShapes))]
    public void AvgBackwardWithAFusedReluMaskIsThePoolThenTheRelu(Pool2dShape s)
    {
        var dy = Sentinel.Wrap(SumInputs(new Pool2dShape(s.C, s.OutH, s.OutW, 1, 1, 1, 1), s.C * 11 + s.InH));
        int n = s.C * s.InPlane;
        var rng = new Random(s.C * 17 + s.InW);
        int kept = 0;
        foreach (float cap in new[] { float.PositiveInfinity, 6f })
        {
            float[] special = [0f, -0f, cap, -1f, 5.5f, 7f];
            var y = new float[n];
            for (int i = 0; i < n; i++) y[i] = rng.Next(3) == 0 ? special[rng.Next(special.Length)] : (float)(rng.NextDouble() * 16 - 8);
            var yWrapped = Sentinel.Wrap(y);
            foreach (var (c0, c1) in PlaneRanges(s.C))
            {
                string what = $"avg backward with relu mask (cap {cap}) {s} planes [{c0}, {c1})";
                var fast = Sentinel.Buffer(n);
                var reference = Sentinel.Buffer(n);
                PoolKernels.AvgBackward(s, dy.AsSpan(0, s.C * s.OutPlane), fast.AsSpan(0, n), c0, c1, yWrapped.AsSpan(0, n), cap);
                PoolKernels.AvgBackwardScalar(s, dy.AsSpan(0, s.C * s.OutPlane), reference.AsSpan(0, n), c0, c1);
                var planes = reference.AsSpan(c0 * s.InPlane, (c1 - c0) * s.InPlane);
                ActivationKernels.ReluBackward(y.AsSpan(c0 * s.InPlane, (c1 - c0) * s.InPlane), planes, planes, cap);
                for (int i = 0; i < n; i++)
                {
                    Assert.That(BitConverter.SingleToInt32Bits(fast[i]), Is.EqualTo(BitConverter.SingleToInt32Bits(reference[i])),
                        $"{what}: input gradient {i} is {fast[i]:R}, the reference {reference[i]:R}");
                    if (!Sentinel.IsMarker(fast[i]) && fast[i] != 0) kept++;
                }
                Sentinel.AssertTail(fast, n, what);
            }
        }
        Assert.That(kept, Is.Positive, "some gradient passes the mask");
    }

    [Test]
    public void AvgForwardOfOnePlaneAtTheEndOfTheBufferReadsNothingPastIt()
    {
        // The input span ends exactly where the last plane ends and the data after it are NaN markers: a read past the
        // row (a vector load not masked) would put NaN into a sum.
        foreach (var s in new[] { new Pool2dShape(5, 6, 13, 2, 2, 2, 2), new Pool2dShape(9, 7, 7, 7, 7, 7, 7), new Pool2dShape(6, 5, 11, 3, 3, 2, 2, 1, 1, 1, 1) })
        {
            var x = Sentinel.Wrap(TestData.Uniform(new Random(s.C), s.C * s.InPlane));
            var output = new float[s.C * s.OutPlane];
            PoolKernels.AvgForward(s, x.AsSpan(0, s.C * s.InPlane), output, 0, s.C);
            Assert.That(output, Has.None.NaN, $"{s}");
        }
    }

    [Test]
    public void ChannelRangesTouchOnlyTheirPlanes()
    {
        // [c0, c1) = [1, 3) of 4 planes: planes 0 and 3 of every output stay markers.
        var rng = new Random(9);
        foreach (var s in new[] { new Pool2dShape(4, 6, 34, 2, 2, 2, 2), new Pool2dShape(4, 7, 7, 3, 3, 2, 2, 1, 1, 1, 1) })
        {
            var x = TestData.Uniform(rng, s.C * s.InPlane);
            var dy = TestData.Uniform(rng, s.C * s.OutPlane);
            var (eOut, eIdx) = NaiveMax(s, x);
            var output = Sentinel.Buffer(s.C * s.OutPlane);
            var argmax = Sentinel.IntBuffer(s.C * s.OutPlane);
            PoolKernels.MaxForward(s, x, output, argmax, 1, 3);
            var avg = Sentinel.Buffer(s.C * s.OutPlane);
            PoolKernels.AvgForward(s, x, avg, 1, 3);
            var maxGrad = Sentinel.Buffer(s.C * s.InPlane);
            PoolKernels.MaxBackward(s, dy, eIdx, maxGrad, 1, 3);
            var avgGrad = Sentinel.Buffer(s.C * s.InPlane);
            PoolKernels.AvgBackward(s, dy, avgGrad, 1, 3);
            var maskedGrad = Sentinel.Buffer(s.C * s.InPlane);
            PoolKernels.MaxBackward(s, dy, eIdx, maskedGrad, 1, 3, eOut, 0.5f);
            for (int i = 0; i < s.C * s.OutPlane; i++)
            {
                bool inside = i / s.OutPlane is 1 or 2;
                Assert.That(Sentinel.IsMarker(output[i]), Is.EqualTo(!inside), $"{s} max output {i}");
                Assert.That(argmax[i] == Sentinel.IntMarker, Is.EqualTo(!inside), $"{s} argmax {i}");
                Assert.That(Sentinel.IsMarker(avg[i]), Is.EqualTo(!inside), $"{s} avg output {i}");
                if (inside)
                {
                    Assert.That(output[i], Is.EqualTo(eOut[i]), $"{s} max output {i}");
                    Assert.That(argmax[i], Is.EqualTo(eIdx[i]), $"{s} argmax {i}");
                }
            }
            for (int i = 0; i < s.C * s.InPlane; i++)
            {
                bool inside = i / s.InPlane is 1 or 2;
                Assert.That(Sentinel.IsMarker(maxGrad[i]), Is.EqualTo(!inside), $"{s} max input gradient {i}");
                Assert.That(Sentinel.IsMarker(avgGrad[i]), Is.EqualTo(!inside), $"{s} avg input gradient {i}");
                Assert.That(Sentinel.IsMarker(maskedGrad[i]), Is.EqualTo(!inside), $"{s} relu-masked max input gradient {i}");
            }
        }
    }

    [Test]
    public void InvalidGeometryThrowsNamingTheProblem()
    {
        Assert.That(() => new Pool2dShape(1, 4, 4, 2, 2, 0, 2).Validate(), Throws.ArgumentException.With.Message.Contains("stride"));
        Assert.That(() => new Pool2dShape(1, 4, 4, 2, 2, 2, 2, 2).Validate(), Throws.ArgumentException.With.Message.Contains("padding"));
        Assert.That(() => new Pool2dShape(1, 1, 4, 2, 2, 2, 2).Validate(), Throws.ArgumentException.With.Message.Contains("does not fit"));
    }
}
