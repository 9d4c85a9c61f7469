using System.Diagnostics;
using System.Text.Json;
using System.Xml.Linq;
using HpCnn.Imaging;
using HpCnn.IO;

namespace HpCnn.Cli.Tests;

/// <summary>The hpcnn command end to end: exit codes, files, JSON, decoded PNGs, table totals.</summary>
[NonParallelizable]
public class CliTests
{
    private string _dir = "";
    private static string? s_model; // a seed-binary model trained once for the commands that need one
    private static string? s_metrics;

    [OneTimeSetUp]
    public void OneTimeSetUp()
    {
        _dir = Path.Combine(Path.GetTempPath(), "hpcnn-cli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [OneTimeTearDown]
    public void OneTimeTearDown() => Directory.Delete(_dir, true);

    private string TrainedModel()
    {
        if (s_model is not null && File.Exists(s_model)) return s_model;
        Cli.RequireDataset();
        string model = Path.Combine(_dir, "seed.hpcnn"), metrics = Path.Combine(_dir, "seed.json");
        var r = Cli.Run(_dir, "train", "--net", "seed-binary", "--epochs", "2", "--limit", "4000", "--out", model, "--metrics-json", metrics);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        s_model = model;
        s_metrics = metrics;
        return model;
    }

    [Test]
    public void HelpListsTheCommandsAndBadUsageExitsWithTwo()
    {
        var r = Cli.Run(_dir, "--help");
        Assert.That(r.ExitCode, Is.EqualTo(0));
        foreach (var c in new[] { "train", "eval", "predict", "inspect", "visualize", "bench" }) Assert.That(r.Out, Does.Contain(c));
        var bad = Cli.Run(_dir, "fly");
        Assert.That(bad.ExitCode, Is.EqualTo(2));
        Assert.That(bad.Err, Does.Contain("error"));
        var missing = Cli.Run(_dir, "train");
        Assert.That(missing.ExitCode, Is.EqualTo(2));
        Assert.That(missing.Err, Does.Contain("--net"));
        var zero = Cli.Run(_dir, "train", "--net", "reference", "--epochs", "0");
        Assert.That(zero.ExitCode, Is.EqualTo(2));
        Assert.That(zero.Err, Does.Contain("--epochs must be at least 1"));
        var unknown = Cli.Run(_dir, "train", "--net", "resnet");
        Assert.That(unknown.ExitCode, Is.EqualTo(2));
        Assert.That(unknown.Err, Does.Contain("reference, seed-binary, seed-mse, deep"));
    }

    [Test]
    public void InspectShowsShapesAndTheReferenceTotal()
    {
        var r = Cli.Run(_dir, "inspect", "--net", "reference");
        Assert.That(r.ExitCode, Is.EqualTo(0));
        Assert.That(r.Out, Does.Contain("421,642"));
        foreach (var shape in new[] { "32x28x28", "32x14x14", "64x14x14", "64x7x7", "3136", "128" }) Assert.That(r.Out, Does.Contain(shape));
        Assert.That(r.Out, Does.Contain("18,496"), "conv2 parameters");
        Assert.That(r.Out, Does.Contain("401,536"), "dense1 parameters");
    }

    [Test]
    public void TrainWritesMetricsJsonAndAModelThatLoads()
    {
        string model = TrainedModel();
        using var doc = JsonDocument.Parse(File.ReadAllText(s_metrics!));
        var epochs = doc.RootElement.GetProperty("epochs").EnumerateArray().ToList();
        Assert.That(epochs, Has.Count.EqualTo(2));
        for (int i = 0; i < epochs.Count; i++)
        {
            var e = epochs[i];
            Assert.That(e.GetProperty("epoch").GetInt32(), Is.EqualTo(i + 1));
            foreach (var f in new[] { "train_loss", "val_loss", "val_accuracy", "seconds", "samples_per_second" })
                Assert.That(double.IsFinite(e.GetProperty(f).GetDouble()), f);
        }
        Assert.That(epochs[^1].GetProperty("val_accuracy").GetDouble(), Is.GreaterThan(0.9));
        var loaded = ModelFile.Load(model);
        Assert.That(loaded.Model.EpochsTrained, Is.EqualTo(2));
        Assert.That(loaded.InitialWeights, Is.Not.Null, "--out saves the initial weights too");
        // The seed tutorial's per-pixel standardisation and the two classes' names are the engine's record (the prep chunk).
        Assert.That(loaded.Model.Preprocessing.Standardization?.Mode, Is.EqualTo(HpCnn.Data.StandardizeMode.PerPixel));
        Assert.That(loaded.Model.Preprocessing.ClassNames, Is.EqualTo(new[] { "Trouser", "Dress" }));
    }

    [Test]
    public void EvalReportsAccuracyPerClassAndAConsistentConfusionMatrix()
    {
        string model = TrainedModel();
        string json = Path.Combine(_dir, "eval.json");
        var r = Cli.Run(_dir, "eval", model, "--json", json);
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Out, Does.Contain("accuracy").And.Contain("Trouser").And.Contain("Dress").And.Contain("confusion matrix"));
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var root = doc.RootElement;
        int count = root.GetProperty("count").GetInt32();
        Assert.That(count, Is.EqualTo(2000), "the test set's trousers and dresses");
        var cm = root.GetProperty("confusion").EnumerateArray().Select(row => row.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        Assert.That(cm.Sum(row => row.Sum()), Is.EqualTo(count));
        double acc = (double)(cm[0][0] + cm[1][1]) / count;
        Assert.That(root.GetProperty("accuracy").GetDouble(), Is.EqualTo(acc).Within(1e-9));
        Assert.That(acc, Is.GreaterThan(0.9));
    }

    [Test]
    public void PredictOnIdxAndOnPngAgree()
    {
        string model = TrainedModel();
        string idx = Path.Combine(Cli.DataDir, "t10k-images-idx3-ubyte.gz");
        var r = Cli.Run(_dir, "predict", model, "--idx", idx, "--index", "2", "--top", "2");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Out, Does.Contain("true class: Trouser"));
        var lines = r.Out.Split('\n').Where(l => l.TrimStart().StartsWith("1.") || l.TrimStart().StartsWith("2.")).ToList();
        Assert.That(lines, Has.Count.EqualTo(2));
        Assert.That(lines[0], Does.Contain("Trouser"));
        var probs = lines.Select(l => double.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1], System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        Assert.That(probs.Sum(), Is.EqualTo(1).Within(1e-3));
        Assert.That(probs[0], Is.GreaterThanOrEqualTo(probs[1]));

        // The same image as a PNG (gray, 28x28) gives the same answer; a 56x56 RGB copy is resized.
        var t = Data.Idx.Read(idx);
        var px = t.Data.AsSpan(2 * 784, 784).ToArray();
        string png = Path.Combine(_dir, "trouser.png");
        ImageEncoding.WritePng(png, new RasterImage(28, 28, PixelFormat.Gray, px));
        var p2 = Cli.Run(_dir, "predict", model, png);
        Assert.That(p2.ExitCode, Is.EqualTo(0), p2.All);
        Assert.That(p2.Out.Split('\n').First(l => l.TrimStart().StartsWith("1.")), Does.Contain("Trouser"));
        var big = new RasterImage(28, 28, PixelFormat.Gray, px).ConvertTo(PixelFormat.Rgb).Resize(56, 56);
        string bigPng = Path.Combine(_dir, "trouser56.png");
        ImageEncoding.WritePng(bigPng, big);
        var p3 = Cli.Run(_dir, "predict", model, bigPng);
        Assert.That(p3.ExitCode, Is.EqualTo(0), p3.All);
        Assert.That(p3.Out, Does.Contain("resized from 56x56 to 28x28"));
        var p4 = Cli.Run(_dir, "predict", model, bigPng, "--no-resize");
        Assert.That(p4.ExitCode, Is.EqualTo(1));
        Assert.That(p4.Err, Does.Contain("is 56x56, the model takes 28x28"));
        var p5 = Cli.Run(_dir, "predict", model, Path.Combine(_dir, "nope.png"));
        Assert.That(p5.ExitCode, Is.EqualTo(1));
        Assert.That(p5.Err, Does.Contain("image not found"));
    }

    [Test]
    public void VisualizeWritesDecodablePicturesAndCurves()
    {
        string model = TrainedModel();
        string outDir = Path.Combine(_dir, "pics");
        var r = Cli.Run(_dir, "visualize", model, "--out-dir", outDir, "--image-index", "3");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        var filters = ImageDecoding.Read(Path.Combine(outDir, "filters-layer0.png"));
        Assert.That((filters.Width, filters.Height), Is.EqualTo((24, 24)), "one 3x3 filter at scale 8");
        var both = ImageDecoding.Read(Path.Combine(outDir, "filters-layer0-initial-vs-learned.png"));
        Assert.That(both.Width, Is.GreaterThan(2 * 24));
        var input = ImageDecoding.Read(Path.Combine(outDir, "input.png"));
        Assert.That((input.Width, input.Height), Is.EqualTo((224, 224)));
        Assert.That(input.Pixels.Distinct().Count(), Is.GreaterThan(10), "the input picture shows an image, not a flat fill");
        var maps = ImageDecoding.Read(Path.Combine(outDir, "featuremaps-00-conv2d.png"));
        Assert.That((maps.Width, maps.Height), Is.EqualTo((84, 84)));
        var svg = XDocument.Parse(File.ReadAllText(Path.Combine(outDir, "curves.svg")));
        string text = svg.ToString();
        Assert.That(text, Does.Contain("Loss").And.Contain("Accuracy").And.Contain("validation"));
    }

    [Test]
    public void NetworkSpecFilesTrainAndTheirErrorsNameTheField()
    {
        Cli.RequireDataset();
        string spec = Path.Combine(_dir, "tiny.json");
        File.WriteAllText(spec, """
            {"input": [1, 28, 28],
             "layers": [{"type": "conv2d", "filters": 4, "kernel": 3, "padding": "same"}, {"type": "relu"},
                        {"type": "maxpool2d", "kernel": 2}, {"type": "flatten"}, {"type": "dense", "units": 10}],
             "loss": "cross_entropy", "optimizer": {"type": "adam", "lr": 0.002},
             "training": {"epochs": 1, "batch_size": 32}}
            """);
        var r = Cli.Run(_dir, "train", "--net", spec, "--limit", "3000", "--quiet");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Out, Does.Contain("after 1 epoch(s)"));
        File.WriteAllText(spec, """{"input": [1, 28, 28], "layers": [{"type": "conv2d", "filtres": 4, "kernel": 3}]}""");
        var bad = Cli.Run(_dir, "train", "--net", spec);
        Assert.That(bad.ExitCode, Is.EqualTo(2));
        Assert.That(bad.Err, Does.Contain("layers[0]: unknown field 'filtres' (did you mean 'filters'?)"));
    }

