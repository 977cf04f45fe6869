using System.Globalization;
using System.Text;
using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Models;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Classifier.Evaluation;

/// <summary>One fold's figures.</summary>
internal sealed record FoldResult(int Fold, Metrics Metrics, bool[] IsAttack, double[] Scores)
{
    /// <summary>The test graphs' ids and labels, in the order of <see cref="Scores"/>: what a person reads to see which graphs were missed.</summary>
    public IReadOnlyList<(string GraphId, string Family)> Graphs { get; init; } = [];
}

/// <summary>Leave-one-family-out: trained without <paramref name="Family"/>, how much of it was caught, and the benign FPR.</summary>
internal sealed record FamilyResult(string Family, int Graphs, double Recall, double BenignFalsePositiveRate, int BenignGraphs);

internal sealed record EvaluationReport(string ModelName, IReadOnlyList<FoldResult> Folds, IReadOnlyList<FamilyResult> LeftOut, IReadOnlyList<string> Files);

/// <summary>
/// Stratified k-fold and leave-one-family-out evaluation of one architecture and mode, with CSV and PNG output.
/// Folds are stratified by label (benign and each attack family), so every fold sees every family.
/// </summary>
internal sealed partial class Evaluator(GnnTrainer trainer, ILogger<Evaluator> logger)
{
    public EvaluationReport Run(IReadOnlyList<DatasetGraph> dataset, GnnOptions options, TrainingOptions training, int folds, string outDirectory, bool leaveOneFamilyOut = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(folds, 2);
        Directory.CreateDirectory(outDirectory);
        var graphs = dataset.Select(d => new LabeledGraph(GraphFeatures.From(d.Graph), d.IsAttack, d.Label)).ToList();
        var smallest = graphs.GroupBy(g => g.Family).Min(g => g.Count());
        if (smallest < folds)
        {
            throw new DatasetException($"stratified {folds}-fold needs at least {folds} graphs of every label; the smallest label has {smallest}");
        }

        var assignment = StratifiedFolds(graphs, folds, training.Seed);
        var results = new List<FoldResult>();
        var name = $"{options.Arch.ToString().ToLowerInvariant()}-{options.Mode.ToString().ToLowerInvariant()}";
        for (var fold = 0; fold < folds; fold++)
        {
            var train = graphs.Where((_, i) => assignment[i] != fold).ToList();
            var test = graphs.Where((_, i) => assignment[i] == fold).ToList();
            using var model = trainer.Train(options, training, train);
            var scores = model.Predict([.. test.Select(g => g.Features)]);
            var truth = test.Select(g => g.IsAttack).ToArray();
            var metrics = Metrics.From(truth, scores);
            LogFold(logger, name, fold + 1, folds, metrics.F1, metrics.Accuracy, metrics.RocAuc);
            results.Add(new FoldResult(fold + 1, metrics, truth, scores) { Graphs = [.. test.Select(g => (g.Features.GraphId, g.Family))] });
        }

        var files = new List<string>
        {
            WriteFoldCsv(Path.Combine(outDirectory, $"kfold-{name}.csv"), results),
            WritePredictionCsv(Path.Combine(outDirectory, $"predictions-{name}.csv"), results),
            Plots.ConfusionMatrix(Path.Combine(outDirectory, $"confusion-{name}.png"), name, results),
            Plots.Roc(Path.Combine(outDirectory, $"roc-{name}.png"), name, results),
        };

        var leftOut = leaveOneFamilyOut ? LeaveOneFamilyOut(graphs, options, training, assignment, name) : [];
        if (leftOut.Count > 0)
        {
            files.Add(WriteFamilyCsv(Path.Combine(outDirectory, $"lofo-{name}.csv"), leftOut));
        }

        return new EvaluationReport(name, results, leftOut, files);
    }

    /// <summary>
    /// For each attack family F: train on benign graphs outside fold 0 and every other family (anomaly mode: benign only),
    /// then score all of F and the benign graphs of fold 0, which the model did not see.
    /// </summary>
    private List<FamilyResult> LeaveOneFamilyOut(List<LabeledGraph> graphs, GnnOptions options, TrainingOptions training, int[] assignment, string name)
    {
        var results = new List<FamilyResult>();
        var families = graphs.Where(g => g.IsAttack).Select(g => g.Family).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
        if (options.Mode == TrainingMode.Supervised && families.Count < 2)
        {
            return results;
        }

        foreach (var family in families)
        {
            var heldOutBenign = graphs.Where((g, i) => !g.IsAttack && assignment[i] == 0).ToList();
            var train = graphs.Where((g, i) => g.Family != family && !(!g.IsAttack && assignment[i] == 0)).ToList();
            var attacks = graphs.Where(g => g.Family == family).ToList();
            using var model = trainer.Train(options, training, train);
            var attackScores = model.Predict([.. attacks.Select(g => g.Features)]);
            var benignScores = model.Predict([.. heldOutBenign.Select(g => g.Features)]);
            var result = new FamilyResult(family, attacks.Count, attackScores.Count(s => s >= 0.5) / (double)attacks.Count,
                benignScores.Length == 0 ? 0 : benignScores.Count(s => s >= 0.5) / (double)benignScores.Length, heldOutBenign.Count);
            LogFamily(logger, name, family, result.Recall, result.BenignFalsePositiveRate);
            results.Add(result);
        }

        return results;
    }

