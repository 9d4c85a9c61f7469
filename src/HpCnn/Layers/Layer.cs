using System.Text.Json;

namespace HpCnn.Layers;

/// <summary>
/// A layer of a <see cref="HpCnn.Sequential"/> network. A layer owns its parameters and knows how to
/// run forward and backward on a batch through <see cref="LayerRun"/> (the buffers a plan gave it);
/// it calls kernels and never touches SIMD. A layer instance belongs to one model.
/// </summary>
public abstract class Layer
{
    private readonly List<Parameter> _parameters = [];

    /// <summary>Short lower-case kind ("conv2d", "maxpool2d", "relu", ...), as used in specs and messages.</summary>
    public abstract string Kind { get; }

    /// <summary>Position in the model (0-based), -1 before the layer is added.</summary>
    public int Index { get; private set; } = -1;
    public bool IsBuilt { get; private set; }
    public Shape3 InputShape { get; private set; }
    public Shape3 OutputShape { get; private set; }

    /// <summary>A frozen layer keeps its parameters: no gradient is computed for them and the optimizer skips them.</summary>
    public bool Frozen
    {
        get => _frozen;
        set { _frozen = value; Owner?.BumpStructureVersion(); }
    }
    private bool _frozen;

    /// <summary>The model this layer belongs to.</summary>
    internal Sequential? Owner { get; private set; }

    /// <summary>Weights and buffers, in a fixed order (the order of the model file).</summary>
    public IReadOnlyList<Parameter> Parameters => _parameters;

    /// <summary>Trainable values (buffers such as running statistics are not counted).</summary>
    public long ParameterCount => _parameters.Where(p => p.Trainable).Sum(p => (long)p.Count);

    /// <summary>Floating-point operations of the forward pass for one sample (multiply-add = 2).</summary>
    public virtual long FlopsPerSample => 0;

    /// <summary>
    /// Floating-point operations of training one sample in this layer's matrix products: forward, weight gradient and (when
    /// <paramref name="inputGradient"/>) input gradient. Layers without weight products count none: their work is a few
    /// passes over memory, not arithmetic (what GFLOP/s figures measure).
    /// </summary>
    public virtual long TrainingFlopsPerSample(bool inputGradient) => 0;

    /// <summary>"layer 2 (conv2d)": how messages name this layer.</summary>
    public string Label => Index >= 0 ? $"layer {Index} ({Kind})" : $"({Kind})";

    /// <summary>The parameter called <paramref name="name"/>.</summary>
    public Parameter GetParameter(string name) =>
        _parameters.FirstOrDefault(p => p.Name == name)
        ?? throw new ArgumentException($"{Label} has no parameter '{name}' (it has: {string.Join(", ", _parameters.Select(p => p.Name).DefaultIfEmpty("none"))})");

    internal void Build(Shape3 input, int index, ulong seed, Sequential owner)
    {
        if (IsBuilt) throw new InvalidOperationException($"this {Kind} layer already belongs to a model (layer {Index}); create a new layer object");
        Index = index;
        Owner = owner;
        try
        {
            OutputShape = OnBuild(input, Rng.For(seed, (ulong)index + 1));
            OutputShape.Validate($"{Label} output");
        }
        catch (ArgumentException e)
        {
            Index = -1;
            Owner = null;
            _parameters.Clear();
            throw new ArgumentException(e.Message.StartsWith("layer ") ? e.Message : $"layer {index} ({Kind}): {e.Message}", e);
        }
        InputShape = input;
        IsBuilt = true;
    }

    /// <summary>Validates the input shape, creates and initialises parameters, returns the output shape.</summary>
    protected abstract Shape3 OnBuild(Shape3 input, Rng rng);

    protected Parameter AddParameter(string name, int[] shape, bool trainable = true)
    {
        long count = 1;
        foreach (int d in shape) count *= d;
        if (count > int.MaxValue / 2) throw new ArgumentException($"{name} would hold {count} values, too many");
        Owner?.ChargeParameters(count, $"layer {Index} ({Kind}) {name}");
        var p = new Parameter(name, shape, trainable);
        _parameters.Add(p);
        return p;
    }

    /// <summary>A one-line description of the configuration ("32 filters 3x3, stride 1, padding same").</summary>
    public abstract string Describe();

    /// <summary>Writes the layer's configuration as a JSON object (kind and options): the network spec format.</summary>
    public void WriteSpec(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteString("type", Kind);
        WriteSpecFields(w);
        if (Frozen) w.WriteBoolean("frozen", true);
        w.WriteEndObject();
    }

    protected virtual void WriteSpecFields(Utf8JsonWriter w) { }

    /// <summary>
    /// Writes this built layer's inference form as standard ONNX operators fed by tensor <paramref name="x"/> and returns the
    /// output tensor; node and initializer names start with <paramref name="name"/> ("conv2d_0"). The way back (operators to
    /// layers) is OnnxImport's: it matches graph patterns (pads folded into the next node, MatMul + Add, Clip's two forms) that
    /// one layer does not see.
    /// </summary>
    internal abstract string WriteOnnx(IOnnxGraph g, string x, string name);

    // ---- execution (called by the plan) ----

    /// <summary>True when the output is the input itself (Flatten; Dropout in inference): nothing runs.</summary>
    internal virtual bool IsView(bool training) => false;

    /// <summary>True for layers whose forward can apply a clamp in its epilogue (a following ReLU fuses into it).</summary>
    internal virtual bool CanFuseClamp => false;

    /// <summary>What this layer's parameter gradients hold after its backward when the batch is split over processes (<see cref="Distributed.BatchLayout"/>).</summary>
    internal virtual RankGradient RankGradient => Parameters.Count == 0 ? RankGradient.Whole : RankGradient.Unsupported;

    /// <summary>Floats of per-plan state (arg-max indices, masks, statistics, packed weights, partial gradients).</summary>
    internal virtual long StateFloats(int batch, bool training) => 0;

    /// <summary>State floats of this layer in one plan, after fusion (default: <see cref="StateFloats(int, bool)"/>).</summary>
    internal virtual long StateFloats(LayerRun run) => StateFloats(run.Capacity, run.Training);

    /// <summary>Floats of scratch per worker thread.</summary>
    internal virtual long ScratchFloats(int batch, bool training) => 0;

    /// <summary>Floats of scratch per worker thread for this run (knows the plan's fusion decisions).</summary>
    internal virtual long ScratchFloats(LayerRun run) => ScratchFloats(run.Capacity, run.Training);

    /// <summary>Called once when a plan binds its buffers: create jobs here, not in Forward.</summary>
    internal virtual void Prepare(LayerRun run) { }

    internal abstract void Forward(LayerRun run);

    /// <summary>Writes run.InGrad (when run.NeedInputGrad) and the parameter gradients (when run.NeedParamGrad).</summary>
    internal abstract void Backward(LayerRun run);

    internal static string Dims(int h, int w) => $"{h}x{w}";
}

/// <summary>What a layer's parameter gradients hold after its backward on one rank's share of a split batch.</summary>
internal enum RankGradient
{
    /// <summary>The layer has not been made to train split over processes.</summary>
    Unsupported,
    /// <summary>Sums over this rank's gradient chunks: the plan adds the ranks' sums in the chunk tree.</summary>
    Partial,
    /// <summary>The whole batch's gradient: the layer gathered what it sums and summed it as one process does.</summary>
    Whole,
}
