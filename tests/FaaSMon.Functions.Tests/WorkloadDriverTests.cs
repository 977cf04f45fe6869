using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using System.Text.RegularExpressions;
using FaaSMon.Workload;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Functions.Tests;

/// <summary>
/// The driver's mechanics that need no functions: option checks, the unreachable gateway, and the headers and ground truth
/// of every request, against a real HTTP server on 127.0.0.1 that records what arrives and answers like a healthy store.
/// </summary>
public sealed class WorkloadDriverTests : IAsyncLifetime
{
    private readonly ConcurrentQueue<(string Method, string Path, string CallId, string Traceparent, string Body)> _received = new();
    private LoopbackHttpServer _gateway = null!;
    private string _directory = "";

    public async Task InitializeAsync()
    {
        _directory = WorkloadProcesses.NewTempDirectory();
        _gateway = await LoopbackHttpServer.StartAsync(RecordAsync, CancellationToken.None);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Unknown_attack_family_is_rejected_with_the_valid_names()
    {
        var driver = new WorkloadDriver(NullLogger<WorkloadDriver>.Instance);
        var options = new WorkloadOptions { Gateway = _gateway.BaseUri, Attacks = ["tampering", "sql-injection"] };

        var error = await Assert.ThrowsAsync<ArgumentException>(() => driver.RunAsync(options, null, CancellationToken.None));

        Assert.Contains("sql-injection", error.Message, StringComparison.Ordinal);
        Assert.All(WorkloadDriver.AttackFamilies, family => Assert.Contains(family, error.Message, StringComparison.Ordinal));
        Assert.Empty(_received); // rejected before any request
    }

    [Fact]
    public void All_expands_to_the_five_families_in_order_and_names_are_case_insensitive()
    {
        Assert.Equal(
            ["container-reuse", "credential-theft", "lateral-movement", "reverse-shell", "tampering"],
            WorkloadDriver.AttackFamilies);
        Assert.Equal(WorkloadDriver.AttackFamilies, AttackFamily.Resolve(["all"]));
        Assert.Equal(["tampering", "reverse-shell"], AttackFamily.Resolve(["Tampering", " reverse-shell "]));
        Assert.Empty(AttackFamily.Resolve([]));
    }

    [Fact]
    public async Task Unreachable_gateway_gives_one_clear_error()
    {
        var closed = new TcpListener(IPAddress.Loopback, 0);
        closed.Start();
        var port = ((IPEndPoint)closed.LocalEndpoint).Port;
        closed.Stop();
        var driver = new WorkloadDriver(NullLogger<WorkloadDriver>.Instance);
        var groundTruth = Path.Combine(_directory, "never", "truth.jsonl");

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => driver.RunAsync(
            new WorkloadOptions { Gateway = new Uri($"http://127.0.0.1:{port}"), GroundTruthPath = groundTruth }, null, CancellationToken.None));

        Assert.StartsWith($"gateway http://127.0.0.1:{port}/ is not reachable: ", error.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(groundTruth));
    }

