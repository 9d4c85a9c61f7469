using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Benchmarks;

/// <summary>The measured workloads, shared by the BenchmarkDotNet classes and the side-by-side runner.</summary>
internal static class Workloads
{
    public static float[] Random(int n, ulong seed)
    {
        var r = new Rng(seed);
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(r.NextDouble() * 2 - 1);
        return v;
    }

    /// <summary>The three convolution shapes of ANCHORS.md (batch 64, 3x3, pad 1, stride 1).</summary>
    public static readonly (string Name, Shape3 Input, int Filters)[] ConvShapes =
    [
        ("A", new Shape3(1, 28, 28), 32),
        ("B", new Shape3(32, 14, 14), 64),
        ("C", new Shape3(3, 32, 32), 32),
    ];

    /// <summary>A one-layer model around a convolution shape, with a training plan that also computes the input gradient.</summary>
    public sealed class ConvRig
    {
        public readonly ExecutionPlan Plan;
        public ConvRig(string name, int batch)
        {
            var (_, input, filters) = ConvShapes.First(s => s.Name == name);
            var m = new Sequential(input, 1).Add(new Conv2D(filters, 3, padding: Padding.Symmetric(1)));
            Plan = new ExecutionPlan(m, batch, training: true, inputGradient: true);
            Random(Plan.Input.Length, 2).CopyTo(Plan.Input);
            Random(Plan.Grads[1].Length, 3).CopyTo(Plan.Grads[1].Span);
        }

        public void Forward() => Plan.Forward();
        public void Backward() => Plan.Backward(0);
    }

    /// <summary>The reference network and a fixed batch.</summary>
    public sealed class ReferenceRig
    {
        public readonly Sequential Model = Presets.NetworkPresets.Reference(1);
        public readonly float[] Images;
        public readonly int[] Labels;
        public readonly float[] Probabilities;

        public ReferenceRig(int batch)
        {
            Images = Random(batch * 784, 5);
            Labels = Enumerable.Range(0, batch).Select(i => i % 10).ToArray();
            Probabilities = new float[batch * 10];
        }

        public double TrainStep() => Model.TrainBatch(Images, Labels);
        public void Predict() => Model.PredictInto(Images, Probabilities);
    }
}
