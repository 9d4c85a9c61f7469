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

    /// <summary>A GEMM shape "MxNxK" (row-major C[M x N] = A[M x K] B[K x N]) and random A, B and a zeroed C for it.</summary>
    public static (int M, int N, int K, float[] A, float[] B, float[] C) GemmOperands(string shape)
    {
        var d = shape.Split('x').Select(x => int.Parse(x, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
        int m = d[0], n = d[1], k = d[2];
        return (m, n, k, Random(m * k, 1), Random(k * n, 2), new float[m * n]);
    }

    /// <summary>A pool GEMM job for (m, n, k) on <paramref name="threads"/> threads: per-worker workspaces.</summary>
    public static Layers.GemmJob GemmJob(int m, int n, int k, int threads) => new()
    {
        Scratch = Enumerable.Range(0, threads).Select(_ => new Buffer(new float[Kernels.Sgemm.WorkspaceSize(m, n, k)])).ToArray(),
    };

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
