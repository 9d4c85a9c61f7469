using System.CommandLine;
using System.Globalization;
using HpCnn.Layers;
using HpCnn.Training;
using Spectre.Console;

namespace HpCnn.Cli;

/// <summary>hpcnn inspect MODEL | --net NAME: the layer table with shapes, parameters and FLOPs.</summary>
internal static class InspectCommand
{
    public static Command Create()
    {
        var model = new Argument<string?>("model") { Description = "Model file to inspect", Arity = ArgumentArity.ZeroOrOne };
        var net = new Option<string?>("--net") { Description = "Inspect a preset or spec file instead of a model file", HelpName = "NAME|FILE" };
        var cmd = new Command("inspect", "Show a network's layers, output shapes, parameter counts and FLOPs") { model, net };
        cmd.SetAction(r => Run(r.GetValue(model), r.GetValue(net)));
        return cmd;
    }

    private static int Run(string? path, string? net)
    {
        if ((path is null) == (net is null)) throw new CliException("give either a MODEL file or --net NAME|FILE", ExitCodes.Usage);
        Sequential model;
        string title;
        if (path is not null)
        {
            var loaded = Shared.LoadModel(path);
            model = loaded.Model;
            title = Path.GetFileName(path);
        }
        else
        {
            var r = Shared.ResolveNetwork(net!, 42);
            model = r.Model;
            title = r.Name;
        }
        AnsiConsole.Write(LayerTable(model, title));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"total: {model.ParameterCount:N0} parameters, {model.FlopsPerSample / 1e6:F3} MFLOP forward per image"));
        if (model.Loss is not null) Console.WriteLine($"loss: {model.Loss.Value.Name()}; optimizer: {model.Optimizer!.Describe()}{(model.Optimizer.Schedule is { } s ? $", {s.Describe()}" : "")}");
        if (path is not null)
        {
            var meta = ModelMetadata.FromModel(model);
            Console.WriteLine($"epochs trained: {model.EpochsTrained}; optimizer steps: {model.Optimizer?.Steps ?? 0}; file: {new FileInfo(path).Length:N0} bytes");
            Console.WriteLine($"preprocessing: {model.Preprocessing.Describe()}");
            if (meta.Preprocessing.ClassNames is { } names) Console.WriteLine($"classes: {string.Join(", ", names)}");
            if (meta.History.LastOrDefault() is { } last)
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"last epoch: validation accuracy {last.ValAccuracy:F4}, loss {last.ValLoss:F4}"));
        }
        return ExitCodes.Ok;
    }

    public static Table LayerTable(Sequential model, string title)
    {
        var t = new Table().Border(TableBorder.Rounded).Title(Shared.Escape(title))
            .AddColumns("#", "layer", "output shape", "parameters", "MFLOP/image", "details");
        t.Columns[3].RightAligned();
        t.Columns[4].RightAligned();
        t.AddRow("", "input", model.InputShape.ToString(), "", "", "");
        foreach (Layer l in model.Layers)
            t.AddRow(l.Index.ToString(CultureInfo.InvariantCulture), l.Kind + (l.Frozen ? " (frozen)" : ""), l.OutputShape.ToString(),
                l.ParameterCount.ToString("N0", CultureInfo.InvariantCulture), (l.FlopsPerSample / 1e6).ToString("F3", CultureInfo.InvariantCulture),
                Shared.Escape(l.Describe()));
        t.AddRow("", "[bold]total[/]", "", $"[bold]{model.ParameterCount.ToString("N0", CultureInfo.InvariantCulture)}[/]",
            $"[bold]{(model.FlopsPerSample / 1e6).ToString("F3", CultureInfo.InvariantCulture)}[/]", "");
        return t;
    }
}
