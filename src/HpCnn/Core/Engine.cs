using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace HpCnn;

/// <summary>Which family of kernels the engine runs. Chosen once per process.</summary>
public enum KernelPath
{
    /// <summary>Portable scalar loops (any CPU; also the test oracle's path).</summary>
    Scalar = 0,
    /// <summary>Vector256 with AVX2 and FMA3.</summary>
    Avx2Fma = 1,
}

/// <summary>Process-wide engine settings: kernel path and thread count.</summary>
public static class Engine
{
    /// <summary>
    /// The kernel path, fixed at start-up: AVX2+FMA when the CPU (and runtime) allow it, unless the
    /// environment variable <c>HPCNN_FORCE_SCALAR=1</c> asks for the scalar path.
    /// </summary>
    public static readonly KernelPath Path = ChoosePath();

    /// <summary>True when the AVX2+FMA kernels run. A static readonly field: the JIT folds the branches.</summary>
    internal static readonly bool UseAvx2 = Path == KernelPath.Avx2Fma;

    /// <summary>
    /// True when the GEMM's register tiles also use the 12x16 AVX-512 kernel (on the AVX2 path, when the CPU and runtime
    /// have AVX-512F; <c>DOTNET_EnableAVX512=0</c> turns it off). Same results bit for bit as without.
    /// </summary>
    internal static readonly bool UseAvx512 = UseAvx2 && Avx512F.IsSupported && Vector512.IsHardwareAccelerated;

    /// <summary>The GEMM micro-kernel in use: "avx512 12x16", "avx2 6x16" or "scalar 6x16".</summary>
    public static string GemmKernel => UseAvx512 ? "avx512 12x16" : UseAvx2 ? "avx2 6x16" : "scalar 6x16";

    private static KernelPath ChoosePath()
    {
        if (Environment.GetEnvironmentVariable("HPCNN_FORCE_SCALAR") == "1") return KernelPath.Scalar;
        return Avx2.IsSupported && Fma.IsSupported && Vector256.IsHardwareAccelerated ? KernelPath.Avx2Fma : KernelPath.Scalar;
    }

    /// <summary>"avx2-fma" or "scalar".</summary>
    public static string PathName => Path == KernelPath.Avx2Fma ? "avx2-fma" : "scalar";

    /// <summary>
    /// Threads used by training and inference (default: all cores; under mpirun, the cores divided by the processes on this
    /// machine). Setting it replaces the shared pool.
    /// </summary>
    public static int Threads
    {
        get => WorkerPool.Shared.ThreadCount;
        set => WorkerPool.SetSharedThreads(value);
    }

    /// <summary>The library version.</summary>
    public static string Version => typeof(Engine).Assembly.GetName().Version?.ToString(3) ?? "0.0.0";

    /// <summary>One line describing the engine: version, kernel path, threads, CPU features.</summary>
    public static string Describe() =>
        $"HpCnn {Version}, kernels {PathName} (GEMM {GemmKernel}), {Threads} thread(s), cores {Environment.ProcessorCount}, " +
        $"AVX2 {Avx2.IsSupported}, FMA {Fma.IsSupported}, AVX-512F {Avx512F.IsSupported}";
}
