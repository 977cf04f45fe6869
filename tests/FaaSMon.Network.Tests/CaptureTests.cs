using FaaSMon.Core;
using FaaSMon.Network.Capture;
using FaaSMon.Network.Collection;
using FaaSMon.Network.Scenarios;
using FaaSMon.Network.Testbed;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Network.Tests;

/// <summary>Real traffic between testbed hosts, captured on the real bridge.</summary>
public sealed class CaptureTests
{
    [Fact]
    public async Task Capture_of_benign_requests_and_attacks_yields_their_flows()
    {
        await using var testbed = await NetworkTestbed.StartAsync(NullLogger.Instance, CancellationToken.None);
        var layout = testbed.Layout;
        using var capture = BridgeCapture.Start(testbed.BridgeThread, layout.BridgeName);
        var start = DateTimeOffset.UtcNow;
        var bytes = await BenignTraffic.HttpGetAsync(testbed.In(layout.Client), layout.Web.Address, TestbedServices.WebPort, "/photo.html", CancellationToken.None);
        Assert.True(bytes > 100_000, $"the page came back with {bytes} bytes");
        var attacks = new AttackTraffic(testbed, new Random(3));
        await attacks.RunAsync(ScenarioKind.PortScan, DateTimeOffset.UtcNow.AddSeconds(1), CancellationToken.None);
        await attacks.RunAsync(ScenarioKind.ArpSpoof, DateTimeOffset.UtcNow.AddSeconds(0.5), CancellationToken.None);
        await Task.Delay(300);
        var end = DateTimeOffset.UtcNow;
        var frames = capture.Drain();
        var graph = NetCollector.Cut(frames, start, end - start, 1)[0].ToGraph("test", "test");

        Assert.Equal(0, graph.Counts.Truncated);
        var http = Assert.Single(graph.Edges, e => graph.Nodes[e.Target] == $"{layout.Web.Address}:80" && graph.Nodes[e.Source].StartsWith(layout.Client.Address + ":", StringComparison.Ordinal));
        Assert.Equal(FlowProtocol.Tcp, http.Protocol);
        Assert.True(http.Flags.Syn >= 2 && http.Flags.Fin >= 1, $"handshake and close: {http.Flags}");
        Assert.True(http.BytesBack > 100_000, $"the page's bytes flow back: {http.BytesBack}");
        var scanned = graph.Edges.Where(e => graph.Nodes[e.Source].StartsWith(layout.Attacker.Address + ":", StringComparison.Ordinal) && e.Protocol == FlowProtocol.Tcp).ToList();
        Assert.True(scanned.Count >= 20, $"port scan flows: {scanned.Count}");
        Assert.Contains(scanned, e => e.Flags.Rst > 0);
        var forged = graph.Edges.Where(e => e.Protocol == FlowProtocol.Arp && e.ArpReplies > 0 && e.ArpRequests == 0).ToList();
        Assert.NotEmpty(forged);
        Assert.Contains(layout.Client.Address + ":0", forged.Select(e => graph.Nodes[e.Target]));
    }
}
