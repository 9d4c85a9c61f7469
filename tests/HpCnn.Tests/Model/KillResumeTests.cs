using System.Diagnostics;
using HpCnn.Data;
using HpCnn.IO;
using HpCnn.Layers;
using HpCnn.Tests.IO;
using HpCnn.Training;

namespace HpCnn.Tests.Model;

/// <summary>
/// A training process killed with SIGKILL at random moments and started again with resume on each time ends with the
/// same bytes (weights, batch-norm statistics, Adam moments, steps, epochs) as a run that was never killed.
/// </summary>
[NonParallelizable]
public class KillResumeTests
{
    public const string ChildCommand = "fit-with-checkpoints";

    /// <summary>Convolutions, batch norm, dropout, Adam with a step schedule, early stopping: every kind of state a resume must restore.</summary>
    private static (Sequential Model, Dataset Train, Dataset Validation) Task()
    {
        var shape = new Shape3(1, 20, 20);
        var m = new Sequential(shape, 21)
            .Add(new Conv2D(8, 3, padding: Padding.Same)).Add(new BatchNorm2D()).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Conv2D(16, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Flatten()).Add(new Dropout(0.3f)).Add(new Dense(4))
            .Compile(LossKind.CrossEntropy, new Adam(0.002f) { Schedule = new StepSchedule(1, 0.7f) });
        var train = new Dataset(TestModels.Images(320, shape, 1), TestModels.Labels(320, 4, 2), shape, 4);
        var val = new Dataset(TestModels.Images(100, shape, 3), TestModels.Labels(100, 4, 4), shape, 4);
        return (m, train, val);
    }

    /// <summary>
    /// The child sleeps this long after every batch, so that its run lasts about a second on any machine (a fast CPU trains
    /// this task in 0.07 s, too fast to kill it five times); sleeping changes no arithmetic.
    /// </summary>
    private const int PaceMilliseconds = 20;

    private static FitOptions Options(string? dir) => new()
    {
        Epochs = 3, BatchSize = 16, Validation = val(), Seed = 5, EarlyStopping = new EarlyStopping(Patience: 3),
        CheckpointDirectory = dir, CheckpointEveryBatches = 3, Resume = dir is not null, OnMessage = _ => { },
    };

    private static Dataset val() => Task().Validation;

    /// <summary>The child's work: fit with checkpoints, resuming from <paramref name="dir"/>, then save the model.</summary>
    public static void Train(string dir, string output)
    {
        var (m, train, _) = Task();
        var options = Options(dir);
        options.OnBatchEnd = _ => { Thread.Sleep(PaceMilliseconds); return true; };
        m.Fit(train, options);
        m.Save(output);
    }

    [Test]
    public void AChildKilledAtRandomMomentsEndsBitIdenticalToAnUninterruptedRun()
    {
        // Processes and files, not kernels: once (on the default path) is enough; the in-process resume tests run on every path.
        foreach (var v in new[] { "DOTNET_EnableAVX2", "DOTNET_EnableHWIntrinsic", "DOTNET_EnableAVX512" })
            if (Environment.GetEnvironmentVariable(v) == "0") Assert.Ignore($"runs on the default kernel path only ({v}=0 here)");
        var (reference, train, _) = Task();
        var sw = Stopwatch.StartNew();
        reference.Fit(train, Options(null));
        double runSeconds = sw.Elapsed.TotalSeconds;
        // One checkpoint interval of the paced child: the window in which later kills land.
        double checkpointSeconds = Options(null).CheckpointEveryBatches * PaceMilliseconds / 1000.0;
        var expected = CheckpointTests.State(reference);

        string dir = Directory.CreateTempSubdirectory("hpcnn-kill-").FullName;
        try
        {
            string output = Path.Combine(dir, "final.hpcnn"), checkpoints = Path.Combine(dir, "checkpoints");
            var rng = new Rng((ulong)Environment.TickCount64);
            int kills = 0, starts = 0;
            var progress = new List<string>();
            while (true)
            {
                Assert.That(starts++, Is.LessThan(40), "the run did not finish in 40 starts");
                using var p = StartChild(checkpoints, output);
                var stderr = p.StandardError.ReadToEndAsync();
                // The first kill lands anywhere in start-up or the first batches; the others after the run has made progress
                // (a checkpoint newer than the one it resumed from), at a random moment of the training that follows.
                if (kills < 5)
                {
                    bool killed;
                    if (kills == 0)
                    {
                        killed = !p.WaitForExit(TimeSpan.FromSeconds(0.05 + 0.4 * rng.NextDouble()));
                    }
                    else
                    {
                        string? from = Checkpoint.List(checkpoints).LastOrDefault();
                        var wait = Stopwatch.StartNew();
                        while (!p.HasExited && Checkpoint.List(checkpoints).LastOrDefault() == from && wait.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(10);
                        killed = !p.WaitForExit(TimeSpan.FromSeconds(rng.NextDouble() * checkpointSeconds));
                    }
                    if (killed)
                    {
                        p.Kill(); // SIGKILL
                        p.WaitForExit();
                        kills++;
                        var newest = Checkpoint.List(checkpoints).LastOrDefault();
                        progress.Add(newest is null ? "none" : Path.GetFileName(newest));
                        continue;
                    }
                }
                Assert.That(p.WaitForExit(TimeSpan.FromMinutes(3)), "the child did not finish");
                Assert.That(p.ExitCode, Is.EqualTo(0), stderr.Result);
                break;
            }
            TestContext.Out.WriteLine($"uninterrupted run {runSeconds:F2} s; {kills} kills survived ({starts} starts; newest checkpoint at each kill: {string.Join(", ", progress)})");
            Assert.That(CheckpointTests.State(ModelFile.Load(output).Model), Is.EqualTo(expected), "the resumed run's bytes differ from the uninterrupted run's");
            Assert.That(kills, Is.GreaterThanOrEqualTo(3), "the run finished before it could be killed often enough");
        }
        finally
        {
            Directory.Delete(dir, true);
        }
    }

    private static Process StartChild(string checkpoints, string output)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        psi.ArgumentList.Add(typeof(ChildProgram).Assembly.Location);
        psi.ArgumentList.Add(ChildCommand);
        psi.ArgumentList.Add(checkpoints);
        psi.ArgumentList.Add(output);
        return Process.Start(psi)!;
    }
}
