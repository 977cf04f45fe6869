using System.Net;
using System.Net.Sockets;
using System.Text;
using FaaSMon.Core;

namespace FaaSMon.Proxy.Tests;

/// <summary>What a hostile or broken client gets: a clear status code, and a proxy that keeps serving.</summary>
public sealed class BadInputTests : IAsyncLifetime
{
    private EchoUpstream _upstream = null!;
    private ProxyUnderTest _proxy = null!;

    public async Task InitializeAsync()
    {
        _upstream = await EchoUpstream.StartAsync();
        _proxy = await ProxyUnderTest.StartAsync(_upstream.Url, settings: new Dictionary<string, string?>
        {
            ["Proxy:MaxRequestBodyBytes"] = "1048576",
            ["Proxy:RequestHeadersTimeout"] = "00:00:01",
        });
    }

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
    public async Task ATooLongCallIdIs400()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/function/echo");
        request.Headers.Add(CallId.HeaderName, new string('a', CallId.MaxLength + 1));
        using var response = await _proxy.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("X-Call-Id", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        await AssertStillServes();
    }

    [Fact]
    public async Task ACallIdWithControlCharactersIs400()
    {
        // HttpClient refuses to send control characters, so this goes over a raw socket.
        var answer = await RawAsync($"GET /function/echo HTTP/1.1\r\nHost: x\r\nX-Call-Id: abc\u0001def\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
        answer = await RawAsync($"GET /function/echo HTTP/1.1\r\nHost: x\r\nX-Call-Id: abc\tdef\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
        await AssertStillServes();
    }

    [Fact]
    public async Task TwoCallIdsAre400()
    {
        var answer = await RawAsync("GET /function/echo HTTP/1.1\r\nHost: x\r\nX-Call-Id: a\r\nX-Call-Id: b\r\nConnection: close\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 400", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OversizedHeadersAre431()
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/function/echo");
        request.Headers.Add("X-Padding", new string('p', 40 * 1024));
        using var response = await _proxy.Client.SendAsync(request);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        await AssertStillServes();
    }

    [Fact]
    public async Task AnOversizedRequestLineIs414()
    {
        using var response = await _proxy.Client.GetAsync($"/function/echo?q={new string('q', 10 * 1024)}");
        Assert.Equal(HttpStatusCode.RequestUriTooLong, response.StatusCode);
        await AssertStillServes();
    }

    [Fact]
    public async Task AnOversizedBodyIs413()
    {
        using var response = await _proxy.Client.PostAsync("/function/echo", new ByteArrayContent(new byte[2 * 1024 * 1024]));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        await AssertStillServes();
    }

    [Fact]
    public async Task AnOversizedChunkedBodyIsCutOff()
    {
        // No Content-Length: the limit is only found while streaming. The client sees an error status or a closed
        // connection, never a forwarded body past the limit.
        var content = new StreamContent(new MemoryStream(new byte[3 * 1024 * 1024]));
        using var request = new HttpRequestMessage(HttpMethod.Post, "/function/echo") { Content = content };
        request.Headers.TransferEncodingChunked = true;
        try
        {
            using var response = await _proxy.Client.SendAsync(request);
            Assert.True((int)response.StatusCode >= 400, $"status {(int)response.StatusCode}");
        }
        catch (HttpRequestException)
        {
            // connection reset by the proxy: also a refusal
        }

        await AssertStillServes();
    }

    [Fact]
    public async Task ASlowClientGets408AndIsDisconnected()
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, _proxy.Url.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /function/echo HTTP/1.1\r\nHost: x\r\n"));
        var started = DateTime.UtcNow;
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var read = await stream.ReadAsync(buffer, cts.Token);
        var answer = Encoding.ASCII.GetString(buffer, 0, read);
        Assert.StartsWith("HTTP/1.1 408", answer, StringComparison.Ordinal);
        Assert.True(DateTime.UtcNow - started < TimeSpan.FromSeconds(5));
        await AssertStillServes();
    }

    [Fact]
    public async Task ManySlowClientsDoNotStopOthers()
    {
        List<TcpClient> slow = [];
        try
        {
            for (var i = 0; i < 200; i++)
            {
                var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, _proxy.Url.Port);
                await c.GetStream().WriteAsync(Encoding.ASCII.GetBytes("POST /function/echo HTTP/1.1\r\nHost: x\r\n"));
                slow.Add(c);
            }

            await AssertStillServes();
        }
        finally
        {
            slow.ForEach(c => c.Dispose());
        }
    }

    [Fact]
    public async Task AnUnreachableUpstreamIs502WithARecord()
    {
        await using var proxy = await ProxyUnderTest.StartAsync(new Uri($"http://127.0.0.1:{Loopback.FreePort()}/"));
        using var records = new RecordCollector<InvocationRecord>(proxy.Records);
        using var response = await proxy.Client.GetAsync("/function/echo");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        var record = Assert.Single(await records.CollectAsync(r => r.Count >= 1, TimeSpan.FromSeconds(10)));
        Assert.Equal(502, record.Status);
        Assert.StartsWith("upstream-error", record.Outcome, StringComparison.Ordinal);
    }

    private async Task AssertStillServes()
    {
        using var response = await _proxy.Client.GetAsync("/function/echo");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private async Task<string> RawAsync(string request)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, _proxy.Url.Port);
        var stream = client.GetStream();
        await stream.WriteAsync(Encoding.Latin1.GetBytes(request));
        using var reader = new StreamReader(stream, Encoding.Latin1);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await reader.ReadToEndAsync(cts.Token);
    }
}
