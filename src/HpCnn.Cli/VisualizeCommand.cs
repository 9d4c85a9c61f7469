using System.CommandLine;
using HpCnn.Imaging;
using HpCnn.Layers;

namespace HpCnn.Cli;

/// <summary>
/// hpcnn visualize MODEL: PNG pictures of the learned filters (and the initial ones beside them), the feature maps of a
/// test image after every layer, and the training curves as SVG.
/// </summary>
internal static class VisualizeCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model file written by `hpcnn train --out`" };
        var outDir = new Option<string>("--out-dir") { Description = "Folder for the pictures", DefaultValueFactory = _ => "pictures", HelpName = "DIR" };
        var imageIndex = new Option<int>("--image-index") { Description = "Test image whose feature maps are drawn", DefaultValueFactory = _ => 0, HelpName = "N" };
        var image = new Option<string?>("--image") { Description = "Draw the feature maps of this PNG instead of a test image", HelpName = "FILE" };
        var scale = new Option<int>("--scale") { Description = "Pixels per filter weight", DefaultValueFactory = _ => 8, HelpName = "N" };
        var dataDir = Shared.DataDir();
        var cmd = new Command("visualize", "Draw a model's filters, feature maps and training curves") { model, outDir, imageIndex, image, scale, dataDir };
        cmd.SetAction(r => Run(r.GetValue(model)!, r.GetValue(outDir)!, r.GetValue(imageIndex), r.GetValue(image), r.GetValue(scale), r.GetValue(dataDir)));
        return cmd;
    }

    private static int Run(string path, string outDir, int imageIndex, string? imagePath, int scale, string? dataDir)
    {
        if (scale < 1 || scale > 64) throw new CliException($"--scale must be in [1, 64], got {scale}", ExitCodes.Usage);
        var loaded = Shared.LoadModel(path);
        var model = loaded.Model;
        var meta = ModelMetadata.FromModel(model);
        Directory.CreateDirectory(outDir);
        var written = new List<string>();
        void Save(string name, RasterImage img)
        {
            string p = Path.Combine(outDir, name);
            ImageEncoding.WritePng(p, img);
            written.Add($"{p} ({img.Width}x{img.Height})");
        }

        // Filters of every convolution: learned, and initial beside learned on one colour scale.
        var parameters = model.Layers.SelectMany(l => l.Parameters.Select(p => (Layer: l, Param: p))).ToList();
        foreach (var conv in model.Layers.OfType<Conv2D>())
        {
            var w = conv.Weight.Value;
            var s = conv.Shape;
            int sc = FitScale(scale, s.OutC * s.KH, s.InC * s.KW);
            Save($"filters-layer{conv.Index}.png", ImageGrid.RenderFilters(w, s.OutC, s.InC, s.KH, s.KW, sc));
            if (loaded.InitialWeights is { } init)
            {
                var w0 = init[parameters.FindIndex(t => ReferenceEquals(t.Param, conv.Weight))];
                var range = ValueRange.SymmetricOf(w0).Union(ValueRange.SymmetricOf(w));
                Save($"filters-layer{conv.Index}-initial-vs-learned.png", ImageGrid.Concat(
                [
                    ImageGrid.RenderFilters(w0, s.OutC, s.InC, s.KH, s.KW, sc, range),
                    ImageGrid.RenderFilters(w, s.OutC, s.InC, s.KH, s.KW, sc, range),
                ]));
            }
        }

        // Feature maps of one image after every layer.
        ImageInput.Loaded input = imagePath is not null
            ? ImageInput.FromImage(imagePath, model.InputShape, false, "auto")
            : TestImage(meta, model, imageIndex, dataDir);
        var shape = model.InputShape;
        Save("input.png", ImageGrid.RenderFeatureMaps(input.Pixels, shape.C, shape.H, shape.W, 8));
        var x = (float[])input.Pixels.Clone();
        model.Preprocessing.ApplyToUnitPixels(x, shape.Size);
        foreach (var layer in model.Layers)
        {
            var o = layer.OutputShape;
            if (o.IsFlat || layer is Flatten) continue;
            var maps = model.LayerOutput(layer.Index, x);
            Save($"featuremaps-{layer.Index:D2}-{layer.Kind}.png", ImageGrid.RenderFeatureMaps(maps, o.C, o.H, o.W, o.H <= 14 ? 6 : 3));
        }

        // Training curves.
        if (meta.History.Count > 0)
        {
            string svg = Path.Combine(outDir, "curves.svg");
            SvgChart.Write(svg, $"Training of {Path.GetFileName(path)}",
            [
                new ChartPanel("Loss", [Series("train", meta.History.Select(h => h.TrainLoss)), Series("validation", meta.History.Select(h => h.ValLoss ?? double.NaN))]) { YLabel = "loss" },
                new ChartPanel("Accuracy", [Series("train", meta.History.Select(h => h.TrainAccuracy)), Series("validation", meta.History.Select(h => h.ValAccuracy ?? double.NaN))]) { YLabel = "accuracy" },
            ]);
            written.Add(svg);
        }
        else
        {
            Console.WriteLine("no training history in the model file: no curves drawn");
        }
        Console.WriteLine($"image: {input.Name}{(input.TrueLabel is int t ? $" (class {meta.ClassName(t)})" : "")}");
        foreach (var w in written) Console.WriteLine($"wrote {w}");
        return ExitCodes.Ok;
    }

    private static ChartSeries Series(string name, IEnumerable<double> values) => new(name, values.ToList());

    /// <summary>Lowers the scale so a grid stays a few thousand pixels wide at most.</summary>
    private static int FitScale(int scale, int rowsPx, int colsPx)
    {
        while (scale > 1 && ((long)rowsPx * scale > 4000 || (long)colsPx * scale > 4000)) scale--;
        return scale;
    }

    private static ImageInput.Loaded TestImage(ModelMetadata meta, Sequential model, int index, string? dataDir)
    {
        var (_, test) = Shared.LoadData(meta.Dataset, dataDir, model.InputShape);
        var data = meta.Classes is { } keep ? test.FilterClasses(keep) : test;
        if (data.Shape != model.InputShape) throw new CliException($"the model takes {model.InputShape} images, the test set has {data.Shape}");
        if (index < 0 || index >= data.Count) throw new CliException($"--image-index {index} is outside the {data.Count} test images (0..{data.Count - 1})");
        return new ImageInput.Loaded($"test image {index}", data.Image(index).ToArray(), data.Labels[index], null);
    }
}
