using System.CommandLine;
using System.Globalization;
using Spectre.Console;

namespace HpCnn.Cli;

/// <summary>hpcnn predict MODEL IMAGE... | --idx FILE --index N: top-k classes with probabilities.</summary>
internal static class PredictCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model file written by `hpcnn train --out`" };
        var images = new Argument<string[]>("images") { Description = "Image files: PNG, JPEG, BMP or GIF (grayscale or colour)", Arity = ArgumentArity.ZeroOrMore };
        var idx = new Option<string?>("--idx") { Description = "Predict an image of an IDX image file instead", HelpName = "FILE" };
        var index = new Option<int>("--index") { Description = "Which image of the --idx file", DefaultValueFactory = _ => 0, HelpName = "N" };
        var top = new Option<int>("--top") { Description = "How many classes to show", DefaultValueFactory = _ => 3, HelpName = "K" };
        var noResize = new Option<bool>("--no-resize") { Description = "Reject images whose size differs from the model's input instead of resizing them" };
        var invert = new Option<string>("--invert") { Description = "Invert light-background images: auto, yes or no", DefaultValueFactory = _ => "auto", HelpName = "MODE" };
        var cmd = new Command("predict", "Predict the classes of image files (PNG, JPEG, BMP, GIF) or of an IDX image") { model, images, idx, index, top, noResize, invert };
        cmd.SetAction(r => Run(r.GetValue(model)!, r.GetValue(images) ?? [], r.GetValue(idx), r.GetValue(index), r.GetValue(top),
            r.GetValue(noResize), r.GetValue(invert)!));
        return cmd;
    }

    /// <summary>The name of a raw dataset label, mapped through the model's class subset when it has one.</summary>
    private static string TrueClassName(ModelMetadata meta, int raw)
    {
        if (meta.Classes is not { } keep) return meta.ClassName(raw);
        int k = Array.IndexOf(keep, raw);
        string name = raw < Data.FashionMnist.ClassNames.Count ? Data.FashionMnist.ClassNames[raw] : raw.ToString(CultureInfo.InvariantCulture);
        return k >= 0 ? meta.ClassName(k) : $"{name}, not one of the model's classes";
    }

    private static int Run(string path, string[] images, string? idx, int index, int top, bool noResize, string invert)
    {
        if (images.Length == 0 && idx is null) throw new CliException("give image files (PNG, JPEG, BMP, GIF), or --idx FILE --index N", ExitCodes.Usage);
        if (images.Length > 0 && idx is not null) throw new CliException("give either image files or --idx, not both", ExitCodes.Usage);
        if (top < 1) throw new CliException($"--top must be at least 1, got {top}", ExitCodes.Usage);
        var model = Shared.LoadModel(path).Model;
        var meta = ModelMetadata.FromModel(model);
        var inputs = idx is not null
            ? [ImageInput.FromIdx(idx, index, model.InputShape)]
            : images.Select(p => ImageInput.FromImage(p, model.InputShape, noResize, invert, lightOnDark: meta.Dataset is "fashion-mnist" or "mnist")).ToList();
        int size = model.InputShape.Size;
        var batch = new float[inputs.Count * size];
        for (int i = 0; i < inputs.Count; i++) inputs[i].Pixels.CopyTo(batch, i * size);
        model.Preprocessing.ApplyToUnitPixels(batch, size);
        var p = model.Predict(batch);
        for (int i = 0; i < inputs.Count; i++)
        {
            var inp = inputs[i];
            var probs = p.ProbabilitiesOf(i).ToArray();
            if (probs.Length == 1) probs = [1 - probs[0], probs[0]]; // one sigmoid output: classes 0 and 1
            string truth = inp.TrueLabel is int t ? $" (true class: {Shared.Escape(TrueClassName(meta, t))})" : "";
            AnsiConsole.MarkupLine($"[bold]{Shared.Escape(inp.Name)}[/]{truth}");
            if (inp.Note is not null) AnsiConsole.MarkupLine($"  [grey]{Shared.Escape(inp.Note)}[/]");
            var order = Enumerable.Range(0, probs.Length).OrderByDescending(k => probs[k]).Take(top).ToList();
            for (int r = 0; r < order.Count; r++)
            {
                int k = order[r];
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {r + 1}. {meta.ClassName(k),-12} {probs[k]:F4}"));
            }
        }
        return ExitCodes.Ok;
    }
}
