using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

/// <summary>
/// Element-wise passes over <see cref="BlockedConv"/>'s pixel-major tiles (a pixel's channels contiguous). Each value is
/// computed by the same operations on every path (vector or scalar), so the bits do not depend on the vector width.
/// </summary>
internal static unsafe class BlockedEpilogue
{
    /// <summary>
    /// tile[p * pitch + c] = min(max(tile[p * pitch + c] + bias[c], low), high) for p &lt; <paramref name="pixels"/>,
    /// c &lt; <paramref name="lanes"/> (a multiple of 16); the pitch is <paramref name="lanes"/> unless given.
    /// </summary>
    public static void BiasClamp(float* tile, int pixels, int lanes, float* bias, float low, float high, int pitch = 0)
    {
        if (pitch == 0) pitch = lanes;
        if (Vector512.IsHardwareAccelerated && Engine.UseAvx512)
        {
            var lo = Vector512.Create(low);
            var hi = Vector512.Create(high);
            for (int c = 0; c < lanes; c += 16)
            {
                var b = Vector512.Load(bias + c);
                float* p = tile + c;
                for (int i = 0; i < pixels; i++, p += pitch)
                    Vector512.Store(Vector512.Min(Vector512.Max(Vector512.Load(p) + b, lo), hi), p);
            }
            return;
        }
        if (Vector256.IsHardwareAccelerated && Engine.UseAvx2)
        {
            var lo = Vector256.Create(low);
            var hi = Vector256.Create(high);
            var mode = Clamp256.ModeOf(low, high);
            for (int c = 0; c < lanes; c += 8)
            {
                var b = Vector256.Load(bias + c);
                float* p = tile + c;
                for (int i = 0; i < pixels; i++, p += pitch)
                    Vector256.Store(Clamp256.Apply(Vector256.Load(p) + b, lo, hi, mode), p);
            }
            return;
        }
        for (int i = 0; i < pixels; i++)
            for (int c = 0; c < lanes; c++)
            {
                float* p = tile + (nint)i * pitch + c;
                *p = MathF.Min(MathF.Max(*p + bias[c], low), high);
            }
    }

    /// <summary>sum[c] += rows[p * lanes + c] for p = 0, 1, ... in order (one chain per channel), c &lt; lanes (a multiple of 16).</summary>
    public static void AddRows(float* rows, int count, int lanes, float* sum)
    {
        if (Vector512.IsHardwareAccelerated && Engine.UseAvx512)
        {
            for (int c = 0; c < lanes; c += 16)
            {
                var acc = Vector512.Load(sum + c);
                float* p = rows + c;
                for (int i = 0; i < count; i++, p += lanes) acc += Vector512.Load(p);
                Vector512.Store(acc, sum + c);
            }
            return;
        }
        if (Vector256.IsHardwareAccelerated && Engine.UseAvx2)
        {
            for (int c = 0; c < lanes; c += 8)
            {
                var acc = Vector256.Load(sum + c);
                float* p = rows + c;
                for (int i = 0; i < count; i++, p += lanes) acc += Vector256.Load(p);
                Vector256.Store(acc, sum + c);
            }
            return;
        }
        for (int c = 0; c < lanes; c++)
        {
            float acc = sum[c];
            for (int i = 0; i < count; i++) acc += rows[(nint)i * lanes + c];
            sum[c] = acc;
        }
    }
}

internal static unsafe partial class BlockedPool
{
    /// <summary>
    /// 2x2 stride-2 max pooling (floor mode) of a pixel-major tile of <paramref name="rows"/> x <paramref name="cols"/>
    /// pixels whose first row is row <paramref name="row0"/> (even) of the plane: pooled[(i * cols / 2 + j) * lanes + c] and
    /// argmax (the index in the plane, row * cols + col, of the first maximum in row-major window order, as MaxPool2D's)
    /// for i &lt; rows / 2, j &lt; cols / 2.
    /// </summary>
    public static void Max2x2(float* tile, int rows, int cols, int lanes, int row0, float* pooled, int* argmax)
    {
        int ph = rows / 2, pw = cols / 2;
        for (int i = 0; i < ph; i++)
            for (int j = 0; j < pw; j++)
            {
                int y = 2 * i, x = 2 * j;
                float* a = tile + ((nint)y * cols + x) * lanes;
                float* b = a + lanes;
                float* c = a + (nint)cols * lanes;
                float* d = c + lanes;
                int ia = (row0 + y) * cols + x, ib = ia + 1, ic = ia + cols, id = ic + 1;
                float* po = pooled + ((nint)i * pw + j) * lanes;
                int* io = argmax + ((nint)i * pw + j) * lanes;
                int l = 0;
                if (Vector512.IsHardwareAccelerated && Engine.UseAvx512)
                    for (; l + 16 <= lanes; l += 16)
                    {
                        var best = Vector512.Load(a + l);
                        var idx = Vector512.Create(ia);
                        var v = Vector512.Load(b + l);
                        var m = Vector512.GreaterThan(v, best);
                        best = Vector512.ConditionalSelect(m, v, best); idx = Vector512.ConditionalSelect(m.AsInt32(), Vector512.Create(ib), idx);
                        v = Vector512.Load(c + l);
                        m = Vector512.GreaterThan(v, best);
                        best = Vector512.ConditionalSelect(m, v, best); idx = Vector512.ConditionalSelect(m.AsInt32(), Vector512.Create(ic), idx);
                        v = Vector512.Load(d + l);
                        m = Vector512.GreaterThan(v, best);
                        best = Vector512.ConditionalSelect(m, v, best); idx = Vector512.ConditionalSelect(m.AsInt32(), Vector512.Create(id), idx);
                        Vector512.Store(best, po + l);
                        Vector512.Store(idx, io + l);
                    }
                else if (Vector256.IsHardwareAccelerated && Engine.UseAvx2)
                    for (; l + 8 <= lanes; l += 8)
                    {
                        var best = Vector256.Load(a + l);
                        var idx = Vector256.Create(ia);
                        var v = Vector256.Load(b + l);
                        var m = Vector256.GreaterThan(v, best);
                        best = Vector256.ConditionalSelect(m, v, best); idx = Vector256.ConditionalSelect(m.AsInt32(), Vector256.Create(ib), idx);
                        v = Vector256.Load(c + l);
                        m = Vector256.GreaterThan(v, best);
                        best = Vector256.ConditionalSelect(m, v, best); idx = Vector256.ConditionalSelect(m.AsInt32(), Vector256.Create(ic), idx);
                        v = Vector256.Load(d + l);
                        m = Vector256.GreaterThan(v, best);
                        best = Vector256.ConditionalSelect(m, v, best); idx = Vector256.ConditionalSelect(m.AsInt32(), Vector256.Create(id), idx);
                        Vector256.Store(best, po + l);
                        Vector256.Store(idx, io + l);
                    }
                for (; l < lanes; l++)
                {
                    float best = a[l];
                    int idx = ia;
                    if (b[l] > best) { best = b[l]; idx = ib; }
                    if (c[l] > best) { best = c[l]; idx = ic; }
                    if (d[l] > best) { best = d[l]; idx = id; }
                    po[l] = best;
                    io[l] = idx;
                }
            }
    }
}
