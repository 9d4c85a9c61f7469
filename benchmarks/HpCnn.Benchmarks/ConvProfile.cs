using System.Globalization;
using HpCnn.Kernels;

namespace HpCnn.Benchmarks;

/// <summary>
/// Every convolution algorithm on the zoo's layer shapes, one thread, batch 64: forward, input gradient and weight
/// gradient, best of several runs in thread CPU time (on a shared machine wall time counts other tenants' work), as
/// GFLOP/s and share of the FMA peak probed in the same process. Usage: conv-profile [--shape IC,H,W,OC,K,S,P] [--reps N] [--algo NAME] [--images N] [--same-image].
/// </summary>
internal static class ConvProfile
{
    public static readonly (string Name, Conv2dShape Shape)[] ZooShapes =
    [
        ("ref conv2 32x14x14->64", new Conv2dShape(32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1)),
        ("vgg 32x32x32->32", new Conv2dShape(32, 32, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1)),
        ("vgg 32x16x16->64", new Conv2dShape(32, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, 1)),
        ("vgg 64x16x16->64", new Conv2dShape(64, 16, 16, 64, 3, 3, 1, 1, 1, 1, 1, 1)),
        ("vgg 64x8x8->128", new Conv2dShape(64, 8, 8, 128, 3, 3, 1, 1, 1, 1, 1, 1)),
        ("vgg 128x8x8->128", new Conv2dShape(128, 8, 8, 128, 3, 3, 1, 1, 1, 1, 1, 1)),
        ("s2 32x32x32->64", new Conv2dShape(32, 32, 32, 64, 3, 3, 2, 2, 1, 1, 1, 1)),
        ("s2 64x16x16->128", new Conv2dShape(64, 16, 16, 128, 3, 3, 2, 2, 1, 1, 1, 1)),
        ("1x1 64x16x16->256", new Conv2dShape(64, 16, 16, 256, 1, 1)),
        ("1x1 256x16x16->64", new Conv2dShape(256, 16, 16, 64, 1, 1)),
        ("lenet 6x14x14->16 5x5", new Conv2dShape(6, 14, 14, 16, 5, 5)),
        ("c 3x32x32->32", new Conv2dShape(3, 32, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1)),
    ];

    /// <summary>A pinned window of <paramref name="n"/> floats starting on a 64-byte boundary.</summary>
    private static unsafe Buffer Aligned(int n)
    {
        var a = GC.AllocateArray<float>(n + 16, pinned: true);
        fixed (float* p = a) return new Buffer(a, (int)((64 - (long)p % 64) % 64 / 4), n);
    }

