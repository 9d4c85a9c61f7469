using System.Numerics.Tensors;
using System.Text;
using System.Text.Json;

namespace HpCnn.Data;

/// <summary>The range of the pixel values a model was trained on, before standardisation.</summary>
public enum PixelScale
{
    /// <summary>[0, 1]: byte / 255 (what every HpCnn loader gives: IDX, CIFAR-10, image files).</summary>
    Unit,
    /// <summary>[0, 255]: the byte values themselves, as floats.</summary>
    Byte,
}

/// <summary>
/// What turns a raw image into the model's input, saved in the model file (the <c>prep</c> chunk) so a reloaded model
/// predicts on new images with no extra code (<see cref="Sequential.PredictRaw(ReadOnlySpan{byte}, int)"/>):
/// the pixel scale the model was trained in, the standardisation applied after it (null: none), and the class names
/// (null: none; then classes are shown by number). The input size and channels are the model's
/// <see cref="Sequential.InputShape"/>, kept once, in the architecture.
/// Raw pixels are bytes 0-255, or floats in the model's <see cref="PixelScale"/> (0-1 unless trained on 0-255).
/// </summary>
public sealed record Preprocessing
{
    /// <summary>No standardisation, no class names, pixels in [0, 1].</summary>
    public static Preprocessing None { get; } = new();

    /// <summary>The range of the pixel values the model was trained on, before standardisation (default [0, 1]).</summary>
    public PixelScale PixelScale { get; init; } = PixelScale.Unit;

    /// <summary>Applied to pixels in <see cref="PixelScale"/> to make the model's input; null: the pixels are the input.</summary>
    public Standardization? Standardization { get; init; }

    /// <summary>
    /// The names of the classes the model scores, by label; null when unknown. There may be fewer than the model's outputs
    /// (a 10-output network trained on 2 classes): the others are shown by number.
    /// </summary>
    public IReadOnlyList<string>? ClassNames
    {
        get => _classNames;
        init
        {
            if (value is not null)
            {
                if (value.Count == 0) throw new ArgumentException("preprocessing: give at least one class name (or null for none)");
                for (int i = 0; i < value.Count; i++)
                    if (value[i] is null) throw new ArgumentException($"preprocessing: class name {i} is null");
            }
            _classNames = value?.ToArray();
        }
    }
    private readonly IReadOnlyList<string>? _classNames;

    /// <summary>True when nothing is recorded (pixels in [0, 1] are the input; classes have no names).</summary>
    public bool IsNone => PixelScale == PixelScale.Unit && Standardization is null && ClassNames is null;

