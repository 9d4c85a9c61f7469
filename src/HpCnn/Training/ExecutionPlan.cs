using HpCnn.Distributed;
using HpCnn.Kernels;
using HpCnn.Layers;

namespace HpCnn.Training;

/// <summary>
/// Everything one (model, batch capacity, mode) needs, planned once: activation and gradient buffers, per-layer
/// state, per-worker scratch, all carved from one pinned arena; every layer's jobs. Running a batch of up to
/// <see cref="Capacity"/> images allocates nothing. A plan is used by one thread at a time; concurrent
/// inference uses one plan per caller (see <see cref="Sequential"/>).
/// </summary>
internal sealed class ExecutionPlan
{
    private readonly PlanArena _arena = new();
    private readonly int _layerCount;

    /// <param name="model">the model whose layers run</param>
    /// <param name="capacity">largest batch the plan runs</param>
    /// <param name="training">training mode (gradients, batch statistics, dropout) or inference</param>
    /// <param name="fuse">let layers do their neighbours' work in their epilogues (<see cref="Fusion"/>)</param>
    /// <param name="inputGradient">also compute d loss / d model input into Grads[0] (gradient checks, saliency)</param>
    /// <param name="pool">the threads that run the plan (default: the shared pool); per-worker scratch is sized for it</param>
    /// <param name="comm">the ranks of a distributed training run that split every batch between them (null: one process)</param>
    /// <param name="keepActivations">inference only: give every layer's output a buffer of its own, so that all of them can
    /// be read after the forward (tests of fused kernels do); by default buffers whose lifetimes do not overlap share memory</param>
    public ExecutionPlan(Sequential model, int capacity, bool training, bool fuse = true, bool inputGradient = false, WorkerPool? pool = null,
        ICommunicator? comm = null, bool keepActivations = false)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), $"batch size must be at least 1, got {capacity}");
        if (model.Layers.Count == 0) throw new InvalidOperationException("the model has no layers");
        Model = model;
        Fused = fuse;
        Capacity = capacity;
        Training = training;
        Pool = pool ?? WorkerPool.Shared;
        var layers = model.Layers;
        int n = _layerCount = layers.Count;
        StructureVersion = model.StructureVersion;
        if (comm is not null && !training) throw new ArgumentException("only training plans split batches over processes");
        Layout = new BatchLayout(comm);

        Runs = new LayerRun[n];
        for (int i = 0; i < n; i++) Runs[i] = new LayerRun(layers[i], capacity, training, Pool, Layout);

        // Which backward work is needed: parameter gradients of trainable, unfrozen layers; input gradients
        // of any layer with such a layer before it. (Fusion reads it: some fusions pay only with an input gradient.)
        bool anyTrainableBefore = training && inputGradient;
        for (int i = 0; i < n; i++)
        {
            var r = Runs[i];
            r.NeedInputGrad = training && anyTrainableBefore;
            r.NeedParamGrad = training && !layers[i].Frozen && layers[i].Parameters.Any(p => p.Trainable);
            anyTrainableBefore |= r.NeedParamGrad;
        }

        if (fuse) Fusion.Plan(Runs, training);

        // Activation buffers: index i is the input of layer i; views and fused layers share their input's buffer.
        var actAlias = new int[n + 1]; // index of the buffer's owner
        actAlias[0] = 0;
        for (int i = 0; i < n; i++)
        {
            // A layer done in an earlier layer's epilogue shares that buffer, except a pool whose output the epilogue writes.
            bool alias = (Runs[i].ForwardBy is { } by && !by.Epilogue.WritesOutputOf(Runs[i])) || layers[i].IsView(training);
            actAlias[i + 1] = alias ? actAlias[i] : i + 1;
        }
        var actHandle = training || keepActivations
            ? OwnBuffers(actAlias, index => (long)capacity * ShapeAt(index).Size)
            : SharedBuffers(actAlias, index => (long)capacity * ShapeAt(index).Size);
        var gradHandle = new int[n + 1];
        Array.Fill(gradHandle, -1);
        if (training)
            for (int i = inputGradient ? 0 : 1; i <= n; i++)
            {
                int owner = actAlias[i];
                if (gradHandle[owner] < 0) gradHandle[owner] = _arena.Reserve((long)capacity * ShapeAt(owner).Size);
            }
        var stateHandle = new int[n];
        for (int i = 0; i < n; i++) stateHandle[i] = _arena.Reserve(layers[i].StateFloats(Runs[i]));
        long scratch = 0;
        for (int i = 0; i < n; i++) scratch = Math.Max(scratch, layers[i].ScratchFloats(Runs[i]));
        var scratchHandle = new int[Pool.ThreadCount];
        for (int t = 0; t < scratchHandle.Length; t++) scratchHandle[t] = _arena.Reserve(scratch);
        Classes = model.OutputShape.Size;
        int probsHandle = _arena.Reserve((long)capacity * Classes);
        _arena.Allocate();

        Acts = new Buffer[n + 1];
        Grads = new Buffer[n + 1];
        for (int i = 0; i <= n; i++)
        {
            int owner = actAlias[i];
            int size = capacity * ShapeAt(owner).Size;
            Acts[i] = _arena.Get(actHandle[owner], size);
            if (gradHandle[owner] >= 0) Grads[i] = _arena.Get(gradHandle[owner], size);
        }
        var scratchBuffers = new Buffer[scratchHandle.Length];
        for (int t = 0; t < scratchBuffers.Length; t++) scratchBuffers[t] = _arena.Get(scratchHandle[t], (int)scratch);
        for (int i = 0; i < n; i++)
        {
            var r = Runs[i];
            r.Input = Acts[i];
            r.Output = Acts[i + 1];
            r.InGrad = Grads[i];
            r.OutGrad = Grads[i + 1];
            r.State = _arena.Get(stateHandle[i], (int)layers[i].StateFloats(r));
            r.Scratch = scratchBuffers;
            layers[i].Prepare(r);
        }
        Probs = _arena.Get(probsHandle, capacity * Classes);
        Labels = new int[capacity];
        SetBatch(capacity);

        if (training)
        {
            // Optimizer work: runs of at most 32K values of every trainable, unfrozen parameter.
            var segs = new List<(Parameter, int, int)>();
            for (int i = 0; i < n; i++)
                if (Runs[i].NeedParamGrad)
                    foreach (var p in layers[i].Parameters.Where(p => p.Trainable))
                        for (int s = 0; s < p.Count; s += 32768) segs.Add((p, s, Math.Min(32768, p.Count - s)));
            OptimizerSegments = segs.ToArray();
            UpdateJob = new OptimizerJob(this);
            if (Layout.Comm is not null)
            {
                var partial = new List<Parameter>();
                for (int i = 0; i < n; i++)
                {
                    if (!Runs[i].NeedParamGrad) continue;
                    switch (layers[i].RankGradient)
                    {
                        case RankGradient.Partial: partial.AddRange(layers[i].Parameters.Where(p => p.Trainable)); break;
                        case RankGradient.Whole: break;
                        default: throw new NotSupportedException($"layer {i} ({layers[i].Kind}) cannot train with its batch split over processes yet");
                    }
                }
                RankPartials = partial.ToArray();
                Layout.ReserveSum(RankPartials.Sum(p => p.Count));
            }
        }
        else
        {
            OptimizerSegments = [];
        }
        ArenaBytes = _arena.ReservedFloats * 4;

        Shape3 ShapeAt(int index) => index == 0 ? model.InputShape : layers[index - 1].OutputShape;
    }

    /// <summary>Arena handles of the activation buffers, one buffer per owner (index i: the input of layer i).</summary>
    private int[] OwnBuffers(int[] owner, Func<int, long> floats)
    {
        var handle = new int[owner.Length];
        for (int i = 0; i < owner.Length; i++)
            if (owner[i] == i) handle[i] = _arena.Reserve(floats(i));
        return handle;
    }

    /// <summary>
    /// Arena handles of an inference plan's activation buffers, where buffers whose lifetimes do not overlap share memory
    /// (an inference pass needs each output only until the next layer has read it). A buffer lives from the first to the
    /// last run that reads or writes it: layer i's input and output are touched when the run that does layer i's forward
    /// runs (layer i itself, or the earlier layer whose epilogue does it); the model input is written before the first
    /// run, and the last two buffers are read after the last (the output, and the scores a fused softmax head reads).
    /// Buffers are placed first-come in the smallest free slot that holds them, else the largest free slot grows, else a
    /// new slot opens. Without sharing, the plans of a 1x1 bottleneck network at 256 images outgrew the inference cache's
    /// budget and every call planned anew.
    /// </summary>
    private int[] SharedBuffers(int[] owner, Func<int, long> floats)
    {
        int count = owner.Length, n = count - 1;
        var first = new int[count];
        var last = new int[count];
        Array.Fill(first, int.MaxValue);
        Array.Fill(last, int.MinValue);
        void Touch(int index, int time)
        {
            int o = owner[index];
            first[o] = Math.Min(first[o], time);
            last[o] = Math.Max(last[o], time);
        }
        Touch(0, -1);
        for (int i = 0; i < n; i++)
        {
            var r = Runs[i];
            while (r.ForwardBy is { } by) r = by;
            int time = Array.IndexOf(Runs, r);
            Touch(i, time);
            Touch(i + 1, time);
        }
        Touch(n, n);
        if (n > 0) Touch(n - 1, n);

        var owners = Enumerable.Range(0, count).Where(i => owner[i] == i).OrderBy(i => first[i]).ThenBy(i => i).ToArray();
        var slotFloats = new List<long>();
        var slotFreeAfter = new List<int>();
        var slotOf = new int[count];
        foreach (int o in owners)
        {
            long need = floats(o);
            int fit = -1, largest = -1;
            for (int s = 0; s < slotFloats.Count; s++)
            {
                if (slotFreeAfter[s] >= first[o]) continue;
                if (slotFloats[s] >= need && (fit < 0 || slotFloats[s] < slotFloats[fit])) fit = s;
                if (largest < 0 || slotFloats[s] > slotFloats[largest]) largest = s;
            }
            int slot = fit >= 0 ? fit : largest;
            if (slot < 0)
            {
                slot = slotFloats.Count;
                slotFloats.Add(0);
                slotFreeAfter.Add(0);
            }
            slotFloats[slot] = Math.Max(slotFloats[slot], need);
            slotFreeAfter[slot] = last[o];
            slotOf[o] = slot;
        }
        var slotHandle = slotFloats.Select(f => _arena.Reserve(f)).ToArray();
        var handle = new int[count];
        foreach (int o in owners) handle[o] = slotHandle[slotOf[o]];
        return handle;
    }

    public Sequential Model { get; }
    /// <summary>Which images of each batch this process computes (all of them outside a distributed run).</summary>
    internal BatchLayout Layout { get; }
    /// <summary>Parameters whose gradients the layers leave as sums over this rank's images (see <see cref="RankGradient"/>).</summary>
    private Parameter[] RankPartials { get; } = [];
    /// <summary>Whether ReLUs run in the epilogue of the layer before them.</summary>
    public bool Fused { get; }
    public int Capacity { get; }
    public bool Training { get; }
    public WorkerPool Pool { get; }
    public LayerRun[] Runs { get; }
    /// <summary>Acts[i] is the input of layer i; Acts[n] the model output. Capacity-sized.</summary>
    public Buffer[] Acts { get; }
    /// <summary>Grads[i] = d loss / d Acts[i] (training plans).</summary>
    public Buffer[] Grads { get; }
    /// <summary>Output probabilities (or raw outputs for MSE), Batch x Classes.</summary>
    public Buffer Probs { get; }
    public int[] Labels { get; }
    public int Classes { get; }
    /// <summary>Images of the current batch this process computes (the whole batch outside a distributed run).</summary>
    public int Batch { get; private set; }
    /// <summary>Images of the current batch over all processes.</summary>
    public int GlobalBatch => Layout.GlobalBatch;
    public long StructureVersion { get; }
    public long ArenaBytes { get; }
    internal (Parameter Param, int Start, int Count)[] OptimizerSegments { get; }
    private OptimizerJob? UpdateJob { get; }

    /// <summary>True while this plan still matches the model's structure (same layers, same frozen layers).</summary>
    public bool MatchesModel => StructureVersion == Model.StructureVersion;

    /// <summary>True while this plan matches the model and runs on the shared pool (plans of the shared pool are cached).</summary>
    public bool IsCurrent => MatchesModel && ReferenceEquals(Pool, WorkerPool.Shared);

    /// <summary>Tells every layer how many training steps came before this batch (dropout masks depend on it).</summary>
    public void SetStep(long step)
    {
        foreach (var r in Runs) r.Step = step;
    }

    /// <summary>
    /// Sets the size of the next batch, over all processes in a distributed run (this process then computes
    /// <see cref="Batch"/> of its images, from <see cref="BatchLayout.Offset"/>).
    /// </summary>
    public void SetBatch(int batch)
    {
        if (batch < 1 || batch > Capacity) throw new ArgumentOutOfRangeException(nameof(batch), $"batch of {batch} for a plan of capacity {Capacity}");
        Layout.SetBatch(batch);
        Batch = Layout.Count;
        foreach (var r in Runs) r.Batch = Batch;
    }

    /// <summary>The input of the current batch (Batch x input size).</summary>
    public Span<float> Input => Acts[0].Slice(0, Batch * Model.InputShape.Size);

    /// <summary>The model output of the current batch.</summary>
    public Span<float> Output => Acts[_layerCount].Slice(0, Batch * Classes);

    public void Forward() => ForwardThrough(Runs.Length - 1);

    /// <summary>Forward through layers [0, last] only.</summary>
    public void ForwardThrough(int last)
    {
        for (int i = 0; i <= last; i++)
        {
            var r = Runs[i];
            if (!r.RunsOwnForward) continue;
            r.Layer.Forward(r);
        }
    }

    /// <summary>Backward from layer <paramref name="from"/> down; Grads[from + 1] must hold the loss gradient.</summary>
    public void Backward(int from)
    {
        for (int i = from; i >= 0; i--)
        {
            var r = Runs[i];
            if (!r.RunsOwnBackward) continue;
            r.Layer.Backward(r);
        }
    }

    /// <summary>True when the loss reads the input of the model's final Softmax/Sigmoid layer and fuses its gradient.</summary>
    internal static bool HasFusedHead(Sequential model) => model.Layers.Count > 0 && model.Loss is LossKind lk &&
        ((lk == LossKind.CrossEntropy && model.Layers[^1] is Softmax) || (lk == LossKind.BinaryCrossEntropy && model.Layers[^1] is Sigmoid));

    /// <summary>
    /// Loss of this process's images of the current batch (their mean; the gradient is scaled for the whole batch) (the
    /// model must be compiled): writes the probabilities (raw outputs for MSE) to
    /// <see cref="Probs"/> and, with <paramref name="withGrad"/>, d loss / d scores to the gradient buffer the backward
    /// pass starts from.
    /// </summary>
    public double ComputeLoss(bool withGrad, out int correct)
    {
        bool fused = HasFusedHead(Model);
        int b = Batch, k = Classes, rows = GlobalBatch;
        int idx = fused ? _layerCount - 1 : _layerCount;
        var z = Acts[idx].Slice(0, b * k);
        var grad = withGrad ? Grads[idx].Slice(0, b * k) : default;
        var probs = Probs.Slice(0, b * k);
        var labels = Labels.AsSpan(0, b);
        double loss;
        switch (Model.Loss!.Value)
        {
            case LossKind.CrossEntropy:
                loss = LossKernels.SoftmaxCrossEntropy(z, labels, probs, grad, b, k, rows);
                break;
            case LossKind.BinaryCrossEntropy:
                loss = LossKernels.BinaryCrossEntropy(z, labels, probs, grad, b, rows);
                break;
            default:
                loss = LossKernels.MeanSquaredError(z, labels, grad, b, k, rows);
                z.CopyTo(probs);
                break;
        }
        correct = LossKernels.CountCorrect(probs, labels, b, k, 0.5f);
        return loss;
    }

    /// <summary>One training step on the batch in <see cref="Input"/> / <see cref="Labels"/>: forward, loss, backward, update.</summary>
    public double TrainStep(Optimizer optimizer, float lr, out int correct)
    {
        SetStep(optimizer.Steps);
        Forward();
        double loss = ComputeLoss(withGrad: true, out correct);
        Backward(HasFusedHead(Model) ? _layerCount - 2 : _layerCount - 1);
        SumRankPartials();
        UpdateParameters(optimizer, lr);
        return loss;
    }

    /// <summary>In a split batch: the gradients each rank summed over its own images, added over the ranks (one collective for all).</summary>
    private void SumRankPartials()
    {
        if (!Layout.Split || RankPartials.Length == 0) return;
        int total = 0;
        foreach (var p in RankPartials) total += p.Count;
        var mine = Layout.PartialSum(total);
        int at = 0;
        foreach (var p in RankPartials) { p.Grad.CopyTo(mine.Slice(at)); at += p.Count; }
        var sum = Layout.SumAcrossRanks(total);
        at = 0;
        foreach (var p in RankPartials) { sum.Slice(at, p.Count).CopyTo(p.Grad); at += p.Count; }
    }

    /// <summary>Applies one optimizer step to every trainable, unfrozen parameter.</summary>
    public void UpdateParameters(Optimizer optimizer, float lr)
    {
        optimizer.BeginStep();
        var job = UpdateJob!;
        job.Optimizer = optimizer;
        job.LearningRate = lr;
        var segs = OptimizerSegments;
        if (segs.Length == 0) return;
        long total = 0;
        for (int i = 0; i < segs.Length; i++)
        {
            total += segs[i].Count;
            optimizer.EnsureState(segs[i].Param); // on this thread: segments of a parameter share its state
        }
        if (Pool.ThreadCount == 1 || total < 100_000) for (int i = 0; i < segs.Length; i++) job.Execute(i, 0);
        else Pool.Run(job, segs.Length);
        for (int i = 0; i < Runs.Length; i++)
        {
            if (!Runs[i].NeedParamGrad) continue;
            var ps = Runs[i].Layer.Parameters;
            for (int j = 0; j < ps.Count; j++) if (ps[j].Trainable) ps[j].MarkChanged();
        }
    }

    private sealed class OptimizerJob(ExecutionPlan plan) : ParallelJob
    {
        public Optimizer? Optimizer;
        public float LearningRate;

        public override void Execute(int item, int worker)
        {
            var (p, s, c) = plan.OptimizerSegments[item];
            Optimizer!.Update(p, s, c, LearningRate);
        }
    }
}
