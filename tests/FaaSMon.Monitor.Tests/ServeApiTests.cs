using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using FaaSMon.Core;
using Xunit.Abstractions;

namespace FaaSMon.Monitor.Tests;

/// <summary>The verdict API of <c>faasmon serve</c> over the verdicts of real traffic, attack included.</summary>
public sealed class ServeApiTests(ServeFixture serve, ITestOutputHelper output) : IClassFixture<ServeFixture>
{
    [Theory]
    [InlineData("/api/invocations")]
    [InlineData("/api/invocations/abc")]
    [InlineData("/api/invocations/abc/graph")]
    [InlineData("/api/invocations/abc/pcap")]
    [InlineData("/api/traces/0123456789abcdef0123456789abcdef")]
    public async Task Without_credentials_or_with_wrong_ones_every_endpoint_is_401(string path)
    {
        using var anonymous = new HttpClient { BaseAddress = serve.Api };
        using var response = await anonymous.GetAsync(path);
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Contains("Basic", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);

        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes($"{serve.Host.Credentials.User}:wrong")));
        using var wrong = await anonymous.GetAsync(path);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
        anonymous.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", "guess");
        using var bearer = await anonymous.GetAsync(path);
        Assert.Equal(HttpStatusCode.Unauthorized, bearer.StatusCode);
    }

    [Fact]
    public async Task Healthz_and_metrics_answer_without_credentials_and_name_every_component()
    {
        using var anonymous = new HttpClient { BaseAddress = serve.Api };
        using var health = await anonymous.GetAsync("/healthz");
        var text = await health.Content.ReadAsStringAsync();
        Assert.True(health.StatusCode == HttpStatusCode.OK, text); // degraded (rules only) is still up
        var body = JsonDocument.Parse(text).RootElement;
        var components = body.GetProperty("components");
        foreach (var name in new[] { "store", "classifier", "grapher" })
        {
            Assert.True(components.TryGetProperty(name, out _), $"/healthz names {name}: {body}");
        }

        var metrics = await anonymous.GetStringAsync("/metrics");
        Assert.Contains("faasmon_verdicts", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_list_pages_newest_first_without_repeats_and_filters_by_function_and_verdict()
    {
        using var client = serve.Client();
        var all = await ItemsAsync(client, "/api/invocations?limit=500");
        Assert.True(all.Count >= 20, $"{all.Count} invocations stored");
        var times = all.Select(i => i.GetProperty("startedAt").GetDateTimeOffset()).ToList();
        Assert.Equal(times.OrderDescending(), times);

        var paged = new List<string>();
        string? cursor = null;
        var pages = 0;
        do
        {
            var page = JsonDocument.Parse(await client.GetStringAsync("/api/invocations?limit=7" + (cursor is null ? "" : "&cursor=" + cursor))).RootElement;
            var items = page.GetProperty("items").EnumerateArray().ToList();
            Assert.InRange(items.Count, 1, 7);
            paged.AddRange(items.Select(i => i.GetProperty("id").GetString()!));
            cursor = page.TryGetProperty("next", out var next) && next.ValueKind == JsonValueKind.String ? next.GetString() : null;
            pages++;
        }
        while (cursor is not null && pages < 200);
        Assert.Equal(all.Select(i => i.GetProperty("id").GetString()!).ToList(), paged);
        Assert.Equal(paged.Count, paged.Distinct().Count());

        var function = all[0].GetProperty("function").GetString()!;
        var ofFunction = await ItemsAsync(client, $"/api/invocations?limit=500&function={function}");
        Assert.NotEmpty(ofFunction);
        Assert.All(ofFunction, i => Assert.Equal(function, i.GetProperty("function").GetString()));
        Assert.Equal(all.Count(i => i.GetProperty("function").GetString() == function), ofFunction.Count);

        var intrusions = await ItemsAsync(client, "/api/invocations?limit=500&verdict=intrusion");
        Assert.NotEmpty(intrusions);
        Assert.All(intrusions, i => Assert.Equal("intrusion", i.GetProperty("verdict").GetString()));
        var since = await ItemsAsync(client, $"/api/invocations?limit=500&since={Uri.EscapeDataString(times[0].ToString("O"))}");
        Assert.All(since, i => Assert.True(i.GetProperty("startedAt").GetDateTimeOffset() >= times[0]));
    }

    [Fact]
    public async Task The_reverse_shell_is_an_intrusion_with_its_rule_explained_and_alerted_as_falco_json()
    {
        using var client = serve.Client();
        var attack = Assert.Single(serve.Workload.Attacks, a => a.Family == "reverse-shell");
        Assert.True(attack.Succeeded, attack.Evidence);
        var flagged = new List<JsonElement>();
        foreach (var callId in attack.CallIds)
        {
            var detail = JsonDocument.Parse(await client.GetStringAsync($"/api/invocations/{callId}")).RootElement;
            output.WriteLine(detail.GetProperty("invocation").ToString());
            if (detail.GetProperty("invocation").GetProperty("verdict").GetString() == "intrusion")
            {
                flagged.Add(detail);
            }
        }

        var shell = Assert.Single(flagged);
        var verdict = shell.GetProperty("verdict");
        Assert.True(verdict.GetProperty("isIntrusion").GetBoolean());
        var hit = verdict.GetProperty("ruleHits").EnumerateArray().First();
        Assert.False(string.IsNullOrWhiteSpace(hit.GetProperty("explanation").GetString()));
        Assert.NotEmpty(hit.GetProperty("nodeIds").EnumerateArray());
        Assert.Equal(attack.TraceId, shell.GetProperty("invocation").GetProperty("traceId").GetString());
        Assert.True(shell.GetProperty("invocation").GetProperty("final").GetBoolean());

        var alert = serve.Alerts.Select(a => JsonDocument.Parse(a).RootElement)
            .First(a => a.GetProperty("output_fields").GetProperty("faasmon.invocation").GetString() == shell.GetProperty("invocation").GetProperty("id").GetString());
        Assert.Equal("Critical", alert.GetProperty("priority").GetString());
        Assert.Equal(hit.GetProperty("ruleId").GetString(), alert.GetProperty("rule").GetString());
        Assert.Equal("faasmon", alert.GetProperty("source").GetString());
        Assert.True(alert.GetProperty("time").GetDateTimeOffset() > DateTimeOffset.UtcNow.AddHours(-1));
    }

    [Fact]
    public async Task The_intrusion_has_snapshots_of_the_instances_on_its_path_listed_and_downloadable()
    {
        using var client = serve.Client();
        var intrusion = (await ItemsAsync(client, "/api/invocations?limit=500&verdict=intrusion")).First();
        var id = intrusion.GetProperty("id").GetString()!;
        List<JsonElement> listing = [];
        for (var i = 0; i < 120 && listing.Count == 0; i++)
        {
            listing = [.. JsonDocument.Parse(await client.GetStringAsync($"/api/invocations/{id}/snapshots")).RootElement.EnumerateArray()];
            if (listing.Count == 0)
            {
                await Task.Delay(250);
            }
        }

        output.WriteLine(string.Join("\n", listing));
        var own = Assert.Single(listing, s => s.GetProperty("instance").GetString() == intrusion.GetProperty("instance").GetString());
        Assert.Equal("complete", own.GetProperty("status").GetString());
        var files = own.GetProperty("files").EnumerateArray().ToList();
        Assert.Contains(files, f => f.GetProperty("name").GetString() == "core"); // serve's default: the memory too
        var file = files.First(f => f.GetProperty("name").GetString() != "core");
        var bytes = await client.GetByteArrayAsync(file.GetProperty("url").GetString());
        Assert.Equal(file.GetProperty("bytes").GetInt64(), bytes.Length);
        Assert.All(listing, s => Assert.StartsWith("product-photos", s.GetProperty("function").GetString(), StringComparison.Ordinal)); // the photos chain only
    }

    [Fact]
    public async Task The_dashboard_of_the_host_shows_the_intrusion_with_its_rule_nodes_highlighted_its_rule_and_its_trace_in_headless_chromium()
    {
        var node = Tools.Find("node") ?? throw new Xunit.Sdk.XunitException("node is not installed: the dashboard test drives Chromium from Node (run ./faasmon)");
        var chromium = Tools.Chromium() ?? throw new Xunit.Sdk.XunitException("chromium is not installed: run ./faasmon, or apt-get install chromium");
        var dashboard = Path.Combine(Tools.RepositoryRoot, "monitor", "Dashboard");
        using var client = serve.Client();
        var intrusion = (await ItemsAsync(client, "/api/invocations?limit=500&verdict=intrusion")).First(i => i.GetProperty("rules").GetArrayLength() > 0);
        var id = intrusion.GetProperty("id").GetString()!;
        var verdict = JsonDocument.Parse(await client.GetStringAsync($"/api/invocations/{id}")).RootElement.GetProperty("verdict");
        var expected = verdict.GetProperty("ruleHits").EnumerateArray().SelectMany(h => h.GetProperty("nodeIds").EnumerateArray().Select(n => n.GetInt32()))
            .Concat(verdict.TryGetProperty("topNodes", out var top) ? top.EnumerateArray().Select(n => n.GetProperty("nodeId").GetInt32()) : [])
            .Distinct().Order().ToList();

        // the snapshots of its path are listed too, once taken (a few seconds after the final verdict)
        var snapshots = new List<string>();
        for (var i = 0; i < 120 && snapshots.Count == 0; i++)
        {
            snapshots = [.. JsonDocument.Parse(await client.GetStringAsync($"/api/invocations/{id}/snapshots")).RootElement.EnumerateArray().Select(s => s.GetProperty("instance").GetString()!)];
            if (snapshots.Count == 0)
            {
                await Task.Delay(250);
            }
        }

        var screenshot = Path.Combine(AppContext.BaseDirectory, "dashboard-screenshots", "dashboard-serve.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        File.Delete(screenshot);
        var config = JsonSerializer.Serialize(new
        {
            baseUrl = serve.Api.ToString().TrimEnd('/'),
            user = serve.Host.Credentials.User,
            password = serve.Host.Credentials.Password,
            chromium,
            dashboardDir = dashboard,
            screenshot,
            id,
            snapshots = snapshots.Count > 0,
            timeoutMs = 150_000,
        });
        var driver = Path.Combine(Tools.RepositoryRoot, "tests", "FaaSMon.Monitor.Tests", "DashboardDriver", "drive-real.cjs");
        var (exitCode, stdout, stderr) = await NodeProcess.RunAsync(node, [driver, config], TimeSpan.FromSeconds(180));
        Assert.True(exitCode == 0, $"the Chromium driver failed ({exitCode}): {stderr}");
        output.WriteLine(stdout);
        output.WriteLine($"screenshot: {screenshot}");
        var page = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(200, page.GetProperty("pageStatus").GetInt32());
        Assert.Empty(page.GetProperty("consoleErrors").EnumerateArray());
        Assert.Equal(expected, page.GetProperty("highlighted").EnumerateArray().Select(n => n.GetInt32()).Order().ToList());
        var rule = verdict.GetProperty("ruleHits")[0];
        Assert.Contains(page.GetProperty("rules").EnumerateArray(), r => r.GetProperty("rule").GetString() == rule.GetProperty("ruleId").GetString()
            && r.GetProperty("explanation").GetString() == rule.GetProperty("explanation").GetString());
        Assert.Contains(page.GetProperty("trace").EnumerateArray(), h => h.GetProperty("id").GetString() == id && h.GetProperty("intrusion").GetBoolean());
        Assert.NotEmpty(snapshots);
        var listed = page.GetProperty("snapshots").EnumerateArray().ToList();
        Assert.Equal(snapshots.Order(), listed.Select(s => s.GetProperty("instance").GetString()!).Order());
        Assert.All(listed, s => Assert.All(s.GetProperty("links").EnumerateArray(), l => Assert.StartsWith("/api/snapshots/", l.GetString(), StringComparison.Ordinal)));
        Assert.True(new FileInfo(screenshot).Length > 10_000, "a screenshot was saved");
        try
        {
            File.Copy(screenshot, "/var/tmp/evidence/dashboard-serve.png", overwrite: true);
        }
        catch (IOException)
        {
            // evidence folder is a convenience of this machine, not part of the test
        }
    }

    [Fact]
    public async Task An_invocation_is_found_by_id_and_by_call_id_with_its_record_graph_in_three_formats_and_its_pcap()
    {
        using var client = serve.Client();
        var item = (await ItemsAsync(client, "/api/invocations?limit=500&verdict=benign")).First(i => i.TryGetProperty("status", out _));
        var id = item.GetProperty("id").GetString()!;
        var byId = JsonDocument.Parse(await client.GetStringAsync($"/api/invocations/{id}")).RootElement;
        Assert.Equal(id, byId.GetProperty("record").GetProperty("spanId").GetString());
        Assert.Equal(item.GetProperty("callId").GetString(), byId.GetProperty("record").GetProperty("callId").GetString());
        var byCallId = JsonDocument.Parse(await client.GetStringAsync($"/api/invocations/{item.GetProperty("callId").GetString()}")).RootElement;
        Assert.Equal(item.GetProperty("callId").GetString(), byCallId.GetProperty("invocation").GetProperty("callId").GetString());

        var json = ProvenanceGraphJson.Deserialize(await client.GetStringAsync($"/api/invocations/{id}/graph"));
        Assert.Equal(item.GetProperty("function").GetString(), json.Function);
        Assert.Contains(json.Nodes, n => n.Kind == NodeKind.Process);
        var graphml = await client.GetStringAsync($"/api/invocations/{id}/graph?format=graphml");
        Assert.Contains("<graphml", graphml, StringComparison.Ordinal);
        var dot = await client.GetStringAsync($"/api/invocations/{id}/graph?format=dot");
        Assert.StartsWith("digraph", dot, StringComparison.Ordinal);

        // the pcap: a standalone capture file of this invocation's packets
        var withPcap = (await ItemsAsync(client, "/api/invocations?limit=500")).Select(i => i.GetProperty("id").GetString()!)
            .FirstOrDefault(i => JsonDocument.Parse(client.GetStringAsync($"/api/invocations/{i}").Result).RootElement.GetProperty("links").TryGetProperty("pcap", out _));
        Assert.NotNull(withPcap);
        var pcap = await client.GetByteArrayAsync($"/api/invocations/{withPcap}/pcap");
        Assert.True(pcap.Length > 24 + 16, $"{pcap.Length} bytes");
        Assert.Equal(0xa1b2c3d4u, BitConverter.ToUInt32(pcap, 0)); // little-endian microsecond pcap
    }

    [Fact]
    public async Task A_trace_lists_its_chain_of_functions_in_order_with_the_calls_between_them()
    {
        using var client = serve.Client();
        // a hop whose parent is another stored hop (a client may send a traceparent of its own: then the entry hop has a
        // parent id too, but no stored parent)
        var items = await ItemsAsync(client, "/api/invocations?limit=500");
        var stored = items.Select(i => i.GetProperty("id").GetString()).ToHashSet();
        var traces = items
            .Where(i => i.TryGetProperty("parentId", out var parent) && stored.Contains(parent.GetString()) && i.TryGetProperty("traceId", out _))
            .Select(i => i.GetProperty("traceId").GetString()!).Distinct().ToList();
        Assert.NotEmpty(traces); // the purchase chain calls functions through the proxy
        var trace = JsonDocument.Parse(await client.GetStringAsync($"/api/traces/{traces[0]}")).RootElement;
        var members = trace.GetProperty("invocations").EnumerateArray().ToList();
        Assert.True(members.Count >= 2, trace.ToString());
        var starts = members.Select(m => m.GetProperty("startedAt").GetDateTimeOffset()).ToList();
        Assert.Equal(starts.Order(), starts);
        var ids = members.Select(m => m.GetProperty("id").GetString()).ToHashSet();
        var calls = trace.GetProperty("calls").EnumerateArray().ToList();
        Assert.NotEmpty(calls);
        Assert.All(calls, c => Assert.True(ids.Contains(c.GetProperty("from").GetString()) && ids.Contains(c.GetProperty("to").GetString())));
    }

    [Theory]
    [InlineData("/api/invocations?limit=abc", "limit")]
    [InlineData("/api/invocations?limit=0", "limit")]
    [InlineData("/api/invocations?limit=100000", "limit")]
    [InlineData("/api/invocations?since=yesterday", "since")]
    [InlineData("/api/invocations?verdict=evil", "verdict")]
    [InlineData("/api/invocations?function=Bad%20Name", "function")]
    [InlineData("/api/invocations?cursor=%%%", "cursor")]
    [InlineData("/api/invocations?cursor=bm90LWEtY3Vyc29y", "cursor")]
    [InlineData("/api/invocations?limit=1&limit=2", "limit")]
    [InlineData("/api/invocations?order=asc", "order")]
    [InlineData("/api/invocations/..%2F..%2Fetc%2Fpasswd", "invocation")]
    [InlineData("/api/invocations/abc/graph?format=svg", "format")]
    [InlineData("/api/traces/not-a-trace", "trace id")]
    public async Task Malformed_parameters_are_400_saying_which(string path, string named)
    {
        using var client = serve.Client();
        using var response = await client.GetAsync(path);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{path}: {(int)response.StatusCode} {body}");
        Assert.Contains(named, JsonDocument.Parse(body).RootElement.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/api/invocations/0000000000000000")]
    [InlineData("/api/invocations/0000000000000000/graph")]
    [InlineData("/api/invocations/0000000000000000/pcap")]
    [InlineData("/api/traces/00000000000000000000000000000000")]
    public async Task Unknown_ids_are_404(string path)
    {
        using var client = serve.Client();
        using var response = await client.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.False(string.IsNullOrEmpty(JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString()));
    }

    [Fact]
    public async Task A_10_MB_request_is_refused_and_the_host_keeps_answering()
    {
        using var client = serve.Client();
        using var big = new ByteArrayContent(new byte[10 * 1024 * 1024]);
        HttpStatusCode status;
        try
        {
            using var response = await client.PostAsync("/api/invocations", big);
            status = response.StatusCode;
        }
        catch (HttpRequestException e) when (e.InnerException is IOException or SocketException)
        {
            status = HttpStatusCode.RequestEntityTooLarge; // Kestrel may close the connection before all 10 MB are sent
        }

        Assert.True(status is HttpStatusCode.RequestEntityTooLarge or HttpStatusCode.MethodNotAllowed, $"{(int)status}");
        using var longUrl = await client.GetAsync("/api/invocations?function=" + new string('a', 10 * 1024));
        Assert.True(longUrl.StatusCode is HttpStatusCode.RequestUriTooLong or HttpStatusCode.BadRequest, $"{(int)longUrl.StatusCode}");
        using var fine = await client.GetAsync("/api/invocations?limit=1");
        Assert.Equal(HttpStatusCode.OK, fine.StatusCode);
    }

    [Fact]
    public async Task A_bearer_token_from_the_secrets_folder_is_accepted()
    {
        // the token is read at start: a host started after the file exists takes it
        var secrets = Path.Combine(serve.DataDirectory, "token-secrets");
        Directory.CreateDirectory(secrets);
        File.WriteAllText(Path.Combine(secrets, "basic-auth-user"), "ops");
        File.WriteAllText(Path.Combine(secrets, "basic-auth-password"), "correct horse");
        File.WriteAllText(Path.Combine(secrets, "api-token"), "t0ken-" + Guid.NewGuid().ToString("N"));
        var proxy = Path.Combine(serve.DataDirectory, "token-proxy");
        Directory.CreateDirectory(Path.Combine(proxy, "records"));
        File.WriteAllText(Path.Combine(serve.DataDirectory, "token-events.ndjson"), "");
        await using var host = await ServeFixture.StartAsync(new Dictionary<string, string?>
        {
            ["Monitor:DataDirectory"] = Path.Combine(serve.DataDirectory, "token-host"),
            ["Monitor:Listen"] = "127.0.0.1:0",
            ["Monitor:SecretsDirectory"] = secrets,
            ["Monitor:ProxyData"] = proxy,
            ["Monitor:TraceEvents"] = Path.Combine(serve.DataDirectory, "token-events.ndjson"),
        }, CancellationToken.None);
        using var client = new HttpClient { BaseAddress = host.ApiUrl };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", File.ReadAllText(Path.Combine(secrets, "api-token")));
        using var ok = await client.GetAsync("/api/invocations");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        using var basic = serve.Client(host);
        Assert.Equal(HttpStatusCode.OK, (await basic.GetAsync("/api/invocations")).StatusCode);
        Assert.Equal("ops", host.Credentials.User);
    }

    [Fact]
    public async Task Verdicts_survive_a_restart()
    {
        using (var before = serve.Client())
        {
            var ids = (await ItemsAsync(before, "/api/invocations?limit=500")).Select(i => i.GetProperty("id").GetString()).ToList();
            var intrusions = (await ItemsAsync(before, "/api/invocations?limit=500&verdict=intrusion")).Select(i => i.GetProperty("id").GetString()).ToList();
            await serve.RestartAsync();
            using var after = serve.Client();
            var afterIds = (await ItemsAsync(after, "/api/invocations?limit=500")).Select(i => i.GetProperty("id").GetString()).ToList();
            Assert.True(ids.All(afterIds.Contains), "every invocation listed before the restart is listed after it");
            Assert.Equal(intrusions, (await ItemsAsync(after, "/api/invocations?limit=500&verdict=intrusion")).Select(i => i.GetProperty("id").GetString()).ToList());
            var graph = await after.GetAsync($"/api/invocations/{intrusions[0]}/graph");
            Assert.Equal(HttpStatusCode.OK, graph.StatusCode);
        }
    }

    private static async Task<List<JsonElement>> ItemsAsync(HttpClient client, string path) =>
        [.. JsonDocument.Parse(await client.GetStringAsync(path)).RootElement.GetProperty("items").EnumerateArray()];
}
