using System.Text.Json;
using FaaSMon.Core;

namespace FaaSMon.Grapher.Dataset;

/// <summary>What a dataset holds, per scope and label (the manifest's counts).</summary>
public sealed record DatasetCounts(IReadOnlyDictionary<string, int> Invocations, IReadOnlyDictionary<string, int> Traces, int Unlabelled);

/// <summary>
/// Writes a dataset as the classifier reads it (classifier/README.md): one graph JSON file per invocation under
/// <c>invocations/&lt;function&gt;/</c> and per trace under <c>traces/</c>, each written as soon as it is built (so a crash
/// loses nothing), then labelled from the ground truth at the end, with <c>manifest.json</c>: <c>labels</c> (relative path →
/// label, the form GraphDataset reads) and <c>counts</c> per scope and label. Each scope folder gets its own manifest
/// too, so <c>faasmon eval --data DIR/invocations</c> reads just the invocation graphs. The format is documented in
/// grapher/README.md.
/// </summary>
public sealed class DatasetWriter
{
    public const string InvocationsFolder = "invocations";
    public const string TracesFolder = "traces";
    public const string ManifestName = "manifest.json";

    private static readonly JsonSerializerOptions ManifestJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    private readonly string _root;
    private readonly List<(string Relative, ProvenanceGraph Graph)> _written = [];
    private readonly Lock _gate = new();

    public DatasetWriter(string root)
    {
        _root = Path.GetFullPath(root);
        Directory.CreateDirectory(Path.Combine(_root, InvocationsFolder));
        Directory.CreateDirectory(Path.Combine(_root, TracesFolder));
    }

    public string Root => _root;

    public int Written
    {
        get
        {
            lock (_gate)
            {
                return _written.Count;
            }
        }
    }

    /// <summary>Writes one graph (unlabelled or labelled) and remembers it for <see cref="Label"/>.</summary>
    public string Write(ProvenanceGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var relative = graph.Scope == GraphScope.Trace
            ? Path.Combine(TracesFolder, FileName(graph.GraphId))
            : Path.Combine(InvocationsFolder, Safe(graph.Function ?? "unknown"), FileName(graph.GraphId));
        WriteFile(relative, graph);
        lock (_gate)
        {
            _written.Add((relative, graph));
        }

        return relative;
    }

    /// <summary>Labels every graph written so far from the ground truth, rewrites them, and writes the manifests.</summary>
    public DatasetCounts Label(GroundTruthLabels labels, IReadOnlyDictionary<string, object>? about = null)
    {
        ArgumentNullException.ThrowIfNull(labels);
        List<(string Relative, ProvenanceGraph Graph)> written;
        lock (_gate)
        {
            written = [.. _written];
        }

        var all = new SortedDictionary<string, string>(StringComparer.Ordinal);
        var invocations = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var traces = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var unlabelled = 0;
        foreach (var (relative, graph) in written)
        {
            var label = labels.ForGraph(graph);
            if (label is null)
            {
                // traffic the driver did not send (a health probe, another runtime's functions): not part of the dataset
                File.Delete(Path.Combine(_root, relative));
                unlabelled++;
                continue;
            }

            WriteFile(relative, graph with { Label = label });
            all[relative] = label;
            var counts = graph.Scope == GraphScope.Trace ? traces : invocations;
            counts[label] = counts.GetValueOrDefault(label) + 1;
        }

        var result = new DatasetCounts(invocations, traces, unlabelled);
        WriteManifest(_root, all, new { invocation = invocations, trace = traces, unlabelled }, about);
        foreach (var folder in new[] { InvocationsFolder, TracesFolder })
        {
            var prefix = folder + Path.DirectorySeparatorChar;
            var scoped = all.Where(p => p.Key.StartsWith(prefix, StringComparison.Ordinal)).ToDictionary(p => p.Key[prefix.Length..], p => p.Value, StringComparer.Ordinal);
            WriteManifest(Path.Combine(_root, folder), scoped, folder == InvocationsFolder ? invocations : traces, about);
        }

        return result;
    }

    private void WriteFile(string relative, ProvenanceGraph graph)
    {
        var path = Path.Combine(_root, relative);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, ProvenanceGraphJson.Serialize(graph));
        File.Move(temporary, path, overwrite: true); // a reader never sees half a graph
    }

    private static void WriteManifest(string folder, IReadOnlyDictionary<string, string> labels, object counts, IReadOnlyDictionary<string, object>? about)
    {
        var manifest = new Dictionary<string, object>(StringComparer.Ordinal)
        {
            ["formatVersion"] = ProvenanceGraphJson.FormatVersion,
            ["counts"] = counts,
            ["labels"] = labels,
        };
        if (about is not null)
        {
            manifest["collected"] = about;
        }

        var path = Path.Combine(folder, ManifestName);
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(manifest, ManifestJson));
        File.Move(path + ".tmp", path, overwrite: true);
    }

    private static string FileName(string id) => Safe(id) + ".json";

    private static string Safe(string id) =>
        new([.. id.Take(120).Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' ? c : '_')]);
}
