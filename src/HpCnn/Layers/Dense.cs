using System.Numerics.Tensors;
using System.Text.Json;
using HpCnn.IO;
using HpCnn.Kernels;
using static HpCnn.Layers.OnnxAttribute;

namespace HpCnn.Layers;

/// <summary>
/// Fully connected layer: y = x W^T + b, W is Units x InFeatures (PyTorch layout). Needs a flat input
/// (add <see cref="Flatten"/> after convolutions).
/// </summary>
public sealed class Dense : Layer
{
    private Parameter? _weight, _bias;

    public Dense(int units, bool bias = true, int? inFeatures = null, Initializer? init = null)
    {
        if (units <= 0) throw new ArgumentOutOfRangeException(nameof(units), $"dense: units must be positive, got {units}");
        if (inFeatures is <= 0) throw new ArgumentOutOfRangeException(nameof(inFeatures), $"dense: input features must be positive, got {inFeatures}");
        Units = units;
        HasBias = bias;
        DeclaredInFeatures = inFeatures;
        Init = init ?? Initializer.Default;
    }

    /// <summary>The spec's "dense": units required; bias and the default initialiser unless given.</summary>
    public static readonly LayerType Type = new("dense", ["linear"], ["units", "bias", "in_features", "init", "init_std"],
        n => new Dense(n.Required("units").Int(1, 1 << 24), n.Optional("bias")?.Bool() ?? true, n.Optional("in_features")?.Int(1, 1 << 28), SpecFields.ReadInit(n)));

    public override string Kind => Type.Name;
    public int Units { get; }
    public bool HasBias { get; }
    public int? DeclaredInFeatures { get; }
    public Initializer Init { get; }
    public int InFeatures => InputShape.C;
    public Parameter Weight => _weight!;
    public Parameter? Bias => _bias;

    public override long FlopsPerSample => 2L * Units * InFeatures;
    public override long TrainingFlopsPerSample(bool inputGradient) => FlopsPerSample * (inputGradient ? 3 : 2);

    protected override Shape3 OnBuild(Shape3 input, Rng rng)
    {
        if (!input.IsFlat)
            throw new ArgumentException($"expected a flat input, got {input} (add a flatten layer before dense)");
        if (DeclaredInFeatures is int f && f != input.C)
            throw new ArgumentException($"expected input {f}, got {input.C}");
        _weight = AddParameter("weight", [Units, input.C]);
        if (HasBias) _bias = AddParameter("bias", [Units]);
        Init.Fill(_weight.Value, _bias is null ? default : _bias.Value, input.C, Units, rng);
        return Shape3.Flat(Units);
    }

    public override string Describe() => $"{Units} units{(HasBias ? "" : ", no bias")}";

    protected override void WriteSpecFields(Utf8JsonWriter w)
    {
        w.WriteNumber("units", Units);
        if (!HasBias) w.WriteBoolean("bias", false);
        if (DeclaredInFeatures is int f) w.WriteNumber("in_features", f);
        if (Init != Initializer.Default) SpecFields.WriteInit(w, Init);
    }

    // Gemm with transB: the weight stays [units, in_features] as the engine and PyTorch hold it.
    internal override string WriteOnnx(IOnnxGraph g, string x, string name)
    {
        x = g.AsFlat(x, name);
        var inputs = new List<string> { x, g.Floats(name + ".weight", Weight.Value, Units, InFeatures) };
        if (Bias is { } b) inputs.Add(g.Floats(name + ".bias", b.Value, Units));
        return g.Node("Gemm", name, [.. inputs], Float("alpha", 1), Float("beta", 1), Int("transA", 0), Int("transB", 1));
    }

    internal override bool CanFuseClamp => true;

    private static int Items(LayerRun run, int n) => Math.Max(1, Math.Min(run.Pool.ThreadCount, (n + Sgemm.NR - 1) / Sgemm.NR));

    /// <summary>Whole-matrix workspace of the forward GEMM and, in training, the two backward ones: an upper bound for any split.</summary>
    internal override long ScratchFloats(int batch, bool training)
    {
        long n = Sgemm.WorkspaceSize(batch, Units, InFeatures);
        if (training)
        {
            n = Math.Max(n, Sgemm.WorkspaceSize(batch, InFeatures, Units));
            n = Math.Max(n, Sgemm.WorkspaceSize(Units, InFeatures, batch));
        }
        return n;
    }

    /// <summary>
    /// Inference plans whose every batch has fewer rows than a GEMM register strip keep W^T (In x Units): those products
    /// read op(B) by rows, and transposing 128 x 3136 weights on every call cost more than the product. Same bits: the
    /// row path sums the same products in the same order from either layout.
    /// </summary>
    private static bool KeepsTransposed(LayerRun run) => !run.Training && run.Capacity < Sgemm.MR;

