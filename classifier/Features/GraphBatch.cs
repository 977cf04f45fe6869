using TorchSharp;
using static TorchSharp.torch;

namespace FaaSMon.Classifier.Features;

/// <summary>
/// Many graphs as one disjoint graph: node rows stacked, edge indices shifted by each graph's node offset, and a
/// <see cref="Batch"/> vector naming each node's graph. Tensors are owned by the caller's dispose scope.
/// </summary>
internal sealed class GraphBatch
{
    private GraphBatch(Tensor x, Tensor source, Tensor target, Tensor edgeType, Tensor batch, Tensor nodesPerGraph, int graphCount, int[] nodeOffsets)
    {
        X = x;
        Source = source;
        Target = target;
        EdgeType = edgeType;
        Batch = batch;
        NodesPerGraph = nodesPerGraph;
        GraphCount = graphCount;
        NodeOffsets = nodeOffsets;
    }

    public Tensor X { get; }

    public Tensor Source { get; }

    public Tensor Target { get; }

    public Tensor EdgeType { get; }

    /// <summary>Graph index of each node (long, N).</summary>
    public Tensor Batch { get; }

    /// <summary>Node count of each graph as float (G × 1), for mean pooling.</summary>
    public Tensor NodesPerGraph { get; }

    public int GraphCount { get; }

    /// <summary>First node row of each graph.</summary>
    public int[] NodeOffsets { get; }

    public static GraphBatch Create(IReadOnlyList<GraphFeatures> graphs)
    {
        ArgumentOutOfRangeException.ThrowIfZero(graphs.Count);
        var nodes = graphs.Sum(g => g.NodeCount);
        var edges = graphs.Sum(g => g.Source.Length);
        var width = GraphFeatures.FeatureCount;
        var x = new float[nodes * width];
        var source = new long[edges];
        var target = new long[edges];
        var type = new long[edges];
        var batch = new long[nodes];
        var counts = new float[graphs.Count];
        var offsets = new int[graphs.Count];
        int nodeOffset = 0, edgeOffset = 0;
        for (var g = 0; g < graphs.Count; g++)
        {
            var graph = graphs[g];
            offsets[g] = nodeOffset;
            counts[g] = graph.NodeCount;
            Array.Copy(graph.X, 0, x, nodeOffset * width, graph.X.Length);
            Array.Fill(batch, g, nodeOffset, graph.NodeCount);
            for (var e = 0; e < graph.Source.Length; e++)
            {
                source[edgeOffset + e] = graph.Source[e] + nodeOffset;
                target[edgeOffset + e] = graph.Target[e] + nodeOffset;
                type[edgeOffset + e] = graph.EdgeType[e];
            }

            nodeOffset += graph.NodeCount;
            edgeOffset += graph.Source.Length;
        }

        return new GraphBatch(
            torch.tensor(x, [nodes, width]),
            torch.tensor(source),
            torch.tensor(target),
            torch.tensor(type),
            torch.tensor(batch),
            torch.tensor(counts, [graphs.Count, 1]),
            graphs.Count,
            offsets);
    }
}
