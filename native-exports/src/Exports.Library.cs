using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HpCnn.Native;

/// <summary>
/// The exported functions of hpcnn.h. Every body is one try/catch: success returns HPCNN_OK, any exception
/// becomes a status and a thread-local message (ONNX Runtime's API_IMPL_BEGIN/END). Nothing escapes.
/// </summary>
public static unsafe partial class Exports
{
    public const uint AbiVersion = 10;
    private static readonly nint s_version = Utf8.AllocStatic(Engine.Version);
    private static readonly nint s_path = Utf8.AllocStatic(Engine.PathName);
    private static readonly nint s_gemm = Utf8.AllocStatic(Engine.GemmKernel);

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_abi_version")]
    public static uint AbiVersionExport() => AbiVersion;

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_version")]
    public static nint Version() => s_version;

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_kernel_path")]
    public static nint KernelPath() => s_path;

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_gemm_kernel")]
    public static nint GemmKernel() => s_gemm;

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_last_error")]
    public static nint LastError() => Status.LastError;

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_free")]
    public static void Free(void* p)
    {
        if (p != null) NativeMemory.Free(p);
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_set_threads")]
    public static int SetThreads(int n)
    {
        try { Engine.Threads = n; return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_get_threads")]
    public static int GetThreads()
    {
        try { return Engine.Threads; }
        catch (Exception e) { Status.From(e); return 1; }
    }

    // ---- helpers shared by the exports ----

    /// <summary>Writes a result through a caller's pointer (NULL is an error naming the argument).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Out<T>(T* p, T value, string argument) where T : unmanaged
    {
        if (p == null) throw new ArgumentNullException(argument, $"{argument} is NULL");
        *p = value;
    }

    private static void CheckOut<T>(T* p, string argument) where T : unmanaged
    {
        if (p == null) throw new ArgumentNullException(argument, $"{argument} is NULL");
    }

    /// <summary>A caller's buffer of <paramref name="count"/> elements that must equal <paramref name="expected"/>.</summary>
    private static Span<T> Buffer<T>(T* p, long count, long expected, string argument, string what) where T : unmanaged
    {
        if (p == null && expected > 0) throw new ArgumentNullException(argument, $"{argument} is NULL");
        if (count != expected) throw new ArgumentException($"{argument}: expected {expected} values ({what}), got a buffer of {count}");
        if (expected > int.MaxValue) throw new ArgumentException($"{argument}: {expected} values is more than one call can take");
        return new Span<T>(p, (int)expected);
    }

    private static int CheckCount(long n, string argument)
    {
        if (n < 1) throw new ArgumentException($"{argument} must be at least 1, got {n}");
        if (n > int.MaxValue) throw new ArgumentException($"{argument} of {n} is too large");
        return (int)n;
    }
}
