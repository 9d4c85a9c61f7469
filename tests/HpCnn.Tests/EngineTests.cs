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

    [Test]
    public void ReportsTheGemmKernel()
    {
        // AVX-512 tiles run on the vector path when the runtime has AVX-512F (not under DOTNET_EnableAVX512=0).
        bool avx512 = System.Runtime.Intrinsics.X86.Avx512F.IsSupported && System.Runtime.Intrinsics.Vector512.IsHardwareAccelerated;
        string expected = Engine.Path == KernelPath.Scalar ? "scalar 6x16" : avx512 ? "avx512 12x16" : "avx2 6x16";
        Assert.That(Engine.GemmKernel, Is.EqualTo(expected));
        Assert.That(Engine.Describe(), Does.Contain($"GEMM {expected}"));
        TestContext.Progress.WriteLine($"GEMM kernel: {Engine.GemmKernel}");
    }
}
