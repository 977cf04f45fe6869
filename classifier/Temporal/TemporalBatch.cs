using TorchSharp;
using static TorchSharp.torch;

namespace FaaSMon.Classifier.Temporal;

/// <summary>
/// Many temporal graphs as one disjoint graph, tensors owned by the caller's dispose scope. Queries are (node, time)
/// pairs: both endpoints of every edge at the edge's start. Each query has <see cref="TemporalFeatures.Neighbours"/>
/// slots holding its node's most recent earlier edges (neighbour node, edge, Δt), unused slots masked.
/// </summary>
internal sealed class TemporalBatch
{
    public required Tensor NodeX { get; init; }

    public required Tensor EdgeX { get; init; }

    /// <summary>Edges in the static (GCN) view, both directions: source, target (long, 2E).</summary>
    public required Tensor UndirectedSource { get; init; }

    public required Tensor UndirectedTarget { get; init; }

    /// <summary>Graph of each node (long, N) and of each edge (long, E).</summary>
    public required Tensor NodeGraph { get; init; }

    public required Tensor EdgeGraph { get; init; }

    /// <summary>Node of each query (long, Q = 2E): query 2k is edge k's source, 2k+1 its target.</summary>
    public required Tensor QueryNode { get; init; }

    public required Tensor NeighbourNode { get; init; }

    public required Tensor NeighbourEdge { get; init; }

    /// <summary>Δt in ms (Q × K).</summary>
    public required Tensor NeighbourDt { get; init; }

    /// <summary>0 for a used slot, a large negative number for an unused one (added to attention scores).</summary>
    public required Tensor NeighbourMaskBias { get; init; }

    /// <summary>1 where a query has at least one neighbour (Q × 1).</summary>
    public required Tensor HasNeighbours { get; init; }

    /// <summary>Per graph (G × 1): node count, edge count (at least 1, for means).</summary>
    public required Tensor NodesPerGraph { get; init; }

    public required Tensor EdgesPerGraph { get; init; }

    public required int GraphCount { get; init; }

    public static TemporalBatch Create(IReadOnlyList<TemporalFeatures> graphs)
    {
        ArgumentOutOfRangeException.ThrowIfZero(graphs.Count);
        var k = TemporalFeatures.Neighbours;
        int nodes = graphs.Sum(g => g.NodeCount), edges = graphs.Sum(g => g.EdgeCount);
        var nodeX = new float[nodes * TemporalFeatures.NodeFeatureCount];
        var edgeX = new float[edges * TemporalFeatures.EdgeFeatureCount];
        var uSource = new long[2 * edges];
        var uTarget = new long[2 * edges];
        var nodeGraph = new long[nodes];
        var edgeGraph = new long[edges];
        var queryNode = new long[2 * edges];
        var nNode = new long[2 * edges * k];
        var nEdge = new long[2 * edges * k];
        var nDt = new float[2 * edges * k];
        var nBias = new float[2 * edges * k];
        var has = new float[2 * edges];
        var nodeCounts = new float[graphs.Count];
        var edgeCounts = new float[graphs.Count];
        int nodeOffset = 0, edgeOffset = 0;
        Array.Fill(nBias, -1e9f);
        for (var g = 0; g < graphs.Count; g++)
        {
            var graph = graphs[g];
            Array.Copy(graph.NodeX, 0, nodeX, nodeOffset * TemporalFeatures.NodeFeatureCount, graph.NodeX.Length);
            Array.Copy(graph.EdgeX, 0, edgeX, edgeOffset * TemporalFeatures.EdgeFeatureCount, graph.EdgeX.Length);
            Array.Fill(nodeGraph, g, nodeOffset, graph.NodeCount);
            Array.Fill(edgeGraph, g, edgeOffset, graph.EdgeCount);
            nodeCounts[g] = Math.Max(1, graph.NodeCount);
            edgeCounts[g] = Math.Max(1, graph.EdgeCount);
            // Each node's earlier edges as (edge, other endpoint), appended in time order: the last K are the most recent.
            var history = new List<(int Edge, long Other)>?[graph.NodeCount];
            for (var e = 0; e < graph.EdgeCount; e++)
            {
                var global = edgeOffset + e;
                long s = graph.Source[e], t = graph.Target[e];
                uSource[2 * global] = s + nodeOffset;
                uTarget[2 * global] = t + nodeOffset;
                uSource[(2 * global) + 1] = t + nodeOffset;
                uTarget[(2 * global) + 1] = s + nodeOffset;
                for (var side = 0; side < 2; side++)
                {
                    var node = side == 0 ? s : t;
                    var q = (2 * global) + side;
                    queryNode[q] = node + nodeOffset;
                    var list = history[node];
                    if (list is null)
                    {
                        continue;
                    }

                    var slot = 0;
                    for (var h = list.Count - 1; h >= 0 && slot < k; h--)
                    {
                        var (earlier, other) = list[h];
                        if (graph.TimeMs[earlier] >= graph.TimeMs[e])
                        {
                            continue; // strictly before t
                        }

                        var at = (q * k) + slot;
                        nNode[at] = other + nodeOffset;
                        nEdge[at] = earlier + edgeOffset;
                        nDt[at] = graph.TimeMs[e] - graph.TimeMs[earlier];
                        nBias[at] = 0;
                        slot++;
                    }

                    has[q] = slot > 0 ? 1 : 0;
                }

                (history[s] ??= []).Add((e, t));
                (history[t] ??= []).Add((e, s));
            }

            nodeOffset += graph.NodeCount;
            edgeOffset += graph.EdgeCount;
        }

        return new TemporalBatch
        {
            NodeX = torch.tensor(nodeX, [nodes, TemporalFeatures.NodeFeatureCount]),
            EdgeX = torch.tensor(edgeX, [edges, TemporalFeatures.EdgeFeatureCount]),
            UndirectedSource = torch.tensor(uSource),
            UndirectedTarget = torch.tensor(uTarget),
            NodeGraph = torch.tensor(nodeGraph),
            EdgeGraph = torch.tensor(edgeGraph),
            QueryNode = torch.tensor(queryNode),
            NeighbourNode = torch.tensor(nNode, [2 * edges, k]),
            NeighbourEdge = torch.tensor(nEdge, [2 * edges, k]),
            NeighbourDt = torch.tensor(nDt, [2 * edges, k]),
            NeighbourMaskBias = torch.tensor(nBias, [2 * edges, k]),
            HasNeighbours = torch.tensor(has, [2 * edges, 1]),
            NodesPerGraph = torch.tensor(nodeCounts, [graphs.Count, 1]),
            EdgesPerGraph = torch.tensor(edgeCounts, [graphs.Count, 1]),
            GraphCount = graphs.Count,
        };
    }
}
