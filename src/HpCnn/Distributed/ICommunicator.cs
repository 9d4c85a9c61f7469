namespace HpCnn.Distributed;

/// <summary>
/// The few collectives data-parallel training needs, between the processes ("ranks") of one run. Every rank calls the
/// same collectives in the same order; a rank that stops calling them stops the run (see <see cref="Abort"/>).
/// </summary>
public interface ICommunicator
{
    /// <summary>This process's index, 0 .. <see cref="Size"/> - 1.</summary>
    int Rank { get; }
    /// <summary>Processes in the run.</summary>
    int Size { get; }

    /// <summary>
    /// In place: rank r's block of <paramref name="all"/>, at byte offset <paramref name="offsets"/>[r] with length
    /// <paramref name="counts"/>[r], goes to every rank's <paramref name="all"/> at the same place. Blocks do not overlap.
    /// </summary>
    void AllGather(Span<byte> all, ReadOnlySpan<int> counts, ReadOnlySpan<int> offsets);

    /// <summary>Rank <paramref name="root"/>'s <paramref name="data"/> to every rank.</summary>
    void Broadcast(Span<byte> data, int root);

    /// <summary>Ends every rank of the run now (after this rank failed), with <paramref name="message"/> on standard error.</summary>
    void Abort(string message, int exitCode);
}

internal static class CommunicatorExtensions
{
    /// <summary>
    /// <see cref="ICommunicator.AllGather"/> of equal blocks: rank r's block is bytes [r n, (r + 1) n) of
    /// <paramref name="all"/>, n = its length / the rank count.
    /// </summary>
    public static void AllGatherBlocks(this ICommunicator comm, Span<byte> all)
    {
        int size = comm.Size, block = all.Length / size;
        Span<int> counts = size <= 64 ? stackalloc int[size] : new int[size];
        Span<int> offsets = size <= 64 ? stackalloc int[size] : new int[size];
        for (int r = 0; r < size; r++)
        {
            counts[r] = block;
            offsets[r] = r * block;
        }
        comm.AllGather(all.Slice(0, block * size), counts, offsets);
    }
}
