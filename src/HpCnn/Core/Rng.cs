using System.Runtime.CompilerServices;

namespace HpCnn;

/// <summary>
/// xoshiro256** seeded through SplitMix64: a small generator whose stream is fixed by this
/// code alone (not by the .NET version), so every result is reproducible from one seed.
/// </summary>
public sealed class Rng
{
    private ulong _s0, _s1, _s2, _s3;
    private double _spare;
    private bool _hasSpare;

    public Rng(ulong seed)
    {
        ulong x = seed;
        _s0 = SplitMix(ref x); _s1 = SplitMix(ref x); _s2 = SplitMix(ref x); _s3 = SplitMix(ref x);
    }

    /// <summary>The generator's whole state (for checkpoints): four words, the spare normal deviate and whether it is held.</summary>
    internal (ulong S0, ulong S1, ulong S2, ulong S3, double Spare, bool HasSpare) State
    {
        get => (_s0, _s1, _s2, _s3, _spare, _hasSpare);
        set => (_s0, _s1, _s2, _s3, _spare, _hasSpare) = value;
    }

    /// <summary>A generator for a sub-stream (layer index, purpose...) of a seed.</summary>
    public static Rng For(ulong seed, ulong stream) => new(Mix(seed, stream));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong NextUInt64()
    {
        ulong result = BitRotate(_s1 * 5, 7) * 9;
        ulong t = _s1 << 17;
        _s2 ^= _s0; _s3 ^= _s1; _s1 ^= _s2; _s0 ^= _s3;
        _s2 ^= t; _s3 = BitRotate(_s3, 45);
        return result;
    }

    /// <summary>Uniform in [0, 1).</summary>
    public double NextDouble() => (NextUInt64() >> 11) * (1.0 / (1UL << 53));

    /// <summary>Uniform integer in [0, n).</summary>
    public int NextInt(int n)
    {
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n));
        // Lemire's nearly-divisionless method, unbiased.
        ulong m = (ulong)(uint)NextUInt64() * (ulong)n;
        uint l = (uint)m;
        if (l < (uint)n)
        {
            uint t = (uint)(-n) % (uint)n;
            while (l < t) { m = (ulong)(uint)NextUInt64() * (ulong)n; l = (uint)m; }
        }
        return (int)(m >> 32);
    }

    /// <summary>Standard normal (Marsaglia polar method).</summary>
    public double NextNormal()
    {
        if (_hasSpare) { _hasSpare = false; return _spare; }
        double u, v, s;
        do
        {
            u = NextDouble() * 2 - 1;
            v = NextDouble() * 2 - 1;
            s = u * u + v * v;
        } while (s >= 1 || s == 0);
        double f = Math.Sqrt(-2 * Math.Log(s) / s);
        _spare = v * f; _hasSpare = true;
        return u * f;
    }

    /// <summary>Fisher-Yates shuffle.</summary>
    public void Shuffle(Span<int> items)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>A counter-based hash (SplitMix64 finaliser of seed and counter): the same value on any thread, in any order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong seed, ulong counter)
    {
        ulong z = seed + (counter + 1) * 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private static ulong SplitMix(ref ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        ulong z = x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong BitRotate(ulong x, int k) => (x << k) | (x >> (64 - k));
}
