using HpCnn.Data;
using HpCnn.Distributed;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Tests.Model;

/// <summary>
/// Data-parallel training split over "ranks" (here threads of this process joined by an in-memory communicator; the same
/// engine code runs between MPI processes): the weights after training equal one process's bit for bit, for 2, 4 and 16
/// ranks, uneven and tiny last batches included; a failing rank ends the others instead of leaving them waiting.
/// </summary>
[NonParallelizable]
public class DistributedTests
{
    /// <summary>Ranks as threads: collectives through one shared buffer and a barrier; an abort cancels every waiting rank.</summary>
    private sealed class ThreadRanks
    {
        private readonly Barrier _barrier;
        private readonly CancellationTokenSource _aborted = new();
        private byte[] _shared = new byte[1 << 16];

        public ThreadRanks(int size)
        {
            _barrier = new Barrier(size);
            Ranks = Enumerable.Range(0, size).Select(r => new Member(this, r, size)).ToArray();
        }

        public Member[] Ranks { get; }
        public string? AbortMessage { get; private set; }
        public int Collectives;

        private void Wait()
        {
            if (!_barrier.SignalAndWait(TimeSpan.FromSeconds(60), _aborted.Token)) throw new TimeoutException("a rank never reached the collective");
        }

        public sealed class Member(ThreadRanks group, int rank, int size) : ICommunicator
        {
            public int Rank => rank;
            public int Size => size;

            public void AllGather(Span<byte> all, ReadOnlySpan<int> counts, ReadOnlySpan<int> offsets)
            {
                group.Wait();
                if (rank == 0)
                {
                    if (group._shared.Length < all.Length) group._shared = new byte[all.Length];
                    Interlocked.Increment(ref group.Collectives);
                }
                group.Wait();
                all.Slice(offsets[rank], counts[rank]).CopyTo(group._shared.AsSpan(offsets[rank]));
                group.Wait();
                for (int r = 0; r < size; r++)
                    if (r != rank) group._shared.AsSpan(offsets[r], counts[r]).CopyTo(all.Slice(offsets[r]));
                group.Wait();
            }

            public void Broadcast(Span<byte> data, int root)
            {
                group.Wait();
                if (rank == root)
                {
                    if (group._shared.Length < data.Length) group._shared = new byte[data.Length];
                    data.CopyTo(group._shared);
                }
                group.Wait();
                if (rank != root) group._shared.AsSpan(0, data.Length).CopyTo(data);
                group.Wait();
            }

            public void Abort(string message, int exitCode)
            {
                group.AbortMessage ??= message;
                group._aborted.Cancel();
            }
        }
    }

    private static Dataset Data(int count, Shape3 shape, int classes, int seed) => InferenceTests.RandomData(shape, count, classes, seed);

    /// <summary>Every layer that carries or sums gradients, fused paths included (conv-ReLU-pool, batch norm-ReLU-pool).</summary>
    private static Sequential Net(string kind, ulong seed) => kind switch
    {
        "reference" => new Sequential(new Shape3(1, 12, 12), seed)
            .Add(new Conv2D(8, 3, padding: Padding.Symmetric(1)))
            .Add(new BatchNorm2D())
            .Add(new ReLU())
            .Add(new MaxPool2D(2))
            .Add(new Conv2D(16, 3, padding: Padding.Symmetric(1)))
            .Add(new ReLU())
            .Add(new MaxPool2D(2))
            .Add(new Flatten())
            .Add(new Dropout(0.25f))
            .Add(new Dense(24))
            .Add(new ReLU())
            .Add(new Dense(10))
            .Compile(LossKind.CrossEntropy, new Sgd(0.05f, momentum: 0.9f)),
        "strided" => new Sequential(new Shape3(3, 12, 12), seed)
            .Add(new Conv2D(12, 3, stride: 2, padding: Padding.Symmetric(1)))
            .Add(new BatchNorm2D())
            .Add(new ReLU())
            .Add(new Conv2D(16, 1))
            .Add(new ReLU())
            .Add(new Conv2D(10, 3, stride: 2, padding: Padding.Symmetric(1), bias: false))
            .Add(new AvgPool2D(3))
            .Add(new Flatten())
            .Add(new Softmax())
            .Compile(LossKind.CrossEntropy, new Adam(0.01f)),
        _ => new Sequential(new Shape3(1, 8, 8), seed)
            .Add(new Conv2D(4, 3))
            .Add(new Tanh())
            .Add(new AvgPool2D(2))
            .Add(new Flatten())
            .Add(new Dense(1))
            .Compile(LossKind.BinaryCrossEntropy, new Sgd(0.1f)),
    };

    private static (Shape3 Shape, int Classes) Input(string kind) => kind switch
    {
        "reference" => (new Shape3(1, 12, 12), 10),
        "strided" => (new Shape3(3, 12, 12), 10),
        _ => (new Shape3(1, 8, 8), 2),
    };

