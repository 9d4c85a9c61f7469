using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using HpCnn.Data;
using HpCnn.Presets;
using HpCnn.Training;

namespace HpCnn.Benchmarks;

/// <summary>
/// The HpCnn half of benchmarks/side_by_side.py: runs the workloads PyTorch runs there and prints one JSON object
/// of timings (seconds). Usage: side-by-side --threads N [--quick].
/// </summary>
internal static class SideBySide
{
    public static int Run(string[] args)
    {
        var (threads, quick) = ParseArgs(args);
        Engine.Threads = threads;
        var results = new Dictionary<string, double>();
        var (train, test) = FashionMnist.Load();
        var std = Standardization.FromValues(FashionMnist.TrainMean, FashionMnist.TrainStd);
        std.Apply(train);
        std.Apply(test);

        // Reference network, one epoch (60,000 images, batch 64), training loop only; accuracy on the test set after it.
        {
            var model = NetworkPresets.Reference(42);
            var data = quick ? train.Take(6400) : train;
            var fit = new FitOptions { Epochs = 1, BatchSize = 64, Seed = 1 };
            model.TrainBatch(data.Images.AsSpan(0, 64 * 784), data.Labels.AsSpan(0, 64)); // plan + JIT warm-up
            model = NetworkPresets.Reference(42);
            var h = model.Fit(data, fit);
            results["reference_epoch_s"] = h.Epochs[0].Seconds * (quick ? 60000.0 / data.Count : 1);
            results["reference_test_accuracy"] = model.Evaluate(test).Accuracy;

            // Inference with the trained model.
            var one = test.Images.AsSpan(0, 784).ToArray();
            var p1 = new float[10];
            results["inference_batch1_s"] = Median(() => model.PredictInto(one, p1), 2000, 200);
            var many = test.Images.AsSpan(0, 256 * 784).ToArray();
            var p256 = new float[2560];
            results["inference_batch256_s"] = Median(() => model.PredictInto(many, p256), 60, 10);
        }

        // Convolution layers A, B, C at batch 64.
        foreach (var (name, _, _) in Workloads.ConvShapes)
        {
            var rig = new Workloads.ConvRig(name, 64);
            results[$"conv{name}_forward_s"] = Median(rig.Forward, 40, 5);
            results[$"conv{name}_backward_s"] = Median(rig.Backward, 40, 5);
        }

        // The seed tutorial's workload: per-sample SGD on trouser vs dress, one epoch.
        {
            var recipe = NetworkPresets.Get("seed-binary");
            var (rawTrain, rawTest) = FashionMnist.Load();
            var prepared = recipe.Data.Prepare(rawTrain, rawTest);
            var m = recipe.Build(42);
            m.TrainBatch(prepared.Train.Images.AsSpan(0, 784), prepared.Train.Labels.AsSpan(0, 1));
            m = recipe.Build(42);
            double best = double.MaxValue, acc = 0;
            var h = m.Fit(prepared.Train, new FitOptions { Epochs = 5, BatchSize = 1, Validation = prepared.Validation, Seed = 1 });
            foreach (var e in h.Epochs) best = Math.Min(best, e.Seconds);
            acc = h.Epochs[^1].ValAccuracy ?? 0;
            results["seed_binary_epoch_s"] = best;
            results["seed_binary_val_accuracy"] = acc;
        }

        results["threads"] = threads;
        Console.WriteLine(JsonSerializer.Serialize(results, SideBySideJson.Default.DictionaryStringDouble));
        return 0;
    }

    /// <summary>The runners' arguments: --threads N (default: all cores), --quick.</summary>
    public static (int Threads, bool Quick) ParseArgs(string[] args)
    {
        int threads = Engine.Threads;
        bool quick = false;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--threads") threads = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--quick") quick = true;
            else throw new ArgumentException($"unknown argument '{args[i]}' (expected --threads N, --quick)");
        }
        return (threads, quick);
    }

    /// <summary>Median seconds of <paramref name="runs"/> calls after <paramref name="warmup"/> calls.</summary>
    public static double Median(Action run, int runs, int warmup)
    {
        for (int i = 0; i < warmup; i++) run();
        var t = new double[runs];
        for (int i = 0; i < runs; i++)
        {
            long s = Stopwatch.GetTimestamp();
            run();
            t[i] = Stopwatch.GetElapsedTime(s).TotalSeconds;
        }
        Array.Sort(t);
        return t[runs / 2];
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, double>))]
internal partial class SideBySideJson : System.Text.Json.Serialization.JsonSerializerContext;
