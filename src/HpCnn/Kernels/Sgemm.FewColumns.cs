using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace HpCnn.Kernels;

public static partial class Sgemm
{
    /// <summary>
    /// C[r, j] = sum over k = 0 .. kc - 1, in order, of At[k, r] * B[k, j] for rows r &lt; <paramref name="rows"/> and
    /// columns j &lt; <paramref name="cols"/> (at most NR) of one packed B panel (kc x NR, as <see cref="ColumnTail"/> takes
    /// it): one FMA chain per element from zero, so the bits of <see cref="MicroKernel"/> and <see cref="ColumnTail"/> for
    /// the same product. A is given transposed (<paramref name="at"/>[k * <paramref name="ldat"/> + r], readable for
    /// r &lt; rows rounded up to 16), so the vectors run along C's rows: a product of a few columns (a batch-1 Winograd
    /// F(4x4) call on an 8 x 8 image has 4 tiles) keeps every lane busy, where the 16-column micro-kernel or the column
    /// tail's 6-row strips would mostly compute padding or wait on loads.
    /// </summary>
    internal static void FewColumns(int rows, int kc, int cols, ReadOnlySpan<float> at, int ldat, ReadOnlySpan<float> bPanel, Span<float> c, int ldc)
    {
        if (rows <= 0 || cols <= 0) return;
        if (cols > NR || kc < 1 || ldat < RoundUp(rows, 16))
            throw new ArgumentException($"few columns: {cols} columns (at most {NR}), depth {kc}, {rows} rows with A's stride {ldat}");
        _ = at[(kc - 1) * ldat + RoundUp(rows, 16) - 1];
        _ = bPanel[(kc - 1) * NR + cols - 1];
        _ = c[(rows - 1) * ldc + cols - 1];
        if (!Engine.UseAvx2)
        {
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < cols; j++)
                {
                    float acc = 0f;
                    for (int k = 0; k < kc; k++) acc = MathF.FusedMultiplyAdd(at[k * ldat + r], bPanel[k * NR + j], acc);
                    c[r * ldc + j] = acc;
                }
            return;
        }
        ref float a = ref MemoryMarshal.GetReference(at);
        ref float b = ref MemoryMarshal.GetReference(bPanel);
        // Four columns at a time (a last group of 1-3 repeats its last column and does not store it), rows in blocks of
        // four zmm (16 accumulators, 4 loads and 4 broadcasts per 16 FMAs) or three ymm: 12 accumulators, 3 row vectors
        // and a broadcast fill AVX2's 16 registers (four ymm rows spilled accumulators to the stack in every k step).
        Span<float> block = stackalloc float[4 * 64];
        int width = Engine.UseAvx512 ? 16 : 8, blockVectors = Engine.UseAvx512 ? 4 : 3;
        for (int j0 = 0; j0 < cols; j0 += 4)
        {
            int n = Math.Min(4, cols - j0);
            int q1 = j0 + Math.Min(1, n - 1), q2 = j0 + Math.Min(2, n - 1), q3 = j0 + Math.Min(3, n - 1);
            for (int r0 = 0; r0 < rows; r0 += blockVectors * width)
            {
                int vectors = Math.Min(blockVectors, (rows - r0 + width - 1) / width);
                if (width == 16) Block512(kc, ref Unsafe.Add(ref a, r0), ldat, ref b, j0, q1, q2, q3, vectors, block);
                else Block256(kc, ref Unsafe.Add(ref a, r0), ldat, ref b, j0, q1, q2, q3, vectors, block);
                int m = Math.Min(rows - r0, vectors * width);
                for (int q = 0; q < n; q++)
                    for (int r = 0; r < m; r++) c[(r0 + r) * ldc + j0 + q] = block[q * 64 + r];
            }
        }
    }

    /// <summary>Up to 64 rows (four zmm) x four columns into <paramref name="block"/> (column q at q * 64).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block512(int kc, ref float a, int ldat, ref float b, int j0, int j1, int j2, int j3, int vectors, Span<float> block)
    {
        ref float o = ref MemoryMarshal.GetReference(block);
        if (vectors == 4)
        {
            Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
            Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;
            for (nint k = 0, ak = 0, bk = 0; k < kc; k++, ak += ldat, bk += NR)
            {
                var a0 = Vector512.LoadUnsafe(ref a, (nuint)ak); var a1 = Vector512.LoadUnsafe(ref a, (nuint)ak + 16);
                var a2 = Vector512.LoadUnsafe(ref a, (nuint)ak + 32); var a3 = Vector512.LoadUnsafe(ref a, (nuint)ak + 48);
                var b0 = Vector512.Create(Unsafe.Add(ref b, bk + j0)); var b1 = Vector512.Create(Unsafe.Add(ref b, bk + j1));
                var b2 = Vector512.Create(Unsafe.Add(ref b, bk + j2)); var b3 = Vector512.Create(Unsafe.Add(ref b, bk + j3));
                c00 = Vector512.FusedMultiplyAdd(a0, b0, c00); c01 = Vector512.FusedMultiplyAdd(a1, b0, c01);
                c02 = Vector512.FusedMultiplyAdd(a2, b0, c02); c03 = Vector512.FusedMultiplyAdd(a3, b0, c03);
                c10 = Vector512.FusedMultiplyAdd(a0, b1, c10); c11 = Vector512.FusedMultiplyAdd(a1, b1, c11);
                c12 = Vector512.FusedMultiplyAdd(a2, b1, c12); c13 = Vector512.FusedMultiplyAdd(a3, b1, c13);
                c20 = Vector512.FusedMultiplyAdd(a0, b2, c20); c21 = Vector512.FusedMultiplyAdd(a1, b2, c21);
                c22 = Vector512.FusedMultiplyAdd(a2, b2, c22); c23 = Vector512.FusedMultiplyAdd(a3, b2, c23);
                c30 = Vector512.FusedMultiplyAdd(a0, b3, c30); c31 = Vector512.FusedMultiplyAdd(a1, b3, c31);
                c32 = Vector512.FusedMultiplyAdd(a2, b3, c32); c33 = Vector512.FusedMultiplyAdd(a3, b3, c33);
            }
            c00.StoreUnsafe(ref o, 0); c01.StoreUnsafe(ref o, 16); c02.StoreUnsafe(ref o, 32); c03.StoreUnsafe(ref o, 48);
            c10.StoreUnsafe(ref o, 64); c11.StoreUnsafe(ref o, 80); c12.StoreUnsafe(ref o, 96); c13.StoreUnsafe(ref o, 112);
            c20.StoreUnsafe(ref o, 128); c21.StoreUnsafe(ref o, 144); c22.StoreUnsafe(ref o, 160); c23.StoreUnsafe(ref o, 176);
            c30.StoreUnsafe(ref o, 192); c31.StoreUnsafe(ref o, 208); c32.StoreUnsafe(ref o, 224); c33.StoreUnsafe(ref o, 240);
            return;
        }
        // The last 1-3 vectors of rows, one at a time.
        for (int v = 0; v < vectors; v++)
        {
            Vector512<float> d0 = default, d1 = default, d2 = default, d3 = default;
            for (nint k = 0, ak = 16 * v, bk = 0; k < kc; k++, ak += ldat, bk += NR)
            {
                var av = Vector512.LoadUnsafe(ref a, (nuint)ak);
                d0 = Vector512.FusedMultiplyAdd(av, Vector512.Create(Unsafe.Add(ref b, bk + j0)), d0);
                d1 = Vector512.FusedMultiplyAdd(av, Vector512.Create(Unsafe.Add(ref b, bk + j1)), d1);
                d2 = Vector512.FusedMultiplyAdd(av, Vector512.Create(Unsafe.Add(ref b, bk + j2)), d2);
                d3 = Vector512.FusedMultiplyAdd(av, Vector512.Create(Unsafe.Add(ref b, bk + j3)), d3);
            }
            d0.StoreUnsafe(ref o, (nuint)(16 * v)); d1.StoreUnsafe(ref o, (nuint)(64 + 16 * v));
            d2.StoreUnsafe(ref o, (nuint)(128 + 16 * v)); d3.StoreUnsafe(ref o, (nuint)(192 + 16 * v));
        }
    }

    /// <summary><see cref="Block512"/> in ymm: up to 24 rows (three ymm) x four columns (the x86-64-v3 build has no zmm).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Block256(int kc, ref float a, int ldat, ref float b, int j0, int j1, int j2, int j3, int vectors, Span<float> block)
    {
        ref float o = ref MemoryMarshal.GetReference(block);
        if (vectors == 3)
        {
            Vector256<float> c00 = default, c01 = default, c02 = default, c10 = default, c11 = default, c12 = default;
            Vector256<float> c20 = default, c21 = default, c22 = default, c30 = default, c31 = default, c32 = default;
            for (nint k = 0, ak = 0, bk = 0; k < kc; k++, ak += ldat, bk += NR)
            {
                var a0 = Vector256.LoadUnsafe(ref a, (nuint)ak);
                var a1 = Vector256.LoadUnsafe(ref a, (nuint)ak + 8);
                var a2 = Vector256.LoadUnsafe(ref a, (nuint)ak + 16);
                var bv = Vector256.Create(Unsafe.Add(ref b, bk + j0));
                c00 = Vector256.FusedMultiplyAdd(a0, bv, c00); c01 = Vector256.FusedMultiplyAdd(a1, bv, c01); c02 = Vector256.FusedMultiplyAdd(a2, bv, c02);
                bv = Vector256.Create(Unsafe.Add(ref b, bk + j1));
                c10 = Vector256.FusedMultiplyAdd(a0, bv, c10); c11 = Vector256.FusedMultiplyAdd(a1, bv, c11); c12 = Vector256.FusedMultiplyAdd(a2, bv, c12);
                bv = Vector256.Create(Unsafe.Add(ref b, bk + j2));
                c20 = Vector256.FusedMultiplyAdd(a0, bv, c20); c21 = Vector256.FusedMultiplyAdd(a1, bv, c21); c22 = Vector256.FusedMultiplyAdd(a2, bv, c22);
                bv = Vector256.Create(Unsafe.Add(ref b, bk + j3));
                c30 = Vector256.FusedMultiplyAdd(a0, bv, c30); c31 = Vector256.FusedMultiplyAdd(a1, bv, c31); c32 = Vector256.FusedMultiplyAdd(a2, bv, c32);
            }
            c00.StoreUnsafe(ref o, 0); c01.StoreUnsafe(ref o, 8); c02.StoreUnsafe(ref o, 16);
            c10.StoreUnsafe(ref o, 64); c11.StoreUnsafe(ref o, 72); c12.StoreUnsafe(ref o, 80);
            c20.StoreUnsafe(ref o, 128); c21.StoreUnsafe(ref o, 136); c22.StoreUnsafe(ref o, 144);
            c30.StoreUnsafe(ref o, 192); c31.StoreUnsafe(ref o, 200); c32.StoreUnsafe(ref o, 208);
            return;
        }
        for (int v = 0; v < vectors; v++)
        {
            Vector256<float> d0 = default, d1 = default, d2 = default, d3 = default;
            for (nint k = 0, ak = 8 * v, bk = 0; k < kc; k++, ak += ldat, bk += NR)
            {
                var av = Vector256.LoadUnsafe(ref a, (nuint)ak);
                d0 = Vector256.FusedMultiplyAdd(av, Vector256.Create(Unsafe.Add(ref b, bk + j0)), d0);
                d1 = Vector256.FusedMultiplyAdd(av, Vector256.Create(Unsafe.Add(ref b, bk + j1)), d1);
                d2 = Vector256.FusedMultiplyAdd(av, Vector256.Create(Unsafe.Add(ref b, bk + j2)), d2);
                d3 = Vector256.FusedMultiplyAdd(av, Vector256.Create(Unsafe.Add(ref b, bk + j3)), d3);
            }
            d0.StoreUnsafe(ref o, (nuint)(8 * v)); d1.StoreUnsafe(ref o, (nuint)(64 + 8 * v));
            d2.StoreUnsafe(ref o, (nuint)(128 + 8 * v)); d3.StoreUnsafe(ref o, (nuint)(192 + 8 * v));
        }
    }
}
