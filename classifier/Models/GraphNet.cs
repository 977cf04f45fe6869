using FaaSMon.Classifier.Features;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace FaaSMon.Classifier.Models;

/// <summary>The message-passing layer families. GCN is the FaaSMon paper's baseline; GIN and GraphSAGE are the candidates.</summary>
internal enum GnnArch
{
    Gcn,
    Gin,
    Sage,
}

/// <summary>Supervised: trained on labelled benign and attack graphs. Anomaly: trained on benign graphs only, for families never seen.</summary>
internal enum TrainingMode
{
    Supervised,
    Anomaly,
}

/// <summary>
/// One message-passing layer over typed edges. Every edge type (each <see cref="Core.EdgeKind"/>, forwards and reversed)
/// has a learned embedding added to the message (GINE-style): cheap, and an execve says something different from a read.
/// Tensors are added with <c>add(t, Scalars.One)</c>, never <c>+</c>: the operator passes a temporary alpha Scalar that the
/// finalizer can free while libtorch still reads it (see <see cref="Scalars"/>; it crashed SAGE training here once).
/// </summary>
internal sealed class MessagePassingLayer : Module<Tensor, GraphBatch, Tensor>
{
    private readonly GnnArch _arch;
    private readonly Embedding relation;
    private readonly Linear self;
    private readonly Linear neighbours;
    private readonly Linear mix;
    private readonly Parameter epsilon;
    private readonly LayerNorm norm;

    public MessagePassingLayer(GnnArch arch, int width) : base($"{arch}Layer")
    {
        _arch = arch;
        relation = Embedding(GraphFeatures.RelationCount, width);
        self = Linear(width, width);
        neighbours = Linear(width, width, hasBias: false);
        mix = Linear(width, width);
        epsilon = Parameter(zeros(1));
        norm = LayerNorm(width);
        RegisterComponents();
    }

    public override Tensor forward(Tensor h, GraphBatch graph)
    {
        var messages = functional.relu(h.index_select(0, graph.Source).add(relation.forward(graph.EdgeType), Scalars.One));
        switch (_arch)
        {
            case GnnArch.Gcn:
            {
                var incoming = Incoming(h, graph);
                // Symmetric normalisation with self loops, 1/sqrt(d_i d_j), as in Kipf & Welling.
                var inverseRoot = incoming.rsqrt();
                var weighted = messages * inverseRoot.index_select(0, graph.Source);
                var summed = zeros_like(h).index_add(0, graph.Target, weighted, Scalars.One) * inverseRoot;
                return functional.relu(self.forward(summed.add(h / incoming, Scalars.One)));
            }

            case GnnArch.Gin:
            {
                // Sum aggregation (what makes GIN as strong as the WL test) grows with degree: the function process
                // has hundreds of neighbours. GIN's paper normalises inside the MLP (batch norm); layer norm does not
                // depend on the batch, so one graph scores the same alone or in a batch. It goes on the aggregate, where the size is.
                var summed = zeros_like(h).index_add(0, graph.Target, messages, Scalars.One);
                return functional.relu(mix.forward(functional.relu(self.forward(norm.forward(((epsilon + Scalars.One) * h).add(summed, Scalars.One))))));
            }

            default:
            {
                // GraphSAGE mean aggregator; incoming counts the self loop, so subtract it back.
                var incoming = Incoming(h, graph);
                var mean = zeros_like(h).index_add(0, graph.Target, messages, Scalars.One) / (incoming - Scalars.One).clamp_min(Scalars.One);
                return functional.relu(self.forward(h).add(neighbours.forward(mean), Scalars.One));
            }
        }
    }

    /// <summary>1 + in-degree of each node (N × 1): the degree with a self loop, GCN's and SAGE's normaliser (GIN has none).</summary>
    private static Tensor Incoming(Tensor h, GraphBatch graph) =>
        ones(h.shape[0], 1).index_add(0, graph.Target, ones(graph.Target.shape[0], 1), Scalars.One);
}

/// <summary>
/// Graph classifier: input projection, message passing, mean ‖ log(1 + sum) pooling per graph, MLP head (one logit: attack).
/// In anomaly mode a decoder reconstructs every node's input features from its embedding (an attribute graph autoencoder);
/// a node unlike anything seen in benign training reconstructs badly.
/// </summary>
internal sealed class GraphNet : Module<GraphBatch, Tensor>
{
    private readonly Linear input;
    private readonly ModuleList<MessagePassingLayer> layers;
    private readonly Sequential head;
    private readonly Sequential decoder;
    // Buffers, saved with the weights: the training set's per-feature mean and spread. Standardising matters most to the
    // autoencoder: a column that never varied in benign training (spread at the floor) makes any deviation loud.
    private readonly Tensor featureMean;
    private readonly Tensor featureScale;

    /// <summary>Lower bound of a feature's spread, so a column constant in training does not divide by zero.</summary>
    private static readonly Scalar ScaleFloor = 0.1f.ToScalar();

    public GraphNet(GnnArch arch, int hidden, int layerCount) : base("GraphNet")
    {
        featureMean = zeros(GraphFeatures.FeatureCount);
        featureScale = ones(GraphFeatures.FeatureCount);
        input = Linear(GraphFeatures.FeatureCount, hidden);
        layers = new ModuleList<MessagePassingLayer>([.. Enumerable.Range(0, layerCount).Select(_ => new MessagePassingLayer(arch, hidden))]);
        head = Sequential(Linear(2 * hidden, hidden), ReLU(), Linear(hidden, 1));
        decoder = Sequential(Linear(hidden, hidden), ReLU(), Linear(hidden, GraphFeatures.FeatureCount));
        RegisterComponents();
    }

    /// <summary>Node embeddings (N × hidden).</summary>
    public override Tensor forward(GraphBatch graph) => Embed(graph.X, graph);

    /// <summary>Sets the standardisation from the training nodes' features (N × F).</summary>
    public void FitStandardisation(Tensor x)
    {
        using var noGrad = no_grad();
        featureMean.copy_(x.mean([0]));
        featureScale.copy_(x.std([0], unbiased: false).clamp_min(ScaleFloor));
    }

    private Tensor Standardise(Tensor x) => (x - featureMean) / featureScale;

    public Tensor Embed(Tensor x, GraphBatch graph)
    {
        var h = functional.relu(input.forward(Standardise(x)));
        foreach (var layer in layers)
        {
            h = layer.forward(h, graph);
        }

        return h;
    }

    /// <summary>One attack logit per graph (G).</summary>
    public Tensor GraphLogits(Tensor x, GraphBatch graph)
    {
        var h = Embed(x, graph);
        var sum = zeros(graph.GraphCount, h.shape[1]).index_add(0, graph.Batch, h, Scalars.One);
        var pooled = cat([sum / graph.NodesPerGraph, sum.log1p()], 1);
        return head.forward(pooled).squeeze(1);
    }

    /// <summary>Mean squared reconstruction error of each node's features (N).</summary>
    public Tensor NodeReconstructionError(Tensor x, GraphBatch graph)
    {
        var reconstructed = decoder.forward(Embed(x, graph));
        var difference = reconstructed - Standardise(x);
        // difference * difference, not square(): TorchSharp's square() is pow(2) with a temporary Scalar (see Scalars).
        return (difference * difference).mean([1]);
    }
}
