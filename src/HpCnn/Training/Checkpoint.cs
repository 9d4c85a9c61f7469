using System.Buffers.Binary;
using System.Globalization;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Text;
using HpCnn.Data;
using HpCnn.IO;

namespace HpCnn.Training;

/// <summary>
/// Where a <see cref="Sequential.Fit"/> is, beyond what a model file already holds (weights, optimizer state and step
/// count, epochs trained): enough to continue it bit for bit. Saved as the <c>ckpt</c> chunk of a checkpoint file
/// (docs/model-format.md), with the early-stopping best weights in a <c>best</c> chunk laid out as <c>PARM</c>.
/// </summary>
internal sealed class FitState
{
    public const uint LayoutVersion = 1;

    public long Sequence;
    // What the fit was run with; a resume with different values would not continue the same run.
    public int BatchSize;
    public bool Shuffle;
    public ulong ShuffleSeed;
    public int TrainCount;
    public ulong TrainFingerprint;
    public int ValidationCount;
    public ulong ValidationFingerprint;
    public int EpochsRequested;

    /// <summary>The epoch in progress (1-based within the fit), or the next to start when <see cref="NextBatch"/> is 0 and not <see cref="Shuffled"/>.</summary>
    public int Epoch = 1;
    /// <summary>Batches of <see cref="Epoch"/> done.</summary>
    public int NextBatch;
    /// <summary>Whether <see cref="Order"/> is already this epoch's order (the epoch's shuffle ran).</summary>
    public bool Shuffled;
    /// <summary>The fit ended (early stopping) with the weights it holds; nothing is left to run.</summary>
    public bool Finished;
    public string? StopReason;
    public int RestoredEpoch;
    public (ulong, ulong, ulong, ulong, double, bool) Rng;
    public int[] Order = [];
    // The epoch in progress so far.
    public double LossSum;
    public long Correct;
    public int Seen;
    public double Seconds;
    // Early stopping.
    public double BestMetric = double.NaN;
    public int SinceBest;
    public int BestEpoch;
    public float[][]? BestWeights;
    public List<EpochMetrics> History = [];

    public void Write(BinaryWriter w)
    {
        w.Write(LayoutVersion);
        w.Write(Sequence);
        w.Write(BatchSize);
        w.Write(Shuffle);
        w.Write(ShuffleSeed);
        w.Write(TrainCount);
        w.Write(TrainFingerprint);
        w.Write(ValidationCount);
        w.Write(ValidationFingerprint);
        w.Write(EpochsRequested);
        w.Write(Epoch);
        w.Write(NextBatch);
        w.Write(Shuffled);
        w.Write(Finished);
        var reason = Encoding.UTF8.GetBytes(StopReason ?? "");
        w.Write(reason.Length);
        w.Write(reason);
        w.Write(RestoredEpoch);
        var (s0, s1, s2, s3, spare, hasSpare) = Rng;
        w.Write(s0); w.Write(s1); w.Write(s2); w.Write(s3); w.Write(spare); w.Write(hasSpare);
        w.Write(Order.Length);
        foreach (int i in Order) w.Write(i);
        w.Write(LossSum);
        w.Write(Correct);
        w.Write(Seen);
        w.Write(Seconds);
        w.Write(BestMetric);
        w.Write(SinceBest);
        w.Write(BestEpoch);
        w.Write(History.Count);
        foreach (var m in History)
        {
            w.Write(m.Epoch); w.Write(m.TrainLoss); w.Write(m.TrainAccuracy);
            w.Write(m.ValLoss.HasValue); w.Write(m.ValLoss ?? 0); w.Write(m.ValAccuracy ?? 0);
            w.Write(m.Seconds); w.Write(m.SamplesPerSecond); w.Write(m.LearningRate); w.Write(m.ValidationSeconds);
        }
    }

