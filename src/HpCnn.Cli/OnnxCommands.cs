using System.CommandLine;
using HpCnn.Layers;
using HpCnn.Onnx;
using HpCnn.Training;

namespace HpCnn.Cli;

/// <summary>hpcnn export MODEL OUT.onnx and hpcnn import IN.onnx OUT.hpcnn: ONNX out of and into HpCnn model files.</summary>
internal static class OnnxCommands
{
    public static Command Export()
    {
        var model = new Argument<string>("model") { Description = "Model file written by `hpcnn train --out`" };
        var output = new Argument<string>("out") { Description = "ONNX file to write (opset 13; input [batch, C, H, W], output the class probabilities)" };
        var embed = new Option<bool>("--embed-standardization")
        {
            Description = "Put the model's standardisation (saved by `hpcnn train`) in front of the graph as Sub/Mul (or Div) nodes, so the ONNX model takes raw pixel values",
        };
        var cmd = new Command("export", "Export a model file as ONNX (runs in ONNX Runtime and other ONNX engines)") { model, output, embed };
        cmd.SetAction(r =>
        {
            string path = r.GetValue(model)!, dst = r.GetValue(output)!;
            var m = Shared.LoadModel(path).Model;
            if (r.GetValue(embed) && m.Preprocessing.Standardization is null)
                throw new CliException($"{path}: the model has no saved standardisation to embed (drop --embed-standardization)");
            m.SaveOnnx(dst, new OnnxExportOptions { EmbedStandardization = r.GetValue(embed) });
            Console.WriteLine($"wrote {dst} ({new FileInfo(dst).Length:N0} bytes): {m.Layers.Count} layers, opset {OnnxExport.Opset}");
            return ExitCodes.Ok;
        });
        return cmd;
    }

    public static Command Import()
    {
        var input = new Argument<string>("onnx") { Description = "ONNX file: a chain of Conv, Gemm/MatMul, pooling, normalisation and activation nodes (e.g. from torch.onnx.export)" };
        var output = new Argument<string>("out") { Description = "HpCnn model file to write" };
        var cmd = new Command("import", "Import an ONNX model as an HpCnn model file (then predict, inspect, or fine-tune it)") { input, output };
        cmd.SetAction(r =>
        {
            string src = r.GetValue(input)!, dst = r.GetValue(output)!;
            if (!File.Exists(src)) throw new CliException($"ONNX file not found: {src}");
            var m = OnnxImport.Load(src, Shared.MaxFlopsPerImage);
            // A classifier head gets its loss, so that `hpcnn eval` runs on the imported file.
            LossKind? loss = m.Layers[^1] switch
            {
                Softmax when m.OutputShape.Size >= 2 => LossKind.CrossEntropy,
                Sigmoid when m.OutputShape.Size == 1 => LossKind.BinaryCrossEntropy,
                _ => null,
            };
            if (loss is LossKind l) m.Compile(l, new Sgd(0.01f, momentum: 0.9f));
            m.Save(dst);
            Console.WriteLine($"wrote {dst}: {m.Layers.Count} layers, {m.ParameterCount:N0} parameters, input {m.InputShape}, output {m.OutputShape}" +
                (loss is LossKind k ? $"; loss {k.Name()} (from its {m.Layers[^1].Kind} head)" : "; no loss (not a softmax or sigmoid classifier)"));
            return ExitCodes.Ok;
        });
        return cmd;
    }
}
