using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;

namespace HpCnn.Native;

/// <summary>Status codes of hpcnn.h.</summary>
internal static unsafe class Status
{
    public const int Ok = 0, InvalidArgument = 1, InvalidState = 2, IoError = 3, InvalidFile = 4, OutOfMemory = 5, NumericError = 6, Internal = 99;

    [ThreadStatic] private static nint t_lastError;
    private static readonly nint s_empty = Utf8.AllocStatic("");

    /// <summary>Records the exception's message for hpcnn_last_error and maps its type to a status.</summary>
    public static int From(Exception e)
    {
        int code = e switch
        {
            FileNotFoundException or DirectoryNotFoundException or UnauthorizedAccessException or PathTooLongException => IoError,
            InvalidDataException => InvalidFile,
            IOException => IoError,
            OutOfMemoryException or InsufficientMemoryException => OutOfMemory,
            ArithmeticException => NumericError,
            ArgumentException or FormatException or KeyNotFoundException => InvalidArgument,
            InvalidOperationException => InvalidState,
            // Open MPI missing for a distributed fit: the environment lacks something (the message says what to install), not a bug.
            DllNotFoundException => InvalidState,
            _ => Internal,
        };
        string message = e is ArgumentException ae ? WithoutParameterSuffix(ae) : e.Message;
        if (code == Internal) message = $"internal error ({e.GetType().Name}): {e.Message}";
        SetError(message);
        return code;
    }

    /// <summary>
    /// The message without the " (Parameter 'name')" that .NET appends: our messages already name the argument
    /// in C terms, and the C# parameter name ("index", "LearningRate") means nothing to a C caller.
    /// </summary>
    private static string WithoutParameterSuffix(ArgumentException e)
    {
        string message = e.Message;
        string suffix = $" (Parameter '{e.ParamName}')";
        int at = string.IsNullOrEmpty(e.ParamName) ? -1 : message.IndexOf(suffix, StringComparison.Ordinal);
        return at < 0 ? message : message.Remove(at, suffix.Length);
    }

    public static void SetError(string message)
    {
        nint old = t_lastError;
        t_lastError = Utf8.Alloc(message);
        if (old != 0) NativeMemory.Free((void*)old);
    }

    public static nint LastError => t_lastError != 0 ? t_lastError : s_empty;
}

/// <summary>UTF-8 strings across the boundary.</summary>
internal static unsafe class Utf8
{
    /// <summary>A NUL-terminated copy in native memory, freed with NativeMemory.Free (hpcnn_free).</summary>
    public static nint Alloc(string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        byte* p = (byte*)NativeMemory.Alloc((nuint)n + 1);
        Encoding.UTF8.GetBytes(s, new Span<byte>(p, n));
        p[n] = 0;
        return (nint)p;
    }

    /// <summary>A string that lives as long as the process.</summary>
    public static nint AllocStatic(string s) => Alloc(s);

    /// <summary>Reads a caller's string; NULL is an error naming the argument.</summary>
    public static string Read(byte* p, string argument)
    {
        if (p == null) throw new ArgumentNullException(argument, $"{argument} is NULL");
        return Marshal.PtrToStringUTF8((nint)p) ?? "";
    }

    private static readonly ConcurrentDictionary<string, nint> s_interned = new();

    /// <summary>A static copy of a string from a small fixed set (layer kinds), allocated once.</summary>
    public static nint Interned(string s) => s_interned.GetOrAdd(s, AllocStatic);
}

/// <summary>
/// Opaque handles: every object handed to C is registered under a fresh id. A released or foreign pointer
/// is reported as an invalid argument instead of being dereferenced.
/// </summary>
internal static class Handles
{
    private static readonly ConcurrentDictionary<nint, object> s_objects = new();
    private static long s_next = 0x10000;

    public static nint Add(object o)
    {
        nint h = (nint)Interlocked.Add(ref s_next, 16);
        s_objects[h] = o;
        return h;
    }

    public static T Get<T>(nint h, string argument) where T : class
    {
        if (h == 0) throw new ArgumentNullException(argument, $"{argument} is NULL");
        if (!s_objects.TryGetValue(h, out var o)) throw new ArgumentException($"{argument} is not a live handle (released already, or not from this library)");
        return o as T ?? throw new ArgumentException($"{argument} is a {Describe(o)}, not a {Describe(typeof(T))}");
    }

    public static T? Remove<T>(nint h) where T : class
    {
        if (h == 0 || !s_objects.TryGetValue(h, out var o) || o is not T) return null;
        return s_objects.TryRemove(h, out o) ? (T)o : null;
    }

    private static string Describe(object o) => Describe(o.GetType());
    private static string Describe(Type t) => t == typeof(NativeModel) ? "model" : t == typeof(NativeDataset) ? "dataset" : t == typeof(NativeFitOptions) ? "fit options object" : t.Name;
}

/// <summary>A model handle: the model and the native copies of its parameter names.</summary>
internal sealed class NativeModel(Sequential model) : IDisposable
{
    private readonly ConcurrentDictionary<(int Layer, int Index), nint> _names = new();
    public Sequential Model { get; set; } = model;

    public nint ParamName(int layer, int index, string name) => _names.GetOrAdd((layer, index), _ => Utf8.Alloc(name));

    public void Dispose()
    {
        foreach (var p in _names.Values) unsafe { NativeMemory.Free((void*)p); }
        _names.Clear();
    }
}

internal sealed class NativeDataset(HpCnn.Data.Dataset data)
{
    public HpCnn.Data.Dataset Data { get; set; } = data;
}

internal sealed class NativeFitOptions
{
    public int Epochs = 1, BatchSize = 32;
    public bool Shuffle = true;
    public ulong? Seed;
    public int? Threads;
    public NativeDataset? Validation;
    public double ValidationSplit;
    public HpCnn.Training.EarlyStopping? EarlyStopping;
    public nint OnEpoch, OnBatch, User;
    /// <summary>Least time between two batch callbacks (0: every batch); an epoch's first and last batches always call.</summary>
    public double BatchCallbackSeconds;
    public string? CheckpointDirectory;
    public int CheckpointEveryBatches;
    public TimeSpan? CheckpointInterval;
    public bool Resume;
    public bool CheckData = true;
    public nint OnMessage, MessageUser;
    /// <summary>FitOptions.Distributed: null auto (mpirun with more than one process), false off, true required.</summary>
    public bool? Distributed;
    /// <summary>What the last hpcnn_fit with these options returned (hpcnn_fit_options_history_json).</summary>
    public HpCnn.Training.TrainingHistory? LastHistory;
}