    /// <summary>Reads a <c>ckpt</c> payload; every count is checked against the bytes present and the data order must be a permutation.</summary>
    public static FitState Read(ReadOnlySpan<byte> p, string name)
    {
        var r = new Reader(p, name);
        uint layout = r.U32();
        if (layout != LayoutVersion) throw new InvalidDataException($"{name}: training state layout {layout} is not supported (this HpCnn reads {LayoutVersion})");
        var s = new FitState
        {
            Sequence = r.I64(),
            BatchSize = r.I32(),
            Shuffle = r.Bool(),
            ShuffleSeed = r.U64(),
            TrainCount = r.I32(),
            TrainFingerprint = r.U64(),
            ValidationCount = r.I32(),
            ValidationFingerprint = r.U64(),
            EpochsRequested = r.I32(),
            Epoch = r.I32(),
            NextBatch = r.I32(),
            Shuffled = r.Bool(),
            Finished = r.Bool(),
        };
        int reasonLength = r.I32();
        s.StopReason = reasonLength == 0 ? null : Encoding.UTF8.GetString(r.Bytes(reasonLength));
        s.RestoredEpoch = r.I32();
        s.Rng = (r.U64(), r.U64(), r.U64(), r.U64(), r.F64(), r.Bool());
        int count = r.I32();
        if (count != s.TrainCount) throw new InvalidDataException($"{name}: the data order holds {count} entries for {s.TrainCount} training samples");
        var seen = new bool[count];
        s.Order = new int[count];
        for (int i = 0; i < count; i++)
        {
            int v = r.I32();
            if ((uint)v >= (uint)count || seen[v]) throw new InvalidDataException($"{name}: the data order is not a permutation (entry {i} is {v})");
            seen[v] = true;
            s.Order[i] = v;
        }
        s.LossSum = r.F64();
        s.Correct = r.I64();
        s.Seen = r.I32();
        s.Seconds = r.F64();
        s.BestMetric = r.F64();
        s.SinceBest = r.I32();
        s.BestEpoch = r.I32();
        int epochs = r.I32();
        for (int i = 0; i < epochs; i++)
        {
            int epoch = r.I32();
            double loss = r.F64(), acc = r.F64();
            bool hasVal = r.Bool();
            double valLoss = r.F64(), valAcc = r.F64(), seconds = r.F64(), sps = r.F64();
            float lr = r.F32();
            double valSeconds = r.F64();
            s.History.Add(new EpochMetrics(epoch, loss, acc, hasVal ? valLoss : null, hasVal ? valAcc : null, seconds, sps, lr, valSeconds));
        }
        if (!r.AtEnd) throw new InvalidDataException($"{name}: the training state has {r.Remaining} unexpected trailing bytes");
        if (s.BatchSize < 1 || s.Epoch < 1 || s.NextBatch < 0 || s.Seen < 0 || s.Seen > count || s.TrainCount < 1)
            throw new InvalidDataException($"{name}: the training state is inconsistent (batch size {s.BatchSize}, epoch {s.Epoch}, batch {s.NextBatch}, {s.Seen} of {count} samples seen)");
        return s;
    }

    /// <summary>A 64-bit digest of a dataset's images and labels (a resume must see the data the run started with).</summary>
    public static ulong Fingerprint(Dataset? d)
    {
        if (d is null) return 0;
        // Rng.Mix over 8-byte words: no library dependency for a guard that only has to tell different data apart.
        ulong h = (ulong)d.Count;
        var words = MemoryMarshal.Cast<float, ulong>(d.Images.AsSpan());
        for (int i = 0; i < words.Length; i++) h = HpCnn.Rng.Mix(h ^ words[i], (ulong)i);
        if ((d.Images.Length & 1) != 0) h = HpCnn.Rng.Mix(h ^ BitConverter.SingleToUInt32Bits(d.Images[^1]), (ulong)words.Length);
        foreach (var word in MemoryMarshal.Cast<int, ulong>(d.Labels.AsSpan())) h = HpCnn.Rng.Mix(h, word);
        if ((d.Labels.Length & 1) != 0) h = HpCnn.Rng.Mix(h, (ulong)d.Labels[^1]);
        return h;
    }

    private ref struct Reader(ReadOnlySpan<byte> data, string name)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;
        public readonly bool AtEnd => _pos == _data.Length;
        public readonly int Remaining => _data.Length - _pos;

        public ReadOnlySpan<byte> Bytes(int n)
        {
            if (n < 0 || n > _data.Length - _pos) throw new InvalidDataException($"{name}: the training state is truncated (needs {n} bytes at offset {_pos}, {_data.Length - _pos} left)");
            var s = _data.Slice(_pos, n);
            _pos += n;
            return s;
        }

        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4));
        public int I32() => BinaryPrimitives.ReadInt32LittleEndian(Bytes(4));
        public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8));
        public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Bytes(8));
        public double F64() => BinaryPrimitives.ReadDoubleLittleEndian(Bytes(8));
        public float F32() => BinaryPrimitives.ReadSingleLittleEndian(Bytes(4));
        public bool Bool() => Bytes(1)[0] switch
        {
            0 => false,
            1 => true,
            var b => throw new InvalidDataException($"{name}: the training state has {b} where a flag (0 or 1) belongs"),
        };
    }
}

