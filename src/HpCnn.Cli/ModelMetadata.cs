using System.Text;
using System.Text.Json;
using HpCnn.Data;
using HpCnn.Training;

namespace HpCnn.Cli;

/// <summary>
/// What the hpcnn command keeps in a model file's metadata: the class subset to reapply, where the data came from and the
/// training history (for the curves). The standardisation and class names are the engine's
/// (<see cref="Sequential.Preprocessing"/>, saved in the file's prep chunk); <see cref="Preprocessing"/> shows the model's.
/// </summary>
internal sealed class ModelMetadata
{
    public string Dataset { get; set; } = "fashion-mnist";
    public string? Network { get; set; }
    public int[]? Classes { get; set; }
    /// <summary>The model's preprocessing (read from the model, never written into the metadata).</summary>
    public Preprocessing Preprocessing { get; private init; } = Preprocessing.None;
    public List<EpochMetrics> History { get; set; } = [];
    /// <summary>The settings of `hpcnn train` (in checkpoints, so that --resume repeats them); null in saved models.</summary>
    public TrainCommand.Args? TrainArgs { get; set; }

    public string ToJson()
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("dataset", Dataset);
            if (Network is not null) w.WriteString("network", Network);
            if (Classes is not null)
            {
                w.WriteStartArray("classes");
                foreach (int c in Classes) w.WriteNumberValue(c);
                w.WriteEndArray();
            }
            w.WriteStartArray("history");
            foreach (var e in History) MetricsJson.WriteEpoch(w, e);
            w.WriteEndArray();
            if (TrainArgs is { } a)
            {
                w.WriteStartObject("train_args");
                if (a.Net is not null) w.WriteString("net", a.Net);
                if (a.Epochs is int ep) w.WriteNumber("epochs", ep);
                if (a.BatchSize is int bs) w.WriteNumber("batch_size", bs);
                if (a.Lr is float lr) w.WriteNumber("lr", lr);
                if (a.Seed is ulong sd) w.WriteNumber("seed", sd);
                if (a.MetricsJson is not null) w.WriteString("metrics_json", Path.GetFullPath(a.MetricsJson));
                if (a.Out is not null) w.WriteString("out", Path.GetFullPath(a.Out));
                if (a.Limit is int lim) w.WriteNumber("limit", lim);
                if (a.Classes is not null)
                {
                    w.WriteStartArray("classes");
                    foreach (int c in a.Classes) w.WriteNumberValue(c);
                    w.WriteEndArray();
                }
                if (a.DataDir is not null) w.WriteString("data_dir", Path.GetFullPath(a.DataDir));
                if (a.CheckpointEvery is not null) w.WriteString("checkpoint_every", a.CheckpointEvery);
                if (a.Dataset is not null) w.WriteString("dataset", a.Dataset);
                if (a.ImageSize is not null) w.WriteString("image_size", a.ImageSize);
                if (a.Channels is int ch) w.WriteNumber("channels", ch);
                if (a.ValidationSplit is double vs) w.WriteNumber("validation_split", vs);
                if (a.SkipUnreadable) w.WriteBoolean("skip_unreadable", true);
                if (a.MaxMemoryMb is long mm) w.WriteNumber("max_memory_mb", mm);
                w.WriteEndObject();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    public static ModelMetadata FromModel(Sequential model)
    {
        var m = new ModelMetadata { Preprocessing = model.Preprocessing };
        if (model.Metadata is null) return m;
        using var doc = JsonDocument.Parse(model.Metadata);
        var r = doc.RootElement;
        if (r.TryGetProperty("dataset", out var d) && d.ValueKind == JsonValueKind.String) m.Dataset = d.GetString()!;
        if (r.TryGetProperty("network", out var n) && n.ValueKind == JsonValueKind.String) m.Network = n.GetString();
        if (r.TryGetProperty("classes", out var c) && c.ValueKind == JsonValueKind.Array) m.Classes = c.EnumerateArray().Select(e => e.GetInt32()).ToArray();
        if (r.TryGetProperty("history", out var h) && h.ValueKind == JsonValueKind.Array)
            m.History = h.EnumerateArray().Select(MetricsJson.ReadEpoch).ToList();
        if (r.TryGetProperty("train_args", out var t) && t.ValueKind == JsonValueKind.Object)
        {
            string? S(string n) => t.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            int? I(string n) => t.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
            m.TrainArgs = new TrainCommand.Args(S("net"), I("epochs"), I("batch_size"),
                t.TryGetProperty("lr", out var lr) && lr.ValueKind == JsonValueKind.Number ? lr.GetSingle() : null,
                t.TryGetProperty("seed", out var sd) && sd.ValueKind == JsonValueKind.Number ? sd.GetUInt64() : null,
                S("metrics_json"), S("out"), false, I("limit"),
                t.TryGetProperty("classes", out var cl) && cl.ValueKind == JsonValueKind.Array ? cl.EnumerateArray().Select(e => e.GetInt32()).ToArray() : null,
                S("data_dir"), null, null, S("checkpoint_every"), false, S("dataset"),
                S("image_size"), I("channels"), t.TryGetProperty("validation_split", out var vs) && vs.ValueKind == JsonValueKind.Number ? vs.GetDouble() : null,
                t.TryGetProperty("skip_unreadable", out var su) && su.ValueKind == JsonValueKind.True,
                t.TryGetProperty("max_memory_mb", out var mm) && mm.ValueKind == JsonValueKind.Number ? mm.GetInt64() : null);
        }
        return m;
    }

    /// <summary>The name of class <paramref name="label"/> (its number when unknown).</summary>
    public string ClassName(int label) => Preprocessing.ClassName(label);
}

/// <summary>The --metrics-json format: {"epochs": [{"epoch": 1, "train_loss": ..., ...}]}.</summary>
internal static class MetricsJson
{
    public static void WriteEpoch(Utf8JsonWriter w, EpochMetrics e)
    {
        w.WriteStartObject();
        w.WriteNumber("epoch", e.Epoch);
        w.WriteNumber("train_loss", e.TrainLoss);
        w.WriteNumber("train_accuracy", e.TrainAccuracy);
        if (e.ValLoss is double vl) w.WriteNumber("val_loss", vl); else w.WriteNull("val_loss");
        if (e.ValAccuracy is double va) w.WriteNumber("val_accuracy", va); else w.WriteNull("val_accuracy");
        w.WriteNumber("seconds", e.Seconds);
        w.WriteNumber("samples_per_second", e.SamplesPerSecond);
        w.WriteNumber("learning_rate", e.LearningRate);
        w.WriteNumber("validation_seconds", e.ValidationSeconds);
        w.WriteEndObject();
    }

