using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using HpCnn.IO;
using HpCnn.Layers;

namespace HpCnn.Native;

public static unsafe partial class Exports
{
    // The hpcnn_add_* functions of ABI 1 write their arguments as a layer object of the spec format and go through the same
    // reader as hpcnn_add_layer_json: the layer type (HpCnn.Layers.LayerType) owns the defaults and the validation, and its
    // messages name the function ("hpcnn_add_relu.cap: relu: cap must be positive, got -1"). What stays here is only the C
    // spelling of "absent": the documented sentinels below.

    /// <summary>Parses the layer object <paramref name="fields"/> writes (after "type") and appends it to the model.</summary>
    private static int AddSpec(nint model, string function, string type, Action<Utf8JsonWriter>? fields = null)
    {
        var m = ModelOf(model);
        var buffer = new ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("type", type);
            fields?.Invoke(w);
            w.WriteEndObject();
        }
        m.Add(NetworkSpec.ParseLayer(Encoding.UTF8.GetString(buffer.WrittenSpan), function));
        return Status.Ok;
    }

    /// <summary>A float argument as a spec number (JSON has no NaN or infinity: those are refused here, naming the argument).</summary>
    private static void WriteFloat(Utf8JsonWriter w, string function, string name, float value)
    {
        if (!float.IsFinite(value)) throw new ArgumentException($"{function}.{name}: expected a finite number, got {value.ToString(CultureInfo.InvariantCulture)}");
        w.WriteNumber(name, value);
    }

    private static void WritePair(Utf8JsonWriter w, string name, int h, int wv)
    {
        w.WriteStartArray(name);
        w.WriteNumberValue(h);
        w.WriteNumberValue(wv);
        w.WriteEndArray();
    }

    /// <summary>HPCNN_PADDING_* and the four pads as the spec's "padding".</summary>
    private static void WritePadding(Utf8JsonWriter w, string function, int mode, int top, int left, int bottom, int right)
    {
        switch (mode)
        {
            case 0:
            case 1:
                if ((top | left | bottom | right) != 0)
                    throw new ArgumentException($"{function}: pad_* must be 0 unless padding_mode is HPCNN_PADDING_EXPLICIT, got ({top},{left},{bottom},{right})");
                w.WriteString("padding", mode == 0 ? "valid" : "same");
                break;
            case 2:
                w.WriteStartArray("padding");
                w.WriteNumberValue(top); w.WriteNumberValue(left); w.WriteNumberValue(bottom); w.WriteNumberValue(right);
                w.WriteEndArray();
                break;
            default:
                throw new ArgumentException($"{function}: padding_mode must be HPCNN_PADDING_VALID (0), _SAME (1) or _EXPLICIT (2), got {mode}");
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_conv2d")]
    public static int AddConv2D(nint model, int filters, int kh, int kw, int sh, int sw, int mode, int pt, int pl, int pb, int pr, int bias)
    {
        const string F = "hpcnn_add_conv2d";
        try
        {
            return AddSpec(model, F, "conv2d", w =>
            {
                w.WriteNumber("filters", filters);
                WritePair(w, "kernel", kh, kw);
                WritePair(w, "stride", sh, sw);
                WritePadding(w, F, mode, pt, pl, pb, pr);
                w.WriteBoolean("bias", bias != 0);
            });
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_maxpool2d")]
    public static int AddMaxPool(nint model, int kh, int kw, int sh, int sw, int mode, int pt, int pl, int pb, int pr)
    {
        try { return AddPool(model, "hpcnn_add_maxpool2d", "maxpool2d", kh, kw, sh, sw, mode, pt, pl, pb, pr); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_avgpool2d")]
    public static int AddAvgPool(nint model, int kh, int kw, int sh, int sw, int mode, int pt, int pl, int pb, int pr)
    {
        try { return AddPool(model, "hpcnn_add_avgpool2d", "avgpool2d", kh, kw, sh, sw, mode, pt, pl, pb, pr); }
        catch (Exception e) { return Status.From(e); }
    }

    // Stride 0 x 0 is the C spelling of "no stride given" (the spec's default: the window).
    private static int AddPool(nint model, string function, string type, int kh, int kw, int sh, int sw, int mode, int pt, int pl, int pb, int pr) =>
        AddSpec(model, function, type, w =>
        {
            WritePair(w, "kernel", kh, kw);
            if (sh != 0 || sw != 0) WritePair(w, "stride", sh, sw);
            WritePadding(w, function, mode, pt, pl, pb, pr);
        });

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_relu")]
    public static int AddRelu(nint model, float cap)
    {
        // 0 and +infinity spell "uncapped"; a negative or NaN cap is refused as the spec refuses it (it used to mean uncapped).
        try { return AddSpec(model, "hpcnn_add_relu", "relu", w => { if (cap != 0 && !float.IsPositiveInfinity(cap)) WriteFloat(w, "hpcnn_add_relu", "cap", cap); }); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_leaky_relu")]
    public static int AddLeakyRelu(nint model, float alpha)
    {
        try { return AddSpec(model, "hpcnn_add_leaky_relu", "leakyrelu", w => WriteFloat(w, "hpcnn_add_leaky_relu", "alpha", alpha)); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_sigmoid")]
    public static int AddSigmoid(nint model)
    {
        try { return AddSpec(model, "hpcnn_add_sigmoid", "sigmoid"); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_tanh")]
    public static int AddTanh(nint model)
    {
        try { return AddSpec(model, "hpcnn_add_tanh", "tanh"); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_softmax")]
    public static int AddSoftmax(nint model)
    {
        try { return AddSpec(model, "hpcnn_add_softmax", "softmax"); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_flatten")]
    public static int AddFlatten(nint model)
    {
        try { return AddSpec(model, "hpcnn_add_flatten", "flatten"); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_dense")]
    public static int AddDense(nint model, int units, int bias)
    {
        try { return AddSpec(model, "hpcnn_add_dense", "dense", w => { w.WriteNumber("units", units); w.WriteBoolean("bias", bias != 0); }); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_feature_map_norm")]
    public static int AddFeatureMapNorm(nint model, float epsilon)
    {
        // 0 spells "the default"; a negative epsilon is refused (it used to fall back to the default).
        const string F = "hpcnn_add_feature_map_norm";
        try { return AddSpec(model, F, "featuremapnorm", w => { if (epsilon != 0) WriteFloat(w, F, "epsilon", epsilon); }); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_batchnorm2d")]
    public static int AddBatchNorm(nint model, float epsilon, float momentum)
    {
        // epsilon 0 and momentum -1 spell "the default"; other values out of range are refused (they used to fall back to it).
        const string F = "hpcnn_add_batchnorm2d";
        try
        {
            return AddSpec(model, F, "batchnorm2d", w =>
            {
                if (epsilon != 0) WriteFloat(w, F, "epsilon", epsilon);
                if (momentum != -1) WriteFloat(w, F, "momentum", momentum);
            });
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_dropout")]
    public static int AddDropout(nint model, float rate, ulong seed)
    {
        const string F = "hpcnn_add_dropout";
        try { return AddSpec(model, F, "dropout", w => { WriteFloat(w, F, "rate", rate); w.WriteNumber("seed", seed); }); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_layer_json")]
    public static int AddLayerJson(nint model, byte* json)
    {
        try
        {
            string layerJson = Utf8.Read(json, "json");
            ModelOf(model).Add(NetworkSpec.ParseLayer(layerJson));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_layer_types")]
    public static int LayerTypes(nint* outJson)
    {
        try
        {
            var buffer = new ArrayBufferWriter<byte>();
            using (var w = new Utf8JsonWriter(buffer))
            {
                w.WriteStartArray();
                foreach (var t in HpCnn.Layers.LayerTypes.All)
                {
                    w.WriteStartObject();
                    w.WriteString("type", t.Name);
                    w.WriteStartArray("aliases");
                    foreach (var a in t.Aliases) w.WriteStringValue(a);
                    w.WriteEndArray();
                    w.WriteStartArray("fields");
                    foreach (var f in t.Fields) w.WriteStringValue(f);
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            Out(outJson, Utf8.Alloc(Encoding.UTF8.GetString(buffer.WrittenSpan)), "out_json");
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    private static Layer LayerOf(nint model, int index) => ModelOf(model).LayerAt(index);

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_layer_kind")]
    public static int LayerKind(nint model, int layer, nint* kind)
    {
        try { Out(kind, Utf8.Interned(LayerOf(model, layer).Kind), "out_kind"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_layer_output_shape")]
    public static int LayerOutputShape(nint model, int layer, int* c, int* h, int* w)
    {
        try
        {
            var s = LayerOf(model, layer).OutputShape;
            CheckOut(c, "out_c"); CheckOut(h, "out_h"); CheckOut(w, "out_w");
            *c = s.C; *h = s.H; *w = s.W;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_layer_param_count")]
    public static int LayerParamCount(nint model, int layer, int* count)
    {
        try { Out(count, LayerOf(model, layer).Parameters.Count, "out_count"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_layer_param_info")]
    public static int LayerParamInfo(nint model, int layer, int index, nint* name, int* rank, int* dims, long* count)
    {
        try
        {
            var nm = Handles.Get<NativeModel>(model, "model");
            var l = nm.Model.LayerAt(layer);
            if ((uint)index >= (uint)l.Parameters.Count)
                throw new ArgumentException($"{l.Label} has {l.Parameters.Count} parameter tensor(s), index {index} does not exist");
            var p = l.Parameters[index];
            CheckOut(name, "out_name"); CheckOut(rank, "out_rank"); CheckOut(count, "out_count");
            if (dims == null) throw new ArgumentNullException("out_dims", "out_dims is NULL");
            *name = nm.ParamName(layer, index, p.Name);
            *rank = p.Shape.Length;
            for (int i = 0; i < p.Shape.Length; i++) dims[i] = p.Shape[i];
            *count = p.Count;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_get_param")]
    public static int GetParam(nint model, int layer, byte* name, float* values, long count)
    {
        try
        {
            var l = LayerOf(model, layer);
            var p = l.GetParameter(Utf8.Read(name, "name"));
            p.Value.CopyTo(Buffer(values, count, p.Count, "out_values", $"{l.Label} {p.Name} is {p.ShapeText}"));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_set_param")]
    public static int SetParam(nint model, int layer, byte* name, float* values, long count)
    {
        try
        {
            var l = LayerOf(model, layer);
            var p = l.GetParameter(Utf8.Read(name, "name"));
            p.Set(Buffer(values, count, p.Count, "values", $"{l.Label} {p.Name} is {p.ShapeText}"));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_set_frozen")]
    public static int SetFrozen(nint model, int layer, int frozen)
    {
        try { LayerOf(model, layer).Frozen = frozen != 0; return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_is_frozen")]
    public static int IsFrozen(nint model, int layer, int* frozen)
    {
        try { Out(frozen, LayerOf(model, layer).Frozen ? 1 : 0, "out_frozen"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }
}
