using System.CommandLine;
using System.Diagnostics;
using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Inference;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Native;
using FaaSMon.Classifier.Rules;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Monitor.Commands;

/// <summary>
/// <c>faasmon bench classifier</c>: on generated hello-retail-shaped graphs, per architecture: training time per epoch,
/// latency to classify one graph of up to --nodes nodes (model alone, and the full verdict: features, rules, model,
/// explanation), and batched throughput.
/// </summary>
internal static class ClassifierBenchCommand
{
    private static readonly Option<int> Nodes = new("--nodes") { Description = "Largest graph for the latency figures (nodes).", DefaultValueFactory = _ => 1000 };
    private static readonly Option<int> Graphs = new("--graphs") { Description = "Graphs to time one at a time.", DefaultValueFactory = _ => 200 };
    private static readonly Option<int> TrainGraphs = new("--train-graphs") { Description = "Training set size (20-200 nodes each).", DefaultValueFactory = _ => 400 };
    private static readonly Option<int> Epochs = new("--epochs") { Description = "Epochs timed.", DefaultValueFactory = _ => 3 };
    private static readonly Option<string[]> Archs = new("--arch")
    {
        Description = "Architectures (gin, sage, gcn).",
        AllowMultipleArgumentsPerToken = true,
        DefaultValueFactory = _ => ["gin", "sage", "gcn"],
    };

    private static readonly Option<DirectoryInfo?> WriteDataset = new("--write-dataset")
    {
        Description = "Also write the generated training graphs as a labelled dataset directory (for faasmon train/eval), then bench.",
    };

    public static Command Create()
    {
        var command = new Command("classifier",
            "Classifier figures on generated graphs: training ms/epoch, per-graph latency p50/p99 for graphs of up to 1k nodes " +
            "(model only and full verdict with rules and explanation), graphs/s batched.")
        {
            Nodes, Graphs, TrainGraphs, Epochs, Archs, WriteDataset,
        };
        command.SetAction(parse => TrainCommand.Run(() => Run(parse)));
        return command;
    }

    private static void Run(ParseResult parse)
    {
        TorchRuntime.EnsureAvailable();
        var maxNodes = Math.Max(20, parse.GetValue(Nodes));
        var count = Math.Max(10, parse.GetValue(Graphs));
        var random = new Random(1);
        var families = SyntheticGraphs.AttackFamilies.Prepend(SyntheticGraphs.Benign).ToArray();
        var generated = SyntheticGraphs.Dataset(seed: 2, benign: parse.GetValue(TrainGraphs) / 2, perFamily: parse.GetValue(TrainGraphs) / 6, 20, 200);
        if (parse.GetValue(WriteDataset) is { } directory)
        {
            FaaSMon.Classifier.Evaluation.GraphDataset.Write(directory.FullName, generated);
            Console.WriteLine($"{generated.Count} generated graphs written to {directory.FullName}");
        }

        var train = generated
            .Select(g => new LabeledGraph(GraphFeatures.From(g), g.Label != SyntheticGraphs.Benign, g.Label!)).ToList();
        // Latency graphs: between half and all of --nodes, so "≤ 1k nodes" is measured near its worst case.
        var big = Enumerable.Range(0, count).Select(i => SyntheticGraphs.Create(random, families[i % families.Length], random.Next(maxNodes / 2, maxNodes + 1))).ToList();
        var bigFeatures = big.Select(GraphFeatures.From).ToList();
        var rules = RuleSet.LoadDefault();
        Console.WriteLine($"torch {torch_version()} on {Environment.ProcessorCount} CPUs, {TorchSharp.torch.get_num_threads()} torch thread(s) (FAASMON_TORCH_THREADS); " +
            $"training set {train.Count} graphs ({train.Sum(g => g.Features.NodeCount) / train.Count} nodes avg); " +
            $"latency set {big.Count} graphs of {big.Min(g => g.Nodes.Count)}-{big.Max(g => g.Nodes.Count)} nodes ({big.Average(g => g.Edges.Count):F0} edges avg)");
        Console.WriteLine("model: the network's forward pass on one graph; verdict: features + rules + model for one graph, and for attacks the explanation (a backward pass)");
        Console.WriteLine($"{"model",-16} {"train ms/epoch",15} {"model p50/p99 ms",17} {"benign verdict p50/p99",23} {"attack verdict p50/p99",23} {"graphs/s batched",17}");
        foreach (var arch in parse.GetValue(Archs)!)
        {
            var options = new GnnOptions(Enum.Parse<GnnArch>(arch, ignoreCase: true));
            var epochs = new List<double>();
            using var model = new GnnTrainer(NullLogger<GnnTrainer>.Instance).Train(options, new TrainingOptions(Epochs: Math.Max(1, parse.GetValue(Epochs))), train,
                r => epochs.Add(r.Elapsed.TotalMilliseconds));
            var classifier = new GraphClassifier(model, rules);

            // Warm up the JIT and torch's allocator before timing.
            for (var i = 0; i < 10; i++)
            {
                model.Predict([bigFeatures[i % bigFeatures.Count]]);
                classifier.Classify(big[i % big.Count]);
            }

            var modelOnly = big.Select((_, i) => Time(() => model.Predict([bigFeatures[i]]))).ToList();
            var benignVerdict = big.Where(g => g.Label == SyntheticGraphs.Benign).Select(g => Time(() => classifier.Classify(g))).ToList();
            var attackVerdict = big.Where(g => g.Label != SyntheticGraphs.Benign).Select(g => Time(() => classifier.Classify(g))).ToList();
            var clock = Stopwatch.StartNew();
            model.Predict(bigFeatures, batchSize: 32);
            var throughput = bigFeatures.Count / clock.Elapsed.TotalSeconds;
            static string Pair(List<double> values) => $"{Percentile(values, 0.5):F2} / {Percentile(values, 0.99):F2}";
            Console.WriteLine($"{model.Name,-16} {epochs.Average(),15:F0} {Pair(modelOnly),17} {Pair(benignVerdict),23} {Pair(attackVerdict),23} {throughput,17:F0}");
        }

        static string torch_version() => TorchSharp.torch.__version__;
    }

    private static double Time(Action action)
    {
        var start = Stopwatch.GetTimestamp();
        action();
        return Stopwatch.GetElapsedTime(start).TotalMilliseconds;
    }

    private static double Percentile(List<double> values, double quantile)
    {
        var sorted = values.Order().ToList();
        return sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(quantile * sorted.Count) - 1)];
    }
}
