using System.Text.Json;
using System.Text.Json.Serialization;

namespace FaaSMon.Core;

/// <summary>Node types of a provenance graph (DESIGN.md, "Provenance graph").</summary>
[JsonConverter(typeof(JsonStringEnumConverter<NodeKind>))]
public enum NodeKind
{
    Process,
    File,
    Socket,
    Invocation,
    Function,
}

/// <summary>Edge types: the system call (or the platform relation) an edge came from.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<EdgeKind>))]
public enum EdgeKind
{
    Fork,
    Execve,
    Read,
    Write,
    Open,
    Unlink,
    Chmod,
    Rename,
    Connect,
    Accept,
    Send,
    Recv,
    Kill,
    /// <summary>mmap/mprotect with PROT_EXEC: code loaded other than by execve.</summary>
    MmapExec,
    /// <summary>Invocation → invocation along a trace.</summary>
    Invoke,
    /// <summary>A file written by an earlier invocation in the same warm container, read or executed by this one.</summary>
    Inherits,
}

/// <summary>Whether a graph covers one invocation or a whole trace (a chain of invocations).</summary>
[JsonConverter(typeof(JsonStringEnumConverter<GraphScope>))]
public enum GraphScope
{
    Invocation,
    Trace,
}

/// <summary>A node. <paramref name="Attributes"/> holds what its kind has: pid/exe/argv, path, remote/local, callId/function/instance.</summary>
public sealed record GraphNode(int Id, NodeKind Kind, string Label, IReadOnlyDictionary<string, string>? Attributes = null);

/// <summary>An edge; identical edges are collapsed into one with a <paramref name="Count"/> and the first and last time (ns since the Unix epoch, from the events' wall clock).</summary>
public sealed record GraphEdge(int Source, int Target, EdgeKind Kind, string Syscall, long FirstTimeNs, long LastTimeNs, int Count = 1);

/// <summary>
/// One provenance graph: per invocation or per trace, with the ground-truth label when it is known
/// (dataset files) and whether attribution had to guess.
/// </summary>
public sealed record ProvenanceGraph(
    string GraphId,
    GraphScope Scope,
    string? CallId,
    string? TraceId,
    string? Function,
    string? Instance,
    IReadOnlyList<GraphNode> Nodes,
    IReadOnlyList<GraphEdge> Edges)
{
    /// <summary>The dataset format version (<see cref="ProvenanceGraphJson"/>).</summary>
    public int FormatVersion { get; init; } = ProvenanceGraphJson.FormatVersion;

    /// <summary>"benign" or an attack family; null when unknown (live traffic).</summary>
    public string? Label { get; init; }

    /// <summary>Some events could not be told apart between overlapping invocations and were attributed by time.</summary>
    public bool Ambiguous { get; init; }

    /// <summary>The graph reached its size cap: later nodes and edges were left out (counted in the invocation node's attributes).</summary>
    public bool Truncated { get; init; }
}

/// <summary>The JSON dataset format of <see cref="ProvenanceGraph"/>: camelCase, enums as names, one graph per document.</summary>
public static class ProvenanceGraphJson
{
    public const int FormatVersion = 1;

    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public static string Serialize(ProvenanceGraph graph) => JsonSerializer.Serialize(graph, Options);

    /// <exception cref="InvalidDataException">Not a graph of a format version this code reads, or edges that name missing nodes.</exception>
    public static ProvenanceGraph Deserialize(string json)
    {
        ProvenanceGraph? graph;
        try
        {
            graph = JsonSerializer.Deserialize<ProvenanceGraph>(json, Options);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"not a provenance graph: {e.Message}", e);
        }

        if (graph is null || graph.Nodes is null || graph.Edges is null)
        {
            throw new InvalidDataException("not a provenance graph: nodes and edges are required");
        }

        if (graph.FormatVersion != FormatVersion)
        {
            throw new InvalidDataException($"provenance graph format {graph.FormatVersion} is not supported (this build reads {FormatVersion})");
        }

        var ids = graph.Nodes.Select(n => n.Id).ToHashSet();
        if (ids.Count != graph.Nodes.Count || graph.Edges.Any(e => !ids.Contains(e.Source) || !ids.Contains(e.Target)))
        {
            throw new InvalidDataException($"provenance graph {graph.GraphId}: duplicate node ids or edges naming missing nodes");
        }

        return graph;
    }
}
