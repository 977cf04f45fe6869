using System.CommandLine;
using FaaSMon.Classifier.Evaluation;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Rules;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon eval</c>: stratified k-fold and leave-one-family-out, per architecture, to CSV and PNG.</summary>
internal static class EvalCommand
{
    private static readonly Option<int> Folds = new("--folds") { Description = "Stratified folds.", DefaultValueFactory = _ => 5 };

    private static readonly Option<DirectoryInfo> Out = new("--out")
    {
        Description = "Directory for kfold-*.csv, lofo-*.csv, confusion-*.png and roc-*.png.",
        Required = true,
    };

    private static readonly Option<string[]> Archs = new("--arch")
    {
        Description = "Architectures to evaluate, side by side (default: gin sage gcn; gcn is the FaaSMon paper's baseline).",
        AllowMultipleArgumentsPerToken = true,
        DefaultValueFactory = _ => ["gin", "sage", "gcn"],
    };

    private static readonly Option<FileInfo?> ExportNpz = new("--export-npz")
    {
        Description = "Also write the dataset as a NumPy .npz that PyTorch Geometric loads (x, edge_index, edge_type, y; see classifier/README.md).",
    };

    private static readonly Option<bool> NoLeaveOneFamilyOut = new("--no-lofo") { Description = "Skip leave-one-family-out." };

    public static Command Create()
    {
        var command = new Command("eval",
            "Evaluate on a dataset: stratified k-fold (accuracy, precision, recall, F1, macro-F1, ROC-AUC per fold, mean ± sd) and " +
            "leave-one-family-out (recall on the family left out, benign FPR); CSV, confusion matrix and ROC PNGs.")
        {
            TrainCommand.Data, Folds, Out, Archs, TrainCommand.Mode, TrainCommand.Epochs, TrainCommand.Hidden, TrainCommand.Layers,
            TrainCommand.Seed, NoLeaveOneFamilyOut, ExportNpz, LocalFaasCommand.Verbose, NetworkEvalTask.Task,
        };
        Folds.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 2)
            {
                r.AddError("--folds must be 2 or more");
            }
        });
        Archs.Validators.Add(r =>
        {
            var unknown = (r.GetValueOrDefault<string[]>() ?? []).Where(a => !Enum.TryParse<GnnArch>(a, ignoreCase: true, out _)).ToList();
            if (unknown.Count > 0)
            {
                r.AddError($"unknown --arch {string.Join(", ", unknown)} (valid: gin, sage, gcn)");
            }
        });
        command.SetAction(parse =>
        {
            using var logging = CliLogging.Create(parse.GetValue(LocalFaasCommand.Verbose));
            if (NetworkEvalTask.Selected(parse))
            {
                return NetworkEvalTask.Run(parse, Folds, Out, logging);
            }

            return TrainCommand.Run(() =>
            {
                var dataset = GraphDataset.Load(parse.GetValue(TrainCommand.Data)!.FullName);
                if (parse.GetValue(ExportNpz) is { } npz)
                {
                    PygExport.Write(npz.FullName, dataset);
                    Console.WriteLine($"PyG arrays written to {npz.FullName}");
                }

                var ruleCounts = RuleReport.Count(dataset, RuleSet.LoadDefault());
                var rulesCsv = RuleReport.WriteCsv(Path.Combine(parse.GetValue(Out)!.FullName, "rules.csv"), ruleCounts);
                Console.WriteLine("rule hits per label (graphs with a hit / graphs):");
                foreach (var rule in ruleCounts.GroupBy(r => r.RuleId, StringComparer.Ordinal))
                {
                    Console.WriteLine($"  {rule.Key,-28} {string.Join("  ", rule.Select(r => $"{r.Label} {r.Hits}/{r.Graphs}"))}");
                }

                var evaluator = new Evaluator(new GnnTrainer(logging.CreateLogger<GnnTrainer>()), logging.CreateLogger<Evaluator>());
                var folds = parse.GetValue(Folds);
                Console.WriteLine($"{dataset.Count} graphs: {string.Join(", ", dataset.GroupBy(d => d.Label).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Count()} {g.Key}"))}");
                Console.WriteLine($"{"model",-20} {"accuracy",16} {"precision",16} {"recall",16} {"F1",16} {"macro-F1",16} {"ROC-AUC",16}");
                var reports = new List<EvaluationReport>();
                foreach (var arch in parse.GetValue(Archs)!)
                {
                    var report = evaluator.Run(dataset, TrainCommand.GnnOptions(parse, arch), TrainCommand.Training(parse), folds,
                        parse.GetValue(Out)!.FullName, !parse.GetValue(NoLeaveOneFamilyOut));
                    reports.Add(report);
                    string Cell(Func<Metrics, double> metric)
                    {
                        var values = report.Folds.Select(f => metric(f.Metrics)).Where(v => !double.IsNaN(v)).ToList();
                        var mean = values.DefaultIfEmpty(double.NaN).Average();
                        var sd = values.Count < 2 ? 0 : Math.Sqrt(values.Sum(v => (v - mean) * (v - mean)) / (values.Count - 1));
                        return $"{mean:F4} ± {sd:F4}";
                    }

                    Console.WriteLine($"{report.ModelName,-20} {Cell(m => m.Accuracy),16} {Cell(m => m.Precision),16} {Cell(m => m.Recall),16} {Cell(m => m.F1),16} {Cell(m => m.MacroF1),16} {Cell(m => m.RocAuc),16}");
                }

                foreach (var report in reports.Where(r => r.LeftOut.Count > 0))
                {
                    Console.WriteLine($"{report.ModelName} leave-one-family-out:");
                    foreach (var family in report.LeftOut)
                    {
                        Console.WriteLine($"  without {family.Family,-24} recall on it {family.Recall:F4} ({family.Graphs} graphs), benign FPR {family.BenignFalsePositiveRate:F4} ({family.BenignGraphs} graphs)");
                    }
                }

                Console.WriteLine($"Written: {Path.GetFileName(rulesCsv)} {string.Join(" ", reports.SelectMany(r => r.Files).Select(Path.GetFileName))} in {parse.GetValue(Out)!.FullName}");
            });
        });
        return command;
    }
}
