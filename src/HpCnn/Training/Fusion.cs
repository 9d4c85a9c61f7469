using HpCnn.Layers;

namespace HpCnn.Training;

/// <summary>
/// What a layer's run does on behalf of the layers after it. A new fusion is a new field here and a new rule in
/// <see cref="Fusion.Plan"/>; the layer that owns the kernel reads its epilogue, and nothing else decides.
/// </summary>
internal sealed class Epilogue
{
    /// <summary>Clamp applied to the output on behalf of a following ReLU (-inf..+inf: none).</summary>
    public float Low = float.NegativeInfinity, High = float.PositiveInfinity;

    /// <summary>True when the output is clamped for a following ReLU.</summary>
    public bool HasClamp => !float.IsNegativeInfinity(Low);

    /// <summary>A following max-pool whose output (and arg-max) the forward writes instead of this layer's own output.</summary>
    public LayerRun? Pool;

    /// <summary>
    /// A following max-pool whose output gradient, arg-max and output the backward reads directly (only the windows'
    /// winners carry gradient); the pool's backward and the ReLU's between them do not run.
    /// </summary>
    public LayerRun? PooledGradient;

    /// <summary>
    /// Inference: a following batch norm folded into this convolution's weights and bias (its running statistics are
    /// fixed), so the normalisation costs nothing and the ReLU and pool after it fuse as after a plain convolution.
    /// </summary>
    public LayerRun? Fold;

    /// <summary>
    /// Inference: a following average pool over the whole plane (a global-average-pool head) whose output, each channel's
    /// mean, the forward writes instead of this layer's own output.
    /// </summary>
    public LayerRun? Mean;

    /// <summary>
    /// Inference: a following convolution (after a fused ReLU or not) that this one's forward runs image by image, each
    /// image's output of this layer held in the worker's scratch instead of in memory.
    /// </summary>
    public LayerRun? Chain;

    /// <summary>
    /// Training: the following batch norm whose per-plane moments (each image's and channel's mean and sum of squared
    /// deviations) the forward takes from each group of images' output while it is in cache; the batch norm's statistics
    /// pass over its input does not run.
    /// </summary>
    public LayerRun? Moments;

    /// <summary>
    /// Training: a following pool (after a fused ReLU or not) whose backward this convolution's backward runs for each
    /// gradient chunk's images, into the worker's scratch, just before its own (Fusion rule 10); the pool's own pass
    /// does not run.
    /// </summary>
    public LayerRun? PoolBackward;

    /// <summary>
    /// Training: the following batch norm whose input gradient (this layer's output gradient) this convolution's backward
    /// forms for each gradient chunk's images, into the worker's scratch, just before its own (Fusion rule 11); the batch
    /// norm's backward takes only its sums.
    /// </summary>
    public LayerRun? NormBackward;

    /// <summary>True when the backward reads a chunk's output gradient from its scratch (rules 10 and 11).</summary>
    public bool ChunkGradient => PoolBackward is not null || NormBackward is not null;

    /// <summary>True when the forward writes <paramref name="run"/>'s output (a layer it does) rather than sharing its own.</summary>
    public bool WritesOutputOf(LayerRun run) => Pool == run || Mean == run || Chain == run;

    /// <summary>
    /// For a pool or a convolution: its backward also applies the mask of the (fused) ReLU before it, capped here (NaN: no
    /// ReLU); a convolution to its input gradient (rule 9).
    /// </summary>
    public float ReluMaskCap = float.NaN;
}

