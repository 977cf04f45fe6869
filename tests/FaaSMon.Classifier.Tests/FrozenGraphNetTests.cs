using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Models;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;

namespace FaaSMon.Classifier.Tests;

/// <summary>
/// <see cref="GnnModel.Predict"/> runs the managed copy of the network (<see cref="FrozenGraphNet"/>); it must give the
/// torch network's scores, for every architecture and mode, on small graphs and on graphs of up to 1k nodes.
/// </summary>
public sealed class FrozenGraphNetTests
{
    private static readonly List<GraphFeatures> Test =
    [
        .. SyntheticGraphs.Dataset(seed: 8, benign: 12, perFamily: 4).Select(GraphFeatures.From),
        .. SyntheticGraphs.Dataset(seed: 9, benign: 2, perFamily: 1, minNodes: 500, maxNodes: 1000).Select(GraphFeatures.From),
    ];

    private static GnnModel Trained(GnnArch arch, TrainingMode mode, int hidden = 32)
    {
        var graphs = ModelTests.Labeled(SyntheticGraphs.Dataset(seed: 7, benign: 24, perFamily: 8));
        return new GnnTrainer(NullLogger<GnnTrainer>.Instance).Train(new GnnOptions(arch, mode, hidden), new TrainingOptions(Epochs: 3, BatchSize: 16), graphs);
    }

    [Theory]
    [InlineData("gin", "supervised", 32)]
    [InlineData("sage", "supervised", 32)]
    [InlineData("gcn", "supervised", 32)]
    [InlineData("gin", "anomaly", 32)]
    [InlineData("sage", "anomaly", 32)]
    [InlineData("gcn", "anomaly", 32)]
    [InlineData("gin", "supervised", 20)]
    [InlineData("sage", "supervised", 12)]
    [InlineData("gcn", "anomaly", 8)]
    public void Scores_are_the_torch_networks(string arch, string mode, int hidden)
    {
        using var model = Trained(Enum.Parse<GnnArch>(arch, ignoreCase: true), Enum.Parse<TrainingMode>(mode, ignoreCase: true), hidden);
        var frozen = model.Predict(Test);
        var reference = model.PredictWithTorch(Test);

        Assert.Equal(reference.Length, frozen.Length);
        for (var i = 0; i < Test.Count; i++)
        {
            Assert.True(Math.Abs(frozen[i] - reference[i]) < 1e-5, $"{arch} {mode} {hidden}: graph {Test[i].GraphId} ({Test[i].NodeCount} nodes) scored {frozen[i]} by the frozen network, {reference[i]} by torch");
        }
    }

    [Fact]
    public void Weights_changed_after_a_prediction_are_used_by_the_next_one()
    {
        using var model = Trained(GnnArch.Gin, TrainingMode.Supervised);
        var before = model.Predict(Test);
        using (torch.no_grad())
        {
            using var factor = 1.5f.ToScalar();
            foreach (var parameter in model.Net.parameters())
            {
                parameter.mul_(factor);
            }
        }

        model.WeightsChanged();
        var after = model.Predict(Test);
        Assert.NotEqual(before, after);
        Assert.All(after.Zip(model.PredictWithTorch(Test)), p => Assert.True(Math.Abs(p.First - p.Second) < 1e-5, $"{p.First} vs {p.Second}"));
    }

    [Fact]
    public void Features_that_do_not_fit_the_network_are_a_clear_error_not_a_stray_read()
    {
        using var model = Trained(GnnArch.Gin, TrainingMode.Supervised);
        var good = Test[0];
        GraphFeatures[] bad =
        [
            good with { Source = [.. good.Source[..^1], good.NodeCount] },
            good with { Target = [-1, .. good.Target[1..]] },
            good with { EdgeType = [GraphFeatures.RelationCount, .. good.EdgeType[1..]] },
            good with { X = good.X[..^1] },
            good with { Target = good.Target[..^1] },
        ];
        foreach (var features in bad)
        {
            Assert.Throws<ArgumentException>(() => model.Predict([features]));
        }

        Assert.Single(model.Predict([good]));
    }
}
