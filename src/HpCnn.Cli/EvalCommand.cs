using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Spectre.Console;

namespace HpCnn.Cli;

/// <summary>hpcnn eval MODEL: loss, accuracy, per-class accuracy and the confusion matrix on the test set.</summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = new Argument<string>("model") { Description = "Model file written by `hpcnn train --out`" };
        var batch = new Option<int>("--batch-size") { Description = "Batch size of the evaluation", DefaultValueFactory = _ => 256, HelpName = "N" };
        var json = new Option<string?>("--json") { Description = "Also write the results as JSON to this file", HelpName = "FILE" };
        var train = new Option<bool>("--train-set") { Description = "Evaluate on the training set instead of the test set" };
        var dataset = Shared.DatasetOption("default: the one the model was trained on");
        var dataDir = Shared.DataDir();
        var threads = Shared.Threads();
        var cmd = new Command("eval", "Evaluate a model on the test set of its dataset") { model, batch, json, train, dataset, dataDir, threads };
        cmd.SetAction(r => Run(r.GetValue(model)!, r.GetValue(batch), r.GetValue(json), r.GetValue(train), r.GetValue(dataset), r.GetValue(dataDir), r.GetValue(threads)));
        return cmd;
    }

    private static int Run(string path, int batch, string? json, bool trainSet, string? dataset, string? dataDir, int? threads)
    {
        Shared.ApplyThreads(threads);
        if (batch < 1) throw new CliException($"--batch-size must be at least 1, got {batch}", ExitCodes.Usage);
        var loaded = Shared.LoadModel(path);
        var model = loaded.Model;
        if (model.Loss is null) throw new CliException($"{path}: the model has no loss (it was never compiled), so it cannot be evaluated");
        var meta = ModelMetadata.FromModel(model);
        var (rawTrain, rawTest) = Shared.LoadData(dataset ?? meta.Dataset, dataDir, model.InputShape);
        var data = Shared.Prepare(trainSet ? rawTrain : rawTest, meta);
        if (data.Shape != model.InputShape) throw new CliException($"{path} takes {model.InputShape} inputs, the data is {data.Shape}");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var ev = model.Evaluate(data, batch);
        sw.Stop();
        int k = ev.Confusion.GetLength(0);
        var names = Enumerable.Range(0, k).Select(meta.ClassName).ToArray();
        var perClass = ev.PerClassAccuracy();

        AnsiConsole.MarkupLine($"[bold]{Shared.Escape(Path.GetFileName(path))}[/] on the {(trainSet ? "training" : "test")} set ({ev.Count:N0} images, {sw.Elapsed.TotalSeconds:F2} s, {ev.Count / sw.Elapsed.TotalSeconds:N0} images/s)");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loss {ev.Loss:F4}  accuracy {ev.Accuracy:F4} ({ev.Correct}/{ev.Count})"));

        var pc = new Table().Border(TableBorder.Rounded).AddColumns("class", "name", "images", "accuracy");
        pc.Columns[2].RightAligned(); pc.Columns[3].RightAligned();
        for (int c = 0; c < k; c++)
        {
            int total = 0;
            for (int p = 0; p < k; p++) total += ev.Confusion[c, p];
            pc.AddRow(c.ToString(CultureInfo.InvariantCulture), Shared.Escape(names[c]), total.ToString(CultureInfo.InvariantCulture),
                double.IsNaN(perClass[c]) ? "-" : perClass[c].ToString("F4", CultureInfo.InvariantCulture));
        }
        AnsiConsole.Write(pc);

        var cm = new Table().Border(TableBorder.Simple).Title("confusion matrix (rows: true class, columns: predicted)");
        cm.AddColumn("true \\ predicted");
        for (int p = 0; p < k; p++) cm.AddColumn(new TableColumn(Shared.Escape(Abbrev(names[p]))).RightAligned());
        for (int c = 0; c < k; c++)
        {
            var row = new List<string> { Shared.Escape(names[c]) };
            for (int p = 0; p < k; p++) row.Add(c == p ? $"[green]{ev.Confusion[c, p]}[/]" : ev.Confusion[c, p] == 0 ? "[grey]0[/]" : ev.Confusion[c, p].ToString(CultureInfo.InvariantCulture));
            cm.AddRow(row.ToArray());
        }
        AnsiConsole.Write(cm);

        if (json is not null) WriteJson(json, path, ev, names, perClass);
        return ExitCodes.Ok;
    }

    private static string Abbrev(string name) => name.Length <= 8 ? name : name[..8];

    private static void WriteJson(string file, string model, Training.Evaluation ev, string[] names, double[] perClass)
    {
        using var fs = File.Create(file);
        using var w = new Utf8JsonWriter(fs, new JsonWriterOptions { Indented = true });
        w.WriteStartObject();
        w.WriteString("model", model);
        w.WriteNumber("count", ev.Count);
        w.WriteNumber("loss", ev.Loss);
        w.WriteNumber("accuracy", ev.Accuracy);
        w.WriteStartArray("classes");
        for (int c = 0; c < names.Length; c++)
        {
            w.WriteStartObject();
            w.WriteNumber("class", c);
            w.WriteString("name", names[c]);
            if (double.IsNaN(perClass[c])) w.WriteNull("accuracy"); else w.WriteNumber("accuracy", perClass[c]);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteStartArray("confusion");
        for (int c = 0; c < names.Length; c++)
        {
            w.WriteStartArray();
            for (int p = 0; p < names.Length; p++) w.WriteNumberValue(ev.Confusion[c, p]);
            w.WriteEndArray();
        }
        w.WriteEndArray();
        w.WriteEndObject();
    }
}
