namespace FaaSMon.Core;

/// <summary>A rule that fired on a graph, in words a person can act on, and the nodes it fired on.</summary>
public sealed record RuleHit(string RuleId, string Explanation, IReadOnlyList<int> NodeIds);

/// <summary>A node that pushed the model's score, with its share (larger = more).</summary>
public sealed record NodeContribution(int NodeId, NodeKind Kind, string Label, double Weight);

/// <summary>An edge that pushed the model's score, with its share (larger = more).</summary>
public sealed record EdgeContribution(int Source, int Target, EdgeKind Kind, double Weight);

/// <summary>
/// The classifier's answer for one graph: the model's score, the rules that fired, and the few nodes and edges that
/// caused it — the subgraph to show a person instead of the whole graph.
/// </summary>
/// <param name="Score">Model score in [0, 1], 0.5 = decision boundary; null when no model ran (rules only).</param>
/// <param name="ModelName">The model that scored, e.g. "gin-supervised"; null when no model ran.</param>
/// <param name="IsIntrusion">The model's score is at or above 0.5, or a rule fired.</param>
public sealed record Verdict(
    string GraphId,
    string? CallId,
    string? TraceId,
    string? Function,
    double? Score,
    string? ModelName,
    bool IsIntrusion,
    IReadOnlyList<RuleHit> RuleHits,
    IReadOnlyList<NodeContribution> TopNodes,
    IReadOnlyList<EdgeContribution> TopEdges)
{
    /// <summary>Why no model ran (torch unavailable, no model file), when <see cref="Score"/> is null.</summary>
    public string? ModelUnavailable { get; init; }
}
