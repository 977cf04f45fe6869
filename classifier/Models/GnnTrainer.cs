using System.Diagnostics;
using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Native;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace FaaSMon.Classifier.Models;

/// <summary>A graph with its ground truth: attack or not, and the family ("benign" or the attack family).</summary>
internal sealed record LabeledGraph(GraphFeatures Features, bool IsAttack, string Family);

internal sealed record TrainingOptions(int Epochs = 30, int BatchSize = 32, double LearningRate = 0.005, int Seed = 42);

internal sealed record EpochReport(int Epoch, double Loss, TimeSpan Elapsed);

/// <summary>
/// Trains a <see cref="GnnModel"/>. Supervised: binary cross-entropy with the attack class weighted by benign/attack,
/// because collected datasets are rarely balanced. Anomaly: benign graphs only; a fifth of them are held out to set the
/// threshold, so it reflects graphs the network did not fit.
/// </summary>
internal sealed partial class GnnTrainer(ILogger<GnnTrainer> logger)
{
    /// <summary>Quantile of held-out benign scores the anomaly threshold sits on, times a margin.</summary>
    private const double ThresholdQuantile = 0.99;
    private const double ThresholdMargin = 1.1;

    public GnnModel Train(GnnOptions options, TrainingOptions training, IReadOnlyList<LabeledGraph> graphs, Action<EpochReport>? progress = null)
    {
        TorchRuntime.EnsureAvailable();
        torch.manual_seed(training.Seed);
        var random = new Random(training.Seed);
        var model = GnnModel.Create(options);
        if (options.Mode == TrainingMode.Supervised)
        {
            if (!graphs.Any(g => g.IsAttack) || graphs.All(g => g.IsAttack))
            {
                throw new ArgumentException("supervised training needs benign and attack graphs (use anomaly mode for benign only)", nameof(graphs));
            }

            Fit(model, training, [.. graphs], random, progress);
            return model;
        }

        var benign = graphs.Where(g => !g.IsAttack).OrderBy(_ => random.Next()).ToList();
        if (benign.Count == 0)
        {
            throw new ArgumentException("anomaly training needs benign graphs", nameof(graphs));
        }

        var holdOut = benign.Count >= 5 ? Math.Max(1, benign.Count / 5) : 0;
        var validation = holdOut > 0 ? benign[..holdOut] : benign;
        Fit(model, training, benign[holdOut..], random, progress);
        model.Threshold = 1;
        var raw = RawAnomalyScores(model, validation.Select(g => g.Features).ToList());
        Array.Sort(raw);
        var quantile = raw[Math.Min(raw.Length - 1, (int)Math.Ceiling(ThresholdQuantile * raw.Length) - 1)];
        model.Threshold = Math.Max(quantile * ThresholdMargin, 1e-6);
        LogThreshold(logger, model.Threshold, validation.Count);
        return model;
    }

    /// <summary>The worst node's reconstruction error per graph, before it is mapped to a score.</summary>
    internal static double[] RawAnomalyScores(GnnModel model, IReadOnlyList<GraphFeatures> graphs)
    {
        model.Net.eval();
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var batch = GraphBatch.Create(graphs);
        return GnnModel.GraphAnomalyScores(model.Net.NodeReconstructionError(batch.X, batch), batch);
    }

    private void Fit(GnnModel model, TrainingOptions training, List<LabeledGraph> graphs, Random random, Action<EpochReport>? progress)
    {
        var attacks = graphs.Count(g => g.IsAttack);
        // Weight the attack class so both classes pull equally whatever the mix.
        var positiveWeight = attacks == 0 ? 1.0 : (double)(graphs.Count - attacks) / attacks;
        using var optimizer = new ScalarSafeAdam(model.Net.parameters(), training.LearningRate, weightDecay: 1e-5);
        using var weight = torch.tensor(new[] { (float)positiveWeight });
        using (var scope = torch.NewDisposeScope())
        {
            model.Net.FitStandardisation(GraphBatch.Create([.. graphs.Select(g => g.Features)]).X);
        }

        for (var epoch = 1; epoch <= training.Epochs; epoch++)
        {
            var clock = Stopwatch.StartNew();
            model.Net.train();
            var order = graphs.OrderBy(_ => random.Next()).ToList();
            double lossSum = 0;
            var batches = 0;
            for (var start = 0; start < order.Count; start += training.BatchSize)
            {
                using var scope = torch.NewDisposeScope();
                var slice = order.Skip(start).Take(training.BatchSize).ToList();
                var batch = GraphBatch.Create([.. slice.Select(g => g.Features)]);
                optimizer.zero_grad();
                Tensor loss;
                if (model.Options.Mode == TrainingMode.Supervised)
                {
                    var labels = torch.tensor(slice.Select(g => g.IsAttack ? 1f : 0f).ToArray());
                    loss = nn.functional.binary_cross_entropy_with_logits(model.Net.GraphLogits(batch.X, batch), labels, pos_weights: weight);
                }
                else
                {
                    loss = model.Net.NodeReconstructionError(batch.X, batch).mean();
                }

                loss.backward();
                optimizer.step();
                lossSum += loss.item<float>();
                batches++;
            }

            var report = new EpochReport(epoch, lossSum / Math.Max(1, batches), clock.Elapsed);
            LogEpoch(logger, model.Name, epoch, report.Loss, report.Elapsed.TotalMilliseconds);
            progress?.Invoke(report);
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Model} epoch {Epoch}: loss {Loss:F4} in {Milliseconds:F0} ms")]
    private static partial void LogEpoch(ILogger logger, string model, int epoch, double loss, double milliseconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Anomaly threshold {Threshold:G4} from {Count} held-out benign graphs")]
    private static partial void LogThreshold(ILogger logger, double threshold, int count);
}
