using System.Runtime.InteropServices;

namespace HpCnn;

/// <summary>
/// Pins the <see cref="WorkerPool"/>'s own threads to one CPU each (Linux; best effort, anywhere else a no-op).
/// Measured on the 2-core machine (64 x 12544 x 288 split over 2 threads, 48 calls): unpinned, the scheduler often
/// stacked the worker on the caller's core while the other core idled, and 20 of 48 calls ran serialised at half
/// speed (61-80 against 140-165 GFLOP/s); with the worker pinned, none did. The calling thread is the user's and is
/// not pinned; but a caller found on a worker's CPU when it hands out work (after a sleep it may wake up there, and
/// the scheduler was seen to leave it there for whole rounds of calls) is moved off it once
/// (<see cref="MoveOff"/>). <c>HPCNN_PIN_THREADS=0</c> turns both off; so does a launch of several processes on one
/// machine (each would pin its threads to the same first CPUs: 2 ranks of 2 threads on 2 cores ran 5.4x slower pinned,
/// 1.45x unpinned, than 2 ranks of 1 thread), unless <c>HPCNN_PIN_THREADS=1</c>.
/// </summary>
internal static unsafe class ThreadAffinity
{
    private const int MaskWords = 16; // 1,024 CPUs

    [DllImport("libc", EntryPoint = "sched_getaffinity")]
    private static extern int GetAffinity(int pid, nint size, ulong* mask);

    [DllImport("libc", EntryPoint = "sched_setaffinity")]
    private static extern int SetAffinity(int pid, nint size, ulong* mask);

    [DllImport("libc", EntryPoint = "sched_getcpu")]
    private static extern int GetCpu();

    /// <summary>Set once sched_getcpu turned out to be missing: <see cref="CurrentCpu"/> runs on every pool call and must not throw there.</summary>
    private static volatile bool s_noGetCpu;

    /// <summary>The CPU the calling thread runs on now, or -1.</summary>
    public static int CurrentCpu()
    {
        if (s_noGetCpu || !OperatingSystem.IsLinux()) return -1;
        try { return GetCpu(); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            s_noGetCpu = true;
            return -1;
        }
    }

    /// <summary>
    /// Moves the calling thread off <paramref name="cpus"/>: restricts it to its other allowed CPUs (the kernel migrates
    /// it at once), then gives it back its whole set. Nothing is left pinned. Allocates nothing.
    /// </summary>
    public static void MoveOff(ReadOnlySpan<int> cpus)
    {
        ulong* mask = stackalloc ulong[MaskWords];
        ulong* rest = stackalloc ulong[MaskWords];
        try
        {
            if (GetAffinity(0, MaskWords * sizeof(ulong), mask) != 0) return;
            bool any = false;
            for (int w = 0; w < MaskWords; w++) rest[w] = mask[w];
            foreach (int cpu in cpus)
                if ((uint)cpu < MaskWords * 64) rest[cpu / 64] &= ~(1UL << (cpu % 64));
            for (int w = 0; w < MaskWords; w++) any |= rest[w] != 0;
            if (!any) return;
            if (SetAffinity(0, MaskWords * sizeof(ulong), rest) == 0)
                SetAffinity(0, MaskWords * sizeof(ulong), mask);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
    }

    /// <summary>Whether the pool pins its threads here.</summary>
    public static bool Enabled => OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable("HPCNN_PIN_THREADS") switch
    {
        "0" => false,
        "1" => true,
        _ => Distributed.Mpi.LocalRanks == 1,
    };

    /// <summary>The CPUs the calling thread may run on, ascending; empty when that cannot be read.</summary>
    public static int[] AllowedCpus()
    {
        if (!OperatingSystem.IsLinux()) return [];
        ulong* mask = stackalloc ulong[MaskWords];
        try
        {
            if (GetAffinity(0, MaskWords * sizeof(ulong), mask) != 0) return [];
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return [];
        }
        var cpus = new List<int>();
        for (int w = 0; w < MaskWords; w++)
            for (int b = 0; b < 64; b++)
                if ((mask[w] & (1UL << b)) != 0) cpus.Add(w * 64 + b);
        return cpus.ToArray();
    }

    /// <summary>Restricts the calling thread to <paramref name="cpu"/>; false when the system refused or cannot.</summary>
    public static bool PinCurrentThread(int cpu) => SetAllowedCpus([cpu]);

    /// <summary>Allows the calling thread exactly <paramref name="cpus"/>; false when the system refused or cannot.</summary>
    internal static bool SetAllowedCpus(ReadOnlySpan<int> cpus)
    {
        if (!OperatingSystem.IsLinux()) return false;
        ulong* mask = stackalloc ulong[MaskWords];
        new Span<ulong>(mask, MaskWords).Clear();
        foreach (int cpu in cpus)
        {
            if ((uint)cpu >= MaskWords * 64) return false;
            mask[cpu / 64] |= 1UL << (cpu % 64);
        }
        try
        {
            return SetAffinity(0, MaskWords * sizeof(ulong), mask) == 0;
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }
}
