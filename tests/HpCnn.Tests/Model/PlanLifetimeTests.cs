using HpCnn.Data;
using HpCnn.Layers;
using HpCnn.Training;
using HpCnn.Tests.IO;

namespace HpCnn.Tests.Model;

/// <summary>
/// Plans over a model's life: inference plans stay within their budget whatever batch sizes callers use, a batch's result
/// does not depend on the capacity of the plan it runs in, a fit's thread count is its own, and changing the thread
/// count under running calls neither hangs them nor changes their answers.
/// </summary>
[NonParallelizable]
public class PlanLifetimeTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private int _threads;

    [SetUp]
    public void RememberThreads() => _threads = Engine.Threads;

    [TearDown]
    public void RestoreThreads() => Engine.Threads = _threads;

    private static Sequential Small(ulong seed = 3) =>
        new Sequential(new Shape3(2, 9, 9), seed)
            .Add(new Conv2D(6, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Flatten()).Add(new Dense(5))
            .Compile(LossKind.CrossEntropy, new Sgd(0.05f, momentum: 0.9f));

    [Test]
    public void PredictingAtEveryBatchSizeKeepsAFewCapacityClasses()
    {
        var model = Small();
        var x = TestModels.Images(300, model.InputShape, 5);
        int size = model.InputShape.Size;
        var order = Enumerable.Range(1, 300).ToArray();
        new Random(4).Shuffle(order);
        foreach (int count in order)
        {
            var p = model.Predict(x.AsSpan(0, count * size));
            Assert.That(p.Count, Is.EqualTo(count));
        }
        var cache = CacheOf(model);
        // Classes 1, 2, 4, ..., 256: nine plans at most, however many batch sizes were used.
        Assert.That(cache.IdleCount, Is.LessThanOrEqualTo(9), "idle plans");
        Assert.That(cache.IdleBytes, Is.LessThanOrEqualTo(model.InferenceCacheBytes));
        Assert.That(InferencePlanCache.CapacityFor(17, 256), Is.EqualTo(32));
        Assert.That(InferencePlanCache.CapacityFor(300, 256), Is.EqualTo(256));
        Assert.That(InferencePlanCache.CapacityFor(1, 256), Is.EqualTo(1));
        Assert.That(InferencePlanCache.CapacityFor(100, 100), Is.EqualTo(100));
    }

    [Test]
    public void TheBudgetEvictsTheLeastRecentlyUsedPlans()
    {
        var model = Small();
        var x = TestModels.Images(64, model.InputShape, 6);
        int size = model.InputShape.Size;
        model.Predict(x.AsSpan(0, 64 * size));
        long big = CacheOf(model).IdleBytes;
        Assert.That(big, Is.GreaterThan(0));
        model.InferenceCacheBytes = big; // room for the 64-plan alone
        model.Predict(x.AsSpan(0, 1 * size));
        Assert.That(CacheOf(model).IdleBytes, Is.LessThanOrEqualTo(big), "the budget holds after a second class");
        Assert.That(CacheOf(model).IdleCount, Is.EqualTo(1), "the older 64-plan made room for the newer 1-plan");
        model.InferenceCacheBytes = 0;
        Assert.That(CacheOf(model).IdleCount, Is.Zero, "a budget of 0 keeps nothing");
        var p = model.Predict(x.AsSpan(0, 3 * size));
        Assert.That(p.Count, Is.EqualTo(3), "predicting still works with nothing kept");
        Assert.That(CacheOf(model).IdleCount, Is.Zero);
        Assert.That(() => model.InferenceCacheBytes = -1, Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    /// <summary>Networks whose inference plans fuse in every way the plan knows: pooled, chained 1x1 pairs, means in the epilogue.</summary>
    private static IEnumerable<TestCaseData> SharingCases()
    {
        yield return new TestCaseData((Func<Sequential>)(() => TestModels.EveryLayer(21))).SetName("every layer kind");
        yield return new TestCaseData((Func<Sequential>)(() => new Sequential(new Shape3(3, 16, 16), 5)
            .Add(new Conv2D(32, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Conv2D(64, 1)).Add(new ReLU()).Add(new Conv2D(32, 1)).Add(new ReLU())
            .Add(new Conv2D(32, 3, padding: Padding.Same)).Add(new ReLU())
            .Add(new Conv2D(64, 1)).Add(new ReLU()).Add(new AvgPool2D(8)).Add(new Flatten()).Add(new Dense(10))
            .Compile(LossKind.CrossEntropy, new Sgd(0.01f)))).SetName("bottleneck: chained 1x1 pair, mean head");
        yield return new TestCaseData((Func<Sequential>)(() => new Sequential(new Shape3(3, 12, 12), 6)
            .Add(new Conv2D(16, 3, padding: Padding.Same)).Add(new BatchNorm2D()).Add(new ReLU())
            .Add(new Conv2D(16, 3, stride: 2, padding: Padding.Same)).Add(new BatchNorm2D()).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Flatten()).Add(new Dense(12)).Add(new ReLU()).Add(new Dense(4)).Add(new Softmax())
            .Compile(LossKind.CrossEntropy, new Sgd(0.01f)))).SetName("batch norm, stride 2, softmax head");
    }

    [TestCaseSource(nameof(SharingCases))]
    public void SharedInferenceBuffersGiveTheBitsOfOwnBuffers(Func<Sequential> build)
    {
        var model = build();
        TestModels.Train(model, 2, 31); // batch statistics and weights away from their initial values
        const int batch = 5;
        var x = TestModels.Images(batch, model.InputShape, 32);
        var own = new ExecutionPlan(model, batch, training: false, keepActivations: true);
        var shared = new ExecutionPlan(model, batch, training: false);
        Assert.That(shared.ArenaBytes, Is.LessThan(own.ArenaBytes), "the shared plan must be smaller, or nothing is shared");
        foreach (var plan in new[] { own, shared })
        {
            plan.SetBatch(batch);
            x.CopyTo(plan.Input);
            plan.Forward();
        }
        Assert.That(shared.Output.ToArray(), Is.EqualTo(own.Output.ToArray()), "model output");
        Assert.That(shared.ComputeLoss(false, out _), Is.EqualTo(own.ComputeLoss(false, out _)), "the loss reads the last buffers");
        // Each layer's output, as LayerOutput (a forward through that layer) reads it from a shared plan.
        var unfusedOwn = new ExecutionPlan(model, batch, training: false, fuse: false, keepActivations: true);
        unfusedOwn.SetBatch(batch);
        x.CopyTo(unfusedOwn.Input);
        unfusedOwn.Forward();
        for (int i = 0; i < model.Layers.Count; i++)
        {
            int size = model.Layers[i].OutputShape.Size;
            Assert.That(model.LayerOutput(i, x), Is.EqualTo(unfusedOwn.Acts[i + 1].Slice(0, batch * size).ToArray()), $"layer {i}");
        }
    }

    [Test]
    public void ABottleneckNetworkAt256ImagesKeepsItsPlanWithinTheDefaultBudget()
    {
        // The zoo's bottleneck network: with a buffer per layer its 256-image plan took over 300 MiB, past the default
        // budget, so every predict call planned (and allocated) anew.
        var model = new Sequential(new Shape3(3, 32, 32), 42)
            .Add(new Conv2D(64, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2));
        for (int block = 0; block < 2; block++)
            model.Add(new Conv2D(256, 1)).Add(new ReLU()).Add(new Conv2D(64, 1)).Add(new ReLU())
                .Add(new Conv2D(64, 3, padding: Padding.Same)).Add(new ReLU());
        model.Add(new Conv2D(256, 1)).Add(new ReLU()).Add(new AvgPool2D(16)).Add(new Flatten()).Add(new Dense(10))
            .Compile(LossKind.CrossEntropy, new Sgd(0.01f));
        Assert.That(new ExecutionPlan(model, 256, training: false, keepActivations: true).ArenaBytes, Is.GreaterThan(model.InferenceCacheBytes),
            "the case must be one that did not fit");
        var x = new float[256 * model.InputShape.Size];
        var probs = new float[256 * 10];
        model.PredictInto(x, probs);
        Assert.That(CacheOf(model).IdleCount, Is.EqualTo(1), "the 256-image plan is kept");
        // Later calls reuse the plan and allocate nothing.
        AllocationTests.AssertNoSteadyAllocation(AllocationTests.Measure(() => model.PredictInto(x, probs)), "PredictInto at 256 images");
    }

    [Test]
    public void APlanLargerThanTheDefaultBudgetIsKeptUntilABudgetIsSet()
    {
        // 64 filters over 512 x 512 images: a 4-image plan holds 256 MiB of convolution output alone, past the default
        // budget. Until the caller sets a budget the last plan stays whatever its size (repeated calls do not plan and
        // allocate it again); a budget set by the caller is a hard bound.
        var model = new Sequential(new Shape3(1, 512, 512), 3).Add(new Conv2D(64, 3, padding: Padding.Same)).Add(new ReLU())
            .Add(new AvgPool2D(512)).Add(new Flatten()).Add(new Dense(2)).Compile(LossKind.CrossEntropy, new Sgd(0.01f));
        var x = TestModels.Images(3, model.InputShape, 41);
        var probs = new float[3 * 2];
        model.PredictInto(x, probs);
        var cache = CacheOf(model);
        Assert.That(cache.IdleCount, Is.EqualTo(1), "the plan is kept");
        Assert.That(cache.IdleBytes, Is.GreaterThan(InferencePlanCache.DefaultBudgetBytes), "the case must be a plan past the default budget");
        AllocationTests.AssertNoSteadyAllocation(AllocationTests.Measure(() => model.PredictInto(x, probs)), "PredictInto past the default budget");
        model.InferenceCacheBytes = InferencePlanCache.DefaultBudgetBytes;
        Assert.That(cache.IdleCount, Is.Zero, "a budget the caller sets drops the larger plan");
        model.PredictInto(x, probs);
        Assert.That(cache.IdleCount, Is.Zero, "and does not keep it again");
        Assert.That(model.InferenceCacheBytes, Is.EqualTo(InferencePlanCache.DefaultBudgetBytes));
    }

    [Test]
    public void ATrainingBatchGivesTheSameWeightsInALargerPlan()
    {
        var a = Small(8);
        var b = Small(8);
        var x = TestModels.Images(32, a.InputShape, 9);
        var y = TestModels.Labels(32, 5, 10);
        int size = a.InputShape.Size;
        // b first trains on 32 images (its plan has capacity 32), then both train on 17: b runs them in its larger plan.
        a.TrainBatch(x, y);
        b.TrainBatch(x, y);
        for (int step = 0; step < 3; step++)
        {
            a.ReleaseTrainingPlan();
            a.TrainBatch(x.AsSpan(0, 17 * size), y.AsSpan(0, 17));
            b.TrainBatch(x.AsSpan(0, 17 * size), y.AsSpan(0, 17));
        }
        var wa = a.CopyParameterValues();
        var wb = b.CopyParameterValues();
        for (int i = 0; i < wa.Length; i++) Assert.That(wb[i], Is.EqualTo(wa[i]), $"parameter array {i}");
    }

    [Test]
    public void FitThreadsApplyToTheFitAlone()
    {
        Engine.Threads = 2;
        var data = new Dataset(TestModels.Images(40, new Shape3(2, 9, 9), 11), TestModels.Labels(40, 5, 12), new Shape3(2, 9, 9), 5);
        var one = Small(13);
        one.Fit(data, new FitOptions { Epochs = 2, BatchSize = 8, Threads = 1 });
        Assert.That(Engine.Threads, Is.EqualTo(2), "fit(threads: 1) left the engine at 2 threads");
        var two = Small(13);
        two.Fit(data, new FitOptions { Epochs = 2, BatchSize = 8 });
        var w1 = one.CopyParameterValues();
        var w2 = two.CopyParameterValues();
        for (int i = 0; i < w1.Length; i++) Assert.That(w1[i], Is.EqualTo(w2[i]), $"parameter array {i}: 1 thread vs 2");
        Assert.That(() => Small().Fit(data, new FitOptions { Threads = 0 }), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("threads"));
    }

    [Test]
    public void PredictingWhileTheThreadCountChangesNeverHangsAndKeepsItsAnswers()
    {
        var model = Small(14);
        var x = TestModels.Images(48, model.InputShape, 15);
        var expected = model.Predict(x).Probabilities;
        var failures = new List<string>();
        using var stop = new CancellationTokenSource();
        var toggler = Task.Factory.StartNew(() =>
        {
            for (int i = 0; !stop.IsCancellationRequested; i++)
            {
                Engine.Threads = 1 + i % 2;
                Thread.Sleep(2);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        int calls = 0;
        var predictors = Enumerable.Range(0, 3).Select(id => Task.Factory.StartNew(() =>
        {
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (sw.Elapsed < TimeSpan.FromSeconds(3))
            {
                var got = model.Predict(x).Probabilities;
                Interlocked.Increment(ref calls);
                if (!got.AsSpan().SequenceEqual(expected)) lock (failures) failures.Add($"predictor {id}: a different answer");
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default)).ToArray();
        bool finished = Task.WaitAll(predictors, Deadline);
        stop.Cancel();
        Assert.That(finished, Is.True, "a predictor hung while the thread count changed");
        Assert.That(toggler.Wait(Deadline), Is.True);
        Assert.That(failures, Is.Empty);
        Assert.That(calls, Is.GreaterThan(10));
    }

    private static InferencePlanCache CacheOf(Sequential model) => model.InferencePlans;
}
