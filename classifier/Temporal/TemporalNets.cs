using FaaSMon.Classifier.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FaaSMon.Classifier.Temporal;

/// <summary>The network-view models: TGAT (temporal) and GCN (its static baseline, as in the TGAT paper).</summary>
internal enum TemporalArch
{
    Tgat,
    Gcn,
}

/// <summary>
/// Scalars these models use, held for the life of the process (see <see cref="Scalars"/>: temporaries race the finalizer).
/// Tensor + tensor goes through add with a temporary alpha Scalar, so these models call add with this alpha instead.
/// </summary>
internal static class TemporalScalars
{
    public static readonly Scalar One = 1.ToScalar();
    public static readonly Scalar ScaleFloor = 0.1f.ToScalar();
}

/// <summary>Mean and spread of training node and edge features, kept as buffers so they are saved with the weights.</summary>
internal abstract class TemporalNet : Module<TemporalBatch, Tensor>
{
    private readonly Tensor nodeMean;
    private readonly Tensor nodeScale;
    private readonly Tensor edgeMean;
    private readonly Tensor edgeScale;

    protected TemporalNet(string name) : base(name)
    {
        nodeMean = zeros(TemporalFeatures.NodeFeatureCount);
        nodeScale = ones(TemporalFeatures.NodeFeatureCount);
        edgeMean = zeros(TemporalFeatures.EdgeFeatureCount);
        edgeScale = ones(TemporalFeatures.EdgeFeatureCount);
    }

    public void FitStandardisation(TemporalBatch batch)
    {
        using var noGrad = no_grad();
        nodeMean.copy_(batch.NodeX.mean([0]));
        nodeScale.copy_(batch.NodeX.std([0], unbiased: false).clamp_min(TemporalScalars.ScaleFloor));
        edgeMean.copy_(batch.EdgeX.mean([0]));
        edgeScale.copy_(batch.EdgeX.std([0], unbiased: false).clamp_min(TemporalScalars.ScaleFloor));
    }

    protected Tensor Nodes(TemporalBatch batch) => (batch.NodeX - nodeMean) / nodeScale;

    protected Tensor Edges(TemporalBatch batch) => (batch.EdgeX - edgeMean) / edgeScale;

    /// <summary>Per graph: mean ‖ log(1 + sum) of non-negative rows, with log(1 + count) of nodes and edges.</summary>
    protected static Tensor Readout(Tensor rows, Tensor graphOfRow, Tensor rowsPerGraph, TemporalBatch batch)
    {
        var sum = zeros(batch.GraphCount, rows.shape[1]).index_add(0, graphOfRow, rows, TemporalScalars.One);
        return cat([sum / rowsPerGraph, sum.log1p(), batch.NodesPerGraph.log1p(), batch.EdgesPerGraph.log1p()], 1);
    }
}

/// <summary>
/// TGAT (Xu et al., ICLR 2020) for a window of flows. Functional time encoding Φ(Δt) = cos(ωΔt + φ) with learned ω, φ;
/// for both endpoints of every flow at its start time t, temporal neighbour sampling takes the node's most recent flows
/// before t, and multi-head attention runs with the query [h(node) ‖ 0 ‖ Φ(0)] over keys/values
/// [h(neighbour) ‖ edge features ‖ Φ(t − t')]; a feed-forward layer merges the result with the node's own embedding.
/// Each flow is then [h_src(t) ‖ h_dst(t) ‖ its features], and the graph is read out from its flows. One attention
/// layer (the paper stacks two): windows of hundreds of flows on a shared 2-core CPU.
/// </summary>
internal sealed class TgatNet : TemporalNet
{
    private readonly int _heads;
    private readonly int _hidden;
    private readonly Linear nodeIn;
    private readonly Linear edgeIn;
    private readonly Parameter frequency;
    private readonly Parameter phase;
    private readonly Linear query;
    private readonly Linear key;
    private readonly Linear value;
    private readonly Sequential merge;
    private readonly Sequential flow;
    private readonly Sequential head;
    private readonly Scalar _inverseRootHeadWidth;

    public TgatNet(int hidden, int heads, int timeWidth = 16) : base("TgatNet")
    {
        _heads = heads;
        _hidden = hidden;
        nodeIn = Linear(TemporalFeatures.NodeFeatureCount, hidden);
        edgeIn = Linear(TemporalFeatures.EdgeFeatureCount, hidden);
        // TGAT's initialisation: frequencies spread over decades, so both milliseconds and seconds resolve.
        frequency = Parameter(torch.tensor(Enumerable.Range(0, timeWidth).Select(i => (float)Math.Pow(10, -4.0 * i / (timeWidth - 1))).ToArray()));
        phase = Parameter(zeros(timeWidth));
        var width = hidden + hidden + timeWidth;
        query = Linear(width, hidden);
        key = Linear(width, hidden);
        value = Linear(width, hidden);
        merge = Sequential(Linear(2 * hidden, hidden), ReLU(), Linear(hidden, hidden));
        flow = Sequential(Linear((2 * hidden) + TemporalFeatures.EdgeFeatureCount, hidden), ReLU());
        head = Sequential(Linear((2 * hidden) + 2, hidden), ReLU(), Linear(hidden, 1));
        _inverseRootHeadWidth = (1.0 / Math.Sqrt(hidden / heads)).ToScalar();
        RegisterComponents();
    }