    private static float[][] Weights(Sequential m) => m.Layers.SelectMany(l => l.Parameters).Select(p => (float[])p.Value.Clone()).ToArray();

    private static FitOptions Options(Dataset validation, int batch = 16) => new()
    {
        Epochs = 2, BatchSize = batch, Threads = 1, Validation = validation, Seed = 7,
    };

    /// <summary>Runs <paramref name="body"/> for every rank of <paramref name="group"/> on a thread of its own; returns what each threw.</summary>
    private static Exception?[] RunRanks(ThreadRanks group, Action<int> body, TimeSpan limit)
    {
        int ranks = group.Ranks.Length;
        var errors = new Exception?[ranks];
        var threads = Enumerable.Range(0, ranks).Select(r => new Thread(() =>
        {
            try { body(r); }
            catch (Exception e) { errors[r] = e; }
        }, 16 << 20)).ToArray();
        foreach (var t in threads) t.Start();
        foreach (var t in threads) Assert.That(t.Join(limit), "a rank hung");
        return errors;
    }

    /// <summary>Trains one model per rank on threads; returns each rank's weights and history.</summary>
    private static (float[][] Weights, TrainingHistory History)[] TrainSplit(string kind, int ranks, Dataset train, Dataset validation, out ThreadRanks group,
        int batch = 16)
    {
        var g = group = new ThreadRanks(ranks);
        var results = new (float[][], TrainingHistory)[ranks];
        var errors = RunRanks(g, r =>
        {
            var model = Net(kind, 11);
            var o = Options(validation, batch);
            o.Communicator = g.Ranks[r];
            var h = model.Fit(train, o);
            results[r] = (Weights(model), h);
        }, TimeSpan.FromMinutes(2));
        for (int r = 0; r < ranks; r++) Assert.That(errors[r], Is.Null, $"rank {r}: {errors[r]}");
        return results;
    }