    internal static int[] StratifiedFolds(IReadOnlyList<LabeledGraph> graphs, int folds, int seed) =>
        StratifiedFolds([.. graphs.Select(g => g.Family)], folds, seed);

    /// <summary>A fold per sample, stratified by label (shared with the network view's temporal evaluation).</summary>
    internal static int[] StratifiedFolds(IReadOnlyList<string> labels, int folds, int seed)
    {
        var random = new Random(seed);
        var assignment = new int[labels.Count];
        // The rotation carries on from one label to the next, so folds also come out equal in size.
        var next = 0;
        foreach (var label in labels.Select((family, i) => (Family: family, i)).GroupBy(p => p.Family, StringComparer.Ordinal))
        {
            foreach (var (_, i) in label.OrderBy(_ => random.Next()))
            {
                assignment[i] = next;
                next = (next + 1) % folds;
            }
        }

        return assignment;
    }

    internal static string WriteFoldCsv(string path, List<FoldResult> results)
    {
        static string F(double v) => double.IsNaN(v) ? "" : v.ToString("F4", CultureInfo.InvariantCulture);
        Func<Metrics, double>[] columns = [m => m.Accuracy, m => m.Precision, m => m.Recall, m => m.F1, m => m.MacroF1, m => m.RocAuc];
        var csv = new StringBuilder("fold,graphs,tp,fp,tn,fn,accuracy,precision,recall,f1,macro_f1,roc_auc\n");
        foreach (var r in results)
        {
            var m = r.Metrics;
            csv.Append(CultureInfo.InvariantCulture, $"{r.Fold},{m.Count},{m.TruePositives},{m.FalsePositives},{m.TrueNegatives},{m.FalseNegatives},")
                .AppendLine(string.Join(',', columns.Select(c => F(c(m)))));
        }

        var means = columns.Select(c => results.Select(r => c(r.Metrics)).Where(v => !double.IsNaN(v)).DefaultIfEmpty(double.NaN).Average()).ToArray();
        var deviations = columns.Select((c, k) =>
        {
            var values = results.Select(r => c(r.Metrics)).Where(v => !double.IsNaN(v)).ToList();
            return values.Count < 2 ? 0 : Math.Sqrt(values.Sum(v => Math.Pow(v - means[k], 2)) / (values.Count - 1));
        });
        csv.AppendLine("mean,,,,,," + string.Join(',', means.Select(F)));
        csv.AppendLine("sd,,,,,," + string.Join(',', deviations.Select(F)));
        File.WriteAllText(path, csv.ToString());
        return path;
    }

    /// <summary>One row per test graph: which fold scored it, its label and its score, to list the misses per family.</summary>
    internal static string WritePredictionCsv(string path, List<FoldResult> results)
    {
        var csv = new StringBuilder("fold,graph_id,label,score,predicted_attack\n");
        foreach (var r in results)
        {
            for (var i = 0; i < r.Graphs.Count; i++)
            {
                csv.AppendLine(CultureInfo.InvariantCulture, $"{r.Fold},{r.Graphs[i].GraphId},{r.Graphs[i].Family},{r.Scores[i]:F4},{(r.Scores[i] >= 0.5 ? 1 : 0)}");
            }
        }

        File.WriteAllText(path, csv.ToString());
        return path;
    }

    private static string WriteFamilyCsv(string path, List<FamilyResult> results)
    {
        var csv = new StringBuilder("left_out_family,attack_graphs,recall,benign_graphs,benign_fpr\n");
        foreach (var r in results)
        {
            csv.AppendLine(CultureInfo.InvariantCulture, $"{r.Family},{r.Graphs},{r.Recall:F4},{r.BenignGraphs},{r.BenignFalsePositiveRate:F4}");
        }

        File.WriteAllText(path, csv.ToString());
        return path;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Model} fold {Fold}/{Folds}: F1 {F1:F4}, accuracy {Accuracy:F4}, ROC-AUC {Auc:F4}")]
    private static partial void LogFold(ILogger logger, string model, int fold, int folds, double f1, double accuracy, double auc);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Model} without {Family}: recall on it {Recall:F4}, benign FPR {Fpr:F4}")]
    private static partial void LogFamily(ILogger logger, string model, string family, double recall, double fpr);
}
