using System.Globalization;
using System.Text.Json;
using Google.Protobuf;
using HpCnn.Layers;
using HpCnn.Training;
using static HpCnn.Onnx.OnnxGraphBuilder;
using OnnxPb = global::Onnx;

namespace HpCnn.Onnx;

/// <summary>Options of <see cref="OnnxExport"/>.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>
    /// Puts the model's standardisation (<see cref="Sequential.Preprocessing"/>) in front of the graph: Sub mean, then Mul 1/std (global, as the engine applies it) or Div std
    /// (per pixel), so the exported graph takes raw pixels. Without it the graph takes standardised input, like the model.
    /// </summary>
    public bool EmbedStandardization { get; init; }
}

/// <summary>
/// Writes a <see cref="Sequential"/> as an ONNX model (opset 13, IR version 7): one standard operator (or two) per layer,
/// input "input" float [batch, C, H, W], output "output" float [batch, outputs] holding what
/// <see cref="Sequential.Predict(ReadOnlySpan{float}, int)"/> gives (a Softmax or Sigmoid is appended when the model is
/// compiled with cross-entropy or binary cross-entropy and does not end with one). The batch dimension is symbolic.
/// </summary>
public static class OnnxExport
{
    public const int Opset = 13;
    /// <summary>IR version 7 (ONNX 1.8), the version that goes with opset 13: read by every ONNX Runtime and checker since.</summary>
    public const long IrVersion = 7;

