using System.Globalization;
using System.Text.Json;

namespace HpCnn.IO;

/// <summary>
/// A JSON value of a network spec with its path ("layers[2].kernel"), which every error names. The reader of the spec format:
/// <see cref="NetworkSpec"/> reads the network around the layers, each <see cref="Layers.LayerType"/> reads its own fields.
/// </summary>
internal sealed class SpecNode(JsonElement element, string path)
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

    public SpecNode Required(string name) =>
        Optional(name) ?? throw new FormatException($"{Path}: missing required field '{name}'");

    public SpecNode? Optional(string name) =>
        Element.ValueKind == JsonValueKind.Object && Element.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null
            ? new SpecNode(v, $"{Path}.{name}") : null;

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

    /// <summary>Any finite number that a float holds; the range is the layer constructor's rule (one rule for every door).</summary>
    public float Float()
    {
        if (Element.ValueKind != JsonValueKind.Number || !Element.TryGetDouble(out double v) || !double.IsFinite(v))
            throw new FormatException($"{Path}: expected a number, got {Kind}");
        if (!float.IsFinite((float)v)) throw new FormatException($"{Path}: {v.ToString(CultureInfo.InvariantCulture)} is beyond the range of a float");
        return (float)v;
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
        foreach (var e in Element.EnumerateArray()) { r[i] = new SpecNode(e, $"{Path}[{i}]").Int(min, max); i++; }
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
