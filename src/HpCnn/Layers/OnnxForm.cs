namespace HpCnn.Layers;

/// <summary>An attribute of an ONNX node: an int, a float or a list of ints.</summary>
internal readonly record struct OnnxAttribute(string Name, long? IntValue = null, float? FloatValue = null, long[]? IntsValue = null)
{
    public static OnnxAttribute Int(string name, long value) => new(name, IntValue: value);
    public static OnnxAttribute Float(string name, float value) => new(name, FloatValue: value);
    public static OnnxAttribute Ints(string name, params long[] values) => new(name, IntsValue: values);
}

/// <summary>
/// The ONNX graph (opset 13) a layer writes its inference form into. HpCnn.Onnx implements it over the protobuf types,
/// which the engine does not reference; each layer's <see cref="Layer.WriteOnnx"/> is that layer's one export mapping.
/// </summary>
internal interface IOnnxGraph
{
    /// <summary><paramref name="x"/> as a [batch, C, H, W] tensor of <paramref name="shape"/> (a flat tensor is reshaped back).</summary>
    string AsImage(string x, Shape3 shape, string name);

    /// <summary><paramref name="x"/> as a [batch, features] tensor.</summary>
    string AsFlat(string x, string name);

    /// <summary>A float initializer of <paramref name="dims"/>; returns its (unique) name.</summary>
    string Floats(string name, ReadOnlySpan<float> values, params long[] dims);

    /// <summary>A node with one output; returns the output's name.</summary>
    string Node(string opType, string name, string[] inputs, params OnnxAttribute[] attributes);
}
