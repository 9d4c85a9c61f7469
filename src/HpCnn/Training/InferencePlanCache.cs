using System.Numerics;

namespace HpCnn.Training;

/// <summary>
/// The inference plans of one model, kept for reuse within a memory budget. A call for <c>count</c> images gets a plan
/// of the capacity class <c>min(batchSize, next power of two &gt;= count)</c>, so whatever batch sizes a caller uses, a
/// model holds plans of at most a few classes; idle plans beyond the budget are dropped least recently used first.
/// Until a caller sets <see cref="BudgetBytes"/>, the budget is the default or the size of the last plan returned,
/// whichever is larger: repeated calls on large inputs keep their one plan instead of planning (and allocating it)
/// anew each time; a budget the caller sets is a hard bound. Concurrent callers each get their own plan (a plan runs
/// one call at a time), so memory in use is at most the budget plus one plan per call in flight. Renting and returning
/// a cached plan allocates nothing.
/// </summary>
internal sealed class InferencePlanCache(Sequential model)
{
    /// <summary>Default for <see cref="BudgetBytes"/>: enough for every class up to 256 images of mid-sized CIFAR networks.</summary>
    public const long DefaultBudgetBytes = 256L << 20;

    private struct Entry
    {
        public ExecutionPlan Plan;
        public long LastUsed;
    }

    private readonly object _lock = new();
    private readonly List<Entry> _idle = new(16);
    private long _clock;
    private long _idleBytes;
    private long _budget = DefaultBudgetBytes;
    private bool _budgetSet;
    private long _lastBytes;

    /// <summary>
    /// Bytes of idle plans kept for reuse (plans in use are not counted). Once set, a hard bound: a plan larger than it
    /// is never kept. Until then <see cref="DefaultBudgetBytes"/>, raised to the last returned plan's size.
    /// </summary>
    public long BudgetBytes
    {
        get => Volatile.Read(ref _budget);
        set
        {
            ArgumentOutOfRangeException.ThrowIfNegative(value);
            long dropped;
            lock (_lock)
            {
                _budget = value;
                _budgetSet = true;
                dropped = Trim();
            }
            if (dropped > 0) Dropped(dropped);
        }
    }

    /// <summary>The bound in force (under the lock): the set budget, or the default raised to the last plan's size.</summary>
    private long Limit => _budgetSet ? _budget : Math.Max(_budget, _lastBytes);

    /// <summary>Bytes held by idle cached plans now.</summary>
    public long IdleBytes { get { lock (_lock) return _idleBytes; } }

    /// <summary>Number of idle cached plans now.</summary>
    public int IdleCount { get { lock (_lock) return _idle.Count; } }

    /// <summary>The capacity class of a call for <paramref name="count"/> images run <paramref name="batchSize"/> at a time.</summary>
    public static int CapacityFor(int count, int batchSize) =>
        (int)Math.Min(batchSize, BitOperations.RoundUpToPowerOf2((uint)Math.Max(1, count)));

    /// <summary>A plan of capacity <paramref name="capacity"/> for this caller alone; give it back with <see cref="Return"/>.</summary>
    public ExecutionPlan Rent(int capacity, bool fuse = true)
    {
        var pool = WorkerPool.Shared;
        lock (_lock)
        {
            for (int i = _idle.Count - 1; i >= 0; i--)
            {
                var p = _idle[i].Plan;
                if (p.Capacity != capacity || p.Fused != fuse) continue;
                _idle.RemoveAt(i);
                _idleBytes -= p.ArenaBytes;
                if (p.MatchesModel && ReferenceEquals(p.Pool, pool)) return p;
            }
        }
        return new ExecutionPlan(model, capacity, training: false, fuse: fuse, pool: pool);
    }

    /// <summary>Keeps <paramref name="plan"/> for reuse if it still fits the model and the budget allows.</summary>
    public void Return(ExecutionPlan plan)
    {
        long dropped = 0;
        if (!plan.IsCurrent) dropped = plan.ArenaBytes;
        else
            lock (_lock)
            {
                _lastBytes = plan.ArenaBytes;
                if (plan.ArenaBytes > Limit) dropped = plan.ArenaBytes;
                else
                {
                    _idle.Add(new Entry { Plan = plan, LastUsed = ++_clock });
                    _idleBytes += plan.ArenaBytes;
                    dropped = Trim();
                }
            }
        if (dropped > 0) Dropped(dropped);
    }

    /// <summary>Bytes of dropped plans since the last collection this class asked for (all models).</summary>
    private static long s_dropped;

    /// <summary>Dropped bytes that make the cache ask for a full collection.</summary>
    internal const long CollectAfterBytes = 64L << 20;

    /// <summary>
    /// Plans live in pinned arrays, which only a full collection frees; left to the collector's own pace, a caller who
    /// cycles through batch sizes beyond the budget piles up hundreds of MiB of dead plans before one runs. So once
    /// <see cref="CollectAfterBytes"/> of plans have been dropped, the cache asks for one (a few milliseconds, far less
    /// than planning those workspaces cost).
    /// </summary>
    private static void Dropped(long bytes)
    {
        if (Interlocked.Add(ref s_dropped, bytes) < CollectAfterBytes) return;
        Interlocked.Exchange(ref s_dropped, 0);
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: false);
    }

    /// <summary>Drops every idle plan (the model changed shape, or the caller wants the memory back).</summary>
    public void Clear()
    {
        long dropped;
        lock (_lock)
        {
            dropped = _idleBytes;
            _idle.Clear();
            _idleBytes = 0;
        }
        if (dropped > 0) Dropped(dropped);
    }

    /// <summary>Drops the least recently used idle plans until the budget holds; returns the bytes dropped.</summary>
    private long Trim()
    {
        long dropped = 0;
        while (_idleBytes > Limit && _idle.Count > 0)
        {
            int oldest = 0;
            for (int i = 1; i < _idle.Count; i++)
                if (_idle[i].LastUsed < _idle[oldest].LastUsed) oldest = i;
            long bytes = _idle[oldest].Plan.ArenaBytes;
            _idleBytes -= bytes;
            dropped += bytes;
            _idle.RemoveAt(oldest);
        }
        return dropped;
    }
}
