using System.Runtime.InteropServices;
using System.Text.Json;
using HpCnn.IO;
using HpCnn.Training;

namespace HpCnn.Native;

/// <summary>ABI 3: checkpoints and resume, the data check, the compute budget for untrusted models.</summary>
public static unsafe partial class Exports
{
    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_checkpoint")]
    public static int FitOptionsSetCheckpoint(nint options, byte* directory, int everyBatches, double everySeconds)
    {
        try
        {
            var o = OptionsOf(options);
            if (everyBatches < 0) throw new ArgumentException($"every_batches must be 0 (epoch ends only) or more, got {everyBatches}");
            if (double.IsNaN(everySeconds) || everySeconds > 1e9) throw new ArgumentException($"every_seconds must be a number of seconds (<= 0 for none), got {everySeconds}");
            string? dir = directory == null ? null : Utf8.Read(directory, "directory");
            if (dir is "") throw new ArgumentException("directory is an empty string (NULL turns checkpoints off)");
            o.CheckpointDirectory = dir;
            o.CheckpointEveryBatches = everyBatches;
            o.CheckpointInterval = everySeconds > 0 ? TimeSpan.FromSeconds(everySeconds) : null;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_resume")]
    public static int FitOptionsSetResume(nint options, int resume)
    {
        try { OptionsOf(options).Resume = resume != 0; return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_check_data")]
    public static int FitOptionsSetCheckData(nint options, int check)
    {
        try { OptionsOf(options).CheckData = check != 0; return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_message_callback")]
    public static int FitOptionsSetMessageCallback(nint options, nint onMessage, nint user)
    {
        try
        {
            var o = OptionsOf(options);
            o.OnMessage = onMessage;
            o.MessageUser = user;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_history_json")]
    public static int FitOptionsHistoryJson(nint options, nint* outJson)
    {
        try
        {
            var o = OptionsOf(options);
            CheckOut(outJson, "out_json");
            var h = o.LastHistory ?? throw new InvalidOperationException("no hpcnn_fit has run with these options yet");
            Out(outJson, Utf8.Alloc(HistoryJson(h)), "out_json");
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_checkpoint_load")]
    public static int CheckpointLoad(byte* directory, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            return NewModel(Checkpoint.Load(Utf8.Read(directory, "directory")).Model, @out);
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_default_max_flops_per_image")]
    public static long DefaultMaxFlopsPerImage() => ComputeBudget.DefaultFlopsPerImage;

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_load_with_budget")]
    public static int ModelLoadWithBudget(byte* path, long maxFlopsPerImage, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            return NewModel(ModelFile.Load(Utf8.Read(path, "path"), ComputeBudget.Resolve(maxFlopsPerImage)).Model, @out);
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_from_spec_with_budget")]
    public static int ModelFromSpecWithBudget(byte* json, long maxFlopsPerImage, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            return NewModel(NetworkSpec.Parse(Utf8.Read(json, "json"), maxFlopsPerImage: ComputeBudget.Resolve(maxFlopsPerImage)).Model, @out);
        }
        catch (Exception e) { return Status.From(e); }
    }

    /// <summary>{"epochs": [...], "resumed_epochs", "resumed_from", "stop_reason", "restored_epoch", "last_checkpoint", "checkpoints_written", "ranks", "communication_seconds"}.</summary>
    private static string HistoryJson(TrainingHistory h)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteStartArray("epochs");
            foreach (var e in h.Epochs)
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
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteNumber("resumed_epochs", h.ResumedEpochs);
            if (h.ResumedFrom is { } rf) w.WriteString("resumed_from", rf); else w.WriteNull("resumed_from");
            if (h.StopReason is { } sr) w.WriteString("stop_reason", sr); else w.WriteNull("stop_reason");
            if (h.RestoredEpoch is int re) w.WriteNumber("restored_epoch", re); else w.WriteNull("restored_epoch");
            if (h.LastCheckpoint is { } lc) w.WriteString("last_checkpoint", lc); else w.WriteNull("last_checkpoint");
            w.WriteNumber("checkpoints_written", h.CheckpointsWritten);
            w.WriteNumber("ranks", h.Ranks);
            w.WriteNumber("communication_seconds", h.CommunicationSeconds);
            w.WriteEndObject();
        }
        return System.Text.Encoding.UTF8.GetString(ms.ToArray());
    }
}
