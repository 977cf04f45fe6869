using System.Diagnostics;
using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Native;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace FaaSMon.Classifier.Models;

/// <summary>A graph with its ground truth: attack or not, and the family ("benign" or the attack family).</summary>
internal sealed record LabeledGraph(GraphFeatures Features, bool IsAttack, string Family);

/// <param name="Epochs">At most this many epochs.</param>
/// <param name="ValidationShare">Supervised: the share of each label held out to pick the epoch whose weights are kept.</param>
/// <param name="Patience">Supervised: stop after this many epochs without a better validation loss.</param>
internal sealed record TrainingOptions(int Epochs = 30, int BatchSize = 32, double LearningRate = 0.005, int Seed = 42, double ValidationShare = 0.1, int Patience = 6);

/// <summary>One epoch: mean training loss, validation loss (NaN when nothing was held out) and time.</summary>
internal sealed record EpochReport(int Epoch, double Loss, TimeSpan Elapsed, double ValidationLoss = double.NaN);

/// <summary>
/// Trains a <see cref="GnnModel"/>. Supervised: binary cross-entropy with the attack class weighted by benign/attack,
/// because collected datasets are rarely balanced; a stratified share is held out and the weights of the epoch with the
/// lowest validation loss are kept (early stopping), because the last epoch's weights swung the benign FPR of a fold
/// from 1 % to 9 %. Anomaly: benign graphs only; a fifth of them are held out to set the
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

            var (fit, held) = HoldOut(graphs, training, random);
            Fit(model, training, fit, random, progress, held);
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

    /// <summary>
    /// A stratified validation share of each label, when every label keeps at least one graph on both sides and there are
    /// enough graphs for the share to mean something; otherwise no validation (every epoch runs and the last is kept).
    /// </summary>
    private static (List<LabeledGraph> Fit, List<LabeledGraph> Validation) HoldOut(IReadOnlyList<LabeledGraph> graphs, TrainingOptions training, Random random)
    {
        const int Smallest = 50;
        if (training.ValidationShare <= 0 || graphs.Count < Smallest)
        {
            return ([.. graphs], []);
        }

        var fit = new List<LabeledGraph>();
        var validation = new List<LabeledGraph>();
        foreach (var label in graphs.GroupBy(g => g.Family, StringComparer.Ordinal).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var shuffled = label.OrderBy(_ => random.Next()).ToList();
            var held = shuffled.Count < 2 ? 0 : Math.Max(1, (int)Math.Round(training.ValidationShare * shuffled.Count));
            validation.AddRange(shuffled[..held]);
            fit.AddRange(shuffled[held..]);
        }

        return (fit, validation);
    }

    private void Fit(GnnModel model, TrainingOptions training, List<LabeledGraph> graphs, Random random, Action<EpochReport>? progress, List<LabeledGraph>? validation = null)
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

        var best = new List<Tensor>();
        var bestLoss = double.PositiveInfinity;
        var bestEpoch = 0;
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

            var validationLoss = validation is { Count: > 0 } ? ValidationLoss(model, validation, weight) : double.NaN;
            var report = new EpochReport(epoch, lossSum / Math.Max(1, batches), clock.Elapsed, validationLoss);
            LogEpoch(logger, model.Name, epoch, report.Loss, validationLoss, report.Elapsed.TotalMilliseconds);
            progress?.Invoke(report);
            if (double.IsNaN(validationLoss))
            {
                continue;
            }

            if (validationLoss < bestLoss)
            {
                bestLoss = validationLoss;
                bestEpoch = epoch;
                Snapshot(model, best);
            }
            else if (epoch - bestEpoch >= training.Patience)
            {
                break;
            }
        }

        if (best.Count > 0)
        {
            using var noGrad = torch.no_grad();
            foreach (var (parameter, saved) in model.Net.parameters().Zip(best))
            {
                parameter.copy_(saved);
            }

            LogBestEpoch(logger, model.Name, bestEpoch, bestLoss);
        }

        best.ForEach(t => t.Dispose());
        model.WeightsChanged();
    }

    /// <summary>Copies the weights into <paramref name="best"/>, outside any dispose scope so they live until restored.</summary>
    private static void Snapshot(GnnModel model, List<Tensor> best)
    {
        best.ForEach(t => t.Dispose());
        best.Clear();
        using var noGrad = torch.no_grad();
        best.AddRange(model.Net.parameters().Select(p => p.clone().DetachFromDisposeScope()));
    }

    private static double ValidationLoss(GnnModel model, List<LabeledGraph> validation, Tensor weight)
    {
        model.Net.eval();
        using var noGrad = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var batch = GraphBatch.Create([.. validation.Select(g => g.Features)]);
        var labels = torch.tensor(validation.Select(g => g.IsAttack ? 1f : 0f).ToArray());
        return nn.functional.binary_cross_entropy_with_logits(model.Net.GraphLogits(batch.X, batch), labels, pos_weights: weight).item<float>();
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Model} epoch {Epoch}: loss {Loss:F4}, validation {ValidationLoss:F4} in {Milliseconds:F0} ms")]
    private static partial void LogEpoch(ILogger logger, string model, int epoch, double loss, double validationLoss, double milliseconds);

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Model}: kept the weights of epoch {Epoch} (validation loss {ValidationLoss:F4})")]
    private static partial void LogBestEpoch(ILogger logger, string model, int epoch, double validationLoss);

    [LoggerMessage(Level = LogLevel.Information, Message = "Anomaly threshold {Threshold:G4} from {Count} held-out benign graphs")]
    private static partial void LogThreshold(ILogger logger, double threshold, int count);
}
