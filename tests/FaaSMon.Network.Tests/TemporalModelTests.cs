using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Temporal;
using FaaSMon.Core;

namespace FaaSMon.Network.Tests;

/// <summary>TGAT and GCN learn from generated windows: benign request/response flows against scan-like bursts.</summary>
public sealed class TemporalModelTests
{
    [Theory]
    [InlineData("tgat")]
    [InlineData("gcn")]
    public void Model_learns_loss_falls_and_beats_chance_on_held_out_windows(string name)
    {
        var arch = Enum.Parse<TemporalArch>(name, ignoreCase: true);
        var random = new Random(4);
        var graphs = Enumerable.Range(0, 160).Select(i => Generated(random, attack: i % 2 == 1)).ToList();
        var train = graphs.Take(120).Select(g => new LabeledTemporalGraph(TemporalFeatures.From(g), g.IsAttack, g.Label)).ToList();
        var test = graphs.Skip(120).ToList();
        var losses = new List<double>();
        var trainer = new TemporalTrainer(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance);

        using var model = trainer.Train(new TemporalOptions(arch, Hidden: 16), new TrainingOptions(Epochs: 8, BatchSize: 16, LearningRate: 0.01, Seed: 1), train, r => losses.Add(r.Loss));

        Assert.True(losses[^1] < losses[0] * 0.7, $"loss {string.Join(" → ", losses.Select(l => l.ToString("F3", System.Globalization.CultureInfo.InvariantCulture)))}");
        var scores = model.Predict([.. test.Select(TemporalFeatures.From)]);
        var accuracy = test.Zip(scores).Count(p => p.First.IsAttack == (p.Second >= 0.5)) / (double)test.Count;
        Assert.True(accuracy >= 0.8, $"held-out accuracy {accuracy:F3} (chance 0.5)");
    }

    [Fact]
    public void Saved_weights_load_and_score_the_same()
    {
        var random = new Random(5);
        var graphs = Enumerable.Range(0, 40).Select(i => Generated(random, attack: i % 2 == 1)).ToList();
        var labeled = graphs.Select(g => new LabeledTemporalGraph(TemporalFeatures.From(g), g.IsAttack, g.Label)).ToList();
        var options = new TemporalOptions(TemporalArch.Tgat, Hidden: 16);
        using var model = new TemporalTrainer(Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance)
            .Train(options, new TrainingOptions(Epochs: 2, BatchSize: 16, Seed: 2), labeled);
        var path = Path.Combine(Path.GetTempPath(), $"faasmon-tgat-{Guid.NewGuid():N}.bin");
        try
        {
            model.Save(path, windowSeconds: 2);
            using var loaded = TemporalModel.Load(path, out var window);
            Assert.Equal(2, window);
            Assert.Equal(options, loaded.Options);
            var features = labeled.Select(g => g.Features).ToList();
            Assert.Equal(model.Predict(features), loaded.Predict(features));

            // one flipped weight byte, a cut file, another kind of file: each a clear ModelFileException
            var bytes = File.ReadAllBytes(path);
            bytes[^10] ^= 0x5A;
            File.WriteAllBytes(path, bytes);
            Assert.Contains("checksum", Assert.Throws<ModelFileException>(() => TemporalModel.Load(path, out _)).Message, StringComparison.Ordinal);
            File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
            Assert.Contains("truncated", Assert.Throws<ModelFileException>(() => TemporalModel.Load(path, out _)).Message, StringComparison.Ordinal);
            File.WriteAllText(path, "FAASMON-GNN 1\n{}\n");
            Assert.Contains("network model", Assert.Throws<ModelFileException>(() => TemporalModel.Load(path, out _)).Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Samples_round_trip_through_json_and_wrong_versions_are_refused()
    {
        var graph = Generated(new Random(6), attack: true);
        var back = TemporalGraph.FromJson(graph.ToJson());
        Assert.Equal(graph.Nodes, back.Nodes);
        Assert.Equal(graph.Edges, back.Edges);
        Assert.Equal(graph.Counts, back.Counts);
        Assert.Throws<InvalidDataException>(() => TemporalGraph.FromJson(graph.ToJson().Replace("\"formatVersion\":1", "\"formatVersion\":9", StringComparison.Ordinal)));
        Assert.Throws<InvalidDataException>(() => TemporalGraph.FromJson("{\"formatVersion\":1}"));
    }

    /// <summary>
    /// Benign: a few clients each making request/response flows to services. Attack: the same, plus one endpoint opening
    /// short SYN/RST flows to many ports in quick succession.
    /// </summary>
    internal static TemporalGraph Generated(Random random, bool attack)
    {
        var nodes = new List<string>();
        var edges = new List<FlowEdge>();
        int Node(string name)
        {
            var i = nodes.IndexOf(name);
            if (i < 0)
            {
                nodes.Add(name);
                i = nodes.Count - 1;
            }

            return i;
        }

        var services = new[] { "10.0.0.10:80", "10.0.0.11:6379", "10.0.0.12:5432" };
        for (var k = random.Next(4, 12); k > 0; k--)
        {
            var client = Node($"10.0.0.20:{random.Next(40000, 60000)}");
            var packets = random.Next(4, 20);
            edges.Add(new FlowEdge(client, Node(services[random.Next(3)]), random.NextDouble() * 2, random.NextDouble() * 0.2, FlowProtocol.Tcp,
                packets, packets * random.Next(60, 300), packets, packets * random.Next(100, 2000), new TcpFlagCounts(2, (2 * packets) - 1, 2, 0, packets)));
        }

        if (attack)
        {
            var start = random.NextDouble();
            for (var k = random.Next(3, 12); k > 0; k--)
            {
                edges.Add(new FlowEdge(Node($"10.0.0.66:{random.Next(40000, 60000)}"), Node($"10.0.0.{random.Next(10, 13)}:{random.Next(1, 1024)}"),
                    start + (k * 0.002), 0.0005, FlowProtocol.Tcp, 1, 74, 1, 54, new TcpFlagCounts(1, 1, 0, 1, 0)));
            }
        }

        return new TemporalGraph(TemporalGraph.CurrentFormatVersion, attack ? "port-scan" : TemporalGraph.BenignLabel, "generated", DateTimeOffset.UnixEpoch, 2,
            nodes, [.. edges.OrderBy(e => e.StartSeconds)], new CaptureCounts(edges.Count * 4, 0, 0, 0));
    }
}
