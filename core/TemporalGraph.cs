using System.Text.Json;
using System.Text.Json.Serialization;

namespace FaaSMon.Core;

/// <summary>
/// One time window of network traffic as a temporal graph: nodes are <c>IP:Port</c> endpoints, each edge is a flow with
/// its start time. The network collector produces it, the temporal classifier consumes it. Serialised as one JSON
/// file per sample (format described in network/README.md).
/// </summary>
/// <param name="FormatVersion">Sample format version; readers refuse other versions.</param>
/// <param name="Label"><c>benign</c> or the attack scenario that produced the window (<c>port-scan</c>, …).</param>
/// <param name="Scenario">What ran during the window (benign mixes included), for reports.</param>
/// <param name="WindowStartUtc">Capture time of the window's start; edge times are seconds after it.</param>
/// <param name="Nodes"><c>IP:Port</c> per node (port 0 for ICMP and ARP); edges index this list.</param>
/// <param name="Edges">Flows ordered by start time.</param>
/// <param name="Counts">What the capture saw in the window and what it could not use.</param>
public sealed record TemporalGraph(
    int FormatVersion,
    string Label,
    string Scenario,
    DateTimeOffset WindowStartUtc,
    double WindowSeconds,
    IReadOnlyList<string> Nodes,
    IReadOnlyList<FlowEdge> Edges,
    CaptureCounts Counts)
{
    public const int CurrentFormatVersion = 1;

    public const string BenignLabel = "benign";

    public bool IsAttack => !string.Equals(Label, BenignLabel, StringComparison.Ordinal);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { WriteIndented = false };

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <exception cref="InvalidDataException">Not a temporal graph of the current format, or inconsistent.</exception>
    public static TemporalGraph FromJson(string json, string source = "sample")
    {
        TemporalGraph? graph;
        try
        {
            graph = JsonSerializer.Deserialize<TemporalGraph>(json, Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{source}: not a temporal graph: {e.Message}", e);
        }

        if (graph is null || graph.Nodes is null || graph.Edges is null || graph.Label is null)
        {
            throw new InvalidDataException($"{source}: not a temporal graph (nodes, edges and label are required)");
        }

        if (graph.FormatVersion != CurrentFormatVersion)
        {
            throw new InvalidDataException($"{source}: sample format {graph.FormatVersion}, this build reads {CurrentFormatVersion}");
        }

        foreach (var edge in graph.Edges)
        {
            if (edge.Source < 0 || edge.Source >= graph.Nodes.Count || edge.Target < 0 || edge.Target >= graph.Nodes.Count)
            {
                throw new InvalidDataException($"{source}: edge {edge.Source}->{edge.Target} outside the {graph.Nodes.Count} nodes");
            }
        }

        return graph;
    }
}

/// <summary>
/// A flow inside one window: the packets of one (protocol, endpoints) pair, both directions. <see cref="Source"/> is the
/// endpoint that sent the first packet seen. Times are seconds after the window start.
/// </summary>
public sealed record FlowEdge(
    int Source,
    int Target,
    double StartSeconds,
    double DurationSeconds,
    FlowProtocol Protocol,
    long Packets,
    long Bytes,
    long PacketsBack,
    long BytesBack,
    TcpFlagCounts Flags,
    int ArpRequests = 0,
    int ArpReplies = 0);

/// <summary>How many packets of a TCP flow carried each flag.</summary>
public sealed record TcpFlagCounts(int Syn = 0, int Ack = 0, int Fin = 0, int Rst = 0, int Psh = 0)
{
    public static readonly TcpFlagCounts None = new();
}

[JsonConverter(typeof(JsonStringEnumConverter<FlowProtocol>))]
public enum FlowProtocol
{
    Tcp,
    Udp,
    Icmp,
    Arp,
    Other,
}

/// <summary>Frames of a window by fate: used, or set aside and counted (never fatal).</summary>
public sealed record CaptureCounts(long Frames, long Truncated, long NonIp, long Malformed)
{
    public static readonly CaptureCounts Zero = new(0, 0, 0, 0);

    public CaptureCounts Add(CaptureCounts other) =>
        new(Frames + other.Frames, Truncated + other.Truncated, NonIp + other.NonIp, Malformed + other.Malformed);
}
