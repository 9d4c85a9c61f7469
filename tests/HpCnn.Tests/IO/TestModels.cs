using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.IO;

/// <summary>Small models and data shared by the IO tests.</summary>
internal static class TestModels
{
    /// <summary>A small network that uses every layer kind with parameters or options worth saving.</summary>
    public static Sequential EveryLayer(ulong seed = 7)
    {
        var m = new Sequential(new Shape3(1, 12, 10), seed)
            .Add(new Conv2D(4, (3, 2), (1, 1), Padding.Same))
            .Add(new BatchNorm2D())
            .Add(new ReLU(cap: 6f))
            .Add(new MaxPool2D(2))
            .Add(new Conv2D(3, 3, stride: 2, padding: Padding.Explicit(1, 0, 1, 2), bias: false, init: Initializer.He))
            .Add(new LeakyReLU(0.1f))
            .Add(new FeatureMapNorm())
            .Add(new AvgPool2D((2, 1)))
            .Add(new Tanh())
            .Add(new Flatten())
            .Add(new Dropout(0.25f, seed: 5))
            .Add(new Dense(8, init: Initializer.Xavier))
            .Add(new Sigmoid())
            .Add(new Dense(3, init: Initializer.Normal(0.05f)))
            .Add(new Softmax());
        var opt = new Adam(0.01f) { Schedule = new StepSchedule(2, 0.5f) };
        return m.Compile(LossKind.CrossEntropy, opt);
    }

    public static float[] Images(int count, Shape3 shape, ulong seed)
    {
        var rng = new Rng(seed);
        var x = new float[count * shape.Size];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }

    public static int[] Labels(int count, int classes, ulong seed)
    {
        var rng = new Rng(seed);
        return Enumerable.Range(0, count).Select(_ => rng.NextInt(classes)).ToArray();
    }

    public static void Train(Sequential m, int steps, ulong seed)
    {
        var x = Images(6, m.InputShape, seed);
        var y = Labels(6, m.ClassCount, seed + 1);
        for (int i = 0; i < steps; i++) m.TrainBatch(x, y);
    }
}
