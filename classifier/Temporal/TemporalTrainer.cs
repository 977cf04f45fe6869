using System.Diagnostics;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Native;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace FaaSMon.Classifier.Temporal;

internal sealed record TemporalOptions(TemporalArch Arch = TemporalArch.Tgat, int Hidden = 32, int Heads = 2, int Layers = 2);

/// <summary>A trained network-view model; scores are attack probabilities, 0.5 the boundary.</summary>
internal sealed class TemporalModel(TemporalOptions options, TemporalNet net) : IDisposable
{
    public TemporalOptions Options { get; } = options;

    public TemporalNet Net { get; } = net;

    public string Name => $"{Options.Arch.ToString().ToLowerInvariant()}-network";

    public static TemporalModel Create(TemporalOptions options)
    {
        TorchRuntime.EnsureAvailable();
        TemporalNet net = options.Arch == TemporalArch.Tgat ? new TgatNet(options.Hidden, options.Heads) : new StaticGcnNet(options.Hidden, options.Layers);
        return new TemporalModel(options, net);
    }

    public double[] Predict(IReadOnlyList<TemporalFeatures> graphs, int batchSize = 64)
    {
        var scores = new double[graphs.Count];
        Net.eval();
        using var noGrad = torch.no_grad();
        for (var start = 0; start < graphs.Count; start += batchSize)
        {
            using var scope = torch.NewDisposeScope();
            var batch = TemporalBatch.Create([.. graphs.Skip(start).Take(batchSize)]);
            var probabilities = nn.functional.sigmoid(Net.forward(batch)).detach().cpu().data<float>().ToArray();
            for (var i = 0; i < probabilities.Length; i++)
            {
                scores[start + i] = probabilities[i];
            }
        }

        return scores;
    }

    public void Save(string path) => Net.save(path);

    public static TemporalModel Load(TemporalOptions options, string path)
    {
        var model = Create(options);
        model.Net.load(path, strict: true);
        return model;
    }

    public void Dispose() => Net.Dispose();
}

/// <summary>
/// Trains TGAT or GCN on labelled windows: binary cross-entropy with the attack class weighted by benign/attack, the
/// classifier's own Adam (<see cref="ScalarSafeAdam"/>), one dispose scope per step.
/// </summary>
internal sealed partial class TemporalTrainer(ILogger logger)
{
    public TemporalModel Train(TemporalOptions options, TrainingOptions training, IReadOnlyList<LabeledTemporalGraph> graphs, Action<EpochReport>? progress = null)
    {
        TorchRuntime.EnsureAvailable();
        if (!graphs.Any(g => g.IsAttack) || graphs.All(g => g.IsAttack))
        {
            throw new ArgumentException("training needs benign and attack windows", nameof(graphs));
        }

        torch.manual_seed(training.Seed);
        var random = new Random(training.Seed);
        var model = TemporalModel.Create(options);
        var attacks = graphs.Count(g => g.IsAttack);
        using var optimizer = new ScalarSafeAdam(model.Net.parameters(), training.LearningRate, weightDecay: 1e-5);
        using var weight = torch.tensor(new[] { (float)(graphs.Count - attacks) / attacks });
        using (var scope = torch.NewDisposeScope())
        {
            // A sample of the training windows is plenty for feature means and spreads.
            model.Net.FitStandardisation(TemporalBatch.Create([.. graphs.OrderBy(_ => random.Next()).Take(512).Select(g => g.Features)]));
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
                var batch = TemporalBatch.Create([.. slice.Select(g => g.Features)]);
                optimizer.zero_grad();
                var labels = torch.tensor(slice.Select(g => g.IsAttack ? 1f : 0f).ToArray());
                var loss = nn.functional.binary_cross_entropy_with_logits(model.Net.forward(batch), labels, pos_weights: weight);
                loss.backward();
                optimizer.step();
                lossSum += loss.item<float>();
                batches++;
            }

            var report = new EpochReport(epoch, lossSum / Math.Max(1, batches), clock.Elapsed);
            LogEpoch(logger, model.Name, epoch, report.Loss, report.Elapsed.TotalMilliseconds);
            progress?.Invoke(report);
        }

        return model;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "{Model} epoch {Epoch}: loss {Loss:F4} in {Milliseconds:F0} ms")]
    private static partial void LogEpoch(ILogger logger, string model, int epoch, double loss, double milliseconds);
}
