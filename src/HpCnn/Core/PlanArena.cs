namespace HpCnn;

/// <summary>
/// One block of memory for everything a plan needs (llm.c style): sizes are reserved first,
/// then one pinned array is allocated and carved into 64-byte aligned windows.
/// Pinning keeps the alignment stable for the SIMD kernels.
/// </summary>
internal sealed class PlanArena
{
    private const int AlignFloats = 16; // 64 bytes
    private long _reserved;
    private float[]? _block;
    private int _base;

    /// <summary>Reserves <paramref name="floats"/> values (plus a small zeroed tail, see <see cref="Slack"/>) and returns the handle.</summary>
    public int Reserve(long floats)
    {
        if (_block is not null) throw new InvalidOperationException("arena already allocated");
        if (floats < 0) throw new ArgumentOutOfRangeException(nameof(floats));
        long start = _reserved;
        _reserved = Align(start + floats + Slack);
        if (_reserved > int.MaxValue - 64)
            throw new InsufficientMemoryException($"a plan would need {_reserved * 4L / (1 << 20)} MiB: use a smaller batch size");
        return checked((int)start);
    }

    /// <summary>Floats kept after every window, so that kernels reading a vector past the end stay inside the arena.</summary>
    public const int Slack = 32;

    public long ReservedFloats => _reserved;

    public void Allocate()
    {
        _block = GC.AllocateArray<float>(checked((int)_reserved + AlignFloats), pinned: true);
        unsafe
        {
            fixed (float* p = _block)
            {
                long misalign = ((long)p & 63) / 4;
                _base = misalign == 0 ? 0 : (int)(AlignFloats - misalign);
            }
        }
    }

    public Buffer Get(int handle, int length) => new(_block!, _base + handle, length);

    private static long Align(long n) => (n + AlignFloats - 1) / AlignFloats * AlignFloats;
}