    /// <summary>Saves <paramref name="model"/> as an ONNX file (atomically: a temporary file renamed over the path).</summary>
    public static void Save(Sequential model, string path, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(path);
        var bytes = ToBytes(model, options);
        string full = Path.GetFullPath(path);
        string tmp = full + ".tmp-" + Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        try
        {
            File.WriteAllBytes(tmp, bytes);
            File.Move(tmp, full, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { }
            throw;
        }
    }

    /// <summary>The ONNX model as bytes (a serialized ModelProto).</summary>
    public static byte[] ToBytes(Sequential model, OnnxExportOptions? options = null) => Build(model, options ?? new OnnxExportOptions()).ToByteArray();

    internal static OnnxPb.ModelProto Build(Sequential model, OnnxExportOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Layers.Count == 0) throw new InvalidOperationException("export: the model has no layers");
        var g = new OnnxGraphBuilder();
        g.Graph.Name = "hpcnn";
        var prep = model.Preprocessing;
        var input = model.InputShape;
        g.Unique("input");
        g.Graph.Input.Add(FloatValue("input", "batch", input.C, input.H, input.W));
        string x = "input";
        if (options.EmbedStandardization)
        {
            if (prep.Standardization is not { } st)
                throw new InvalidOperationException("export: the model has no standardization to embed (set model.Preprocessing, or fit on a standardised Dataset)");
            x = EmbedStandardization(g, x, st, input);
        }

        // Each layer writes its own operators (Layer.WriteOnnx); the graph tracks whether the tensor is an image or flat.
        var lg = new LayerGraph(g);
        foreach (var layer in model.Layers)
            x = layer.WriteOnnx(lg, x, $"{layer.Kind}_{layer.Index}");

        bool last = model.Layers[^1] is Softmax or Sigmoid;
        if (!last && model.Loss == LossKind.CrossEntropy)
        {
            x = g.Node("Softmax", "probabilities", [lg.AsFlat(x, "probabilities")], Int("axis", -1));
        }
        else if (!last && model.Loss == LossKind.BinaryCrossEntropy)
            x = g.Node("Sigmoid", "probabilities", [x]);
        if (x == "input" || !g.Graph.Node[^1].Output.Contains(x)) x = g.Node("Identity", "output", [x]);
        // The last node writes the graph output.
        g.Graph.Node[^1].Output[0] = "output";
        var o = model.OutputShape;
        g.Graph.Output.Add(lg.Rank == 4 ? FloatValue("output", "batch", o.C, o.H, o.W) : FloatValue("output", "batch", o.Size));

        var m = new OnnxPb.ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "HpCnn",
            ProducerVersion = HpCnnVersion,
            Graph = g.Graph,
            DocString = "exported by HpCnn",
        };
        m.OpsetImport.Add(new OnnxPb.OperatorSetIdProto { Domain = "", Version = Opset });
        AddProp(m, "hpcnn_version", HpCnnVersion);
        if (prep.ClassNames is { } names) AddProp(m, "class_names", JsonSerializeStrings(names));
        // The whole record (pixel scale too), read back by OnnxImport; the standardisation in it is what the graph's leading
        // nodes apply when hpcnn_standardization_embedded is true, and what the input must have had otherwise.
        if (!prep.IsNone) AddProp(m, "hpcnn_preprocessing", prep.ToJson());
        if (model.Loss is { } loss) AddProp(m, "hpcnn_loss", loss.Name());
        AddProp(m, "hpcnn_spec", IO.NetworkSpec.ToJson(model, indented: false));
        if (model.Metadata is { } md) AddProp(m, "hpcnn_metadata", md);
        AddProp(m, "hpcnn_standardization_embedded", options.EmbedStandardization ? "true" : "false");
        return m;
    }

    /// <summary>The engine's version ("0.1.0").</summary>
    public static string HpCnnVersion => Engine.Version;

    private static void AddProp(OnnxPb.ModelProto m, string key, string value) => m.MetadataProps.Add(new OnnxPb.StringStringEntryProto { Key = key, Value = value });

    private static string JsonSerializeStrings(IReadOnlyList<string> values)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartArray();
            foreach (var v in values) w.WriteStringValue(v);
            w.WriteEndArray();
        }
        return System.Text.Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>The layers' view of the graph being built: tracks the rank of the current tensor (4: an image, 2: flat).</summary>
    private sealed class LayerGraph(OnnxGraphBuilder g) : IOnnxGraph
    {
        public int Rank = 4;

        /// <summary>After a flatten, a C x 1 x 1 vector goes back to [batch, C, 1, 1].</summary>
        public string AsImage(string x, Shape3 shape, string name)
        {
            if (Rank == 4) return x;
            Rank = 4;
            return g.Node("Reshape", name + "_to_image", [x, g.Int64s(name + ".image_shape", 0, shape.C, shape.H, shape.W)]);
        }

        public string AsFlat(string x, string name)
        {
            if (Rank == 2) return x;
            Rank = 2;
            return g.Node("Flatten", name.StartsWith("flatten", StringComparison.Ordinal) ? name : name + "_flatten", [x], Int("axis", 1));
        }

        public string Floats(string name, ReadOnlySpan<float> values, params long[] dims) => g.Floats(name, values, dims);

        public string Node(string opType, string name, string[] inputs, params OnnxAttribute[] attributes) =>
            g.Node(opType, name, inputs, [.. attributes.Select(ToProto)]);

        private static OnnxPb.AttributeProto ToProto(OnnxAttribute a) =>
            a.IntsValue is { } ints ? Ints(a.Name, ints)
            : a.FloatValue is float f ? Float(a.Name, f)
            : Int(a.Name, a.IntValue ?? throw new ArgumentException($"attribute {a.Name} has no value"));
    }

    private static string EmbedStandardization(OnnxGraphBuilder g, string x, Data.Standardization st, Shape3 input)
    {
        if (st.Mode == Data.StandardizeMode.Global)
        {
            // The engine subtracts the mean, then multiplies by 1/std (computed in float).
            x = g.Node("Sub", "standardize_sub", [x, g.Floats("standardize.mean", [st.Mean[0]])]);
            return g.Node("Mul", "standardize_mul", [x, g.Floats("standardize.inv_std", [1f / st.Std[0]])]);
        }
        if (st.Mean.Length != input.Size)
            throw new InvalidOperationException($"export: the standardization is per pixel for images of {st.Mean.Length} values, the model takes {input} ({input.Size})");
        x = g.Node("Sub", "standardize_sub", [x, g.Floats("standardize.mean", st.Mean, 1, input.C, input.H, input.W)]);
        return g.Node("Div", "standardize_div", [x, g.Floats("standardize.std", st.Std, 1, input.C, input.H, input.W)]);
    }
}
