using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace HpCnn;

/// <summary>
/// Work that a <see cref="WorkerPool"/> runs as numbered items. Each item must write outputs no other
/// item writes, and must compute the same values whichever worker runs it: that is what makes
/// results bitwise identical for any thread count. The worker index only selects scratch memory.
/// </summary>
public abstract class ParallelJob
{
    public abstract void Execute(int item, int worker);
}

/// <summary>
/// The engine's one thread pool: a fixed set of threads that spin briefly and then sleep between jobs, each pinned
/// to its own CPU where the system allows (see <see cref="ThreadAffinity"/>).
/// <see cref="Run"/> allocates nothing. A call made while the pool is busy (another thread's call, or a
/// call from inside a job) runs inline on the caller as worker 0: no nested parallelism, no deadlock.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    private static readonly object s_sharedLock = new();
    private static WorkerPool? s_shared;

    private readonly Worker[] _workers;
    /// <summary>CPUs the workers are pinned to (empty: not pinned).</summary>
    private readonly int[] _workerCpus = [];
    private ParallelJob? _job;
    private int _count;
    private int _next;
    private int _active;
    private long _epoch;
    private int _busy;
    private volatile bool _disposed;
    private ExceptionDispatchInfo? _error;

    /// <summary>How long an idle worker spins before it sleeps.</summary>
    private static readonly long s_spinTicks = Stopwatch.Frequency / 4000; // 250 us

    public WorkerPool(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), $"thread count must be at least 1, got {threads}");
        if (threads > 256) throw new ArgumentOutOfRangeException(nameof(threads), $"thread count must be at most 256, got {threads}");
        ThreadCount = threads;
        _workers = new Worker[threads - 1];
        // Worker i runs on the i-th CPU this process may use (the caller's thread is not pinned, and moves off a
        // worker's CPU when it needs to); with more threads than CPUs nothing is pinned.
        int[] cpus = threads > 1 && ThreadAffinity.Enabled ? ThreadAffinity.AllowedCpus() : [];
        if (cpus.Length >= threads) _workerCpus = cpus[1..threads];
        for (int i = 0; i < _workers.Length; i++)
            _workers[i] = new Worker(this, i + 1, _workerCpus.Length > 0 ? _workerCpus[i] : -1);
    }

    /// <summary>Threads that run a job, the calling thread included.</summary>
    public int ThreadCount { get; }

    /// <summary>
    /// The process-wide pool (default: one thread per core, or this process's share of the cores when mpirun started several
    /// processes on this machine: <see cref="Distributed.Mpi.LocalRanks"/>).
    /// </summary>
    public static WorkerPool Shared
    {
        get
        {
            var p = Volatile.Read(ref s_shared);
            if (p is not null) return p;
            lock (s_sharedLock)
            {
                s_shared ??= new WorkerPool(Math.Max(1, Environment.ProcessorCount / Distributed.Mpi.LocalRanks));
                return s_shared;
            }
        }
    }

    /// <summary>Replaces the shared pool with one of <paramref name="threads"/> threads (no-op if unchanged).</summary>
    public static void SetSharedThreads(int threads)
    {
        if (threads < 1 || threads > 256)
            throw new ArgumentOutOfRangeException(nameof(threads), $"thread count must be between 1 and 256, got {threads}");
        WorkerPool? old;
        lock (s_sharedLock)
        {
            if (s_shared is not null && s_shared.ThreadCount == threads) return;
            old = s_shared;
            s_shared = new WorkerPool(threads);
        }
        // Callers that took the old pool before the swap finish their current call on it, then run inline.
        old?.Dispose();
    }

    /// <summary>Runs items 0..count-1 of <paramref name="job"/> on the pool and returns when all are done.</summary>
    public void Run(ParallelJob job, int count)
    {
        if (count <= 0) return;
        if (count == 1 || _workers.Length == 0 || _disposed || Interlocked.CompareExchange(ref _busy, 1, 0) != 0)
        {
            for (int i = 0; i < count; i++) job.Execute(i, 0);
            return;
        }
        try
        {
            _job = job;
            _count = count;
            _next = 0;
            _error = null;
            _active = _workers.Length;
            if (_workerCpus.Length > 0 && Array.IndexOf(_workerCpus, ThreadAffinity.CurrentCpu()) >= 0)
                ThreadAffinity.MoveOff(_workerCpus);
            Interlocked.Increment(ref _epoch); // publishes the fields above
            foreach (var w in _workers)
                if (Volatile.Read(ref w.Sleeping) != 0) w.Wake.Set();
            Work(0);
            var spin = new SpinWait();
            while (Volatile.Read(ref _active) != 0) spin.SpinOnce(-1);
            _job = null;
            _error?.Throw();
        }
        finally
        {
            Volatile.Write(ref _busy, 0);
        }
    }

    private void Work(int worker)
    {
        var job = _job!;
        int count = _count;
        int i;
        while ((i = Interlocked.Increment(ref _next) - 1) < count)
        {
            try { job.Execute(i, worker); }
            catch (Exception e)
            {
                Interlocked.CompareExchange(ref _error, ExceptionDispatchInfo.Capture(e), null);
                Volatile.Write(ref _next, count); // stop handing out items
            }
        }
    }

    /// <summary>
    /// Stops the workers. A call running on the pool finishes first (Dispose waits for it): a worker must never leave a
    /// job half-signalled, or the caller of that job would wait forever. Later calls run inline on their caller.
    /// Must not be called from inside a job of this pool.
    /// </summary>
    public void Dispose()
    {
        if (_disposed) return;
        // Take the pool as a caller would: once held, no Run is in flight and none can start (they run inline).
        var spin = new SpinWait();
        while (Interlocked.CompareExchange(ref _busy, 1, 0) != 0) spin.SpinOnce();
        _disposed = true;
        Interlocked.Increment(ref _epoch);
        foreach (var w in _workers) w.Wake.Set();
    }

    private sealed class Worker
    {
        public readonly ManualResetEventSlim Wake = new(false, 0);
        public int Sleeping;
        private readonly WorkerPool _pool;
        private readonly int _index;
        private readonly int _cpu;

        public Worker(WorkerPool pool, int index, int cpu)
        {
            _pool = pool;
            _index = index;
            _cpu = cpu;
            var t = new Thread(Loop) { IsBackground = true, Name = $"hpcnn-worker-{index}" };
            t.Start();
        }

        private void Loop()
        {
            if (_cpu >= 0) ThreadAffinity.PinCurrentThread(_cpu);
            long seen = 0;
            while (true)
            {
                long start = Stopwatch.GetTimestamp();
                long e;
                while ((e = Volatile.Read(ref _pool._epoch)) == seen)
                {
                    if (Stopwatch.GetTimestamp() - start < s_spinTicks)
                    {
                        Thread.SpinWait(20);
                        continue;
                    }
                    Wake.Reset();
                    Volatile.Write(ref Sleeping, 1);
                    Interlocked.MemoryBarrier();
                    if (Volatile.Read(ref _pool._epoch) == seen) Wake.Wait();
                    Volatile.Write(ref Sleeping, 0);
                    start = Stopwatch.GetTimestamp();
                }
                seen = e;
                if (_pool._disposed) return;
                _pool.Work(_index);
                Interlocked.Decrement(ref _pool._active);
            }
        }
    }
}
