using HpCnn.Data;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Presets;

/// <summary>A ready-made network with its training recipe and data preparation.</summary>
public sealed class NetworkPreset
{
    public required string Name { get; init; }
    public required string Description { get; init; }
    public required Func<ulong, Sequential> Build { get; init; }
    public required int Epochs { get; init; }
    public required int BatchSize { get; init; }
    public required float LearningRate { get; init; }
    /// <summary>How the raw Fashion-MNIST sets become this recipe's training and validation data.</summary>
    public required DataRecipe Data { get; init; }
}

/// <summary>Prepared data: the sets and the preprocessing that made them (saved with a model, reapplied at evaluation).</summary>
public sealed record PreparedData(Dataset Train, Dataset Validation, Standardization Standardization, int[]? Classes);

/// <summary>
/// A data recipe: keep some classes (relabelled 0..k-1), validate on the last <see cref="HoldoutLast"/> training images
/// or (null) on the test set, standardise with statistics of the training part.
/// </summary>
public sealed record DataRecipe(int[]? Classes, int? HoldoutLast, StandardizeMode Standardize)
{
    /// <param name="train">raw training set</param>
    /// <param name="test">raw test set</param>
    /// <param name="limit">keep only the first <paramref name="limit"/> training images of the task (after the class filter, before the holdout)</param>
    public PreparedData Prepare(Dataset train, Dataset test, int? limit = null)
    {
        if (Classes is { } keep)
        {
            train = train.FilterClasses(keep);
            test = test.FilterClasses(keep);
        }
        if (limit is int n)
        {
            if (HoldoutLast is int hl && n <= hl)
                throw new ArgumentException($"a limit of {n} training images leaves nothing to train on beside the {hl} held out for validation (use more than {hl})");
            train = train.Take(n);
        }
        Dataset val;
        if (HoldoutLast is int h) (train, val) = train.SplitLast(h);
        else val = test;
        var std = Standardization.Fit(train, Standardize);
        std.Apply(train);
        std.Apply(val);
        return new PreparedData(train, val, std, Classes);
    }
}

/// <summary>
/// The networks of the project's origin tutorials and the reference benchmark network (see ANCHORS.md).
/// </summary>
public static class NetworkPresets
{
    public static IReadOnlyList<NetworkPreset> All { get; } =
    [
        new()
        {
            Name = "reference",
            Description = "Conv(1->32,3x3,pad 1)-ReLU-MaxPool2 -> Conv(32->64,3x3,pad 1)-ReLU-MaxPool2 -> Dense(3136->128)-ReLU -> Dense(128->10); " +
                          "cross-entropy, SGD lr 0.01 momentum 0.9, batch 64, standardised with the train mean/std, validated on the 10,000 test images",
            Build = Reference,
            Epochs = 3, BatchSize = 64, LearningRate = 0.01f,
            Data = new DataRecipe(null, null, StandardizeMode.Global),
        },
        new()
        {
            Name = "seed-binary",
            Description = "the seed tutorial: trouser vs dress, one 3x3 filter ('same', no bias), ReLU, Dense(784->1, no bias), sigmoid, " +
                          "log-loss, per-sample SGD lr 0.01; the last 1,000 matching training images validate; per-pixel standardisation",
            Build = SeedBinary,
            Epochs = 5, BatchSize = 1, LearningRate = 0.01f,
            Data = new DataRecipe([1, 3], 1000, StandardizeMode.PerPixel),
        },
        new()
        {
            Name = "seed-mse",
            Description = "the second tutorial: 3 filters 5x5 (valid), sigmoid, Dense -> 1 sigmoid output, MSE, sneaker vs ankle boot " +
                          "(the last 1,000 matching training images validate); SGD lr 0.1, batch 8",
            Build = SeedMse,
            Epochs = 5, BatchSize = 8, LearningRate = 0.1f,
            Data = new DataRecipe([7, 9], 1000, StandardizeMode.PerPixel),
        },
        new()
        {
            Name = "deep",
            Description = "the deep-CNN tutorial: Conv 32 3x3 - ReLU(cap 6) - MaxPool2 - map norm -> Conv 32 3x3 - ReLU(cap 6) - MaxPool2 - map norm " +
                          "-> Dense(128) ReLU -> Dense(10) softmax; cross-entropy, SGD lr 0.01 momentum 0.9, batch 32",
            Build = Deep,
            Epochs = 3, BatchSize = 32, LearningRate = 0.01f,
            Data = new DataRecipe(null, null, StandardizeMode.Global),
        },
        new()
        {
            Name = "deep-cifar10",
            Description = "the deep-CNN tutorial's network on CIFAR-10's 3x32x32 colour images: Conv 32 3x3 - ReLU(cap 6) - MaxPool2 - map norm " +
                          "-> Conv 32 3x3 - ReLU(cap 6) - MaxPool2 - map norm -> Dense(128) ReLU -> Dense(10) softmax; cross-entropy, " +
                          "SGD lr 0.01 momentum 0.9, batch 32; standardised with the train mean/std, validated on the 10,000 test images",
            Build = DeepCifar10,
            Epochs = 3, BatchSize = 32, LearningRate = 0.01f,
            Data = new DataRecipe(null, null, StandardizeMode.Global),
        },
    ];

