using System.Text.Json;
using HpCnn.IO;

namespace HpCnn.Layers;

/// <summary>
/// Fields of the JSON network spec that several layer types share (kernel and stride pairs, padding, initialiser):
/// the reader and the writer of each side by side, so the two cannot drift apart.
/// </summary>
internal static class SpecFields
{
    /// <summary>Writes a number when both values are equal, else [h, w].</summary>
    public static void WritePair(Utf8JsonWriter w, string name, int h, int wv)
    {
        if (h == wv) { w.WriteNumber(name, h); return; }
        w.WriteStartArray(name);
        w.WriteNumberValue(h);
        w.WriteNumberValue(wv);
        w.WriteEndArray();
    }

    /// <summary>A window or stride: a number or [h, w], each in 1..<see cref="NetworkSpec.MaxKernel"/>.</summary>
    public static (int H, int W) ReadWindow(SpecNode n) => n.Pair(1, NetworkSpec.MaxKernel);

    public static void WritePadding(Utf8JsonWriter w, Padding p)
    {
        switch (p.Mode)
        {
            case PaddingMode.Valid: w.WriteString("padding", "valid"); break;
            case PaddingMode.Same: w.WriteString("padding", "same"); break;
            default:
                if (p.Top == p.Left && p.Left == p.Bottom && p.Bottom == p.Right) { w.WriteNumber("padding", p.Top); break; }
                w.WriteStartArray("padding");
                w.WriteNumberValue(p.Top); w.WriteNumberValue(p.Left); w.WriteNumberValue(p.Bottom); w.WriteNumberValue(p.Right);
                w.WriteEndArray();
                break;
        }
    }

    /// <summary>"same", "valid", a number (every side), [vertical, horizontal] or [top, left, bottom, right]; null when absent.</summary>
    public static Padding? ReadPadding(SpecNode? n)
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
                return Padding.Symmetric(n.Int(0, NetworkSpec.MaxKernel));
            case JsonValueKind.Array:
                {
                    var a = n.IntArray(2, 4, 0, NetworkSpec.MaxKernel);
                    if (a.Length == 3) throw new FormatException($"{n.Path}: give 2 values [vertical, horizontal] or 4 [top, left, bottom, right], not 3");
                    return a.Length == 2 ? Padding.Explicit(a[0], a[1], a[0], a[1]) : Padding.Explicit(a[0], a[1], a[2], a[3]);
                }
            default:
                throw new FormatException($"{n.Path}: expected \"same\", \"valid\", a number or [top, left, bottom, right], got {n.Kind}");
        }
    }

    public static void WriteInit(Utf8JsonWriter w, Initializer init)
    {
        w.WriteString("init", init.Kind.ToString().ToLowerInvariant());
        if (init.Kind == InitKind.Normal) w.WriteNumber("init_std", init.Std);
    }

    /// <summary>"init" (and "init_std" with "normal") of a layer object; null when absent (the layer's default).</summary>
    public static Initializer? ReadInit(SpecNode n)
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
            "normal" => Initializer.Normal(n.Optional("init_std")?.Float(1e-30, 1e6) ?? Initializer.DefaultNormalStd),
            var other => throw new FormatException($"{i.Path}: unknown initializer '{other}' (use default, he, xavier or normal)"),
        };
    }
}
