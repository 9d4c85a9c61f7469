using System.Numerics.Tensors;
using System.Text.Json;
using HpCnn.Kernels;

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

    public override string Kind => "dense";
    public int Units { get; }
    public bool HasBias { get; }
    public int? DeclaredInFeatures { get; }
    public Initializer Init { get; }
    public int InFeatures => InputShape.C;
    public Parameter Weight => _weight!;
    public Parameter? Bias => _bias;

    public override long FlopsPerSample => 2L * Units * InFeatures;

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
        if (Init != Initializer.Default) SpecWriting.WriteInit(w, Init);
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

    internal override void Prepare(LayerRun run)
    {
        run.Jobs = new GemmJob { Scratch = run.Scratch };
    }

    internal override void Forward(LayerRun run)
    {
        var job = (GemmJob)run.Jobs!;
        var epi = new GemmEpilogue(HasBias ? BiasMode.PerColumn : BiasMode.None, _bias?.Value, 0, run.Epilogue.Low, run.Epilogue.High);
        // Y (B x Units) = X (B x In) * W^T: W is stored Units x In, so op(B) = W^T is "transposed".
        job.Set(false, true, run.Batch, Units, InFeatures, run.Input, InFeatures, new Buffer(_weight!.Value), InFeatures,
            run.Output, Units, false, epi, Items(run, Units));
        job.Run(run, FlopsPerSample * run.Batch);
    }

    internal override void Backward(LayerRun run)
    {
        var job = (GemmJob)run.Jobs!;
        if (run.NeedInputGrad)
        {
            // dX (B x In) = dY (B x Units) * W (Units x In)
            job.Set(false, false, run.Batch, InFeatures, Units, run.OutGrad, Units, new Buffer(_weight!.Value), InFeatures,
                run.InGrad, InFeatures, false, default, Items(run, InFeatures));
            job.Run(run, FlopsPerSample * run.Batch);
        }
        if (run.NeedParamGrad)
        {
            // dW (Units x In) = dY^T (Units x B) * X (B x In): dY is stored B x Units, so op(A) is "transposed".
            job.Set(true, false, Units, InFeatures, run.Batch, run.OutGrad, Units, run.Input, InFeatures,
                new Buffer(_weight!.Grad), InFeatures, false, default, Items(run, InFeatures));
            job.Run(run, FlopsPerSample * run.Batch);
            if (_bias is not null)
            {
                // db = column sums of dY, rows in order.
                var db = _bias.Grad.AsSpan();
                run.OutGrad.Slice(0, Units).CopyTo(db);
                for (int n = 1; n < run.Batch; n++) TensorPrimitives.Add(db, run.OutGrad.Slice(n * Units, Units), db);
            }
        }
    }
}
