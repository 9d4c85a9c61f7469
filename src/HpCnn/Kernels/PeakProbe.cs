using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

/// <summary>
/// Measures the fp32 FMA peak of one core: 12 independent ymm (or zmm) accumulators (enough to cover the FMA latency
/// on two pipes), nothing but FMAs in the loop. The yardstick "% of peak" figures are taken against. Whether a zmm FMA
/// runs at twice the ymm rate depends on the CPU (Zen 4 splits it in two halves, Zen 5 and the Xeons seen do not), so
/// both are probed; BENCHMARKS.md records what each machine gave. Timed in the thread's CPU time (<see cref="ThreadClock"/>),
/// the best of several windows, so that other tenants of a shared machine do not lower it.
/// </summary>
public static class PeakProbe
{
    /// <summary>GFLOP/s of one thread running ymm FMAs for about <paramref name="seconds"/> (0 on the scalar path).</summary>
    public static double MeasureGflops(double seconds = 0.3) => Engine.UseAvx2 ? Measure(seconds, Run, 12.0 * 16) : 0;

    /// <summary>GFLOP/s of one thread running zmm (AVX-512) FMAs for about <paramref name="seconds"/> (0 without AVX-512).</summary>
    public static double MeasureGflops512(double seconds = 0.3) => Engine.UseAvx512 ? Measure(seconds, Run512, 12.0 * 32) : 0;

    private static double Measure(double seconds, Func<long, float> run, double flopPerIteration)
    {
        run(10_000); // warm up (JIT tiers, clocks)
        const long iterations = 200_000;
        var sw = Stopwatch.StartNew();
        double best = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            double t0 = ThreadClock.Now();
            run(iterations);
            double t = ThreadClock.Now() - t0;
            if (t > 0) best = Math.Max(best, iterations * flopPerIteration / t / 1e9);
        }
        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Run512(long iterations)
    {
        var a = Vector512.Create(0.999f);
        var b = Vector512.Create(1e-7f);
        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default,
            c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Avx512F.FusedMultiplyAdd(c0, a, b); c1 = Avx512F.FusedMultiplyAdd(c1, a, b); c2 = Avx512F.FusedMultiplyAdd(c2, a, b);
            c3 = Avx512F.FusedMultiplyAdd(c3, a, b); c4 = Avx512F.FusedMultiplyAdd(c4, a, b); c5 = Avx512F.FusedMultiplyAdd(c5, a, b);
            c6 = Avx512F.FusedMultiplyAdd(c6, a, b); c7 = Avx512F.FusedMultiplyAdd(c7, a, b); c8 = Avx512F.FusedMultiplyAdd(c8, a, b);
            c9 = Avx512F.FusedMultiplyAdd(c9, a, b); c10 = Avx512F.FusedMultiplyAdd(c10, a, b); c11 = Avx512F.FusedMultiplyAdd(c11, a, b);
        }
        return Vector512.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static float Run(long iterations)
    {
        var a = Vector256.Create(0.999f);
        var b = Vector256.Create(1e-7f);
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default,
            c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        for (long i = 0; i < iterations; i++)
        {
            c0 = Fma.MultiplyAdd(c0, a, b); c1 = Fma.MultiplyAdd(c1, a, b); c2 = Fma.MultiplyAdd(c2, a, b);
            c3 = Fma.MultiplyAdd(c3, a, b); c4 = Fma.MultiplyAdd(c4, a, b); c5 = Fma.MultiplyAdd(c5, a, b);
            c6 = Fma.MultiplyAdd(c6, a, b); c7 = Fma.MultiplyAdd(c7, a, b); c8 = Fma.MultiplyAdd(c8, a, b);
            c9 = Fma.MultiplyAdd(c9, a, b); c10 = Fma.MultiplyAdd(c10, a, b); c11 = Fma.MultiplyAdd(c11, a, b);
        }
        return Vector256.Sum(c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11);
    }
}
