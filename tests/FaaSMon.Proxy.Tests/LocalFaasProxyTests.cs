using System.Net;
using System.Net.Http.Headers;
using System.Text;
using FaaSMon.Core;
using FaaSMon.LocalFaaS;

namespace FaaSMon.Proxy.Tests;

/// <summary>
/// The proxy in front of a real LocalFaaS whose functions call each other through the proxy
/// (FunctionGatewayUrl = proxy), as functions on OpenFaaS do with gateway_url.
/// </summary>
public sealed class LocalFaasProxyFixture : IAsyncLifetime
{
    private string _state = "";

    public LocalFaasHost Gateway { get; private set; } = null!;

    public ProxyUnderTest Proxy { get; private set; } = null!;

    public RecordCollector<InvocationRecord> Records { get; private set; } = null!;

    public HttpClient Direct { get; private set; } = null!;

    public AuthenticationHeaderValue AdminAuth { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        // The proxy must know the gateway's port and the gateway the proxy's URL: reserve the gateway's port first.
        var gatewayPort = Loopback.FreePort();
        Proxy = await PcapProxy.StartAsync(new Uri($"http://127.0.0.1:{gatewayPort}/"));
        Records = new RecordCollector<InvocationRecord>(Proxy.Records);
        _state = TestState.NewDirectory("localfaas");
        Gateway = await LocalFaasHost.StartAsync(new LocalFaasOptions { Port = gatewayPort, StateDirectory = _state, FunctionGatewayUrl = Proxy.Url });
        Direct = new HttpClient { BaseAddress = Gateway.GatewayUrl, Timeout = TimeSpan.FromSeconds(60) };
        AdminAuth = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{Gateway.AdminCredential.UserName}:{Gateway.AdminCredential.Password}")));
    }

    public async Task DisposeAsync()
    {
        Direct?.Dispose();
        Records?.Dispose();
        try
        {
            if (Gateway is not null)
            {
                await Gateway.DisposeAsync();
            }
        }
        finally
        {
            if (Proxy is not null)
            {
                await Proxy.DisposeAsync();
            }

            TestState.Delete(_state);
        }
    }
}

[CollectionDefinition("localfaas-proxy")]
public sealed class LocalFaasProxyCollection : ICollectionFixture<LocalFaasProxyFixture>;

[Collection("localfaas-proxy")]
public sealed class LocalFaasProxyTests(LocalFaasProxyFixture fixture)
{
    public static TheoryData<string, string, string?, bool> Routes => new()
    {
        { "GET", "/function/product-catalog-api/categories", null, false },
        { "GET", "/function/product-catalog-api/products?category=cameras", null, false },
        { "GET", "/function/product-catalog-api/products/p-cam-001", null, false },
        { "GET", "/function/product-catalog-api/products/p-does-not-exist", null, false },
        { "POST", "/function/product-purchase-get-price", """{"product":"p-cam-001","quantity":2}""", false },
        { "POST", "/function/product-purchase-authenticate", """{"user":"alice","password":"wrong"}""", false },
        { "POST", "/function/no-such-function", "{}", false },
        { "GET", "/system/functions", null, true },
        { "GET", "/system/functions", null, false },
        { "GET", "/system/function/product-purchase", null, true },
        { "GET", "/system/info", null, true },
        { "GET", "/healthz", null, false },
    };

    [Theory]
    [MemberData(nameof(Routes))]
    public async Task ResponsesThroughTheProxyEqualDirectGatewayResponses(string method, string path, string? body, bool admin)
    {
        var direct = await SendAsync(fixture.Direct, method, path, body, admin);
        using var proxied = new HttpClient { BaseAddress = fixture.Proxy.Url, Timeout = TimeSpan.FromSeconds(60) };
        var viaProxy = await SendAsync(proxied, method, path, body, admin);
        Assert.Equal(direct.Status, viaProxy.Status);
        Assert.Equal(direct.ContentType, viaProxy.ContentType);
        Assert.Equal(Normalize(direct.Body), Normalize(viaProxy.Body));
        Assert.Equal(direct.Authenticate, viaProxy.Authenticate);
    }

