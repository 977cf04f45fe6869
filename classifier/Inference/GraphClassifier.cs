using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Rules;
using FaaSMon.Core;
using Microsoft.Extensions.Logging;
using TorchSharp;

namespace FaaSMon.Classifier.Inference;

/// <summary>
/// Classifies one finished graph: the model's score (when a model is loaded and torch runs here), the rules, and the nodes
/// and edges that explain the score. Without a model it still answers, on rules only, and says why the model is missing.
/// The explanation costs a backward pass, so by default only intrusions get one: they are what a person reads, and most
/// graphs are benign.
/// </summary>
internal sealed partial class GraphClassifier(GnnModel? model, RuleSet rules, string? modelUnavailable = null, int explain = 5, bool explainBenign = false)
{
    private readonly Lock _saliency = new();

    public bool HasModel => model is not null;

    /// <summary>
    /// The classifier FaaSMon runs: the model file if it loads, else rules only with the reason in every verdict — a bad or
    /// missing model, or a machine where torch cannot load, must not stop detection. A bad rules file does stop it: rules are
    /// configuration a person wrote, and silently running without them would hide the mistake.
    /// </summary>
    /// <exception cref="RuleFileException">The rules file cannot be used.</exception>
    public static GraphClassifier Open(string? modelPath, string? rulesPath, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(logger);
        var rules = rulesPath is null ? RuleSet.LoadDefault() : RuleSet.Load(rulesPath);
        if (modelPath is null)
        {
            LogRulesOnly(logger, "no model file given");
            return new GraphClassifier(null, rules, "no model file given");
        }

        try
        {
            return new GraphClassifier(GnnModel.Load(modelPath), rules);
        }
        catch (Exception e) when (e is ModelFileException or Native.TorchUnavailableException)
        {
            LogRulesOnly(logger, e.Message);
            return new GraphClassifier(null, rules, e.Message);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Classifier runs on rules only: {Reason}")]
    private static partial void LogRulesOnly(ILogger logger, string reason);

    /// <summary>
    /// Classifies a three-node graph once with its explanation, so the first real verdict does not pay for compiling the
    /// features, rules, scoring and saliency code: cold, that first verdict took 140–640 ms on 2 busy cores, against
    /// about 1 ms warm, and every verdict queued behind it waited as long. Returns the verdict for the store's warm-up.
    /// </summary>
    public Verdict WarmUp()
    {
        var graph = new ProvenanceGraph("warm-up", GraphScope.Invocation, null, null, "warm-up", null,
            [
                new GraphNode(0, NodeKind.Invocation, "warm-up", new Dictionary<string, string> { ["role"] = "self" }),
                new GraphNode(1, NodeKind.Process, "node"),
                new GraphNode(2, NodeKind.File, "/tmp/warm-up"),
            ],
            [new GraphEdge(0, 1, EdgeKind.Invoke, "invoke", 0, 0), new GraphEdge(1, 2, EdgeKind.Write, "write", 0, 0)]);
        var verdict = Classify(graph, withExplanation: false);
        if (model is not null)
        {
            _ = Saliency(GraphFeatures.From(graph));
        }

        return verdict;
    }

    /// <param name="withExplanation">False: score and rules only, no explanation even for an intrusion (a provisional verdict,
    /// whose final one follows within seconds with the explanation; the backward pass is most of an intrusion's cost).</param>
    public Verdict Classify(ProvenanceGraph graph, bool withExplanation = true)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var features = GraphFeatures.From(graph);
        var hits = rules.Evaluate(graph);
        if (model is null)
        {
            return new Verdict(graph.GraphId, graph.CallId, graph.TraceId, graph.Function, null, null, hits.Count > 0, hits, [], [])
            {
                ModelUnavailable = modelUnavailable ?? "no model loaded",
            };
        }

        var score = model.Predict([features])[0];
        if (score < 0.5 && hits.Count == 0 && !explainBenign)
        {
            return new Verdict(graph.GraphId, graph.CallId, graph.TraceId, graph.Function, score, model.Name, false, hits, [], []);
        }

        if (!withExplanation)
        {
            return new Verdict(graph.GraphId, graph.CallId, graph.TraceId, graph.Function, score, model.Name, score >= 0.5 || hits.Count > 0, hits, [], []);
        }

        var nodeWeights = Saliency(features);
        var topNodes = nodeWeights
            .Select((weight, i) => (weight, node: graph.Nodes[i]))
            .OrderByDescending(p => p.weight)
            .Take(explain)
            .Select(p => new NodeContribution(p.node.Id, p.node.Kind, p.node.Label, p.weight))
            .ToList();
        var row = new Dictionary<int, int>(graph.Nodes.Count);
        for (var i = 0; i < graph.Nodes.Count; i++)
        {
            row[graph.Nodes[i].Id] = i;
        }

        // An edge matters as much as the nodes it joins: the explanation is a connected subgraph, not scattered nodes.
        var topEdges = graph.Edges
            .Select(e => new EdgeContribution(e.Source, e.Target, e.Kind, (nodeWeights[row[e.Source]] + nodeWeights[row[e.Target]]) / 2))
            .OrderByDescending(e => e.Weight)
            .Take(explain)
            .ToList();
        return new Verdict(graph.GraphId, graph.CallId, graph.TraceId, graph.Function, score, model.Name, score >= 0.5 || hits.Count > 0, hits, topNodes, topEdges);
    }

    /// <summary>
    /// Supervised: gradient × input per node (summed over features, absolute), normalised to sum 1.
    /// Anomaly: each node's reconstruction error, which is what the score is made of, normalised the same way.
    /// </summary>
    private double[] Saliency(GraphFeatures features)
    {
        // the backward pass accumulates into the one network's gradients: one explanation at a time
        lock (_saliency)
        {
            return SaliencyLocked(features);
        }
    }

    private double[] SaliencyLocked(GraphFeatures features)
    {
        using var scope = torch.NewDisposeScope();
        var net = model!.Net;
        net.eval();
        var batch = GraphBatch.Create([features]);
        float[] weights;
        if (model.Options.Mode == TrainingMode.Supervised)
        {
            var x = batch.X.detach().requires_grad_(true);
            var logit = net.GraphLogits(x, batch);
            logit.sum().backward();
            weights = (x.grad! * x).abs().sum([1]).detach().data<float>().ToArray();
            net.zero_grad();
        }
        else
        {
            using var noGrad = torch.no_grad();
            var errors = net.NodeReconstructionError(batch.X, batch);
            weights = errors.data<float>().ToArray();
        }

        var total = weights.Sum();
        return [.. weights.Select(w => total > 0 ? w / total : 0.0)];
    }
}
