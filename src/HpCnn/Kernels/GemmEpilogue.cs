using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

/// <summary>Where a bias vector applies in <c>C (m x n)</c>.</summary>
public enum BiasMode { None, PerRow, PerColumn }

/// <summary>
/// What a GEMM or convolution does to each output tile after its last k block: add a bias (per row, e.g.
/// per output channel; or per column, e.g. per dense unit) and clamp to [Low, High] (ReLU is [0, +inf),
/// a capped ReLU [0, cap]). Applying it while the tile is hot saves a pass over memory.
/// </summary>
public readonly struct GemmEpilogue
{
    public readonly BiasMode Bias;
    public readonly float[]? BiasValues;
    public readonly int BiasOffset;
    public readonly float Low;
    public readonly float High;
    private readonly bool _active;

    public GemmEpilogue(BiasMode bias, float[]? biasValues, int biasOffset, float low, float high)
    {
        if (bias != BiasMode.None && biasValues is null) throw new ArgumentNullException(nameof(biasValues));
        Bias = bias; BiasValues = biasValues; BiasOffset = biasOffset; Low = low; High = high;
        _active = bias != BiasMode.None || !float.IsNegativeInfinity(low) || !float.IsPositiveInfinity(high);
    }

    /// <summary>Clamp only (no bias).</summary>
    public static GemmEpilogue Clamp(float low, float high) => new(BiasMode.None, null, 0, low, high);

    public bool IsActive => _active;

    /// <summary>The epilogue of the columns from <paramref name="j0"/> on (a per-column bias moves with them).</summary>
    public GemmEpilogue FromColumn(int j0) =>
        Bias == BiasMode.PerColumn ? new GemmEpilogue(Bias, BiasValues, BiasOffset + j0, Low, High) : this;

    /// <summary>The epilogue of the rows from <paramref name="i0"/> on (a per-row bias moves with them).</summary>
    public GemmEpilogue FromRow(int i0) =>
        Bias == BiasMode.PerRow ? new GemmEpilogue(Bias, BiasValues, BiasOffset + i0, Low, High) : this;

    /// <summary>Applies the epilogue to <paramref name="row"/>: row index <paramref name="row0"/>, columns from <paramref name="col0"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Apply(Span<float> row, int row0, int col0)
    {
        if (Bias == BiasMode.PerRow)
            ApplyScalarBias(row, BiasValues![BiasOffset + row0]);
        else if (Bias == BiasMode.PerColumn)
            ApplyVectorBias(row, new ReadOnlySpan<float>(BiasValues, BiasOffset + col0, row.Length));
        else
            ApplyScalarBias(row, 0f);
    }

    private void ApplyScalarBias(Span<float> row, float bias)
    {
        int i = 0;
        ref float r = ref MemoryMarshal.GetReference(row);
        if (Engine.UseAvx2)
        {
            var vb = Vector256.Create(bias);
            var lo = Vector256.Create(Low);
            var hi = Vector256.Create(High);
            var mode = Clamp256.ModeOf(Low, High);
            for (; i <= row.Length - 8; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref r, (nuint)i) + vb;
                Clamp256.Apply(v, lo, hi, mode).StoreUnsafe(ref r, (nuint)i);
            }
        }
        for (; i < row.Length; i++)
            Unsafe.Add(ref r, i) = MathF.Min(MathF.Max(Unsafe.Add(ref r, i) + bias, Low), High);
    }

    private void ApplyVectorBias(Span<float> row, ReadOnlySpan<float> bias)
    {
        int i = 0;
        ref float r = ref MemoryMarshal.GetReference(row);
        ref float b = ref MemoryMarshal.GetReference(bias);
        if (Engine.UseAvx2)
        {
            var lo = Vector256.Create(Low);
            var hi = Vector256.Create(High);
            var mode = Clamp256.ModeOf(Low, High);
            for (; i <= row.Length - 8; i += 8)
            {
                var v = Vector256.LoadUnsafe(ref r, (nuint)i) + Vector256.LoadUnsafe(ref b, (nuint)i);
                Clamp256.Apply(v, lo, hi, mode).StoreUnsafe(ref r, (nuint)i);
            }
        }
        for (; i < row.Length; i++)
            Unsafe.Add(ref r, i) = MathF.Min(MathF.Max(Unsafe.Add(ref r, i) + Unsafe.Add(ref b, i), Low), High);
    }
}
