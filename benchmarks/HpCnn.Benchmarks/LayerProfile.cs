using System.Diagnostics;
using System.Globalization;
using HpCnn.Training;

namespace HpCnn.Benchmarks;

/// <summary>
/// Where a training step's time goes: runs the reference network's steps layer by layer with a stopwatch around
/// each forward and backward, the loss and the optimizer. Usage: profile [--threads N] [--batch N] [--steps N] [--net NAME] [--real] [--infer] [--wall] (--real: Fashion-MNIST images, not noise;
/// --infer: an inference plan's forward only; --wall: wall time even on one thread, for layers of a few microseconds where the
/// thread clock's own cost shows).
/// </summary>
internal static class LayerProfile
{
    /// <summary>--predict: the public call (Sequential.PredictInto, what the C ABI runs) timed whole.</summary>
    private static int Predict(Sequential model, float[] images, int batch, int steps, bool wall)
    {
        var probs = new float[batch * model.OutputShape.Size];
        for (int i = 0; i < 5; i++) model.PredictInto(images, probs);
        var times = new double[steps];
        // One thread: the calling thread does all the work, so its CPU time is the call's whatever else the machine runs.
        Func<double> clock = Engine.Threads == 1 && !wall ? ThreadClock.Now : () => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
        for (int s = 0; s < steps; s++)
        {
            double t0 = clock();
            model.PredictInto(images, probs);
            times[s] = clock() - t0;
        }
        Array.Sort(times);
        Console.WriteLine($"{Engine.Describe()}; predict batch {batch}, {steps} calls: median {times[steps / 2] * 1e6:F1} us, best {times[0] * 1e6:F1} us");
        return 0;
    }

