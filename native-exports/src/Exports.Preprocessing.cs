using System.Runtime.InteropServices;
using HpCnn.Data;

namespace HpCnn.Native;

/// <summary>The model's preprocessing record (Sequential.Preprocessing) and predictions on raw pixels (ABI 8).</summary>
public static unsafe partial class Exports
{
    private const int StandardizeNone = -1;

    private static PixelScale PixelScaleOf(int scale) => scale switch
    {
        0 => PixelScale.Unit,
        1 => PixelScale.Byte,
        _ => throw new ArgumentException($"scale must be HPCNN_PIXELS_0_1 (0) or HPCNN_PIXELS_0_255 (1), got {scale}"),
    };

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_set_standardization")]
    public static int ModelSetStandardization(nint model, int mode, float* mean, float* std, long count)
    {
        try
        {
            var m = ModelOf(model);
            if (mode == StandardizeNone)
            {
                if (count != 0) throw new ArgumentException($"count: HPCNN_STANDARDIZE_NONE clears the statistics and takes count 0, got {count}");
                m.Preprocessing = m.Preprocessing with { Standardization = null };
                return Status.Ok;
            }
            var (kind, expected, what) = mode switch
            {
                0 => (StandardizeMode.Global, 1L, "one mean and one deviation"),
                1 => (StandardizeMode.PerPixel, (long)m.InputShape.Size, $"one per pixel of the model's {m.InputShape} input"),
                _ => throw new ArgumentException($"mode must be HPCNN_STANDARDIZE_GLOBAL (0), _PER_PIXEL (1) or _NONE (-1), got {mode}"),
            };
            var mu = Buffer(mean, count, expected, "mean", what);
            var sd = Buffer(std, count, expected, "std", what);
            m.Preprocessing = m.Preprocessing with { Standardization = Standardization.Create(kind, mu.ToArray(), sd.ToArray()) };
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_standardization_info")]
    public static int ModelStandardizationInfo(nint model, int* outMode, long* outCount)
    {
        try
        {
            CheckOut(outMode, "out_mode"); CheckOut(outCount, "out_count");
            var s = ModelOf(model).Preprocessing.Standardization;
            *outMode = s is null ? StandardizeNone : s.Mode == StandardizeMode.Global ? 0 : 1;
            *outCount = s?.Mean.Length ?? 0;
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_get_standardization")]
    public static int ModelGetStandardization(nint model, float* outMean, float* outStd, long count)
    {
        try
        {
            var s = ModelOf(model).Preprocessing.Standardization
                ?? throw new InvalidOperationException("the model records no standardization (hpcnn_model_standardization_info gives HPCNN_STANDARDIZE_NONE)");
            var mu = Buffer(outMean, count, s.Mean.Length, "out_mean", "hpcnn_model_standardization_info's count");
            var sd = Buffer(outStd, count, s.Std.Length, "out_std", "hpcnn_model_standardization_info's count");
            s.Mean.CopyTo(mu);
            s.Std.CopyTo(sd);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_set_pixel_scale")]
    public static int ModelSetPixelScale(nint model, int scale)
    {
        try
        {
            var m = ModelOf(model);
            m.Preprocessing = m.Preprocessing with { PixelScale = PixelScaleOf(scale) };
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_get_pixel_scale")]
    public static int ModelGetPixelScale(nint model, int* outScale)
    {
        try { Out(outScale, ModelOf(model).Preprocessing.PixelScale == PixelScale.Unit ? 0 : 1, "out_scale"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_set_class_names")]
    public static int ModelSetClassNames(nint model, byte** names, int count)
    {
        try
        {
            var m = ModelOf(model);
            if (count < 0 || count > m.ClassCount)
                throw new ArgumentException($"count: {count} class names for a model that scores {m.ClassCount} classes (0 clears them)");
            if (count > 0 && names == null) throw new ArgumentNullException("names", "names is NULL");
            var list = new string[count];
            for (int i = 0; i < count; i++) list[i] = Utf8.Read(names[i], $"names[{i}]");
            m.Preprocessing = m.Preprocessing with { ClassNames = count == 0 ? null : list };
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_class_name_count")]
    public static int ModelClassNameCount(nint model, int* outCount)
    {
        try { Out(outCount, ModelOf(model).Preprocessing.ClassNames?.Count ?? 0, "out_count"); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_class_name")]
    public static int ModelClassName(nint model, int index, nint* outName)
    {
        try
        {
            CheckOut(outName, "out_name");
            var m = ModelOf(model);
            if ((uint)index >= (uint)m.ClassCount) throw new ArgumentException($"index: class {index} is outside [0, {m.ClassCount})");
            *outName = Utf8.Alloc(m.Preprocessing.ClassName(index));
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_set_preprocessing_from_dataset")]
    public static int ModelSetPreprocessingFromDataset(nint model, nint dataset)
    {
        try
        {
            var m = ModelOf(model);
            var d = DataOf(dataset);
            if (d.Shape != m.InputShape) throw new ArgumentException($"dataset: images are {d.Shape}, the model takes {m.InputShape}");
            m.Preprocessing = m.Preprocessing with { Standardization = d.Standardization, ClassNames = d.ClassNames };
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_predict_raw_u8")]
    public static int PredictRawU8(nint model, byte* pixels, long n, float* output, long outCount) =>
        PredictWith(model, pixels, n, output, outCount, "pixels", static (m, x, y) => m.PredictRawInto(x, y));

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_predict_raw")]
    public static int PredictRaw(nint model, float* pixels, long n, float* output, long outCount) =>
        PredictWith(model, pixels, n, output, outCount, "pixels", static (m, x, y) => m.PredictRawInto(x, y));
}
