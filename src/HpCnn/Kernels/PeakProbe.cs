using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn.Kernels;

/// <summary>
/// Measures the fp32 FMA peak of one core: 12 independent ymm accumulators (enough to cover the FMA latency on
/// two pipes), nothing but FMAs in the loop. The yardstick "% of peak" figures are taken against.
/// </summary>
public static class PeakProbe
{
    /// <summary>GFLOP/s of one thread running FMAs for about <paramref name="seconds"/> (0 on the scalar path).</summary>
    public static double MeasureGflops(double seconds = 0.3)
    {
        if (!Engine.UseAvx2) return 0;
        Run(10_000); // warm up (JIT tiers, clocks)
        long iterations = 200_000;
        var sw = Stopwatch.StartNew();
        long total = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            Run(iterations);
            total += iterations;
        }
        return total * 12.0 * 16 / sw.Elapsed.TotalSeconds / 1e9;
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
