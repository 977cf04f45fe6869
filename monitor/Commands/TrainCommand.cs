using System.CommandLine;
using FaaSMon.Classifier.Evaluation;
using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Native;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon train</c>: a model file from a dataset directory of provenance graphs.</summary>
internal static class TrainCommand
{
    public static readonly Option<DirectoryInfo> Data = new("--data")
    {
        Description = "Dataset: a directory of ProvenanceGraph JSON files (labelled by each graph's label, or manifest.json).",
        Required = true,
    };

    public static readonly Option<string> Arch = new("--arch")
    {
        Description = "Message passing: gin, sage or gcn (the FaaSMon paper's baseline); with --task network, tgat (the default there) or gcn.",
        DefaultValueFactory = _ => "gin",
    };

    public static readonly Option<string> Mode = new("--mode")
    {
        Description = "supervised (benign and attack graphs) or anomaly (benign graphs only; flags what it never saw).",
        DefaultValueFactory = _ => "supervised",
    };

    public static readonly Option<int> Epochs = new("--epochs") { Description = "Most training epochs (supervised training stops earlier when a held-out tenth stops improving, and keeps that epoch's weights).", DefaultValueFactory = _ => 30 };

    public static readonly Option<int> Hidden = new("--hidden") { Description = "Width of node embeddings.", DefaultValueFactory = _ => 32 };

    public static readonly Option<int> Layers = new("--layers") { Description = "Message-passing layers.", DefaultValueFactory = _ => 3 };

    public static readonly Option<int> Seed = new("--seed") { Description = "Random seed (weights, batch order).", DefaultValueFactory = _ => 42 };

    private static readonly Option<FileInfo> ModelFile = new("--model")
    {
        Description = "The model file to write.",
        Required = true,
    };

    public static Command Create()
    {
        var command = new Command("train",
            "Train a graph classifier on a dataset of provenance graphs and write a model file (serve --model); " +
            "with --task network, a TGAT (or GCN) on netcollect's windows (serve --network-model).")
        {
            Data, ModelFile, Arch, Mode, Epochs, Hidden, Layers, Seed, LocalFaasCommand.Verbose, NetworkEvalTask.Task,
        };
        command.SetAction(parse =>
        {
            using var logging = CliLogging.Create(parse.GetValue(LocalFaasCommand.Verbose));
            if (NetworkEvalTask.Selected(parse))
            {
                return NetworkEvalTask.Train(parse, parse.GetValue(ModelFile)!.FullName, logging);
            }

            return Run(() =>
            {
                var dataset = GraphDataset.Load(parse.GetValue(Data)!.FullName);
                if (parse.GetValue(Arch) == "tgat")
                {
                    throw new ArgumentException("--arch tgat is a network model: add --task network");
                }

                var options = GnnOptions(parse);
                var graphs = dataset.Select(d => new LabeledGraph(GraphFeatures.From(d.Graph), d.IsAttack, d.Label)).ToList();
                Console.WriteLine($"{dataset.Count} graphs: {string.Join(", ", dataset.GroupBy(d => d.Label).OrderBy(g => g.Key, StringComparer.Ordinal).Select(g => $"{g.Count()} {g.Key}"))}");
                var trainer = new GnnTrainer(logging.CreateLogger<GnnTrainer>());
                using var model = trainer.Train(options, Training(parse), graphs,
                    r => Console.WriteLine($"epoch {r.Epoch,3}: loss {r.Loss:F4}" + (double.IsNaN(r.ValidationLoss) ? "" : $", validation {r.ValidationLoss:F4}") + $" ({r.Elapsed.TotalMilliseconds:F0} ms)"));
                var path = parse.GetValue(ModelFile)!.FullName;
                model.Save(path);
                Console.WriteLine($"{model.Name} written to {path}" + (options.Mode == TrainingMode.Anomaly ? $" (threshold {model.Threshold:G4})" : ""));
            });
        });
        return command;
    }

    // Once, in the static constructor: train and eval share these options, and each validator must run once.
    static TrainCommand()
    {
        Arch.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() != "tgat" && !Enum.TryParse<GnnArch>(r.GetValueOrDefault<string>(), ignoreCase: true, out _))
            {
                r.AddError("--arch must be gin, sage or gcn (or tgat with --task network)");
            }
        });
        Mode.Validators.Add(r =>
        {
            if (!Enum.TryParse<TrainingMode>(r.GetValueOrDefault<string>(), ignoreCase: true, out _))
            {
                r.AddError("--mode must be supervised or anomaly");
            }
        });
        Epochs.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
            {
                r.AddError("--epochs must be 1 or more");
            }
        });
    }

    public static GnnOptions GnnOptions(ParseResult parse, string? arch = null) => new(
        Enum.Parse<GnnArch>(arch ?? parse.GetValue(Arch)!, ignoreCase: true),
        Enum.Parse<TrainingMode>(parse.GetValue(Mode)!, ignoreCase: true),
        parse.GetValue(Hidden),
        parse.GetValue(Layers));

    public static TrainingOptions Training(ParseResult parse) => new(Epochs: parse.GetValue(Epochs), Seed: parse.GetValue(Seed));

    /// <summary>Runs a classifier command; the errors a user can fix are one line on stderr and exit code 2, not a stack trace.</summary>
    public static int Run(Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (Exception e) when (e is TorchUnavailableException or DatasetException or ModelFileException or InvalidGraphException or ArgumentException or IOException)
        {
            Console.Error.WriteLine($"faasmon: {e.Message}");
            return 2;
        }
    }
}
