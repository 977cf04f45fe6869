using System.Globalization;
using ScottPlot;

namespace FaaSMon.Classifier.Evaluation;

/// <summary>PNG figures of an evaluation (ScottPlot).</summary>
internal static class Plots
{
    /// <summary>The confusion matrix summed over folds, counts written in the cells.</summary>
    public static string ConfusionMatrix(string path, string model, IReadOnlyList<FoldResult> folds)
    {
        int tp = folds.Sum(f => f.Metrics.TruePositives), fp = folds.Sum(f => f.Metrics.FalsePositives);
        int tn = folds.Sum(f => f.Metrics.TrueNegatives), fn = folds.Sum(f => f.Metrics.FalseNegatives);
        // Rows top to bottom: actual benign, actual attack; columns: predicted benign, predicted attack.
        double[,] cells = { { tn, fp }, { fn, tp } };
        var plot = new Plot();
        var largest = Math.Max(1, cells.Cast<double>().Max());
        for (var row = 0; row < 2; row++)
        {
            for (var column = 0; column < 2; column++)
            {
                // Drawn as rectangles rather than a heatmap, so cells, ticks and counts line up exactly; darker = more.
                var top = 2.0 - row;
                var cell = plot.Add.Rectangle(column, column + 1, top - 1, top);
                var shade = (byte)(235 - (175 * cells[row, column] / largest));
                cell.FillColor = new Color(shade, (byte)Math.Min(255, shade + 15), 255);
                cell.LineColor = Colors.White;
                var label = plot.Add.Text(cells[row, column].ToString(CultureInfo.InvariantCulture), column + 0.5, top - 0.5);
                label.LabelFontSize = 28;
                label.LabelAlignment = Alignment.MiddleCenter;
                label.LabelFontColor = shade < 150 ? Colors.White : Colors.Black;
            }
        }

        plot.Axes.SetLimits(0, 2, 0, 2);
        plot.Axes.Bottom.SetTicks([0.5, 1.5], ["benign", "attack"]);
        plot.Axes.Left.SetTicks([1.5, 0.5], ["benign", "attack"]);
        plot.XLabel("predicted");
        plot.YLabel("actual");
        plot.Title($"{model}: confusion matrix, {folds.Count} folds");
        plot.SavePng(path, 600, 500);
        return path;
    }

    /// <summary>One ROC curve per fold and the chance diagonal.</summary>
    public static string Roc(string path, string model, IReadOnlyList<FoldResult> folds)
    {
        var plot = new Plot();
        foreach (var fold in folds)
        {
            var (fpr, tpr) = Metrics.RocCurve(fold.IsAttack, fold.Scores);
            var line = plot.Add.ScatterLine(fpr, tpr);
            line.LegendText = string.Create(CultureInfo.InvariantCulture, $"fold {fold.Fold} (AUC {fold.Metrics.RocAuc:F4})");
            line.LineWidth = 2;
        }

        var chance = plot.Add.Line(0, 0, 1, 1);
        chance.LinePattern = LinePattern.Dashed;
        chance.Color = Colors.Gray;
        plot.Axes.SetLimits(-0.01, 1.01, -0.01, 1.01);
        plot.XLabel("false-positive rate");
        plot.YLabel("true-positive rate");
        plot.Title($"{model}: ROC, {folds.Count} folds");
        plot.ShowLegend(Alignment.LowerRight);
        plot.SavePng(path, 600, 500);
        return path;
    }
}
