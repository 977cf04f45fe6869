using System.Net;
using System.Text;
using FaaSMon.Core;
using FaaSMon.Proxy.Pcap;

namespace FaaSMon.Proxy.Tests;

/// <summary>Volume: every request served, recorded once, and findable in its own pcap slice.</summary>
public sealed class LoadTests
{
    private const int Requests = 10_000;
    private const int Concurrency = 100;

    [Fact]
    public async Task TenThousandRequestsAtConcurrency100AreAllServedRecordedAndCaptured()
    {
        await using var upstream = await EchoUpstream.StartAsync();
        await using var proxy = await PcapProxy.StartAsync(upstream.Url);
        using var records = new RecordCollector<InvocationRecord>(proxy.Records, capacity: 2 * Requests);
        using var flows = new RecordCollector<PacketFlow>(proxy.Flows, capacity: 10 * Requests);
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = Concurrency }) { BaseAddress = proxy.Url };

        var failed = 0;
        var next = -1;
        var callIdsSeen = new string[Requests];
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < Requests)
            {
                try
                {
                    using var response = await client.PostAsync($"/function/echo/{i}", new StringContent($"request {i}"));
                    var body = await response.Content.ReadAsStringAsync();
                    callIdsSeen[i] = response.Headers.GetValues(CallId.HeaderName).Single();
                    if (response.StatusCode != HttpStatusCode.OK || !body.Contains($"request {i}", StringComparison.Ordinal))
                    {
                        Interlocked.Increment(ref failed);
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref failed);
                }
            }
        }));

        Assert.Equal(0, failed);
        var all = await records.CollectAsync(r => r.Count >= Requests, TimeSpan.FromSeconds(30));
        Assert.Equal(Requests, all.Count);
        Assert.Equal(0, records.Dropped);
        Assert.Equal(Requests, all.Select(r => r.CallId).Distinct().Count());
        Assert.Equal(callIdsSeen.Order(StringComparer.Ordinal), all.Select(r => r.CallId).Order(StringComparer.Ordinal));
        Assert.All(all, r => Assert.Equal(200, r.Status));

        // Slices are written once an invocation's packets go quiet; each must hold its own call id.
        var spans = all.Select(r => r.SpanId).ToHashSet();
        var sliced = await flows.CollectAsync(f => f.Where(x => x.SliceFile is not null).Select(x => x.SpanId).Distinct().Count() >= Requests, TimeSpan.FromSeconds(60));
        var sliceBySpan = sliced.Where(f => f.SliceFile is not null).GroupBy(f => f.SpanId!).ToDictionary(g => g.Key, g => g.First());
        var metrics = await proxy.Client.GetStringAsync("/metrics");
        Assert.True(spans.IsSubsetOf(sliceBySpan.Keys),
            $"{spans.Count(s => !sliceBySpan.ContainsKey(s))} invocations without a slice; flows without slice: {sliced.Count(f => f.SliceFile is null)}; " +
            string.Join(" ", metrics.Split('\n').Where(l => l.StartsWith("faasmon_p", StringComparison.Ordinal))));
        var wrong = all.Where(r =>
        {
            var flow = sliceBySpan[r.SpanId];
            return flow.CallId != r.CallId || PcapSlices.Read(flow).AsSpan().IndexOf(Encoding.ASCII.GetBytes(r.CallId)) < 0;
        }).ToList();
        Assert.Empty(wrong);

        // Each slice holds request and response (both directions of a pooled upstream connection), and nobody else's call id.
        var withoutResponse = all.Where(r => !Encoding.Latin1.GetString(PcapSlices.Read(sliceBySpan[r.SpanId]))
            .Contains($"body=request {r.Path["/function/echo/".Length..]}", StringComparison.Ordinal)).Select(r => r.Path).ToList();
        Assert.True(withoutResponse.Count == 0, $"{withoutResponse.Count} slices lack their response, e.g. {string.Join(", ", withoutResponse.Take(5))}");
        var sample = all.Take(200).ToList();
        foreach (var r in sample)
        {
            var text = Encoding.Latin1.GetString(PcapSlices.Read(sliceBySpan[r.SpanId]));
            Assert.DoesNotContain(sample, o => o.CallId != r.CallId && text.Contains(o.CallId, StringComparison.Ordinal));
        }

        // The slices are real pcap files: libpcap reads them and PacketDotNet finds the request in a TCP segment.
        var first = all[0];
        var standalone = Path.Combine(proxy.DataDirectory, "one-slice.pcap");
        File.WriteAllBytes(standalone, PcapSlices.Read(sliceBySpan[first.SpanId]));
        using (var reader = new SharpPcap.LibPcap.CaptureFileReaderDevice(standalone))
        {
            reader.Open(new SharpPcap.DeviceConfiguration());
            var found = false;
            while (reader.GetNextPacket(out var capture) == SharpPcap.GetPacketStatus.PacketRead)
            {
                var tcp = capture.GetPacket().GetPacket().Extract<PacketDotNet.TcpPacket>();
                found |= tcp?.PayloadData is { } data && Encoding.ASCII.GetString(data).Contains($"X-Call-Id: {first.CallId}", StringComparison.OrdinalIgnoreCase);
            }

            Assert.True(found, "no TCP segment of the slice carries the call id");
        }

        var rotating = Directory.GetFiles(Path.Combine(proxy.DataDirectory, "pcap"), "capture-*.pcap");
        Assert.NotEmpty(rotating);
    }

    [Fact]
    public async Task WithTheRecordConsumerStoppedEveryRequestIsServedAndDropsAreCounted()
    {
        await using var upstream = await EchoUpstream.StartAsync();
        await using var proxy = await ProxyUnderTest.StartAsync(upstream.Url, settings: new Dictionary<string, string?>
        {
            ["Proxy:RecordQueueCapacity"] = "50",
            ["Proxy:WriteRecords"] = "false",
        });
        // A subscriber that never reads: a consumer that hung or stopped.
        var subscriber = $"stalled-{Guid.NewGuid():N}";
        using var stalled = proxy.Records.Subscribe(subscriber);
        const int count = 1000;
        var served = 0;
        var next = -1;
        await Task.WhenAll(Enumerable.Range(0, 20).Select(async _ =>
        {
            while (Interlocked.Increment(ref next) < count)
            {
                using var response = await proxy.Client.GetAsync("/function/echo");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref served);
                }
            }
        }));

        Assert.Equal(count, served);
        Assert.Equal(count - 50, stalled.Dropped);
        var metrics = await proxy.Client.GetStringAsync("/metrics");
        Assert.Equal(count - 50, ProxyForwardingTests.Metric(metrics, "faasmon_records_dropped_total", $"subscriber=\"{subscriber}\""));
        Assert.True(ProxyForwardingTests.Metric(metrics, "faasmon_records_emitted_total") >= count);

        // The consumer goes away entirely: still served, still counted.
        stalled.Dispose();
        using (var response = await proxy.Client.GetAsync("/function/echo"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        Assert.Equal(1, proxy.Records.DroppedWithoutSubscriber);
    }

    [Fact]
    public async Task FailClosedRefusesWhatCannotBeRecorded()
    {
        await using var upstream = await EchoUpstream.StartAsync();
        await using var proxy = await ProxyUnderTest.StartAsync(upstream.Url, settings: new Dictionary<string, string?>
        {
            ["Proxy:RecordQueueCapacity"] = "5",
            ["Proxy:WriteRecords"] = "false",
            ["Proxy:FailClosed"] = "true",
        });
        using var stalled = proxy.Records.Subscribe("stalled");
        List<HttpStatusCode> codes = [];
        for (var i = 0; i < 8; i++)
        {
            using var response = await proxy.Client.GetAsync("/function/echo");
            codes.Add(response.StatusCode);
        }

        Assert.Equal(Enumerable.Repeat(HttpStatusCode.OK, 5), codes.Take(5));
        Assert.Equal(Enumerable.Repeat(HttpStatusCode.ServiceUnavailable, 3), codes.Skip(5));
    }
}

/// <summary>A proxy with packet capture on lo, failing with the reason when this machine cannot capture.</summary>
internal static class PcapProxy
{
    public static async Task<ProxyUnderTest> StartAsync(Uri upstream, int port = 0, Dictionary<string, string?>? settings = null)
    {
        try
        {
            return await ProxyUnderTest.StartAsync(upstream, pcap: true, settings: settings, port: port);
        }
        catch (InvalidOperationException ex) when (ex.Message.StartsWith("packet capture", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"This test needs packet capture on lo, which this machine cannot do: {ex.Message}", ex);
        }
    }
}