    /// <summary>The name of class <paramref name="label"/> (its number when the model has no names for it).</summary>
    public string ClassName(int label) =>
        ClassNames is { } n && (uint)label < (uint)n.Count ? n[label] : label.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>"pixels 0-1, standardised globally (mean 0.286, std 0.353)": the scale and the standardisation, for people.</summary>
    public string Describe() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"pixels {(PixelScale == PixelScale.Unit ? "0-1" : "0-255")}, ") + Standardization switch
        {
            null => "not standardised",
            { Mode: StandardizeMode.Global } s => string.Create(System.Globalization.CultureInfo.InvariantCulture, $"standardised globally (mean {s.Mean[0]:G4}, std {s.Std[0]:G4})"),
            var s => $"standardised per pixel ({s.Mean.Length} means and deviations)",
        };

    /// <summary>
    /// Checks the record against a model input of <paramref name="input"/> scoring <paramref name="classCount"/> classes
    /// (null: not known yet, a model with no layers). The message starts with <paramref name="what"/>.
    /// </summary>
    internal void CheckFits(Shape3 input, int? classCount, string what)
    {
        if (Standardization is { Mode: StandardizeMode.PerPixel } s && s.Mean.Length != input.Size)
            throw new ArgumentException($"{what}: the standardization is per pixel for images of {s.Mean.Length} values, the model takes {input} images ({input.Size} values)");
        if (ClassNames is { } names && classCount is int k && names.Count > k)
            throw new ArgumentException($"{what}: {names.Count} class names for a model that scores {k} classes");
    }

    /// <summary>
    /// Model input from raw byte pixels (0-255, count x image size): scaled to <see cref="PixelScale"/> exactly as the
    /// loaders scale them (x * (1/255) for [0, 1]), then standardised.
    /// </summary>
    public void ToModelInput(ReadOnlySpan<byte> pixels, Span<float> input, int imageSize)
    {
        CheckLengths(pixels.Length, input.Length, imageSize);
        const float inv = 1f / 255f; // the factor of Idx.LoadDataset and Cifar10: a raw predict sees the values training saw
        if (PixelScale == PixelScale.Unit) for (int i = 0; i < pixels.Length; i++) input[i] = pixels[i] * inv;
        else for (int i = 0; i < pixels.Length; i++) input[i] = pixels[i];
        Standardization?.Apply(input, imageSize);
    }

    /// <summary>
    /// Model input from raw float pixels in <see cref="PixelScale"/> (count x image size), standardised. Values outside
    /// the scale's range (or NaN) are refused with the first one's position: 0-255 values given to a model trained on
    /// [0, 1] would otherwise predict garbage without a word.
    /// </summary>
    public void ToModelInput(ReadOnlySpan<float> pixels, Span<float> input, int imageSize)
    {
        CheckLengths(pixels.Length, input.Length, imageSize);
        float max = PixelScale == PixelScale.Unit ? 1f : 255f;
        if (pixels.Length > 0 && !(TensorPrimitives.Min(pixels) >= 0 && TensorPrimitives.Max(pixels) <= max))
        {
            int bad = 0;
            while (pixels[bad] >= 0 && pixels[bad] <= max) bad++;
            string hint = PixelScale == PixelScale.Unit && pixels[bad] > 1 && pixels[bad] <= 255
                ? " (0-255 values? give the bytes, or divide by 255)" : "";
            throw new ArgumentException($"raw pixels: value {pixels[bad]} of image {bad / imageSize} (pixel {bad % imageSize}) is outside [0, {max}], " +
                $"the pixel scale the model was trained in{hint}");
        }
        pixels.CopyTo(input);
        Standardization?.Apply(input, imageSize);
    }

    /// <summary>
    /// Turns pixels in [0, 1] (what the loaders and image decoders give, count x image size) into the model's input in
    /// place: scaled to <see cref="PixelScale"/>, then standardised. Unlike <see cref="ToModelInput(ReadOnlySpan{float}, Span{float}, int)"/>
    /// it does not check the range (a resampled image may overshoot by a rounding step).
    /// </summary>
    public void ApplyToUnitPixels(Span<float> pixels, int imageSize)
    {
        CheckLengths(pixels.Length, pixels.Length, imageSize);
        if (PixelScale == PixelScale.Byte) TensorPrimitives.Multiply(pixels, 255f, pixels);
        Standardization?.Apply(pixels, imageSize);
    }

    private static void CheckLengths(int raw, int input, int imageSize)
    {
        if (imageSize < 1 || raw == 0 || raw % imageSize != 0)
            throw new ArgumentException($"raw pixels: expected a whole number of images of {imageSize} values, got {raw} values");
        if (input < raw) throw new ArgumentException($"raw pixels: the input buffer holds {input} values, {raw} are needed");
    }

    /// <summary>The JSON of the <c>prep</c> chunk: <c>{"pixel_scale": "0-1"|"0-255", "standardization": {...}, "class_names": [...]}</c>.</summary>
    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("pixel_scale", PixelScale == PixelScale.Unit ? "0-1" : "0-255");
            Standardization?.WriteJson(w, "standardization");
            if (ClassNames is { } names)
            {
                w.WriteStartArray("class_names");
                foreach (var n in names) w.WriteStringValue(n);
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    /// <summary>Reads what <see cref="ToJson"/> wrote; anything malformed is an <see cref="InvalidDataException"/> saying what.</summary>
    public static Preprocessing FromJson(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json);
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) throw new InvalidDataException("preprocessing: not a JSON object");
            var scale = r.TryGetProperty("pixel_scale", out var ps) ? ps.GetString() switch
            {
                "0-1" => PixelScale.Unit,
                "0-255" => PixelScale.Byte,
                var other => throw new InvalidDataException($"preprocessing: pixel_scale must be \"0-1\" or \"0-255\", got \"{other}\""),
            } : PixelScale.Unit;
            return new Preprocessing
            {
                PixelScale = scale,
                Standardization = ReadStandardization(r),
                ClassNames = ReadClassNames(r),
            };
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
        {
            throw new InvalidDataException($"preprocessing: malformed ({e.Message})", e);
        }
    }

    /// <summary>
    /// The preprocessing the hpcnn command kept in a model's metadata JSON before the engine owned it
    /// (<c>"standardization"</c> and <c>"class_names"</c>; models of HpCnn 0.1): null when it has neither. The metadata
    /// is the application's own JSON, which may use those keys otherwise: what does not read as the command wrote it is
    /// left out rather than making the file unreadable.
    /// </summary>
    public static Preprocessing? FromLegacyMetadata(string? metadataJson)
    {
        if (metadataJson is null) return null;
        try
        {
            using var doc = JsonDocument.Parse(metadataJson);
            var r = doc.RootElement;
            if (r.ValueKind != JsonValueKind.Object) return null;
            Standardization? st = null;
            if (r.TryGetProperty("standardization", out var s) && s.ValueKind == JsonValueKind.Object)
                try { st = Standardization.ReadJson(s); }
                catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException) { }
            string[]? names = null;
            if (r.TryGetProperty("class_names", out var cn) && cn.ValueKind == JsonValueKind.Array && cn.GetArrayLength() > 0)
                names = cn.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.ToString()).ToArray();
            return st is null && names is null ? null : new Preprocessing { Standardization = st, ClassNames = names };
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static Standardization? ReadStandardization(JsonElement r) =>
        r.TryGetProperty("standardization", out var s) && s.ValueKind != JsonValueKind.Null ? Standardization.ReadJson(s) : null;

    private static string[]? ReadClassNames(JsonElement r)
    {
        if (!r.TryGetProperty("class_names", out var cn) || cn.ValueKind == JsonValueKind.Null) return null;
        return cn.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String ? e.GetString()! : e.ToString()).ToArray();
    }

    public bool Equals(Preprocessing? other) =>
        other is not null && PixelScale == other.PixelScale && Equals(Standardization, other.Standardization) &&
        (ClassNames is null ? other.ClassNames is null : other.ClassNames is not null && ClassNames.SequenceEqual(other.ClassNames));

    public override int GetHashCode() => HashCode.Combine(PixelScale, Standardization, ClassNames?.Count);
}
