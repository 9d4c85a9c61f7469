using System.Text.Json;

namespace HpCnn.Layers;

/// <summary>Pieces of the JSON network spec shared by several layers (the reader is NetworkSpec).</summary>
internal static class SpecWriting
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

    public static void WriteInit(Utf8JsonWriter w, Initializer init)
    {
        w.WriteString("init", init.Kind.ToString().ToLowerInvariant());
        if (init.Kind == InitKind.Normal) w.WriteNumber("init_std", init.Std);
    }
}
