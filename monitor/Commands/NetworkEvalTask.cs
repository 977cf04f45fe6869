using System.CommandLine;
using FaaSMon.Classifier.Evaluation;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Temporal;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon eval --task network</c>: TGAT and its static GCN baseline, k-fold on netcollect's windows.</summary>
internal static class NetworkEvalTask
{
    /// <summary>Network windows need fewer passes than provenance graphs: they are many and small.</summary>
    private const int DefaultEpochs = 12;

    public static readonly Option<string> Task = new("--task")
    {
        Description = "invocation (provenance graphs, the default) or network (netcollect's temporal graphs: TGAT and GCN).",
        DefaultValueFactory = _ => "invocation",
    };

    static NetworkEvalTask()
    {
        Task.AcceptOnlyFromAmong("invocation", "network");
    }

    public static bool Selected(ParseResult parse) => parse.GetValue(Task) == "network";

    /// <summary>Windows per label, e.g. "204 arp-spoof, 995 benign".</summary>
    private static string Labels(IEnumerable<Core.TemporalGraph> dataset) =>
        string.Join(", ", dataset.GroupBy(d => d.Label).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Count()} {g.Key}"));

    /// <summary><c>faasmon train --task network</c>: one model on every window, for <c>serve --network-model</c>.</summary>
    public static int Train(ParseResult parse, string modelPath, ILoggerFactory logging) => TrainCommand.Run(() =>
    {
        var dataset = TemporalEvaluator.LoadDataset(parse.GetValue(TrainCommand.Data)!.FullName);
        var windows = dataset.Select(g => g.WindowSeconds).Distinct().ToList();
        if (windows.Count != 1)
        {
            throw new DatasetException($"the samples have {windows.Count} window lengths ({string.Join(", ", windows)} s): a network model is for one");
        }

        var arch = parse.GetResult(TrainCommand.Arch) is { Implicit: false } ? parse.GetValue(TrainCommand.Arch)! : "tgat";
        if (arch is not ("tgat" or "gcn"))
        {
            throw new ArgumentException($"--arch {arch}: a network model is tgat or gcn");
        }

        var epochs = parse.GetResult(TrainCommand.Epochs) is { Implicit: false } ? parse.GetValue(TrainCommand.Epochs) : DefaultEpochs;
        var training = new TrainingOptions(Epochs: epochs, BatchSize: 32, LearningRate: 0.003, Seed: parse.GetValue(TrainCommand.Seed));
        Console.WriteLine($"{dataset.Count} windows of {windows[0]} s: {Labels(dataset)}");
        var graphs = dataset.Select(g => new LabeledTemporalGraph(TemporalFeatures.From(g), g.IsAttack, g.Label)).ToList();
        using var model = new TemporalTrainer(logging.CreateLogger<TemporalTrainer>()).Train(
            new TemporalOptions(Enum.Parse<TemporalArch>(arch, ignoreCase: true), Hidden: parse.GetValue(TrainCommand.Hidden)), training, graphs,
            r => Console.WriteLine($"epoch {r.Epoch,3}: loss {r.Loss:F4} ({r.Elapsed.TotalMilliseconds:F0} ms)"));
        model.Save(modelPath, windows[0]);
        Console.WriteLine($"{model.Name} written to {modelPath}");
    });

    public static int Run(ParseResult parse, Option<int> folds, Option<DirectoryInfo> outDirectory, ILoggerFactory logging) => TrainCommand.Run(() =>
    {
        var dataset = TemporalEvaluator.LoadDataset(parse.GetValue(TrainCommand.Data)!.FullName);
        var epochs = parse.GetResult(TrainCommand.Epochs) is { Implicit: false } ? parse.GetValue(TrainCommand.Epochs) : DefaultEpochs;
        var training = new TrainingOptions(Epochs: epochs, BatchSize: 32, LearningRate: 0.003, Seed: parse.GetValue(TrainCommand.Seed));
        var evaluator = new TemporalEvaluator(new TemporalTrainer(logging.CreateLogger<TemporalTrainer>()), logging.CreateLogger<TemporalEvaluator>());
        var output = parse.GetValue(outDirectory)!.FullName;
        Console.WriteLine($"{dataset.Count} windows: {Labels(dataset)}");
        var reports = new List<EvaluationReport>();
        var flagged = new List<string>();
        foreach (var arch in new[] { TemporalArch.Tgat, TemporalArch.Gcn })
        {
            var report = evaluator.Run(dataset, new TemporalOptions(arch, Hidden: parse.GetValue(TrainCommand.Hidden)), training, parse.GetValue(folds), output);
            reports.Add(report);
            flagged.Add($"{report.ModelName} flagged, per label: " + string.Join(", ", evaluator.FlaggedByLabel.OrderBy(p => p.Key, StringComparer.Ordinal)
                .Select(p => $"{p.Key} {p.Value.Flagged}/{p.Value.Windows}")));
        }

        Console.WriteLine($"{"model",-14} {"accuracy",16} {"precision",16} {"recall",16} {"F1",16} {"macro-F1",16}");
        foreach (var report in reports)
        {
            string Cell(Func<Metrics, double> metric)
            {
                var values = report.Folds.Select(f => metric(f.Metrics)).ToList();
                var mean = values.Average();
                var sd = values.Count < 2 ? 0 : Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
                return $"{mean:F4} ± {sd:F4}";
            }

            Console.WriteLine($"{report.ModelName,-14} {Cell(m => m.Accuracy),16} {Cell(m => m.Precision),16} {Cell(m => m.Recall),16} {Cell(m => m.F1),16} {Cell(m => m.MacroF1),16}");
        }

        flagged.ForEach(Console.WriteLine);
        Console.WriteLine($"Written: {string.Join(" ", reports.SelectMany(r => r.Files).Select(Path.GetFileName))} in {output}");
    });
}
