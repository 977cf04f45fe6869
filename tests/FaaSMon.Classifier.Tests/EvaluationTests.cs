using FaaSMon.Classifier.Evaluation;
using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Models;
using FaaSMon.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Classifier.Tests;

public sealed class EvaluationTests : IDisposable
{
    private readonly DirectoryInfo _directory = Directory.CreateTempSubdirectory("faasmon-eval-");

    public void Dispose() => _directory.Delete(recursive: true);

    [Fact]
    public void Kfold_and_leave_one_family_out_write_csv_and_png_from_a_dataset_directory()
    {
        var data = Path.Combine(_directory.FullName, "data");
        GraphDataset.Write(data, SyntheticGraphs.Dataset(seed: 21, benign: 30, perFamily: 10));
        var dataset = GraphDataset.Load(data);
        Assert.Equal(60, dataset.Count);

        var evaluator = new Evaluator(new GnnTrainer(NullLogger<GnnTrainer>.Instance), NullLogger<Evaluator>.Instance);
        var out_ = Path.Combine(_directory.FullName, "out");
        var report = evaluator.Run(dataset, new GnnOptions(GnnArch.Sage), new TrainingOptions(Epochs: 8, BatchSize: 16, LearningRate: 0.01), folds: 3, out_);

        Assert.Equal(3, report.Folds.Count);
        Assert.All(report.Folds, f => Assert.Equal(20, f.Metrics.Count));
        var csv = File.ReadAllLines(Path.Combine(out_, "kfold-sage-supervised.csv"));
        Assert.Equal("fold,graphs,tp,fp,tn,fn,accuracy,precision,recall,f1,macro_f1,roc_auc", csv[0]);
        Assert.Equal(6, csv.Length);
        Assert.StartsWith("mean,", csv[4], StringComparison.Ordinal);
        Assert.StartsWith("sd,", csv[5], StringComparison.Ordinal);
        foreach (var png in new[] { "confusion-sage-supervised.png", "roc-sage-supervised.png" })
        {
            var bytes = File.ReadAllBytes(Path.Combine(out_, png));
            Assert.True(bytes.Length > 5_000, $"{png} is {bytes.Length} bytes");
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, bytes[..4]);
        }

