using HpCnn.Data;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.Model;

/// <summary>Freezing layers, early stopping, callbacks and cancellation.</summary>
public class TrainingControlTests
{
    private static readonly Shape3 Input = new(1, 8, 8);

    /// <summary>The seed tutorial's shape on 8x8 images: conv, ReLU, flatten, dense, sigmoid.</summary>
    private static Sequential Tutorial(ulong seed = 5) =>
        new Sequential(Input, seed)
            .Add(new Conv2D(2, 3, padding: Padding.Same))
            .Add(new ReLU())
            .Add(new Flatten())
            .Add(new Dense(1))
            .Add(new Sigmoid())
            .Compile(LossKind.BinaryCrossEntropy, new Sgd(0.05f));

    /// <summary>Two classes told apart by a bright left half (1) or right half (0), plus noise.</summary>
    private static Dataset Halves(int count, int seed)
    {
        var rng = new Random(seed);
        var images = new float[count * Input.Size];
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = i % 2;
            for (int y = 0; y < 8; y++)
                for (int x = 0; x < 8; x++)
                    images[i * 64 + y * 8 + x] = ((x < 4) == (labels[i] == 1) ? 1f : 0f) + (float)(rng.NextDouble() - 0.5);
        }
        return new Dataset(images, labels, Input, 2);
    }

    private static float[][] Snapshot(Layer layer) => layer.Parameters.Select(p => (float[])p.Value.Clone()).ToArray();
    private static float[][] Snapshot(Sequential model) => model.Layers.SelectMany(Snapshot).ToArray();

    private static bool Same(float[][] a, float[][] b) => a.Length == b.Length && a.Zip(b).All(p => p.First.AsSpan().SequenceEqual(p.Second));

    [Test]
    public void FrozenLayerKeepsItsWeightsWhileOthersLearn()
    {
        var model = Tutorial();
        var data = Halves(8, 1);
        var conv = model.Layers[0];
        var dense = model.Layers[3];
        model.Freeze(0);
        Assert.That(conv.Frozen, Is.True);
        var conv0 = Snapshot(conv);
        var dense0 = Snapshot(dense);
        for (int i = 0; i < 3; i++) model.TrainBatch(data.Images, data.Labels);
        Assert.That(Same(Snapshot(conv), conv0), Is.True, "a frozen layer's parameters do not change");
        Assert.That(Same(Snapshot(dense), dense0), Is.False, "the other layers learn");
        Assert.That(model.Summary(), Does.Contain("conv2d*"), "the summary marks frozen layers");

        // Unfreeze the convolution, freeze the dense layer: now the roles swap.
        model.Unfreeze(0);
        model.Freeze(3);
        var conv1 = Snapshot(conv);
        var dense1 = Snapshot(dense);
        for (int i = 0; i < 3; i++) model.TrainBatch(data.Images, data.Labels);
        Assert.That(Same(Snapshot(conv), conv1), Is.False, "the unfrozen convolution learns");
        Assert.That(Same(Snapshot(dense), dense1), Is.True, "the frozen dense layer keeps its weights");
        Assert.That(() => model.Freeze(7), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("layer 7 does not exist"));
    }

    [Test]
    public void TutorialExperimentFreezeTheFilterThenTheClassifier()
    {
        // The seed tutorial's experiment: train with the filter frozen (only the classifier learns), then unfreeze it
        // and freeze the classifier (only the filter learns). Both phases must still reduce the loss.
        var model = Tutorial(seed: 9);
        var train = Halves(64, 2);
        var val = Halves(32, 3);
        double initial = model.Evaluate(val).Loss;
        model.Freeze(0);
        var filter = Snapshot(model.Layers[0]);
        var h1 = model.Fit(train, new FitOptions { Epochs = 3, BatchSize = 4, Validation = val });
        Assert.That(Same(Snapshot(model.Layers[0]), filter), Is.True, "phase 1 keeps the filter");
        Assert.That(h1.Epochs[^1].ValLoss, Is.LessThan(initial), "phase 1 learns through the classifier alone");

        model.Unfreeze(0);
        model.Freeze(3);
        var classifier = Snapshot(model.Layers[3]);
        double before2 = model.Evaluate(val).Loss;
        var h2 = model.Fit(train, new FitOptions { Epochs = 3, BatchSize = 4, Validation = val });
        Assert.That(Same(Snapshot(model.Layers[3]), classifier), Is.True, "phase 2 keeps the classifier");
        Assert.That(Same(Snapshot(model.Layers[0]), filter), Is.False, "phase 2 trains the filter");
        Assert.That(h2.Epochs[^1].ValLoss, Is.LessThan(before2), "phase 2 learns through the filter alone");
        Assert.That(model.EpochsTrained, Is.EqualTo(6));
    }

    [Test]
    public void EarlyStoppingStopsAndRestoresTheBestWeights()
    {
        // MinDelta 2 on accuracy: no epoch can improve on the first one, so training stops after 1 + patience epochs.
        var model = Tutorial();
        var train = Halves(16, 4);
        var val = Halves(8, 5);
        var snapshots = new List<float[][]>();
        var history = model.Fit(train, new FitOptions
        {
            Epochs = 10, BatchSize = 4, Validation = val,
            EarlyStopping = new EarlyStopping(Patience: 2, MinDelta: 2, MonitorAccuracy: true, RestoreBestWeights: true),
            OnEpochEnd = _ => snapshots.Add(Snapshot(model)),
        });
        Assert.That(history.StopReason, Is.EqualTo("early stopping"));
        Assert.That(history.Epochs, Has.Count.EqualTo(3));
        Assert.That(history.RestoredEpoch, Is.EqualTo(1));
        Assert.That(Same(Snapshot(model), snapshots[0]), Is.True, "the weights of epoch 1 are back");
        Assert.That(Same(snapshots[2], snapshots[0]), Is.False, "training did move them in between");
        var m = history.Epochs[0];
        Assert.That(model.Evaluate(val).Loss, Is.EqualTo(m.ValLoss).Within(1e-9), "the restored model scores as it did after epoch 1");
    }

    [Test]
    public void EarlyStoppingWithoutRestoreKeepsTheLastWeights()
    {
        var model = Tutorial();
        var snapshots = new List<float[][]>();
        var history = model.Fit(Halves(16, 4), new FitOptions
        {
            Epochs = 10, BatchSize = 4, Validation = Halves(8, 5),
            EarlyStopping = new EarlyStopping(Patience: 1, MinDelta: 1e9, RestoreBestWeights: false),
            OnEpochEnd = _ => snapshots.Add(Snapshot(model)),
        });
        Assert.That(history.StopReason, Is.EqualTo("early stopping"));
        Assert.That(history.Epochs, Has.Count.EqualTo(2));
        Assert.That(history.RestoredEpoch, Is.Null);
        Assert.That(Same(Snapshot(model), snapshots[1]), Is.True);
    }

    [Test]
    public void EarlyStoppingDoesNotFireWhileTheLossImproves()
    {
        var model = Tutorial();
        var history = model.Fit(Halves(32, 6), new FitOptions
        {
            Epochs = 4, BatchSize = 4, Validation = Halves(32, 6), // validating on the training data: the loss keeps falling
            EarlyStopping = new EarlyStopping(Patience: 1),
        });
        Assert.That(history.StopReason, Is.Null);
        Assert.That(history.Epochs, Has.Count.EqualTo(4));
        Assert.That(history.Epochs.Select(e => e.ValLoss!.Value), Is.Ordered.Descending);
    }

    [Test]
    public void CallbackReturningFalseStopsAfterTheCurrentBatch()
    {
        var model = Tutorial();
        var data = Halves(40, 7); // 10 batches of 4
        var seen = new List<BatchProgress>();
        var history = model.Fit(data, new FitOptions
        {
            Epochs = 3, BatchSize = 4,
            OnBatchEnd = p => { seen.Add(p); return p.Batch < 3; },
        });
        Assert.That(seen, Has.Count.EqualTo(3), "no batch runs after the callback said stop");
        Assert.That(seen.Select(p => p.Batch), Is.EqualTo(new[] { 1, 2, 3 }));
        Assert.That(seen[^1].SamplesDone, Is.EqualTo(12));
        Assert.That(seen[^1].Batches, Is.EqualTo(10));
        Assert.That(model.Optimizer!.Steps, Is.EqualTo(3), "the current batch finished its update");
        Assert.That(history.StopReason, Is.EqualTo("stopped by callback"));
        Assert.That(history.Epochs, Is.Empty, "a partial epoch is not reported");
        Assert.That(model.EpochsTrained, Is.EqualTo(0));
    }

    [Test]
    public void CallbackStoppingOnTheLastBatchKeepsTheEpoch()
    {
        var model = Tutorial();
        var history = model.Fit(Halves(12, 7), new FitOptions
        {
            Epochs = 3, BatchSize = 4,
            OnBatchEnd = p => !(p.Epoch == 1 && p.Batch == p.Batches),
        });
        Assert.That(history.Epochs, Has.Count.EqualTo(1));
        Assert.That(history.StopReason, Is.EqualTo("stopped by callback"));
        Assert.That(model.EpochsTrained, Is.EqualTo(1));
        Assert.That(model.Optimizer!.Steps, Is.EqualTo(3));
    }

    [Test]
    public void CancellationStopsAfterTheCurrentBatch()
    {
        var model = Tutorial();
        using var cts = new CancellationTokenSource();
        int batches = 0;
        var history = model.Fit(Halves(40, 8), new FitOptions
        {
            Epochs = 2, BatchSize = 4, Cancellation = cts.Token,
            OnBatchEnd = p => { batches++; if (p.Batch == 2) cts.Cancel(); return true; },
        });
        Assert.That(batches, Is.EqualTo(2));
        Assert.That(model.Optimizer!.Steps, Is.EqualTo(2));
        Assert.That(history.StopReason, Is.EqualTo("cancelled"));
        Assert.That(history.Epochs, Is.Empty);
    }

    [Test]
    public void AlreadyCancelledTokenRunsOneBatch()
    {
        var model = Tutorial();
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        var history = model.Fit(Halves(40, 8), new FitOptions { Epochs = 2, BatchSize = 4, Cancellation = cts.Token });
        Assert.That(model.Optimizer!.Steps, Is.EqualTo(1));
        Assert.That(history.StopReason, Is.EqualTo("cancelled"));
    }

    [Test]
    public void FitReportsEveryEpochAndEveryBatch()
    {
        var model = Tutorial();
        var epochs = new List<EpochMetrics>();
        int batchCalls = 0;
        var history = model.Fit(Halves(10, 9), new FitOptions
        {
            Epochs = 2, BatchSize = 4, ValidationSplit = 0.2,
            OnEpochEnd = epochs.Add,
            OnBatchEnd = _ => { batchCalls++; return true; },
        });
        // 10 images, 2 held out: 8 training images in 2 batches per epoch.
        Assert.That(batchCalls, Is.EqualTo(4));
        Assert.That(epochs, Is.EqualTo(history.Epochs));
        Assert.That(history.Epochs.Select(e => e.Epoch), Is.EqualTo(new[] { 1, 2 }));
        Assert.That(history.Epochs, Has.All.Matches<EpochMetrics>(e => e is { ValLoss: not null, ValAccuracy: >= 0 and <= 1 }));
        Assert.That(model.Optimizer!.Steps, Is.EqualTo(4));
    }
}
