using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.Layers;

/// <summary>
/// Finite-difference gradient checks (tiny-dnn's gradient_check): the analytic gradients a training plan
/// computes are compared with central differences of a scalar objective re-evaluated by forward passes.
/// Objectives are summed in double; the float32 forward limits the accuracy to about 1e-4 relative.
/// </summary>
internal static class GradientCheck
{
    /// <summary>
    /// Relative tolerance of a gradient check. With eps 1e-2..1e-3 the float32 forward passes agree with the
    /// analytic gradients to about 1e-3 on every kernel path (AVX2, scalar, no intrinsics); 3e-3 still fails
    /// a gradient that is 1% off.
    /// </summary>
    public const double DefaultTolerance = 3e-3;

    /// <summary>Analytic and numeric gradients of one tensor (the input, or one parameter).</summary>
    internal sealed record TensorGradients(string Name, double[] Analytic, double[] Numeric, int[] Indices);

    /// <summary>Uniform values in [lo, hi).</summary>
    public static float[] Uniform(Random rng, int count, double lo, double hi)
    {
        var a = new float[count];
        for (int i = 0; i < count; i++) a[i] = (float)(lo + (hi - lo) * rng.NextDouble());
        return a;
    }

    /// <summary>Values of magnitude in [minAbs, maxAbs] with a random sign: clear of a kink at zero.</summary>
    public static float[] AwayFromZero(Random rng, int count, double minAbs, double maxAbs)
    {
        var a = new float[count];
        for (int i = 0; i < count; i++)
        {
            double m = minAbs + (maxAbs - minAbs) * rng.NextDouble();
            a[i] = (float)(rng.Next(2) == 0 ? -m : m);
        }
        return a;
    }

    /// <summary>
    /// The output of layer <paramref name="layerIndex"/> in a fresh unfused training plan: a convolution's or
    /// dense layer's pre-activation values, used to keep inputs away from ReLU kinks.
    /// </summary>
    public static float[] LayerOutputInTraining(Sequential model, int batch, float[] input, int layerIndex)
    {
        var plan = new ExecutionPlan(model, batch, training: true, fuse: false);
        plan.SetBatch(batch);
        input.CopyTo(plan.Input);
        plan.ForwardThrough(layerIndex);
        return plan.Acts[layerIndex + 1].Slice(0, batch * model.Layers[layerIndex].OutputShape.Size).ToArray();
    }

    /// <summary>Smallest distance of any value to a kink (0, and the cap when finite).</summary>
    public static double DistanceToKinks(ReadOnlySpan<float> values, float cap = float.PositiveInfinity)
    {
        double d = double.PositiveInfinity;
        foreach (float v in values)
        {
            d = Math.Min(d, Math.Abs(v));
            if (float.IsFinite(cap)) d = Math.Min(d, Math.Abs(v - cap));
        }
        return d;
    }

    /// <summary>
    /// Draws inputs until the outputs of the given layers are at least <paramref name="margin"/> away from
    /// the ReLU kinks (a perturbation of eps must never switch a unit on or off).
    /// </summary>
    public static float[] InputClearOfKinks(Sequential model, int batch, Random rng, double lo, double hi, double margin,
        params (int Layer, float Cap)[] preActivations)
    {
        int size = batch * model.InputShape.Size;
        for (int attempt = 0; attempt < 500; attempt++)
        {
            var x = Uniform(rng, size, lo, hi);
            bool clear = true;
            foreach (var (layer, cap) in preActivations)
                if (DistanceToKinks(LayerOutputInTraining(model, batch, x, layer), cap) < margin) { clear = false; break; }
            if (clear) return x;
        }
        throw new InvalidOperationException("no input clear of the ReLU kinks found: lower the margin or shrink the layer");
    }

    /// <summary>
    /// Gradients of L = sum(output * R) (R fixed, random in [-1, 1]) with respect to the model input and every
    /// trainable parameter of unfrozen layers: analytic (training plan with input gradient, R written into
    /// Grads[n], Backward(n - 1)) and central differences. Every forward starts from the same step counters,
    /// so dropout masks stay fixed. At most <paramref name="maxPerTensor"/> entries per tensor are checked
    /// (first, last and a random sample).
    /// </summary>
    public static List<TensorGradients> Objective(Sequential model, int batch, float[] input, bool fuse = true, double eps = 1e-2,
        int seed = 1, int maxPerTensor = int.MaxValue)
    {
        var plan = new ExecutionPlan(model, batch, training: true, fuse: fuse, inputGradient: true);
        plan.SetBatch(batch);
        int n = model.Layers.Count;
        int outLen = batch * model.OutputShape.Size;
        var rng = new Random(seed);
        var r = Uniform(rng, outLen, -1, 1);
        var steps = plan.Runs.Select(run => run.Step).ToArray();
        var x = (float[])input.Clone();

        double Forward()
        {
            for (int i = 0; i < steps.Length; i++) plan.Runs[i].Step = steps[i];
            x.CopyTo(plan.Input);
            plan.Forward();
            var o = plan.Output;
            double s = 0;
            for (int j = 0; j < outLen; j++) s += (double)o[j] * r[j];
            return s;
        }

        Forward();
        r.CopyTo(plan.Grads[n].Slice(0, outLen));
        plan.Backward(n - 1);
        var inputGrad = ToDouble(plan.Grads[0].Slice(0, x.Length));
        var parameters = TrainableParameters(model);
        var paramGrads = parameters.Select(p => ToDouble(p.Grad)).ToList();

        var result = new List<TensorGradients> { Numeric("input", x, null, inputGrad, Forward, eps, rng, maxPerTensor) };
        for (int i = 0; i < parameters.Count; i++)
            result.Add(Numeric(parameters[i].Name, parameters[i].Value, parameters[i], paramGrads[i], Forward, eps, rng, maxPerTensor));
        return result;
    }

