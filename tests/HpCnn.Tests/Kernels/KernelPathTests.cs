using System.Runtime.Intrinsics.X86;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// The kernel suite runs three times (default, DOTNET_EnableAVX2=0, DOTNET_EnableHWIntrinsic=0); this makes sure the
/// fallback runs really exercise the scalar kernels, so a green fallback run means what it says.
/// </summary>
public class KernelPathTests
{
    [Test]
    public void FallbackRunsUseTheScalarPath()
    {
        bool avx2Disabled = Environment.GetEnvironmentVariable("DOTNET_EnableAVX2") == "0"
            || Environment.GetEnvironmentVariable("DOTNET_EnableHWIntrinsic") == "0";
        TestContext.Progress.WriteLine($"kernel tests on path {Engine.PathName}");
        if (avx2Disabled)
        {
            Assert.That(Avx2.IsSupported, Is.False, "the runtime ignored the environment switch");
            Assert.That(Engine.Path, Is.EqualTo(KernelPath.Scalar));
        }
        else if (Environment.GetEnvironmentVariable("HPCNN_FORCE_SCALAR") != "1")
        {
            Assert.That(Engine.Path == KernelPath.Avx2Fma, Is.EqualTo(Avx2.IsSupported && Fma.IsSupported));
        }
    }
}
