using System.Runtime.InteropServices;
using HpCnn.Layers;

namespace HpCnn.Distributed;

/// <summary>
/// Which images of a global batch this process computes, and the collectives a layer calls so that a batch split over
/// ranks gives, bit for bit, what one process gives. One per training plan, shared by its layers.
/// <para>
/// Rank r computes images [B r / R, B (r + 1) / R) of a global batch of B, which are exactly the images of gradient chunks
/// [16 r / R, 16 (r + 1) / R) (<see cref="GradientChunks"/>): an aligned subtree of the chunk sum. Layers whose gradient
/// is a sum over chunks (convolutions) sum their own chunks and <see cref="SumAcrossRanks"/> adds the ranks' sums in the
/// rest of that tree. Layers whose sums run over the whole batch in one order (a dense layer's GEMM over the batch, a
/// batch norm's statistics) gather the rows or per-image partials they sum (<see cref="GatherRows{T}"/>) and sum them
/// as one process would. A batch smaller than the rank count is not split: every rank computes all of it.
/// </para>
/// </summary>
internal sealed class BatchLayout
{
    private readonly int[] _counts, _offsets;
    private float[] _reduce = [];
    private int _reduceFloats;

    public BatchLayout(ICommunicator? comm)
    {
        if (comm is not null) CheckRanks(comm.Size);
        Comm = comm is { Size: > 1 } ? comm : null;
        Ranks = Comm?.Size ?? 1;
        Rank = Comm?.Rank ?? 0;
        _counts = new int[Ranks];
        _offsets = new int[Ranks];
    }

    /// <summary>Refuses a rank count whose split could not give one process's bits.</summary>
    public static void CheckRanks(int ranks)
    {
        if (ranks < 1 || ranks > GradientChunks.Count || (ranks & (ranks - 1)) != 0)
            throw new ArgumentException($"distributed training runs on 1, 2, 4, 8 or 16 processes (a power of two up to {GradientChunks.Count}, so that " +
                $"each process owns a whole subtree of the gradient sum and the result equals one process's bit for bit); this run has {ranks}");
    }

    /// <summary>The run's communicator, or null in a single process.</summary>
    public ICommunicator? Comm { get; }
    public int Ranks { get; }
    public int Rank { get; }
    /// <summary>True when the current batch is split over the ranks (a distributed run with at least one image per rank).</summary>
    public bool Split { get; private set; }
    /// <summary>Images in the whole batch (every rank's).</summary>
    public int GlobalBatch { get; private set; }
    /// <summary>This rank's first image within the global batch.</summary>
    public int Offset { get; private set; }
    /// <summary>Images this rank computes.</summary>
    public int Count { get; private set; }
    /// <summary>Gradient chunks this rank computes, and the first one's index among the batch's <see cref="GradientChunks.Count"/>.</summary>
    public int Chunks => Split ? GradientChunks.Count / Ranks : GradientChunks.Count;
    public int FirstChunk => Split ? Rank * Chunks : 0;

    /// <summary>Images [start, end) of rank <paramref name="rank"/>.</summary>
    public (int Start, int End) RankImages(int rank) => LayerRun.Range(GlobalBatch, rank, Ranks);

    public void SetBatch(int globalBatch)
    {
        GlobalBatch = globalBatch;
        Split = Comm is not null && globalBatch >= Ranks;
        (Offset, int end) = Split ? RankImages(Rank) : (0, globalBatch);
        Count = end - Offset;
    }

    /// <summary>
    /// Every rank's rows of <paramref name="all"/> (the global batch's, <paramref name="rowLength"/> values each) to every
    /// rank; this rank's rows [<see cref="Offset"/>, + <see cref="Count"/>) must be in place.
    /// </summary>
    public void GatherRows<T>(Span<T> all, int rowLength) where T : unmanaged => GatherParts(all, GlobalBatch, rowLength);

    /// <summary>
    /// In place: rank r's share <see cref="Share"/>(<paramref name="rows"/>, r) of the <paramref name="rows"/> rows of
    /// <paramref name="all"/> (<paramref name="rowLength"/> values each) to every rank.
    /// </summary>
    public void GatherParts<T>(Span<T> all, int rows, int rowLength) where T : unmanaged
    {
        if (!Split) return;
        int size = Marshal.SizeOf<T>() * rowLength;
        for (int r = 0; r < Ranks; r++)
        {
            var (s, e) = LayerRun.Range(rows, r, Ranks);
            _offsets[r] = checked(s * size);
            _counts[r] = checked((e - s) * size);
        }
        Comm!.AllGather(MemoryMarshal.AsBytes(all.Slice(0, rows * rowLength)), _counts, _offsets);
    }

    /// <summary>This rank's share of work cut into <paramref name="rows"/> rows (the rows of an output the ranks compute in parts).</summary>
    public (int Start, int End) Share(int rows) => Split ? LayerRun.Range(rows, Rank, Ranks) : (0, rows);

    /// <summary>Makes room for sums of up to <paramref name="floats"/> values in <see cref="SumAcrossRanks"/> (plan construction).</summary>
    public void ReserveSum(int floats)
    {
        if (Comm is null || floats <= _reduceFloats) return;
        _reduceFloats = floats;
        _reduce = new float[(long)floats * Ranks is var n && n <= Array.MaxLength ? (int)n : throw new OutOfMemoryException("distributed gradient sum too large")];
    }

    /// <summary>Where this rank puts its partial sum of <paramref name="floats"/> values before <see cref="SumAcrossRanks"/>.</summary>
    public Span<float> PartialSum(int floats) => _reduce.AsSpan(Rank * floats, floats);

    /// <summary>
    /// The ranks' partial sums (each rank's in <see cref="PartialSum"/>) added in the gradient chunks' tree; returns the
    /// total, the same on every rank.
    /// </summary>
    public ReadOnlySpan<float> SumAcrossRanks(int floats)
    {
        var all = _reduce.AsSpan(0, floats * Ranks);
        Comm!.AllGatherBlocks(MemoryMarshal.AsBytes(all));
        Span<bool> nonEmpty = stackalloc bool[Ranks];
        nonEmpty.Fill(true);
        GradientChunks.TreeSum(all, floats, Ranks, 0, floats, nonEmpty);
        return all.Slice(0, floats);
    }
}
