using FaaSMon.Core;
using QuikGraph;

namespace FaaSMon.Grapher;

/// <summary>
/// One graph being built while its events stream in: nodes are found by kind and key (a pid, a path, an endpoint),
/// identical edges (same ends, kind and system call) are collapsed into one with a count, and the graph stops growing at
/// its caps (what is left out is counted and the graph is flagged), so memory is bounded by distinct structure, not by
/// the number of events.
/// </summary>
internal sealed class GraphAccumulator(int maxNodes, int maxEdges)
{
    private readonly BidirectionalGraph<int, TaggedEdge<int, EdgeTag>> _graph = new(allowParallelEdges: true);
    private readonly List<NodeData> _nodes = [];
    private readonly Dictionary<(NodeKind, string), int> _byKey = [];
    private readonly Dictionary<(int, int, EdgeKind, string), TaggedEdge<int, EdgeTag>> _edges = [];

    public int NodeCount => _nodes.Count;

    public int EdgeCount => _edges.Count;

    /// <summary>Nodes and edges left out at the caps.</summary>
    public long LeftOut { get; private set; }

    public bool Truncated => LeftOut > 0;

    /// <summary>The node for (kind, key), created with <paramref name="label"/> when new; -1 when the node cap is reached.</summary>
    public int Node(NodeKind kind, string key, string label)
    {
        if (_byKey.TryGetValue((kind, key), out var id))
        {
            return id;
        }

        if (_nodes.Count >= maxNodes)
        {
            LeftOut++;
            return -1;
        }

        id = _nodes.Count;
        _nodes.Add(new NodeData(kind, label));
        _byKey[(kind, key)] = id;
        _graph.AddVertex(id);
        return id;
    }

    public int? Find(NodeKind kind, string key) => _byKey.TryGetValue((kind, key), out var id) ? id : null;

    public void SetAttribute(int node, string name, string? value)
    {
        if (node >= 0 && value is not null)
        {
            _nodes[node].Attributes[name] = value;
        }
    }

    public void SetLabel(int node, string label)
    {
        if (node >= 0)
        {
            _nodes[node].Label = label;
        }
    }

    public string? Attribute(int node, string name) => node >= 0 ? _nodes[node].Attributes.GetValueOrDefault(name) : null;

    public void Edge(int source, int target, EdgeKind kind, string syscall, long timeNs)
    {
        if (source < 0 || target < 0)
        {
            return;
        }

        if (_edges.TryGetValue((source, target, kind, syscall), out var existing))
        {
            existing.Tag.Add(timeNs);
            return;
        }

        if (_edges.Count >= maxEdges)
        {
            LeftOut++;
            return;
        }

        var edge = new TaggedEdge<int, EdgeTag>(source, target, new EdgeTag(kind, syscall, timeNs));
        _graph.AddEdge(edge);
        _edges[(source, target, kind, syscall)] = edge;
    }

    /// <summary>Edges into <paramref name="node"/> of one kind (e.g. who wrote a file).</summary>
    public bool HasInEdge(int node, EdgeKind kind) =>
        node >= 0 && _graph.TryGetInEdges(node, out var edges) && edges.Any(e => e.Tag.Kind == kind);

    public ProvenanceGraph Build(string graphId, GraphScope scope, string? callId, string? traceId, string? function, string? instance) =>
        new(
            graphId,
            scope,
            callId,
            traceId,
            function,
            instance,
            [.. _nodes.Select((n, i) => new GraphNode(i, n.Kind, n.Label, n.Attributes.Count == 0 ? null : new Dictionary<string, string>(n.Attributes, StringComparer.Ordinal)))],
            [.. _graph.Edges.Select(e => new GraphEdge(e.Source, e.Target, e.Tag.Kind, e.Tag.Syscall, e.Tag.First, e.Tag.Last, e.Tag.Count))])
        {
            Truncated = Truncated,
        };

    private sealed class NodeData(NodeKind kind, string label)
    {
        public NodeKind Kind { get; } = kind;

        public string Label { get; set; } = label;

        public Dictionary<string, string> Attributes { get; } = new(StringComparer.Ordinal);
    }

    /// <summary>An edge's payload; mutable so a repeat only bumps its count and time.</summary>
    internal sealed class EdgeTag(EdgeKind kind, string syscall, long timeNs)
    {
        public EdgeKind Kind { get; } = kind;

        public string Syscall { get; } = syscall;

        public long First { get; private set; } = timeNs;

        public long Last { get; private set; } = timeNs;

        public int Count { get; private set; } = 1;

        public void Add(long timeNs)
        {
            Count = Count == int.MaxValue ? Count : Count + 1;
            First = Math.Min(First, timeNs);
            Last = Math.Max(Last, timeNs);
        }
    }
}
