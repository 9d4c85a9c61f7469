// Trains a small network on part of Fashion-MNIST with the HpCnn package, saves it, reloads it and checks that the
// reloaded model predicts the same; reads a folder of images (one subfolder per class) through the package's
// ImageFolder. Usage: dotnet run [-- FASHION_MNIST_DIR]
using HpCnn;
using HpCnn.Data;
using HpCnn.Layers;
using HpCnn.Training;

var (fullTrain, fullTest) = FashionMnist.Load(args.Length > 0 ? args[0] : null);
Dataset train = fullTrain.Take(6000), test = fullTest.Take(1000);
var std = Standardization.Fit(train, StandardizeMode.Global);
std.Apply(train);
std.Apply(test);

var model = new Sequential(new Shape3(1, 28, 28), seed: 42)
    .Add(new Conv2D(8, 3, padding: Padding.Same)).Add(new ReLU()).Add(new MaxPool2D(2))
    .Add(new Flatten()).Add(new Dense(10))
    .Compile(LossKind.CrossEntropy, new Sgd(0.01f, momentum: 0.9f));
Console.WriteLine(Engine.Describe());
Console.Write(model.Summary());
model.Fit(train, new FitOptions
{
    Epochs = 2, BatchSize = 32, Validation = test,
    OnEpochEnd = m => Console.WriteLine($"epoch {m.Epoch}: train loss {m.TrainLoss:F4}, validation accuracy {m.ValAccuracy:F4}"),
});
var eval = model.Evaluate(test);
Console.WriteLine($"test accuracy {eval.Accuracy:F4} on {test.Count} images");

string path = Path.Combine(Path.GetTempPath(), $"hpcnn-consumer-{Environment.ProcessId}.hpcnn");
try
{
    model.Save(path);
    var reloaded = Sequential.Load(path);
    var before = model.Predict(test.Images).Classes;
    var after = reloaded.Predict(test.Images).Classes;
    if (!before.SequenceEqual(after))
        return Fail("the reloaded model predicts differently");
}
finally
{
    File.Delete(path);
}
// Ten classes, two short epochs on 6,000 images: far above chance (0.1) when the package works.
if (eval.Accuracy < 0.6) return Fail($"accuracy {eval.Accuracy:F4} is below 0.6");

// An image folder: "dark" and "light" 4x4 BMP files (written by hand: the package decodes images, it does not write them).
string photos = Directory.CreateTempSubdirectory("hpcnn-consumer-photos-").FullName;
try
{
    foreach (var (name, value) in new[] { ("light", (byte)230), ("dark", (byte)20) })
    {
        Directory.CreateDirectory(Path.Combine(photos, name));
        for (int i = 0; i < 3; i++) File.WriteAllBytes(Path.Combine(photos, name, $"{i}.bmp"), Bmp4x4(value));
    }
    var folder = ImageFolder.Load(photos, new Shape3(1, 2, 2));
    if (folder.Count != 6 || !folder.ClassNames!.SequenceEqual(["dark", "light"]) || folder.Labels[5] != 1 || Math.Abs(folder.Image(5)[0] - 230 / 255f) > 1e-3f)
        return Fail($"the image folder read as {folder.Count} images of classes {string.Join(", ", folder.ClassNames ?? [])}");
    Console.WriteLine($"image folder: {folder.Count} images, classes {string.Join(", ", folder.ClassNames!)}");
}
finally
{
    Directory.Delete(photos, recursive: true);
}
return 0;

// A 4x4 24-bit BMP of one gray value: 14-byte file header, 40-byte info header, rows of 12 bytes (no padding needed).
static byte[] Bmp4x4(byte value)
{
    var b = new byte[54 + 48];
    b[0] = (byte)'B'; b[1] = (byte)'M';
    BitConverter.TryWriteBytes(b.AsSpan(2), b.Length);
    BitConverter.TryWriteBytes(b.AsSpan(10), 54);
    BitConverter.TryWriteBytes(b.AsSpan(14), 40);
    BitConverter.TryWriteBytes(b.AsSpan(18), 4);
    BitConverter.TryWriteBytes(b.AsSpan(22), 4);
    BitConverter.TryWriteBytes(b.AsSpan(26), (short)1);
    BitConverter.TryWriteBytes(b.AsSpan(28), (short)24);
    b.AsSpan(54).Fill(value);
    return b;
}

static int Fail(string message)
{
    Console.Error.WriteLine($"error: {message}");
    return 1;
}
