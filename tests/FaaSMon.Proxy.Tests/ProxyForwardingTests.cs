using System.Net;
using System.Text;
using FaaSMon.Core;

namespace FaaSMon.Proxy.Tests;

/// <summary>The proxy on real loopback sockets in front of a real (trivial) upstream.</summary>
public sealed class ProxyForwardingTests : IAsyncLifetime, IDisposable
{
    private EchoUpstream _upstream = null!;
    private ProxyUnderTest _proxy = null!;
    private RecordCollector<InvocationRecord> _records = null!;

    public async Task InitializeAsync()
    {
        _upstream = await EchoUpstream.StartAsync();
        _proxy = await ProxyUnderTest.StartAsync(_upstream.Url);
        _records = new RecordCollector<InvocationRecord>(_proxy.Records);
    }

    public void Dispose() => _records?.Dispose();

    public async Task DisposeAsync()
    {
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync();
        }

        if (_upstream is not null)
        {
            await _upstream.DisposeAsync();
        }
    }

    [Fact]
    public async Task GeneratesACallIdAndATraceAndPutsThemOnRequestAndResponse()
    {
        using var response = await _proxy.Client.GetAsync("/function/echo/a?x=1");
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var callId = Assert.Single(response.Headers.GetValues(CallId.HeaderName));
        Assert.True(Guid.TryParse(callId, out _));
        Assert.Equal(callId, Assert.Single(response.Headers.GetValues("X-Seen-Call-Id")));
        var sent = Assert.Single(response.Headers.GetValues("X-Seen-Traceparent"));
        Assert.Equal(sent, Assert.Single(response.Headers.GetValues(TraceParent.HeaderName)));
        Assert.True(TraceParent.TryParse(sent, out var hop));
        Assert.Equal($"GET /function/echo/a call={callId} body=", body);

        var record = Assert.Single(await _records.CollectAsync(r => r.Count >= 1, TimeSpan.FromSeconds(10)));
        Assert.Equal(callId, record.CallId);
        Assert.Equal(hop.Value.TraceId, record.TraceId);
        Assert.Equal(hop.Value.SpanId, record.SpanId);
        Assert.Null(record.ParentSpanId);
        Assert.Equal("echo", record.Function);
        Assert.Equal("/function/echo/a", record.Path);
        Assert.Equal("?x=1", record.Query);
        Assert.Equal(200, record.Status);
        Assert.Equal(body.Length, record.BytesOut);
        Assert.Equal("ok", record.Outcome);
        Assert.StartsWith("127.0.0.1:", record.ClientAddress, StringComparison.Ordinal);
        Assert.True(record.EndMonotonicNs >= record.StartMonotonicNs);
        Assert.True(record.EndUtc >= record.StartUtc);
        Assert.True(record.UpstreamDurationMs > 0 && record.UpstreamDurationMs <= record.DurationMs);
    }

    [Fact]
    public async Task KeepsTheCallersCallIdAndContinuesItsTrace()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/function/echo");
        request.Headers.Add(CallId.HeaderName, "client-chosen-id");
        request.Headers.Add(TraceParent.HeaderName, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        request.Headers.Add(TraceParent.StateHeaderName, "congo=t61rcWkgMzE");
        using var response = await _proxy.Client.SendAsync(request);
        Assert.Equal("client-chosen-id", Assert.Single(response.Headers.GetValues(CallId.HeaderName)));
        Assert.Equal("client-chosen-id", Assert.Single(response.Headers.GetValues("X-Seen-Call-Id")));
        Assert.True(TraceParent.TryParse(Assert.Single(response.Headers.GetValues("X-Seen-Traceparent")), out var hop));
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", hop.Value.TraceId);
        Assert.NotEqual("b7ad6b7169203331", hop.Value.SpanId);
        Assert.Equal($"faasmon={hop.Value.SpanId},congo=t61rcWkgMzE", Assert.Single(response.Headers.GetValues("X-Seen-Tracestate")));

        var record = Assert.Single(await _records.CollectAsync(r => r.Count >= 1, TimeSpan.FromSeconds(10)));
        Assert.Equal("b7ad6b7169203331", record.ParentSpanId);
        Assert.Equal(hop.Value.SpanId, record.SpanId);
    }

    [Fact]
    public async Task AnInvalidTraceParentIsReplacedByAFreshTrace()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/function/echo");
        request.Headers.TryAddWithoutValidation(TraceParent.HeaderName, "00-NOT-A-VALID-TRACEPARENT-01");
        request.Headers.TryAddWithoutValidation(TraceParent.StateHeaderName, "faasmon=1111111111111111");
        using var response = await _proxy.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(TraceParent.TryParse(Assert.Single(response.Headers.GetValues("X-Seen-Traceparent")), out var hop));
        Assert.Equal($"faasmon={hop.Value.SpanId}", Assert.Single(response.Headers.GetValues("X-Seen-Tracestate")));
        var record = Assert.Single(await _records.CollectAsync(r => r.Count >= 1, TimeSpan.FromSeconds(10)));
        Assert.Null(record.ParentSpanId);
    }

    [Fact]
    public async Task RecordsRedactedBodyPrefixesAndHeaders()
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/function/product-purchase?api_key=k-123456")
        {
            Content = new StringContent("""{"user":"alice","password":"alice-pass-1","card":"4111111111111111","product":"p-cam-001"}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", "very-secret-token-value");
        request.Headers.Add("Cookie", "session=s3cr3t");
        using var response = await _proxy.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var record = Assert.Single(await _records.CollectAsync(r => r.Count >= 1, TimeSpan.FromSeconds(10)));
        var serialized = System.Text.Json.JsonSerializer.Serialize(record, ProxyJsonContext.Default.InvocationRecord);
        foreach (var secret in new[] { "alice-pass-1", "4111111111111111", "very-secret-token-value", "s3cr3t", "k-123456" })
        {
            Assert.DoesNotContain(secret, serialized, StringComparison.Ordinal);
        }

        Assert.Contains("p-cam-001", record.RequestBodyPrefix, StringComparison.Ordinal);
        Assert.Contains("p-cam-001", record.ResponseBodyPrefix, StringComparison.Ordinal);
        Assert.Equal(SecretRedactor.Mask, record.RequestHeaders!["Authorization"]);
        Assert.True(record.BytesIn > 60);
    }

    [Fact]
    public async Task KeepsOnlyTheFirstBytesOfLargeBodies()
    {
        var big = new string('x', 100_000);
        using var response = await _proxy.Client.PostAsync("/function/echo", new StringContent(big));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.EndsWith(big, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        var record = Assert.Single(await _records.CollectAsync(r => r.Count >= 1, TimeSpan.FromSeconds(10)));
        Assert.Equal(100_000, record.BytesIn);
        Assert.Equal(4096, record.RequestBodyPrefix!.Length);
        Assert.True(record.RequestBodyTruncated);
        Assert.True(record.ResponseBodyTruncated);
    }

    [Fact]
    public async Task ServesGatewayMetricsAndHealth()
    {
        // Meters are process-wide and tests run in parallel: a function name of its own keeps the counts exact.
        var name = $"metrics-{Guid.NewGuid():N}";
        using (await _proxy.Client.GetAsync($"/function/{name}")) { }
        using (await _proxy.Client.GetAsync($"/function/{name}/x?status=500")) { }
        using (await _proxy.Client.GetAsync("/system/info")) { }
        var metrics = await _proxy.Client.GetStringAsync("/metrics");
        Assert.Contains("gateway_function_invocation_total{", metrics, StringComparison.Ordinal);
        Assert.Equal(1, Metric(metrics, "gateway_function_invocation_total", $"function_name=\"{name}\"", "code=\"200\""));
        Assert.Equal(1, Metric(metrics, "gateway_function_invocation_total", $"function_name=\"{name}\"", "code=\"500\""));
        Assert.Equal(2, Metric(metrics, "gateway_function_invocation_started", $"function_name=\"{name}\""));
        Assert.Contains("gateway_functions_seconds_bucket{", metrics, StringComparison.Ordinal);
        Assert.Contains("le=\"0.005\"", metrics, StringComparison.Ordinal);
        Assert.Contains("faasmon_records_emitted_total", metrics, StringComparison.Ordinal);
        Assert.Contains("faasmon_packets_captured_total", metrics, StringComparison.Ordinal);
        Assert.Equal("Healthy", await _proxy.Client.GetStringAsync(ProxyHostingExtensions.HealthPath));
        // The gateway's own /healthz passes through.
        Assert.StartsWith("GET /healthz", await _proxy.Client.GetStringAsync("/healthz"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task WritesRecordsAsNdjson()
    {
        using var response = await _proxy.Client.GetAsync("/function/echo");
        var callId = Assert.Single(response.Headers.GetValues(CallId.HeaderName));
        var folder = Path.Combine(_proxy.DataDirectory, "records");
        var deadline = DateTime.UtcNow.AddSeconds(10);
        string? line = null;
        while (line is null && DateTime.UtcNow < deadline)
        {
            line = Directory.Exists(folder)
                ? Directory.GetFiles(folder, "invocations-*.ndjson").SelectMany(ReadShared).FirstOrDefault(l => l.Contains(callId, StringComparison.Ordinal))
                : null;
            await Task.Delay(50);
        }

        Assert.NotNull(line);
        var record = System.Text.Json.JsonSerializer.Deserialize(line, ProxyJsonContext.Default.InvocationRecord)!;
        Assert.Equal(callId, record.CallId);
    }

    /// <summary>The sum of the Prometheus samples whose labels include all of <paramref name="labels"/>, whatever their order.</summary>
    internal static double Metric(string exposition, string name, params string[] labels) => exposition.Split('\n')
        .Where(l => l.StartsWith(name + "{", StringComparison.Ordinal) && labels.All(x => l.Contains(x, StringComparison.Ordinal)))
        .Sum(l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    private static IEnumerable<string> ReadShared(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd().Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }
}
