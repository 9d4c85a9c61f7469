using System.Security.Cryptography;
using HpCnn;
using HpCnn.IO;

// Usage: HpCnn.BitsProbe DIR [--threads N]. For every network spec DIR/*.json (in name order) prints "name digest": the
// digest covers the weights after a few training steps, the predictions of a batch and of each image alone, and the
// outputs of every layer. Runs with different vector widths or thread counts must print the same lines (the test
// CrossWidthTests runs this with and without AVX-512).
if (args.Length < 1 || !Directory.Exists(args[0]))
{
    Console.Error.WriteLine("usage: HpCnn.BitsProbe DIR [--threads N]  (DIR holds network spec JSON files)");
    return 2;
}
Engine.Threads = args.Length == 3 && args[1] == "--threads" ? int.Parse(args[2]) : 1;
Console.WriteLine($"# {Engine.Describe()}");
foreach (var file in Directory.GetFiles(args[0], "*.json").Order(StringComparer.Ordinal))
{
    var model = NetworkSpec.Load(file).Model;
    using var digest = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    void Add(ReadOnlySpan<float> values) => digest.AppendData(System.Runtime.InteropServices.MemoryMarshal.AsBytes(values));
    var rng = new Rng(7);
    int batch = 7, size = model.InputShape.Size;
    var x = new float[batch * size];
    for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
    var y = new int[batch];
    for (int i = 0; i < batch; i++) y[i] = rng.NextInt(model.ClassCount);
    for (int step = 0; step < 3; step++) model.TrainBatch(x, y);
    foreach (var p in model.CopyParameterValues()) Add(p);
    Add(model.Predict(x).Probabilities);
    for (int i = 0; i < batch; i++) Add(model.Predict(x.AsSpan(i * size, size)).Probabilities);
    for (int l = 0; l < model.Layers.Count; l++) Add(model.LayerOutput(l, x));
    Console.WriteLine($"{Path.GetFileNameWithoutExtension(file)} {Convert.ToHexString(digest.GetHashAndReset())}");
}
return 0;
