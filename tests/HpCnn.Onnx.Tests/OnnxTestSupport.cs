using HpCnn.Layers;
using HpCnn.Onnx;
using HpCnn.Training;
using Microsoft.ML.OnnxRuntime;

namespace HpCnn.Onnx.Tests;

/// <summary>Networks, inputs and the ONNX Runtime oracle shared by the ONNX tests.</summary>
internal static class OnnxTestSupport
{
    /// <summary>Random values in [-scale, scale) from a fixed seed.</summary>
    public static float[] RandomValues(int count, int seed, float scale = 1f)
    {
        var r = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(r.NextDouble() * 2 - 1) * scale;
        return v;
    }

    /// <summary>Gives batch-norm layers statistics and affine parameters that are not the identity (so the export must carry them).</summary>
    public static void RandomizeNormStatistics(Sequential model, int seed)
    {
        var r = new Random(seed);
        foreach (var l in model.Layers)
            if (l is BatchNorm2D bn)
            {
                int c = bn.Gamma.Count;
                bn.Gamma.Set(Enumerable.Range(0, c).Select(_ => (float)(0.5 + r.NextDouble())).ToArray());
                bn.Beta.Set(Enumerable.Range(0, c).Select(_ => (float)(r.NextDouble() - 0.5)).ToArray());
                bn.RunningMean.Set(Enumerable.Range(0, c).Select(_ => (float)(r.NextDouble() - 0.5)).ToArray());
                bn.RunningVar.Set(Enumerable.Range(0, c).Select(_ => (float)(0.5 + r.NextDouble())).ToArray());
            }
    }

    /// <summary>Runs ONNX bytes in ONNX Runtime on a batch of NCHW images; returns the "output" tensor's values.</summary>
    public static float[] RunInOrt(byte[] onnx, float[] images, Shape3 input, int batch)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(onnx, options);
        using var value = OrtValue.CreateTensorValueFromMemory(images, [batch, input.C, input.H, input.W]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, ["input"], [value], ["output"]);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }

    /// <summary>The largest difference relative to the largest magnitude of the reference (the tolerance's scale).</summary>
    public static double RelativeError(ReadOnlySpan<float> expected, ReadOnlySpan<float> actual)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), "output sizes");
        double scale = 0, diff = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.That(float.IsFinite(actual[i]), $"output {i} is {actual[i]}");
            scale = Math.Max(scale, Math.Abs(expected[i]));
            diff = Math.Max(diff, Math.Abs(expected[i] - actual[i]));
        }
        return diff / Math.Max(scale, 1e-30);
    }

    /// <summary>
    /// A random small network from <paramref name="seed"/>: convolutions (any padding, stride, bias or not), pooling, every
    /// activation and normalisation, dense layers, and a head that is a softmax layer, a loss that implies one, or neither.
    /// </summary>
    public static Sequential RandomNetwork(int seed)
    {
        var r = new Random(seed);
        int c = 1 + r.Next(3), hw = 6 + r.Next(10);
        var m = new Sequential(new Shape3(c, hw, r.Next(2) == 0 ? hw : hw + 1 + r.Next(3)), (ulong)seed);
        int blocks = 1 + r.Next(3);
        for (int b = 0; b < blocks; b++)
        {
            var shape = m.OutputShape;
            int k = 1 + r.Next(Math.Min(4, Math.Min(shape.H, shape.W)));
            Padding pad = r.Next(4) switch
            {
                0 => Padding.Valid,
                1 => Padding.Same,
                2 => Padding.Symmetric(r.Next(k)),
                _ => Padding.Explicit(r.Next(k), r.Next(k), r.Next(k), r.Next(k)),
            };
            TryAdd(m, new Conv2D(2 + r.Next(6), k, stride: 1 + r.Next(2), padding: pad, bias: r.Next(3) != 0));
            TryAdd(m, Activation(r));
            if (r.Next(2) == 0) TryAdd(m, r.Next(2) == 0 ? new BatchNorm2D(epsilon: 1e-3f) : new FeatureMapNorm());
            if (r.Next(2) == 0)
            {
                int pk = 2 + r.Next(2);
                var ppad = r.Next(3) == 0 ? Padding.Symmetric(r.Next(pk)) : r.Next(2) == 0 ? Padding.Same : Padding.Valid;
                TryAdd(m, r.Next(2) == 0 ? new MaxPool2D(pk, 1 + r.Next(pk), ppad) : new AvgPool2D(pk, 1 + r.Next(pk), ppad));
            }
        }
        m.Add(new Flatten());
        if (r.Next(2) == 0) m.Add(new Dropout(0.3f));
        if (r.Next(2) == 0)
        {
            m.Add(new Dense(4 + r.Next(12), bias: r.Next(3) != 0));
            if (r.Next(2) == 0) m.Add(new BatchNorm2D());
            m.Add(Activation(r));
        }
        int classes = 2 + r.Next(5);
        switch (r.Next(4))
        {
            case 0:
                m.Add(new Dense(classes)).Add(new Softmax());
                break;
            case 1:
                m.Add(new Dense(classes)).Compile(LossKind.CrossEntropy, new Sgd(0.01f));
                break;
            case 2:
                m.Add(new Dense(1)).Compile(LossKind.BinaryCrossEntropy, new Sgd(0.01f));
                break;
            default:
                m.Add(new Dense(classes)).Compile(LossKind.MeanSquaredError, new Sgd(0.01f));
                break;
        }
        RandomizeNormStatistics(m, seed);
        return m;
    }

    private static Layer Activation(Random r) => r.Next(5) switch
    {
        0 => new ReLU(),
        1 => new ReLU(cap: 0.5f + (float)r.NextDouble()),
        2 => new LeakyReLU(0.1f),
        3 => new Sigmoid(),
        _ => new Tanh(),
    };

    /// <summary>Adds the layer when it fits the current shape (a random pick may not: a window larger than the map).</summary>
    private static void TryAdd(Sequential m, Layer l)
    {
        try { m.Add(l); }
        catch (ArgumentException) { }
    }
}
