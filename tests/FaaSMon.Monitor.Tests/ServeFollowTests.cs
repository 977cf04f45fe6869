using System.Net;
using System.Text.Json;
using FaaSMon.Core;
using FaaSMon.Monitor.Hosting;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// <c>faasmon serve --proxy-data --trace-events</c>, as compose runs it: it follows files a proxy and a tracer append to,
/// and a part that fails is reported on /healthz while the rest keeps answering.
/// </summary>
public sealed class ServeFollowTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine("/var/lib/faasmon/tests", $"follow-{DateTime.UtcNow:HHmmss}-{Guid.NewGuid().ToString("N")[..8]}");
    private ServeHost _host = null!;

    private string Records => Path.Combine(_dir, "proxy", "records");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Records);
        File.WriteAllText(Path.Combine(_dir, "events.ndjson"), "");
        _host = await StartAsync();
    }

    private Task<ServeHost> StartAsync() => ServeFixture.StartAsync(new Dictionary<string, string?>
    {
        ["Monitor:DataDirectory"] = Path.Combine(_dir, "monitor"),
        ["Monitor:Listen"] = "127.0.0.1:0",
        ["Monitor:ProxyData"] = Path.Combine(_dir, "proxy"),
        ["Monitor:TraceEvents"] = Path.Combine(_dir, "events.ndjson"),
    }, CancellationToken.None);

    public async Task DisposeAsync()
    {
        await _host.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task Records_appended_by_a_proxy_become_pending_invocations_a_half_written_line_waits_and_a_restart_reads_nothing_twice()
    {
        var file = Path.Combine(Records, "invocations-20261201-10.ndjson");
        var lines = Enumerable.Range(0, 3).Select(i => JsonSerializer.Serialize(Record(i), ServeHost.FileJson)).ToList();
        File.WriteAllText(file, lines[0] + "\n" + lines[1] + "\n" + lines[2][..20]);
        await WaitForAsync(() => Pending() == 2);
        Assert.Equal(2, Pending());

        File.AppendAllText(file, lines[2][20..] + "\n" + "{not json\n");
        await WaitForAsync(() => Pending() == 3);
        var third = _host.Store.Find(Record(2).SpanId)!;
        Assert.Equal("pending", third.Summary.Verdict);
        Assert.Equal("product-catalog-api", third.Summary.Function);

        // restart: positions are kept, so the three lines are not read again and nothing is lost
        await Task.Delay(2500); // the follower saves its position every 2 s
        await _host.DisposeAsync();
        File.AppendAllText(file, JsonSerializer.Serialize(Record(3), ServeHost.FileJson) + "\n"); // written while serve was down
        _host = await StartAsync();
        await WaitForAsync(() => Pending() == 4);
        Assert.Equal(4, Pending());
    }

    [Fact]
    public async Task A_source_that_fails_is_reported_on_healthz_and_the_api_and_other_parts_keep_running()
    {
        using var anonymous = new HttpClient { BaseAddress = _host.ApiUrl };
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/healthz")).StatusCode);

        // the proxy's records folder is replaced by a file: that follower cannot go on
        Directory.Delete(Records, recursive: true);
        File.WriteAllText(Records, "not a folder");
        // the flows follower reads the same folder and may fail first (503 already): wait for the records follower itself
        HttpResponseMessage? health = null;
        JsonElement body = default;
        await WaitForAsync(async () =>
        {
            health = await anonymous.GetAsync("/healthz");
            body = JsonDocument.Parse(await health.Content.ReadAsStringAsync()).RootElement;
            return body.GetProperty("components").GetProperty("proxy-records").GetString()!.StartsWith("failed", StringComparison.Ordinal);
        });
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health!.StatusCode);
        Assert.Equal("unhealthy", body.GetProperty("status").GetString());
        Assert.StartsWith("failed", body.GetProperty("components").GetProperty("proxy-records").GetString(), StringComparison.Ordinal);
        Assert.Contains("not a directory", body.GetProperty("components").GetProperty("proxy-records").GetString(), StringComparison.Ordinal);
        Assert.Equal("running", body.GetProperty("components").GetProperty("trace-events").GetString());
        Assert.Equal("running", body.GetProperty("components").GetProperty("grapher").GetString());

        using var client = ServeFixture.ClientFor(_host);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/api/invocations")).StatusCode);
    }

    private int Pending() => _host.Store.List(new Store.InvocationQuery(null, "pending", null, 500, null)).Items.Count;

    private static async Task WaitForAsync(Func<bool> condition) => await WaitForAsync(() => Task.FromResult(condition()));

    private static async Task WaitForAsync(Func<Task<bool>> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (DateTime.UtcNow < deadline && !await condition())
        {
            await Task.Delay(100);
        }
    }

    private static InvocationRecord Record(int i)
    {
        var start = new DateTimeOffset(2026, 12, 1, 10, 0, i, TimeSpan.Zero);
        return new InvocationRecord($"call-{i}", "0123456789abcdef0123456789abcdef", $"00000000000000a{i}", null, null, "product-catalog-api",
            "GET", "/function/product-catalog-api/categories", null, 200, 0, 100, start, start.AddMilliseconds(12), 1_000_000L * i, 1_000_000L * i + 12_000_000,
            "127.0.0.1:40000", 11.5, null, false, null, false, null, "ok");
    }
}
