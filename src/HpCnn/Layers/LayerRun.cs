namespace HpCnn.Layers;

/// <summary>
/// One layer inside one plan (model, batch size, mode): the buffers the plan assigned and the jobs the
/// layer prepared. Created at plan time; Forward/Backward only read and write through it.
/// </summary>
public sealed class LayerRun
{
    /// <summary>Total work (in flop-like units) below which a layer runs on the calling thread alone.</summary>
    internal const long ParallelThreshold = 60_000;

    internal LayerRun(Layer layer, int batch, bool training, WorkerPool pool)
    {
        Layer = layer; Batch = batch; Capacity = batch; Training = training; Pool = pool;
    }

    /// <summary>The largest batch the plan runs.</summary>
    public int Capacity { get; }

    public Layer Layer { get; }
    /// <summary>Images in the current batch (at most the plan's capacity).</summary>
    public int Batch { get; internal set; }
    public bool Training { get; }
    internal WorkerPool Pool { get; }

    internal bool NeedInputGrad;
    internal bool NeedParamGrad;
    internal bool RunBackward => NeedInputGrad || NeedParamGrad;

    internal Buffer Input, Output, InGrad, OutGrad, State;
    internal Buffer[] Scratch = [];

    /// <summary>Clamp applied in this layer's epilogue on behalf of a following ReLU.</summary>
    internal float FusedLow = float.NegativeInfinity, FusedHigh = float.PositiveInfinity;
    /// <summary>This layer's forward was done by the previous layer's epilogue (its output is its input).</summary>
    internal bool ForwardFused;
    /// <summary>This layer's backward is done by the next layer's backward (a fused ReLU before a max-pool).</summary>
    internal bool BackwardFused;
    /// <summary>A max-pool that also applies the gradient of the ReLU before it, capped here (NaN: no ReLU).</summary>
    internal float ReluMaskCap = float.NaN;
    /// <summary>
    /// For a convolution followed by a fused ReLU and a max-pool: the pool's run, whose output gradient, arg-max and
    /// output this layer's backward reads directly (only the windows' winners carry gradient).
    /// </summary>
    internal LayerRun? PooledGradientSource;
    /// <summary>This max-pool's backward is done by the convolution before it (see <see cref="PooledGradientSource"/>).</summary>
    internal bool BackwardAbsorbed;
    /// <summary>
    /// For a convolution followed by a fused ReLU and a 2x2 max-pool it can pool in registers: the pool's run, whose output
    /// (and arg-max) this layer's forward writes instead of its own output.
    /// </summary>
    internal LayerRun? PoolTarget;
    /// <summary>This max-pool's forward is done by the convolution before it (see <see cref="PoolTarget"/>).</summary>
    internal bool ForwardByPrevious;
    /// <summary>Training steps the model took before this batch (the optimizer's count, saved in model files): seeds dropout masks.</summary>
    internal long Step;
    internal object? Jobs;

    internal int InSize => Layer.InputShape.Size;
    internal int OutSize => Layer.OutputShape.Size;

    /// <summary>Runs the items of <paramref name="job"/> on the pool, or inline when the work is too small to share.</summary>
    internal void Parallel(ParallelJob job, int items, long workPerItem)
    {
        if (items <= 1 || Pool.ThreadCount == 1 || (long)items * workPerItem < ParallelThreshold)
        {
            for (int i = 0; i < items; i++) job.Execute(i, 0);
            return;
        }
        Pool.Run(job, items);
    }

    /// <summary>Splits [0, total) into <paramref name="parts"/> near-equal ranges and returns range <paramref name="part"/>.</summary>
    internal static (int Start, int End) Range(int total, int part, int parts) =>
        ((int)((long)total * part / parts), (int)((long)total * (part + 1) / parts));

    /// <summary>How many pieces to cut elementwise work of <paramref name="total"/> values into.</summary>
    internal int ElementwiseParts(long total) =>
        Pool.ThreadCount == 1 || total < ParallelThreshold ? 1 : (int)Math.Min(Pool.ThreadCount * 2, total / 8192 + 1);
}
