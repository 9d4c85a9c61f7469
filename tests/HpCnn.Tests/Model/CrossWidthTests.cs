using System.Diagnostics;
using HpCnn.IO;

namespace HpCnn.Tests.Model;

/// <summary>
/// The same bits on an AVX2 machine and an AVX-512 machine, and for any batch: the networks of Fixtures/networks
/// (every layer type, strided and 1x1 convolutions, batch norm, both optimizers) are trained and run in child processes
/// (tests/HpCnn.BitsProbe) with AVX-512 and with DOTNET_EnableAVX512=0, and their digests compared; in this process,
/// each image's prediction is compared bit for bit with its prediction inside batches of many sizes.
/// </summary>
public class CrossWidthTests
{
    private static string NetworksDir => Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures", "networks");

    private static string Probe()
    {
        string? root = TestContext.CurrentContext.TestDirectory;
        while (root is not null && !File.Exists(Path.Combine(root, "HpCnn.sln"))) root = Path.GetDirectoryName(root);
        Assert.That(root, Is.Not.Null, "the repository root (HpCnn.sln) above the test directory");
        string dll = Path.Combine(root!, "tests", "HpCnn.BitsProbe", "bin", "Release", "net10.0", "HpCnn.BitsProbe.dll");
        Assert.That(File.Exists(dll), Is.True, $"{dll} is built with the solution (dotnet build HpCnn.sln -c Release)");
        return dll;
    }

    private static string[] Run(string dll, params (string Name, string Value)[] env)
    {
        var psi = new ProcessStartInfo("dotnet", [dll, NetworksDir]) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in env) psi.Environment[name] = value;
        psi.Environment.Remove("DOTNET_EnableAVX512");
        foreach (var (name, value) in env) psi.Environment[name] = value;
        using var p = Process.Start(psi)!;
        string output = p.StandardOutput.ReadToEnd();
        string error = p.StandardError.ReadToEnd();
        Assert.That(p.WaitForExit(600_000), Is.True, "the probe did not finish");
        Assert.That(p.ExitCode, Is.Zero, error);
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#')).ToArray();
    }

    [Test]
    public void TrainingAndPredictionGiveTheSameBitsWithAndWithoutAvx512()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported || !Engine.UseAvx2)
            Assert.Ignore("needs a CPU (and runtime) with AVX-512 to compare against its AVX2 path");
        string dll = Probe();
        var wide = Run(dll);
        var narrow = Run(dll, ("DOTNET_EnableAVX512", "0"));
        Assert.That(wide, Has.Length.EqualTo(Directory.GetFiles(NetworksDir, "*.json").Length), "one line per network");
        Assert.That(narrow, Is.EqualTo(wide), "digests with AVX-512 (expected) and with AVX2 only (actual)");
    }

    [Test]
    public void EachImagesPredictionIsTheSameInAnyBatch([Values(1, 2)] int threads)
    {
        int before = Engine.Threads;
        Engine.Threads = threads;
        try
        {
            foreach (var file in Directory.GetFiles(NetworksDir, "*.json").Order(StringComparer.Ordinal))
            {
                var model = NetworkSpec.Load(file).Model;
                int size = model.InputShape.Size, k = model.OutputShape.Size;
                var rng = new Rng(11);
                const int count = 67;
                var x = new float[count * size];
                for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
                var alone = new float[count * k];
                for (int i = 0; i < count; i++) model.PredictInto(x.AsSpan(i * size, size), alone.AsSpan(i * k, k));
                foreach (int batch in new[] { 2, 3, 5, 6, 7, 13, 17, 64, 67 })
                {
                    var got = new float[count * k];
                    model.PredictInto(x, got, batchSize: batch);
                    for (int i = 0; i < got.Length; i++)
                        if (BitConverter.SingleToInt32Bits(got[i]) != BitConverter.SingleToInt32Bits(alone[i]))
                            Assert.Fail($"{Path.GetFileName(file)}, {threads} thread(s): image {i / k}, output {i % k} is {got[i]:R} in batches of {batch}, {alone[i]:R} alone");
            }
            }
        }
        finally
        {
            Engine.Threads = before;
        }
    }
}
