using System.Diagnostics;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Native;
using Microsoft.Extensions.Logging;
using TorchSharp;
using static TorchSharp.torch;

namespace FaaSMon.Classifier.Temporal;

internal sealed record TemporalOptions(TemporalArch Arch = TemporalArch.Tgat, int Hidden = 32, int Heads = 2, int Layers = 2);

/// <summary>What a network model file says about the model it holds.</summary>
internal sealed record TemporalModelHeader(
    TemporalArch Arch,
    int Hidden,
    int Heads,
    int Layers,
    int LayoutVersion,
    int NodeFeatures,
    int EdgeFeatures,
    double WindowSeconds,
    string WeightsSha256,
    long WeightsLength) : IModelFileHeader;

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

    /// <summary>
    /// Writes <c>FAASMON-TEMPORAL 1</c>, a JSON header (architecture, sizes, feature layout, the window length the model
    /// was trained on, weights checksum), then the weights, as the provenance models' files do.
    /// </summary>
    public void Save(string path, double windowSeconds) =>
        ModelFile.Write(path, Magic, Net, (sha, length) => new TemporalModelHeader(Options.Arch, Options.Hidden, Options.Heads, Options.Layers,
            TemporalFeatures.LayoutVersion, TemporalFeatures.NodeFeatureCount, TemporalFeatures.EdgeFeatureCount, windowSeconds, sha, length));

    /// <exception cref="ModelFileException">Not a network model file, corrupt, or for another feature layout.</exception>
    /// <exception cref="TorchUnavailableException">Torch cannot load on this machine.</exception>
    public static TemporalModel Load(string path, out double windowSeconds)
    {
        var (header, content, weightsStart) = ModelFile.Read<TemporalModelHeader>(path, Magic,
            $"not a FaaSMon network model file (it must start with \"{Magic}\"; faasmon train --task network writes one)");
        if (header.LayoutVersion != TemporalFeatures.LayoutVersion || header.NodeFeatures != TemporalFeatures.NodeFeatureCount || header.EdgeFeatures != TemporalFeatures.EdgeFeatureCount)
        {
            throw new ModelFileException(path,
                $"trained on temporal feature layout {header.LayoutVersion} ({header.NodeFeatures} node, {header.EdgeFeatures} edge features); " +
                $"this build uses layout {TemporalFeatures.LayoutVersion} ({TemporalFeatures.NodeFeatureCount}, {TemporalFeatures.EdgeFeatureCount}): retrain");
        }

        if (header.WindowSeconds is not (> 0 and <= 3600) || header.Hidden is < 1 or > 4096 || header.Heads < 1 || header.Hidden % header.Heads != 0)
        {
            throw new ModelFileException(path, $"header out of range (window {header.WindowSeconds} s, hidden {header.Hidden}, heads {header.Heads})");
        }

        using var weights = ModelFile.Weights(path, header, content, weightsStart);
        var model = Create(new TemporalOptions(header.Arch, header.Hidden, header.Heads, header.Layers));
        try
        {
            model.Net.load(weights, strict: true);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or EndOfStreamException)
        {
            model.Dispose();
            throw new ModelFileException(path, $"weights do not fit a {header.Arch} network of hidden {header.Hidden}: {e.Message}", e);
        }

        windowSeconds = header.WindowSeconds;
        return model;
    }

    private const string Magic = "FAASMON-TEMPORAL 1";

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
