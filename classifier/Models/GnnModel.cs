using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Native;
using TorchSharp;
using static TorchSharp.torch;

namespace FaaSMon.Classifier.Models;

/// <summary>What a model file says about the model it holds.</summary>
internal sealed record ModelHeader(
    GnnArch Arch,
    TrainingMode Mode,
    int LayoutVersion,
    int FeatureCount,
    int RelationCount,
    int Hidden,
    int Layers,
    double Threshold,
    string WeightsSha256,
    long WeightsLength) : IModelFileHeader;

/// <summary>A model file that cannot be used: corrupt, truncated, or made for another feature layout or architecture.</summary>
internal sealed class ModelFileException(string path, string problem, Exception? inner = null)
    : Exception($"model file {path}: {problem}", inner);

/// <summary>Hyper-parameters of one model.</summary>
internal sealed record GnnOptions(GnnArch Arch = GnnArch.Gin, TrainingMode Mode = TrainingMode.Supervised, int Hidden = 32, int Layers = 3)
{
    /// <summary>The autoencoder's bottleneck: narrow, so it cannot learn the identity and unseen nodes stand out.</summary>
    public int EffectiveHidden => Mode == TrainingMode.Anomaly ? Math.Min(Hidden, 16) : Hidden;
}

/// <summary>
/// A trained network and how to read its output. Scores are in [0, 1], 0.5 = the decision boundary: the attack probability
/// (supervised) or d / (d + threshold) for the reconstruction error d of the worst node (anomaly).
/// </summary>
internal sealed class GnnModel : IDisposable
{
    private const string Magic = "FAASMON-GNN 1";

    internal GnnModel(GnnOptions options, GraphNet net, double threshold)
    {
        Options = options;
        Net = net;
        Threshold = threshold;
    }

    public GnnOptions Options { get; }

    /// <summary>The torch network: trained in place by <see cref="GnnTrainer"/>, which then calls <see cref="WeightsChanged"/>.</summary>
    public GraphNet Net { get; }

    /// <summary>Anomaly mode: the raw score (worst node's reconstruction error) above which a graph is an intrusion.</summary>
    public double Threshold { get; internal set; }

    public string Name => $"{Options.Arch.ToString().ToLowerInvariant()}-{Options.Mode.ToString().ToLowerInvariant()}";

    public static GnnModel Create(GnnOptions options)
    {
        TorchRuntime.EnsureAvailable();
        return new GnnModel(options, new GraphNet(options.Arch, options.EffectiveHidden, options.Layers), threshold: 0);
    }

    /// <summary>
    /// Scores in [0, 1] for each graph; 0.5 and above is an intrusion. Computed by <see cref="FrozenGraphNet"/> (managed
    /// code, one graph at a time), which is what classification and evaluation run; <see cref="PredictWithTorch"/> is the
    /// network itself, the reference the frozen copy is tested against.
    /// </summary>
    public double[] Predict(IReadOnlyList<GraphFeatures> graphs)
    {
        ArgumentNullException.ThrowIfNull(graphs);
        var frozen = Frozen;
        var scores = new double[graphs.Count];
        for (var i = 0; i < graphs.Count; i++)
        {
            var raw = frozen.Raw(graphs[i]);
            scores[i] = Options.Mode == TrainingMode.Supervised ? 1 / (1 + Math.Exp(-raw)) : ToScore(raw);
        }

        return scores;
    }

    /// <summary>The same scores from the torch network, batched: slower, and what <see cref="Predict"/> must agree with.</summary>
    public double[] PredictWithTorch(IReadOnlyList<GraphFeatures> graphs, int batchSize = 64)
    {
        var scores = new double[graphs.Count];
        Net.eval();
        using var noGrad = torch.no_grad();
        for (var start = 0; start < graphs.Count; start += batchSize)
        {
            using var scope = torch.NewDisposeScope();
            var slice = graphs.Skip(start).Take(batchSize).ToList();
            var batch = GraphBatch.Create(slice);
            var sliceScores = Options.Mode == TrainingMode.Supervised
                ? Probabilities(Net.GraphLogits(batch.X, batch))
                : GraphAnomalyScores(Net.NodeReconstructionError(batch.X, batch), batch).Select(ToScore).ToArray();
            sliceScores.CopyTo(scores, start);
        }

        return scores;
    }

