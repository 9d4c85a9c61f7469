using System.Text.Json;

namespace HpCnn.Cli.Tests;

/// <summary>
/// hpcnn train's --distributed option and its behaviour as one rank of an mpirun launch, without MPI: mpirun's
/// environment (OMPI_COMM_WORLD_SIZE/RANK) is given by hand. Runs under mpirun itself are in build/test.sh --distributed.
/// </summary>
[NonParallelizable]
public class DistributedCliTests
{
    private string _dir = "";

    [OneTimeSetUp]
    public void OneTimeSetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "hpcnn-dist-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [OneTimeTearDown]
    public void OneTimeTearDown() => Directory.Delete(_dir, true);

    private static readonly Dictionary<string, string> Rank1Of2 = new() { ["OMPI_COMM_WORLD_SIZE"] = "2", ["OMPI_COMM_WORLD_RANK"] = "1" };

    private Cli.Result Run(IReadOnlyDictionary<string, string>? env, params string[] args)
    {
        using var p = Cli.Start(_dir, env, args);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromMinutes(5)))
        {
            p.Kill(true);
            Assert.Fail($"hpcnn {string.Join(' ', args)} did not finish within 5 minutes");
        }
        var r = new Cli.Result(p.ExitCode, stdout.Result, stderr.Result);
        TestContext.Out.WriteLine($"$ hpcnn {string.Join(' ', args)}  -> exit {r.ExitCode}\n{r.Out}{r.Err}");
        return r;
    }

    [Test]
    public void AnUnknownDistributedModeIsAUsageError()
    {
        var r = Run(null, "train", "--net", "reference", "--distributed", "maybe");
        Assert.That(r.ExitCode, Is.EqualTo(2), r.All);
        Assert.That(r.Err, Does.Contain("maybe").And.Contain("auto"), "the error names the value and the accepted ones");
    }

    [Test]
    public void AnErrorUnderMpirunNamesTheRank()
    {
        string missing = Path.Combine(_dir, "no-such-data");
        var r = Run(Rank1Of2, "train", "--net", "reference", "--limit", "100", "--data-dir", missing);
        Assert.That(r.ExitCode, Is.EqualTo(1), r.All);
        Assert.That(r.Err, Does.StartWith($"rank 1: error: --data-dir {missing} does not exist"));
    }

    [Test]
    public void DistributedOffUnderMpirunTrainsAloneAndSpeaks()
    {
        // Off: this process is a run of its own (no MPI is started), so it prints and writes its files whatever its rank.
        Cli.RequireDataset();
        string model = Path.Combine(_dir, "alone.hpcnn"), metrics = Path.Combine(_dir, "alone.json");
        var r = Run(Rank1Of2, "train", "--net", "reference", "--limit", "200", "--epochs", "1", "--batch-size", "64", "-q",
            "--distributed", "off", "--out", model, "--metrics-json", metrics);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Out, Does.StartWith("after 1 epoch(s)").And.Not.Contain("ranks"));
        Assert.That(File.Exists(model), "--out written");
        using var doc = JsonDocument.Parse(File.ReadAllText(metrics));
        Assert.That(doc.RootElement.GetProperty("ranks").GetInt32(), Is.EqualTo(1));
        Assert.That(doc.RootElement.GetProperty("steps").GetInt64(), Is.EqualTo(4), "200 images in batches of 64: 4 steps");
        Assert.That(doc.RootElement.GetProperty("communication_seconds").GetDouble(), Is.EqualTo(0));
        Assert.That(doc.RootElement.GetProperty("fit_seconds").GetDouble(), Is.GreaterThan(0));
    }
}