    internal override long StateFloats(LayerRun run) =>
        KeepsTransposed(run) ? (long)Units * InFeatures : GathersRows(run) ? (long)run.Capacity * (InFeatures + Units) : 0;

    /// <summary>
    /// Training split over processes: the weight gradient sums over the batch's rows inside one GEMM, in an order the
    /// split would change, so the backward gathers every rank's input and output-gradient rows (into the state); each
    /// rank then forms its share of the gradient's rows over the whole batch as one process does, and the ranks
    /// exchange them.
    /// </summary>
    private static bool GathersRows(LayerRun run) => run.Training && run.Layout.Comm is not null;

    internal override RankGradient RankGradient => RankGradient.Whole;

    private sealed class Jobs
    {
        public readonly GemmJob Gemm = new();
        public long TransposedVersion = -1;
    }

    internal override void Prepare(LayerRun run)
    {
        var jobs = new Jobs();
        jobs.Gemm.Scratch = run.Scratch;
        run.Jobs = jobs;
    }

    private static GemmJob Gemm(LayerRun run) => ((Jobs)run.Jobs!).Gemm;

    internal override unsafe void Forward(LayerRun run)
    {
        var jobs = (Jobs)run.Jobs!;
        var epi = new GemmEpilogue(HasBias ? BiasMode.PerColumn : BiasMode.None, _bias?.Value, 0, run.Epilogue.Low, run.Epilogue.High);
        if (KeepsTransposed(run))
        {
            if (jobs.TransposedVersion != _weight!.Version)
            {
                fixed (float* w = _weight.Value, t = run.State.Span)
                    BlockedTiles.Transpose(w, InFeatures, Units, InFeatures, t, Units);
                jobs.TransposedVersion = _weight.Version;
            }
            jobs.Gemm.Set(false, false, run.Batch, Units, InFeatures, run.Input, InFeatures, run.State, Units,
                run.Output, Units, false, epi, Items(run, Units));
        }
        else
        {
            // Y (B x Units) = X (B x In) * W^T: W is stored Units x In, so op(B) = W^T is "transposed".
            jobs.Gemm.Set(false, true, run.Batch, Units, InFeatures, run.Input, InFeatures, new Buffer(_weight!.Value), InFeatures,
                run.Output, Units, false, epi, Items(run, Units));
        }
        jobs.Gemm.Run(run, FlopsPerSample * run.Batch);
    }

    internal override void Backward(LayerRun run)
    {
        var job = Gemm(run);
        if (run.NeedInputGrad)
        {
            // dX (B x In) = dY (B x Units) * W (Units x In)
            job.Set(false, false, run.Batch, InFeatures, Units, run.OutGrad, Units, new Buffer(_weight!.Value), InFeatures,
                run.InGrad, InFeatures, false, default, Items(run, InFeatures));
            job.Run(run, FlopsPerSample * run.Batch);
        }
        if (run.NeedParamGrad)
        {
            Buffer x = run.Input, dy = run.OutGrad;
            int rows = run.Batch, u0 = 0, u1 = Units;
            var layout = run.Layout;
            if (layout.Split)
            {
                rows = layout.GlobalBatch;
                x = run.State.Sub(0, rows * InFeatures);
                dy = run.State.Sub(run.Capacity * InFeatures, rows * Units);
                run.Input.Slice(0, run.Batch * InFeatures).CopyTo(x.Slice(layout.Offset * InFeatures, run.Batch * InFeatures));
                run.OutGrad.Slice(0, run.Batch * Units).CopyTo(dy.Slice(layout.Offset * Units, run.Batch * Units));
                layout.GatherRows(x.Span, InFeatures);
                layout.GatherRows(dy.Span, Units);
                // Each rank forms its share of the units' weight-gradient rows over the whole batch (splitting a GEMM's
                // output never splits a sum), and the ranks exchange them.
                (u0, u1) = layout.Share(Units);
            }
            if (u1 > u0)
            {
                // dW (Units x In) = dY^T (Units x B) * X (B x In): dY is stored B x Units, so op(A) is "transposed"; rows
                // u0.. of dW are columns u0.. of dY.
                job.Set(true, false, u1 - u0, InFeatures, rows, dy.Sub(u0, rows * Units - u0), Units, x, InFeatures,
                    new Buffer(_weight!.Grad).Sub(u0 * InFeatures, (u1 - u0) * InFeatures), InFeatures, false, default, Items(run, InFeatures));
                job.Run(run, (long)(u1 - u0) * InFeatures * 2 * rows);
            }
            layout.GatherParts(_weight!.Grad.AsSpan(), Units, InFeatures);
            if (_bias is not null)
            {
                // db = column sums of dY, rows in order.
                var db = _bias.Grad.AsSpan();
                dy.Slice(0, Units).CopyTo(db);
                for (int n = 1; n < rows; n++) TensorPrimitives.Add(db, dy.Slice(n * Units, Units), db);
            }
        }
    }
}