    private Tensor TimeEncoding(Tensor dt) => (dt.unsqueeze(-1) * frequency).add(phase, TemporalScalars.One).cos();

    public override Tensor forward(TemporalBatch batch)
    {
        var edges = Edges(batch);
        var h = functional.relu(nodeIn.forward(Nodes(batch)));
        var e = functional.relu(edgeIn.forward(edges));
        var queries = batch.QueryNode.shape[0];
        var slots = batch.NeighbourNode.shape[1];
        var hq = h.index_select(0, batch.QueryNode);
        var q = query.forward(cat([hq, zeros(queries, _hidden), TimeEncoding(zeros(queries))], 1));
        var neighbourH = h.index_select(0, batch.NeighbourNode.flatten()).view(queries, slots, _hidden);
        var neighbourE = e.index_select(0, batch.NeighbourEdge.flatten()).view(queries, slots, _hidden);
        var kv = cat([neighbourH, neighbourE, TimeEncoding(batch.NeighbourDt)], 2);
        var width = _hidden / _heads;
        var k = key.forward(kv).view(queries, slots, _heads, width);
        var v = value.forward(kv).view(queries, slots, _heads, width);
        var scores = ((k * q.view(queries, 1, _heads, width)).sum([3]) * _inverseRootHeadWidth).add(batch.NeighbourMaskBias.unsqueeze(-1), TemporalScalars.One);
        var attention = functional.softmax(scores, 1);
        var attended = (attention.unsqueeze(-1) * v).sum([1]).view(queries, _hidden) * batch.HasNeighbours;
        var temporal = merge.forward(cat([attended, hq], 1));
        var pairs = temporal.view(queries / 2, 2 * _hidden);
        var flows = flow.forward(cat([pairs, edges], 1));
        return head.forward(Readout(flows, batch.EdgeGraph, batch.EdgesPerGraph, batch)).squeeze(1);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _inverseRootHeadWidth.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// The static baseline: the same window as one graph with no time, each node carrying its port class, degree and
/// the mean features of its flows; GCN layers (symmetric normalisation with self loops, Kipf &amp; Welling), node readout.
/// </summary>
internal sealed class StaticGcnNet : TemporalNet
{
    private readonly Linear input;
    private readonly ModuleList<Linear> layers;
    private readonly Sequential head;

    public StaticGcnNet(int hidden, int layerCount) : base("StaticGcnNet")
    {
        input = Linear(TemporalFeatures.NodeFeatureCount + TemporalFeatures.EdgeFeatureCount, hidden);
        layers = new ModuleList<Linear>([.. Enumerable.Range(0, layerCount).Select(_ => Linear(hidden, hidden))]);
        head = Sequential(Linear((2 * hidden) + 2, hidden), ReLU(), Linear(hidden, 1));
        RegisterComponents();
    }

    public override Tensor forward(TemporalBatch batch)
    {
        var nodes = Nodes(batch);
        var edges = Edges(batch);
        var n = nodes.shape[0];
        // Each flow's features reach both its endpoints (mean over a node's flows): a GCN has node features only.
        var both = cat([edges, edges], 0);
        var degree = ones(n, 1).index_add(0, batch.UndirectedTarget, ones(batch.UndirectedTarget.shape[0], 1), TemporalScalars.One);
        var incident = zeros(n, TemporalFeatures.EdgeFeatureCount).index_add(0, batch.UndirectedTarget, both, TemporalScalars.One) / degree;
        var h = functional.relu(input.forward(cat([nodes, incident], 1)));
        var inverseRoot = degree.rsqrt();
        foreach (var layer in layers)
        {
            var messages = h.index_select(0, batch.UndirectedSource) * inverseRoot.index_select(0, batch.UndirectedSource);
            var summed = zeros_like(h).index_add(0, batch.UndirectedTarget, messages, TemporalScalars.One) * inverseRoot;
            h = functional.relu(layer.forward(summed.add(h / degree, TemporalScalars.One)));
        }

        return head.forward(Readout(h, batch.NodeGraph, batch.NodesPerGraph, batch)).squeeze(1);
    }
}
