using System.IO.Compression;
using HpCnn.Data;
using HpCnn.Imaging;
using HpCnn.Layers;
using HpCnn.Onnx;
using HpCnn.Training;

namespace HpCnn.Fuzz;

/// <summary>
/// Writes the committed seed corpus (tests/HpCnn.Fuzz/corpus/TARGET/): small valid inputs of every format, each
/// covering other parts of its reader (every layer kind, optimizers, padding forms; raw and gzip IDX; PNG colour types
/// and filters). AFL works best from small seeds, so models are tiny. Regenerate with `HpCnn.Fuzz --write-seeds DIR`.
/// </summary>
public static class SeedCorpus
{
    public static void Write(string root)
    {
        var models = Models();
        var dir = Directory.CreateDirectory(Path.Combine(root, "model")).FullName;
        for (int i = 0; i < models.Count; i++) File.WriteAllBytes(Path.Combine(dir, $"tiny-{i}.hpcnn"), IO.ModelFile.ToBytes(models[i]));
        dir = Directory.CreateDirectory(Path.Combine(root, "onnx")).FullName;
        for (int i = 0; i < models.Count; i++) File.WriteAllBytes(Path.Combine(dir, $"tiny-{i}.onnx"), OnnxExport.ToBytes(models[i]));
        dir = Directory.CreateDirectory(Path.Combine(root, "spec")).FullName;
        for (int i = 0; i < models.Count; i++) File.WriteAllText(Path.Combine(dir, $"tiny-{i}.json"), IO.NetworkSpec.ToJson(models[i], 1, 4, indented: false));

        dir = Directory.CreateDirectory(Path.Combine(root, "idx")).FullName;
        byte[] pixels = Enumerable.Range(0, 3 * 4 * 4).Select(i => (byte)(i * 5)).ToArray();
        Idx.Write(Path.Combine(dir, "images-3x4x4"), pixels, [3, 4, 4]);
        Idx.Write(Path.Combine(dir, "images-3x4x4.gz"), pixels, [3, 4, 4], gzip: true);
        Idx.Write(Path.Combine(dir, "labels-3"), new byte[] { 0, 1, 2 }, [3]);
        Idx.Write(Path.Combine(dir, "labels-3.gz"), new byte[] { 0, 1, 2 }, [3], gzip: true);

        dir = Directory.CreateDirectory(Path.Combine(root, "cifar")).FullName;
        var records = new byte[2 * 3073];
        for (int i = 0; i < records.Length; i++) records[i] = (byte)(i * 31);
        records[0] = 3;
        records[3073] = 9;
        File.WriteAllBytes(Path.Combine(dir, "one-record.bin"), records[..3073]);
        File.WriteAllBytes(Path.Combine(dir, "two-records.bin"), records);
        File.WriteAllText(Path.Combine(dir, "batches.meta.txt"), string.Join("\n", Cifar10.ClassNames) + "\n\n");

        dir = Directory.CreateDirectory(Path.Combine(root, "png")).FullName;
        foreach (var format in Enum.GetValues<PixelFormat>())
        {
            var image = new RasterImage(5, 3, format, Enumerable.Range(0, 15 * (int)format).Select(i => (byte)(i * 17)).ToArray());
            File.WriteAllBytes(Path.Combine(dir, $"{format}.png".ToLowerInvariant()), ImageEncoding.EncodePng(image));
        }
    }

    private static List<Sequential> Models() =>
    [
        new Sequential(new Shape3(1, 6, 6), 1).Add(new Conv2D(2, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2))
            .Add(new Flatten()).Add(new Dense(3)).Compile(LossKind.CrossEntropy, new Sgd(0.01f, momentum: 0.9f)),
        new Sequential(new Shape3(2, 5, 5), 2).Add(new Conv2D(2, (3, 2), (2, 1), Padding.Explicit(1, 0, 1, 1))).Add(new BatchNorm2D())
            .Add(new ReLU(6)).Add(new AvgPool2D(2, 1, Padding.Explicit(0, 1, 1, 0))).Add(new FeatureMapNorm()).Add(new Flatten())
            .Add(new Dropout(0.25f)).Add(new Dense(1)).Add(new Sigmoid()).Compile(LossKind.BinaryCrossEntropy, new Adam()),
        new Sequential(new Shape3(1, 4, 4), 3).Add(new Flatten()).Add(new Dense(4, bias: false)).Add(new LeakyReLU(0.1f))
            .Add(new Tanh()).Add(new Dense(2)).Add(new Softmax()),
    ];
}
