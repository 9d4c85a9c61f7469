using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace HpCnn.Native;

public static unsafe partial class Exports
{
    [UnmanagedCallersOnly(EntryPoint = "hpcnn_predict")]
    public static int Predict(nint model, float* input, long n, float* output, long outCount) =>
        PredictWith(model, input, n, output, outCount, "input", static (m, x, y) => m.PredictInto(x, y));

    private delegate void PredictAction<T>(Sequential model, ReadOnlySpan<T> images, Span<float> probabilities);

    /// <summary>
    /// The predict functions' one body: n images of the model's input size in, n x outputs probabilities out, checked
    /// the same way whatever the pixels' type and preprocessing.
    /// </summary>
    private static int PredictWith<T>(nint model, T* input, long n, float* output, long outCount, string argument, PredictAction<T> predict)
        where T : unmanaged
    {
        try
        {
            var m = ModelOf(model);
            int count = CheckCount(n, "n");
            var x = Buffer(input, (long)count * m.InputShape.Size, (long)count * m.InputShape.Size, argument, "");
            var y = Buffer(output, outCount, (long)count * m.OutputShape.Size, "out", $"{count} images x {m.OutputShape.Size} outputs");
            predict(m, x, y);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_predict_classes")]
    public static int PredictClasses(nint model, float* input, long n, int* classes)
    {
        try
        {
            var m = ModelOf(model);
            int count = CheckCount(n, "n");
            var x = Buffer(input, (long)count * m.InputShape.Size, (long)count * m.InputShape.Size, "input", "");
            var dst = Buffer(classes, count, count, "out_classes", "one per image");
            var p = m.Predict(x);
            p.Classes.CopyTo(dst);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_forward_layer")]
    public static int ForwardLayer(nint model, int layer, float* input, long n, float* output, long outCount)
    {
        try
        {
            var m = ModelOf(model);
            var l = m.LayerAt(layer);
            int count = CheckCount(n, "n");
            var x = Buffer(input, (long)count * m.InputShape.Size, (long)count * m.InputShape.Size, "input", "");
            var y = Buffer(output, outCount, (long)count * l.OutputShape.Size, "out", $"{count} images x {l.OutputShape} of {l.Label}");
            m.LayerOutput(layer, x).CopyTo(y);
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }
}
