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

        int rank = 4;
        var shape = input;
        foreach (var layer in model.Layers)
        {
            string name = $"{layer.Kind}_{layer.Index}";
            switch (layer)
            {
                case Conv2D c:
                    {
                        x = ToImage(g, x, ref rank, shape, name);
                        var s = c.Shape;
                        var inputs = new List<string> { x, g.Floats(name + ".weight", c.Weight.Value, c.OutChannels, s.InC, s.KH, s.KW) };
                        if (c.Bias is { } b) inputs.Add(g.Floats(name + ".bias", b.Value, c.OutChannels));
                        x = g.Node("Conv", name, [.. inputs], Ints("kernel_shape", s.KH, s.KW), Ints("strides", s.StrideH, s.StrideW),
                            Ints("pads", s.PadTop, s.PadLeft, s.PadBottom, s.PadRight), Ints("dilations", 1, 1), Int("group", 1));
                        break;
                    }
                case Dense d:
                    {
                        x = ToFlat(g, x, ref rank, name);
                        var inputs = new List<string> { x, g.Floats(name + ".weight", d.Weight.Value, d.Units, d.InFeatures) };
                        if (d.Bias is { } b) inputs.Add(g.Floats(name + ".bias", b.Value, d.Units));
                        x = g.Node("Gemm", name, [.. inputs], Float("alpha", 1), Float("beta", 1), Int("transA", 0), Int("transB", 1));
                        break;
                    }
                case ReLU r when r.Cap is float cap:
                    x = g.Node("Clip", name, [x, g.Floats(name + ".min", [0f]), g.Floats(name + ".max", [cap])]);
                    break;
                case ReLU:
                    x = g.Node("Relu", name, [x]);
                    break;
                case LeakyReLU l:
                    x = g.Node("LeakyRelu", name, [x], Float("alpha", l.Alpha));
                    break;
                case Sigmoid:
                    x = g.Node("Sigmoid", name, [x]);
                    break;
                case Tanh:
                    x = g.Node("Tanh", name, [x]);
                    break;
                case Softmax:
                    x = ToFlat(g, x, ref rank, name);
                    x = g.Node("Softmax", name, [x], Int("axis", -1));
                    break;
                case MaxPool2D or AvgPool2D:
                    {
                        x = ToImage(g, x, ref rank, shape, name);
                        var s = ((Pool2D)layer).Shape;
                        var attrs = new List<OnnxPb.AttributeProto>
                        {
                            Ints("kernel_shape", s.KH, s.KW), Ints("strides", s.StrideH, s.StrideW),
                            Ints("pads", s.PadTop, s.PadLeft, s.PadBottom, s.PadRight), Int("ceil_mode", 0),
                        };
                        // The engine divides every window by KH x KW, padding zeros included (PyTorch's count_include_pad=True).
                        if (layer is AvgPool2D) attrs.Add(Int("count_include_pad", 1));
                        x = g.Node(layer is MaxPool2D ? "MaxPool" : "AveragePool", name, [x], [.. attrs]);
                        break;
                    }
                case FeatureMapNorm f:
                    {
                        // Each plane: (x - mean) / sqrt(biased variance + epsilon), the epsilon inside the root: InstanceNormalization
                        // with scale 1 and bias 0.
                        x = ToImage(g, x, ref rank, shape, name);
                        var ones = new float[shape.C];
                        ones.AsSpan().Fill(1f);
                        x = g.Node("InstanceNormalization", name,
                            [x, g.Floats(name + ".scale", ones, shape.C), g.Floats(name + ".bias", new float[shape.C], shape.C)], Float("epsilon", f.Epsilon));
                        break;
                    }
                case BatchNorm2D bn:
                    // Inference form: the running statistics. ONNX's momentum weighs the old running value (1 - HpCnn's momentum).
                    x = g.Node("BatchNormalization", name,
                        [x, g.Floats(name + ".gamma", bn.Gamma.Value, shape.C), g.Floats(name + ".beta", bn.Beta.Value, shape.C),
                         g.Floats(name + ".running_mean", bn.RunningMean.Value, shape.C), g.Floats(name + ".running_var", bn.RunningVar.Value, shape.C)],
                        Float("epsilon", bn.Epsilon), Float("momentum", (float)Math.Round(1.0 - bn.Momentum, 7)));
                    break;
                case Flatten:
                    x = ToFlat(g, x, ref rank, name);
                    break;
                case Dropout:
                    break; // identity in inference
                default:
                    throw new NotSupportedException($"export: {layer.Label} has no ONNX mapping");
            }
            shape = layer.OutputShape;
        }

        bool last = model.Layers[^1] is Softmax or Sigmoid;
        if (!last && model.Loss == LossKind.CrossEntropy)
        {
            x = ToFlat(g, x, ref rank, "probabilities");
            x = g.Node("Softmax", "probabilities", [x], Int("axis", -1));
        }
        else if (!last && model.Loss == LossKind.BinaryCrossEntropy)
            x = g.Node("Sigmoid", "probabilities", [x]);
        if (x == "input" || !g.Graph.Node[^1].Output.Contains(x)) x = g.Node("Identity", "output", [x]);
        // The last node writes the graph output.
        g.Graph.Node[^1].Output[0] = "output";
        var o = model.OutputShape;
        g.Graph.Output.Add(rank == 4 ? FloatValue("output", "batch", o.C, o.H, o.W) : FloatValue("output", "batch", o.Size));

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

    /// <summary>An image tensor: after a flatten, a C x 1 x 1 vector goes back to [batch, C, 1, 1].</summary>
    private static string ToImage(OnnxGraphBuilder g, string x, ref int rank, Shape3 shape, string name)
    {
        if (rank == 4) return x;
        rank = 4;
        return g.Node("Reshape", name + "_to_image", [x, g.Int64s(name + ".image_shape", 0, shape.C, shape.H, shape.W)]);
    }

    /// <summary>A [batch, features] tensor.</summary>
    private static string ToFlat(OnnxGraphBuilder g, string x, ref int rank, string name)
    {
        if (rank == 2) return x;
        rank = 2;
        return g.Node("Flatten", name.StartsWith("flatten", StringComparison.Ordinal) ? name : name + "_flatten", [x], Int("axis", 1));
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
