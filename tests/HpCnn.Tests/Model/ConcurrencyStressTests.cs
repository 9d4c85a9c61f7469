using System.Diagnostics;
using HpCnn.Data;
using HpCnn.Layers;
using HpCnn.Training;
using HpCnn.Tests.IO;

namespace HpCnn.Tests.Model;

/// <summary>
/// Every call the engine allows at once, interleaved from several threads against a deadline: the thread count flipping
/// between 1 and 2, predictions on one shared model and on models of their own, evaluation of the shared model, and
/// fits of other models (with the engine's threads and with a fit-only count). Each answer is checked against one
/// computed alone beforehand (results do not depend on the thread count, so they must be equal bit for bit), and the
/// whole run must end before the deadline: a hang fails instead of stalling the suite.
/// </summary>
[NonParallelizable]
public class ConcurrencyStressTests
{
    private static readonly TimeSpan RunFor = TimeSpan.FromSeconds(6);
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(60);
    private int _threads;

    [SetUp]
    public void RememberThreads() => _threads = Engine.Threads;

    [TearDown]
    public void RestoreThreads() => Engine.Threads = _threads;

    private static Sequential Net(ulong seed) =>
        new Sequential(new Shape3(2, 9, 9), seed)
            .Add(new Conv2D(6, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Flatten()).Add(new Dense(5))
            .Compile(LossKind.CrossEntropy, new Sgd(0.05f, momentum: 0.9f));

    [Test]
    public void InterleavedThreadChangesPredictionsEvaluationsAndFitsNeverHangAndKeepTheirAnswers()
    {
        Engine.Threads = 2;
        var shape = new Shape3(2, 9, 9);
        var data = new Dataset(TestModels.Images(40, shape, 21), TestModels.Labels(40, 5, 22), shape, 5);
        var x = TestModels.Images(37, shape, 23);
        var shared = Net(30);
        var sharedExpected = shared.Predict(x).Probabilities;
        var sharedEval = shared.Evaluate(data, batchSize: 16);
        var own = Enumerable.Range(0, 2).Select(i => Net(40 + (ulong)i)).ToArray();
        var ownExpected = own.Select(m => m.Predict(x.AsSpan(0, (5 + 3) * shape.Size)).Probabilities).ToArray();
        var fitOptions = new FitOptions { Epochs = 1, BatchSize = 8 };
        var fitReference = Net(50);
        fitReference.Fit(data, fitOptions);
        var fitExpected = fitReference.CopyParameterValues();

        var failures = new List<string>();
        void Fail(string what) { lock (failures) failures.Add(what); }
        long predictions = 0, evaluations = 0, fits = 0, threadChanges = 0;
        var clock = Stopwatch.StartNew();
        bool Running() => clock.Elapsed < RunFor;
        Task Start(Action body) => Task.Factory.StartNew(body, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

        var tasks = new List<Task>
        {
            Start(() => { for (int i = 0; Running(); i++) { Engine.Threads = 1 + i % 2; Interlocked.Increment(ref threadChanges); Thread.Sleep(3); } }),
            Start(() =>
            {
                while (Running())
                {
                    var e = shared.Evaluate(data, batchSize: 16);
                    Interlocked.Increment(ref evaluations);
                    if (e.Loss != sharedEval.Loss || e.Correct != sharedEval.Correct) Fail($"evaluation: loss {e.Loss} vs {sharedEval.Loss}");
                }
            }),
            Start(() =>
            {
                for (int i = 0; Running(); i++)
                {
                    var m = Net(50);
                    m.Fit(data, new FitOptions { Epochs = 1, BatchSize = 8, Threads = i % 2 == 0 ? 1 : null });
                    Interlocked.Increment(ref fits);
                    var w = m.CopyParameterValues();
                    for (int p = 0; p < w.Length; p++)
                        if (!w[p].AsSpan().SequenceEqual(fitExpected[p])) { Fail($"fit {i}: parameter array {p} differs"); break; }
                }
            }),
        };
        for (int t = 0; t < 3; t++)
        {
            int id = t;
            tasks.Add(Start(() =>
            {
                for (int i = 0; Running(); i++)
                {
                    // Batch sizes change call by call, so plans of several capacity classes are made, shared and evicted.
                    int n = 1 + (i * 7 + id) % 37;
                    var got = shared.Predict(x.AsSpan(0, n * shape.Size)).Probabilities;
                    Interlocked.Increment(ref predictions);
                    if (!got.AsSpan().SequenceEqual(sharedExpected.AsSpan(0, n * 5))) Fail($"shared predictor {id}: batch {n} differs");
                }
            }));
        }
        for (int t = 0; t < own.Length; t++)
        {
            int id = t;
            tasks.Add(Start(() =>
            {
                var buffer = new float[8 * 5];
                while (Running())
                {
                    own[id].PredictInto(x.AsSpan(0, 8 * shape.Size), buffer);
                    Interlocked.Increment(ref predictions);
                    if (!buffer.AsSpan().SequenceEqual(ownExpected[id])) Fail($"own-model predictor {id} differs");
                }
            }));
        }

        bool finished = Task.WaitAll([.. tasks], Deadline);
        Assert.That(finished, Is.True, $"a call hung: not done {Deadline.TotalSeconds} s after the start ({predictions} predictions, {fits} fits)");
        Assert.That(failures, Is.Empty);
        TestContext.Out.WriteLine($"{predictions} predictions, {evaluations} evaluations, {fits} fits, {threadChanges} thread-count changes in {clock.Elapsed.TotalSeconds:F1} s");
        Assert.That(predictions, Is.GreaterThan(50));
        Assert.That(fits, Is.GreaterThan(1));
        Assert.That(evaluations, Is.GreaterThan(1));
    }
}
