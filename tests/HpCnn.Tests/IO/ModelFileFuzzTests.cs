using System.Diagnostics;
using System.Text;
using HpCnn.IO;

namespace HpCnn.Tests.IO;

/// <summary>
/// Mutates valid model files (bit flips, truncations, splices, forged size fields, hostile spec values) and
/// loads each: the only acceptable outcomes are a model or an InvalidDataException with a message. Any other
/// exception (index out of range, overflow, out of memory, null reference...) fails the test.
/// Longer run: HPCNN_FUZZ_CASES=1000000 dotnet test tests/HpCnn.Tests -c Release --filter ModelFileFuzz
/// </summary>
public class ModelFileFuzzTests
{
    private static int Cases => int.TryParse(Environment.GetEnvironmentVariable("HPCNN_FUZZ_CASES"), out int n) && n > 0 ? n : 12_000;

    [Test]
    public void MutatedFilesNeverCrashTheReader()
    {
        var seeds = new[]
        {
            ModelFile.ToBytes(Trained(TestModels.EveryLayer(1), withMeta: true), TestModels.EveryLayer(1).CopyParameterValues()),
            ModelFile.ToBytes(Trained(HpCnn.Presets.NetworkPresets.SeedBinary(2), withMeta: false)),
        };
        var rng = new Rng(20261121);
        var outcomes = new Dictionary<string, int>();
        int loaded = 0, rejected = 0;
        var sw = Stopwatch.StartNew();
        long slowest = 0;
        for (int i = 0; i < Cases; i++)
        {
            var src = seeds[rng.NextInt(seeds.Length)];
            var (mutated, kind) = Mutate(src, seeds, rng);
            long t0 = sw.ElapsedTicks;
            try
            {
                var m = ModelFile.Read(mutated, "fuzz");
                loaded++;
                // A file that loads must describe a usable model.
                Assert.That(m.Model.Layers, Is.Not.Empty);
            }
            catch (InvalidDataException e)
            {
                rejected++;
                Assert.That(e.Message, Is.Not.Empty);
                string key = kind + ": " + Classify(e.Message);
                outcomes[key] = outcomes.GetValueOrDefault(key) + 1;
            }
            catch (Exception e)
            {
                File.WriteAllBytes(Path.Combine(TestContext.CurrentContext.WorkDirectory, $"fuzz-crash-{i}.hpcnn"), mutated);
                Assert.Fail($"case {i} ({kind}) threw {e.GetType().Name}: {e.Message}\n{e.StackTrace}");
            }
            slowest = Math.Max(slowest, sw.ElapsedTicks - t0);
        }
        TestContext.Out.WriteLine($"{Cases} cases: {loaded} loaded, {rejected} rejected in {sw.Elapsed.TotalSeconds:F1} s; slowest {slowest * 1000.0 / Stopwatch.Frequency:F1} ms");
        foreach (var (k, v) in outcomes.OrderByDescending(p => p.Value).Take(25)) TestContext.Out.WriteLine($"  {v,6}  {k}");
        Assert.That(loaded + rejected, Is.EqualTo(Cases));
        Assert.That(rejected, Is.GreaterThan(Cases / 2), "most mutations must be caught");
        Assert.That(slowest * 1000.0 / Stopwatch.Frequency, Is.LessThan(2000), "no case may take seconds (hang / huge allocation)");
    }

    private static Sequential Trained(Sequential m, bool withMeta)
    {
        TestModels.Train(m, 2, 3);
        if (withMeta)
        {
            m.Metadata = """{"classes":[1,3],"history":[{"epoch":1,"train_loss":0.5}]}""";
            m.Preprocessing = new HpCnn.Data.Preprocessing // the prep chunk is untrusted input too
            {
                Standardization = HpCnn.Data.Standardization.Create(HpCnn.Data.StandardizeMode.PerPixel, new float[m.InputShape.Size], Enumerable.Repeat(0.5f, m.InputShape.Size).ToArray()),
                ClassNames = ["a", "b", "c"],
            };
        }
        return m;
    }

    private static string Classify(string message)
    {
        // Drop numbers so messages group by kind.
        var sb = new StringBuilder();
        foreach (char c in message.Length > 70 ? message[..70] : message) sb.Append(char.IsDigit(c) ? '#' : c);
        return sb.ToString();
    }

