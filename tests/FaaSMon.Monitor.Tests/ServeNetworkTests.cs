using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using FaaSMon.Classifier.Temporal;
using FaaSMon.Core;
using FaaSMon.Monitor.Hosting;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// <c>faasmon serve --network-model</c>: real loopback traffic is captured and cut into the model's windows, each window
/// is scored, and the score joins the invocation whose proxy flow is a flow of that window; nothing else is joined.
/// </summary>
public sealed class ServeNetworkTests : IAsyncLifetime, IDisposable
{
    private readonly string _dir = Path.Combine("/var/lib/faasmon/tests", $"network-{DateTime.UtcNow:HHmmss}-{Guid.NewGuid().ToString("N")[..8]}");
    private readonly TcpListener _service = new(IPAddress.Loopback, 0);
    private ServeHost? _host;

    private string Records => Path.Combine(_dir, "proxy", "records");

    private string ModelPath => Path.Combine(_dir, "tgat.tnm");

    private int ServicePort => ((IPEndPoint)_service.LocalEndpoint).Port;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(Records);
        File.WriteAllText(Path.Combine(_dir, "events.ndjson"), "");
        _service.Start();
        // The join and the store are what is tested, not what a model learned: an untrained TGAT still scores every
        // window, and the test checks the stored score is the model's score of that window.
        using var model = TemporalModel.Create(new TemporalOptions(TemporalArch.Tgat, Hidden: 8));
        model.Save(ModelPath, windowSeconds: 1);
        return Task.CompletedTask;
    }

    private Task<ServeHost> StartAsync(string modelPath) => ServeFixture.StartAsync(new Dictionary<string, string?>
    {
        ["Monitor:DataDirectory"] = Path.Combine(_dir, "monitor"),
        ["Monitor:Listen"] = "127.0.0.1:0",
        ["Monitor:ProxyData"] = Path.Combine(_dir, "proxy"),
        ["Monitor:TraceEvents"] = Path.Combine(_dir, "events.ndjson"),
        ["Monitor:NetworkModel"] = modelPath,
        ["Monitor:NetworkInterface"] = "lo",
        // only this test's service: other processes' loopback traffic would make the window contents unknowable
        ["Monitor:NetworkFilter"] = $"tcp port {ServicePort}",
    }, CancellationToken.None);

    public async Task DisposeAsync()
    {
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        _service.Stop();
        Directory.Delete(_dir, recursive: true);
    }

    public void Dispose() => _service.Dispose();

    [Fact]
    public async Task A_captured_window_scores_the_invocation_whose_flow_is_in_it_and_no_other()
    {
        _host = await StartAsync(ModelPath);
        Assert.NotNull(_host.Network);
        await Task.Delay(500); // the capture is open once the supervised task runs

        // a real exchange on loopback: the function's connection, as the proxy would report it
        var started = DateTimeOffset.UtcNow;
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, ServicePort);
        using var server = await _service.AcceptTcpClientAsync();
        await client.GetStream().WriteAsync("GET / HTTP/1.1\r\n\r\n"u8.ToArray());
        var buffer = new byte[64];
        _ = await server.GetStream().ReadAsync(buffer);
        await server.GetStream().WriteAsync("HTTP/1.1 200 OK\r\n\r\n"u8.ToArray());
        _ = await client.GetStream().ReadAsync(buffer);
        var ended = DateTimeOffset.UtcNow;
        var local = (IPEndPoint)client.Client.LocalEndPoint!;

        var joined = Record("00000000000000b1", started, ended);
        var unrelated = Record("00000000000000b2", started, ended);
        File.WriteAllLines(Path.Combine(Records, "invocations-20261202-01.ndjson"),
            [JsonSerializer.Serialize(joined, ServeHost.FileJson), JsonSerializer.Serialize(unrelated, ServeHost.FileJson)]);
        File.WriteAllLines(Path.Combine(Records, "flows-20261202-01.ndjson"),
        [
            JsonSerializer.Serialize(Flow(joined, "127.0.0.1", local.Port, ServicePort, started, ended), ServeHost.FileJson),
            // same time, a port nobody used: no window has this flow
            JsonSerializer.Serialize(Flow(unrelated, "127.0.0.1", local.Port, ServicePort + 1, started, ended), ServeHost.FileJson),
        ]);

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (DateTime.UtcNow < deadline && _host.Store.NetworkVerdicts(joined.SpanId!).Count == 0)
        {
            await Task.Delay(200);
        }

        // one window, or two when the exchange crossed a window boundary
        var windows = _host.Store.NetworkVerdicts(joined.SpanId!);
        Assert.InRange(windows.Count, 1, 2);
        foreach (var window in windows)
        {
            Assert.Equal("tgat-network", window.Model);
            Assert.Equal(1, window.WindowSeconds);
            Assert.True(window.Flows >= 1 && window.Edges >= window.Flows, $"{window.Flows} of {window.Edges} flows");
            Assert.True(window.WindowStart <= ended && started < window.WindowStart.AddSeconds(1), $"window {window.WindowStart:O}, exchange {started:O}–{ended:O}");
            Assert.Equal(window.Score >= 0.5, window.Intrusion);
        }

        Assert.Empty(_host.Store.NetworkVerdicts(unrelated.SpanId!));
        Assert.True(_host.Network!.WindowsScored >= 1 && _host.Network.Frames >= 6, $"{_host.Network.WindowsScored} windows, {_host.Network.Frames} frames");

        using var api = ServeFixture.ClientFor(_host);
        var detail = JsonDocument.Parse(await api.GetStringAsync($"/api/invocations/{joined.SpanId}")).RootElement;
        var network = detail.GetProperty("network");
        var expected = windows.Any(w => w.Intrusion) ? "intrusion" : "benign";
        Assert.Equal(expected, network.GetProperty("verdict").GetString());
        Assert.Equal(windows[0].Score, network.GetProperty("windows")[0].GetProperty("score").GetDouble(), 6);
        Assert.Equal(expected, detail.GetProperty("invocation").GetProperty("network").GetString());
        var other = JsonDocument.Parse(await api.GetStringAsync($"/api/invocations/{unrelated.SpanId}")).RootElement;
        Assert.False(other.TryGetProperty("network", out _));
        Assert.False(other.GetProperty("invocation").TryGetProperty("network", out _));
    }

    [Fact]
    public async Task A_network_model_that_cannot_load_fails_only_the_network_part()
    {
        var broken = Path.Combine(_dir, "broken.tnm");
        File.WriteAllBytes(broken, [.. File.ReadAllBytes(ModelPath).SkipLast(100)]);
        _host = await StartAsync(broken);
        Assert.Null(_host.Network);

        using var anonymous = new HttpClient { BaseAddress = _host.ApiUrl };
        var health = await anonymous.GetAsync("/healthz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        var components = JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement.GetProperty("components");
        Assert.Contains("truncated", components.GetProperty("network").GetString(), StringComparison.Ordinal);
        Assert.Equal("running", components.GetProperty("grapher").GetString());
        using var api = ServeFixture.ClientFor(_host);
        Assert.Equal(HttpStatusCode.OK, (await api.GetAsync("/api/invocations")).StatusCode);
    }

    private static InvocationRecord Record(string span, DateTimeOffset start, DateTimeOffset end) =>
        new($"call-{span}", "0123456789abcdef0123456789abcdef", span, null, null, "product-catalog-api",
            "GET", "/function/product-catalog-api/categories", null, 200, 0, 100, start, end, 0, (end - start).Ticks * 100,
            "127.0.0.1:40000", (end - start).TotalMilliseconds, null, false, null, false, null, "ok");

    private static PacketFlow Flow(InvocationRecord record, string address, int sourcePort, int destinationPort, DateTimeOffset first, DateTimeOffset last) =>
        new(record.CallId, record.TraceId, record.SpanId, "TCP", address, sourcePort, address, destinationPort, 4, 300, first, last, null);
}
