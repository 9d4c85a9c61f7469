using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using HpCnn.Kernels;
using HpCnn.Layers;
using HpCnn.Presets;
using Spectre.Console;

namespace HpCnn.Cli;

/// <summary>hpcnn bench: a quick self-measurement against the machine's measured FMA peak.</summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var threads = Shared.Threads();
        var seconds = new Option<double>("--seconds") { Description = "Time per measurement", DefaultValueFactory = _ => 1.0, HelpName = "S" };
        var cmd = new Command("bench", "Measure GEMM and training throughput against this machine's FMA peak") { threads, seconds };
        cmd.SetAction(r => Run(r.GetValue(threads), r.GetValue(seconds)));
        return cmd;
    }

    private static int Run(int? threads, double seconds)
    {
        Shared.ApplyThreads(threads);
        if (!(seconds > 0 && seconds <= 60)) throw new CliException($"--seconds must be in (0, 60], got {seconds}", ExitCodes.Usage);
        int t = Engine.Threads;
        Console.WriteLine(Engine.Describe());
        // The yardstick is the peak of the widest FMA the GEMM runs: zmm where it has AVX-512 tiles (on Zen 5 twice the
        // ymm peak), else ymm.
        double peakYmm = PeakProbe.MeasureGflops(Math.Min(seconds, 0.5));
        double peakZmm = PeakProbe.MeasureGflops512(Math.Min(seconds, 0.5));
        double peak1 = Math.Max(peakYmm, peakZmm);
        double peakAll = peak1 * t;
        var table = new Table().Border(TableBorder.Rounded).AddColumns("measurement", "threads", "result", "GFLOP/s", "% of FMA peak");
        foreach (var col in table.Columns.Skip(2)) col.RightAligned();
        string Pct(double g, double peak) => peak > 0 ? (100 * g / peak).ToString("F1", CultureInfo.InvariantCulture) : "-";
        table.AddRow("FMA peak (12 ymm accumulators)", "1", "", F(peakYmm), Pct(peakYmm, peak1));
        if (peakZmm > 0) table.AddRow("FMA peak (12 zmm accumulators)", "1", "", F(peakZmm), Pct(peakZmm, peak1));

        // sgemm 1024^3 on one thread and on all of them.
        const int n = 1024;
        var a = Random(n * n, 1); var b = Random(n * n, 2); var c = new float[n * n];
        var ws = new float[Sgemm.WorkspaceSize(n, n, n)];
        double g1 = Measure(seconds, () => Sgemm.Multiply(false, false, n, n, n, a, n, b, n, c, n, false, ws), 2.0 * n * n * n);
        table.AddRow("sgemm 1024 x 1024 x 1024", "1", "", F(g1), Pct(g1, peak1));
        if (t > 1)
        {
            var job = new GemmJob { Scratch = Enumerable.Range(0, t).Select(_ => new HpCnn.Buffer(new float[Sgemm.WorkspaceSize(n, n, n)])).ToArray() };
            double gt = Measure(seconds, () =>
            {
                job.Set(false, false, n, n, n, new HpCnn.Buffer(a), n, new HpCnn.Buffer(b), n, new HpCnn.Buffer(c), n, false, default, 4 * t);
                WorkerPool.Shared.Run(job, job.Items);
            }, 2.0 * n * n * n);
            table.AddRow("sgemm 1024 x 1024 x 1024", t.ToString(CultureInfo.InvariantCulture), "", F(gt), Pct(gt, peakAll));
        }

        // One training step of the reference network at batch 64 (25.0 MFLOP per trained image).
        var model = NetworkPresets.Reference(1);
        const int batch = 64;
        var x = Random(batch * 784, 3);
        var y = Enumerable.Range(0, batch).Select(i => i % 10).ToArray();
        double trainFlops = TrainingFlops(model) * batch;
        double steps = 0;
        double gTrain = Measure(seconds, () => { model.TrainBatch(x, y); steps++; }, trainFlops, out double perStep);
        table.AddRow("reference training step, batch 64", t.ToString(CultureInfo.InvariantCulture),
            $"{batch / perStep:N0} images/s", F(gTrain), Pct(gTrain, peakAll));

        // Inference: batch 256 throughput and batch 1 latency.
        var x256 = Random(256 * 784, 4);
        var probs = new float[256 * 10];
        double gInf = Measure(seconds, () => model.PredictInto(x256, probs), model.FlopsPerSample * 256.0, out double perBatch);
        table.AddRow("reference inference, batch 256", t.ToString(CultureInfo.InvariantCulture), $"{256 / perBatch:N0} images/s", F(gInf), Pct(gInf, peakAll));
        var p1 = new float[10];
        var x1 = x256.AsSpan(0, 784).ToArray();
        double g1i = Measure(seconds, () => model.PredictInto(x1, p1), model.FlopsPerSample, out double perImage);
        table.AddRow("reference inference, batch 1", t.ToString(CultureInfo.InvariantCulture), $"{perImage * 1e6:F0} us latency", F(g1i), Pct(g1i, peakAll));
        AnsiConsole.Write(table);
        _ = steps;
        return ExitCodes.Ok;
    }

    /// <summary>FLOPs of one trained image: every layer's matrix products, with the input gradient except for the first layer.</summary>
    public static double TrainingFlops(Sequential model) =>
        model.Layers.Sum(l => (double)l.TrainingFlopsPerSample(inputGradient: l.Index > 0));

    private static double Measure(double seconds, Action run, double flops) => Measure(seconds, run, flops, out _);

    /// <summary>Runs <paramref name="run"/> for about <paramref name="seconds"/> after a warm-up; GFLOP/s and seconds per run.</summary>
    private static double Measure(double seconds, Action run, double flops, out double perRun)
    {
        for (int i = 0; i < 3; i++) run();
        var sw = Stopwatch.StartNew();
        int count = 0;
        while (sw.Elapsed.TotalSeconds < seconds) { run(); count++; }
        perRun = sw.Elapsed.TotalSeconds / count;
        return flops / perRun / 1e9;
    }

    private static float[] Random(int n, int seed)
    {
        var r = new Rng((ulong)seed);
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(r.NextDouble() * 2 - 1);
        return v;
    }

    private static string F(double v) => v.ToString("F1", CultureInfo.InvariantCulture);
}
