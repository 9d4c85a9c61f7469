// Trains a small network on part of Fashion-MNIST with the HpCnn package, saves it, reloads it and checks that the
// reloaded model predicts the same. Usage: dotnet run [-- FASHION_MNIST_DIR]
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
return eval.Accuracy >= 0.6 ? 0 : Fail($"accuracy {eval.Accuracy:F4} is below 0.6");

static int Fail(string message)
{
    Console.Error.WriteLine($"error: {message}");
    return 1;
}
