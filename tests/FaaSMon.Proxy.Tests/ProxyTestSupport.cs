using System.Text;
using FaaSMon.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Proxy.Tests;

/// <summary>State folders outside /tmp (LocalFaaS containers mount their own /tmp), removed afterwards.</summary>
internal static class TestState
{
    public static string NewDirectory(string what) =>
        Path.Combine("/var/lib/faasmon/tests", $"{what}-{DateTime.UtcNow:HHmmss}-{Guid.NewGuid().ToString("N")[..8]}");

    public static void Delete(string directory)
    {
        if (directory.Length > 0 && Directory.Exists(directory))
        {
            Directory.Delete(directory, recursive: true);
        }
    }
}

internal static class Loopback
{
    public static Uri Address(WebApplication app) =>
        new(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().Replace("localhost", "127.0.0.1", StringComparison.Ordinal) + "/");

    public static int FreePort()
    {
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>
/// A trivial, fast upstream on 127.0.0.1 that answers with what it received: the call id, the trace headers
/// and the body, so a test can see what the proxy forwarded.
/// </summary>
internal sealed class EchoUpstream : IAsyncDisposable
{
    private readonly WebApplication _app;

    private EchoUpstream(WebApplication app, Uri url)
    {
        _app = app;
        Url = url;
    }

    public Uri Url { get; }

    public static async Task<EchoUpstream> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.Map("/{**path}", async (HttpContext context) =>
        {
            var headers = context.Request.Headers;
            using var reader = new StreamReader(context.Request.Body, Encoding.UTF8);
            var body = await reader.ReadToEndAsync(context.RequestAborted);
            context.Response.Headers["X-Seen-Call-Id"] = headers[CallId.HeaderName].ToString();
            context.Response.Headers["X-Seen-Traceparent"] = headers[TraceParent.HeaderName].ToString();
            context.Response.Headers["X-Seen-Tracestate"] = headers[TraceParent.StateHeaderName].ToString();
            if (context.Request.Query.TryGetValue("status", out var status))
            {
                context.Response.StatusCode = int.Parse(status!, System.Globalization.CultureInfo.InvariantCulture);
            }

            context.Response.ContentType = "text/plain";
            await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path} call={headers[CallId.HeaderName]} body={body}");
        });
        await app.StartAsync();
        return new EchoUpstream(app, Loopback.Address(app));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>FaaSMon's proxy as `faasmon proxy` builds it, on a free loopback port, with its data in a test folder.</summary>
public sealed class ProxyUnderTest : IAsyncDisposable
{
    private ProxyUnderTest(WebApplication app, string dataDirectory)
    {
        App = app;
        DataDirectory = dataDirectory;
        Url = Loopback.Address(app);
        Client = new HttpClient { BaseAddress = Url, Timeout = TimeSpan.FromSeconds(60) };
    }

    public WebApplication App { get; }

    public Uri Url { get; }

    public string DataDirectory { get; }

    public HttpClient Client { get; }

    public RecordStream<InvocationRecord> Records => App.Services.GetRequiredService<RecordStream<InvocationRecord>>();

    public RecordStream<PacketFlow> Flows => App.Services.GetRequiredService<RecordStream<PacketFlow>>();

    /// <summary>Starts the proxy; <paramref name="beforeStart"/> may subscribe to record streams before the first request.</summary>
    public static async Task<ProxyUnderTest> StartAsync(Uri upstream, bool pcap = false, IDictionary<string, string?>? settings = null,
        int port = 0, Action<WebApplication>? beforeStart = null)
    {
        var data = TestState.NewDirectory("proxy");
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders().AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        Dictionary<string, string?> config = new()
        {
            ["Proxy:Upstream"] = upstream.ToString(),
            ["Proxy:DataDirectory"] = data,
            ["Proxy:Pcap:Enabled"] = pcap.ToString(),
            ["Proxy:Pcap:SliceIdleTimeout"] = "00:00:00.500",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config[key] = value;
        }

        builder.Configuration.AddInMemoryCollection(config);
        builder.AddFaaSMonProxy();
        var app = builder.Build();
        app.MapFaaSMonProxy();
        beforeStart?.Invoke(app);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            TestState.Delete(data);
            throw;
        }

        return new ProxyUnderTest(app, data);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        try
        {
            await App.StopAsync();
            await App.DisposeAsync();
        }
        finally
        {
            // FAASMON_KEEP_TEST_STATE=1 keeps captures and records for a look after a failure.
            if (Environment.GetEnvironmentVariable("FAASMON_KEEP_TEST_STATE") is null)
            {
                TestState.Delete(DataDirectory);
            }
        }
    }
}

/// <summary>Collects every record of a stream (own subscription, large enough for a test run).</summary>
public sealed class RecordCollector<T> : IDisposable
{
    private readonly RecordStream<T>.Subscription _subscription;

    public RecordCollector(RecordStream<T> stream, int capacity = 100_000) => _subscription = stream.Subscribe("test", capacity);

    public long Dropped => _subscription.Dropped;

    /// <summary>Everything delivered so far, waiting until <paramref name="until"/> holds or the time runs out.</summary>
    public async Task<List<T>> CollectAsync(Func<List<T>, bool> until, TimeSpan timeout)
    {
        List<T> items = [];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            while (!until(items))
            {
                await _subscription.Reader.WaitToReadAsync(cts.Token);
                while (_subscription.Reader.TryRead(out var item))
                {
                    items.Add(item);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        return items;
    }

    public void Dispose() => _subscription.Dispose();
}
