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
        _nodes.Add(new NodeData(kind, key, label));
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

    /// <summary>How many edges touch the node (kind, key): 0 when this graph has no such node.</summary>
    public int EdgesOf(NodeKind kind, string key) =>
        _byKey.TryGetValue((kind, key), out var id) ? _graph.InDegree(id) + _graph.OutDegree(id) : 0;

    /// <summary>Edges into <paramref name="node"/> of one kind (e.g. who wrote a file).</summary>
    public bool HasInEdge(int node, EdgeKind kind) =>
        node >= 0 && _graph.TryGetInEdges(node, out var edges) && edges.Any(e => e.Tag.Kind == kind);

    /// <summary>
    /// Moves the node (kind, key) and every edge that touches it into <paramref name="to"/>, and takes them out of this
    /// graph: for activity that turns out afterwards to be another invocation's. The nodes at the edges' other ends are
    /// found in <paramref name="to"/> by their kind and key (a process by its pid), made there when missing; attributes
    /// <paramref name="to"/> already has are kept. False when this graph has no such node.
    /// </summary>
    public bool MoveNode(NodeKind kind, string key, GraphAccumulator to)
    {
        ArgumentNullException.ThrowIfNull(to);
        if (to == this || !_byKey.Remove((kind, key), out var id))
        {
            return false;
        }

        var moved = to.CopyNode(_nodes[id]);
        var touching = _graph.InEdges(id).Concat(_graph.OutEdges(id)).Distinct().ToList();
        foreach (var edge in touching)
        {
            var source = edge.Source == id ? moved : to.CopyNode(_nodes[edge.Source]);
            var target = edge.Target == id ? moved : to.CopyNode(_nodes[edge.Target]);
            to.Merge(source, target, edge.Tag);
            _graph.RemoveEdge(edge);
            _edges.Remove((edge.Source, edge.Target, edge.Tag.Kind, edge.Tag.Syscall));
        }

        _graph.RemoveVertex(id);
        _nodes[id].Removed = true;
        return true;
    }

    /// <summary>
    /// The graph as built so far. Node ids are the order of creation, less the nodes moved out: a node made before any
    /// move (the invocation node, always the first) keeps its id.
    /// </summary>
    public ProvenanceGraph Build(string graphId, GraphScope scope, string? callId, string? traceId, string? function, string? instance)
    {
        var ids = new int[_nodes.Count];
        var nodes = new List<GraphNode>(_nodes.Count);
        for (var i = 0; i < _nodes.Count; i++)
        {
            var n = _nodes[i];
            ids[i] = nodes.Count;
            if (!n.Removed)
            {
                nodes.Add(new GraphNode(nodes.Count, n.Kind, n.Label, n.Attributes.Count == 0 ? null : new Dictionary<string, string>(n.Attributes, StringComparer.Ordinal)));
            }
        }

        return new(
            graphId,
            scope,
            callId,
            traceId,
            function,
            instance,
            nodes,
            [.. _graph.Edges.Select(e => new GraphEdge(ids[e.Source], ids[e.Target], e.Tag.Kind, e.Tag.Syscall, e.Tag.First, e.Tag.Last, e.Tag.Count))])
        {
            Truncated = Truncated,
        };
    }

    /// <summary>This graph's node for another graph's node (same kind and key), made with its label and attributes when new.</summary>
    private int CopyNode(NodeData from)
    {
        var node = Node(from.Kind, from.Key, from.Label);
        if (node >= 0)
        {
            foreach (var (name, value) in from.Attributes)
            {
                _nodes[node].Attributes.TryAdd(name, value);
            }
        }

        return node;
    }

    /// <summary>Adds another graph's edge, its count and times, to the edge with the same ends, kind and system call.</summary>
    private void Merge(int source, int target, EdgeTag tag)
    {
        if (source < 0 || target < 0)
        {
            return;
        }

        if (_edges.TryGetValue((source, target, tag.Kind, tag.Syscall), out var existing))
        {
            existing.Tag.Add(tag);
            return;
        }

        if (_edges.Count >= maxEdges)
        {
            LeftOut++;
            return;
        }

        var edge = new TaggedEdge<int, EdgeTag>(source, target, tag.Copy());
        _graph.AddEdge(edge);
        _edges[(source, target, tag.Kind, tag.Syscall)] = edge;
    }

    private sealed class NodeData(NodeKind kind, string key, string label)
    {
        public NodeKind Kind { get; } = kind;

        public string Key { get; } = key;

        /// <summary>Moved into another graph (<see cref="MoveNode"/>): left out of this one's build.</summary>
        public bool Removed { get; set; }

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

        public void Add(EdgeTag other)
        {
            Count = (int)Math.Min(int.MaxValue, (long)Count + other.Count);
            First = Math.Min(First, other.First);
            Last = Math.Max(Last, other.Last);
        }

        public EdgeTag Copy() => new(Kind, Syscall, First) { Last = Last, Count = Count };
    }
}