    [Test]
    public void AMissingDatasetSaysHowToGetIt()
    {
        string empty = Path.Combine(_dir, "empty");
        Directory.CreateDirectory(empty);
        var r = Cli.Run(_dir, "train", "--net", "reference", "--data-dir", empty);
        Assert.That(r.ExitCode, Is.EqualTo(1));
        Assert.That(r.Err, Does.Contain("apt-get install dataset-fashion-mnist").And.Contain("--data-dir"));
        var gone = Cli.Run(_dir, "train", "--net", "reference", "--data-dir", Path.Combine(_dir, "no-such-dir"));
        Assert.That(gone.ExitCode, Is.EqualTo(1));
        Assert.That(gone.Err, Does.Contain("does not exist"));
    }

    [Test]
    public void InterruptStopsAfterTheCurrentBatchAndSavesTheModel()
    {
        Cli.RequireDataset();
        string model = Path.Combine(_dir, "interrupted.hpcnn"), metrics = Path.Combine(_dir, "interrupted.json");
        using var p = Cli.Start(_dir, "train", "--net", "reference", "--epochs", "50", "--limit", "20000", "--out", model, "--metrics-json", metrics);
        var err = p.StandardError.ReadToEndAsync();
        // Wait for the first epoch line, then send SIGINT (what Ctrl+C sends).
        string? line;
        var sw = Stopwatch.StartNew();
        while ((line = p.StandardOutput.ReadLine()) is not null && !line.StartsWith("epoch 1:"))
            Assert.That(sw.Elapsed, Is.LessThan(TimeSpan.FromMinutes(3)), "no epoch finished in 3 minutes");
        Assert.That(line, Is.Not.Null, "training printed no epoch line");
        using (var kill = Process.Start("kill", ["-INT", p.Id.ToString()])) kill.WaitForExit();
        string rest = p.StandardOutput.ReadToEnd();
        Assert.That(p.WaitForExit(60_000), "the command did not stop within a minute of the interrupt");
        Assert.That(p.ExitCode, Is.EqualTo(130), rest + err.Result);
        Assert.That(rest, Does.Contain("stopped: cancelled"));
        Assert.That(File.Exists(model), "the model trained so far is saved");
        var loaded = ModelFile.Load(model);
        Assert.That(loaded.Model.EpochsTrained, Is.GreaterThanOrEqualTo(1).And.LessThan(50));
        using var doc = JsonDocument.Parse(File.ReadAllText(metrics));
        Assert.That(doc.RootElement.GetProperty("stop_reason").GetString(), Is.EqualTo("cancelled"));
    }

    [Test]
    public void BenchMeasuresAgainstThePeak()
    {
        var r = Cli.Run(_dir, "bench", "--seconds", "0.2", "--threads", "1");
        Assert.That(r.ExitCode, Is.EqualTo(0), r.All);
        Assert.That(r.Out, Does.Contain("FMA peak").And.Contain("sgemm 1024").And.Contain("reference training step").And.Contain("images/s"));
    }
}
