using FaaSMon.Classifier.Evaluation;
using FaaSMon.Classifier.Models;
using FaaSMon.Core;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Classifier.Temporal;

/// <summary>
/// Stratified k-fold of TGAT and GCN on network windows, with the invocation view's folds, metrics, CSV and plots
/// (<see cref="Evaluator"/>, <see cref="Metrics"/>, <see cref="Plots"/>): same columns, same figures.
/// </summary>
internal sealed partial class TemporalEvaluator(TemporalTrainer trainer, ILogger logger)
{
    /// <summary>Per label, over all folds: how many windows were flagged (recall for attacks, false-positive rate for benign).</summary>
    public IReadOnlyDictionary<string, (int Windows, int Flagged)> FlaggedByLabel { get; private set; } = new Dictionary<string, (int, int)>();

    public EvaluationReport Run(IReadOnlyList<TemporalGraph> dataset, TemporalOptions options, TrainingOptions training, int folds, string outDirectory)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(folds, 2);
        Directory.CreateDirectory(outDirectory);
        var graphs = dataset.Select(g => new LabeledTemporalGraph(TemporalFeatures.From(g), g.IsAttack, g.Label)).ToList();
        var smallest = graphs.GroupBy(g => g.Family).Min(g => g.Count());
        if (smallest < folds)
        {
            throw new DatasetException($"stratified {folds}-fold needs at least {folds} windows of every label; the smallest label has {smallest}");
        }

        var assignment = Evaluator.StratifiedFolds([.. graphs.Select(g => g.Family)], folds, training.Seed);
        var name = $"{options.Arch.ToString().ToLowerInvariant()}-network";
        var results = new List<FoldResult>();
        var flagged = new Dictionary<string, (int Windows, int Flagged)>(StringComparer.Ordinal);
        for (var fold = 0; fold < folds; fold++)
        {
            var train = graphs.Where((_, i) => assignment[i] != fold).ToList();
            var test = graphs.Where((_, i) => assignment[i] == fold).ToList();
            using var model = trainer.Train(options, training, train);
            var scores = model.Predict([.. test.Select(g => g.Features)]);
            var truth = test.Select(g => g.IsAttack).ToArray();
            for (var i = 0; i < test.Count; i++)
            {
                var (windows, hits) = flagged.GetValueOrDefault(test[i].Family);
                flagged[test[i].Family] = (windows + 1, hits + (scores[i] >= 0.5 ? 1 : 0));
            }

            var metrics = Metrics.From(truth, scores);
            LogFold(logger, name, fold + 1, folds, metrics.Accuracy, metrics.F1, metrics.MacroF1);
            results.Add(new FoldResult(fold + 1, metrics, truth, scores));
        }

        var files = new List<string>
        {
            Evaluator.WriteFoldCsv(Path.Combine(outDirectory, $"kfold-{name}.csv"), results),
            Plots.ConfusionMatrix(Path.Combine(outDirectory, $"confusion-{name}.png"), name, results),
            Plots.Roc(Path.Combine(outDirectory, $"roc-{name}.png"), name, results),
            WriteLabelCsv(Path.Combine(outDirectory, $"labels-{name}.csv"), flagged),
        };
        FlaggedByLabel = flagged;
        return new EvaluationReport(name, results, [], files);
    }

    private static string WriteLabelCsv(string path, Dictionary<string, (int Windows, int Flagged)> flagged)
    {
        var csv = new System.Text.StringBuilder("label,windows,flagged,share_flagged\n");
        foreach (var (label, (windows, hits)) in flagged.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            csv.AppendLine(System.Globalization.CultureInfo.InvariantCulture, $"{label},{windows},{hits},{(double)hits / windows:F4}");
        }

        File.WriteAllText(path, csv.ToString());
        return path;
    }

    /// <summary>Every sample under <paramref name="directory"/> (any depth, <c>*.json</c> except collection.json).</summary>
    public static List<TemporalGraph> LoadDataset(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new DatasetException($"no dataset directory {directory}");
        }

        var graphs = new List<TemporalGraph>();
        foreach (var file in Directory.EnumerateFiles(directory, "*.json", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            if (Path.GetFileName(file) is "collection.json" or "manifest.json")
            {
                continue;
            }

            try
            {
                graphs.Add(TemporalGraph.FromJson(File.ReadAllText(file), file));
            }
            catch (InvalidDataException e)
            {
                throw new DatasetException(e.Message);
            }
        }

        if (graphs.Count == 0)
        {
            throw new DatasetException($"no network samples (*.json temporal graphs) under {directory}");
        }

        return graphs;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Model} fold {Fold}/{Folds}: accuracy {Accuracy:F4}, F1 {F1:F4}, macro-F1 {MacroF1:F4}")]
    private static partial void LogFold(ILogger logger, string model, int fold, int folds, double accuracy, double f1, double macroF1);
}
