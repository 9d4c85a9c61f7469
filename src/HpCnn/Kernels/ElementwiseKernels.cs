using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

/// <summary>An element-wise operator: the scalar <c>Invoke(float)</c> is the reference for the vector one.</summary>
public interface IUnaryOperator
{
    float Invoke(float x);
    Vector256<float> Invoke(Vector256<float> x);
}

/// <summary>
/// An element-wise operator with a 16-lane form too (<see cref="ElementwiseKernels.MapWide{TOp}(ReadOnlySpan{float}, Span{float}, TOp)"/>
/// uses it where the CPU has AVX-512): the same operations per element as the scalar form, so the same bits.
/// </summary>
public interface IWideUnaryOperator : IUnaryOperator
{
    Vector512<float> Invoke(Vector512<float> x);

    /// <summary>
    /// Two 8-lane vectors at once, each with the 8-lane form's operations, the two chains interleaved: these operators are
    /// long dependency chains of two-uop ymm operations on AMD Zen 1, whose 36-entry FP scheduler saw too little of a
    /// second vector to overlap it with the first (tanh at about 3.5 ns an element, in L1).
    /// </summary>
    void Invoke(Vector256<float> x0, Vector256<float> x1, out Vector256<float> y0, out Vector256<float> y1);
}

/// <summary>An element-wise operator of two inputs (e.g. an activation's output and the output gradient).</summary>
public interface IBinaryOperator
{
    float Invoke(float x, float y);
    Vector256<float> Invoke(Vector256<float> x, Vector256<float> y);
}

/// <summary>One generic loop per arity that runs an operator struct over spans, handling the tail once.</summary>
public static class ElementwiseKernels
{
    /// <summary>y[i] = op(x[i]). x and y may be the same span.</summary>
    public static void Map<TOp>(ReadOnlySpan<float> x, Span<float> y, TOp op) where TOp : struct, IUnaryOperator
    {
        if (y.Length < x.Length) ThrowShort(y.Length, x.Length);
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        int i = 0, n = x.Length;
        if (Engine.UseAvx2)
            for (; i <= n - 8; i += 8)
                op.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        for (; i < n; i++) Unsafe.Add(ref yr, i) = op.Invoke(Unsafe.Add(ref xr, i));
    }

    /// <summary>
    /// <see cref="Map{TOp}(ReadOnlySpan{float}, Span{float}, TOp)"/> 16 elements at a time where the CPU has AVX-512
    /// (then one 8-element step, then scalars): the long operators (e^x, sigmoid, tanh) issue half the instructions per
    /// element. Every element's bits are those of the scalar operator on every path.
    /// </summary>
    public static void MapWide<TOp>(ReadOnlySpan<float> x, Span<float> y, TOp op) where TOp : struct, IWideUnaryOperator
    {
        if (y.Length < x.Length) ThrowShort(y.Length, x.Length);
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        int i = 0, n = x.Length;
        if (Engine.UseAvx512)
            for (; i <= n - 16; i += 16)
                op.Invoke(Vector512.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        if (Engine.UseAvx2)
        {
            for (; i <= n - 16; i += 16)
            {
                op.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i), Vector256.LoadUnsafe(ref xr, (nuint)i + 8), out var y0, out var y1);
                y0.StoreUnsafe(ref yr, (nuint)i);
                y1.StoreUnsafe(ref yr, (nuint)i + 8);
            }
            for (; i <= n - 8; i += 8)
                op.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i)).StoreUnsafe(ref yr, (nuint)i);
        }
        for (; i < n; i++) Unsafe.Add(ref yr, i) = op.Invoke(Unsafe.Add(ref xr, i));
    }

    /// <summary>z[i] = op(x[i], y[i]). z may alias x or y.</summary>
    public static void Map<TOp>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> z, TOp op) where TOp : struct, IBinaryOperator
    {
        if (y.Length < x.Length || z.Length < x.Length) ThrowShort(Math.Min(y.Length, z.Length), x.Length);
        ref float xr = ref MemoryMarshal.GetReference(x);
        ref float yr = ref MemoryMarshal.GetReference(y);
        ref float zr = ref MemoryMarshal.GetReference(z);
        int i = 0, n = x.Length;
        if (Engine.UseAvx2)
            for (; i <= n - 8; i += 8)
                op.Invoke(Vector256.LoadUnsafe(ref xr, (nuint)i), Vector256.LoadUnsafe(ref yr, (nuint)i)).StoreUnsafe(ref zr, (nuint)i);
        for (; i < n; i++) Unsafe.Add(ref zr, i) = op.Invoke(Unsafe.Add(ref xr, i), Unsafe.Add(ref yr, i));
    }

    /// <summary>Reference loop: the scalar operator alone (what the vector loop is tested against).</summary>
    public static void MapScalar<TOp>(ReadOnlySpan<float> x, Span<float> y, TOp op) where TOp : struct, IUnaryOperator
    {
        for (int i = 0; i < x.Length; i++) y[i] = op.Invoke(x[i]);
    }

    /// <summary>Reference loop of the binary operator.</summary>
    public static void MapScalar<TOp>(ReadOnlySpan<float> x, ReadOnlySpan<float> y, Span<float> z, TOp op) where TOp : struct, IBinaryOperator
    {
        for (int i = 0; i < x.Length; i++) z[i] = op.Invoke(x[i], y[i]);
    }

    // Out of line so that the generic loops stay small enough to inline their operator.
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowShort(int have, int need) =>
        throw new ArgumentException($"destination or operand holds {have} values, source {need}");
}

internal static class VectorMath
{
    /// <summary>dst += src.</summary>
    public static void AddInPlace(Span<float> dst, ReadOnlySpan<float> src) =>
        System.Numerics.Tensors.TensorPrimitives.Add(dst, src, dst);
}
