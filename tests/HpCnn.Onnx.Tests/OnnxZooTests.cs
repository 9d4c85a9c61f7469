using HpCnn.IO;
using HpCnn.Presets;
using static HpCnn.Onnx.Tests.OnnxTestSupport;

namespace HpCnn.Onnx.Tests;

/// <summary>The presets and the benchmark zoo's specs (benchmarks/zoo/*.json) exported and run in ONNX Runtime.</summary>
public class OnnxZooTests
{
    private static void AssertOrtAgrees(Sequential m, string name)
    {
        RandomizeNormStatistics(m, 1);
        const int batch = 3;
        var x = RandomValues(batch * m.InputShape.Size, 7, 2f);
        var expected = m.Predict(x).Probabilities;
        var bytes = OnnxExport.ToBytes(m);
        double err = RelativeError(expected, RunInOrt(bytes, x, m.InputShape, batch));
        Assert.That(err, Is.LessThanOrEqualTo(1e-5), $"{name}: ONNX Runtime vs HpCnn, relative error {err:G3}");
        Assert.That(OnnxImport.FromBytes(bytes).Predict(x).Probabilities, Is.EqualTo(expected).AsCollection, $"{name}: round trip");
    }

    public static IEnumerable<string> Presets => NetworkPresets.All.Select(p => p.Name);

    [TestCaseSource(nameof(Presets))]
    public void PresetRunsInOnnxRuntimeAsInHpCnn(string name) => AssertOrtAgrees(NetworkPresets.Get(name).Build(42), name);

    /// <summary>The zoo folder, found from the test's directory up to the repository root.</summary>
    private static string? ZooDirectory()
    {
        for (var d = new DirectoryInfo(TestContext.CurrentContext.TestDirectory); d is not null; d = d.Parent)
        {
            string zoo = Path.Combine(d.FullName, "benchmarks", "zoo");
            if (Directory.Exists(zoo)) return zoo;
            if (File.Exists(Path.Combine(d.FullName, "HpCnn.sln"))) return null;
        }
        return null;
    }

    [Test]
    public void EveryZooNetworkRunsInOnnxRuntimeAsInHpCnn()
    {
        var dir = ZooDirectory();
        var specs = dir is null ? [] : Directory.GetFiles(dir, "*.json").Order(StringComparer.Ordinal).ToArray();
        if (specs.Length == 0) Assert.Ignore("no benchmarks/zoo/*.json in this tree");
        foreach (var spec in specs) AssertOrtAgrees(NetworkSpec.Load(spec).Model, Path.GetFileName(spec));
    }
}