        Assert.Equal(SyntheticGraphs.AttackFamilies.Order(StringComparer.Ordinal), report.LeftOut.Select(f => f.Family));
        var lofo = File.ReadAllLines(Path.Combine(out_, "lofo-sage-supervised.csv"));
        Assert.Equal("left_out_family,attack_graphs,recall,benign_graphs,benign_fpr", lofo[0]);
        Assert.Equal(4, lofo.Length);
    }

    [Fact]
    public void The_pyg_export_is_a_valid_npz_with_every_graph()
    {
        var data = Path.Combine(_directory.FullName, "npz-data");
        var graphs = SyntheticGraphs.Dataset(seed: 24, benign: 4, perFamily: 2);
        GraphDataset.Write(data, graphs);
        var dataset = GraphDataset.Load(data);
        var path = Path.Combine(_directory.FullName, "data.npz");
        PygExport.Write(path, dataset);

        using var zip = System.IO.Compression.ZipFile.OpenRead(path);
        string[] expected = ["x", "edge_index", "edge_type", "node_ptr", "edge_ptr", "y", "family", "families"];
        Assert.Equal(expected.Select(n => n + ".npy"), zip.Entries.Select(e => e.FullName));
        (string Header, byte[] Data) Read(string name)
        {
            using var stream = new MemoryStream();
            zip.GetEntry(name + ".npy")!.Open().CopyTo(stream);
            var bytes = stream.ToArray();
            Assert.Equal(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 1, 0 }, bytes[..8]);
            var length = bytes[8] | (bytes[9] << 8);
            Assert.Equal(0, (10 + length) % 64);
            return (System.Text.Encoding.ASCII.GetString(bytes, 10, length), bytes[(10 + length)..]);
        }

        var nodes = dataset.Sum(d => d.Graph.Nodes.Count);
        var edges = dataset.Sum(d => d.Graph.Edges.Count);
        var (xHeader, x) = Read("x");
        Assert.Contains($"'shape': ({nodes}, {GraphFeatures.FeatureCount})", xHeader, StringComparison.Ordinal);
        Assert.Equal(nodes * GraphFeatures.FeatureCount * 4, x.Length);
        var (edgeHeader, edgeIndex) = Read("edge_index");
        Assert.Contains($"'shape': (2, {edges})", edgeHeader, StringComparison.Ordinal);
        var nodePtr = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(Read("node_ptr").Data).ToArray();
        Assert.Equal(nodes, nodePtr[^1]);
        var y = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, long>(Read("y").Data).ToArray();
        Assert.Equal(dataset.Select(d => d.IsAttack ? 1L : 0L), y);
        Assert.Contains("'descr': '<U14'", Read("families").Header, StringComparison.Ordinal);
    }

    [Fact]
    public void Metrics_match_hand_counts()
    {
        bool[] truth = [true, true, true, false, false, false, false];
        double[] scores = [0.9, 0.8, 0.3, 0.6, 0.1, 0.2, 0.05];
        var m = Metrics.From(truth, scores);
        Assert.Equal((2, 1, 3, 1), (m.TruePositives, m.FalsePositives, m.TrueNegatives, m.FalseNegatives));
        Assert.Equal(5.0 / 7, m.Accuracy, 6);
        Assert.Equal(2.0 / 3, m.F1, 6);
        Assert.Equal(((2.0 / 3) + 0.75) / 2, m.MacroF1, 6);
        // 12 attack/benign pairs; 0.3 ranks below the benign 0.6, every other pair is in order.
        Assert.Equal(11.0 / 12, m.RocAuc, 6);
        Assert.Equal(0.5, Metrics.AreaUnderRoc([true, false], [0.5, 0.5]));
    }

    [Fact]
    public void Folds_are_stratified_by_family()
    {
        var graphs = ModelTests.Labeled(SyntheticGraphs.Dataset(seed: 22, benign: 25, perFamily: 10));
        var folds = Evaluator.StratifiedFolds(graphs, 5, seed: 1);
        foreach (var family in graphs.GroupBy(g => g.Family))
        {
            var perFold = Enumerable.Range(0, 5).Select(f => graphs.Where((g, i) => g.Family == family.Key && folds[i] == f).Count()).ToList();
            Assert.True(perFold.Max() - perFold.Min() <= 1, $"{family.Key}: {string.Join(",", perFold)}");
        }
    }

    [Fact]
    public void Dataset_errors_name_the_file()
    {
        Assert.Throws<DatasetException>(() => GraphDataset.Load(Path.Combine(_directory.FullName, "missing")));
        var data = Directory.CreateDirectory(Path.Combine(_directory.FullName, "bad")).FullName;
        Assert.Contains("no graph files", Assert.Throws<DatasetException>(() => GraphDataset.Load(data)).Message, StringComparison.Ordinal);

        File.WriteAllText(Path.Combine(data, "broken.json"), "{\"graphId\": ");
        Assert.Contains("broken.json", Assert.Throws<DatasetException>(() => GraphDataset.Load(data)).Message, StringComparison.Ordinal);

        var unlabelled = SyntheticGraphs.Create(new Random(1), SyntheticGraphs.Benign) with { Label = null };
        File.WriteAllText(Path.Combine(data, "broken.json"), ProvenanceGraphJson.Serialize(unlabelled));
        Assert.Contains("no label", Assert.Throws<DatasetException>(() => GraphDataset.Load(data)).Message, StringComparison.Ordinal);

        File.WriteAllText(Path.Combine(data, GraphDataset.ManifestName), "{\"labels\": {\"broken.json\": \"shell\"}}");
        Assert.Equal("shell", Assert.Single(GraphDataset.Load(data)).Label);
    }

    [Fact]
    public void Too_few_graphs_of_a_label_for_the_folds_is_a_clear_error()
    {
        var data = Path.Combine(_directory.FullName, "small");
        GraphDataset.Write(data, SyntheticGraphs.Dataset(seed: 23, benign: 10, perFamily: 2));
        var evaluator = new Evaluator(new GnnTrainer(NullLogger<GnnTrainer>.Instance), NullLogger<Evaluator>.Instance);
        var error = Assert.Throws<DatasetException>(() => evaluator.Run(GraphDataset.Load(data), new GnnOptions(), new TrainingOptions(Epochs: 1), 5, _directory.FullName));
        Assert.Contains("at least 5 graphs of every label", error.Message, StringComparison.Ordinal);
    }
}