    public static NetworkPreset Get(string name) =>
        All.FirstOrDefault(p => p.Name == name)
        ?? throw new ArgumentException($"unknown network preset '{name}' (known: {string.Join(", ", All.Select(p => p.Name))})");

    /// <summary>The reference network of ANCHORS.md (421,642 parameters), compiled with SGD lr 0.01, momentum 0.9.</summary>
    public static Sequential Reference(ulong seed)
    {
        var m = new Sequential(new Shape3(1, 28, 28), seed)
            .Add(new Conv2D(32, 3, padding: Padding.Symmetric(1)))
            .Add(new ReLU())
            .Add(new MaxPool2D(2))
            .Add(new Conv2D(64, 3, padding: Padding.Symmetric(1)))
            .Add(new ReLU())
            .Add(new MaxPool2D(2))
            .Add(new Flatten())
            .Add(new Dense(128))
            .Add(new ReLU())
            .Add(new Dense(10));
        return m.Compile(LossKind.CrossEntropy, new Sgd(0.01f, momentum: 0.9f));
    }

    /// <summary>The seed tutorial's model: one 3x3 filter, ReLU, dense to one sigmoid output, log-loss.</summary>
    public static Sequential SeedBinary(ulong seed)
    {
        var m = new Sequential(new Shape3(1, 28, 28), seed)
            .Add(new Conv2D(1, 3, padding: Padding.Same, bias: false))
            .Add(new ReLU())
            .Add(new Flatten())
            .Add(new Dense(1, bias: false))
            .Add(new Sigmoid());
        return m.Compile(LossKind.BinaryCrossEntropy, new Sgd(0.01f));
    }

    /// <summary>The second tutorial's model: 3 filters 5x5 valid, sigmoid, dense to one sigmoid output, MSE.</summary>
    public static Sequential SeedMse(ulong seed)
    {
        var m = new Sequential(new Shape3(1, 28, 28), seed)
            .Add(new Conv2D(3, 5))
            .Add(new Sigmoid())
            .Add(new Flatten())
            .Add(new Dense(1))
            .Add(new Sigmoid());
        return m.Compile(LossKind.MeanSquaredError, new Sgd(0.1f));
    }

    /// <summary>The deep-CNN tutorial's model: two conv blocks with capped ReLU, pooling and per-map normalisation.</summary>
    public static Sequential Deep(ulong seed) => Deep(seed, new Shape3(1, 28, 28));

    /// <summary>The deep-CNN tutorial's model on CIFAR-10's 3x32x32 images (the tutorial's own dataset).</summary>
    public static Sequential DeepCifar10(ulong seed) => Deep(seed, Cifar10.ImageShape);

    /// <summary>The deep-CNN tutorial's model for images of <paramref name="input"/>, ten classes.</summary>
    public static Sequential Deep(ulong seed, Shape3 input)
    {
        var m = new Sequential(input, seed)
            .Add(new Conv2D(32, 3, padding: Padding.Same))
            .Add(new ReLU(cap: 6f))
            .Add(new MaxPool2D(2))
            .Add(new FeatureMapNorm())
            .Add(new Conv2D(32, 3, padding: Padding.Same))
            .Add(new ReLU(cap: 6f))
            .Add(new MaxPool2D(2))
            .Add(new FeatureMapNorm())
            .Add(new Flatten())
            .Add(new Dense(128))
            .Add(new ReLU())
            .Add(new Dense(10))
            .Add(new Softmax());
        return m.Compile(LossKind.CrossEntropy, new Sgd(0.01f, momentum: 0.9f));
    }
}
