namespace HpCnn.Tests;

/// <summary>The engine assembly (HpCnn.dll, compiled into libhpcnn.so and packed as the NuGet package) carries only the engine.</summary>
public class EngineAssemblyTests
{
    [Test]
    public void WhatOnlyTheCommandLineToolUsesLivesInHpCnnTools()
    {
        var engine = typeof(Sequential).Assembly;
        foreach (var name in new[] { "HpCnn.Presets.NetworkPresets", "HpCnn.Imaging.SvgChart", "HpCnn.Imaging.ImageGrid", "HpCnn.Imaging.ImageEncoding" })
        {
            Assert.That(engine.GetType(name), Is.Null, $"{name} is in the engine");
            Assert.That(typeof(HpCnn.Presets.NetworkPresets).Assembly.GetType(name), Is.Not.Null, $"{name} is in HpCnn.Tools");
        }
        Assert.That(engine.GetReferencedAssemblies().Select(a => a.Name), Does.Not.Contain("StbImageWriteSharp"));
        // Decoding and the image folder loader stay in the engine: the C and Python doors read image folders too.
        Assert.That(engine.GetType("HpCnn.Imaging.ImageDecoding"), Is.Not.Null);
        Assert.That(engine.GetType("HpCnn.Data.ImageFolder"), Is.Not.Null);
    }
}