    public static int Run(string[] args)
    {
        Engine.Threads = 1;
        int reps = 5, batch = 64;
        bool sameImage = false; // --same-image: every image is the first one (input and output stay in cache)
        Conv2dAlgorithm? only = null; // --algo NAME: that algorithm alone (e.g. under perf)
        int? imagesPerCall = null; // --images N: N images per forward and input-gradient call (1: a batch-1 prediction's calls)
        var shapes = ZooShapes.ToList();
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--reps") reps = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--same-image") sameImage = true;
            else if (args[i] == "--images") imagesPerCall = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--algo") only = Enum.Parse<Conv2dAlgorithm>(args[++i], ignoreCase: true);
            else if (args[i] == "--shape")
            {
                var v = args[++i].Split(',').Select(t => int.Parse(t, CultureInfo.InvariantCulture)).ToArray();
                shapes = [(args[i], new Conv2dShape(v[0], v[1], v[2], v[3], v[4], v[4], v[5], v[5], v[6], v[6], v[6], v[6]))];
            }
        }
        double peak = Math.Max(PeakProbe.MeasureGflops(), PeakProbe.MeasureGflops512());
        Console.WriteLine($"{Engine.Describe()}; FMA peak probed: {peak:F1} GFLOP/s; batch {batch}, thread CPU time, best of {reps}");
        Console.WriteLine($"{"shape",-26} {"algorithm",-14} {"fwd ms",8} {"fwd %",6} {"dx ms",8} {"dx %",6} {"dw ms",8} {"dw %",6}");
        foreach (var (name, s) in shapes)
        {
            foreach (var algo in Enum.GetValues<Conv2dAlgorithm>())
            {
                if (only is not null && algo != only) continue;
                Conv2dPlan plan;
                try { plan = new Conv2dPlan(s, algo); }
                catch (ArgumentException) { continue; }
                if (algo == Conv2dAlgorithm.DirectSmall && s.InC > 8) continue;
                var x = Workloads.Random(batch * s.InSize, 1);
                var w = Workloads.Random(s.WeightCount, 2);
                var dy = Workloads.Random(batch * s.OutSize, 3);
                var y = new float[batch * s.OutSize];
                var dx = new float[batch * s.InSize];
                var dw = new float[s.WeightCount];
                var db = new float[s.OutC];
                // 64-byte aligned, as in a plan's arena.
                var packed = Aligned(plan.PackedWeightsSize + 16);
                var packedT = Aligned(plan.PackedWeightsTSize + 16);
                plan.PackWeights(w, packed.Span);
                plan.PackWeightsTransposed(w, packedT.Span);
                var scratch = Aligned(Math.Max(plan.ForwardScratch, Math.Max(plan.BackwardDataScratch, plan.BackwardWeightsScratch)) + 64);
                var epi = new GemmEpilogue(BiasMode.PerRow, db, 0, 0f, float.PositiveInfinity);
                int group = Math.Min(imagesPerCall ?? plan.ImagesPerCall, plan.ImagesPerCall);
                double Best(Action a)
                {
                    a();
                    double best = double.MaxValue;
                    for (int r = 0; r < reps; r++)
                    {
                        double t0 = ThreadClock.Now();
                        a();
                        best = Math.Min(best, ThreadClock.Now() - t0);
                    }
                    return best;
                }
                double tf = Best(() =>
                {
                    for (int n = 0; n < batch; n += group)
                    {
                        int c = Math.Min(group, batch - n);
                        int at = sameImage ? 0 : n;
                        plan.Forward(x.AsSpan(at * s.InSize, c * s.InSize), c, w, packed.Span, y.AsSpan(at * s.OutSize, c * s.OutSize), in epi, scratch.Span);
                    }
                });
                double td = Best(() =>
                {
                    for (int n = 0; n < batch; n += group)
                    {
                        int c = Math.Min(group, batch - n);
                        plan.BackwardData(dy.AsSpan(n * s.OutSize, c * s.OutSize), c, w, packedT.Span, dx.AsSpan(n * s.InSize, c * s.InSize), scratch.Span);
                    }
                });
                double tw = Best(() =>
                {
                    if (plan.WeightsTakeWholeChunk)
                    {
                        // As the layer runs it: chunks of 4 images (batch 64, 16 chunks).
                        for (int n = 0; n < batch; n += 4)
                            plan.BackwardWeights(x.AsSpan(n * s.InSize, 4 * s.InSize), dy.AsSpan(n * s.OutSize, 4 * s.OutSize), 4, dw, db, false, scratch.Span);
                        return;
                    }
                    for (int n = 0; n < batch; n += group)
                    {
                        int c = Math.Min(group, batch - n);
                        plan.BackwardWeights(x.AsSpan(n * s.InSize, c * s.InSize), dy.AsSpan(n * s.OutSize, c * s.OutSize), c, dw, db, n % 4 != 0, scratch.Span);
                    }
                });
                double flops = (double)s.ForwardFlops * batch;
                string Pct(double t) => $"{flops / t / 1e9 / peak * 100,5:F0}%";
                Console.WriteLine($"{name,-26} {algo,-14} {tf * 1e3,8:F3} {Pct(tf)} {td * 1e3,8:F3} {Pct(td)} {tw * 1e3,8:F3} {Pct(tw)}");
            }
        }
        return 0;
    }
}
