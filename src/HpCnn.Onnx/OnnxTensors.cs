using System.Buffers.Binary;
using OnnxPb = global::Onnx;

namespace HpCnn.Onnx;

/// <summary>Reads the values of ONNX tensors (initializers, Constant nodes) with every size checked before anything is allocated.</summary>
internal static class OnnxTensors
{
    /// <summary>Element count of <paramref name="dims"/>, refusing negative dimensions and counts above <paramref name="limit"/>.</summary>
    public static long Count(IReadOnlyList<long> dims, long limit, string what)
    {
        if (dims.Count > 8) throw new InvalidDataException($"{what}: {dims.Count} dimensions, more than 8");
        long n = 1;
        foreach (long d in dims)
        {
            if (d < 0) throw new InvalidDataException($"{what}: negative dimension {d}");
            if (d != 0 && n > limit / d) throw new InvalidDataException($"{what}: dimensions {string.Join("x", dims)} hold more than {limit} values");
            n *= d;
        }
        return n;
    }

    private static void RefuseExternal(OnnxPb.TensorProto t, string what)
    {
        if (t.DataLocation == OnnxPb.TensorProto.Types.DataLocation.External || t.ExternalData.Count > 0)
            throw new InvalidDataException($"{what}: the tensor's data is stored in an external file, which is not supported (save the model with its weights inside: onnx.save_model(m, path, save_as_external_data=False))");
    }

    /// <summary>The values of a FLOAT or DOUBLE tensor as floats.</summary>
    public static float[] Floats(OnnxPb.TensorProto t, long limit, string what)
    {
        RefuseExternal(t, what);
        long n = Count(t.Dims, limit, what);
        var type = (OnnxPb.TensorProto.Types.DataType)t.DataType;
        float[] v;
        if (type == OnnxPb.TensorProto.Types.DataType.Float)
        {
            if (!t.RawData.IsEmpty)
            {
                if (t.RawData.Length != n * 4) throw new InvalidDataException($"{what}: {t.RawData.Length} bytes of raw data for {n} floats ({n * 4} bytes)");
                v = new float[n];
                var raw = t.RawData.Span;
                for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadSingleLittleEndian(raw.Slice(4 * i));
            }
            else
            {
                if (t.FloatData.Count != n) throw new InvalidDataException($"{what}: {t.FloatData.Count} values in float_data for dimensions {DimsText(t)} ({n} values)");
                v = [.. t.FloatData];
            }
        }
        else if (type == OnnxPb.TensorProto.Types.DataType.Double)
        {
            if (!t.RawData.IsEmpty)
            {
                if (t.RawData.Length != n * 8) throw new InvalidDataException($"{what}: {t.RawData.Length} bytes of raw data for {n} doubles ({n * 8} bytes)");
                v = new float[n];
                var raw = t.RawData.Span;
                for (int i = 0; i < v.Length; i++) v[i] = (float)BinaryPrimitives.ReadDoubleLittleEndian(raw.Slice(8 * i));
            }
            else
            {
                if (t.DoubleData.Count != n) throw new InvalidDataException($"{what}: {t.DoubleData.Count} values in double_data for dimensions {DimsText(t)} ({n} values)");
                v = t.DoubleData.Select(d => (float)d).ToArray();
            }
        }
        else throw new InvalidDataException($"{what}: data type {TypeName(t.DataType)}, expected FLOAT (or DOUBLE)");
        return v;
    }

    /// <summary>The values of an INT64 or INT32 tensor (shapes, pads, axes).</summary>
    public static long[] Int64s(OnnxPb.TensorProto t, long limit, string what)
    {
        RefuseExternal(t, what);
        long n = Count(t.Dims, limit, what);
        var type = (OnnxPb.TensorProto.Types.DataType)t.DataType;
        if (type == OnnxPb.TensorProto.Types.DataType.Int64)
        {
            if (!t.RawData.IsEmpty)
            {
                if (t.RawData.Length != n * 8) throw new InvalidDataException($"{what}: {t.RawData.Length} bytes of raw data for {n} int64 values");
                var v = new long[n];
                for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadInt64LittleEndian(t.RawData.Span.Slice(8 * i));
                return v;
            }
            if (t.Int64Data.Count != n) throw new InvalidDataException($"{what}: {t.Int64Data.Count} values in int64_data for dimensions {DimsText(t)}");
            return [.. t.Int64Data];
        }
        if (type == OnnxPb.TensorProto.Types.DataType.Int32)
        {
            if (!t.RawData.IsEmpty)
            {
                if (t.RawData.Length != n * 4) throw new InvalidDataException($"{what}: {t.RawData.Length} bytes of raw data for {n} int32 values");
                var v = new long[n];
                for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadInt32LittleEndian(t.RawData.Span.Slice(4 * i));
                return v;
            }
            if (t.Int32Data.Count != n) throw new InvalidDataException($"{what}: {t.Int32Data.Count} values in int32_data for dimensions {DimsText(t)}");
            return t.Int32Data.Select(i => (long)i).ToArray();
        }
        throw new InvalidDataException($"{what}: data type {TypeName(t.DataType)}, expected INT64");
    }

    public static string DimsText(OnnxPb.TensorProto t) => t.Dims.Count == 0 ? "scalar" : string.Join("x", t.Dims);

    public static string TypeName(int type) =>
        Enum.IsDefined((OnnxPb.TensorProto.Types.DataType)type) ? ((OnnxPb.TensorProto.Types.DataType)type).ToString().ToUpperInvariant() : $"#{type}";
}