    private static void AssertSameBits(float[][] expected, float[][] actual, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length));
        for (int i = 0; i < expected.Length; i++)
        {
            int first = Enumerable.Range(0, expected[i].Length)
                .FirstOrDefault(j => BitConverter.SingleToInt32Bits(expected[i][j]) != BitConverter.SingleToInt32Bits(actual[i][j]), -1);
            Assert.That(first, Is.EqualTo(-1), $"{what}: tensor {i}, value {first}: {(first >= 0 ? $"{expected[i][first]:R} vs {actual[i][first]:R}" : "")}");
        }
    }

    // 16 x 4 + 3 images: full batches, then one of 3 (split 1 + 2 over 2 ranks; fewer images than 4 or 16 ranks: every
    // rank computes it whole).
    [TestCase("reference", 2)]
    [TestCase("reference", 4)]
    [TestCase("reference", 16)]
    [TestCase("strided", 2)]
    [TestCase("strided", 4)]
    [TestCase("binary", 4)]
    public void WeightsEqualOneProcessBitForBit(string kind, int ranks)
    {
        var (shape, classes) = Input(kind);
        var train = Data(67, shape, classes, 1);
        var validation = Data(20, shape, classes, 2);
        var single = Net(kind, 11);
        var one = single.Fit(train, Options(validation));
        var expected = Weights(single);

        var split = TrainSplit(kind, ranks, train, validation, out var group);
        Assert.That(group.Collectives, Is.GreaterThan(10), "the ranks never exchanged anything");
        for (int r = 0; r < ranks; r++)
        {
            AssertSameBits(expected, split[r].Weights, $"rank {r} of {ranks}");
            Assert.That(split[r].History.Ranks, Is.EqualTo(ranks));
            Assert.That(split[r].History.Epochs, Has.Count.EqualTo(2));
            // The metrics are the whole batch's on every rank (the training loss sums in another order: close, not equal).
            Assert.That(split[r].History.Epochs[^1].TrainLoss, Is.EqualTo(one.Epochs[^1].TrainLoss).Within(1e-9 * Math.Abs(one.Epochs[^1].TrainLoss) + 1e-12));
            Assert.That(split[r].History.Epochs[^1].TrainAccuracy, Is.EqualTo(one.Epochs[^1].TrainAccuracy));
            Assert.That(split[r].History.Epochs[^1].ValLoss, Is.EqualTo(one.Epochs[^1].ValLoss));
        }
    }

    /// <summary>Deeper sums: batches of 64 (the GEMMs' 12-row tiles; a dense layer's gradient rows shared 12 / 6 / 4 per rank).</summary>
    [TestCase(2)]
    [TestCase(4)]
    [TestCase(8)]
    public void LargeBatchesEqualOneProcessBitForBit(int ranks)
    {
        var (shape, classes) = Input("reference");
        var train = Data(150, shape, classes, 6);
        var validation = Data(10, shape, classes, 7);
        var single = Net("reference", 11);
        single.Fit(train, Options(validation, 64));
        var split = TrainSplit("reference", ranks, train, validation, out _, 64);
        for (int r = 0; r < ranks; r++) AssertSameBits(Weights(single), split[r].Weights, $"rank {r} of {ranks}, batch 64");
    }

    [Test]
    public void TwoThreadsPerRankGiveTheSameBits()
    {
        var (shape, classes) = Input("reference");
        var train = Data(40, shape, classes, 3);
        var validation = Data(8, shape, classes, 4);
        var single = Net("reference", 11);
        var o = Options(validation);
        o.Threads = 2;
        single.Fit(train, o);
        var split = TrainSplit("reference", 2, train, validation, out _);
        AssertSameBits(Weights(single), split[1].Weights, "2 ranks x 1 thread against 1 process x 2 threads");
    }

    [Test]
    public void RanksWithDifferentDataAreRefusedOnEveryRank()
    {
        var (shape, classes) = Input("binary");
        var g = new ThreadRanks(2);
        var errors = RunRanks(g, r =>
        {
            var o = Options(Data(8, shape, classes, 2));
            o.Communicator = g.Ranks[r];
            Net("binary", 11).Fit(Data(32, shape, classes, 10 + r), o);
        }, TimeSpan.FromSeconds(60));
        foreach (var e in errors)
        {
            Assert.That(e, Is.InstanceOf<ArgumentException>());
            Assert.That(e!.Message, Does.Contain("different training or validation data"));
        }
    }

    [Test]
    public void AFailingRankEndsTheOthers()
    {
        var (shape, classes) = Input("binary");
        var train = Data(64, shape, classes, 5);
        var g = new ThreadRanks(4);
        var errors = RunRanks(g, r =>
        {
            var o = Options(Data(8, shape, classes, 2));
            o.Communicator = g.Ranks[r];
            o.OnBatchEnd = p => r != 2 || p.Batch < 2 ? true : throw new IOException("disk full on rank 2");
            Net("binary", 11).Fit(train, o);
        }, TimeSpan.FromSeconds(30));
        Assert.That(g.AbortMessage, Does.Contain("disk full on rank 2"));
        Assert.That(errors[2], Is.InstanceOf<IOException>());
        for (int r = 0; r < 4; r++) Assert.That(errors[r], Is.Not.Null, $"rank {r} went on");
    }

    [Test]
    public void RankCountsThatCannotMatchOneProcessAreRefused()
    {
        var g = new ThreadRanks(3);
        var model = Net("binary", 11);
        var (shape, classes) = Input("binary");
        var o = Options(Data(8, shape, classes, 2));
        o.Communicator = g.Ranks[0];
        var e = Assert.Throws<ArgumentException>(() => model.Fit(Data(32, shape, classes, 1), o));
        Assert.That(e!.Message, Does.Contain("power of two"));
    }

    /// <summary>The chunk tree against its definition: a node is the sum of its non-empty halves, an empty half passes the other through.</summary>
    [Test]
    public void TreeSumMatchesItsRecursiveDefinition()
    {
        var rng = new Random(3);
        for (int trial = 0; trial < 200; trial++)
        {
            int leaves = 1 << rng.Next(0, 5), n = rng.Next(1, 40);
            var slots = new float[leaves * n];
            for (int i = 0; i < slots.Length; i++) slots[i] = (float)(rng.NextDouble() * 2 - 1) * MathF.Pow(10, rng.Next(-3, 4));
            var filled = Enumerable.Range(0, leaves).Select(_ => rng.Next(3) > 0).ToArray();
            var expected = new float[n];
            bool any = false;
            for (int j = 0; j < n; j++)
            {
                var (v, has) = Node(slots, n, filled, 0, leaves, j);
                expected[j] = v;
                any = has;
            }
            var copy = (bool[])filled.Clone();
            int from = rng.Next(0, n), to = rng.Next(from, n + 1);
            bool result = GradientChunks.TreeSum(slots, n, leaves, from, to, copy);
            Assert.That(result, Is.EqualTo(filled.Any(f => f)));
            for (int j = from; j < to && any; j++)
                Assert.That(BitConverter.SingleToInt32Bits(slots[j]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected[j])), $"trial {trial}, element {j}");
        }

        static (float, bool) Node(float[] s, int n, bool[] filled, int first, int count, int j)
        {
            if (count == 1) return (filled[first] ? s[first * n + j] : 0, filled[first]);
            var (a, ha) = Node(s, n, filled, first, count / 2, j);
            var (b, hb) = Node(s, n, filled, first + count / 2, count / 2, j);
            return ha && hb ? (a + b, true) : ha ? (a, true) : (b, hb);
        }
    }
}
