using System.Globalization;
using System.Text;
using FaaSMon.Classifier.Rules;

namespace FaaSMon.Classifier.Evaluation;

/// <summary>How often one rule fired on the graphs of one label.</summary>
internal sealed record RuleLabelCount(string RuleId, string Label, int Graphs, int Hits);

/// <summary>
/// Rule hits per label over a dataset. A rule that fires on a benign graph is a false positive of the verdict (model
/// score ≥ 0.5 or any rule hit), so this is what keeps the shipped rules honest; "(any)" counts graphs with at least one hit.
/// </summary>
internal static class RuleReport
{
    public const string AnyRule = "(any)";

    public static IReadOnlyList<RuleLabelCount> Count(IReadOnlyList<DatasetGraph> dataset, RuleSet rules)
    {
        var hits = dataset.Select(d => (d.Label, Rules: rules.Evaluate(d.Graph).Select(h => h.RuleId).ToHashSet(StringComparer.Ordinal))).ToList();
        var rows = new List<RuleLabelCount>();
        foreach (var label in hits.GroupBy(h => h.Label, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var graphs = label.Count();
            rows.AddRange(rules.RuleIds.Select(id => new RuleLabelCount(id, label.Key, graphs, label.Count(h => h.Rules.Contains(id)))));
            rows.Add(new RuleLabelCount(AnyRule, label.Key, graphs, label.Count(h => h.Rules.Count > 0)));
        }

        return rows;
    }

    public static string WriteCsv(string path, IReadOnlyList<RuleLabelCount> rows)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var csv = new StringBuilder("rule,label,graphs,hits,share\n");
        foreach (var r in rows)
        {
            csv.AppendLine(CultureInfo.InvariantCulture, $"{r.RuleId},{r.Label},{r.Graphs},{r.Hits},{(double)r.Hits / r.Graphs:F4}");
        }

        File.WriteAllText(path, csv.ToString());
        return path;
    }
}
