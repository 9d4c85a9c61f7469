using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace HpCnn.Native;

public static unsafe partial class Exports
{
    [UnmanagedCallersOnly(EntryPoint = "hpcnn_predict")]
    public static int Predict(nint model, float* input, long n, float* output, long outCount)
    {
        try
        {
            var m = ModelOf(model);
            int count = CheckCount(n, "n");
            var x = Buffer(input, (long)count * m.InputShape.Size, (long)count * m.InputShape.Size, "input", "");
            var y = Buffer(output, outCount, (long)count * m.OutputShape.Size, "out", $"{count} images x {m.OutputShape.Size} outputs");
            m.PredictInto(x, y);
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
