using System.Runtime.Intrinsics;
using HpCnn.Kernels;

namespace HpCnn.Tests.Kernels;

/// <summary>
/// The AVX2 epilogues' cheap clamp and maximum against MathF and Vector256's IEEE Min/Max, bit for bit, over the values
/// where they could part: NaNs with payloads of either sign, zeros of either sign, infinities, subnormals.
/// </summary>
public class Clamp256Tests
{
    private static readonly float[] Specials =
    [
        float.NaN, -float.NaN, BitConverter.Int32BitsToSingle(0x7FC0_1234), BitConverter.Int32BitsToSingle(unchecked((int)0xFFC0_0ABC)),
        0f, -0f, float.PositiveInfinity, float.NegativeInfinity, 1f, -1f, 2.5f, -3.75f, float.Epsilon, -float.Epsilon,
        1e-40f, float.MaxValue, float.MinValue, 0.5f,
    ];

    private static readonly (float Low, float High, ClampMode Mode)[] Clamps =
    [
        (float.NegativeInfinity, float.PositiveInfinity, ClampMode.None),
        (0f, float.PositiveInfinity, ClampMode.Relu),
        (-0f, float.PositiveInfinity, ClampMode.Full),
        (0f, 6f, ClampMode.Full),
        (-1f, 2f, ClampMode.Full),
    ];

    private static int Bits(float v) => BitConverter.SingleToInt32Bits(v);

    /// <summary>
    /// MathF.Max with the NaN it returns when both are NaN fixed to the first: .NET leaves that choice to the CPU path
    /// (on an AVX-512 Xeon, MathF.Max(0xFFC00000, 0x7FC01234) gave the second, where AVX2 code gives the first).
    /// </summary>
    private static float MaxFirstNaN(float a, float b) => float.IsNaN(a) ? a : MathF.Max(a, b);

    [Test]
    public void ModeOfNamesOnlyTheTwoCheapClamps()
    {
        foreach (var (low, high, mode) in Clamps)
            Assert.That(Clamp256.ModeOf(low, high), Is.EqualTo(mode), $"[{low}, {high}]");
    }

    [Test]
    public void ApplyGivesMathFBitsInEveryMode()
    {
        if (!Engine.UseAvx2) Assert.Ignore("AVX2 only");
        foreach (var (low, high, mode) in Clamps)
            for (int s = 0; s < Specials.Length; s++)
            {
                var x = new float[8];
                for (int l = 0; l < 8; l++) x[l] = Specials[(s + 5 * l) % Specials.Length];
                var y = Clamp256.Apply(Vector256.Create(x), Vector256.Create(low), Vector256.Create(high), mode);
                var y4 = Clamp256.Apply(Vector128.Create(x[0], x[1], x[2], x[3]), Vector128.Create(low), Vector128.Create(high), mode);
                for (int l = 0; l < 8; l++)
                {
                    int expected = Bits(MathF.Min(MathF.Max(x[l], low), high));
                    Assert.That(Bits(y[l]), Is.EqualTo(expected), $"[{low}, {high}] x = {x[l]:R} (0x{Bits(x[l]):X8}): {y[l]:R}");
                    if (l < 4) Assert.That(Bits(y4[l]), Is.EqualTo(expected), $"xmm [{low}, {high}] x = {x[l]:R}");
                }
            }
    }

    [Test]
    public void MaxOfClampedValuesGivesMathFBits()
    {
        if (!Engine.UseAvx2) Assert.Ignore("AVX2 only");
        foreach (var (low, high, mode) in Clamps)
        {
            var c = Specials.Select(v => MathF.Min(MathF.Max(v, low), high)).ToArray();
            for (int i = 0; i < c.Length; i++)
                for (int j = 0; j < c.Length; j += 8)
                {
                    var b = new float[8];
                    for (int l = 0; l < 8; l++) b[l] = c[(j + l) % c.Length];
                    var a = Vector256.Create(c[i]);
                    var m = Clamp256.Max(a, Vector256.Create(b), mode);
                    var mr = Clamp256.Max(Vector256.Create(b), a, mode);
                    var m4 = Clamp256.Max(Vector128.Create(c[i]), Vector128.Create(b[0], b[1], b[2], b[3]), mode);
                    for (int l = 0; l < 8; l++)
                    {
                        string at = $"[{low}, {high}] max(0x{Bits(c[i]):X8}, 0x{Bits(b[l]):X8})";
                        Assert.That(Bits(m[l]), Is.EqualTo(Bits(MaxFirstNaN(c[i], b[l]))), at);
                        Assert.That(Bits(mr[l]), Is.EqualTo(Bits(MaxFirstNaN(b[l], c[i]))), at + " swapped");
                        if (!(float.IsNaN(c[i]) && float.IsNaN(b[l])))
                            Assert.That(Bits(m[l]), Is.EqualTo(Bits(Vector256.Max(a, Vector256.Create(b))[l])), at + " vs Vector256.Max");
                        if (l < 4) Assert.That(Bits(m4[l]), Is.EqualTo(Bits(MaxFirstNaN(c[i], b[l]))), at + " xmm");
                    }
                }
        }
    }
}
