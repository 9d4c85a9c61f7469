using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

/// <summary>Parameter updates over spans (PyTorch semantics: weight decay is added to the gradient).</summary>
public static class OptimizerKernels
{
    /// <summary>
    /// SGD with momentum: g' = g + wd w; v = mu v + g'; step = nesterov ? g' + mu v : v; w -= lr step.
    /// With mu == 0 the velocity is not touched (may be empty).
    /// </summary>
    public static void Sgd(Span<float> w, ReadOnlySpan<float> g, Span<float> v, float lr, float momentum, bool nesterov, float weightDecay)
    {
        int n = w.Length;
        if (g.Length < n || (momentum != 0 && v.Length < n)) throw new ArgumentException("SGD: gradient or velocity shorter than the weights");
        ref float wr = ref MemoryMarshal.GetReference(w);
        ref float gr = ref MemoryMarshal.GetReference(g);
        ref float vr = ref MemoryMarshal.GetReference(v);
        int i = 0;
        if (Engine.UseAvx2)
        {
            var vlr = Vector256.Create(lr); var vmu = Vector256.Create(momentum); var vwd = Vector256.Create(weightDecay);
            for (; i <= n - 8; i += 8)
            {
                var wv = Vector256.LoadUnsafe(ref wr, (nuint)i);
                var gv = Vector256.LoadUnsafe(ref gr, (nuint)i) + vwd * wv;
                Vector256<float> step;
                if (momentum != 0)
                {
                    var vel = vmu * Vector256.LoadUnsafe(ref vr, (nuint)i) + gv;
                    vel.StoreUnsafe(ref vr, (nuint)i);
                    step = nesterov ? gv + vmu * vel : vel;
                }
                else step = gv;
                (wv - vlr * step).StoreUnsafe(ref wr, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float gv = Unsafe.Add(ref gr, i) + weightDecay * Unsafe.Add(ref wr, i);
            float step = gv;
            if (momentum != 0)
            {
                float vel = momentum * Unsafe.Add(ref vr, i) + gv;
                Unsafe.Add(ref vr, i) = vel;
                step = nesterov ? gv + momentum * vel : vel;
            }
            Unsafe.Add(ref wr, i) -= lr * step;
        }
    }

    /// <summary>
    /// Adam: g' = g + wd w; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
    /// w -= lr (m / c1) / (sqrt(v / c2) + eps), with bias corrections c1 = 1 - b1^t, c2 = 1 - b2^t.
    /// </summary>
    public static void Adam(Span<float> w, ReadOnlySpan<float> g, Span<float> m, Span<float> v, float lr, float beta1, float beta2,
        float eps, float weightDecay, float correction1, float correction2)
    {
        int n = w.Length;
        if (g.Length < n || m.Length < n || v.Length < n) throw new ArgumentException("Adam: state shorter than the weights");
        float stepSize = lr / correction1;
        float invSqrtC2 = 1f / MathF.Sqrt(correction2);
        ref float wr = ref MemoryMarshal.GetReference(w);
        ref float gr = ref MemoryMarshal.GetReference(g);
        ref float mr = ref MemoryMarshal.GetReference(m);
        ref float vr = ref MemoryMarshal.GetReference(v);
        int i = 0;
        if (Engine.UseAvx2)
        {
            var b1 = Vector256.Create(beta1); var b2 = Vector256.Create(beta2);
            var ob1 = Vector256.Create(1 - beta1); var ob2 = Vector256.Create(1 - beta2);
            var wd = Vector256.Create(weightDecay); var ss = Vector256.Create(stepSize);
            var ic2 = Vector256.Create(invSqrtC2); var ve = Vector256.Create(eps);
            for (; i <= n - 8; i += 8)
            {
                var wv = Vector256.LoadUnsafe(ref wr, (nuint)i);
                var gv = Vector256.LoadUnsafe(ref gr, (nuint)i) + wd * wv;
                var mv = b1 * Vector256.LoadUnsafe(ref mr, (nuint)i) + ob1 * gv;
                var vv = b2 * Vector256.LoadUnsafe(ref vr, (nuint)i) + ob2 * gv * gv;
                mv.StoreUnsafe(ref mr, (nuint)i);
                vv.StoreUnsafe(ref vr, (nuint)i);
                (wv - ss * mv / (Vector256.Sqrt(vv) * ic2 + ve)).StoreUnsafe(ref wr, (nuint)i);
            }
        }
        for (; i < n; i++)
        {
            float gv = Unsafe.Add(ref gr, i) + weightDecay * Unsafe.Add(ref wr, i);
            float mv = beta1 * Unsafe.Add(ref mr, i) + (1 - beta1) * gv;
            float vv = beta2 * Unsafe.Add(ref vr, i) + (1 - beta2) * gv * gv;
            Unsafe.Add(ref mr, i) = mv;
            Unsafe.Add(ref vr, i) = vv;
            Unsafe.Add(ref wr, i) -= stepSize * mv / (MathF.Sqrt(vv) * invSqrtC2 + eps);
        }
    }
}
