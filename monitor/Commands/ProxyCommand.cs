using System.CommandLine;
using System.Globalization;
using FaaSMon.Proxy;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon proxy</c>: the front door in front of an OpenFaaS gateway.</summary>
internal static class ProxyCommand
{
    public static readonly Option<string> Listen = new("--listen")
    {
        Description = "Address:port to listen on (loopback by default: exposing it is a deliberate choice).",
        DefaultValueFactory = _ => "127.0.0.1:8080",
    };

    public static readonly Option<Uri> Upstream = new("--upstream")
    {
        Description = "The OpenFaaS gateway to forward to.",
        DefaultValueFactory = _ => new Uri("http://127.0.0.1:8081"),
        CustomParser = CliParsers.HttpUrl,
    };

    public static readonly Option<DirectoryInfo?> DataDir = new("--data-dir")
    {
        Description = "Where records/ (NDJSON) and pcap/ (rotating captures, per-invocation slices) go (default /var/lib/faasmon/proxy).",
    };

    public static readonly Option<bool> NoPcap = new("--no-pcap") { Description = "Do not capture packets (capture needs root or CAP_NET_RAW+CAP_NET_ADMIN)." };

    public static readonly Option<string> Interface = new("--interface")
    {
        Description = "Interface to capture the gateway-side traffic on.",
        DefaultValueFactory = _ => "lo",
    };

    public static readonly Option<string?> Filter = new("--filter") { Description = "BPF capture filter (default: tcp port <upstream port>)." };

    public static readonly Option<bool> FailClosed = new("--fail-closed") { Description = "Answer 503 to requests that cannot be monitored instead of forwarding them unrecorded." };

    public static readonly Option<int> BodyBytes = new("--body-bytes")
    {
        Description = "How many bytes of each request and response body go into a record (secrets redacted).",
        DefaultValueFactory = _ => 4096,
    };

    public static readonly Option<bool> Verbose = new("--verbose", "-v") { Description = "Log every request." };

    public static Command Create()
    {
        var command = new Command("proxy",
            "Run FaaSMon's reverse proxy in front of an OpenFaaS gateway: X-Call-Id and W3C trace context on every request, " +
            "one invocation record per request (NDJSON), packet capture with per-invocation pcap slices, /metrics and /healthz.")
        {
            Listen, Upstream, DataDir, NoPcap, Interface, Filter, FailClosed, BodyBytes, Verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            InlineSocketIo();
            var app = Build(parse);
            await app.StartAsync(ct);
            Console.WriteLine($"FaaSMon proxy on {string.Join(", ", app.Urls)} → {parse.GetValue(Upstream)}");
            Console.WriteLine("Ctrl+C stops it.");
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
            }

            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
            return 0;
        });
        return command;
    }

    private static WebApplication Build(ParseResult parse)
    {
        Dictionary<string, string?> settings = new()
        {
            ["Proxy:Upstream"] = parse.GetValue(Upstream)!.ToString(),
            ["Proxy:FailClosed"] = parse.GetValue(FailClosed).ToString(),
            ["Proxy:BodyCaptureBytes"] = parse.GetValue(BodyBytes).ToString(CultureInfo.InvariantCulture),
            ["Proxy:Pcap:Enabled"] = (!parse.GetValue(NoPcap)).ToString(),
            ["Proxy:Pcap:Interface"] = parse.GetValue(Interface),
            ["Proxy:Pcap:Filter"] = parse.GetValue(Filter),
        };
        if (parse.GetValue(DataDir) is { } dir)
        {
            settings["Proxy:DataDirectory"] = dir.FullName;
        }

        return BuildApp(parse.GetValue(Listen)!, settings, parse.GetValue(Verbose), inlineScheduling: true);
    }

    /// <summary>
    /// The standalone proxy runs socket completions on the epoll thread instead of handing each to a thread-pool worker
    /// (<c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS</c>, read once by the runtime's socket engine when the first
    /// socket is used, so this must run before any). Every hop of a proxied request is a socket completion, and under
    /// load the handoffs were the largest cost: perf showed a third of the proxy's samples in the kernel's task switch.
    /// Safe here because nothing on the proxy's request path blocks (records and packets leave through bounded
    /// queues without waiting). Not for serve all-in-one, whose one process also runs LocalFaaS and the monitor.
    /// </summary>
    internal static void InlineSocketIo()
    {
        const string name = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";
        if (Environment.GetEnvironmentVariable(name) is null)
        {
            Environment.SetEnvironmentVariable(name, "1");
        }
    }

    /// <summary>The proxy as a web application listening on <paramref name="listen"/> (port 0: any free one), configured from <c>Proxy:*</c> settings.</summary>
    /// <param name="inlineScheduling">Kestrel runs the request on the thread that read it (<see cref="InlineSocketIo"/>).</param>
    public static WebApplication BuildApp(string listen, IDictionary<string, string?> settings, bool verbose, bool inlineScheduling = false)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        if (inlineScheduling)
        {
            builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);
        }

        builder.Configuration.AddInMemoryCollection(settings);
        builder.WebHost.UseUrls($"http://{listen}");
        builder.Logging.ClearProviders().AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        }).AddFilter("Microsoft", verbose ? LogLevel.Information : LogLevel.Warning)
          .AddFilter("Yarp", verbose ? LogLevel.Information : LogLevel.Warning)
          // Every request is recorded anyway; hosting's per-request log (and the Activity it starts for it) cost ~5% throughput.
          .AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", verbose ? LogLevel.Information : LogLevel.None);
        builder.AddFaaSMonProxy();
        var app = builder.Build();
        app.MapFaaSMonProxy();
        return app;
    }
}
