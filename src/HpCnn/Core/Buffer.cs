using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace HpCnn;

/// <summary>
/// A window over a float array: what jobs and plans hold where a span cannot be stored
/// (spans cannot live in fields of classes that run on worker threads).
/// </summary>
public readonly struct Buffer
{
    public readonly float[]? Array;
    public readonly int Offset;
    public readonly int Length;

    public Buffer(float[] array) : this(array, 0, array.Length) { }

    public Buffer(float[] array, int offset, int length)
    {
        if ((uint)offset > (uint)array.Length || (uint)length > (uint)(array.Length - offset))
            throw new ArgumentOutOfRangeException(nameof(length), $"window [{offset}, {offset + length}) is outside an array of {array.Length}");
        Array = array;
        Offset = offset;
        Length = length;
    }

    public bool IsEmpty => Length == 0;

    public Span<float> Span
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Array is null ? default : new Span<float>(Array, Offset, Length);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Span<float> Slice(int start, int length) => new Span<float>(Array, Offset + start, length);

    public Buffer Sub(int start, int length)
    {
        if ((uint)start > (uint)Length || (uint)length > (uint)(Length - start))
            throw new ArgumentOutOfRangeException(nameof(length));
        return new Buffer(Array!, Offset + start, length);
    }

    /// <summary>Reinterprets the window as 32-bit integers (same length): used for arg-max indices.</summary>
    public Span<int> AsInts() => MemoryMarshal.Cast<float, int>(Span);

    public override string ToString() => $"Buffer[{Offset}..{Offset + Length})";
}
