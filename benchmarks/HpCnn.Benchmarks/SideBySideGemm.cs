using System.Globalization;
using System.Text.Json;
using HpCnn.Kernels;
using HpCnn.Layers;

namespace HpCnn.Benchmarks;

/// <summary>
/// The GEMM half of benchmarks/side_by_side.py: HpCnn's sgemm and OpenBLAS's cblas_sgemm on the shapes of
/// ANCHORS.md, alternated in one process so both see the same machine, plus this core's measured FMA peak.
/// Usage: side-by-side-gemm --threads N [--quick]. Prints one JSON object (GFLOP/s, best of the alternated rounds).
/// </summary>
internal static class SideBySideGemm
{
    public static readonly string[] Shapes = ["1024x1024x1024", "32x50176x9", "64x12544x288", "128x64x3136", "64x288x12544"];

    public static int Run(string[] args)
    {
        var (threads, quick) = SideBySide.ParseArgs(args);
        if (!OpenBlas.IsAvailable)
        {
            Console.Error.WriteLine("libopenblas.so.0 not found (apt-get install libopenblas0)");
            return 2;
        }
        Engine.Threads = threads;
        OpenBlas.SetThreads(threads);
        var results = new Dictionary<string, double> { ["threads"] = threads, ["fma_peak_gflops"] = PeakProbe.MeasureGflops(0.5),
            ["fma512_peak_gflops"] = PeakProbe.MeasureGflops512(0.5) };
        int rounds = quick ? 5 : 15;
        foreach (var shape in Shapes)
        {
            var (m, n, k, a, b, c) = Workloads.GemmOperands(shape);
            var job = Workloads.GemmJob(m, n, k, threads);
            var ws = new float[Sgemm.WorkspaceSize(m, n, k)];
            void HpCnn()
            {
                if (threads == 1)
                {
                    Sgemm.Multiply(false, false, m, n, k, a, k, b, n, c, n, false, ws);
                    return;
                }
                job.Set(false, false, m, n, k, new Buffer(a), k, new Buffer(b), n, new Buffer(c), n, false, default, threads);
                job.RunOn(WorkerPool.Shared);
            }
            void Blas() => OpenBlas.Sgemm(false, false, m, n, k, a, k, b, n, c, n);
            // Calls per sample: about 20 ms of work per sample at 100 GFLOP/s.
            double flop = 2.0 * m * n * k;
            int calls = Math.Max(1, (int)(2e9 / flop));
            // Best of the rounds: noise on this shared machine only ever slows a round down.
            double th = double.MaxValue, tb = double.MaxValue;
            HpCnn(); Blas();
            for (int r = 0; r < rounds; r++)
            {
                Settle(threads);
                th = Math.Min(th, Time(HpCnn, calls));
                Settle(threads);
                tb = Math.Min(tb, Time(Blas, calls));
            }
            results[$"hpcnn_{shape}_gflops"] = flop / th / 1e9;
            results[$"openblas_{shape}_gflops"] = flop / tb / 1e9;
        }
        Console.WriteLine(JsonSerializer.Serialize(results, SideBySideJson.Default.DictionaryStringDouble));
        return 0;
    }

    /// <summary>
    /// On more than one thread, lets the other engine's helper threads go to sleep first: OpenBLAS's spin for up to
    /// 2^28 cycles (~70 ms) after a call, and a spinning helper on one of two cores halves the next engine's speed.
    /// </summary>
    private static void Settle(int threads)
    {
        if (threads > 1) Thread.Sleep(100);
    }

    /// <summary>Seconds per call, averaged over <paramref name="calls"/> back-to-back calls.</summary>
    private static double Time(Action run, int calls)
    {
        long s = System.Diagnostics.Stopwatch.GetTimestamp();
        for (int i = 0; i < calls; i++) run();
        return System.Diagnostics.Stopwatch.GetElapsedTime(s).TotalSeconds / calls;
    }
}
