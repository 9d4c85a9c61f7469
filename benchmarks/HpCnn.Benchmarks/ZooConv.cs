using System.Globalization;
using System.Text;
using HpCnn.Kernels;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Benchmarks;

/// <summary>
/// The HpCnn half of the per-layer comparison in benchmarks/zoo.py: each convolution shape of the zoo as a one-layer
/// network, timed as the engine runs it inside a network (its own choice of algorithm, the layer's threads):
/// forward, backward-data alone (the layer frozen, input gradient on) and backward-weights alone (no input gradient).
/// Usage: conv-shapes --threads N --shapes IC,H,W,OC,KH,KW,SH,SW,PT,PL,PB,PR[;...] [--batch 64] [--reps 10].
/// Prints one JSON line: {"shapes": [{"key": "...", "forward_s": median, "backward_data_s": ..., "backward_weights_s": ...}]}.
/// </summary>
internal static class ZooConv
{
    public static int Run(string[] args)
    {
        int batch = 64, reps = 10;
        string shapes = "";
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--threads") Engine.Threads = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--batch") batch = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--reps") reps = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--shapes") shapes = args[++i];
            else throw new ArgumentException($"unknown argument '{args[i]}' (expected --threads, --batch, --reps, --shapes)");
        }
        var sb = new StringBuilder("{\"shapes\": [");
        bool first = true;
        foreach (var key in shapes.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var v = key.Split(',').Select(t => int.Parse(t, CultureInfo.InvariantCulture)).ToArray();
            if (v.Length != 12) throw new ArgumentException($"shape '{key}': expected IC,H,W,OC,KH,KW,SH,SW,PT,PL,PB,PR");
            Sequential Net(bool frozen)
            {
                var m = new Sequential(new Shape3(v[0], v[1], v[2]), 1)
                    .Add(new Conv2D(v[3], (v[4], v[5]), (v[6], v[7]), Padding.Explicit(v[8], v[9], v[10], v[11])));
                if (frozen) m.Freeze(0);
                return m;
            }
            // Forward and backward-weights: the layer as the first of a network (nothing needs its input's gradient).
            var train = new ExecutionPlan(Net(false), batch, training: true);
            // Backward-data alone: the layer frozen, the input's gradient asked for.
            var data = new ExecutionPlan(Net(true), batch, training: true, inputGradient: true);
            foreach (var p in new[] { train, data })
            {
                p.SetBatch(batch);
                Workloads.Random(p.Input.Length, 2).CopyTo(p.Input);
                Workloads.Random(p.Grads[1].Length, 3).CopyTo(p.Grads[1].Span);
                p.Forward();
            }
            double fwd = SideBySide.Median(train.Forward, reps, 2);
            double dw = SideBySide.Median(() => train.Backward(0), reps, 2);
            double dx = SideBySide.Median(() => data.Backward(0), reps, 2);
            sb.Append(first ? "" : ", ").Append(CultureInfo.InvariantCulture,
                $"{{\"key\": \"{key}\", \"forward_s\": {fwd:R}, \"backward_data_s\": {dx:R}, \"backward_weights_s\": {dw:R}}}");
            first = false;
        }
        sb.Append("]}");
        Console.WriteLine(sb.ToString());
        return 0;
    }

    /// <summary>The FMA peak of one core, probed now: {"fma_peak_gflops": ymm, "fma512_peak_gflops": zmm (0 without AVX-512)}.</summary>
    public static int Peak(string[] args)
    {
        double seconds = args.Length > 0 ? double.Parse(args[0], CultureInfo.InvariantCulture) : 0.5;
        var r = new Dictionary<string, double>
        {
            ["fma_peak_gflops"] = PeakProbe.MeasureGflops(seconds),
            ["fma512_peak_gflops"] = PeakProbe.MeasureGflops512(seconds),
        };
        Console.WriteLine(System.Text.Json.JsonSerializer.Serialize(r, SideBySideJson.Default.DictionaryStringDouble));
        return 0;
    }
}
