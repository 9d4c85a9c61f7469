using System.Runtime.InteropServices;
using HpCnn.Data;
using HpCnn.IO;
using HpCnn.Layers;
using HpCnn.Tests.IO;
using HpCnn.Training;

namespace HpCnn.Tests.Model;

/// <summary>Checkpoints and resume in one process: interrupted fits continue bit for bit; damaged checkpoints are skipped.</summary>
public class CheckpointTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hpcnn-ckpt-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    /// <summary>Every layer kind with state (batch norm, dropout), Adam, a step schedule; data that early stopping can see.</summary>
    internal static (Sequential Model, Dataset Train, Dataset Validation) Task(ulong seed = 7)
    {
        var m = TestModels.EveryLayer(seed);
        var train = new Dataset(TestModels.Images(90, m.InputShape, 11), TestModels.Labels(90, 3, 12), m.InputShape, 3);
        var val = new Dataset(TestModels.Images(20, m.InputShape, 13), TestModels.Labels(20, 3, 14), m.InputShape, 3);
        return (m, train, val);
    }

    private FitOptions Options(Dataset val, string? dir, bool resume = false) => new()
    {
        Epochs = 5, BatchSize = 8, Validation = val, Seed = 99, EarlyStopping = new EarlyStopping(Patience: 2, RestoreBestWeights: true),
        CheckpointDirectory = dir, CheckpointEveryBatches = 3, Resume = resume, OnMessage = _ => { },
    };

    internal static byte[] State(Sequential m)
    {
        // Weights, buffers, optimizer state, steps and epochs: the model file without metadata holds all of it.
        var meta = m.Metadata;
        m.Metadata = null;
        try { return ModelFile.ToBytes(m); }
        finally { m.Metadata = meta; }
    }

    [Test]
    public void AFitInterruptedManyTimesEndsBitIdenticalToOneThatWasNot()
    {
        var (reference, train, val) = Task();
        var whole = reference.Fit(train, Options(val, null));
        var expected = State(reference);

        var rng = new Rng(5);
        int interruptions = 0;
        TrainingHistory? last = null;
        for (int attempt = 0; attempt < 40; attempt++)
        {
            var (m, _, _) = Task(); // a fresh process would build the model again
            int stopAfter = 1 + rng.NextInt(8), seen = 0;
            var o = Options(val, _dir, resume: true);
            o.OnBatchEnd = _ => ++seen < stopAfter;
            last = m.Fit(train, o);
            if (last.StopReason == "stopped by callback") { interruptions++; continue; }
            Assert.That(State(m), Is.EqualTo(expected), $"after {interruptions} interruptions");
            break;
        }
        Assert.That(interruptions, Is.GreaterThanOrEqualTo(5));
        Assert.That(last!.StopReason, Is.EqualTo(whole.StopReason));
        Assert.That(last.Epochs.Select(e => (e.Epoch, e.TrainLoss, e.ValLoss)), Is.EqualTo(whole.Epochs.Select(e => (e.Epoch, e.TrainLoss, e.ValLoss))),
            "the metrics of restored and new epochs are those of the uninterrupted run");
        Assert.That(Checkpoint.List(_dir), Has.Count.EqualTo(Checkpoint.Kept));
    }

    [Test]
    public void ResumingAFinishedRunChangesNothing()
    {
        var (m, train, val) = Task();
        var first = m.Fit(train, Options(val, _dir));
        var done = State(m);
        var (again, _, _) = Task();
        var h = again.Fit(train, Options(val, _dir, resume: true));
        Assert.That(State(again), Is.EqualTo(done));
        Assert.That(h.Epochs, Has.Count.EqualTo(first.Epochs.Count));
        Assert.That(h.ResumedEpochs, Is.EqualTo(first.Epochs.Count));
        Assert.That(h.ResumedFrom, Is.EqualTo(first.LastCheckpoint));
    }

    [Test]
    public void ADamagedNewestCheckpointIsReportedAndThePreviousOneUsed()
    {
        var (reference, train, val) = Task();
        reference.Fit(train, Options(val, null));
        var expected = State(reference);

        var (m, _, _) = Task();
        var o = Options(val, _dir);
        int seen = 0;
        o.OnBatchEnd = _ => ++seen < 25;
        m.Fit(train, o);
        var files = Checkpoint.List(_dir);
        Assert.That(files, Has.Count.EqualTo(2));
        // A partial write (what a crash in the middle of a non-atomic write leaves): the newest is cut short.
        var bytes = File.ReadAllBytes(files[^1]);
        File.WriteAllBytes(files[^1], bytes[..(bytes.Length / 2)]);

        var messages = new List<string>();
        var (resumed, _, _) = Task();
        var r = Options(val, _dir, resume: true);
        r.OnMessage = messages.Add;
        var h = resumed.Fit(train, r);
        Assert.That(messages[0], Does.Contain(Path.GetFileName(files[^1])).And.Contain("unusable").And.Contain("checksum"));
        Assert.That(messages, Has.Some.Contain("previous good checkpoint").And.Contain(Path.GetFileName(files[^2])));
        Assert.That(h.ResumedFrom, Is.EqualTo(files[^2]));
        Assert.That(File.Exists(files[^1] + ".corrupt"), "the damaged file is kept aside for inspection");
        Assert.That(State(resumed), Is.EqualTo(expected));
    }

    [Test]
    public void OnlyTheTwoNewestCheckpointsAreKeptAndEachIsAModelFile()
    {
        var (m, train, val) = Task();
        var o = Options(val, _dir);
        o.EarlyStopping = null;
        var h = m.Fit(train, o);
        // 12 batches an epoch, one every 3 batches (not at the epoch's last) and one per epoch: 4 per epoch.
        Assert.That(h.CheckpointsWritten, Is.EqualTo(5 * 4));
        var files = Checkpoint.List(_dir);
        Assert.That(files.Select(Path.GetFileName), Is.EqualTo(new[] { "checkpoint-00000019.hpcnn", "checkpoint-00000020.hpcnn" }));
        Assert.That(Directory.GetFiles(_dir), Has.Length.EqualTo(2), "no temporary files are left");
        var loaded = ModelFile.Load(files[^1]);
        Assert.That(State(loaded.Model), Is.EqualTo(State(m)), "a checkpoint loads as a model file");
        var ck = Checkpoint.Load(_dir);
        Assert.That(ck.Finished && ck.EpochsCompleted == 5 && ck.BatchSize == 8 && ck.ShuffleSeed == 99, Is.True);
    }

    [Test]
    public void TimeBasedCheckpointsAreWritten()
    {
        var (m, train, val) = Task();
        var o = Options(val, _dir);
        o.CheckpointEveryBatches = 0;
        o.CheckpointInterval = TimeSpan.FromTicks(1);
        o.EarlyStopping = null;
        var h = m.Fit(train, o);
        Assert.That(h.CheckpointsWritten, Is.EqualTo(5 * 12), "every batch is past a one-tick interval");
    }

    [Test]
    public void AResumeWithOtherOptionsOrDataIsRefused()
    {
        var (m, train, val) = Task();
        var o = Options(val, _dir);
        int seen = 0;
        o.OnBatchEnd = _ => ++seen < 5;
        m.Fit(train, o);

        var (a, _, _) = Task();
        var other = Options(val, _dir, resume: true);
        other.BatchSize = 16;
        Assert.That(() => a.Fit(train, other), Throws.ArgumentException.With.Message.Contain("batch size 8").And.Message.Contain("16"));
        var changed = new Dataset((float[])train.Images.Clone(), train.Labels, train.Shape, 3);
        changed.Images[17] += 1;
        Assert.That(() => a.Fit(changed, Options(val, _dir, resume: true)), Throws.ArgumentException.With.Message.Contain("other data"));
        var different = new Sequential(a.InputShape, 7).Add(new Flatten()).Add(new Dense(3)).Compile(LossKind.CrossEntropy, new Adam(0.01f));
        Assert.That(() => different.Fit(train, Options(val, _dir, resume: true)), Throws.ArgumentException.With.Message.Contain("another network"));
    }

    [Test]
    public void ResumeWithNoCheckpointStartsFromTheBeginning()
    {
        var (reference, train, val) = Task();
        reference.Fit(train, Options(val, null));
        var (m, _, _) = Task();
        var messages = new List<string>();
        var o = Options(val, Path.Combine(_dir, "new"), resume: true);
        o.OnMessage = messages.Add;
        m.Fit(train, o);
        Assert.That(messages, Has.Some.Contain("no checkpoint"));
        Assert.That(State(m), Is.EqualTo(State(reference)));
    }

    [Test]
    public void ADivergingRunStopsWithANumericErrorAndKeepsTheLastGoodCheckpoint()
    {
        var m = new Sequential(new Shape3(1, 4, 4), 3).Add(new Flatten()).Add(new Dense(3))
            .Compile(LossKind.MeanSquaredError, new Sgd(0.05f));
        var x = TestModels.Images(64, m.InputShape, 1);
        var train = new Dataset(x, TestModels.Labels(64, 3, 2), m.InputShape, 3);
        var o = new FitOptions { Epochs = 20, BatchSize = 8, CheckpointDirectory = _dir, CheckpointEveryBatches = 1, OnMessage = _ => { } };
        // Training is fine for a while; then the learning rate jumps and the weights blow up.
        o.OnBatchEnd = p =>
        {
            if (p.Epoch == 2 && p.Batch == 4) m.Optimizer!.LearningRate = 1e5f;
            return true;
        };
        var e = Assert.Throws<ArithmeticException>(() => m.Fit(train, o))!;
        Assert.That(e.Message, Does.Contain("diverged").Or.Contain("NaN").Or.Contain("Infinity"));
        var files = Checkpoint.List(_dir);
        Assert.That(files, Is.Not.Empty);
        Assert.That(e.Message, Does.Contain(files[^1]), "the message names the last good checkpoint");
        var ck = Checkpoint.Load(_dir);
        foreach (var p in ck.Model.Layers.SelectMany(l => l.Parameters))
            Assert.That(p.Value.All(float.IsFinite), "the checkpoint kept is finite");
        Assert.That(ck.Model.Optimizer!.Steps, Is.GreaterThanOrEqualTo(8 + 4), "checkpoints were written after the jump until the weights went bad");
    }

    [Test]
    public void NaNAndInfinityInTheDataAreReportedBySampleBeforeTraining()
    {
        var (m, train, val) = Task();
        train.Images[5 * train.Shape.Size + 13] = float.NaN;
        train.Images[40 * train.Shape.Size] = float.PositiveInfinity;
        var before = State(m);
        var e = Assert.Throws<ArgumentException>(() => m.Fit(train, new FitOptions { Validation = val }))!;
        Assert.That(e.Message, Does.Contain("training data: sample 5 holds NaN at channel 0, row 1, column 3").And.Contain("2 non-finite"));
        Assert.That(State(m), Is.EqualTo(before), "nothing was trained");
        var ok = Task().Train;
        val.Images[3 * val.Shape.Size + 2] = float.NegativeInfinity;
        Assert.That(() => m.Fit(ok, new FitOptions { Validation = val }), Throws.ArgumentException.With.Message.Contain("validation data: sample 3 holds -infinity"));
        // Off, the bad value reaches the loss, and the run stops as diverged.
        Assert.That(() => m.Fit(train, new FitOptions { CheckData = false, BatchSize = 90 }), Throws.InstanceOf<ArithmeticException>());
    }

    [Test]
    public void LabelsOutsideTheModelsClassesAreReportedBySample()
    {
        var (m, _, _) = Task();
        var labels = TestModels.Labels(30, 3, 1);
        labels[17] = 4;
        var d = new Dataset(TestModels.Images(30, m.InputShape, 2), labels, m.InputShape, 5);
        Assert.That(() => m.Fit(d), Throws.ArgumentException.With.Message.Contain("label 4 of sample 17"));
    }

    [Test]
    public void CheckpointLoadSaysWhatIsMissing()
    {
        Assert.That(() => Checkpoint.Load(Path.Combine(_dir, "nope")), Throws.InstanceOf<FileNotFoundException>().With.Message.Contain("not found"));
        Assert.That(() => Checkpoint.Load(_dir), Throws.InstanceOf<FileNotFoundException>().With.Message.Contain("no checkpoint in"));
        File.WriteAllText(Path.Combine(_dir, "checkpoint-00000001.hpcnn"), "junk");
        Assert.That(() => Checkpoint.Load(_dir, _ => { }), Throws.InstanceOf<InvalidDataException>().With.Message.Contain("no usable checkpoint"));
        var (m, _, _) = Task();
        m.Save(Path.Combine(_dir, "checkpoint-00000002.hpcnn"));
        Assert.That(() => Checkpoint.Load(_dir, _ => { }), Throws.InstanceOf<InvalidDataException>().With.Message.Contain("not a checkpoint"));
    }

    [Test]
    public void BitIdenticalMeansTheSameBytes()
    {
        // The comparison the resume tests rely on sees a one-ulp change in any weight or optimizer moment.
        var (m, train, _) = Task();
        m.Fit(train, new FitOptions { Epochs = 1, BatchSize = 8 });
        var a = State(m);
        var w = m.Layers[0].Parameters[0];
        w.Value[3] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(w.Value[3]) + 1);
        Assert.That(State(m), Is.Not.EqualTo(a));
        w.Value[3] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(w.Value[3]) - 1);
        Assert.That(State(m), Is.EqualTo(a));
        var moment = w.Moment1!;
        moment[0] = BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(moment[0]) + 1);
        Assert.That(State(m), Is.Not.EqualTo(a));
        Assert.That(MemoryMarshal.AsBytes(w.Value.AsSpan()).Length, Is.EqualTo(4 * w.Count));
    }
}
