using System.Runtime.InteropServices;
using HpCnn.IO;
using HpCnn.Layers;
using HpCnn.Training;

namespace HpCnn.Native;

public static unsafe partial class Exports
{
    private static Sequential ModelOf(nint h) => Handles.Get<NativeModel>(h, "model").Model;

    private static int NewModel(Sequential m, nint* @out)
    {
        *@out = Handles.Add(new NativeModel(m));
        return Status.Ok;
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_create")]
    public static int ModelCreate(int c, int h, int w, ulong seed, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            return NewModel(new Sequential(new Shape3(c, h, w), seed), @out);
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_from_spec")]
    public static int ModelFromSpec(byte* json, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            return NewModel(NetworkSpec.Parse(Utf8.Read(json, "json")).Model, @out);
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_load")]
    public static int ModelLoad(byte* path, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            return NewModel(ModelFile.Load(Utf8.Read(path, "path")).Model, @out);
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_save")]
    public static int ModelSave(nint model, byte* path)
    {
        try
        {
            ModelOf(model).Save(Utf8.Read(path, "path"));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_release")]
    public static void ModelRelease(nint model)
    {
        try { Handles.Remove<NativeModel>(model)?.Dispose(); }
        catch (Exception e) { Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_spec")]
    public static int ModelSpec(nint model, nint* outJson)
    {
        try
        {
            var json = NetworkSpec.ToJson(ModelOf(model));
            Out(outJson, Utf8.Alloc(json), "out_json");
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_summary")]
    public static int ModelSummary(nint model, nint* outText)
    {
        try
        {
            var text = ModelOf(model).Summary();
            Out(outText, Utf8.Alloc(text), "out_text");
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_layer_count")]
    public static int ModelLayerCount(nint model, int* outCount)
    {
        try { Out(outCount, ModelOf(model).Layers.Count, "out_count"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_input_shape")]
    public static int ModelInputShape(nint model, int* c, int* h, int* w)
    {
        try
        {
            var s = ModelOf(model).InputShape;
            CheckOut(c, "out_c"); CheckOut(h, "out_h"); CheckOut(w, "out_w");
            *c = s.C; *h = s.H; *w = s.W;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_output_size")]
    public static int ModelOutputSize(nint model, int* size)
    {
        try { Out(size, ModelOf(model).OutputShape.Size, "out_size"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_parameter_count")]
    public static int ModelParameterCount(nint model, long* count)
    {
        try { Out(count, ModelOf(model).ParameterCount, "out_count"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_epochs_trained")]
    public static int ModelEpochsTrained(nint model, int* epochs)
    {
        try { Out(epochs, ModelOf(model).EpochsTrained, "out_epochs"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_set_inference_cache")]
    public static int ModelSetInferenceCache(nint model, long bytes)
    {
        try
        {
            if (bytes < 0) throw new ArgumentException($"the inference cache budget must be >= 0 bytes, got {bytes}");
            ModelOf(model).InferenceCacheBytes = bytes;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_get_inference_cache")]
    public static int ModelGetInferenceCache(nint model, long* bytes)
    {
        try { Out(bytes, ModelOf(model).InferenceCacheBytes, "out_bytes"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    private static LossKind LossOf(int loss) => loss switch
    {
        0 => LossKind.CrossEntropy,
        1 => LossKind.BinaryCrossEntropy,
        2 => LossKind.MeanSquaredError,
        _ => throw new ArgumentException($"loss must be HPCNN_LOSS_CROSS_ENTROPY (0), _BINARY_CROSS_ENTROPY (1) or _MSE (2), got {loss}"),
    };

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_compile_sgd")]
    public static int CompileSgd(nint model, int loss, float lr, float momentum, int nesterov, float weightDecay)
    {
        try
        {
            ModelOf(model).Compile(LossOf(loss), new Sgd(lr, momentum, nesterov != 0, weightDecay));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_compile_adam")]
    public static int CompileAdam(nint model, int loss, float lr, float beta1, float beta2, float epsilon, float weightDecay)
    {
        try
        {
            ModelOf(model).Compile(LossOf(loss), new Adam(lr, beta1, beta2, epsilon, weightDecay));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    private static Optimizer OptimizerOf(nint model) =>
        ModelOf(model).Optimizer ?? throw new InvalidOperationException("the model is not compiled (call hpcnn_model_compile_sgd or _adam first)");

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_set_learning_rate")]
    public static int SetLearningRate(nint model, float lr)
    {
        try { OptimizerOf(model).LearningRate = lr; return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_set_step_schedule")]
    public static int SetStepSchedule(nint model, int stepSize, float gamma)
    {
        try { OptimizerOf(model).Schedule = new StepSchedule(stepSize, gamma); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_set_cosine_schedule")]
    public static int SetCosineSchedule(nint model, int epochs, float minFactor)
    {
        try { OptimizerOf(model).Schedule = new CosineSchedule(epochs, minFactor); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }
}
