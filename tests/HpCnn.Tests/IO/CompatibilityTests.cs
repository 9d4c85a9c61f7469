using System.Text.Json;
using HpCnn.IO;

namespace HpCnn.Tests.IO;

/// <summary>
/// A model file written by HpCnn 0.1 (format version 1) is committed with the probabilities it gave; every later
/// version must load it and predict the same. Regenerate only when deliberately starting a new fixture:
/// HPCNN_WRITE_FIXTURES=1 dotnet test --filter CompatibilityTests (then commit the files under tests/HpCnn.Tests/Fixtures).
/// </summary>
public class CompatibilityTests
{
    private static string FixtureDir => Path.Combine(TestContext.CurrentContext.TestDirectory, "Fixtures");
    private const string ModelName = "every-layer-v1.hpcnn", ExpectedName = "every-layer-v1.expected.json";
    private const ulong InputSeed = 424242;
    private const int Count = 4;

    [Test]
    public void FormatVersion1FixtureStillLoadsAndPredictsTheSame()
    {
        if (Environment.GetEnvironmentVariable("HPCNN_WRITE_FIXTURES") == "1") WriteFixture();
        string model = Path.Combine(FixtureDir, ModelName);
        Assert.That(File.Exists(model), $"fixture {model} is missing");
        var loaded = ModelFile.Load(model);
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixtureDir, ExpectedName)));
        var expected = doc.RootElement.GetProperty("probabilities").EnumerateArray().Select(e => e.GetSingle()).ToArray();
        Assert.That(doc.RootElement.GetProperty("format_version").GetInt32(), Is.EqualTo(1));
        Assert.That(loaded.Model.EpochsTrained, Is.EqualTo(doc.RootElement.GetProperty("epochs_trained").GetInt32()));
        Assert.That(loaded.InitialWeights, Is.Not.Null);
        var x = TestModels.Images(Count, loaded.Model.InputShape, InputSeed);
        var p = loaded.Model.Predict(x).Probabilities;
        Assert.That(p, Has.Length.EqualTo(expected.Length));
        for (int i = 0; i < p.Length; i++)
            Assert.That(p[i], Is.EqualTo(expected[i]).Within(2e-5f), $"probability {i}");
    }

    private static void WriteFixture()
    {
        // Written into the source tree (the test runs from bin/...): tests/HpCnn.Tests/Fixtures.
        string src = Path.GetFullPath(Path.Combine(TestContext.CurrentContext.TestDirectory, "..", "..", "..", "Fixtures"));
        Directory.CreateDirectory(src);
        var m = TestModels.EveryLayer(2026);
        var init = m.CopyParameterValues();
        TestModels.Train(m, 5, 77);
        m.EpochsTrained = 1;
        m.Metadata = """{"fixture": "every layer kind, format version 1"}""";
        m.Save(Path.Combine(src, ModelName), init);
        var p = m.Predict(TestModels.Images(Count, m.InputShape, InputSeed)).Probabilities;
        using var fs = File.Create(Path.Combine(src, ExpectedName));
        using var w = new Utf8JsonWriter(fs, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteNumber("format_version", 1);
        w.WriteString("written_by", "HpCnn " + Engine.Version + " (" + Engine.PathName + ")");
        w.WriteNumber("input_seed", InputSeed);
        w.WriteNumber("epochs_trained", 1);
        w.WriteStartArray("probabilities");
        foreach (float v in p) w.WriteNumberValue(v);
        w.WriteEndArray();
        w.WriteEndObject();
        Directory.CreateDirectory(FixtureDir);
        foreach (var f in new[] { ModelName, ExpectedName })
            File.Copy(Path.Combine(src, f), Path.Combine(FixtureDir, f), overwrite: true);
    }
}
