using HpCnn.IO;

namespace HpCnn.Onnx;

/// <summary>
/// <c>model.SaveOnnx(path)</c> and <c>Sequential.LoadOnnx(path)</c> (with <c>using HpCnn.Onnx;</c>): the engine assembly
/// stays free of protobuf, this assembly adds the ONNX doors to <see cref="Sequential"/>.
/// </summary>
public static class SequentialOnnxExtensions
{
    extension(Sequential model)
    {
        /// <summary>Saves the model as ONNX (see <see cref="OnnxExport"/>).</summary>
        public void SaveOnnx(string path, OnnxExportOptions? options = null) => OnnxExport.Save(model, path, options);
    }

    extension(Sequential)
    {
        /// <summary>Reads an ONNX model (see <see cref="OnnxImport"/>).</summary>
        public static Sequential LoadOnnx(string path, long maxFlopsPerImage = ComputeBudget.DefaultFlopsPerImage) => OnnxImport.Load(path, maxFlopsPerImage);
    }
}
