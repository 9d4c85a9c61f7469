using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using HpCnn.Layers;

namespace HpCnn.IO;

/// <summary>A model read from a file, with what the file carried besides the weights.</summary>
/// <param name="Model">the network, its weights, loss, optimizer (with state) and epochs trained</param>
/// <param name="InitialWeights">the weights before training, one array per parameter in model order (null if not saved)</param>
/// <param name="Epochs">training defaults from the spec</param>
/// <param name="BatchSize">training defaults from the spec</param>
public sealed record LoadedModel(Sequential Model, float[][]? InitialWeights, int? Epochs, int? BatchSize)
{
    /// <summary>Optional (lower-case) chunks other than <c>meta</c>, by tag: the checkpoint's training state.</summary>
    internal IReadOnlyDictionary<string, byte[]> OptionalChunks { get; init; } = new Dictionary<string, byte[]>();
}

/// <summary>
/// The HpCnn model file (docs/model-format.md). Little-endian:
/// <code>
/// "HPCNNMDL" (8 bytes)  u32 format version
/// chunks: 4-byte tag, u32 payload length, payload
///   SPEC  UTF-8 JSON network spec (architecture, seed, loss, optimizer, schedule)
///   STAT  u32 epochs trained, u64 optimizer steps
///   PARM  u32 tensor count; per tensor: u32 layer index, u8 name length, name, u8 rank, rank x u32 dims, f32 values
///   OPTM  optimizer state: u32 count; per entry: u32 tensor ordinal (PARM order), u8 slot (1, 2), f32 values
///   INIT  initial weights, laid out as PARM (optional)
///   meta  UTF-8 JSON object: application metadata, e.g. the training history (optional)
///   prep  UTF-8 JSON object: the preprocessing (pixel scale, standardisation, class names; optional)
///   END   (empty)
/// u32 CRC-32 of every byte before it
/// </code>
/// Tags whose first letter is lower case are optional and skipped by readers that do not know them; an unknown
/// upper-case tag is an error. Readers check the checksum first, then every length against the bytes present,
/// so a truncated, corrupted or hostile file gives a clear error, never a crash or a huge allocation.
/// </summary>
public static class ModelFile
{
    public static ReadOnlySpan<byte> Magic => "HPCNNMDL"u8;
    public const uint FormatVersion = 1;
    /// <summary>Largest file accepted.</summary>
    public const long MaxFileBytes = int.MaxValue - 64;
    private const int MaxNameBytes = 64, MaxRank = 8;

    /// <summary>
    /// Writes the model atomically and durably (<see cref="AtomicFile"/>: a temporary file flushed to the disk, renamed
    /// over <paramref name="path"/>, the folder flushed).
    /// </summary>
    public static void Save(Sequential model, string path, IReadOnlyList<float[]>? initialWeights = null)
    {
        var bytes = ToBytes(model, initialWeights);
        string full = Path.GetFullPath(path);
        string? dir = Path.GetDirectoryName(full);
        if (dir is not null && !Directory.Exists(dir)) throw new DirectoryNotFoundException($"cannot save the model: folder {dir} does not exist");
        if (Directory.Exists(full)) throw new IOException($"cannot save the model: {path} is a directory");
        AtomicFile.Write(full, bytes);
    }

    /// <summary>The file's bytes for <paramref name="model"/>.</summary>
    public static byte[] ToBytes(Sequential model, IReadOnlyList<float[]>? initialWeights = null) => ToBytes(model, initialWeights, []);

    /// <summary>The file's bytes with extra optional chunks (lower-case tags) before END.</summary>
    internal static byte[] ToBytes(Sequential model, IReadOnlyList<float[]>? initialWeights, IReadOnlyList<(string Tag, Action<BinaryWriter> Body)> extra)
    {
        ArgumentNullException.ThrowIfNull(model);
        var tensors = model.Layers.SelectMany(l => l.Parameters.Select(p => (Layer: l, Param: p))).ToList();
        if (initialWeights is not null)
        {
            if (initialWeights.Count != tensors.Count)
                throw new ArgumentException($"initial weights: {initialWeights.Count} arrays for {tensors.Count} parameters");
            for (int i = 0; i < tensors.Count; i++)
                if (initialWeights[i].Length != tensors[i].Param.Count)
                    throw new ArgumentException($"initial weights: array {i} holds {initialWeights[i].Length} values, {tensors[i].Layer.Label} {tensors[i].Param.Name} has {tensors[i].Param.Count}");
        }
        var ms = new MemoryStream();
        var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true);
        w.Write(Magic);
        w.Write(FormatVersion);

