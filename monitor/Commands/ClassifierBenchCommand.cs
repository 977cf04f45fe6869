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
/// explanation), throughput, and the same figures for the torch network beside them (the reference the frozen copy must match).
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
            $"latency set {big.Count} graphs of {big.Min(g => g.Nodes.Count)}-{big.Max(g => g.Nodes.Count)} nodes ({big.Average(g => g.Edges.Count):F0} edges avg); load average {LoadAverage()}");
        Console.WriteLine("model: the score of one graph from its features (FrozenGraphNet, what verdicts use); verdict: features + rules + model for one graph, " +
            "and for attacks the explanation (a backward pass in torch)");
        Console.WriteLine($"{"model",-16} {"train ms/epoch",15} {"model p50/p99 ms",17} {"benign verdict p50/p99",23} {"attack verdict p50/p99",23} {"graphs/s",9}");
        var breakdowns = new List<string>();
        foreach (var arch in parse.GetValue(Archs)!)
        {
            var options = new GnnOptions(Enum.Parse<GnnArch>(arch, ignoreCase: true));
            var epochs = new List<double>();
            using var model = new GnnTrainer(NullLogger<GnnTrainer>.Instance).Train(options, new TrainingOptions(Epochs: Math.Max(1, parse.GetValue(Epochs))), train,
                r => epochs.Add(r.Elapsed.TotalMilliseconds));
            var classifier = new GraphClassifier(model, rules);

            // Warm up before timing: torch's allocator, and the JIT, which compiles a method quickly first and again,
            // optimised, once it has run 30 times (in the background, after a pause): a server runs the second code.
            for (var round = 0; round < 2; round++)
            {
                for (var i = 0; i < 40; i++)
                {
                    model.Predict([bigFeatures[i % bigFeatures.Count]]);
                    model.PredictWithTorch([bigFeatures[i % bigFeatures.Count]]);
                    classifier.Classify(big[i % big.Count]);
                    rules.Evaluate(big[i % big.Count]);
                    GraphFeatures.From(big[i % big.Count]);
                }

                Thread.Sleep(300);
            }

            // One graph at a time, each stage timed on the same graph one after the other, so the torch reference and the
            // frozen network see the same load.
            var stages = new Dictionary<string, List<double>>(StringComparer.Ordinal);
            void Add(string stage, double milliseconds) => (stages.TryGetValue(stage, out var list) ? list : stages[stage] = []).Add(milliseconds);
            for (var i = 0; i < big.Count; i++)
            {
                Add("features", Time(() => GraphFeatures.From(big[i])));
                Add("rules", Time(() => rules.Evaluate(big[i])));
                Add("model", Time(() => model.Predict([bigFeatures[i]])));
                TorchStages(model, bigFeatures[i], Add);
            }

            // A benign graph the model or a rule flags gets an explanation too (a false alarm costs what an attack does).
            var flagged = 0;
            var benignVerdict = big.Where(g => g.Label == SyntheticGraphs.Benign).Select(g => Time(() => flagged += classifier.Classify(g).IsIntrusion ? 1 : 0)).ToList();
            var attackVerdict = big.Where(g => g.Label != SyntheticGraphs.Benign).Select(g => Time(() => classifier.Classify(g))).ToList();
            var clock = Stopwatch.StartNew();
            var scores = model.Predict(bigFeatures);
            var throughput = bigFeatures.Count / clock.Elapsed.TotalSeconds;
            clock.Restart();
            var torchScores = model.PredictWithTorch(bigFeatures, batchSize: 32);
            var torchThroughput = bigFeatures.Count / clock.Elapsed.TotalSeconds;
            var difference = scores.Zip(torchScores, (a, b) => Math.Abs(a - b)).Max();
            Console.WriteLine($"{model.Name,-16} {epochs.Average(),15:F0} {Pair(stages["model"]),17} {Pair(benignVerdict),23} {Pair(attackVerdict),23} {throughput,9:F0}");
            breakdowns.Add($"{model.Name,-16} {P50(stages["features"]),9:F2} {P50(stages["rules"]),6:F2} {P50(stages["model"]),6:F2} " +
                $"{P50(stages["tensors"]),8:F2} {P50(stages["forward"]),8:F2} {P50(stages["readout"]),8:F2} {Pair(stages["torch"]),17} {torchThroughput,16:F0} {difference,11:G2} " +
                $"{$"{flagged}/{benignVerdict.Count}",14}");
        }

        Console.WriteLine();
        Console.WriteLine("Breakdown, p50 ms per graph of the latency set. torch: the same network run by torch on one graph (the path verdicts took before FrozenGraphNet): " +
            "tensors from the features, forward pass, reading the score back; its batched throughput (32 graphs a batch); |Δscore|: the largest difference between the two paths' scores; " +
            "benign flagged: benign latency graphs the verdict called intrusions (each also paid for an explanation).");
        Console.WriteLine($"{"model",-16} {"features",9} {"rules",6} {"model",6} {"tensors",8} {"forward",8} {"readout",8} {"torch p50/p99",17} {"torch graphs/s",16} {"|Δscore|",11} {"benign flagged",14}");
        breakdowns.ForEach(Console.WriteLine);
        Console.WriteLine($"load average {LoadAverage()}");

        static string torch_version() => TorchSharp.torch.__version__;
        static string Pair(List<double> values) => $"{Percentile(values, 0.5):F2} / {Percentile(values, 0.99):F2}";
        static double P50(List<double> values) => Percentile(values, 0.5);
    }

    /// <summary>The torch path for one graph, each part timed: tensors, forward pass, score back to managed memory.</summary>
    private static void TorchStages(GnnModel model, GraphFeatures features, Action<string, double> add)
    {
        model.Net.eval();
        using var noGrad = TorchSharp.torch.no_grad();
        using var scope = TorchSharp.torch.NewDisposeScope();
        var start = Stopwatch.GetTimestamp();
        var batch = GraphBatch.Create([features]);
        var tensors = Stopwatch.GetTimestamp();
        var logits = model.Net.GraphLogits(batch.X, batch);
        var forward = Stopwatch.GetTimestamp();
        _ = TorchSharp.torch.nn.functional.sigmoid(logits).data<float>().ToArray();
        var readout = Stopwatch.GetTimestamp();
        add("tensors", Stopwatch.GetElapsedTime(start, tensors).TotalMilliseconds);
        add("forward", Stopwatch.GetElapsedTime(tensors, forward).TotalMilliseconds);
        add("readout", Stopwatch.GetElapsedTime(forward, readout).TotalMilliseconds);
        add("torch", Stopwatch.GetElapsedTime(start, readout).TotalMilliseconds);
    }

    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "unknown";
        }
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