    /// <summary>The weights as <see cref="Predict"/> uses them, copied from <see cref="Net"/> on first use.</summary>
    private FrozenGraphNet Frozen => _frozen ??= new FrozenGraphNet(Net, Options);

    private FrozenGraphNet? _frozen;

    /// <summary>Training changed <see cref="Net"/>'s weights: the next <see cref="Predict"/> copies them again.</summary>
    internal void WeightsChanged() => _frozen = null;

    /// <summary>The worst node's reconstruction error per graph: an attack is a few odd nodes in a graph of normal ones.</summary>
    internal static double[] GraphAnomalyScores(Tensor nodeErrors, GraphBatch batch)
    {
        var errors = nodeErrors.detach().cpu().data<float>().ToArray();
        var result = new double[batch.GraphCount];
        for (var g = 0; g < batch.GraphCount; g++)
        {
            var end = g + 1 < batch.GraphCount ? batch.NodeOffsets[g + 1] : errors.Length;
            var worst = 0f;
            for (var i = batch.NodeOffsets[g]; i < end; i++)
            {
                worst = Math.Max(worst, errors[i]);
            }

            result[g] = worst;
        }

        return result;
    }

    internal double ToScore(double raw) => Threshold <= 0 ? (raw > 0 ? 1 : 0) : raw / (raw + Threshold);

    private static double[] Probabilities(Tensor logits) =>
        [.. nn.functional.sigmoid(logits).detach().cpu().data<float>().ToArray().Select(p => (double)p)];

    public void Save(string path) =>
        ModelFile.Write(path, Magic, Net, (sha, length) => new ModelHeader(Options.Arch, Options.Mode, GraphFeatures.LayoutVersion,
            GraphFeatures.FeatureCount, GraphFeatures.RelationCount, Options.EffectiveHidden, Options.Layers, Threshold, sha, length));

    /// <exception cref="ModelFileException">Not a model file, corrupt, or for another feature layout.</exception>
    /// <exception cref="TorchUnavailableException">Torch cannot load on this machine.</exception>
    public static GnnModel Load(string path)
    {
        var (header, content, weightsStart) = ModelFile.Read<ModelHeader>(path, Magic, $"not a FaaSMon model file (it must start with \"{Magic}\")");
        if (header.LayoutVersion != GraphFeatures.LayoutVersion || header.FeatureCount != GraphFeatures.FeatureCount || header.RelationCount != GraphFeatures.RelationCount)
        {
            throw new ModelFileException(path,
                $"trained on feature layout {header.LayoutVersion} ({header.FeatureCount} features, {header.RelationCount} edge types); " +
                $"this build uses layout {GraphFeatures.LayoutVersion} ({GraphFeatures.FeatureCount}, {GraphFeatures.RelationCount}): retrain");
        }

        using var weights = ModelFile.Weights(path, header, content, weightsStart);
        TorchRuntime.EnsureAvailable();
        var options = new GnnOptions(header.Arch, header.Mode, header.Hidden, header.Layers);
        var net = new GraphNet(header.Arch, header.Hidden, header.Layers);
        try
        {
            net.load(weights, strict: true);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException or EndOfStreamException)
        {
            net.Dispose();
            throw new ModelFileException(path, $"weights do not fit a {header.Arch} network of {header.Layers}×{header.Hidden}: {e.Message}", e);
        }

        return new GnnModel(options, net, header.Threshold);
    }

    public void Dispose() => Net.Dispose();
}
