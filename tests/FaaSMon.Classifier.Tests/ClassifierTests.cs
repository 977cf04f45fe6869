using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Inference;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Rules;
using FaaSMon.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Classifier.Tests;

public sealed class ClassifierTests
{
    [Fact]
    public void A_verdict_carries_score_rule_hits_and_the_nodes_that_caused_it()
    {
        var train = ModelTests.Labeled(SyntheticGraphs.Dataset(seed: 11, benign: 40, perFamily: 12));
        using var model = new GnnTrainer(NullLogger<GnnTrainer>.Instance).Train(new GnnOptions(GnnArch.Gin), new TrainingOptions(Epochs: 10, BatchSize: 16, LearningRate: 0.01), train);
        var classifier = new GraphClassifier(model, RuleSet.LoadDefault());
        var explaining = new GraphClassifier(model, RuleSet.LoadDefault(), explainBenign: true);

        var attack = SyntheticGraphs.Create(new Random(12), SyntheticGraphs.InheritedExec, 60);
        var verdict = classifier.Classify(attack);
        Assert.True(verdict.IsIntrusion);
        Assert.Equal("gin-supervised", verdict.ModelName);
        Assert.Equal(attack.CallId, verdict.CallId);
        Assert.InRange(verdict.Score!.Value, 0.5, 1);
        Assert.Contains(verdict.RuleHits, h => h.RuleId == "exec-inherited-file");
        Assert.Equal(5, verdict.TopNodes.Count);
        Assert.Equal(5, verdict.TopEdges.Count);
        Assert.True(verdict.TopNodes.Zip(verdict.TopNodes.Skip(1)).All(p => p.First.Weight >= p.Second.Weight));
        // The explanation points into the attack, not at the hundred module reads around it.
        var attackNodes = attack.Nodes.Where(n => n.Label is "x" or "/tmp/.cache/x" or "earlier call" || n.Label.StartsWith("203.0.113.", StringComparison.Ordinal)).Select(n => n.Id).ToHashSet();
        Assert.Contains(verdict.TopNodes, n => attackNodes.Contains(n.NodeId));
        // a provisional verdict: the same decision and score, without the explanation's backward pass
        var quick = classifier.Classify(attack, withExplanation: false);
        Assert.True(quick.IsIntrusion);
        Assert.Equal(verdict.Score, quick.Score);
        Assert.Equal(verdict.RuleHits.Select(h => (h.RuleId, h.Explanation)), quick.RuleHits.Select(h => (h.RuleId, h.Explanation)));
        Assert.Empty(quick.TopNodes);

        // the start-up warm-up scores and explains a tiny graph and leaves nothing behind that changes a later verdict
        var warm = classifier.WarmUp();
        Assert.Equal("gin-supervised", warm.ModelName);
        Assert.InRange(warm.Score!.Value, 0, 1);
        Assert.Empty(warm.RuleHits);
        var after = classifier.Classify(attack);
        Assert.Equal(verdict.Score, after.Score);
        Assert.Equal(verdict.TopNodes.Select(n => (n.NodeId, n.Weight)), after.TopNodes.Select(n => (n.NodeId, n.Weight)));

        var benignGraph = SyntheticGraphs.Create(new Random(13), SyntheticGraphs.Benign, 60);
        var benign = classifier.Classify(benignGraph);
        Assert.False(benign.IsIntrusion);
        Assert.Empty(benign.RuleHits);
        Assert.InRange(benign.Score!.Value, 0, 0.5);
        // Benign verdicts skip the explanation unless asked; the score is the same either way.
        Assert.Empty(benign.TopNodes);
        var explained = explaining.Classify(benignGraph);
        Assert.Equal(benign.Score, explained.Score);
        Assert.Equal(5, explained.TopNodes.Count);
    }

    [Fact]
    public void Without_a_model_the_rules_still_decide_and_the_verdict_says_why()
    {
        var classifier = new GraphClassifier(null, RuleSet.LoadDefault(), "torch cannot load: test");
        var verdict = classifier.Classify(SyntheticGraphs.Create(new Random(14), SyntheticGraphs.Shell));
        Assert.True(verdict.IsIntrusion);
        Assert.Null(verdict.Score);
        Assert.Equal("torch cannot load: test", verdict.ModelUnavailable);
        Assert.False(classifier.Classify(SyntheticGraphs.Create(new Random(15), SyntheticGraphs.Benign)).IsIntrusion);
    }

    [Fact]
    public void Open_falls_back_to_rules_when_the_model_file_is_missing_or_corrupt_and_uses_it_when_it_loads()
    {
        var directory = Directory.CreateTempSubdirectory("faasmon-open-");
        try
        {
            var path = Path.Combine(directory.FullName, "model.gnn");
            var missing = GraphClassifier.Open(path, null, NullLogger.Instance);
            Assert.False(missing.HasModel);
            var verdict = missing.Classify(SyntheticGraphs.Create(new Random(16), SyntheticGraphs.SecretTheft));
            Assert.True(verdict.IsIntrusion);
            Assert.Contains(path, verdict.ModelUnavailable, StringComparison.Ordinal);

            var train = ModelTests.Labeled(SyntheticGraphs.Dataset(seed: 17, benign: 12, perFamily: 4));
            using (var model = new GnnTrainer(NullLogger<GnnTrainer>.Instance).Train(new GnnOptions(GnnArch.Gcn), new TrainingOptions(Epochs: 2), train))
            {
                model.Save(path);
            }

            var loaded = GraphClassifier.Open(path, RuleSet.DefaultPath, NullLogger.Instance);
            Assert.True(loaded.HasModel);
            Assert.NotNull(loaded.Classify(SyntheticGraphs.Create(new Random(18), SyntheticGraphs.Benign)).Score);

            File.WriteAllText(path, "garbage");
            Assert.Contains("not a FaaSMon model file", GraphClassifier.Open(path, null, NullLogger.Instance)
                .Classify(SyntheticGraphs.Create(new Random(19), SyntheticGraphs.Benign)).ModelUnavailable, StringComparison.Ordinal);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void A_bad_graph_is_a_clear_error_not_a_crash()
    {
        var classifier = new GraphClassifier(null, RuleSet.LoadDefault());
        var graph = new ProvenanceGraph("broken", GraphScope.Invocation, null, null, null, null, [], []);
        Assert.Contains("no nodes", Assert.Throws<InvalidGraphException>(() => classifier.Classify(graph)).Message, StringComparison.Ordinal);
    }
}