    private static readonly uint[] Interesting = [0, 1, 2, 3, 4, 7, 8, 255, 256, 0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 1_000_000, 100_000_000];

    private static (byte[], string) Mutate(byte[] src, byte[][] seeds, Rng rng)
    {
        var b = (byte[])src.Clone();
        bool fix = rng.NextInt(4) != 0; // mostly repair the checksum, so the parser behind it is exercised
        string kind;
        switch (rng.NextInt(7))
        {
            case 0:
                kind = "bitflip";
                int flips = 1 + rng.NextInt(8);
                for (int f = 0; f < flips; f++) b[rng.NextInt(b.Length)] ^= (byte)(1 << rng.NextInt(8));
                break;
            case 1:
                kind = "truncate";
                b = b[..rng.NextInt(b.Length)];
                fix = fix && b.Length >= 4;
                break;
            case 2:
                {
                    kind = "splice";
                    var other = seeds[rng.NextInt(seeds.Length)];
                    int a0 = rng.NextInt(other.Length), len = rng.NextInt(Math.Min(256, other.Length - a0) + 1);
                    int at = rng.NextInt(b.Length);
                    var list = b.ToList();
                    if (rng.NextInt(2) == 0) list.RemoveRange(at, Math.Min(len, list.Count - at));
                    list.InsertRange(Math.Min(at, list.Count), other.Skip(a0).Take(len));
                    b = list.ToArray();
                    break;
                }
            case 3:
                {
                    kind = "size-field";
                    // Chunk lengths, tensor counts, ranks and dims all live at 4-byte fields: overwrite one.
                    int at = 8 + rng.NextInt(Math.Max(1, b.Length - 12));
                    BitConverter.GetBytes(Interesting[rng.NextInt(Interesting.Length)]).CopyTo(b, Math.Min(at, b.Length - 4));
                    break;
                }
            case 4:
                {
                    kind = "chunk-length";
                    var offsets = ChunkOffsets(src);
                    int c = offsets[rng.NextInt(offsets.Count)];
                    BitConverter.GetBytes(Interesting[rng.NextInt(Interesting.Length)]).CopyTo(b, c + 4);
                    break;
                }
            case 5:
                {
                    kind = "spec-number";
                    string spec = SpecOf(src);
                    var digits = Enumerable.Range(0, spec.Length).Where(i => char.IsDigit(spec[i]) && (i == 0 || !char.IsDigit(spec[i - 1]))).ToList();
                    int at = digits[rng.NextInt(digits.Count)];
                    int end = at;
                    while (end < spec.Length && char.IsDigit(spec[end])) end++;
                    string[] values = ["0", "-1", "1", "999999999", "65536", "4294967296", "1e30", "0.5", "null", "\"x\""];
                    spec = spec[..at] + values[rng.NextInt(values.Length)] + spec[end..];
                    b = ModelFileTests.ReplaceSpec(src, spec);
                    fix = true;
                    break;
                }
            default:
                {
                    kind = "spec-text";
                    string spec = SpecOf(src);
                    int at = rng.NextInt(spec.Length), len = rng.NextInt(8);
                    string[] inserts = ["{", "}", "[", "]", ",", "\"", "\"type\":\"conv2d\"", "\"layers\":[]", "\"frozen\":true", ""];
                    spec = spec[..at] + inserts[rng.NextInt(inserts.Length)] + spec[Math.Min(spec.Length, at + len)..];
                    b = ModelFileTests.ReplaceSpec(src, spec);
                    fix = true;
                    break;
                }
        }
        if (fix && b.Length >= 16) ModelFileTests.FixChecksum(b);
        return (b, kind);
    }

    private static List<int> ChunkOffsets(byte[] b)
    {
        var r = new List<int>();
        int pos = 12;
        while (pos + 8 <= b.Length - 4)
        {
            r.Add(pos);
            pos += 8 + BitConverter.ToInt32(b, pos + 4);
        }
        return r;
    }

    private static string SpecOf(byte[] b)
    {
        int at = ModelFileTests.ChunkOffset(b, "SPEC");
        return Encoding.UTF8.GetString(b, at + 8, BitConverter.ToInt32(b, at + 4));
    }
}
