namespace HpCnn.Tests;

public class EngineTests
{
    [Test]
    public void ReportsAKernelPath()
    {
        Assert.That(Engine.PathName, Is.AnyOf("avx2-fma", "scalar"));
        // The path follows the runtime's view of the CPU unless forced; under DOTNET_EnableAVX2=0 it must be scalar.
        bool avx2 = System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported;
        if (Environment.GetEnvironmentVariable("HPCNN_FORCE_SCALAR") != "1")
            Assert.That(Engine.Path == KernelPath.Avx2Fma, Is.EqualTo(avx2));
    }
}