        WriteChunk(w, "SPEC", b => b.Write(Encoding.UTF8.GetBytes(NetworkSpec.ToJson(model, indented: false))));
        WriteChunk(w, "STAT", b => { b.Write((uint)model.EpochsTrained); b.Write((ulong)(model.Optimizer?.Steps ?? 0)); });
        WriteChunk(w, "PARM", b => WriteTensors(b, tensors, i => tensors[i].Param.Value));
        var state = new List<(int Ordinal, byte Slot, float[] Values)>();
        for (int i = 0; i < tensors.Count; i++)
        {
            if (tensors[i].Param.Moment1 is { } m1) state.Add((i, 1, m1));
            if (tensors[i].Param.Moment2 is { } m2) state.Add((i, 2, m2));
        }
        if (state.Count > 0)
            WriteChunk(w, "OPTM", b =>
            {
                b.Write((uint)state.Count);
                foreach (var (ord, slot, values) in state) { b.Write((uint)ord); b.Write(slot); WriteFloats(b, values); }
            });
        if (initialWeights is not null) WriteChunk(w, "INIT", b => WriteTensors(b, tensors, i => initialWeights[i]));
        if (model.Metadata is { } meta) WriteChunk(w, "meta", b => b.Write(Encoding.UTF8.GetBytes(meta)));
        if (!model.Preprocessing.IsNone) WriteChunk(w, "prep", b => b.Write(Encoding.UTF8.GetBytes(model.Preprocessing.ToJson())));
        foreach (var (tag, body) in extra)
        {
            if (tag.Length != 4 || tag[0] is < 'a' or > 'z' || tag is "meta" or "prep") throw new ArgumentException($"extra chunk tag '{tag}' must be 4 characters starting with a lower-case letter");
            WriteChunk(w, tag, body);
        }
        WriteChunk(w, "END ", _ => { });
        w.Flush();
        uint crc = System.IO.Hashing.Crc32.HashToUInt32(ms.GetBuffer().AsSpan(0, (int)ms.Length));
        w.Write(crc);
        w.Flush();
        return ms.ToArray();
    }

    private static void WriteChunk(BinaryWriter w, string tag, Action<BinaryWriter> body)
    {
        var ms = new MemoryStream();
        using (var b = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) body(b);
        w.Write(Encoding.ASCII.GetBytes(tag));
        w.Write((uint)ms.Length);
        w.Write(ms.GetBuffer(), 0, (int)ms.Length);
    }

    /// <summary>Every parameter of <paramref name="model"/> with its layer, in file order.</summary>
    internal static List<(Layer Layer, Parameter Param)> Tensors(Sequential model) =>
        model.Layers.SelectMany(l => l.Parameters.Select(p => (Layer: l, Param: p))).ToList();

    /// <summary>Writes arrays of <paramref name="model"/>'s parameter shapes, laid out as the PARM chunk.</summary>
    internal static void WriteTensors(BinaryWriter b, Sequential model, IReadOnlyList<float[]> values)
    {
        var tensors = Tensors(model);
        if (values.Count != tensors.Count) throw new ArgumentException($"{values.Count} arrays for {tensors.Count} parameters");
        WriteTensors(b, tensors, i => values[i]);
    }

    /// <summary>Reads arrays laid out as the PARM chunk, checked against <paramref name="model"/>'s parameters.</summary>
    internal static float[][] ReadTensorArrays(ReadOnlySpan<byte> payload, Sequential model, string name, string chunk)
    {
        var tensors = Tensors(model);
        var arrays = new float[tensors.Count][];
        ReadTensors(payload, tensors, name, chunk, (i, values) => arrays[i] = values.ToArray());
        return arrays;
    }

    private static void WriteTensors(BinaryWriter b, List<(Layer Layer, Parameter Param)> tensors, Func<int, float[]> values)
    {
        b.Write((uint)tensors.Count);
        for (int i = 0; i < tensors.Count; i++)
        {
            var (layer, p) = tensors[i];
            b.Write((uint)layer.Index);
            var name = Encoding.UTF8.GetBytes(p.Name);
            b.Write((byte)name.Length);
            b.Write(name);
            b.Write((byte)p.Shape.Length);
            foreach (int d in p.Shape) b.Write((uint)d);
            WriteFloats(b, values(i));
        }
    }

    private static void WriteFloats(BinaryWriter b, float[] values)
    {
        if (BitConverter.IsLittleEndian) b.Write(MemoryMarshal.AsBytes(values.AsSpan()));
        else foreach (float v in values) b.Write(v);
    }

    /// <summary>
    /// Reads a model file, refusing a network whose forward pass costs more than <paramref name="maxFlopsPerImage"/> per
    /// image (0: <see cref="ComputeBudget.DefaultFlopsPerImage"/>; the <see cref="InvalidDataException"/> names the layer).
    /// </summary>
    public static LoadedModel Load(string path, long maxFlopsPerImage = ComputeBudget.DefaultFlopsPerImage)
    {
        if (Directory.Exists(path))
            throw new FileNotFoundException($"{path} is a directory, not a model file" +
                (Directory.EnumerateFiles(path, "checkpoint-*.hpcnn").Any() ? " (it holds training checkpoints: resume with `hpcnn train --resume`, or load its newest with Checkpoint.Load)" : ""), path);
        if (!File.Exists(path)) throw new FileNotFoundException($"model file not found: {path}", path);
        long len = new FileInfo(path).Length;
        if (len > MaxFileBytes) throw new InvalidDataException($"{path}: {len} bytes is larger than a model file can be");
        return Read(File.ReadAllBytes(path), path, maxFlopsPerImage);
    }

    /// <summary>Reads a model from the bytes of a file; <paramref name="name"/> is used in messages.</summary>
    public static LoadedModel Read(ReadOnlySpan<byte> data, string name = "model file", long maxFlopsPerImage = ComputeBudget.DefaultFlopsPerImage)
    {
        long budget = ComputeBudget.Resolve(maxFlopsPerImage);
        try
        {
            return ReadCore(data, name, budget);
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{name}: {e.Message}", e);
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{name}: {e.Message}", e);
        }
    }

    /// <summary>Versions a later HpCnn could plausibly have written; a version field above it is a damaged header.</summary>
    private const uint PlausibleVersions = 1000;

    private static LoadedModel ReadCore(ReadOnlySpan<byte> data, string name, long flopBudget)
    {
        if (data.Length == 0) throw new InvalidDataException($"{name}: the file is empty (0 bytes), not an HpCnn model file");
        if (data.Length < 8 || !data[..8].SequenceEqual(Magic))
        {
            string hint = data.TrimStart(" \t\r\n"u8) is [(byte)'{', ..] ? " (it looks like a JSON network spec: build it with --net FILE, NetworkSpec.Load or from_spec)" : "";
            throw new InvalidDataException($"{name}: not an HpCnn model file (it does not start with \"HPCNNMDL\"){hint}");
        }
        if (data.Length < 8 + 4 + 4) throw new InvalidDataException($"{name}: truncated ({data.Length} bytes)");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(data[8..]);
        uint stored = BinaryPrimitives.ReadUInt32LittleEndian(data[^4..]);
        uint actual = System.IO.Hashing.Crc32.HashToUInt32(data[..^4]);
        if (version == 0 || version > PlausibleVersions)
            throw new InvalidDataException($"{name}: the header is corrupt: its format version field reads {version} (0x{version:X8}), which no HpCnn writes (this HpCnn {Engine.Version} reads versions 1 to {FormatVersion}); the file is damaged");
        if (version > FormatVersion) // a later format may lay the file out otherwise: say what the checksum says, but as a hint
            throw new InvalidDataException($"{name}: model format version {version} is not supported (this HpCnn {Engine.Version} reads versions 1 to {FormatVersion}; " +
                (stored == actual ? "a newer HpCnn wrote it)" : "a newer HpCnn wrote it, or the file is damaged: its checksum does not match)"));
        if (stored != actual)
            throw new InvalidDataException($"{name}: checksum mismatch (stored 0x{stored:X8}, computed 0x{actual:X8}): the file is corrupted or truncated");

        var body = data[12..^4];
        string? spec = null, meta = null, prep = null;
        int pos = 0, parmStart = -1, parmLen = 0, initStart = -1, initLen = 0, optmStart = -1, optmLen = 0;
        uint epochs = 0;
        ulong steps = 0;
        bool end = false, sawStat = false;
        var seen = new HashSet<string>();
        var optional = new Dictionary<string, byte[]>();
        while (!end)
        {
            if (body.Length - pos < 8) throw new InvalidDataException($"{name}: truncated chunk header at byte {12 + pos}");
            string tag = Encoding.ASCII.GetString(body.Slice(pos, 4));
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(body[(pos + 4)..]);
            pos += 8;
            if (length > body.Length - pos) throw new InvalidDataException($"{name}: chunk '{Printable(tag)}' claims {length} bytes, only {body.Length - pos} remain");
            var payload = body.Slice(pos, (int)length);
            int payloadStart = pos;
            pos += (int)length;
            if (!seen.Add(tag)) throw new InvalidDataException($"{name}: chunk '{Printable(tag)}' appears twice");
            switch (tag)
            {
                case "SPEC":
                    try { spec = new UTF8Encoding(false, true).GetString(payload); }
                    catch (ArgumentException) { throw new InvalidDataException($"{name}: the SPEC chunk is not valid UTF-8"); }
                    break;
                case "STAT":
                    if (length != 12) throw new InvalidDataException($"{name}: STAT chunk has {length} bytes, expected 12");
                    epochs = BinaryPrimitives.ReadUInt32LittleEndian(payload);
                    steps = BinaryPrimitives.ReadUInt64LittleEndian(payload[4..]);
                    if (epochs > 100_000_000) throw new InvalidDataException($"{name}: {epochs} epochs trained is not plausible");
                    sawStat = true;
                    break;
                case "meta":
                    try { meta = new UTF8Encoding(false, true).GetString(payload); }
                    catch (ArgumentException) { throw new InvalidDataException($"{name}: the meta chunk is not valid UTF-8"); }
                    break;
                case "prep":
                    try { prep = new UTF8Encoding(false, true).GetString(payload); }
                    catch (ArgumentException) { throw new InvalidDataException($"{name}: the prep chunk is not valid UTF-8"); }
                    break;
                case "PARM": parmStart = payloadStart; parmLen = (int)length; break;
                case "INIT": initStart = payloadStart; initLen = (int)length; break;
                case "OPTM": optmStart = payloadStart; optmLen = (int)length; break;
                case "END ":
                    if (length != 0) throw new InvalidDataException($"{name}: END chunk must be empty");
                    end = true;
                    break;
                default:
                    if (tag.Length == 4 && tag[0] is >= 'a' and <= 'z')
                    {
                        if (tag is "ckpt" or "best") optional[tag] = payload.ToArray(); // read by Checkpoint
                        break; // otherwise: an optional chunk of a later version
                    }
                    throw new InvalidDataException($"{name}: unknown chunk '{Printable(tag)}' (a newer HpCnn may have written it)");
            }
        }
        if (pos != body.Length) throw new InvalidDataException($"{name}: {body.Length - pos} bytes after the END chunk");
        if (spec is null) throw new InvalidDataException($"{name}: the SPEC chunk (network architecture) is missing");
        if (parmStart < 0) throw new InvalidDataException($"{name}: the PARM chunk (weights) is missing");
        if (!sawStat) throw new InvalidDataException($"{name}: the STAT chunk is missing");

        // The architecture may only create as many values as the file holds.
        long budget = parmLen / 4;
        NetworkDefinition def;
        try
        {
            def = NetworkSpec.Parse(spec, budget, flopBudget);
        }
        catch (FormatException e)
        {
            throw new InvalidDataException($"{name}: bad network spec: {e.Message}", e);
        }
        catch (InvalidDataException e) // the compute budget
        {
            throw new InvalidDataException($"{name}: {e.Message}", e);
        }
        var model = def.Model;
        var tensors = model.Layers.SelectMany(l => l.Parameters.Select(p => (Layer: l, Param: p))).ToList();
        ReadTensors(body.Slice(parmStart, parmLen), tensors, name, "PARM", (i, values) => values.CopyTo(tensors[i].Param.Value));
        foreach (var t in tensors) t.Param.MarkChanged();
        float[][]? init = null;
        if (initStart >= 0)
        {
            var arrays = new float[tensors.Count][];
            ReadTensors(body.Slice(initStart, initLen), tensors, name, "INIT", (i, values) => arrays[i] = values.ToArray());
            init = arrays;
        }
        if (optmStart >= 0) ReadOptimizerState(body.Slice(optmStart, optmLen), tensors, name);
        model.EpochsTrained = (int)epochs;
        if (meta is not null)
        {
            try { model.Metadata = meta; }
            catch (ArgumentException e) { throw new InvalidDataException($"{name}: the meta chunk is not a JSON object ({e.Message})", e); }
        }
        if (prep is not null)
        {
            try { model.Preprocessing = Data.Preprocessing.FromJson(prep); }
            catch (Exception e) when (e is InvalidDataException or ArgumentException)
            {
                throw new InvalidDataException($"{name}: the prep chunk: {e.Message}", e);
            }
        }
        else if (Data.Preprocessing.FromLegacyMetadata(meta) is { } legacy)
        {
            // A file `hpcnn train` wrote before the engine kept the preprocessing: its metadata held the standardisation and
            // class names. Statistics that do not fit the input are the application's own use of those keys: left out.
            try { model.Preprocessing = legacy; }
            catch (ArgumentException) { }
        }
        if (model.Optimizer is not null) model.Optimizer.Steps = (long)steps;
        return new LoadedModel(model, init, def.Epochs, def.BatchSize) { OptionalChunks = optional };
    }

    private static void ReadTensors(ReadOnlySpan<byte> p, List<(Layer Layer, Parameter Param)> tensors, string name, string chunk,
        SpanAction assign)
    {
        var r = new SpanReader(p, $"{name}: {chunk} chunk");
        uint count = r.U32();
        if (count != tensors.Count)
            throw new InvalidDataException($"{name}: {chunk} holds {count} tensors, the architecture has {tensors.Count} parameters");
        Span<int> dims = stackalloc int[MaxRank];
        for (int i = 0; i < tensors.Count; i++)
        {
            var (layer, param) = tensors[i];
            uint layerIndex = r.U32();
            int nameLen = r.U8();
            if (nameLen > MaxNameBytes) throw new InvalidDataException($"{name}: {chunk} tensor {i}: name of {nameLen} bytes is too long");
            string pname = Encoding.UTF8.GetString(r.Bytes(nameLen));
            if (layerIndex != layer.Index || pname != param.Name)
                throw new InvalidDataException($"{name}: {chunk} tensor {i} is layer {layerIndex} '{Printable(pname)}', expected {layer.Label} '{param.Name}'");
            int rank = r.U8();
            if (rank != param.Shape.Length)
                throw new InvalidDataException($"{name}: {chunk} {layer.Label} {param.Name} has {rank} dimensions, expected {param.Shape.Length}");
            for (int d = 0; d < rank; d++)
            {
                uint v = r.U32();
                if (v != param.Shape[d])
                    throw new InvalidDataException($"{name}: {chunk} {layer.Label} {param.Name} is {DimsText(r, d, v)}, expected {param.ShapeText}");
                dims[d] = (int)v;
            }
            assign(i, r.Floats(param.Count));
        }
        if (!r.AtEnd) throw new InvalidDataException($"{name}: {chunk} chunk has {r.Remaining} unexpected trailing bytes");
    }

    private static string DimsText(SpanReader r, int d, uint v) => $"dimension {d} = {v}";

    private delegate void SpanAction(int index, ReadOnlySpan<float> values);

    private static void ReadOptimizerState(ReadOnlySpan<byte> p, List<(Layer Layer, Parameter Param)> tensors, string name)
    {
        var r = new SpanReader(p, $"{name}: OPTM chunk");
        uint count = r.U32();
        if (count > 2L * tensors.Count) throw new InvalidDataException($"{name}: OPTM holds {count} entries, at most {2 * tensors.Count} fit this model");
        for (uint i = 0; i < count; i++)
        {
            uint ord = r.U32();
            if (ord >= tensors.Count) throw new InvalidDataException($"{name}: OPTM entry {i} names tensor {ord}, the model has {tensors.Count}");
            int slot = r.U8();
            if (slot is not (1 or 2)) throw new InvalidDataException($"{name}: OPTM entry {i} has slot {slot} (expected 1 or 2)");
            var param = tensors[(int)ord].Param;
            if (!param.Trainable) throw new InvalidDataException($"{name}: OPTM entry {i} is for {param.Name}, which is not trainable");
            var values = r.Floats(param.Count).ToArray();
            if (slot == 1) param.Moment1 = values; else param.Moment2 = values;
        }
        if (!r.AtEnd) throw new InvalidDataException($"{name}: OPTM chunk has {r.Remaining} unexpected trailing bytes");
    }

    private static string Printable(string s) => new(s.Select(c => c is >= ' ' and <= '~' ? c : '?').ToArray());

    /// <summary>Bounds-checked little-endian reads over a span.</summary>
    private ref struct SpanReader(ReadOnlySpan<byte> data, string what)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _pos;

        public readonly bool AtEnd => _pos == _data.Length;
        public readonly int Remaining => _data.Length - _pos;

        private ReadOnlySpan<byte> Take(long n)
        {
            if (n < 0 || n > _data.Length - _pos) throw new InvalidDataException($"{what} is truncated (needs {n} more bytes at offset {_pos}, {_data.Length - _pos} left)");
            var s = _data.Slice(_pos, (int)n);
            _pos += (int)n;
            return s;
        }

        public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
        public byte U8() => Take(1)[0];
        public ReadOnlySpan<byte> Bytes(int n) => Take(n);

        public ReadOnlySpan<float> Floats(int count)
        {
            var bytes = Take(4L * count);
            if (BitConverter.IsLittleEndian) return MemoryMarshal.Cast<byte, float>(bytes);
            var f = new float[count];
            for (int i = 0; i < count; i++) f[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(4 * i)..]);
            return f;
        }
    }
}
