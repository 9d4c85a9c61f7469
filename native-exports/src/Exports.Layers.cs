using System.Runtime.InteropServices;
using HpCnn.IO;
using HpCnn.Layers;

namespace HpCnn.Native;

public static unsafe partial class Exports
{
    private static Padding PaddingOf(int mode, int top, int left, int bottom, int right)
    {
        switch (mode)
        {
            case 0:
            case 1:
                if ((top | left | bottom | right) != 0)
                    throw new ArgumentException($"padding: pad_* must be 0 unless padding_mode is HPCNN_PADDING_EXPLICIT, got ({top},{left},{bottom},{right})");
                return mode == 0 ? Padding.Valid : Padding.Same;
            case 2:
                return Padding.Explicit(top, left, bottom, right);
            default:
                throw new ArgumentException($"padding_mode must be HPCNN_PADDING_VALID (0), _SAME (1) or _EXPLICIT (2), got {mode}");
        }
    }

    private static int AddLayer(nint model, Func<Layer> make)
    {
        ModelOf(model).Add(make());
        return Status.Ok;
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_conv2d")]
    public static int AddConv2D(nint model, int filters, int kh, int kw, int sh, int sw, int mode, int pt, int pl, int pb, int pr, int bias)
    {
        try { return AddLayer(model, () => new Conv2D(filters, (kh, kw), (sh, sw), PaddingOf(mode, pt, pl, pb, pr), bias != 0)); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_maxpool2d")]
    public static int AddMaxPool(nint model, int kh, int kw, int sh, int sw, int mode, int pt, int pl, int pb, int pr)
    {
        try { return AddLayer(model, () => new MaxPool2D((kh, kw), PoolStride(kh, kw, sh, sw), PaddingOf(mode, pt, pl, pb, pr))); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_avgpool2d")]
    public static int AddAvgPool(nint model, int kh, int kw, int sh, int sw, int mode, int pt, int pl, int pb, int pr)
    {
        try { return AddLayer(model, () => new AvgPool2D((kh, kw), PoolStride(kh, kw, sh, sw), PaddingOf(mode, pt, pl, pb, pr))); }
        catch (Exception e) { return Status.From(e); }
    }

    private static (int, int) PoolStride(int kh, int kw, int sh, int sw) =>
        sh == 0 && sw == 0 ? (kh, kw) : (sh, sw);

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_relu")]
    public static int AddRelu(nint model, float cap)
    {
        try { return AddLayer(model, () => new ReLU(cap > 0 && !float.IsPositiveInfinity(cap) ? cap : null)); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_leaky_relu")]
    public static int AddLeakyRelu(nint model, float alpha)
    {
        try { return AddLayer(model, () => new LeakyReLU(alpha)); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_sigmoid")]
    public static int AddSigmoid(nint model)
    {
        try { return AddLayer(model, () => new Sigmoid()); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_tanh")]
    public static int AddTanh(nint model)
    {
        try { return AddLayer(model, () => new Tanh()); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_softmax")]
    public static int AddSoftmax(nint model)
    {
        try { return AddLayer(model, () => new Softmax()); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_flatten")]
    public static int AddFlatten(nint model)
    {
        try { return AddLayer(model, () => new Flatten()); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_dense")]
    public static int AddDense(nint model, int units, int bias)
    {
        try { return AddLayer(model, () => new Dense(units, bias != 0)); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_feature_map_norm")]
    public static int AddFeatureMapNorm(nint model, float epsilon)
    {
        try { return AddLayer(model, () => new FeatureMapNorm(epsilon > 0 ? epsilon : 1e-5f)); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_batchnorm2d")]
    public static int AddBatchNorm(nint model, float epsilon, float momentum)
    {
        try { return AddLayer(model, () => new BatchNorm2D(epsilon > 0 ? epsilon : 1e-5f, momentum < 0 ? 0.1f : momentum)); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_dropout")]
    public static int AddDropout(nint model, float rate, ulong seed)
    {
        try { return AddLayer(model, () => new Dropout(rate, seed)); }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_add_layer_json")]
    public static int AddLayerJson(nint model, byte* json)
    {
        try
        {
            string layerJson = Utf8.Read(json, "json");
            return AddLayer(model, () => NetworkSpec.ParseLayer(layerJson));
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