/// <summary>
/// A training checkpoint (written by <see cref="Sequential.Fit"/> with <see cref="FitOptions.CheckpointDirectory"/>): the
/// model with its optimizer state, and where the fit was. <see cref="Load"/> takes the newest good one of a folder.
/// </summary>
public sealed class Checkpoint
{
    private const string Prefix = "checkpoint-", Extension = ".hpcnn";
    /// <summary>Checkpoints kept in a folder: the newest, and the one before it in case the newest is damaged.</summary>
    public const int Kept = 2;

    private Checkpoint(string path, LoadedModel loaded, FitState state)
    {
        FilePath = path;
        Loaded = loaded;
        State = state;
    }

    /// <summary>The checkpoint file.</summary>
    public string FilePath { get; }
    /// <summary>The model as it was: weights, optimizer state and steps, epochs trained, metadata.</summary>
    public Sequential Model => Loaded.Model;
    internal LoadedModel Loaded { get; }
    internal FitState State { get; }
    /// <summary>Checkpoints of the run before this one (its number in the file name).</summary>
    public long Sequence => State.Sequence;
    /// <summary>Epochs of the fit completed.</summary>
    public int EpochsCompleted => State.History.Count;
    /// <summary>Epochs the fit was asked for.</summary>
    public int EpochsRequested => State.EpochsRequested;
    /// <summary>Batches done in the epoch in progress.</summary>
    public int BatchesDone => State.Shuffled ? State.NextBatch : 0;
    /// <summary>The fit had ended (every epoch ran, or early stopping).</summary>
    public bool Finished => State.Finished || State.Epoch > State.EpochsRequested;
    public int BatchSize => State.BatchSize;
    public ulong ShuffleSeed => State.ShuffleSeed;
    public bool Shuffle => State.Shuffle;
    /// <summary>Metrics of the completed epochs.</summary>
    public IReadOnlyList<EpochMetrics> History => State.History;

    /// <summary>The checkpoint files of <paramref name="directory"/>, oldest first (none when it does not exist).</summary>
    public static IReadOnlyList<string> List(string directory)
    {
        if (!Directory.Exists(directory)) return [];
        return Directory.EnumerateFiles(directory, Prefix + "*" + Extension)
            .Select(f => (Path: f, Seq: SequenceOf(f)))
            .Where(x => x.Seq >= 0)
            .OrderBy(x => x.Seq)
            .Select(x => x.Path)
            .ToList();
    }

    private static long SequenceOf(string path)
    {
        string n = Path.GetFileName(path);
        if (!n.StartsWith(Prefix, StringComparison.Ordinal) || !n.EndsWith(Extension, StringComparison.Ordinal)) return -1;
        return long.TryParse(n.AsSpan(Prefix.Length, n.Length - Prefix.Length - Extension.Length), NumberStyles.None, CultureInfo.InvariantCulture, out long s) ? s : -1;
    }

    /// <summary>
    /// The newest good checkpoint of <paramref name="directory"/>. A damaged one (checksum, truncation, bad state) is
    /// renamed to <c>*.corrupt</c>, reported through <paramref name="onMessage"/> (standard error when null) and the one
    /// before it is used. Throws <see cref="FileNotFoundException"/> when the folder holds none, and
    /// <see cref="InvalidDataException"/> when none of them is good.
    /// </summary>
    public static Checkpoint Load(string directory, Action<string>? onMessage = null, long maxFlopsPerImage = ComputeBudget.DefaultFlopsPerImage) =>
        TryLoad(directory, onMessage, maxFlopsPerImage)
        ?? throw new FileNotFoundException(Directory.Exists(directory)
            ? $"no checkpoint in {directory} (checkpoint-*.hpcnn files are written by training with a checkpoint directory)"
            : $"checkpoint directory not found: {directory}", directory);