    public static EpochMetrics ReadEpoch(JsonElement e)
    {
        double D(string n) => e.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
        double? N(string n) => e.TryGetProperty(n, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : null;
        return new EpochMetrics((int)D("epoch"), D("train_loss"), D("train_accuracy"), N("val_loss"), N("val_accuracy"),
            D("seconds"), D("samples_per_second"), (float)D("learning_rate"), D("validation_seconds"));
    }

    /// <param name="run">the finished fit's cost (null while it runs); its ranks, steps and seconds are written</param>
    public static void Write(string path, IEnumerable<EpochMetrics> epochs, string? stopReason, TrainCommand.FitRun? run = null)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteStartArray("epochs");
            foreach (var e in epochs) WriteEpoch(w, e);
            w.WriteEndArray();
            if (stopReason is not null) w.WriteString("stop_reason", stopReason);
            if (run is not null)
            {
                w.WriteNumber("ranks", run.Ranks);
                w.WriteNumber("steps", run.Steps);
                w.WriteNumber("fit_seconds", run.Seconds);
                w.WriteNumber("communication_seconds", run.CommunicationSeconds);
            }
            w.WriteEndObject();
        }
        string tmp = path + ".tmp";
        File.WriteAllBytes(tmp, ms.ToArray());
        File.Move(tmp, path, overwrite: true);
    }
}
