using HpCnn.Distributed;
using HpCnn.Training;

namespace HpCnn.Layers;

/// <summary>
/// One layer inside one plan (model, batch size, mode): the buffers the plan assigned and the jobs the
/// layer prepared. Created at plan time; Forward/Backward only read and write through it.
/// </summary>
public sealed class LayerRun
{
    /// <summary>Total work (in flop-like units) below which a layer runs on the calling thread alone.</summary>
    internal const long ParallelThreshold = 60_000;

    internal LayerRun(Layer layer, int batch, bool training, WorkerPool pool, BatchLayout layout)
    {
        Layer = layer; Batch = batch; Capacity = batch; Training = training; Pool = pool; Layout = layout;
    }

    /// <summary>Which images of the global batch this process computes (all of them outside a distributed run).</summary>
    internal BatchLayout Layout { get; }

    /// <summary>The largest batch the plan runs.</summary>
    public int Capacity { get; }

    public Layer Layer { get; }
    /// <summary>Images of the current batch this process computes (at most the plan's capacity; see <see cref="Layout"/>).</summary>
    public int Batch { get; internal set; }
    public bool Training { get; }
    internal WorkerPool Pool { get; }

    internal bool NeedInputGrad;
    internal bool NeedParamGrad;
    internal bool RunBackward => NeedInputGrad || NeedParamGrad;

    internal Buffer Input, Output, InGrad, OutGrad, State;
    internal Buffer[] Scratch = [];

    /// <summary>What this layer's kernels do on behalf of the layers after it (set by <see cref="Fusion"/>).</summary>
    internal readonly Epilogue Epilogue = new();
    /// <summary>The earlier layer whose epilogue does this layer's forward (its output is then that layer's), or null.</summary>
    internal LayerRun? ForwardBy;
    /// <summary>The layer whose backward also does this layer's backward, or null.</summary>
    internal LayerRun? BackwardBy;
    /// <summary>The earlier layer whose forward takes this batch norm's per-plane moments (Fusion rule 8), or null.</summary>
    internal LayerRun? MomentsBy;
    /// <summary>The earlier layer whose backward forms this batch norm's input gradient, chunk by chunk (Fusion rule 11), or null.</summary>
    internal LayerRun? InputGradientBy;

    /// <summary>True when the plan calls this layer's forward itself (not done by a neighbour, not a view).</summary>
    internal bool RunsOwnForward => ForwardBy is null && !Layer.IsView(Training);
    /// <summary>True when the plan calls this layer's backward itself.</summary>
    internal bool RunsOwnBackward => RunBackward && BackwardBy is null && !Layer.IsView(Training);

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