    /// <summary>As <see cref="Load"/>, but null when the folder holds no checkpoint.</summary>
    internal static Checkpoint? TryLoad(string directory, Action<string>? onMessage, long maxFlopsPerImage)
    {
        if (File.Exists(directory)) throw new IOException($"checkpoint directory {directory} is a file (give the folder the checkpoints are written to)");
        var files = List(directory);
        var failures = new List<string>();
        for (int i = files.Count - 1; i >= 0; i--)
        {
            string f = files[i];
            try
            {
                var ck = Read(f, maxFlopsPerImage);
                if (failures.Count > 0)
                    Notify(onMessage, $"resuming from the previous good checkpoint, {f}");
                return ck;
            }
            catch (InvalidDataException e)
            {
                failures.Add(e.Message);
                string moved = f + ".corrupt";
                Notify(onMessage, $"checkpoint {f} is unusable and was renamed to {Path.GetFileName(moved)}: {e.Message}");
                try { File.Move(f, moved, overwrite: true); }
                catch (IOException) { }
                catch (UnauthorizedAccessException) { }
            }
        }
        if (failures.Count > 0)
            throw new InvalidDataException($"no usable checkpoint in {directory}: {string.Join("; ", failures)}");
        return null;
    }

    private static Checkpoint Read(string path, long maxFlopsPerImage)
    {
        long len = new FileInfo(path).Length;
        if (len > ModelFile.MaxFileBytes) throw new InvalidDataException($"{path}: {len} bytes is larger than a checkpoint can be");
        var loaded = ModelFile.Read(File.ReadAllBytes(path), path, maxFlopsPerImage);
        if (!loaded.OptionalChunks.TryGetValue("ckpt", out var ckpt))
            throw new InvalidDataException($"{path}: a model file without training state (no ckpt chunk), not a checkpoint");
        if (loaded.Model.Optimizer is null) throw new InvalidDataException($"{path}: the checkpoint's model has no optimizer");
        var state = FitState.Read(ckpt, path);
        if (loaded.OptionalChunks.TryGetValue("best", out var best))
            state.BestWeights = ModelFile.ReadTensorArrays(best, loaded.Model, path, "best");
        return new Checkpoint(path, loaded, state);
    }

    internal static void Notify(Action<string>? onMessage, string message)
    {
        if (onMessage is not null) onMessage(message);
        else Console.Error.WriteLine($"hpcnn: {message}");
    }

    /// <summary>The next sequence number in <paramref name="directory"/> (one past the newest, damaged ones included).</summary>
    internal static long NextSequence(string directory)
    {
        if (!Directory.Exists(directory)) return 1;
        long max = 0;
        foreach (var f in Directory.EnumerateFiles(directory, Prefix + "*"))
        {
            string name = Path.GetFileName(f);
            int ext = name.IndexOf(Extension, StringComparison.Ordinal);
            if (ext > Prefix.Length && long.TryParse(name.AsSpan(Prefix.Length, ext - Prefix.Length), NumberStyles.None, CultureInfo.InvariantCulture, out long s))
                max = Math.Max(max, s);
        }
        return max + 1;
    }

    /// <summary>
    /// Writes <paramref name="model"/> and <paramref name="state"/> as checkpoint <paramref name="state"/>.Sequence, atomically
    /// and durably, then deletes all but the <see cref="Kept"/> newest. Refuses (ArithmeticException) to write a model whose
    /// weights are not finite, so the last good checkpoint survives a diverging run.
    /// </summary>
    internal static string Write(string directory, Sequential model, FitState state)
    {
        foreach (var l in model.Layers)
            foreach (var p in l.Parameters)
                if (!float.IsFinite(TensorPrimitives.MaxMagnitude<float>(p.Value)))
                    throw new ArithmeticException($"fit: {l.Label} {p.Name} holds NaN or infinite values after {model.Optimizer?.Steps} steps: training diverged (lower the learning rate)" +
                        (List(directory).LastOrDefault() is { } last ? $"; the last good checkpoint, {last}, is kept" : ""));
        Directory.CreateDirectory(directory);
        var extra = new List<(string, Action<BinaryWriter>)> { ("ckpt", state.Write) };
        if (state.BestWeights is { } best) extra.Add(("best", w => ModelFile.WriteTensors(w, model, best)));
        var bytes = ModelFile.ToBytes(model, null, extra);
        string path = Path.Combine(directory, $"{Prefix}{state.Sequence:D8}{Extension}");
        AtomicFile.Write(path, bytes);
        var files = List(directory);
        bool deleted = false;
        for (int i = 0; i < files.Count - Kept; i++)
        {
            File.Delete(files[i]);
            deleted = true;
        }
        if (deleted) AtomicFile.FlushDirectory(directory);
        return path;
    }
}
