using System.Globalization;

namespace HpCnn.IO;

/// <summary>
/// The most work a network read from an untrusted source (a model file, a JSON spec) may ask for per image: its forward
/// FLOPs (<see cref="Layers.Layer.FlopsPerSample"/>, from the layer shapes alone). A tiny file can describe a network that
/// takes minutes per image (stride-1 pools with huge windows over a padded input), so loading refuses one above the
/// budget before any weight is read. Networks built in code are not limited.
/// </summary>
public static class ComputeBudget
{
    /// <summary>
    /// 10 GFLOP per image: the small CNNs this engine is for cost well under 1 GFLOP (the reference network 0.02, a CIFAR
    /// ResNet-20 0.08, MobileNetV2 at 224x224 0.6, ResNet-18 3.6), so the default leaves them ample room while bounding a
    /// hostile file to seconds per image.
    /// </summary>
    public const long DefaultFlopsPerImage = 10_000_000_000;

    /// <summary>Checks a budget argument: positive, or 0 for <see cref="DefaultFlopsPerImage"/>.</summary>
    public static long Resolve(long maxFlopsPerImage) =>
        maxFlopsPerImage switch
        {
            0 => DefaultFlopsPerImage,
            < 0 => throw new ArgumentOutOfRangeException(nameof(maxFlopsPerImage), $"the compute budget must be positive (0 for the default of {Gflop(DefaultFlopsPerImage)} per image), got {maxFlopsPerImage}"),
            _ => maxFlopsPerImage,
        };

    internal static string Gflop(long flops) => string.Create(CultureInfo.InvariantCulture, $"{flops / 1e9:0.###} GFLOP");
}
