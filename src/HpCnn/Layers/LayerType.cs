using HpCnn.IO;

namespace HpCnn.Layers;

/// <summary>
/// One layer type of the JSON network spec: its name (and the aliases it also answers to), the fields it takes and how a
/// spec object becomes the layer. Each layer class owns its type (a static <c>Type</c> beside its constructor, which holds
/// the defaults and the validation, and its <c>WriteSpecFields</c>, which writes the same fields back); the spec reader,
/// the C ABI (every <c>hpcnn_add_*</c> goes through <c>hpcnn_add_layer_json</c>) and Python reach layers only through it.
/// </summary>
public sealed class LayerType
{
    /// <summary>Fields every layer object may have.</summary>
    public static readonly IReadOnlyList<string> CommonFields = ["type", "frozen", "name"];

    private readonly Func<SpecNode, Layer> _read;
    private readonly string[] _allowed;

    internal LayerType(string name, string[] aliases, string[] fields, Func<SpecNode, Layer> read)
    {
        Name = name;
        Aliases = aliases;
        Fields = fields;
        _read = read;
        _allowed = [.. CommonFields, .. fields];
    }

    /// <summary>The spec's type name, also the layer's <see cref="Layer.Kind"/> ("conv2d").</summary>
    public string Name { get; }
    public IReadOnlyList<string> Aliases { get; }
    /// <summary>The fields of this type besides <see cref="CommonFields"/>.</summary>
    public IReadOnlyList<string> Fields { get; }

    /// <summary>
    /// The layer a spec object describes. A value the layer's constructor refuses becomes a <see cref="FormatException"/>
    /// naming the field ("layers[3].cap: relu: cap must be positive, got -1"), so every door reports the constructor's rule.
    /// </summary>
    internal Layer Read(SpecNode n)
    {
        n.AllowOnly(_allowed);
        try
        {
            return _read(n);
        }
        catch (ArgumentException e)
        {
            string field = e.ParamName is { } p && FieldOf(p) is { } f ? $"{n.Path}.{f}" : n.Path;
            string message = e.ParamName is { } pn ? e.Message.Replace($" (Parameter '{pn}')", "", StringComparison.Ordinal) : e.Message;
            throw new FormatException($"{field}: {message}", e);
        }
    }

    /// <summary>The spec field of a constructor parameter (they are named alike: inChannels is in_channels).</summary>
    private string? FieldOf(string parameter)
    {
        string snake = string.Concat(parameter.Select((c, i) => char.IsUpper(c) && i > 0 ? "_" + char.ToLowerInvariant(c) : char.ToLowerInvariant(c).ToString()));
        return Fields.Contains(snake) ? snake : null;
    }
}

/// <summary>Every layer type the engine knows, in the order the README's layer table lists them.</summary>
public static class LayerTypes
{
    // Explicit (not found by reflection) so the NativeAOT library keeps every type without trimming annotations.
    public static readonly IReadOnlyList<LayerType> All =
    [
        Conv2D.Type, Dense.Type, MaxPool2D.Type, AvgPool2D.Type, ReLU.Type, LeakyReLU.Type, Sigmoid.Type, Tanh.Type, Softmax.Type,
        Flatten.Type, FeatureMapNorm.Type, BatchNorm2D.Type, Dropout.Type,
    ];

    /// <summary>The type called <paramref name="name"/> (or one of its aliases; any case), or null.</summary>
    public static LayerType? Find(string name)
    {
        foreach (var t in All)
            if (string.Equals(t.Name, name, StringComparison.OrdinalIgnoreCase) || t.Aliases.Contains(name, StringComparer.OrdinalIgnoreCase))
                return t;
        return null;
    }

    /// <summary>"conv2d, dense, ...": for messages.</summary>
    public static string Names => string.Join(", ", All.Select(t => t.Name));
}
