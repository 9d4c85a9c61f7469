using HpCnn.Kernels;
using HpCnn.Layers;

namespace HpCnn.Distributed;

/// <summary>
/// How a batch's parameter gradient is summed, fixed by the batch size alone: the batch is cut into <see cref="Count"/>
/// chunks of consecutive images (some empty when the batch is smaller), each chunk's gradient is computed on its own, and
/// the chunk gradients are added in a pairwise tree over the chunk positions. The thread count never changes the cut or
/// the tree; and because a rank of a distributed run owns an aligned block of chunks (a subtree), summing its own chunks
/// and then the ranks' sums in the same tree gives, bit for bit, what one process gives.
/// </summary>
internal static class GradientChunks
{
    /// <summary>Chunks per batch; also the largest rank count that keeps a run bit-identical to one process.</summary>
    public const int Count = 16;

    /// <summary>Images [start, end) of chunk <paramref name="chunk"/> of a batch of <paramref name="batch"/> images.</summary>
    public static (int Start, int End) Images(int batch, int chunk) => LayerRun.Range(batch, chunk, Count);

    /// <summary>
    /// The most images one chunk can hold in a plan of <paramref name="capacity"/> images on each of <paramref name="ranks"/>
    /// processes: a rank holds at least global / ranks images (rounded down), so the global batch is below ranks x
    /// (capacity + 1), and a chunk holds at most a 16th of it (rounded up), never more than the rank's capacity.
    /// </summary>
    public static int MaxImages(int capacity, int ranks) => Math.Min(capacity, (ranks * (capacity + 1) + Count - 1) / Count);

    /// <summary>
    /// Sums elements [<paramref name="from"/>, <paramref name="to"/>) of the <paramref name="leaves"/> slots (slot i at
    /// i * <paramref name="stride"/> in <paramref name="slots"/>) in the pairwise tree, skipping empty slots, into slot 0.
    /// <paramref name="nonEmpty"/> is the caller's copy: it is changed. Returns false when every slot was empty.
    /// </summary>
    public static bool TreeSum(Span<float> slots, int stride, int leaves, int from, int to, Span<bool> nonEmpty)
    {
        int n = to - from;
        for (int step = 1; step < leaves; step *= 2)
            for (int c = 0; c + step < leaves; c += 2 * step)
            {
                if (!nonEmpty[c + step]) continue;
                var src = slots.Slice((c + step) * stride + from, n);
                var dst = slots.Slice(c * stride + from, n);
                if (nonEmpty[c]) VectorMath.AddInPlace(dst, src);
                else src.CopyTo(dst);
                nonEmpty[c] = true;
            }
        return nonEmpty[0];
    }
}
