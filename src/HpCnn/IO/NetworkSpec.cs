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
            var root = new Node(doc.RootElement, "spec");
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
                var node = new Node(le, $"layers[{i}]");
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
    public static Layer ParseLayer(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, MaxDepth = 8 });
            return ReadLayer(new Node(doc.RootElement, "layer"));
        }
        catch (JsonException e)
        {
            throw new FormatException($"layer: not valid JSON: {e.Message}", e);
        }
    }

    private static string StripLayerPrefix(string m)
    {
        // Layer messages start with "layer N (kind): "; the spec names the layer itself.
        int c = m.IndexOf("): ", StringComparison.Ordinal);
        return m.StartsWith("layer ", StringComparison.Ordinal) && c > 0 ? m[(c + 3)..] : m;
    }

    private static Layer ReadLayer(Node n)
    {
        n.RequireObject();
        string type = n.Required("type").String().ToLowerInvariant();
        var common = new[] { "type", "frozen", "name" };
        switch (type)
        {
            case "conv2d" or "conv":
                {
                    n.AllowOnly([.. common, "filters", "kernel", "stride", "padding", "bias", "in_channels", "init", "init_std"]);
                    int filters = n.Required("filters").Int(1, MaxDimension);
                    var kernel = n.Required("kernel").Pair(1, MaxKernel);
                    var stride = n.Optional("stride")?.Pair(1, MaxKernel) ?? (1, 1);
                    return new Conv2D(filters, kernel, stride, ReadPadding(n.Optional("padding")), n.Optional("bias")?.Bool() ?? true,
                        n.Optional("in_channels")?.Int(1, MaxDimension), ReadInit(n));
                }
            case "dense" or "linear":
                {
                    n.AllowOnly([.. common, "units", "bias", "in_features", "init", "init_std"]);
                    return new Dense(n.Required("units").Int(1, 1 << 24), n.Optional("bias")?.Bool() ?? true,
                        n.Optional("in_features")?.Int(1, 1 << 28), ReadInit(n));
                }
            case "maxpool2d" or "maxpool" or "avgpool2d" or "avgpool":
                {
                    n.AllowOnly([.. common, "kernel", "stride", "padding"]);
                    var kernel = n.Optional("kernel")?.Pair(1, MaxKernel) ?? (2, 2);
                    var stride = n.Optional("stride")?.Pair(1, MaxKernel);
                    var pad = ReadPadding(n.Optional("padding"));
                    return type.StartsWith("max") ? new MaxPool2D(kernel, stride, pad) : new AvgPool2D(kernel, stride, pad);
                }
            case "relu":
                n.AllowOnly([.. common, "cap"]);
                return new ReLU(n.Optional("cap")?.Float(1e-30, 1e30));
            case "leakyrelu" or "leaky_relu":
                n.AllowOnly([.. common, "alpha"]);
                return new LeakyReLU(n.Optional("alpha")?.Float(0, 0.999999) ?? 0.01f);
            case "sigmoid": n.AllowOnly(common); return new Sigmoid();
            case "tanh": n.AllowOnly(common); return new Tanh();
            case "softmax": n.AllowOnly(common); return new Softmax();
            case "flatten": n.AllowOnly(common); return new Flatten();
            case "featuremapnorm" or "mapnorm":
                n.AllowOnly([.. common, "epsilon"]);
                return new FeatureMapNorm(n.Optional("epsilon")?.Float(1e-30, 1) ?? 1e-5f);
            case "batchnorm2d" or "batchnorm":
                n.AllowOnly([.. common, "epsilon", "momentum"]);
                return new BatchNorm2D(n.Optional("epsilon")?.Float(1e-30, 1) ?? 1e-5f, n.Optional("momentum")?.Float(0, 1) ?? 0.1f);
            case "dropout":
                n.AllowOnly([.. common, "rate", "seed"]);
                return new Dropout(n.Required("rate").Float(0, 0.999999), n.Optional("seed")?.UInt64());
            default:
                throw new FormatException($"{n.Path}.type: unknown layer type '{type}' (known: conv2d, dense, maxpool2d, avgpool2d, relu, leakyrelu, sigmoid, tanh, softmax, flatten, featuremapnorm, batchnorm2d, dropout)");
        }
    }

    private static Padding? ReadPadding(Node? n)
    {
        if (n is null) return null;
        switch (n.Element.ValueKind)
        {
            case JsonValueKind.String:
                return n.String().ToLowerInvariant() switch
                {
                    "same" => Padding.Same,
                    "valid" => Padding.Valid,
                    var other => throw new FormatException($"{n.Path}: unknown padding '{other}' (use \"same\", \"valid\", a number or [top, left, bottom, right])"),
                };
            case JsonValueKind.Number:
                return Padding.Symmetric(n.Int(0, MaxKernel));
            case JsonValueKind.Array:
                {
                    var a = n.IntArray(2, 4, 0, MaxKernel);
                    if (a.Length == 3) throw new FormatException($"{n.Path}: give 2 values [vertical, horizontal] or 4 [top, left, bottom, right], not 3");
                    return a.Length == 2 ? Padding.Explicit(a[0], a[1], a[0], a[1]) : Padding.Explicit(a[0], a[1], a[2], a[3]);
                }
            default:
                throw new FormatException($"{n.Path}: expected \"same\", \"valid\", a number or [top, left, bottom, right], got {n.Kind}");
        }
    }

    private static Initializer? ReadInit(Node n)
    {
        var i = n.Optional("init");
        if (i is null)
        {
            if (n.Optional("init_std") is not null) throw new FormatException($"{n.Path}.init_std: only used with \"init\": \"normal\"");
            return null;
        }
        return i.String().ToLowerInvariant() switch
        {
            "default" => Initializer.Default,
            "he" or "kaiming" => Initializer.He,
            "xavier" or "glorot" => Initializer.Xavier,
            "normal" => Initializer.Normal(n.Optional("init_std")?.Float(1e-30, 1e6) ?? 0.01f),
            var other => throw new FormatException($"{i.Path}: unknown initializer '{other}' (use default, he, xavier or normal)"),
        };
    }

    private static Optimizer ReadOptimizer(Node n)
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

    private static LearningRateSchedule ReadSchedule(Node n)
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

    /// <summary>A JSON value with the path used in messages.</summary>
    private sealed class Node(JsonElement element, string path)
    {
        public JsonElement Element { get; } = element;
        public string Path { get; } = path;
        public string Kind => Element.ValueKind switch
        {
            JsonValueKind.String => $"the string \"{Element.GetString()}\"",
            JsonValueKind.Number => $"the number {Element.GetRawText()}",
            JsonValueKind.True or JsonValueKind.False => Element.GetRawText(),
            JsonValueKind.Array => "an array",
            JsonValueKind.Object => "an object",
            _ => "null",
        };

        public void RequireObject()
        {
            if (Element.ValueKind != JsonValueKind.Object) throw new FormatException($"{Path}: expected an object, got {Kind}");
        }

        public void RequireArray()
        {
            if (Element.ValueKind != JsonValueKind.Array) throw new FormatException($"{Path}: expected an array, got {Kind}");
        }

        public void AllowOnly(params string[] names)
        {
            foreach (var p in Element.EnumerateObject())
                if (Array.IndexOf(names, p.Name) < 0)
                {
                    string? near = names.OrderBy(n => Distance(n, p.Name)).FirstOrDefault();
                    string hint = near is not null && Distance(near, p.Name) <= 2 ? $" (did you mean '{near}'?)" : $" (allowed: {string.Join(", ", names)})";
                    throw new FormatException($"{Path}: unknown field '{p.Name}'{hint}");
                }
        }

        public Node Required(string name) =>
            Optional(name) ?? throw new FormatException($"{Path}: missing required field '{name}'");

        public Node? Optional(string name) =>
            Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
                ? new Node(v, $"{Path}.{name}") : null;

        public string String() =>
            Element.ValueKind == JsonValueKind.String ? Element.GetString()! : throw new FormatException($"{Path}: expected a string, got {Kind}");

        public bool Bool() => Element.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new FormatException($"{Path}: expected true or false, got {Kind}"),
        };

        public int Int(int min, int max)
        {
            if (Element.ValueKind != JsonValueKind.Number || !Element.TryGetInt64(out long v))
                throw new FormatException($"{Path}: expected a whole number, got {Kind}");
            if (v < min || v > max) throw new FormatException($"{Path}: {v} is out of range [{min}, {max}]");
            return (int)v;
        }

        public ulong UInt64()
        {
            if (Element.ValueKind != JsonValueKind.Number || !Element.TryGetUInt64(out ulong v))
                throw new FormatException($"{Path}: expected a non-negative whole number, got {Kind}");
            return v;
        }

        public float Float(double min, double max)
        {
            if (Element.ValueKind != JsonValueKind.Number || !Element.TryGetDouble(out double v) || !double.IsFinite(v))
                throw new FormatException($"{Path}: expected a number, got {Kind}");
            if (v < min || v > max) throw new FormatException($"{Path}: {v.ToString(CultureInfo.InvariantCulture)} is out of range [{min.ToString(CultureInfo.InvariantCulture)}, {max.ToString(CultureInfo.InvariantCulture)}]");
            return (float)v;
        }

        public (int, int) Pair(int min, int max)
        {
            if (Element.ValueKind == JsonValueKind.Number) { int v = Int(min, max); return (v, v); }
            var a = IntArray(2, 2, min, max);
            return (a[0], a[1]);
        }

        public int[] IntArray(int minLen, int maxLen, int min, int max)
        {
            if (Element.ValueKind != JsonValueKind.Array)
                throw new FormatException($"{Path}: expected {(minLen == maxLen ? $"an array of {minLen}" : "an array")} numbers, got {Kind}");
            int len = Element.GetArrayLength();
            if (len < minLen || len > maxLen)
                throw new FormatException($"{Path}: expected {(minLen == maxLen ? $"{minLen}" : $"{minLen} to {maxLen}")} values, got {len}");
            var r = new int[len];
            int i = 0;
            foreach (var e in Element.EnumerateArray()) { r[i] = new Node(e, $"{Path}[{i}]").Int(min, max); i++; }
            return r;
        }

        private static int Distance(string a, string b)
        {
            var d = new int[a.Length + 1, b.Length + 1];
            for (int i = 0; i <= a.Length; i++) d[i, 0] = i;
            for (int j = 0; j <= b.Length; j++) d[0, j] = j;
            for (int i = 1; i <= a.Length; i++)
                for (int j = 1; j <= b.Length; j++)
                    d[i, j] = Math.Min(Math.Min(d[i - 1, j] + 1, d[i, j - 1] + 1), d[i - 1, j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1));
            return d[a.Length, b.Length];
        }
    }
}
