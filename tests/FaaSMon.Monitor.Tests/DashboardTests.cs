using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using FaaSMon.Core;
using FaaSMon.Monitor.Dashboard;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// The dashboard on a real Kestrel: MapDashboard's headers and refusals, and the page itself in headless Chromium
/// (playwright-core) over real provenance graphs from the collected dataset.
/// </summary>
public sealed class DashboardTests(DashboardServer server, ITestOutputHelper output) : IClassFixture<DashboardServer>
{
    private static readonly string[] BenignChain = ["product-photos", "product-photos-assign", "product-photos-message", "product-photos-record"];

    [Fact]
    public async Task The_page_and_its_assets_have_their_content_types_a_strict_policy_and_etags()
    {
        using var client = server.Client();

        using var page = await client.GetAsync(new Uri("/", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        var csp = string.Join(' ', page.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("default-src 'self'", csp, StringComparison.Ordinal);
        Assert.Contains("script-src 'self'", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-inline", csp, StringComparison.Ordinal);
        Assert.DoesNotContain("unsafe-eval", csp, StringComparison.Ordinal);
        Assert.Equal("nosniff", Assert.Single(page.Headers.GetValues("X-Content-Type-Options")));
        var html = await page.Content.ReadAsStringAsync();
        Assert.Matches("<script src=\"/dashboard/app.js\"", html);
        Assert.DoesNotMatch(new Regex(@"<script(?![^>]*\ssrc=)", RegexOptions.IgnoreCase), html);
        Assert.DoesNotMatch(new Regex(@"\s(on[a-z]+|style)\s*=", RegexOptions.IgnoreCase), html);

        foreach (var (name, mediaType) in new[] { ("app.js", "text/javascript"), ("app.css", "text/css"), ("index.html", "text/html") })
        {
            using var asset = await client.GetAsync(new Uri($"/dashboard/{name}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, asset.StatusCode);
            Assert.Equal(mediaType, asset.Content.Headers.ContentType?.MediaType);
            Assert.Equal("utf-8", asset.Content.Headers.ContentType?.CharSet);
            Assert.Equal(csp, string.Join(' ', asset.Headers.GetValues("Content-Security-Policy")));
            Assert.Equal("nosniff", Assert.Single(asset.Headers.GetValues("X-Content-Type-Options")));
            Assert.True(asset.Headers.CacheControl?.NoCache, $"{name}: Cache-Control {asset.Headers.CacheControl}");
            var etag = asset.Headers.ETag ?? throw new Xunit.Sdk.XunitException($"{name}: no ETag");
            Assert.NotEmpty(await asset.Content.ReadAsByteArrayAsync());

            using var again = new HttpRequestMessage(HttpMethod.Get, new Uri($"/dashboard/{name}", UriKind.Relative));
            again.Headers.IfNoneMatch.Add(etag);
            using var notModified = await client.SendAsync(again);
            Assert.Equal(HttpStatusCode.NotModified, notModified.StatusCode);
        }

        output.WriteLine($"embedded: {string.Join(", ", DashboardEndpoints.AssetNames.Order(StringComparer.Ordinal))}");
    }

    [Theory]
    [InlineData("/dashboard/../appsettings.json")]
    [InlineData("/dashboard/..%2fappsettings.json")]
    [InlineData("/dashboard/%2e%2e/%2e%2e/faasmon.dll")]
    [InlineData("/dashboard/..\\appsettings.json")]
    [InlineData("/dashboard/%2Fetc%2Fpasswd")]
    [InlineData("/dashboard//etc/passwd")]
    [InlineData("/dashboard/nothing-here.js")]
    [InlineData("/dashboard/INDEX.HTML")]
    [InlineData("/dashboard/")]
    public async Task Unknown_names_and_paths_that_leave_the_bundle_are_404(string rawPath)
    {
        // Raw on a socket: HttpClient would resolve the dot segments before sending them.
        var (status, headers, body) = await server.RawGetAsync(rawPath);

        // Kestrel may refuse a backslash in the target outright; anything else is simply not a bundled name.
        Assert.True(status == 404 || (status == 400 && rawPath.Contains('\\')), $"{rawPath}: {status}");
        Assert.DoesNotContain("root:", body, StringComparison.Ordinal);
        Assert.DoesNotContain("\"Logging\"", body, StringComparison.Ordinal);
        if (headers.Contains("content-security-policy:", StringComparison.OrdinalIgnoreCase))
        {
            Assert.Contains("x-content-type-options: nosniff", headers, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Fact]
    public async Task In_headless_Chromium_an_attack_shows_its_causing_subgraph_its_rule_hits_and_its_trace()
    {
        var node = Tools.Find("node") ?? throw new Xunit.Sdk.XunitException("node is not installed: the dashboard test drives Chromium from Node (run ./faasmon, which installs nodejs)");
        var chromium = Tools.Chromium() ?? throw new Xunit.Sdk.XunitException("chromium is not installed: the dashboard test needs Debian's chromium package (run ./faasmon, or apt-get install chromium)");
        var dashboard = Path.Combine(Tools.RepositoryRoot, "monitor", "Dashboard");
        if (!Directory.Exists(Path.Combine(dashboard, "node_modules", "playwright-core")))
        {
            Assert.Fail($"playwright-core is not installed in {dashboard}: run ./faasmon, or npm ci there");
        }

        var screenshot = Path.Combine(AppContext.BaseDirectory, "dashboard-screenshots", "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        File.Delete(screenshot);
        var api = server.Api;
        var config = JsonSerializer.Serialize(new
        {
            baseUrl = server.BaseUrl,
            user = DashboardServer.User,
            password = DashboardServer.Password,
            chromium,
            dashboardDir = dashboard,
            screenshot,
            attackId = api.AttackId,
            benignId = api.BenignId,
            largeId = api.LargeId,
            hostileText = FakeMonitorApi.HostileFunction,
            timeoutMs = 150_000,
        });

        var driver = Path.Combine(Tools.RepositoryRoot, "tests", "FaaSMon.Monitor.Tests", "DashboardDriver", "drive-dashboard.cjs");
        var (exitCode, stdout, stderr) = await NodeProcess.RunAsync(node, [driver, config], TimeSpan.FromSeconds(180));
        output.WriteLine(stderr);
        Assert.True(exitCode == 0, $"the Chromium driver failed ({exitCode}): {stderr}");
        output.WriteLine(stdout);
        using var json = JsonDocument.Parse(stdout);
        var page = json.RootElement;

        Assert.Equal(200, page.GetProperty("pageStatus").GetInt32());
        Assert.Empty(Strings(page.GetProperty("consoleErrors")));
        Assert.Empty(Strings(page.GetProperty("dialogs")));

        // Every invocation listed, newest first; the verdict filter leaves the intrusions only.
        Assert.Equal(api.IdsNewestFirst(), Strings(page.GetProperty("rowsAll")));
        Assert.Equal(api.IdsNewestFirst("intrusion"), Strings(page.GetProperty("rowsIntrusion")));

        // A function name out of captured traffic is shown as text, never run.
        var hostile = page.GetProperty("hostile");
        Assert.True(hostile.GetProperty("textShown").GetBoolean(), "the hostile function name is not shown verbatim");
        Assert.Equal(0, hostile.GetProperty("injectedElements").GetInt32());
        Assert.Equal(JsonValueKind.Null, hostile.GetProperty("xss").ValueKind);

        // The attack: exactly the verdict's nodes highlighted, its rule explained, its trace shown and marked.
        var attack = page.GetProperty("attack");
        var verdict = api.AttackVerdict;
        var expected = verdict.TopNodes.Select(n => n.NodeId).Concat(verdict.RuleHits.SelectMany(h => h.NodeIds)).Distinct().Order().ToArray();
        var highlighted = attack.GetProperty("highlighted").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        Assert.True(highlighted.Length > 0, "no node highlighted");
        Assert.Equal(expected, highlighted);
        Assert.True(attack.GetProperty("graphVisible").GetBoolean());
        Assert.True(attack.GetProperty("canvases").GetInt32() > 0, "cytoscape drew no canvas");
        Assert.Equal(api.AttackGraph.Nodes.Count, attack.GetProperty("drawn").GetInt32());
        var hit = Assert.Single(attack.GetProperty("ruleHits").EnumerateArray());
        Assert.Equal(verdict.RuleHits[0].RuleId, hit.GetProperty("rule").GetString());
        Assert.Equal(verdict.RuleHits[0].Explanation, hit.GetProperty("explanation").GetString());
        Assert.True(hit.GetProperty("visible").GetBoolean(), "the rule explanation is not visible");
        var attackHop = Assert.Single(attack.GetProperty("trace").EnumerateArray());
        Assert.Equal(api.AttackId, attackHop.GetProperty("id").GetString());
        Assert.Equal("product-photos-message", attackHop.GetProperty("function").GetString());
        Assert.True(attackHop.GetProperty("intrusion").GetBoolean(), "the trace does not mark the intrusion");
        Assert.True(attackHop.GetProperty("visible").GetBoolean(), "the trace chain is not visible");
        Assert.Contains("intrusion", attack.GetProperty("traceNote").GetString(), StringComparison.Ordinal);
        var downloads = Strings(attack.GetProperty("downloads"));
        Assert.Contains($"/api/invocations/{api.AttackId}/pcap", downloads);
        Assert.Contains($"/api/invocations/{api.AttackId}/graph?format=graphml", downloads);

        // A benign hop of a four-hop chain: the entry hop calls the other three, no intrusion, nothing highlighted.
        var benign = page.GetProperty("benign");
        Assert.Empty(benign.GetProperty("highlighted").EnumerateArray());
        var hops = benign.GetProperty("trace").EnumerateArray().ToArray();
        Assert.Equal(BenignChain, hops.Select(h => h.GetProperty("function").GetString()));
        Assert.Equal(JsonValueKind.Null, hops[0].GetProperty("arrow").ValueKind);
        Assert.All(hops[1..], h => Assert.Equal("→", h.GetProperty("arrow").GetString()));
        Assert.All(hops, h => Assert.False(h.GetProperty("intrusion").GetBoolean()));
        Assert.Equal(api.BenignId, Assert.Single(hops, h => h.GetProperty("current").GetBoolean()).GetProperty("id").GetString());

        // Thousands of nodes: first the cause and its neighbourhood, everything on request.
        var large = page.GetProperty("large");
        var first = large.GetProperty("first");
        Assert.Equal(api.LargeGraph.Nodes.Count, first.GetProperty("total").GetInt32());
        Assert.InRange(first.GetProperty("drawn").GetInt32(), expected.Length, 300);
        Assert.True(large.GetProperty("buttonVisible").GetBoolean(), "no button to show the whole large graph");
        Assert.Equal(api.LargeGraph.Nodes.Count, large.GetProperty("all").GetProperty("drawn").GetInt32());
        output.WriteLine($"large graph: {first.GetProperty("drawn").GetInt32()} of {api.LargeGraph.Nodes.Count} nodes in {large.GetProperty("msFirst").GetInt32()} ms, all in {large.GetProperty("msAll").GetInt32()} ms");

        Assert.True(File.Exists(screenshot), $"no screenshot at {screenshot}");
        Assert.True(new FileInfo(screenshot).Length > 10_000, "the screenshot is suspiciously small");
        output.WriteLine($"screenshot: {screenshot}");
        try
        {
            Directory.CreateDirectory("/var/tmp/evidence");
            File.Copy(screenshot, "/var/tmp/evidence/dashboard.png", overwrite: true);
            output.WriteLine("copied to /var/tmp/evidence/dashboard.png");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            output.WriteLine($"could not copy the screenshot to /var/tmp/evidence: {e.Message}");
        }
    }

    private static string[] Strings(JsonElement array) => [.. array.EnumerateArray().Select(e => e.GetString() ?? "")];
}

/// <summary>A real Kestrel on loopback with MapDashboard and, until faasmon serve lands, <see cref="FakeMonitorApi"/>.</summary>
public sealed class DashboardServer : IAsyncLifetime
{
    public const string User = "admin";
    public const string Password = "dashboard-test-password";

    private WebApplication? app;

    internal FakeMonitorApi Api { get; } = FakeMonitorApi.FromFixtures(Path.Combine(AppContext.BaseDirectory, "fixtures", "dashboard"));

    public string BaseUrl { get; private set; } = "";

    private static string BasicAuth => Convert.ToBase64String(Encoding.UTF8.GetBytes($"{User}:{Password}"));

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddRouting();
        app = builder.Build();
        // The host puts the dashboard and the API behind basic auth; so does this stand-in, so the browser's credentials are exercised.
        app.Use(async (context, next) =>
        {
            if (context.Request.Headers.Authorization.ToString() != $"Basic {BasicAuth}")
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                context.Response.Headers.WWWAuthenticate = "Basic realm=\"faasmon\"";
                return;
            }

            await next(context);
        });
        app.MapDashboard();
        Api.Map(app);
        await app.StartAsync();
        BaseUrl = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single().TrimEnd('/');
    }

    public async Task DisposeAsync()
    {
        if (app is not null)
        {
            await app.DisposeAsync();
        }
    }

    public HttpClient Client()
    {
        var client = new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic", BasicAuth);
        return client;
    }

    /// <summary>One GET with the path exactly as given: status, header block, body.</summary>
    public async Task<(int Status, string Headers, string Body)> RawGetAsync(string rawPath)
    {
        var uri = new Uri(BaseUrl);
        using var tcp = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await tcp.ConnectAsync(uri.Host, uri.Port, timeout.Token);
        await using var stream = tcp.GetStream();
        var request = $"GET {rawPath} HTTP/1.1\r\nHost: {uri.Authority}\r\nAuthorization: Basic {BasicAuth}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), timeout.Token);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var response = await reader.ReadToEndAsync(timeout.Token);
        var split = response.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var head = split < 0 ? response : response[..split];
        var status = int.Parse(head.Split(' ', 3)[1], System.Globalization.CultureInfo.InvariantCulture);
        return (status, head, split < 0 ? "" : response[(split + 4)..]);
    }
}

/// <summary>
/// A stand-in for faasmon serve's read endpoints (/var/tmp/contract/api.md, v1) over real graphs from the dataset
/// (fixtures/dashboard: a reverse-shell invocation and the four hops of one benign trace), with made-up but plausible
/// verdicts that name real node ids. Replace Map with the real host and this class goes.
/// </summary>
internal sealed class FakeMonitorApi
{
    /// <summary>A function name as captured traffic could carry it: markup that runs if inserted as HTML.</summary>
    public const string HostileFunction = "<img src=x onerror=\"window.__xss=1\">";

    private static readonly byte[] EmptyPcap = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];

    private readonly List<Entry> entries;

    private FakeMonitorApi(List<Entry> entries) => this.entries = entries;

    public string AttackId => entries.Single(e => e.Graph?.GraphId == AttackGraph.GraphId).Summary.Id;

    public string BenignId => entries.Single(e => e.Summary.Function == "product-photos-message" && e.Summary.Verdict == "benign").Summary.Id;

    public string LargeId => entries.Single(e => e.Graph == LargeGraph).Summary.Id;

    public ProvenanceGraph AttackGraph { get; private init; } = null!;

    public ProvenanceGraph LargeGraph { get; private init; } = null!;

    public Verdict AttackVerdict { get; private init; } = null!;

    public static FakeMonitorApi FromFixtures(string folder)
    {
        var attack = Read(Path.Combine(folder, "attack-reverse-shell.json"));
        int Node(string label) => attack.Nodes.Single(n => n.Label == label).Id;
        var (function, sh, base64, outbox, binSh) = (Node("function-process"), Node("sh"), Node("base64"), Node("/tmp/outbox.log"), Node("/bin/sh"));
        var verdict = new Verdict(attack.GraphId, attack.CallId, attack.TraceId, attack.Function, 0.97, "gin-supervised", true,
            [new RuleHit("shell-under-function", "A shell ran under the function's process; the functions never start shells, an injected command does. 'sh' (pid 12347) started by 'function-process' (pid 1980)", [sh])],
            [new(sh, NodeKind.Process, "sh", 0.41), new(base64, NodeKind.Process, "base64", 0.22), new(outbox, NodeKind.File, "/tmp/outbox.log", 0.12), new(function, NodeKind.Process, "function-process", 0.08)],
            [new(function, sh, EdgeKind.Fork, 0.3), new(function, base64, EdgeKind.Fork, 0.15), new(sh, outbox, EdgeKind.Write, 0.1)]);

        // The same attack drowned in 4,000 files the function process opened: what a large graph looks like.
        var extra = Enumerable.Range(0, 4000).Select(i => new GraphNode(attack.Nodes.Count + i, NodeKind.File, $"/tmp/cache/blob-{i:D4}")).ToList();
        var large = attack with
        {
            GraphId = attack.GraphId + "-large",
            CallId = "5b6efa7f-0000-4000-8000-1a26e0001a26",
            TraceId = "5b6efa7f1a26e0005b6efa7f1a26e000",
            Nodes = [.. attack.Nodes, .. extra],
            Edges = [.. attack.Edges, .. extra.Select(n => new GraphEdge(function, n.Id, EdgeKind.Open, "openat", 1, 1))],
        };

        var entries = new List<Entry> { Entry.Of(attack, verdict), Entry.Of(large, verdict with { GraphId = large.GraphId }, idOverride: "5b6efa7f1a26e000", minutesLater: 1) };
        foreach (var file in Directory.GetFiles(folder, "benign-*.json").Order(StringComparer.Ordinal))
        {
            var graph = Read(file);
            entries.Add(Entry.Of(graph, new Verdict(graph.GraphId, graph.CallId, graph.TraceId, graph.Function, 0.03, "gin-supervised", false, [], [], [])));
        }

        entries.Add(new Entry(
            new FakeInvocationSummary("0123456789abcdef", "not-a-call-id", HostileFunction, "x", null, null, "GET", "/function/x?q=<script>window.__xss=2</script>", 200,
                DateTimeOffset.Parse("2026-12-01T20:20:00Z", System.Globalization.CultureInfo.InvariantCulture), 1.0, "pending", null, null, [], false, false),
            null, null));
        var spans = entries.Select(e => e.Summary.Id).ToHashSet(StringComparer.Ordinal);
        foreach (var entry in entries)
        {
            if (entry.ParentSpan is { } parent && spans.Contains(parent))
            {
                entry.Summary = entry.Summary with { ParentId = parent };
            }
        }

        return new FakeMonitorApi(entries) { AttackGraph = attack, LargeGraph = large, AttackVerdict = verdict };
    }

    public string[] IdsNewestFirst(string? verdict = null) =>
        [.. Newest().Where(e => verdict is null || e.Summary.Verdict == verdict).Select(e => e.Summary.Id)];

    public void Map(IEndpointRouteBuilder app)
    {
        var json = ProvenanceGraphJson.Options;
        app.MapGet("/api/invocations", (string? function, string? verdict, int? limit) =>
        {
            if (verdict is not (null or "intrusion" or "benign" or "pending") || limit is < 1 or > 500)
            {
                return Results.Json(new { error = "malformed parameters" }, json, statusCode: 400);
            }

            var items = Newest().Select(e => e.Summary).Where(s => (function is null || s.Function == function) && (verdict is null || s.Verdict == verdict)).Take(limit ?? 50);
            return Results.Json(new { items, next = (string?)null }, json);
        });
        app.MapGet("/api/invocations/{reference}", (string reference) => Find(reference) is { } e
            ? Results.Json(new
            {
                invocation = e.Summary,
                verdict = e.Verdict,
                hops = entries.Where(o => o != e && o.Summary.CallId == e.Summary.CallId).Select(o => o.Summary.Id),
                links = new
                {
                    graph = $"/api/invocations/{e.Summary.Id}/graph",
                    pcap = e.HasPcap ? $"/api/invocations/{e.Summary.Id}/pcap" : null,
                    trace = e.Summary.TraceId is { } t ? $"/api/traces/{t}" : null,
                    snapshots = $"/api/invocations/{e.Summary.Id}/snapshots",
                },
            }, json)
            : Results.Json(new { error = "unknown invocation" }, json, statusCode: 404));
        app.MapGet("/api/invocations/{reference}/graph", (string reference, string? format) =>
        {
            var fmt = GraphFormat.Json;
            if (format is not null && !ProvenanceGraphExport.TryParseFormat(format, out fmt))
            {
                return Results.Json(new { error = "format is json, graphml or dot" }, json, statusCode: 400);
            }

            return Find(reference) is { Graph: { } graph }
                ? Results.Text(ProvenanceGraphExport.Write(graph, fmt), ProvenanceGraphExport.ContentType(fmt))
                : Results.Json(new { error = "no graph" }, json, statusCode: 404);
        });
        app.MapGet("/api/invocations/{reference}/pcap", (string reference) => Find(reference) is { HasPcap: true }
            ? Results.Bytes(EmptyPcap, "application/vnd.tcpdump.pcap")
            : Results.Json(new { error = "no pcap" }, json, statusCode: 404));
        // the contract: an invocation with no snapshots taken lists none
        app.MapGet("/api/invocations/{reference}/snapshots", (string reference) => Find(reference) is not null
            ? Results.Json(Array.Empty<object>())
            : Results.NotFound(new { error = "no such invocation" }));
        app.MapGet("/api/traces/{traceId}", (string traceId) =>
        {
            var hops = entries.Where(e => e.Summary.TraceId == traceId).OrderBy(e => e.Summary.StartedAt).Select(e => e.Summary).ToList();
            if (hops.Count == 0)
            {
                return Results.Json(new { error = "unknown trace" }, json, statusCode: 404);
            }

            var calls = hops.Where(h => h.ParentId is not null).Select(h => new { from = h.ParentId, to = h.Id, untraced = false });
            return Results.Json(new { traceId, invocations = hops, calls, intrusion = hops.Any(h => h.Verdict == "intrusion") }, json);
        });
    }

    private IEnumerable<Entry> Newest() => entries.OrderByDescending(e => e.Summary.StartedAt);

    private Entry? Find(string reference) =>
        entries.FirstOrDefault(e => e.Summary.Id == reference)
        ?? entries.Where(e => e.Summary.CallId == reference).OrderBy(e => e.Summary.StartedAt).FirstOrDefault();

    private static ProvenanceGraph Read(string path) => ProvenanceGraphJson.Deserialize(File.ReadAllText(path));

    private sealed class Entry(FakeInvocationSummary summary, ProvenanceGraph? graph, Verdict? verdict)
    {
        public FakeInvocationSummary Summary { get; set; } = summary;

        public ProvenanceGraph? Graph { get; } = graph;

        public Verdict? Verdict { get; } = verdict;

        public string? ParentSpan { get; private init; }

        public bool HasPcap { get; private init; }

        /// <summary>The summary the host would make of a graph: its own Invocation node's attributes.</summary>
        public static Entry Of(ProvenanceGraph graph, Verdict verdict, string? idOverride = null, int minutesLater = 0)
        {
            var self = graph.Nodes.Single(n => n.Kind == NodeKind.Invocation && n.Attributes?.GetValueOrDefault("role") == "self").Attributes!;
            var invariant = System.Globalization.CultureInfo.InvariantCulture;
            var summary = new FakeInvocationSummary(
                idOverride ?? self["spanId"], graph.CallId, graph.Function ?? "", graph.Instance, graph.TraceId, null,
                self.GetValueOrDefault("method"), self.GetValueOrDefault("path"), int.Parse(self["status"], invariant),
                DateTimeOffset.Parse(self["opened"], invariant).AddMinutes(minutesLater), double.Parse(self["durationMs"], invariant),
                verdict.IsIntrusion ? "intrusion" : "benign", verdict.Score, verdict.ModelName, [.. verdict.RuleHits.Select(h => h.RuleId)],
                graph.Ambiguous, graph.Truncated);
            return new Entry(summary, graph, verdict) { ParentSpan = self.GetValueOrDefault("parentSpanId"), HasPcap = self.ContainsKey("pcap") };
        }
    }
}

/// <summary>The contract's InvocationSummary.</summary>
internal sealed record FakeInvocationSummary(
    string Id, string? CallId, string Function, string? Instance, string? TraceId, string? ParentId, string? Method, string? Path,
    int Status, DateTimeOffset StartedAt, double DurationMs, string Verdict, double? Score, string? Model, IReadOnlyList<string> Rules,
    bool Ambiguous, bool Truncated);

/// <summary>Programs the dashboard test needs, found the way a shell would, and the repository it was built from.</summary>
internal static class Tools
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string? Find(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    /// <summary>Debian's chromium binary itself (the /usr/bin/chromium wrapper only adds flags), or what PATH names.</summary>
    public static string? Chromium() =>
        Environment.GetEnvironmentVariable("FAASMON_CHROMIUM") is { Length: > 0 } configured ? configured
        : File.Exists("/usr/lib/chromium/chromium") ? "/usr/lib/chromium/chromium"
        : Find("chromium");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "FaaSMon.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no FaaSMon.sln above {AppContext.BaseDirectory}");
    }
}

/// <summary>Runs node without a shell; on timeout or cancellation the whole tree (node and its Chromium) is killed.</summary>
internal static class NodeProcess
{
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string node, IReadOnlyList<string> arguments, TimeSpan timeout)
    {
        var start = new ProcessStartInfo(node)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{node} did not start");
        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync(CancellationToken.None);
            return (-1, await stdout, $"killed after {timeout}: {await stderr}");
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }

        return (process.ExitCode, await stdout, await stderr);
    }
}
