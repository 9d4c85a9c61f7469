using System.Diagnostics;
using HpCnn.Kernels;

namespace HpCnn.Benchmarks;

/// <summary>
/// The kernels of the reference network's training step timed alone on one thread, best of many runs: the pieces of
/// the two convolutions' pooled-gradient backward (one image, synthetic winners: 90% of the pooled values positive,
/// winners anywhere in their window), of their pooled forward (one call's group of images; Winograd's transforms and
/// GEMMs apart) and the dense layer's three GEMMs. Usage: kernel-profile.
/// </summary>
internal static class KernelProfile
{
    public static int Run(string[] args)
    {
        Engine.Threads = 1;
        Console.WriteLine($"kernels {Engine.Path}");
        Layer("conv2 32->64 14x14", new Conv2dShape(32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1));
        Layer("conv1 1->32 28x28", new Conv2dShape(1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1));
        Forward("conv2 32->64 14x14", new Conv2dShape(32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1), Conv2dAlgorithm.Winograd2x2);
        Forward("conv2 32->64 14x14", new Conv2dShape(32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1), Conv2dAlgorithm.Winograd4x4);
        Forward("conv2 32->64 14x14", new Conv2dShape(32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1), Conv2dAlgorithm.Winograd2x2);
        Forward("conv2 32->64 14x14", new Conv2dShape(32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1), Conv2dAlgorithm.Winograd4x4);
        Forward("conv1 1->32 28x28", new Conv2dShape(1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1));
        Console.WriteLine("dense 3136 -> 128, batch 64");
        Dense();
        return 0;
    }

    private static void Layer(string name, Conv2dShape s)
    {
        var rng = new Random(5);
        int ph = s.OutH / 2, pw = s.OutW / 2, pplane = ph * pw, total = s.OutC * pplane;
        var pooled = new float[total];
        var grad = new float[total];
        var argmax = new int[total];
        for (int o = 0, q = 0; o < s.OutC; o++)
            for (int py = 0; py < ph; py++)
                for (int px = 0; px < pw; px++, q++)
                {
                    pooled[q] = rng.NextDouble() < 0.9 ? (float)rng.NextDouble() + 0.01f : 0f;
                    grad[q] = (float)(rng.NextDouble() * 2 - 1);
                    argmax[q] = (2 * py + rng.Next(2)) * s.OutW + 2 * px + rng.Next(2);
                }
        var image = Workloads.Random(s.InSize, 3);
        var weights = Workloads.Random(s.WeightCount, 4);
        int hp = s.InH + s.PadTop + s.PadBottom, wp = s.InW + s.PadLeft + s.PadRight, taps = s.KH * s.KW;
        var start = new int[s.OutC + 1];
        var pixel = new int[total];
        var value = new float[total];
        var pixStart = new int[s.OutPlane + 1];
        var sortedChannel = new int[total];
        var sortedValue = new float[total];
        var rowScratch = new int[total];
        var offsets = Conv2dKernels.PixelOffsets(s, wp);
        var (xclA, xclO) = Aligned(hp * wp * s.InC + 64);
        var (dwclA, dwclO) = Aligned(s.WeightCount);
        var (dxclA, dxclO) = Aligned(hp * wp * s.InC);
        var (wclA, wclO) = Aligned(s.WeightCount);
        var dw = new float[s.WeightCount];
        var dx = new float[s.InSize];
        int kPad = Sgemm.RoundUp(s.K, 8);
        var (paddedA, paddedO) = Aligned(s.InC * hp * wp + 64);
        var (patchesA, patchesO) = Aligned(s.OutPlane * kPad);
        Conv2dKernels.WeightsToChannelsLast(weights, s.OutC, s.InC, taps, wclA.AsSpan(wclO));
        int entries = Conv2dKernels.CollectByChannel(grad, pooled, argmax, s.OutC, pplane, float.PositiveInfinity, start, pixel, value);
        double flops = 2.0 * entries * s.K;

        void Report(string what, Action a, double? f = null)
        {
            double t = Best(a);
            Console.WriteLine($"  {what,-28} {t * 1e6,8:F2} us" + (f is { } ff ? $"  {ff / t / 1e9,6:F1} GF/s" : ""));
        }

        Console.WriteLine($"{name}: {entries} non-zeros ({flops / 1e6:F2} MFLOP each for dW and dX)");
        Report("collect", () => Conv2dKernels.CollectByChannel(grad, pooled, argmax, s.OutC, pplane, float.PositiveInfinity, start, pixel, value));
        if (s.K <= 64)
        {
            Report("pad planes", () => Conv2dKernels.PadPlanes(image, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, s.PadBottom, s.PadRight, paddedA.AsSpan(paddedO)));
            Report("dW (patches)", () => Conv2dKernels.SparseWeightGradientPatches(s, start, pixel, value, paddedA.AsSpan(paddedO), hp, wp, patchesA.AsSpan(patchesO), kPad, dw, false), flops);
            return;
        }
        Report("to channels-last", () => Conv2dKernels.ToChannelsLast(image, s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, hp, wp, xclA.AsSpan(xclO)));
        Report("dW", () => Conv2dKernels.SparseWeightGradient(s, offsets, start, pixel, value, xclA.AsSpan(xclO), wp, dwclA.AsSpan(dwclO), false, rowScratch), flops);
        Report("sort by pixel", () => Conv2dKernels.SortByPixel(start, pixel, value, s.OutC, s.OutPlane, pixStart, sortedChannel, sortedValue));
        Report("clear dx", () => dxclA.AsSpan(dxclO).Clear());
        Report("dX", () => Conv2dKernels.SparseDataGradient(s, offsets, pixStart, sortedChannel, sortedValue, wclA.AsSpan(wclO), dxclA.AsSpan(dxclO), wp, rowScratch), flops);
        Report("from channels-last", () => Conv2dKernels.FromChannelsLast(dxclA.AsSpan(dxclO), s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, wp, dx));
        Report("weights from channels-last", () => Conv2dKernels.WeightsFromChannelsLast(dwclA.AsSpan(dwclO), s.OutC, s.InC, taps, dw, false));
    }

