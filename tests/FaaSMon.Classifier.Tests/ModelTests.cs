using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Models;
using FaaSMon.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Classifier.Tests;

public sealed class ModelTests
{
    internal static List<LabeledGraph> Labeled(IEnumerable<ProvenanceGraph> graphs) =>
        [.. graphs.Select(g => new LabeledGraph(GraphFeatures.From(g), g.Label != SyntheticGraphs.Benign, g.Label!))];

    // the product's learning rate: at 0.01 GIN collapsed to one class for some seeds on some CPUs (seed 42 gave 50 of 60
    // on an AVX-512 EPYC, seed 3 gave 30 of 60), while at 0.005 every arch got 60 of 60 for seeds 42 and 1-4
    private static readonly TrainingOptions Quick = new(Epochs: 12, BatchSize: 16, LearningRate: 0.005);

    [Theory]
    [InlineData("gcn")]
    [InlineData("gin")]
    [InlineData("sage")]
    public void Each_architecture_separates_attacks_from_benign_graphs_it_did_not_train_on(string name)
    {
        var arch = Enum.Parse<GnnArch>(name, ignoreCase: true);
        var train = Labeled(SyntheticGraphs.Dataset(seed: 1, benign: 60, perFamily: 20));
        var test = Labeled(SyntheticGraphs.Dataset(seed: 2, benign: 30, perFamily: 10));
        // The product's own training (30 epochs at most, early stopping on a held-out tenth): with a 12-epoch budget GIN's
        // loss sat on a plateau for some initialisations and missed one family (2 of 6 seeds); with this, 6 of 6 reach 59-60 of 60.
        using var model = new GnnTrainer(NullLogger<GnnTrainer>.Instance).Train(new GnnOptions(arch), new TrainingOptions(), train, r => Console.Error.WriteLine($"{arch} {r.Epoch} {r.Loss:F4} {r.Elapsed.TotalMilliseconds:F0}ms"));

        var scores = model.Predict([.. test.Select(g => g.Features)]);
        var correct = test.Zip(scores).Count(p => p.First.IsAttack == (p.Second >= 0.5));
        Assert.True(correct >= 0.9 * test.Count, $"{arch}: {correct} of {test.Count} right");
    }

    [Fact]
    public void Anomaly_mode_trained_on_benign_only_flags_attack_families_it_never_saw()
    {
        var benign = Labeled(SyntheticGraphs.Dataset(seed: 3, benign: 80, perFamily: 0));
        var test = Labeled(SyntheticGraphs.Dataset(seed: 4, benign: 30, perFamily: 10));
        using var model = new GnnTrainer(NullLogger<GnnTrainer>.Instance).Train(new GnnOptions(GnnArch.Gin, TrainingMode.Anomaly), Quick with { Epochs = 25 }, benign);

        Assert.True(model.Threshold > 0);
        var scores = model.Predict([.. test.Select(g => g.Features)]);
        var attacksCaught = test.Zip(scores).Count(p => p.First.IsAttack && p.Second >= 0.5);
        var falseAlarms = test.Zip(scores).Count(p => !p.First.IsAttack && p.Second >= 0.5);
        Assert.True(attacksCaught >= 0.8 * test.Count(g => g.IsAttack), $"caught {attacksCaught} of {test.Count(g => g.IsAttack)} attacks");
        Assert.True(falseAlarms <= 3, $"{falseAlarms} of 30 benign graphs flagged");
    }
}