    [Fact]
    public async Task AProductPurchaseChainIsOneTraceWithCorrectParentLinks()
    {
        using var client = new HttpClient { BaseAddress = fixture.Proxy.Url, Timeout = TimeSpan.FromSeconds(60) };
        using var response = await client.PostAsync("/function/product-purchase", new StringContent(
            """{"user":"alice","password":"alice-pass-1","product":"p-cam-001","quantity":1,"card":"4111111111111111"}""", Encoding.UTF8, "application/json"));
        var answer = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, answer);
        Assert.Contains("published", answer, StringComparison.Ordinal);
        var traceId = TraceParentOf(response).TraceId;

        var records = await fixture.Records.CollectAsync(
            r => r.Count(x => x.TraceId == traceId) >= 5 && r.Any(x => x.TraceId == traceId && x.Function == "product-purchase"), TimeSpan.FromSeconds(30));
        var chain = records.Where(r => r.TraceId == traceId).ToList();
        var root = Assert.Single(chain, r => r.Function == "product-purchase");
        Assert.Null(root.ParentSpanId);
        var children = chain.Where(r => r != root).ToList();
        Assert.Equal(
            ["product-purchase-authenticate", "product-purchase-authorize-cc", "product-purchase-get-price", "product-purchase-publish"],
            children.Select(c => c.Function!).Order(StringComparer.Ordinal));
        Assert.All(children, c =>
        {
            Assert.Equal(root.SpanId, c.ParentSpanId);
            Assert.NotNull(c.ClientSpanId); // the function's own client span, which forwarded our tracestate
            Assert.Equal(root.CallId, c.CallId); // functions forward X-Call-Id
            Assert.True(c.StartMonotonicNs >= root.StartMonotonicNs && c.EndMonotonicNs <= root.EndMonotonicNs);
            Assert.Equal(200, c.Status);
        });
        Assert.Equal(5, chain.Select(r => r.SpanId).Distinct().Count());
        Assert.DoesNotContain("alice-pass-1", root.RequestBodyPrefix, StringComparison.Ordinal);
        Assert.DoesNotContain("4111111111111111", root.RequestBodyPrefix, StringComparison.Ordinal);
    }

    [Fact]
    public async Task FaasCliStyleDeployCallsWithBasicAuthPassThrough()
    {
        using var client = new HttpClient { BaseAddress = fixture.Proxy.Url, Timeout = TimeSpan.FromSeconds(60) };
        using var anonymous = await client.GetAsync("/system/functions");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using var request = new HttpRequestMessage(HttpMethod.Get, "/system/functions");
        request.Headers.Authorization = fixture.AdminAuth;
        using var authorized = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, authorized.StatusCode);
        Assert.Contains("product-purchase", await authorized.Content.ReadAsStringAsync(), StringComparison.Ordinal);
    }

    private static TraceParent TraceParentOf(HttpResponseMessage response)
    {
        Assert.True(TraceParent.TryParse(response.Headers.GetValues(TraceParent.HeaderName).Single(), out var tp));
        return tp.Value;
    }

    private async Task<(HttpStatusCode Status, string? ContentType, string Body, string? Authenticate)> SendAsync(
        HttpClient client, string method, string path, string? body, bool admin)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body is not null)
        {
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        }

        if (admin)
        {
            request.Headers.Authorization = fixture.AdminAuth;
        }

        using var response = await client.SendAsync(request);
        return (response.StatusCode, response.Content.Headers.ContentType?.MediaType, await response.Content.ReadAsStringAsync(),
            response.Headers.WwwAuthenticate.ToString());
    }

    // Counters and timestamps move between two calls; everything else must be byte for byte the same.
    private static string Normalize(string body) =>
        System.Text.RegularExpressions.Regex.Replace(body, "\"(invocationCount|createdAt|usage|availableReplicas)\":[^,}]*", "\"$1\":_");
}
