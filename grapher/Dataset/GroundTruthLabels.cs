using System.Text.Json;
using FaaSMon.Core;

namespace FaaSMon.Grapher.Dataset;

/// <summary>One line of the workload driver's ground truth (functions/FaaSMon.Workload/GroundTruth.cs), the fields labelling needs.</summary>
public sealed record GroundTruthEntry(string CallId, string? TraceId, string? Function, string Label, string? AttackId, string? Step);

/// <summary>
/// Labels graphs from the ground truth. The driver writes a line per request it sends (with the call id and trace it
/// sent); functions forward both on the calls they make, so a downstream invocation carries its root request's call id.
/// An invocation of the function the line names takes the line's label; a downstream invocation takes its root's label
/// when the root carried an attack (the hop the attack moved to) and is benign otherwise. A trace takes an attack label
/// when any of its requests carried one.
/// </summary>
public sealed class GroundTruthLabels
{
    public const string Benign = "benign";

    private readonly Dictionary<string, List<GroundTruthEntry>> _byCallId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<GroundTruthEntry>> _byTraceId = new(StringComparer.Ordinal);

    public GroundTruthLabels(IEnumerable<GroundTruthEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        foreach (var entry in entries)
        {
            Add(_byCallId, entry.CallId, entry);
            if (entry.TraceId is { } trace)
            {
                Add(_byTraceId, trace, entry);
            }

            Count++;
        }
    }

    public int Count { get; }

    /// <summary>Reads a ground-truth JSONL file; lines that are not JSON objects with a call id and a label are counted in <paramref name="skipped"/>.</summary>
    public static GroundTruthLabels Load(string path, out int skipped)
    {
        var entries = new List<GroundTruthEntry>();
        skipped = 0;
        foreach (var line in File.ReadLines(path))
        {
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            try
            {
                using var doc = JsonDocument.Parse(line);
                var root = doc.RootElement;
                if (root.ValueKind != JsonValueKind.Object || Text(root, "callId") is not { } callId || Text(root, "label") is not { } label)
                {
                    skipped++;
                    continue;
                }

                entries.Add(new GroundTruthEntry(callId, Text(root, "traceId"), Text(root, "function"), label, Text(root, "attackId"), Text(root, "step")));
            }
            catch (JsonException)
            {
                skipped++;
            }
        }

        return new GroundTruthLabels(entries);
    }

    /// <summary>
    /// The label of a graph: of its invocation (or, for a trace, its root's trace), and when the ground truth does not know
    /// the call (a call made without the caller's call id, as injected code makes it), the label of the invocation the
    /// grapher found made the call.
    /// </summary>
    public string? ForGraph(ProvenanceGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var label = graph.Scope == GraphScope.Trace ? ForTrace(graph.TraceId, graph.CallId) : ForInvocation(graph.CallId, graph.TraceId, graph.Function);
        if (label is not null)
        {
            return label;
        }

        var self = graph.Nodes.FirstOrDefault(n => n.Kind == NodeKind.Invocation && n.Attributes?.GetValueOrDefault("role") == "self");
        return self?.Attributes?.GetValueOrDefault("callerCallId") is { } callerCall
            ? ForInvocation(callerCall, null, self.Attributes.GetValueOrDefault("callerFunction"))
            : null;
    }

    /// <summary>The label of an invocation of <paramref name="function"/> in call <paramref name="callId"/>; null when the ground truth does not know it.</summary>
    public string? ForInvocation(string? callId, string? traceId, string? function)
    {
        var lines = (callId is null ? null : _byCallId.GetValueOrDefault(callId)) ?? (traceId is null ? null : _byTraceId.GetValueOrDefault(traceId));
        if (lines is null)
        {
            return null;
        }

        if (lines.FirstOrDefault(l => l.Function == function) is { } own)
        {
            return own.Label;
        }

        return lines.FirstOrDefault(l => l.Label != Benign)?.Label ?? Benign;
    }

    /// <summary>The label of a whole trace.</summary>
    public string? ForTrace(string? traceId, string? rootCallId)
    {
        var lines = (traceId is null ? null : _byTraceId.GetValueOrDefault(traceId)) ?? (rootCallId is null ? null : _byCallId.GetValueOrDefault(rootCallId));
        return lines is null ? null : lines.FirstOrDefault(l => l.Label != Benign)?.Label ?? Benign;
    }

    private static string? Text(JsonElement root, string name) =>
        root.TryGetProperty(name, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } s ? s : null;

    private static void Add(Dictionary<string, List<GroundTruthEntry>> index, string key, GroundTruthEntry entry)
    {
        if (!index.TryGetValue(key, out var list))
        {
            index[key] = list = [];
        }

        list.Add(entry);
    }
}
