using FaaSMon.Core;
using FaaSMon.Network.Join;

namespace FaaSMon.Network.Tests;

public sealed class JoinTests
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Window_flows_join_the_invocation_flows_of_a_function_container_in_either_direction_and_only_when_times_overlap()
    {
        var window = new TemporalGraph(1, "benign", "test", T0, 2, ["172.18.0.5:8080", "172.18.0.2:41000", "10.0.0.9:5432"],
        [
            // The response seen first in this window: source is the function container.
            new FlowEdge(0, 1, 0.5, 0.2, FlowProtocol.Tcp, 3, 900, 2, 400, new TcpFlagCounts(Ack: 5)),
            new FlowEdge(0, 2, 0.6, 0.1, FlowProtocol.Tcp, 2, 200, 2, 300, new TcpFlagCounts(Ack: 4)),
        ], CaptureCounts.Zero);
        var invocation = new PacketFlow("call-1", null, null, "tcp", "172.18.0.2", 41000, "172.18.0.5", 8080, 5, 1300,
            T0.AddSeconds(0.4), T0.AddSeconds(0.8), null);
        var earlier = invocation with { CallId = "call-0", FirstSeenUtc = T0.AddSeconds(-10), LastSeenUtc = T0.AddSeconds(-9) };
        var otherPort = invocation with { CallId = "call-2", SourcePort = 41001 };

        var matches = NetworkFlowJoin.Match([invocation, earlier, otherPort], [window]);

        var match = Assert.Single(matches);
        Assert.Equal("call-1", match.Flow.CallId);
        Assert.Equal(0, match.EdgeIndex);
        Assert.Single(NetworkFlowJoin.WindowsOfContainers([window], new HashSet<string> { "172.18.0.5" }));
        Assert.Empty(NetworkFlowJoin.WindowsOfContainers([window], new HashSet<string> { "172.18.0.77" }));
        Assert.Equal("fe80::1", NetworkFlowJoin.AddressOf("[fe80::1]:443"));
    }
}
