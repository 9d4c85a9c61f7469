using System.Diagnostics;
using HpCnn.Kernels;

namespace HpCnn.Benchmarks;

/// <summary>
/// The pieces of the pooled-gradient backward of the reference network's two convolutions (one image, one thread),
/// timed alone on synthetic winners (90% of the pooled values positive, winners anywhere in their window).
/// Best of many runs, in microseconds. Usage: sparse-profile.
/// </summary>
internal static class SparseProfile
{
    public static int Run(string[] args)
    {
        Engine.Threads = 1;
        Console.WriteLine($"kernels {Engine.Path}");
        Layer("conv2 32->64 14x14", new Conv2dShape(32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1));
        Layer("conv1 1->32 28x28", new Conv2dShape(1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1));
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
        var offsets = Conv2dKernels.PixelOffsets(s, wp);
        var channelRows = Conv2dKernels.ChannelRows(s);
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
        Report("dW", () => Conv2dKernels.SparseWeightGradient(s, offsets, start, pixel, value, xclA.AsSpan(xclO), wp, dwclA.AsSpan(dwclO), false), flops);
        Report("sort by pixel", () => Conv2dKernels.SortByPixel(start, pixel, value, s.OutC, s.OutPlane, pixStart, sortedChannel, sortedValue));
        Report("clear dx", () => dxclA.AsSpan(dxclO).Clear());
        Report("dX", () => Conv2dKernels.SparseDataGradient(s, offsets, channelRows, pixStart, sortedChannel, sortedValue, wclA.AsSpan(wclO), dxclA.AsSpan(dxclO), wp), flops);
        Report("from channels-last", () => Conv2dKernels.FromChannelsLast(dxclA.AsSpan(dxclO), s.InC, s.InH, s.InW, s.PadTop, s.PadLeft, wp, dx));
        Report("weights from channels-last", () => Conv2dKernels.WeightsFromChannelsLast(dwclA.AsSpan(dwclO), s.OutC, s.InC, taps, dw, false));
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
