using System.Globalization;
using System.Text;
using System.Text.Json;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.IO;

/// <summary>A network read from a JSON spec, with the training defaults the spec gives.</summary>
public sealed record NetworkDefinition(Sequential Model, int? Epochs, int? BatchSize);

/// <summary>
/// The JSON network spec (documented in README.md, "Network spec files"):
/// <code>
/// { "input": [1, 28, 28], "seed": 42,
///   "layers": [ {"type": "conv2d", "filters": 32, "kernel": 3, "padding": "same"}, {"type": "relu"}, ... ],
///   "loss": "cross_entropy",
///   "optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.9},
///   "schedule": {"type": "step", "step_size": 2, "gamma": 0.5},
///   "training": {"epochs": 3, "batch_size": 64} }
/// </code>
/// Every error names the field ("layers[2].kernel: ...") and what is wrong. Unknown fields are errors
/// (a typo must not be silently ignored).
/// </summary>
public static class NetworkSpec
{
    /// <summary>Limits that keep a hostile spec from asking for absurd allocations.</summary>
    public const int MaxLayers = 1000, MaxDimension = 1 << 16, MaxKernel = 1024, MaxSpecBytes = 1 << 20;

    /// <summary>Reads a spec file (refusing a network above the compute budget, see <see cref="ComputeBudget"/>).</summary>
    public static NetworkDefinition Load(string path, long maxFlopsPerImage = ComputeBudget.DefaultFlopsPerImage)
    {
        if (Directory.Exists(path)) throw new FileNotFoundException($"network spec {path} is a directory, not a JSON file", path);
        if (!File.Exists(path)) throw new FileNotFoundException($"network spec not found: {path}", path);
        var info = new FileInfo(path);
        if (info.Length > MaxSpecBytes) throw new InvalidDataException($"{path}: {info.Length} bytes is too large for a network spec (limit {MaxSpecBytes})");
        try
        {
            return Parse(File.ReadAllText(path), maxFlopsPerImage: maxFlopsPerImage);
        }
        catch (FormatException e)
        {
            throw new FormatException($"{path}: {e.Message}", e);
        }
        catch (InvalidDataException e) // the compute budget
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>Parses a spec. Throws <see cref="FormatException"/> naming the field for any problem.</summary>
    /// <param name="json">the spec text</param>
    /// <param name="parameterBudget">largest number of parameter values the network may have (model files pass what they hold)</param>
    /// <param name="maxFlopsPerImage">largest forward cost per image (0: <see cref="ComputeBudget.DefaultFlopsPerImage"/>); a network
    /// above it is refused with an <see cref="InvalidDataException"/> naming the layer that crosses it</param>
    public static NetworkDefinition Parse(string json, long parameterBudget = long.MaxValue, long maxFlopsPerImage = ComputeBudget.DefaultFlopsPerImage)
    {
        long flopBudget = ComputeBudget.Resolve(maxFlopsPerImage);
        if (Encoding.UTF8.GetByteCount(json) > MaxSpecBytes) throw new FormatException($"spec is larger than {MaxSpecBytes} bytes");
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip, MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new FormatException($"not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            var root = new SpecNode(doc.RootElement, "spec");
            root.RequireObject();
            root.AllowOnly("input", "seed", "layers", "loss", "optimizer", "schedule", "training", "name", "description");
            var inputArr = root.Required("input").IntArray(3, 3, 1, MaxDimension);
            var input = new Shape3(inputArr[0], inputArr[1], inputArr[2]);
            if ((long)input.C * input.H * input.W > 1L << 28) throw new FormatException($"spec.input: {input} is too large");
            ulong seed = root.Optional("seed") is { } s ? s.UInt64() : 42;
            var model = new Sequential(input, seed) { ParameterBudget = parameterBudget };
            var layers = root.Required("layers");
            layers.RequireArray();
            int count = layers.Element.GetArrayLength();
            if (count > MaxLayers) throw new FormatException($"spec.layers: {count} layers, more than the limit of {MaxLayers}");
            int i = 0;
            long flops = 0;
            foreach (var le in layers.Element.EnumerateArray())
            {
                var node = new SpecNode(le, $"layers[{i}]");
                var layer = ReadLayer(node);
                try
                {
                    model.Add(layer);
                }
                catch (ArgumentException e)
                {
                    throw new FormatException($"layers[{i}] ({layer.Kind}): {StripLayerPrefix(e.Message)}", e);
                }
                catch (InvalidDataException e)
                {
                    throw new FormatException($"layers[{i}] ({layer.Kind}): {e.Message}", e);
                }
                if (node.Optional("frozen") is { } fz && fz.Bool()) layer.Frozen = true;
                flops += layer.FlopsPerSample; // each term < 2^52 (dimensions and kernels are bounded above), at most 1000 of them
                if (flops > flopBudget)
                    throw new InvalidDataException(
                        $"layers[{i}] ({layer.Kind}, {layer.Describe()}, output {layer.OutputShape}): the forward pass would cost {ComputeBudget.Gflop(flops)} per image " +
                        $"(this layer {ComputeBudget.Gflop(layer.FlopsPerSample)}), above the compute budget of {ComputeBudget.Gflop(flopBudget)} per image; " +
                        "if you trust this network, raise the budget (maxFlopsPerImage, --max-gflops, max_flops_per_image)");
                i++;
            }
            model.ParameterBudget = long.MaxValue;
            if (count == 0) throw new FormatException("spec.layers: the network needs at least one layer");

            int? epochs = null, batch = null;
            if (root.Optional("training") is { } tr)
            {
                tr.RequireObject();
                tr.AllowOnly("epochs", "batch_size");
                epochs = tr.Optional("epochs")?.Int(1, 1_000_000);
                batch = tr.Optional("batch_size")?.Int(1, 1 << 20);
            }
            var lossNode = root.Optional("loss");
            if (lossNode is not null)
            {
                LossKind loss;
                try { loss = LossKindNames.Parse(lossNode.String()); }
                catch (ArgumentException e) { throw new FormatException($"spec.loss: {e.Message}", e); }
                var opt = root.Optional("optimizer") is { } on ? ReadOptimizer(on) : new Sgd(0.01f);
                if (root.Optional("schedule") is { } sn) opt.Schedule = ReadSchedule(sn);
                try { model.Compile(loss, opt); }
                catch (ArgumentException e) { throw new FormatException($"spec.loss: {e.Message}", e); }
            }
            else if (root.Optional("optimizer") is not null)
            {
                throw new FormatException("spec.optimizer: an optimizer needs a loss (add \"loss\": \"cross_entropy\", \"binary_cross_entropy\" or \"mse\")");
            }
            return new NetworkDefinition(model, epochs, batch);
        }
    }

    /// <summary>One layer from a JSON object of the spec format (not yet added to a model).</summary>
    /// <param name="json">the layer object</param>
    /// <param name="what">how messages name the object ("layer"; the C ABI's old hpcnn_add_* functions pass their own name)</param>
    public static Layer ParseLayer(string json, string what = "layer")
    {
        if (Encoding.UTF8.GetByteCount(json) > MaxSpecBytes) throw new FormatException($"{what}: larger than {MaxSpecBytes} bytes");
        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, MaxDepth = 8 });
            return ReadLayer(new SpecNode(doc.RootElement, what));
        }
        catch (JsonException e)
        {
            throw new FormatException($"{what}: not valid JSON: {e.Message}", e);
        }
    }

    private static string StripLayerPrefix(string m)
    {
        // Layer messages start with "layer N (kind): "; the spec names the layer itself.
        int c = m.IndexOf("): ", StringComparison.Ordinal);
        return m.StartsWith("layer ", StringComparison.Ordinal) && c > 0 ? m[(c + 3)..] : m;
    }

    /// <summary>One layer object: its type reads its own fields (see <see cref="LayerType"/>).</summary>
    private static Layer ReadLayer(SpecNode n)
    {
        n.RequireObject();
        var typeNode = n.Required("type");
        string type = typeNode.String();
        var layerType = LayerTypes.Find(type)
            ?? throw new FormatException($"{typeNode.Path}: unknown layer type '{type.ToLowerInvariant()}' (known: {LayerTypes.Names})");
        return layerType.Read(n);
    }

    private static Optimizer ReadOptimizer(SpecNode n)
    {
        // "optimizer": "adam" is short for {"type": "adam"} with the defaults.
        bool shortForm = n.Element.ValueKind == JsonValueKind.String;
        if (!shortForm) n.RequireObject();
        string type = (shortForm ? n.String() : n.Required("type").String()).ToLowerInvariant();
        try
        {
            switch (type)
            {
                case "sgd":
                    if (!shortForm) n.AllowOnly("type", "lr", "momentum", "nesterov", "weight_decay");
                    return new Sgd(n.Optional("lr")?.Float(1e-12, 1e6) ?? 0.01f, n.Optional("momentum")?.Float(0, 0.999999) ?? 0f,
                        n.Optional("nesterov")?.Bool() ?? false, n.Optional("weight_decay")?.Float(0, 1e6) ?? 0f);
                case "adam":
                    if (!shortForm) n.AllowOnly("type", "lr", "beta1", "beta2", "epsilon", "weight_decay");
                    return new Adam(n.Optional("lr")?.Float(1e-12, 1e6) ?? 0.001f, n.Optional("beta1")?.Float(0, 0.999999) ?? 0.9f,
                        n.Optional("beta2")?.Float(0, 0.999999) ?? 0.999f, n.Optional("epsilon")?.Float(1e-30, 1) ?? 1e-8f,
                        n.Optional("weight_decay")?.Float(0, 1e6) ?? 0f);
                default:
                    throw new FormatException($"{n.Path}.type: unknown optimizer '{type}' (use sgd or adam)");
            }
        }
        catch (ArgumentException e)
        {
            throw new FormatException($"{n.Path}: {e.Message}", e);
        }
    }

    private static LearningRateSchedule ReadSchedule(SpecNode n)
    {
        n.RequireObject();
        string type = n.Required("type").String().ToLowerInvariant();
        switch (type)
        {
            case "step":
                n.AllowOnly("type", "step_size", "gamma");
                return new StepSchedule(n.Required("step_size").Int(1, 1_000_000), n.Optional("gamma")?.Float(1e-12, 1e6) ?? 0.1f);
            case "cosine":
                n.AllowOnly("type", "epochs", "min_factor");
                return new CosineSchedule(n.Required("epochs").Int(1, 1_000_000), n.Optional("min_factor")?.Float(0, 1) ?? 0f);
            default:
                throw new FormatException($"{n.Path}.type: unknown schedule '{type}' (use step or cosine)");
        }
    }

    /// <summary>The spec of a model (architecture, seed, loss, optimizer, schedule) as indented JSON.</summary>
    public static string ToJson(Sequential model, int? epochs = null, int? batchSize = null, bool indented = true)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = indented }))
        {
            w.WriteStartObject();
            w.WriteStartArray("input");
            w.WriteNumberValue(model.InputShape.C); w.WriteNumberValue(model.InputShape.H); w.WriteNumberValue(model.InputShape.W);
            w.WriteEndArray();
            w.WriteNumber("seed", model.Seed);
            w.WriteStartArray("layers");
            foreach (var l in model.Layers) l.WriteSpec(w);
            w.WriteEndArray();
            if (model.Loss is LossKind loss) w.WriteString("loss", loss.Name());
            if (model.Optimizer is { } opt)
            {
                w.WriteStartObject("optimizer");
                w.WriteString("type", opt.Kind);
                w.WriteNumber("lr", opt.LearningRate);
                switch (opt)
                {
                    case Sgd s:
                        if (s.Momentum != 0) w.WriteNumber("momentum", s.Momentum);
                        if (s.Nesterov) w.WriteBoolean("nesterov", true);
                        if (s.WeightDecay != 0) w.WriteNumber("weight_decay", s.WeightDecay);
                        break;
                    case Adam a:
                        w.WriteNumber("beta1", a.Beta1); w.WriteNumber("beta2", a.Beta2); w.WriteNumber("epsilon", a.Epsilon);
                        if (a.WeightDecay != 0) w.WriteNumber("weight_decay", a.WeightDecay);
                        break;
                }
                w.WriteEndObject();
                switch (opt.Schedule)
                {
                    case StepSchedule st:
                        w.WriteStartObject("schedule"); w.WriteString("type", "step"); w.WriteNumber("step_size", st.StepSize); w.WriteNumber("gamma", st.Gamma); w.WriteEndObject();
                        break;
                    case CosineSchedule cs:
                        w.WriteStartObject("schedule"); w.WriteString("type", "cosine"); w.WriteNumber("epochs", cs.Epochs); w.WriteNumber("min_factor", cs.MinFactor); w.WriteEndObject();
                        break;
                }
            }
            if (epochs is not null || batchSize is not null)
            {
                w.WriteStartObject("training");
                if (epochs is int e) w.WriteNumber("epochs", e);
                if (batchSize is int b) w.WriteNumber("batch_size", b);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }
}
