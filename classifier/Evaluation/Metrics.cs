namespace FaaSMon.Classifier.Evaluation;

/// <summary>Binary detection figures at the 0.5 boundary, plus ROC-AUC over the scores.</summary>
internal sealed record Metrics(int TruePositives, int FalsePositives, int TrueNegatives, int FalseNegatives, double RocAuc)
{
    public int Count => TruePositives + FalsePositives + TrueNegatives + FalseNegatives;

    public double Accuracy => Ratio(TruePositives + TrueNegatives, Count);

    public double Precision => Ratio(TruePositives, TruePositives + FalsePositives);

    public double Recall => Ratio(TruePositives, TruePositives + FalseNegatives);

    public double F1 => Harmonic(Precision, Recall);

    /// <summary>Mean of the attack class's F1 and the benign class's F1: not flattered by the larger class.</summary>
    public double MacroF1 => (F1 + Harmonic(Ratio(TrueNegatives, TrueNegatives + FalseNegatives), Ratio(TrueNegatives, TrueNegatives + FalsePositives))) / 2;

    public double FalsePositiveRate => Ratio(FalsePositives, FalsePositives + TrueNegatives);

    public static Metrics From(IReadOnlyList<bool> isAttack, IReadOnlyList<double> scores)
    {
        int tp = 0, fp = 0, tn = 0, fn = 0;
        for (var i = 0; i < isAttack.Count; i++)
        {
            var flagged = scores[i] >= 0.5;
            if (isAttack[i])
            {
                _ = flagged ? tp++ : fn++;
            }
            else
            {
                _ = flagged ? fp++ : tn++;
            }
        }

        return new Metrics(tp, fp, tn, fn, AreaUnderRoc(isAttack, scores));
    }

    /// <summary>Mann–Whitney form of the area under the ROC curve: ties count half. NaN when one class is missing.</summary>
    public static double AreaUnderRoc(IReadOnlyList<bool> isAttack, IReadOnlyList<double> scores)
    {
        var positives = isAttack.Count(a => a);
        var negatives = isAttack.Count - positives;
        if (positives == 0 || negatives == 0)
        {
            return double.NaN;
        }

        var order = Enumerable.Range(0, scores.Count).OrderBy(i => scores[i]).ToArray();
        double rankSum = 0;
        for (var start = 0; start < order.Length;)
        {
            var end = start;
            while (end + 1 < order.Length && scores[order[end + 1]] == scores[order[start]])
            {
                end++;
            }

            var averageRank = ((start + end) / 2.0) + 1;
            for (var k = start; k <= end; k++)
            {
                if (isAttack[order[k]])
                {
                    rankSum += averageRank;
                }
            }

            start = end + 1;
        }

        return (rankSum - (positives * (positives + 1) / 2.0)) / ((double)positives * negatives);
    }

    /// <summary>ROC curve points (false-positive rate, true-positive rate), from (0,0) to (1,1).</summary>
    public static (double[] Fpr, double[] Tpr) RocCurve(IReadOnlyList<bool> isAttack, IReadOnlyList<double> scores)
    {
        var positives = Math.Max(1, isAttack.Count(a => a));
        var negatives = Math.Max(1, isAttack.Count - isAttack.Count(a => a));
        var fpr = new List<double> { 0 };
        var tpr = new List<double> { 0 };
        int tp = 0, fp = 0;
        foreach (var group in Enumerable.Range(0, scores.Count).GroupBy(i => scores[i]).OrderByDescending(g => g.Key))
        {
            foreach (var i in group)
            {
                _ = isAttack[i] ? tp++ : fp++;
            }

            fpr.Add((double)fp / negatives);
            tpr.Add((double)tp / positives);
        }

        return ([.. fpr], [.. tpr]);
    }

    private static double Ratio(int numerator, int denominator) => denominator == 0 ? 0 : (double)numerator / denominator;

    private static double Harmonic(double a, double b) => a + b == 0 ? 0 : 2 * a * b / (a + b);
}
