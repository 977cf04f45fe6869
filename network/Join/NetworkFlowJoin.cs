using FaaSMon.Core;

namespace FaaSMon.Network.Join;

/// <summary>A flow of a network window that is one of an invocation's packet flows.</summary>
/// <param name="EdgeIndex">Index into <see cref="TemporalGraph.Edges"/> of <paramref name="Window"/>.</param>
public sealed record NetworkFlowMatch(PacketFlow Flow, TemporalGraph Window, int EdgeIndex);

/// <summary>
/// Joins the network view to the invocation view: which window flows are the traffic of a function container.
/// A window edge and a proxy <see cref="PacketFlow"/> are the same traffic when the protocol matches, the endpoint pair
/// matches in either direction (a window flow's source is whoever sent first inside that window), and their times
/// overlap (within a slack for clock granularity). The monitor then gives the invocation verdict of
/// <see cref="PacketFlow.CallId"/> the network verdict of the matched window.
/// </summary>
public static class NetworkFlowJoin
{
    public static IReadOnlyList<NetworkFlowMatch> Match(IReadOnlyList<PacketFlow> flows, IReadOnlyList<TemporalGraph> windows, TimeSpan? slack = null)
    {
        var margin = slack ?? TimeSpan.FromMilliseconds(50);
        var byEndpoints = new Dictionary<(FlowProtocol, string, string), List<PacketFlow>>();
        foreach (var flow in flows)
        {
            var key = Key(ProtocolOf(flow.Protocol), Endpoint(flow.SourceAddress, flow.SourcePort), Endpoint(flow.DestinationAddress, flow.DestinationPort));
            if (!byEndpoints.TryGetValue(key, out var list))
            {
                byEndpoints[key] = list = [];
            }

            list.Add(flow);
        }

        var matches = new List<NetworkFlowMatch>();
        foreach (var window in windows)
        {
            for (var i = 0; i < window.Edges.Count; i++)
            {
                var edge = window.Edges[i];
                if (!byEndpoints.TryGetValue(Key(edge.Protocol, window.Nodes[edge.Source], window.Nodes[edge.Target]), out var candidates))
                {
                    continue;
                }

                var start = window.WindowStartUtc.AddSeconds(edge.StartSeconds);
                var end = start.AddSeconds(edge.DurationSeconds);
                foreach (var flow in candidates)
                {
                    if (start <= flow.LastSeenUtc + margin && flow.FirstSeenUtc - margin <= end)
                    {
                        matches.Add(new NetworkFlowMatch(flow, window, i));
                    }
                }
            }
        }

        return matches;
    }

    /// <summary>Windows with traffic to or from one of the given container addresses (any port), for a per-container view.</summary>
    public static IReadOnlyList<TemporalGraph> WindowsOfContainers(IReadOnlyList<TemporalGraph> windows, IReadOnlySet<string> containerAddresses) =>
        [.. windows.Where(w => w.Nodes.Any(n => containerAddresses.Contains(AddressOf(n))))];

    /// <summary>The address part of an <c>IP:Port</c> node (IPv6 nodes are <c>[addr]:port</c>).</summary>
    public static string AddressOf(string node)
    {
        var colon = node.LastIndexOf(':');
        var address = colon < 0 ? node : node[..colon];
        return address.StartsWith('[') && address.EndsWith(']') ? address[1..^1] : address;
    }

    /// <summary>The node name the capture gives an endpoint (IPv6 in brackets).</summary>
    private static string Endpoint(string address, int port) => address.Contains(':', StringComparison.Ordinal) ? $"[{address}]:{port}" : $"{address}:{port}";

    private static (FlowProtocol, string, string) Key(FlowProtocol protocol, string a, string b) =>
        string.CompareOrdinal(a, b) <= 0 ? (protocol, a, b) : (protocol, b, a);

    private static FlowProtocol ProtocolOf(string protocol) => protocol.ToUpperInvariant() switch
    {
        "TCP" => FlowProtocol.Tcp,
        "UDP" => FlowProtocol.Udp,
        "ICMP" => FlowProtocol.Icmp,
        _ => FlowProtocol.Other,
    };
}