    /// <summary>The pooled forward (conv, ReLU, 2x2 max-pool) of one call's group of images, and its Winograd pieces alone.</summary>
    private static void Forward(string name, Conv2dShape s, Conv2dAlgorithm? algo = null)
    {
        var plan = new Conv2dPlan(s, algo);
        int count = plan.ImagesPerCall;
        var images = Workloads.Random(count * s.InSize, 6);
        var weights = Workloads.Random(s.WeightCount, 7);
        var packed = new float[Math.Max(1, plan.PackedWeightsSize)];
        plan.PackWeights(weights, packed);
        int pplane = (s.OutH / 2) * (s.OutW / 2);
        var pooled = new float[count * s.OutC * pplane];
        var argmax = new int[count * s.OutC * pplane];
        var (scr, scrO) = Aligned(plan.ForwardScratch);
        var epi = GemmEpilogue.Clamp(0, float.PositiveInfinity);
        double flops = (double)s.ForwardFlops * count;
        Console.WriteLine($"{name}: pooled forward, {plan.Algorithm}, {count} image(s) per call");
        double whole = Best(() => plan.ForwardPooled(images, count, weights, packed, pooled, argmax, in epi, scr.AsSpan(scrO)));
        Console.WriteLine($"  {"whole call",-28} {whole * 1e6,8:F2} us  {flops / whole / 1e9,6:F1} GF/s (direct-convolution FLOPs), {whole / count * 1e6:F2} us per image");
        if (plan.Algorithm != Conv2dAlgorithm.Winograd2x2) return;
        int th = (s.OutH + 1) / 2, tw = (s.OutW + 1) / 2, hq = 2 * th + 2, wq = 2 * tw + 2, t1 = th * tw;
        int t = Sgemm.RoundUp(count * t1, Sgemm.NR), rows = Sgemm.RoundUp(s.OutC, Sgemm.MR);
        int vStride = Conv2dPlan.XiStride(s.InC * t), mStride = Conv2dPlan.XiStride(rows * t);
        var (padded, pO) = Aligned(count * s.InC * hq * wq + 64);
        var (v, vO) = Aligned(16 * vStride);
        var (m, mO) = Aligned(16 * mStride);
        var (bPack, bO) = Aligned(s.InC * t);
        var u = new float[16 * Conv2dKernels.WinogradPackedSize(s.OutC, s.InC)];
        Conv2dKernels.WinogradWeights(weights, s.OutC, s.InC, false, u);
        int uStride = Conv2dKernels.WinogradPackedSize(s.OutC, s.InC);
        double pad = Best(() =>
        {
            for (int n = 0; n < count; n++)
                Conv2dKernels.PadPlanes(images.AsSpan(n * s.InSize, s.InSize), s.InC, s.InH, s.InW, 1, 1, hq - s.InH - 1, wq - s.InW - 1, padded.AsSpan(pO + n * s.InC * hq * wq));
        });
        double input = Best(() =>
        {
            for (int n = 0; n < count; n++)
                for (int ch = 0; ch < s.InC; ch++)
                    Conv2dKernels.WinogradInput(padded.AsSpan(pO + (n * s.InC + ch) * hq * wq), wq, th, tw, v.AsSpan(vO + ch * t), vStride, n * t1);
        });
        double gemmFlops = 16.0 * 2 * rows * s.InC * count * t1;
        double gemm = Best(() =>
        {
            for (int xi = 0; xi < 16; xi++)
            {
                Sgemm.PackB(false, v.AsSpan(vO + xi * vStride, s.InC * t), t, 0, s.InC, 0, t, bPack.AsSpan(bO));
                Sgemm.MacroKernel(rows, t, s.InC, u.AsSpan(xi * uStride, rows * s.InC), bPack.AsSpan(bO), m.AsSpan(mO + xi * mStride, rows * t), 0, t,
                    false, default, false, default, 0, 0);
            }
        });
        double output = Best(() =>
        {
            for (int n = 0; n < count; n++)
                for (int oc = 0; oc < s.OutC; oc++)
                    Conv2dKernels.WinogradOutputPooled(m.AsSpan(mO + oc * t), mStride, n * t1, tw, pooled.AsSpan((n * s.OutC + oc) * pplane, pplane),
                        argmax.AsSpan((n * s.OutC + oc) * pplane, pplane), s.OutH / 2, s.OutW / 2, s.OutW, 0f, 0f, float.PositiveInfinity);
        });
        Console.WriteLine($"  {"pad",-28} {pad * 1e6,8:F2} us");
        Console.WriteLine($"  {"input transform",-28} {input * 1e6,8:F2} us");
        Console.WriteLine($"  {"16 GEMMs (pack + kernel)",-28} {gemm * 1e6,8:F2} us  {gemmFlops / gemm / 1e9,6:F1} GF/s");
        Console.WriteLine($"  {"pooled output transform",-28} {output * 1e6,8:F2} us");
    }