    public static int Run(string[] args)
    {
        int batch = 64, steps = 200;
        string net = "reference";
        bool real = false, infer = false, wall = false, predict = false;
        for (int i = 0; i < args.Length; i++)
        {
            if (args[i] == "--threads") Engine.Threads = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--batch") batch = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--steps") steps = int.Parse(args[++i], CultureInfo.InvariantCulture);
            else if (args[i] == "--net") net = args[++i];
            else if (args[i] == "--real") real = true;
            else if (args[i] == "--infer") infer = true;
            else if (args[i] == "--wall") wall = true;
            else if (args[i] == "--predict") predict = true;
        }
        // A preset name, or a JSON network spec file (README "Network spec files").
        var model = File.Exists(net) ? IO.NetworkSpec.Load(net).Model : Presets.NetworkPresets.Get(net).Build(1);
        var images = Workloads.Random(batch * model.InputShape.Size, 5);
        var labels = Enumerable.Range(0, batch).Select(i => i % model.ClassCount).ToArray();
        if (real)
        {
            // Fashion-MNIST's first training images, standardised (real images have other sparsity than noise).
            var (train, _) = Data.FashionMnist.Load();
            Data.Standardization.FromValues(Data.FashionMnist.TrainMean, Data.FashionMnist.TrainStd).Apply(train);
            images = train.Images.AsSpan(0, batch * model.InputShape.Size).ToArray();
            labels = train.Labels.AsSpan(0, batch).ToArray();
        }
        if (predict) return Predict(model, images, batch, steps, wall);
        for (int i = 0; i < 20; i++) model.TrainBatch(images, labels);
        var plan = new ExecutionPlan(model, batch, training: !infer);
        // One thread: every layer runs on this thread, so its CPU time is the layer's time whatever else the machine runs.
        Func<double> Clock = Engine.Threads == 1 && !wall ? ThreadClock.Now : () => Stopwatch.GetTimestamp() / (double)Stopwatch.Frequency;
        plan.SetBatch(batch);
        images.CopyTo(plan.Input);
        labels.CopyTo(plan.Labels);
        int n = model.Layers.Count;
        var fwd = new double[n];
        var bwd = new double[n];
        var fwdBest = Enumerable.Repeat(double.MaxValue, n).ToArray();
        var bwdBest = Enumerable.Repeat(double.MaxValue, n).ToArray();
        double loss = 0, update = 0, total = 0, totalBest = double.MaxValue;
        var opt = model.Optimizer!;
        double cpuStart = ThreadClock.Now(), wallStart = Stopwatch.GetTimestamp();
        for (int s = 0; s < steps + 10; s++)
        {
            bool record = s >= 10;
            if (s == 10) { cpuStart = ThreadClock.Now(); wallStart = Stopwatch.GetTimestamp(); }
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < n; i++)
            {
                var r = plan.Runs[i];
                double a = Clock();
                if (r.RunsOwnForward) r.Layer.Forward(r);
                double dt = Clock() - a;
                if (record) { fwd[i] += dt; fwdBest[i] = Math.Min(fwdBest[i], dt); }
            }
            if (infer)
            {
                double fs = Stopwatch.GetElapsedTime(t0).TotalSeconds;
                if (record) { total += fs; totalBest = Math.Min(totalBest, fs); }
                continue;
            }
            long b = Stopwatch.GetTimestamp();
            int k = model.OutputShape.Size;
            if (k > 1) Kernels.LossKernels.SoftmaxCrossEntropy(plan.Acts[n].Slice(0, batch * k), plan.Labels, plan.Probs.Span, plan.Grads[n].Span, batch, k);
            else Kernels.LossKernels.MeanSquaredError(plan.Acts[n].Slice(0, batch), plan.Labels, plan.Grads[n].Span, batch, 1);
            if (record) loss += Stopwatch.GetElapsedTime(b).TotalSeconds;
            for (int i = n - 1; i >= 0; i--)
            {
                var r = plan.Runs[i];
                double a = Clock();
                if (r.RunsOwnBackward) r.Layer.Backward(r);
                double dt = Clock() - a;
                if (record) { bwd[i] += dt; bwdBest[i] = Math.Min(bwdBest[i], dt); }
            }
            long c = Stopwatch.GetTimestamp();
            plan.UpdateParameters(opt, 0.01f);
            if (record) update += Stopwatch.GetElapsedTime(c).TotalSeconds;
            double st = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            if (record) { total += st; totalBest = Math.Min(totalBest, st); }
        }
        double cpu = ThreadClock.Now() - cpuStart;
        Console.WriteLine($"{Engine.Describe()}; {net}, batch {batch}, {steps} steps; {total / steps * 1e6:F1} us/step = {total / steps * 60000 / batch:F2} s per 60,000 samples; best step {totalBest * 1e6:F1} us; calling thread CPU {cpu / steps * 1e6:F1} us/step");
        // "best": the fastest of the steps, the figure to compare between runs on a noisy machine (noise only adds).
        Console.WriteLine($"{"layer",-14} {"fwd us",9} {"bwd us",9} {"fwd GF/s",9} {"bwd GF/s",9} {"best fwd",9} {"best bwd",9}");
        for (int i = 0; i < n; i++)
        {
            var l = model.Layers[i];
            double f = fwd[i] / steps, bk = bwd[i] / steps;
            double flops = l.FlopsPerSample * (double)batch;
            double bflops = l is Layers.Conv2D or Layers.Dense ? flops * (i == 0 ? 1 : 2) : 0;
            Console.WriteLine($"{i,2} {l.Kind,-11} {f * 1e6,9:F2} {bk * 1e6,9:F2} {(f > 0 && flops > 1e7 ? flops / f / 1e9 : 0),9:F1} {(bk > 0 && bflops > 0 ? bflops / bk / 1e9 : 0),9:F1} {fwdBest[i] * 1e6,9:F2} {bwdBest[i] * 1e6,9:F2}");
        }
        Console.WriteLine($"loss {loss / steps * 1e6:F2} us, optimizer {update / steps * 1e6:F2} us");
        return 0;
    }
}