/// <summary>
/// The one owner of fusion: which layer's kernel does which neighbour's work, decided once per plan from the layer
/// types and shapes (never by timing, so a plan gives the same bits on every run). Each rule below names the pattern,
/// what moves where, and why it pays.
/// </summary>
internal static class Fusion
{
    /// <summary>Sets each run's <see cref="LayerRun.Epilogue"/>, <see cref="LayerRun.ForwardBy"/> and <see cref="LayerRun.BackwardBy"/>.</summary>
    public static void Plan(LayerRun[] all, bool training)
    {
        // 0. Convolution -> batch norm (inference): the batch norm folds into the convolution's weights and bias. The
        //    rules after this see the pair as one convolution.
        if (!training)
            for (int i = 0; i + 1 < all.Length; i++)
                if (all[i].Layer is Conv2D && all[i + 1].Layer is BatchNorm2D)
                {
                    all[i].Epilogue.Fold = all[i + 1];
                    all[i + 1].ForwardBy = all[i];
                }
        var runs = Array.FindAll(all, r => r.ForwardBy is null);
        int n = runs.Length;
        Layer L(int i) => runs[i].Layer;
        // The layer after run i's output, past a ReLU fused into run i (set by rule 1).
        int PastFusedRelu(int i) => i + 1 < n && runs[i + 1].ForwardBy == runs[i] ? i + 2 : i + 1;

        // 1. Convolution, dense layer or batch norm -> ReLU: the clamp runs in the layer's epilogue while the output is
        //    in registers; the ReLU's output is its input (no pass, no buffer).
        for (int i = 0; i + 1 < n; i++)
            if (L(i).CanFuseClamp && L(i + 1) is ReLU relu && runs[i].ForwardBy is null)
            {
                runs[i].Epilogue.Low = 0f;
                runs[i].Epilogue.High = relu.CapValue;
                runs[i + 1].ForwardBy = runs[i];
            }

        // 2. Fused ReLU -> max-pool or average pool (training): the pool's backward applies the ReLU's mask (the pooled
        //    value is the ReLU's output at the winner; an average pool reads its input, the ReLU's output), saving a pass
        //    over the largest activation.
        if (training)
            for (int i = 1; i + 1 < n; i++)
                if (runs[i].ForwardBy is not null && L(i) is ReLU relu && L(i + 1) is MaxPool2D or AvgPool2D)
                {
                    runs[i].BackwardBy = runs[i + 1];
                    runs[i + 1].Epilogue.ReluMaskCap = relu.CapValue;
                }

        // 3. Convolution -> fused ReLU -> 2x2 max-pool the convolution can pool in registers: the forward writes the pooled
        //    values and arg-max; the full-resolution output is never stored.
        for (int i = 0; i + 2 < n; i++)
            if (L(i) is Conv2D conv && conv.CanPoolInEpilogue(runs[i]) && runs[i + 1].ForwardBy == runs[i]
                && L(i + 2) is MaxPool2D maxPool && maxPool.Shape.IsTwoByTwo)
                TakePool(runs, i, forward: true, backward: false);

        // 4. Convolution -> fused ReLU -> max-pool (training), when the convolution passes a gradient to its input or
        //    reads a single channel: the convolution's backward reads the pooled gradient and arg-max directly (at most
        //    one value per window is non-zero); neither the pool's backward nor the ReLU's runs. Its gain is mostly in the
        //    input gradient, formed at the windows' winners only (the reference network's second layer: 4.7-6.0 ms a
        //    batch of 64 against 9.9 for the dense backward and the pool's). A first layer's weight gradient alone does
        //    better dense from three channels (the bottleneck network's 3x32x32->64: 7.6-8.8 ms sparse against 3.3-3.8
        //    and the pool's 1.3-1.6), and sparse on one (the reference's 1x28x28->32: even on one thread, 0.67-0.74 ms
        //    against 0.90-0.98 on two). Measured 2026-12-03 on Zen 4, batch 64.
        if (training)
            for (int i = 0; i + 2 < n; i++)
                if (L(i) is Conv2D conv && (runs[i].NeedInputGrad || conv.Shape.InC == 1)
                    && runs[i + 1].BackwardBy == runs[i + 2] && L(i + 2) is MaxPool2D)
                    TakePool(runs, i, forward: false, backward: true);

        // 5. Batch norm -> fused ReLU (-> max-pool): the normalising pass also clamps (and pools, writing the pool's output
        //    and arg-max); its backward starts from the ReLU's output gradient through the ReLU's mask (from the pooled
        //    gradient and arg-max): the ReLU and the pool run no pass of their own.
        for (int i = 0; i + 1 < n; i++)
            if (L(i) is BatchNorm2D && runs[i + 1].ForwardBy == runs[i] && L(i + 1) is ReLU)
            {
                if (training) runs[i + 1].BackwardBy = runs[i];
                if (i + 2 < n && L(i + 2) is MaxPool2D) TakePool(runs, i, forward: true, backward: training);
            }

        // 6. Convolution (-> fused ReLU) -> average pool over the whole plane (inference): the forward sums each channel's
        //    clamped outputs while they are in cache and writes only the means. The full-resolution output, the largest
        //    activation of a network with a global-average-pool head, is neither written nor read again (the bottleneck
        //    network's at batch 256: 64 MB, and the pool's pass over it took 3% of the call).
        if (!training)
            for (int i = 0; i + 1 < n; i++)
            {
                if (L(i) is not Conv2D conv || !conv.CanMeanInEpilogue || runs[i].Epilogue.Pool is not null) continue;
                int j = PastFusedRelu(i);
                if (j < n && L(j) is AvgPool2D avg && avg.Shape.IsWholePlane)
                {
                    runs[i].Epilogue.Mean = runs[j];
                    runs[j].ForwardBy = runs[i];
                }
            }

        // 7. Convolution (-> fused ReLU) -> convolution, both forwarding one image a call (blocked), inference: each image
        //    goes through both at once, the first one's output held in the worker's scratch (at most ChainFloats, so it
        //    stays in L2) instead of written to memory and read back. A bottleneck block's 64->256->64 pair at batch 256
        //    otherwise moves its 64 MB intermediate through memory twice: the network's prediction at batch 256 took
        //    179-189 ms chained against 205 layer by layer on 1 thread, 91-102 against 101-116 on 2 (Zen 4, alternated).
        if (!training)
            for (int i = 0; i + 1 < n; i++)
            {
                if (runs[i].ForwardBy is not null || L(i) is not Conv2D a || !a.ForwardsImageByImage) continue;
                var e = runs[i].Epilogue;
                if (e.Pool is not null || e.Mean is not null || a.OutputShape.Size > ChainFloats) continue;
                int j = PastFusedRelu(i);
                if (j < n && L(j) is Conv2D b && b.ForwardsImageByImage && runs[j].ForwardBy is null)
                {
                    e.Chain = runs[j];
                    runs[j].ForwardBy = runs[i];
                }
            }

        // 8. Convolution -> batch norm (training): the convolution takes the batch statistics' per-plane moments from each
        //    group of images' output while it is in cache (a Winograd group's, or one image's for the blocked kernel); the
        //    batch norm's own pass, which read the whole output from memory once more, does not run. The moments are the
        //    same function of the same planes, so the bits are the unfused plan's.
        if (training)
            for (int i = 0; i + 1 < n; i++)
                if (L(i) is Conv2D && L(i + 1) is BatchNorm2D)
                {
                    runs[i].Epilogue.Moments = runs[i + 1];
                    runs[i + 1].MomentsBy = runs[i];
                }

        // 9. Fused ReLU -> convolution (training): the convolution's backward applies the ReLU's mask to each chunk's input
        //    gradient while it is in cache (the mask reads the convolution's input, which is the ReLU's output, and the
        //    ReLU's gradient buffer is its input's); the ReLU's own backward, a pass over the gradient and the activation
        //    in memory, does not run. The bottleneck network's 256-channel ReLUs took 2.3-2.4 ms each a batch of 64.
        if (training)
            for (int i = 1; i + 1 < n; i++)
                if (L(i) is ReLU relu && runs[i].ForwardBy is not null && runs[i].BackwardBy is null
                    && L(i + 1) is Conv2D && runs[i + 1].NeedInputGrad)
                {
                    runs[i].BackwardBy = runs[i + 1];
                    runs[i + 1].Epilogue.ReluMaskCap = relu.CapValue;
                }

        // 10. Convolution (-> fused ReLU) -> pool (training), where the convolution's backward does not read the pooled
        //     gradient itself (rule 4): the convolution runs the pool's backward (with the ReLU's mask, rule 2) for each
        //     gradient chunk's images into its worker's scratch, and its own backward reads that chunk's output gradient
        //     from cache. The full-resolution output gradient is never written to memory and read back. The bottleneck
        //     network's first max-pool backward (64 x 32 x 32 an image, batch 64) took 3.0 ms and its global average pool's
        //     2.3 ms. Only where a chunk's gradient fits ChunkGradientFloats (beyond, it would not stay in cache).
        if (training)
            for (int i = 0; i + 1 < n; i++)
            {
                if (L(i) is not Conv2D conv || !runs[i].RunBackward || runs[i].Epilogue.PooledGradient is not null) continue;
                int j = PastFusedRelu(i);
                if (j < n && L(j) is Pool2D && runs[j].BackwardBy is null && runs[j].RunBackward
                    && conv.LargestChunkGradient(runs[i]) <= ChunkGradientFloats)
                {
                    runs[i].Epilogue.PoolBackward = runs[j];
                    runs[j].BackwardBy = runs[i];
                }
            }

        // 11. Convolution -> batch norm (training): the batch norm's backward takes its per-channel sums (its parameters'
        //     gradients and the coefficients of its input gradient) and the convolution forms the batch norm's input
        //     gradient for each gradient chunk's images into its worker's scratch (through the ReLU's mask and the pool's
        //     gradient of rule 5, by the batch norm's own per-plane code), then reads that chunk's output gradient from
        //     cache. The full-resolution gradient between them is neither written to memory nor read back. Under the
        //     same bound as rule 10.
        if (training)
            for (int i = 0; i + 1 < n; i++)
                if (L(i) is Conv2D conv && L(i + 1) is BatchNorm2D && runs[i].RunBackward && runs[i + 1].RunsOwnBackward
                    && runs[i].Epilogue.PooledGradient is null && runs[i].Epilogue.PoolBackward is null
                    && conv.LargestChunkGradient(runs[i]) <= ChunkGradientFloats)
                {
                    runs[i].Epilogue.NormBackward = runs[i + 1];
                    runs[i + 1].InputGradientBy = runs[i];
                }
    }

    /// <summary>The largest chunk output gradient (floats) rules 10 and 11 keep in a worker's scratch: 2 MiB.</summary>
    public const int ChunkGradientFloats = 512 * 1024;

    /// <summary>The largest intermediate (floats, one image) a chain holds in a worker's scratch: 512 KiB.</summary>
    public const int ChainFloats = 128 * 1024;

    /// <summary>Run <paramref name="i"/> does the forward and/or backward of the max-pool two layers on (after a fused ReLU).</summary>
    private static void TakePool(LayerRun[] runs, int i, bool forward, bool backward)
    {
        var pool = runs[i + 2];
        if (forward)
        {
            runs[i].Epilogue.Pool = pool;
            pool.ForwardBy = runs[i];
        }
        if (backward)
        {
            runs[i].Epilogue.PooledGradient = pool;
            pool.BackwardBy = runs[i];
            runs[i + 1].BackwardBy = runs[i];
        }
    }
}