    private static void Dense()
    {
        // The reference network's 3136 -> 128 layer at batch 64: forward, input gradient, weight gradient.
        foreach (var (name, ta, tb, m, n, k) in new[] { ("fwd  Y = X W^T", false, true, 64, 128, 3136), ("dX = dY W", false, false, 64, 3136, 128), ("dW = dY^T X", true, false, 128, 3136, 64) })
        {
            var a = Workloads.Random(m * k, 1);
            var b = Workloads.Random(k * n, 2);
            var c = new float[m * n];
            var ws = new float[Sgemm.WorkspaceSize(m, n, k)];
            int lda = ta ? m : k, ldb = tb ? k : n;
            double t = Best(() => Sgemm.Multiply(ta, tb, m, n, k, a, lda, b, ldb, c, n, false, ws));
            Console.WriteLine($"  {name,-28} {t * 1e6,8:F2} us  {2.0 * m * n * k / t / 1e9,6:F1} GF/s");
        }
    }

    /// <summary>A pinned array and the offset of its first 64-byte-aligned float (the engine's arena aligns so).</summary>
    private static unsafe (float[] Array, int Offset) Aligned(int n)
    {
        var a = GC.AllocateArray<float>(n + 16, pinned: true);
        fixed (float* p = a) return (a, (int)((64 - ((long)p & 63)) % 64 / 4));
    }

    private static double Best(Action a)
    {
        for (int i = 0; i < 50; i++) a();
        double best = double.MaxValue;
        for (int r = 0; r < 30; r++)
        {
            long t = Stopwatch.GetTimestamp();
            for (int i = 0; i < 20; i++) a();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t).TotalSeconds / 20);
        }
        return best;
    }
}
