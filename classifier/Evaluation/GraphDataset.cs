using System.Text.Json;
using FaaSMon.Core;

namespace FaaSMon.Classifier.Evaluation;

/// <summary>A dataset that cannot be used, naming the file.</summary>
internal sealed class DatasetException(string problem, Exception? inner = null) : Exception(problem, inner);

/// <summary>One graph of a dataset, with the file it came from and its label ("benign" or an attack family).</summary>
internal sealed record DatasetGraph(string File, ProvenanceGraph Graph, string Label)
{
    public bool IsAttack => !string.Equals(Label, GraphDataset.BenignLabel, StringComparison.OrdinalIgnoreCase);
}

/// <summary>
/// A dataset is a directory of <see cref="ProvenanceGraph"/> JSON files (any depth), labelled by each graph's Label.
/// An optional <c>manifest.json</c> (<c>{"labels": {"relative/path.json": "benign"}}</c>) labels graphs that carry none
/// or relabels them without rewriting graph files.
/// </summary>
internal static class GraphDataset
{
    public const string BenignLabel = "benign";
    public const string ManifestName = "manifest.json";

    /// <exception cref="DatasetException">Missing directory, no graphs, unreadable graph files, unlabelled graphs.</exception>
    public static IReadOnlyList<DatasetGraph> Load(string directory)
    {
        if (!Directory.Exists(directory))
        {
            throw new DatasetException($"dataset directory {directory} does not exist");
        }

        var labels = ReadManifest(directory);
        var graphs = new List<DatasetGraph>();
        foreach (var file in Directory.EnumerateFiles(directory, "*.json", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var relative = Path.GetRelativePath(directory, file);
            if (relative == ManifestName)
            {
                continue;
            }

            ProvenanceGraph graph;
            try
            {
                graph = ProvenanceGraphJson.Deserialize(File.ReadAllText(file));
            }
            catch (InvalidDataException e)
            {
                throw new DatasetException($"{file}: {e.Message}", e);
            }

            var label = labels.GetValueOrDefault(relative) ?? graph.Label
                ?? throw new DatasetException($"{file}: graph {graph.GraphId} has no label (set Label, or list it in {ManifestName})");
            graphs.Add(new DatasetGraph(file, graph, label));
        }

        return graphs.Count == 0 ? throw new DatasetException($"no graph files (*.json) in {directory}") : graphs;
    }

    /// <summary>Writes graphs as a dataset directory, one file per graph.</summary>
    public static void Write(string directory, IEnumerable<ProvenanceGraph> graphs)
    {
        Directory.CreateDirectory(directory);
        foreach (var graph in graphs)
        {
            File.WriteAllText(Path.Combine(directory, $"{graph.GraphId}.json"), ProvenanceGraphJson.Serialize(graph));
        }
    }

    private static Dictionary<string, string> ReadManifest(string directory)
    {
        var path = Path.Combine(directory, ManifestName);
        if (!File.Exists(path))
        {
            return [];
        }

        try
        {
            using var document = JsonDocument.Parse(File.ReadAllText(path));
            return document.RootElement.GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString() ?? BenignLabel);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new DatasetException($"{path}: expected {{\"labels\": {{\"file.json\": \"label\"}}}}: {e.Message}", e);
        }
    }
}
