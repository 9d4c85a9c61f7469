using System.Diagnostics;
using System.Text.Json;
using HpCnn.IO;
using HpCnn.Training;

namespace HpCnn.Cli.Tests;

/// <summary>hpcnn train --checkpoint-dir / --resume, SIGKILL at random moments; the compute budget and load messages.</summary>
[NonParallelizable]
public class CheckpointCliTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = Directory.CreateTempSubdirectory("hpcnn-cli-ckpt-").FullName;

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, true);

    /// <summary>A small network with batch norm and dropout (state a resume must restore), Adam.</summary>
    private string Spec()
    {
        string path = Path.Combine(_dir, "small.json");
        File.WriteAllText(path, """
            {"input": [1, 28, 28], "seed": 3,
             "layers": [{"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"}, {"type": "batchnorm2d"}, {"type": "relu"},
                        {"type": "maxpool2d", "kernel": 4}, {"type": "flatten"}, {"type": "dropout", "rate": 0.2}, {"type": "dense", "units": 10}],
             "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 0.003}, "schedule": {"type": "step", "step_size": 1, "gamma": 0.5}}
            """);
        return path;
    }

    private static byte[] State(string modelFile)
    {
        var m = ModelFile.Load(modelFile).Model;
        m.Metadata = null; // the history's timings differ between runs; everything else must not
        return ModelFile.ToBytes(m);
    }

    private static string[] TrainArgs(string spec, string? dir, string output, string metrics) =>
        ["train", "--net", spec, "--limit", "640", "--epochs", "2", "--batch-size", "16", "--seed", "9", "--quiet",
         "--out", output, "--metrics-json", metrics, .. dir is null ? Array.Empty<string>() : ["--checkpoint-dir", dir, "--checkpoint-every", "4"]];

    private static readonly Dictionary<string, string> Paced = new() { ["HPCNN_TEST_BATCH_DELAY_MS"] = "25" };

    [Test]
    public void ATrainingKilledAtRandomMomentsAndResumedEndsBitIdentical()
    {
        Cli.RequireDataset();
        string spec = Spec();
        string refOut = Path.Combine(_dir, "ref.hpcnn");
        var sw = Stopwatch.StartNew();
        var whole = Cli.Run(_dir, TrainArgs(spec, null, refOut, Path.Combine(_dir, "ref.json"))); // no checkpoints at all
        double seconds = sw.Elapsed.TotalSeconds;
        Assert.That(whole.ExitCode, Is.EqualTo(0), whole.All);

        string ck = Path.Combine(_dir, "ck"), output = Path.Combine(_dir, "out.hpcnn"), metrics = Path.Combine(_dir, "out.json");
        var rng = new Rng((ulong)Environment.TickCount64);
        int kills = 0, starts = 0;
        var newest = new List<string>();
        string[] args = TrainArgs(spec, ck, output, metrics);
        Cli.Result? last = null;
        while (true)
        {
            Assert.That(starts++, Is.LessThan(30), "the run did not finish in 30 starts");
            if (kills < 4)
            {
                // The child sleeps 25 ms after each batch (80 batches: 2 s of training on any machine), so the kills land
                // mid-run even where start-up is most of an unpaced run; sleeping changes no result.
                using var p = Cli.Start(_dir, Paced, args);
                _ = p.StandardOutput.ReadToEndAsync();
                var stderr = p.StandardError.ReadToEndAsync();
                // The first kill lands anywhere in start-up or data loading; the others after the run has made progress
                // (a checkpoint newer than the one it started from), at a random moment of the training that follows.
                bool killed;
                if (kills == 0)
                {
                    killed = !p.WaitForExit(TimeSpan.FromSeconds(rng.NextDouble() * 0.6 * seconds)); // start-up, scaled to this machine
                }
                else
                {
                    string? from = Checkpoint.List(ck).LastOrDefault();
                    var wait = Stopwatch.StartNew();
                    while (!p.HasExited && Checkpoint.List(ck).LastOrDefault() == from && wait.Elapsed < TimeSpan.FromMinutes(2)) Thread.Sleep(20);
                    killed = !p.WaitForExit(TimeSpan.FromSeconds(rng.NextDouble() * 0.2)); // within two checkpoints of the paced run
                }
                if (killed)
                {
                    p.Kill(); // SIGKILL: no handler runs, nothing is saved on the way out
                    p.WaitForExit();
                    kills++;
                    newest.Add(Checkpoint.List(ck).LastOrDefault() is { } f ? Path.GetFileName(f) : "none");
                    // Until a checkpoint exists the run starts again from --net; after that it resumes.
                    if (Checkpoint.List(ck).Count > 0) args = ["train", "--resume", ck, "--quiet"];
                    continue;
                }
                Assert.That(p.ExitCode, Is.EqualTo(0), stderr.Result);
                break;
            }
            last = Cli.Run(_dir, args);
            Assert.That(last.ExitCode, Is.EqualTo(0), last.All);
            break;
        }
        TestContext.Out.WriteLine($"uninterrupted {seconds:F1} s; {kills} SIGKILLs survived in {starts} starts; newest checkpoint at each kill: {string.Join(", ", newest)}");
        Assert.That(kills, Is.GreaterThanOrEqualTo(3), "the run finished before it could be killed often enough");
        Assert.That(State(output), Is.EqualTo(State(refOut)), "weights, statistics, optimizer state differ from the uninterrupted run");
        using var a = JsonDocument.Parse(File.ReadAllText(metrics));
        using var b = JsonDocument.Parse(File.ReadAllText(Path.Combine(_dir, "ref.json")));
        var lossesA = a.RootElement.GetProperty("epochs").EnumerateArray().Select(e => e.GetProperty("val_loss").GetDouble()).ToArray();
        var lossesB = b.RootElement.GetProperty("epochs").EnumerateArray().Select(e => e.GetProperty("val_loss").GetDouble()).ToArray();
        Assert.That(lossesA, Is.EqualTo(lossesB), "the metrics file holds every epoch, restored ones included");
        // The saved model's initial weights (for the pictures) are the run's, though the last process never built them.
        Assert.That(ModelFile.Load(output).InitialWeights, Is.EqualTo(ModelFile.Load(refOut).InitialWeights));
    }

    [Test]
    public void CtrlCWritesAMidEpochCheckpointAndStillSavesTheModel()
    {
        Cli.RequireDataset();
        string spec = Spec(), ck = Path.Combine(_dir, "ck"), output = Path.Combine(_dir, "out.hpcnn");
        using var p = Cli.Start(_dir, "train", "--net", spec, "--limit", "3000", "--epochs", "50", "--batch-size", "16", "--checkpoint-dir", ck, "--out", output);
        string? line;
        while ((line = p.StandardOutput.ReadLine()) is not null && !line.Contains("batch")) { }
        using (var kill = Process.Start("kill", ["-INT", p.Id.ToString()])) kill.WaitForExit();
        p.StandardOutput.ReadToEnd();
        Assert.That(p.WaitForExit(60_000));
        Assert.That(p.ExitCode, Is.EqualTo(130));
        Assert.That(File.Exists(output), "Ctrl+C still saves --out");
        var ckpt = Checkpoint.Load(ck);
        Assert.That(ckpt.Finished, Is.False);
        Assert.That(ckpt.BatchesDone, Is.GreaterThan(0), "the checkpoint is where Ctrl+C stopped, mid-epoch");
    }

    [Test]
    public void UsageErrorsOfTheCheckpointOptions()
    {
        var r = Cli.Run(_dir, "train", "--net", "reference", "--checkpoint-every", "5m");
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain("--checkpoint-every needs --checkpoint-dir"));
        r = Cli.Run(_dir, "train", "--net", "reference", "--checkpoint-dir", _dir, "--checkpoint-every", "soon");
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain("number of batches (e.g. 200) or a time (30s, 5m, 1h), got 'soon'"));
        r = Cli.Run(_dir, "train", "--resume", Path.Combine(_dir, "none"));
        Assert.That(r.ExitCode, Is.EqualTo(1));
        Assert.That(r.Err, Does.Contain("checkpoint directory not found"));
        r = Cli.Run(_dir, "train", "--resume", _dir, "--epochs", "3");
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain("settings it was started with"));
        r = Cli.Run(_dir, "train");
        Assert.That(r.ExitCode, Is.EqualTo(2));
        Assert.That(r.Err, Does.Contain("--net").And.Contain("--resume"));
    }

    [Test]
    public void LoadMessagesSayWhatIsWrong()
    {
        var r = Cli.Run(_dir, "inspect", _dir);
        Assert.That(r.ExitCode, Is.EqualTo(1));
        Assert.That(r.Err, Does.Contain("is a directory, not a model file"));
        string spec = Spec();
        r = Cli.Run(_dir, "eval", spec);
        Assert.That(r.Err, Does.Contain("looks like a JSON network spec"));
        // A version field no HpCnn writes: the header is damaged, not from the future.
        string model = Path.Combine(_dir, "m.hpcnn");
        HpCnn.IO.NetworkSpec.Load(spec).Model.Save(model);
        var bytes = File.ReadAllBytes(model);
        BitConverter.TryWriteBytes(bytes.AsSpan(8), 1092352152u);
        File.WriteAllBytes(model, bytes);
        r = Cli.Run(_dir, "inspect", model);
        Assert.That(r.Err, Does.Contain("header is corrupt").And.Contain("1092352152").And.Not.Contain("newer HpCnn"));
    }

    [Test]
    public void AModelAboveTheComputeBudgetIsRefusedUnlessTheBudgetIsRaised()
    {
        // Valid geometry, tiny file, 17 GFLOP per image: a stride-1 64x64 average pool over a 2048x2048 input.
        string spec = Path.Combine(_dir, "costly.json");
        File.WriteAllText(spec, """
            {"input": [1, 2048, 2048], "layers": [{"type": "avgpool2d", "kernel": 64, "stride": 1, "padding": 32}, {"type": "flatten"}]}
            """);
        var r = Cli.Run(_dir, "inspect", "--net", spec);
        Assert.That(r.ExitCode, Is.EqualTo(1));
        Assert.That(r.Err, Does.Contain("layers[0] (avgpool2d").And.Contain("17.").And.Contain("GFLOP per image").And.Contain("budget of 10 GFLOP"));
        r = Cli.Run(_dir, "inspect", "--net", spec, "--max-gflops", "20");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Out, Does.Contain("avgpool2d"));
    }
}