    /// <summary>Trainable parameters of unfrozen layers, named "layer i (kind).name".</summary>
    public static List<Parameter> TrainableParameters(Sequential model) =>
        model.Layers.Where(l => !l.Frozen).SelectMany(l => l.Parameters.Where(p => p.Trainable)).ToList();

    /// <summary>Central differences of <paramref name="f"/> over entries of <paramref name="values"/>.</summary>
    public static TensorGradients Numeric(string name, float[] values, Parameter? owner, double[] analytic, Func<double> f,
        double eps, Random rng, int maxPerTensor)
    {
        var indices = PickIndices(values.Length, maxPerTensor, rng);
        var numeric = new double[indices.Length];
        var picked = new double[indices.Length];
        for (int k = 0; k < indices.Length; k++)
        {
            int i = indices[k];
            float orig = values[i];
            float up = (float)(orig + eps), down = (float)(orig - eps);
            values[i] = up; owner?.MarkChanged();
            double fp = f();
            values[i] = down; owner?.MarkChanged();
            double fm = f();
            values[i] = orig; owner?.MarkChanged();
            numeric[k] = (fp - fm) / ((double)up - down);
            picked[k] = analytic[i];
        }
        return new TensorGradients(name, picked, numeric, indices);
    }

    private static int[] PickIndices(int count, int max, Random rng)
    {
        if (count <= max) return Enumerable.Range(0, count).ToArray();
        var set = new SortedSet<int> { 0, count - 1 };
        while (set.Count < max) set.Add(rng.Next(count));
        return set.ToArray();
    }

    public static double[] ToDouble(ReadOnlySpan<float> a)
    {
        var d = new double[a.Length];
        for (int i = 0; i < a.Length; i++) d[i] = a[i];
        return d;
    }

    /// <summary>
    /// Null when the analytic gradient matches the numeric one, else a description of the worst entry.
    /// Each entry must satisfy |a - n| &lt;= tol max(|a|, |n|) + 2e-3 max|n|, the whole tensor a relative L2
    /// error below tol, and the numeric gradient must not be all zero (a check on zeros proves nothing).
    /// </summary>
    public static string? Mismatch(TensorGradients g, double tol)
    {
        double maxAbs = 0, diff2 = 0, ref2 = 0;
        for (int k = 0; k < g.Numeric.Length; k++)
        {
            maxAbs = Math.Max(maxAbs, Math.Abs(g.Numeric[k]));
            double d = g.Analytic[k] - g.Numeric[k];
            diff2 += d * d;
            ref2 += g.Numeric[k] * g.Numeric[k] + g.Analytic[k] * g.Analytic[k];
        }
        if (maxAbs < 1e-4) return $"{g.Name}: the numeric gradient is (almost) zero everywhere (max {maxAbs:G3}): the check proves nothing";
        for (int k = 0; k < g.Numeric.Length; k++)
        {
            double a = g.Analytic[k], num = g.Numeric[k];
            if (!(Math.Abs(a - num) <= tol * Math.Max(Math.Abs(a), Math.Abs(num)) + 2e-3 * maxAbs))
                return $"{g.Name}[{g.Indices[k]}]: analytic {a:G6}, numeric {num:G6} (max |numeric| {maxAbs:G3})";
        }
        double rel = Math.Sqrt(diff2 / (ref2 / 2));
        if (!(rel < tol)) return $"{g.Name}: relative L2 error {rel:G3} >= {tol}";
        return null;
    }

    public static void AssertMatch(IEnumerable<TensorGradients> grads, double tol = DefaultTolerance)
    {
        var errors = grads.Select(g => Mismatch(g, tol)).Where(e => e is not null).ToList();
        Assert.That(errors, Is.Empty, string.Join("\n", errors));
    }
}
