using System.Runtime.InteropServices;
using HpCnn.Onnx;

namespace HpCnn.Native;

// ONNX export and import (ABI 4).
public static unsafe partial class Exports
{
    /// <summary>hpcnn_model_save_onnx flag: standardisation from the model's metadata as leading Sub/Mul (or Div) nodes.</summary>
    public const int OnnxEmbedStandardization = 1;

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_save_onnx")]
    public static int ModelSaveOnnx(nint model, byte* path, int flags)
    {
        try
        {
            if ((flags & ~OnnxEmbedStandardization) != 0) throw new ArgumentException($"flags: unknown bits 0x{flags & ~OnnxEmbedStandardization:x} (only HPCNN_ONNX_EMBED_STANDARDIZATION)");
            ModelOf(model).SaveOnnx(Utf8.Read(path, "path"), new OnnxExportOptions { EmbedStandardization = (flags & OnnxEmbedStandardization) != 0 });
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_model_load_onnx")]
    public static int ModelLoadOnnx(byte* path, long maxFlopsPerImage, nint* @out)
    {
        try
        {
            CheckOut(@out, "out");
            return NewModel(OnnxImport.Load(Utf8.Read(path, "path"), maxFlopsPerImage), @out);
        }
        catch (Exception e) { return Status.From(e); }
    }
}
