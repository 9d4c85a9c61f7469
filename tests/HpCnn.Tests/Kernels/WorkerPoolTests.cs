namespace HpCnn.Tests.Kernels;

/// <summary>
/// The engine's thread pool: every item exactly once, exceptions surface on the caller and leave the pool usable,
/// nested and concurrent calls run inline instead of deadlocking. Calls that could hang run on a task with a
/// deadline, so a deadlock fails the test instead of stalling the suite.
/// </summary>
public class WorkerPoolTests
{
    // Long enough that a loaded machine (other builds and tests sharing the two cores) never trips it; a hang is forever.
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);

    private sealed class CountingJob(int count, int threads) : ParallelJob
    {
        public readonly int[] Hits = new int[count];
        public int BadWorker = -1;

        public override void Execute(int item, int worker)
        {
            Interlocked.Increment(ref Hits[item]);
            if ((uint)worker >= (uint)threads) BadWorker = worker;
        }
    }

    private static void RunWithDeadline(Action action, string what)
    {
        var task = Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        bool finished;
        try { finished = task.Wait(Deadline); }
        catch (AggregateException e) when (e.InnerExceptions.Count == 1)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerException!).Throw();
            throw;
        }
        Assert.That(finished, Is.True, $"{what} did not finish within {Deadline.TotalSeconds} s (deadlock?)");
    }

    private sealed class AffinityJob : ParallelJob
    {
        public readonly int[][] Cpus = new int[2][];
        private readonly Barrier _both = new(2);

        public override void Execute(int item, int worker)
        {
            // Both items wait for each other, so the two run on different threads.
            if (!_both.SignalAndWait(TimeSpan.FromSeconds(10))) throw new TimeoutException("the other item never started");
            Cpus[worker] = ThreadAffinity.AllowedCpus();
        }
    }

    [Test]
    public void PinsEachWorkerToItsOwnCpuAndLeavesTheCallerAlone()
    {
        var allowed = ThreadAffinity.AllowedCpus();
        if (!ThreadAffinity.Enabled || allowed.Length < 2) Assert.Ignore("pinning needs Linux, 2 CPUs and HPCNN_PIN_THREADS unset");
        using var pool = new WorkerPool(2);
        var job = new AffinityJob();
        RunWithDeadline(() => pool.Run(job, 2), "two items that wait for each other");
        Assert.That(job.Cpus[1], Is.EqualTo(new[] { allowed[1] }), "the worker runs on the second allowed CPU only");
        Assert.That(job.Cpus[0], Is.EqualTo(allowed), "the calling thread keeps its CPUs");
    }

    [Test]
    public void MoveOffTakesTheCallerOffAWorkersCpuAndLeavesItUnpinned()
    {
        var allowed = ThreadAffinity.AllowedCpus();
        if (!ThreadAffinity.Enabled || allowed.Length < 2) Assert.Ignore("needs Linux, 2 CPUs and HPCNN_PIN_THREADS unset");
        RunWithDeadline(() =>
        {
            for (int attempt = 0; attempt < 5; attempt++)
            {
                // Put this thread on the second CPU, then give it back all its CPUs: it stays there until moved.
                Assert.That(ThreadAffinity.PinCurrentThread(allowed[1]), Is.True);
                Assert.That(ThreadAffinity.CurrentCpu(), Is.EqualTo(allowed[1]));
                Assert.That(ThreadAffinity.SetAllowedCpus(allowed), Is.True);
                ThreadAffinity.MoveOff([allowed[1]]);
                Assert.That(ThreadAffinity.CurrentCpu(), Is.Not.EqualTo(allowed[1]), $"attempt {attempt}: still on the worker's CPU");
                Assert.That(ThreadAffinity.AllowedCpus(), Is.EqualTo(allowed), "the caller keeps all its CPUs");
            }
        }, "moving a thread between CPUs");
    }

    [Test]
    public void RunsEveryItemExactlyOnce([Values(1, 2, 4)] int threads)
    {
        using var pool = new WorkerPool(threads);
        Assert.That(pool.ThreadCount, Is.EqualTo(threads));
        RunWithDeadline(() =>
        {
            for (int count = 0; count <= 100; count++)
            {
                var job = new CountingJob(count, threads);
                pool.Run(job, count);
                int wrong = Array.FindIndex(job.Hits, h => h != 1);
                Assert.That(wrong, Is.EqualTo(-1), () => $"{threads} threads, {count} items: item {wrong} ran {job.Hits[wrong]} times");
                Assert.That(job.BadWorker, Is.EqualTo(-1), $"{threads} threads, {count} items: worker index out of range");
            }
        }, "runs of 0..100 items");
    }

    [Test]
    public void NegativeCountRunsNothing()
    {
        using var pool = new WorkerPool(2);
        var job = new CountingJob(1, 2);
        pool.Run(job, -3);
        Assert.That(job.Hits[0], Is.Zero);
    }

    private sealed class ThrowingJob(int failAt) : ParallelJob
    {
        public int Ran;

        public override void Execute(int item, int worker)
        {
            Interlocked.Increment(ref Ran);
            if (item == failAt) throw new InvalidOperationException($"item {item} failed");
        }
    }

    [Test]
    public void AnExceptionInAJobIsRethrownAndThePoolStillWorks([Values(1, 2, 4)] int threads)
    {
        using var pool = new WorkerPool(threads);
        RunWithDeadline(() =>
        {
            foreach (int failAt in new[] { 0, 17, 63 })
            {
                var bad = new ThrowingJob(failAt);
                var ex = Assert.Throws<InvalidOperationException>(() => pool.Run(bad, 64));
                Assert.That(ex!.Message, Is.EqualTo($"item {failAt} failed"));
                Assert.That(ex.StackTrace, Does.Contain(nameof(ThrowingJob)), "the original stack trace is kept");

                // The next run is complete and correct.
                var good = new CountingJob(100, threads);
                pool.Run(good, 100);
                Assert.That(good.Hits, Is.All.EqualTo(1), $"run after a failure at item {failAt}");
            }
        }, "failing runs");
    }

    private sealed class NestingJob : ParallelJob
    {
        private readonly WorkerPool _pool;
        private readonly int _inner;
        public readonly int[] InnerHits;
        public int InnerWorkerNotZero;

        public NestingJob(WorkerPool pool, int outer, int inner)
        {
            _pool = pool;
            _inner = inner;
            InnerHits = new int[outer * inner];
        }

        private sealed class Inner(NestingJob parent, int item) : ParallelJob
        {
            public override void Execute(int i, int worker)
            {
                Interlocked.Increment(ref parent.InnerHits[item * parent._inner + i]);
                if (worker != 0) Interlocked.Increment(ref parent.InnerWorkerNotZero);
            }
        }

        public override void Execute(int item, int worker) => _pool.Run(new Inner(this, item), _inner);
    }

    [Test]
    public void ANestedRunFromInsideAJobRunsInline([Values(2, 4)] int threads)
    {
        using var pool = new WorkerPool(threads);
        RunWithDeadline(() =>
        {
            var job = new NestingJob(pool, 12, 9);
            pool.Run(job, 12);
            Assert.That(job.InnerHits, Is.All.EqualTo(1), "every inner item ran once");
            Assert.That(job.InnerWorkerNotZero, Is.Zero, "inline runs are worker 0");
        }, "nested run");
    }

    [Test]
    public void ConcurrentRunsFromTwoThreadsBothComplete()
    {
        using var pool = new WorkerPool(2);
        const int rounds = 300, items = 257;
        var failures = new List<string>();
        void Caller(int id)
        {
            for (int r = 0; r < rounds; r++)
            {
                var job = new CountingJob(items, 2);
                pool.Run(job, items);
                int wrong = Array.FindIndex(job.Hits, h => h != 1);
                if (wrong >= 0) lock (failures) failures.Add($"caller {id}, round {r}: item {wrong} ran {job.Hits[wrong]} times");
                if (job.BadWorker >= 0) lock (failures) failures.Add($"caller {id}, round {r}: worker {job.BadWorker}");
            }
        }
        var a = Task.Factory.StartNew(() => Caller(0), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var b = Task.Factory.StartNew(() => Caller(1), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.That(Task.WaitAll([a, b], Deadline), Is.True, "concurrent callers did not finish (deadlock?)");
        Assert.That(failures, Is.Empty);
    }

    [Test]
    public void ThreadCountIsValidated()
    {
        Assert.That(() => new WorkerPool(0), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("at least 1"));
        Assert.That(() => new WorkerPool(257), Throws.TypeOf<ArgumentOutOfRangeException>().With.Message.Contains("at most 256"));
    }

    [Test]
    public void ADisposedPoolRunsInline()
    {
        var pool = new WorkerPool(3);
        pool.Dispose();
        pool.Dispose(); // idempotent
        RunWithDeadline(() =>
        {
            var job = new CountingJob(20, 1); // inline: worker 0 only
            pool.Run(job, 20);
            Assert.That(job.Hits, Is.All.EqualTo(1));
            Assert.That(job.BadWorker, Is.EqualTo(-1));
        }, "run on a disposed pool");
    }

    private sealed class SlowJob : ParallelJob
    {
        public readonly int[] Hits;
        public SlowJob(int count) => Hits = new int[count];

        public override void Execute(int item, int worker)
        {
            Thread.SpinWait(200);
            Interlocked.Increment(ref Hits[item]);
        }
    }

    [Test]
    public void DisposingAPoolWhileAnotherThreadRunsOnItNeverHangsTheRunner()
    {
        // The defect: Dispose during a Run left a worker returning without signalling, and the caller spun forever.
        var failures = new List<string>();
        RunWithDeadline(() =>
        {
            for (int round = 0; round < 100; round++)
            {
                var pool = new WorkerPool(2);
                using var started = new ManualResetEventSlim();
                var runner = Task.Factory.StartNew(() =>
                {
                    for (int r = 0; r < 20; r++)
                    {
                        var job = new SlowJob(64);
                        pool.Run(job, 64);
                        if (r == 0) started.Set();
                        int wrong = Array.FindIndex(job.Hits, h => h != 1);
                        if (wrong >= 0) lock (failures) failures.Add($"round {round}, run {r}: item {wrong} ran {job.Hits[wrong]} times");
                    }
                }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
                started.Wait(TimeSpan.FromSeconds(5));
                if (round % 2 == 1) Thread.SpinWait(round * 50);
                pool.Dispose();
                runner.Wait();
            }
        }, "runs on a pool disposed under them");
        Assert.That(failures, Is.Empty);
    }

    [Test]
    [NonParallelizable]
    public void ChangingTheSharedThreadCountWhileAJobRunsNeverHangsIt()
    {
        int before = WorkerPool.Shared.ThreadCount;
        try
        {
            var failures = new List<string>();
            using var stop = new CancellationTokenSource();
            var toggler = Task.Factory.StartNew(() =>
            {
                for (int i = 0; !stop.IsCancellationRequested; i++)
                {
                    WorkerPool.SetSharedThreads(1 + i % 2);
                    Thread.Sleep(1);
                }
            }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            RunWithDeadline(() =>
            {
                for (int r = 0; r < 1000; r++)
                {
                    var job = new SlowJob(33);
                    WorkerPool.Shared.Run(job, 33);
                    int wrong = Array.FindIndex(job.Hits, h => h != 1);
                    if (wrong >= 0) lock (failures) failures.Add($"run {r}: item {wrong} ran {job.Hits[wrong]} times");
                }
            }, "1,000 runs while the shared pool is replaced every millisecond");
            stop.Cancel();
            Assert.That(toggler.Wait(Deadline), Is.True);
            Assert.That(failures, Is.Empty);
        }
        finally
        {
            WorkerPool.SetSharedThreads(before);
        }
    }
}
