using System.Diagnostics;
using System.Runtime.InteropServices;

namespace HpCnn;

/// <summary>
/// CPU time of the calling thread (Linux CLOCK_THREAD_CPUTIME_ID), falling back to wall time elsewhere. A kernel timed
/// on a machine shared with other work keeps its speed in CPU time while its wall time grows with every time slice it
/// waits; one-thread speed figures (and the FMA peak they are divided by) are taken in it.
/// </summary>
public static unsafe class ThreadClock
{
    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec { public long Sec, Nsec; }

    [DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, TimeSpec* t);

    private const int ThreadCpuTime = 3;
    private static volatile bool s_unavailable = !OperatingSystem.IsLinux();

    /// <summary>Seconds: the thread's CPU time where available, else wall time since an arbitrary origin.</summary>
    public static double Now()
    {
        if (!s_unavailable)
        {
            try
            {
                TimeSpec t;
                if (ClockGetTime(ThreadCpuTime, &t) == 0) return t.Sec + t.Nsec * 1e-9;
            }
            catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
            {
            }
            s_unavailable = true;
        }
        return Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
    }
}
