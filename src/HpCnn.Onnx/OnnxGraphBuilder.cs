using Google.Protobuf;
using OnnxPb = global::Onnx;

namespace HpCnn.Onnx;

/// <summary>Appends nodes and initializers to an ONNX graph with unique names (the exporter's one writing tool).</summary>
internal sealed class OnnxGraphBuilder
{
    private readonly HashSet<string> _names = [];

    public OnnxPb.GraphProto Graph { get; } = new();

    /// <summary>A tensor name not used yet ("conv2d_0.weight", then "conv2d_0.weight_1" ...).</summary>
    public string Unique(string name)
    {
        string n = name;
        for (int i = 1; !_names.Add(n); i++) n = $"{name}_{i}";
        return n;
    }

    /// <summary>A float initializer of <paramref name="dims"/> (little-endian raw data).</summary>
    public string Floats(string name, ReadOnlySpan<float> values, params long[] dims)
    {
        var t = new OnnxPb.TensorProto { Name = Unique(name), DataType = (int)OnnxPb.TensorProto.Types.DataType.Float };
        t.Dims.AddRange(dims);
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        t.RawData = ByteString.CopyFrom(bytes);
        Graph.Initializer.Add(t);
        return t.Name;
    }

    /// <summary>A 1-D int64 initializer (shapes).</summary>
    public string Int64s(string name, params long[] values)
    {
        var t = new OnnxPb.TensorProto { Name = Unique(name), DataType = (int)OnnxPb.TensorProto.Types.DataType.Int64 };
        t.Dims.Add(values.Length);
        t.Int64Data.AddRange(values);
        Graph.Initializer.Add(t);
        return t.Name;
    }

    /// <summary>A node of the default domain with one output named after the node; returns the output's name.</summary>
    public string Node(string opType, string name, string[] inputs, params OnnxPb.AttributeProto[] attributes)
    {
        var node = new OnnxPb.NodeProto { OpType = opType, Name = Unique(name) };
        node.Input.AddRange(inputs);
        node.Output.Add(node.Name == name ? name : node.Name);
        node.Attribute.AddRange(attributes);
        Graph.Node.Add(node);
        return node.Output[0];
    }

    public static OnnxPb.AttributeProto Ints(string name, params long[] values)
    {
        var a = new OnnxPb.AttributeProto { Name = name, Type = OnnxPb.AttributeProto.Types.AttributeType.Ints };
        a.Ints.AddRange(values);
        return a;
    }

    public static OnnxPb.AttributeProto Int(string name, long value) =>
        new() { Name = name, Type = OnnxPb.AttributeProto.Types.AttributeType.Int, I = value };

    public static OnnxPb.AttributeProto Float(string name, float value) =>
        new() { Name = name, Type = OnnxPb.AttributeProto.Types.AttributeType.Float, F = value };

    /// <summary>A float tensor value (graph input or output) with a symbolic batch dimension first.</summary>
    public static OnnxPb.ValueInfoProto FloatValue(string name, string batchDim, params long[] dims)
    {
        var shape = new OnnxPb.TensorShapeProto();
        shape.Dim.Add(new OnnxPb.TensorShapeProto.Types.Dimension { DimParam = batchDim });
        foreach (long d in dims) shape.Dim.Add(new OnnxPb.TensorShapeProto.Types.Dimension { DimValue = d });
        return new OnnxPb.ValueInfoProto
        {
            Name = name,
            Type = new OnnxPb.TypeProto { TensorType = new OnnxPb.TypeProto.Types.Tensor { ElemType = (int)OnnxPb.TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }
}