    [Fact]
    public async Task Every_benign_request_carries_a_fresh_call_id_and_trace_and_has_one_ground_truth_line()
    {
        var driver = new WorkloadDriver(NullLogger<WorkloadDriver>.Instance);
        var groundTruth = Path.Combine(_directory, "nested", "truth.jsonl");
        var progress = new ConcurrentQueue<WorkloadProgress>();

        var report = await driver.RunAsync(
            new WorkloadOptions { Gateway = _gateway.BaseUri, Benign = 40, Seed = 7, Concurrency = 3, GroundTruthPath = groundTruth },
            new SynchronousProgress(progress.Enqueue),
            CancellationToken.None);

        var lines = (await File.ReadAllLinesAsync(groundTruth)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var invocations = _received.Where(r => r.Path.StartsWith("/function/", StringComparison.Ordinal)).ToList();
        Assert.Equal(40, lines.Count);
        Assert.Equal(40, invocations.Count);
        Assert.Equal(40, report.RequestsSent);
        Assert.Equal(40, report.BenignSent);
        Assert.Equal(Path.GetFullPath(groundTruth), report.GroundTruthPath);
        Assert.Empty(report.Attacks);
        Assert.Equal(40, progress.Count);
        Assert.Contains(progress, p => p.Done == 40 && p.Total == 40);

        foreach (var line in lines)
        {
            Assert.True(DateTimeOffset.TryParse(line.GetProperty("time").GetString(), out _));
            var callId = line.GetProperty("callId").GetString()!;
            var traceId = line.GetProperty("traceId").GetString()!;
            var spanId = line.GetProperty("spanId").GetString()!;
            Assert.True(Guid.TryParse(callId, out _));
            Assert.Matches("^[0-9a-f]{32}$", traceId);
            Assert.Matches("^[0-9a-f]{16}$", spanId);
            Assert.Equal("benign", line.GetProperty("label").GetString());
            Assert.False(line.TryGetProperty("attackId", out _));
            Assert.False(line.TryGetProperty("affectedBy", out _));
            var sent = Assert.Single(invocations, r => r.CallId == callId);
            Assert.Equal($"00-{traceId}-{spanId}-01", sent.Traceparent);
            Assert.Equal(sent.Method, line.GetProperty("method").GetString());
            Assert.Equal(sent.Path, Regex.Replace(line.GetProperty("path").GetString()!, @"\?.*$", ""));
            Assert.StartsWith($"/function/{line.GetProperty("function").GetString()}", sent.Path, StringComparison.Ordinal);
            Assert.Equal(ExpectedStatus(sent.Method, sent.Path, sent.Body), line.GetProperty("status").GetInt32());
        }

        Assert.Equal(40, lines.Select(l => l.GetProperty("callId").GetString()).Distinct().Count());
        Assert.Equal(40, lines.Select(l => l.GetProperty("traceId").GetString()).Distinct().Count());

        // A realistic mix: the whole chain's entry points, browsing first.
        var functions = lines.Select(l => l.GetProperty("function").GetString()).ToHashSet();
        Assert.Superset(new HashSet<string?> { "product-catalog-api", "product-purchase", "product-photos" }, functions);
        Assert.Equal("/function/product-catalog-api/categories", lines.OrderBy(l => l.GetProperty("time").GetDateTimeOffset()).First().GetProperty("path").GetString());
    }

    [Fact]
    public async Task Benign_traffic_is_the_same_for_the_same_seed_and_varies_with_the_seed()
    {
        static async Task<List<string>> PathsAsync(Uri gateway, int seed)
        {
            var lines = new List<string>();
            var truth = Path.Combine(Path.GetTempPath(), $"faasmon-seed-{Guid.NewGuid():N}.jsonl");
            try
            {
                await new WorkloadDriver(NullLogger<WorkloadDriver>.Instance).RunAsync(
                    new WorkloadOptions { Gateway = gateway, Benign = 25, Seed = seed, Concurrency = 1, GroundTruthPath = truth }, null, CancellationToken.None);
                foreach (var line in await File.ReadAllLinesAsync(truth))
                {
                    var path = JsonDocument.Parse(line).RootElement.GetProperty("path").GetString()!;
                    lines.Add(path.Contains("/photos", StringComparison.Ordinal) ? "photos" : path); // photo URLs carry the photo host's port
                }
            }
            finally
            {
                File.Delete(truth);
            }

            return lines;
        }

        Assert.Equal(await PathsAsync(_gateway.BaseUri, 3), await PathsAsync(_gateway.BaseUri, 3));
        Assert.NotEqual(await PathsAsync(_gateway.BaseUri, 3), await PathsAsync(_gateway.BaseUri, 4));
    }

    [Fact]
    public async Task A_failing_gateway_answer_is_counted_not_fatal()
    {
        await using var failing = await LoopbackHttpServer.StartAsync(
            context =>
            {
                context.Response.StatusCode = context.Request.Path.StartsWithSegments("/function/product-purchase")
                    ? StatusCodes.Status502BadGateway
                    : StatusCodes.Status200OK;
                return context.Response.WriteAsync("[]");
            },
            CancellationToken.None);

        var report = await new WorkloadDriver(NullLogger<WorkloadDriver>.Instance).RunAsync(
            new WorkloadOptions { Gateway = failing.BaseUri, Benign = 30, Seed = 11 }, null, CancellationToken.None);

        var purchase = Assert.Single(report.BenignByFunction, f => f.Function == "product-purchase");
        Assert.Equal(purchase.Sent, purchase.Failed);
        Assert.Equal(0, purchase.Ok);
        Assert.Equal(30, report.BenignSent);
        Assert.Equal(report.BenignSent, report.BenignOk + report.BenignFailed);
        Assert.True(report.BenignOk > 0);
    }

    [Fact]
    public async Task Ground_truth_lines_carry_attack_labels_and_mark_benign_reads_of_tampered_data()
    {
        await using var catalog = await LoopbackHttpServer.StartAsync(
            context => context.Response.WriteAsync(context.Request.Path.Value!.EndsWith("/p-cam-001", StringComparison.Ordinal)
                ? """{"id":"p-cam-001","price":0.01,"tampered":"feedface00112233"}"""
                : """{"id":"p-cam-002","price":2498}"""),
            CancellationToken.None);
        var truth = Path.Combine(_directory, "labels.jsonl");
        await using (var writer = GroundTruthWriter.Open(truth))
        {
            using var http = new HttpClient();
            var client = new GatewayClient(http, catalog.BaseUri, writer, TimeSpan.FromSeconds(5), NullLogger.Instance);
            client.RegisterTampering("feedface00112233", "tampering-1");

            await client.SendAsync(
                GatewayRequest.Post("product-photos-receive", "/", new { url = "http://127.0.0.1:1/stage/x/evil.sh" }),
                new RequestLabel("container-reuse", "container-reuse-1", "stage"),
                CancellationToken.None);
            await client.SendAsync(GatewayRequest.Get("product-catalog-api", "/products/p-cam-001"), RequestLabel.Benign, CancellationToken.None);
            await client.SendAsync(GatewayRequest.Get("product-catalog-api", "/products/p-cam-002"), RequestLabel.Benign, CancellationToken.None);
        }

        var lines = (await File.ReadAllLinesAsync(truth)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(3, lines.Count);
        Assert.Equal("container-reuse", lines[0].GetProperty("label").GetString());
        Assert.Equal("container-reuse-1", lines[0].GetProperty("attackId").GetString());
        Assert.Equal("stage", lines[0].GetProperty("step").GetString());
        Assert.Equal("POST", lines[0].GetProperty("method").GetString());
        Assert.Equal("/function/product-photos-receive", lines[0].GetProperty("path").GetString());
        Assert.Equal("benign", lines[1].GetProperty("label").GetString());
        Assert.Equal("tampering", lines[1].GetProperty("affectedBy").GetString());
        Assert.Equal("tampering-1", lines[1].GetProperty("attackId").GetString());
        Assert.False(lines[2].TryGetProperty("affectedBy", out _));
        Assert.All(lines, l => Assert.Equal(200, l.GetProperty("status").GetInt32()));
    }

    [Fact]
    public async Task A_request_that_times_out_is_written_with_status_0_and_the_error()
    {
        await using var slow = await LoopbackHttpServer.StartAsync(context => Task.Delay(TimeSpan.FromSeconds(5), context.RequestAborted), CancellationToken.None);
        var truth = Path.Combine(_directory, "slow.jsonl");
        await using (var writer = GroundTruthWriter.Open(truth))
        {
            using var http = new HttpClient();
            var client = new GatewayClient(http, slow.BaseUri, writer, TimeSpan.FromMilliseconds(300), NullLogger.Instance);
            var response = await client.SendAsync(GatewayRequest.Get("product-catalog-api", "/categories"), RequestLabel.Benign, CancellationToken.None);
            Assert.Equal(0, response.Status);
        }

        var line = JsonDocument.Parse(Assert.Single(await File.ReadAllLinesAsync(truth))).RootElement;
        Assert.Equal(0, line.GetProperty("status").GetInt32());
        Assert.StartsWith("timeout after", line.GetProperty("error").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cancelling_a_run_stops_it_promptly_with_attacks_pending()
    {
        await using var slow = await LoopbackHttpServer.StartAsync(
            async context =>
            {
                if (context.Request.Path.StartsWithSegments("/function"))
                {
                    await Task.Delay(TimeSpan.FromSeconds(3), context.RequestAborted);
                }
            },
            CancellationToken.None);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
        var stopwatch = System.Diagnostics.Stopwatch.StartNew();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => new WorkloadDriver(NullLogger<WorkloadDriver>.Instance).RunAsync(
            new WorkloadOptions { Gateway = slow.BaseUri, Benign = 20, Attacks = ["reverse-shell", "tampering"], Concurrency = 2 },
            null,
            cancel.Token));

        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(2.5), $"took {stopwatch.Elapsed}");
    }

    [Fact]
    public void Card_numbers_pass_or_fail_the_luhn_check_as_meant()
    {
        var random = new Random(5);
        for (var i = 0; i < 200; i++)
        {
            var valid = BenignTraffic.ValidCardNumber(random);
            Assert.Equal(16, valid.Length);
            Assert.True(BenignTraffic.IsLuhnValid(valid), valid);
            Assert.False(BenignTraffic.IsLuhnValid(BenignTraffic.DeclinedCardNumber(random)));
        }

        Assert.True(BenignTraffic.IsLuhnValid("4111111111111111"));
        Assert.True(BenignTraffic.IsLuhnValid("5555555555554444"));
    }

    /// <summary>What a healthy hello-retail answers (the statuses the deliberately failing requests ask for included).</summary>
    private static int ExpectedStatus(string method, string path, string body)
    {
        if (body.Contains("\"card\"", StringComparison.Ordinal))
        {
            using var purchase = JsonDocument.Parse(body);
            var user = purchase.RootElement.GetProperty("user").GetString()!;
            var password = purchase.RootElement.GetProperty("password").GetString()!;
            if (password != $"{user}-pass-{Array.IndexOf(["", "alice", "bob", "carol"], user)}")
            {
                return 401;
            }

            return BenignTraffic.IsLuhnValid(purchase.RootElement.GetProperty("card").GetString()!) ? 200 : 402;
        }

        if (method == "GET" && Regex.IsMatch(path, "^/function/product-catalog-api/products/p-[0-9a-f]{12}$"))
        {
            return 404; // a stale link: an id the store never had
        }

        return path == "/function/product-catalog-builder" || path == "/function/product-photos-register" ? 201 : 200;
    }

    private async Task RecordAsync(HttpContext context)
    {
        using var reader = new StreamReader(context.Request.Body);
        var body = await reader.ReadToEndAsync();
        var path = context.Request.Path.Value ?? "";
        _received.Enqueue((context.Request.Method, path, context.Request.Headers["X-Call-Id"].ToString(), context.Request.Headers["traceparent"].ToString(), body));
        context.Response.StatusCode = ExpectedStatus(context.Request.Method, path, body);
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(path.EndsWith("/categories", StringComparison.Ordinal) ? """[{"name":"cameras"}]""" : "[]");
    }

    /// <summary>Reports on the caller's thread, unlike <see cref="Progress{T}"/>, so counts are complete when the run returns.</summary>
    private sealed class SynchronousProgress(Action<WorkloadProgress> report) : IProgress<WorkloadProgress>
    {
        public void Report(WorkloadProgress value) => report(value);
    }
}
