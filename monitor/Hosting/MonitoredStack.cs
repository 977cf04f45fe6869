using System.Globalization;
using System.Net;
using System.Net.Sockets;
using FaaSMon.Core;
using FaaSMon.Grapher;
using FaaSMon.LocalFaaS;
using FaaSMon.Monitor.Commands;
using FaaSMon.Proxy;
using FaaSMon.Tracer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Hosting;

/// <summary>What <see cref="MonitoredStack"/> starts.</summary>
internal sealed record MonitoredStackOptions
{
    /// <summary>LocalFaaS state (PostgreSQL data, secrets, instance copies); never under /tmp.</summary>
    public required string StateDirectory { get; init; }

    /// <summary>Proxy records and pcap files.</summary>
    public required string ProxyDataDirectory { get; init; }

    public string Backend { get; init; } = "strace";

    /// <summary>The eBPF backend's loader, libbpf or bpftrace (<see cref="TracerOptions.EbpfLoader"/>).</summary>
    public string EbpfLoader { get; init; } = "libbpf";

    public bool Pcap { get; init; } = true;

    /// <summary>
    /// Bytes of each socket read kept by the tracer: the request head up to the call id and traceparent must fit, and
    /// as much of the body as can (its ids and file names tell overlapping requests apart).
    /// </summary>
    public int MaxDataBytes { get; init; } = 1024;

    public GrapherOptions Grapher { get; init; } = new();

    /// <summary>Sees every system-call event before the grapher does (the bench counts ground truth with it).</summary>
    public Action<SyscallEvent>? OnEvent { get; init; }

    public bool Verbose { get; init; }

    /// <summary>Where the proxy listens (host:port; port 0 = any free one).</summary>
    public string ProxyListen { get; init; } = "127.0.0.1:0";

    /// <summary>Sees every proxy record (a subscription of its own, so a slow observer cannot slow the grapher).</summary>
    public Action<InvocationRecord>? OnRecord { get; init; }

    /// <summary>Sees every packet flow the proxy's capture finished.</summary>
    public Action<PacketFlow>? OnFlow { get; init; }
}

/// <summary>
/// The whole pipeline on one machine: LocalFaaS (functions calling each other through the proxy, as with
/// <c>gateway_url</c> on OpenFaaS), the proxy in front of it, the tracer on every function process, and the grapher fed by
/// both. Clients use <see cref="GatewayUrl"/> (the proxy). Disposing stops the tracer first (no more events), then the
/// grapher (it builds every open invocation), then the functions and the proxy.
/// </summary>
internal sealed class MonitoredStack : IAsyncDisposable
{
    private readonly List<Task> _pumps = [];
    private readonly List<IDisposable> _subscriptions = [];
    private readonly CancellationTokenSource _stopping = new();
    private WebApplication? _proxy;
    private LocalFaasHost? _faas;

    /// <summary>Set while LocalFaaS binds the reserved gateway port: an address in use then is that port's race.</summary>
    private bool _bindingGateway;
    private TracerSession? _tracer;
    private InvocationGrapher? _grapher;
    private int _disposed;

    private MonitoredStack()
    {
    }

    public Uri GatewayUrl { get; private set; } = null!;

    public LocalFaasHost Faas => _faas!;

    public InvocationGrapher Grapher => _grapher!;

    public TracerSession Tracer => _tracer!;

    public static async Task<MonitoredStack> StartAsync(MonitoredStackOptions options, ILoggerFactory loggers, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        for (var attempt = 1; ; attempt++)
        {
            var stack = new MonitoredStack();
            try
            {
                await stack.StartCoreAsync(options, loggers, ct);
                return stack;
            }
            catch (IOException e) when (attempt < GatewayPortAttempts && stack._faas is null && stack._bindingGateway && IsAddressInUse(e))
            {
                // The gateway's port was free when reserved and taken before LocalFaaS bound it (the proxy needed the
                // number first): another free port, everything started again.
                await stack.DisposeAsync();
            }
            catch
            {
                await stack.DisposeAsync();
                throw;
            }
        }
    }

    private const int GatewayPortAttempts = 3;

    private static bool IsAddressInUse(Exception e)
    {
        for (Exception? inner = e; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Net.Sockets.SocketException { SocketErrorCode: System.Net.Sockets.SocketError.AddressAlreadyInUse })
            {
                return true;
            }
        }

        return false;
    }

    private async Task StartCoreAsync(MonitoredStackOptions options, ILoggerFactory loggers, CancellationToken ct)
    {
        // The proxy must know the gateway's port and the gateway the proxy's URL: reserve the gateway's port first.
        var gatewayPort = FreePort();
        _proxy = ProxyCommand.BuildApp(options.ProxyListen, new Dictionary<string, string?>
        {
            ["Proxy:Upstream"] = $"http://127.0.0.1:{gatewayPort.ToString(CultureInfo.InvariantCulture)}/",
            ["Proxy:DataDirectory"] = options.ProxyDataDirectory,
            ["Proxy:Pcap:Enabled"] = options.Pcap.ToString(),
            ["Proxy:Pcap:SliceIdleTimeout"] = "00:00:00.500",
        }, options.Verbose);
        _grapher = new InvocationGrapher(Microsoft.Extensions.Options.Options.Create(options.Grapher), loggers.CreateLogger<InvocationGrapher>());
        // subscribe before the first request, so no record is published to nobody
        var records = _proxy.Services.GetRequiredService<RecordStream<InvocationRecord>>().Subscribe("grapher");
        var flows = _proxy.Services.GetRequiredService<RecordStream<PacketFlow>>().Subscribe("grapher");
        _subscriptions.AddRange([records, flows]);
        if (options.OnRecord is { } onRecord)
        {
            var mine = _proxy.Services.GetRequiredService<RecordStream<InvocationRecord>>().Subscribe("monitor");
            _subscriptions.Add(mine);
            _pumps.Add(Observe(mine.Reader, onRecord, _stopping.Token));
        }

        if (options.OnFlow is { } onFlow)
        {
            var mine = _proxy.Services.GetRequiredService<RecordStream<PacketFlow>>().Subscribe("monitor");
            _subscriptions.Add(mine);
            _pumps.Add(Observe(mine.Reader, onFlow, _stopping.Token));
        }
        await _proxy.StartAsync(ct);
        GatewayUrl = new Uri(_proxy.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()
            .Replace("localhost", "127.0.0.1", StringComparison.Ordinal) + "/");
        await _grapher.StartAsync(ct);
        _pumps.Add(_grapher.PumpAsync(records.Reader, _stopping.Token));
        _pumps.Add(_grapher.PumpAsync(flows.Reader, _stopping.Token));

        // the tracer attaches to each function process as LocalFaaS starts it, so even first invocations are traced
        _tracer = await TracerSession.StartAsync(new TracerOptions
        {
            Backend = options.Backend,
            EbpfLoader = options.EbpfLoader,
            DockerHost = "none",
            MaxDataBytes = options.MaxDataBytes,
            AcceptPid = pid => LocalFaasHost.RunsIn(options.StateDirectory, pid),
        }, loggers, ct);
        if (options.OnEvent is { } observe)
        {
            var events = _tracer.Events;
            var grapher = _grapher;
            _pumps.Add(Task.Run(async () =>
            {
                await foreach (var evt in events.ReadAllAsync(CancellationToken.None))
                {
                    observe(evt);
                    grapher.TryWrite(evt);
                }
            }, CancellationToken.None));
        }
        else
        {
            _pumps.Add(_grapher.PumpAsync(_tracer.Events, CancellationToken.None));
        }
        _bindingGateway = true;
        _faas = await LocalFaasHost.StartAsync(new LocalFaasOptions { Port = gatewayPort, StateDirectory = options.StateDirectory, FunctionGatewayUrl = GatewayUrl }, loggers, ct);
        foreach (var (_, instance, _) in _faas.Instances)
        {
            await _tracer.Tracer.WaitForAttachedAsync(p => p.Identity.Instance == instance, TimeSpan.FromSeconds(60), ct);
        }
    }

    /// <summary>Stops tracing and builds every graph still open; the grapher's output channels complete afterwards.</summary>
    public async Task DrainAsync(TimeSpan settle, CancellationToken ct)
    {
        await Task.Delay(settle, ct); // the last events are still in strace's pipe, the last records in the proxy
        if (_tracer is not null)
        {
            await _tracer.DisposeAsync();
        }

        await _stopping.CancelAsync();
        await Task.WhenAll(_pumps);
        if (_grapher is not null)
        {
            await _grapher.StopAsync(CancellationToken.None);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        try
        {
            if (_tracer is not null)
            {
                await _tracer.DisposeAsync();
            }

            await _stopping.CancelAsync();
            await Task.WhenAll(_pumps).ContinueWith(_ => { }, TaskScheduler.Default);
            if (_grapher is not null)
            {
                await _grapher.StopAsync(CancellationToken.None);
                _grapher.Dispose();
            }
        }
        finally
        {
            try
            {
                if (_faas is not null)
                {
                    await _faas.DisposeAsync();
                }
            }
            finally
            {
                foreach (var subscription in _subscriptions)
                {
                    subscription.Dispose();
                }

                if (_proxy is not null)
                {
                    await _proxy.StopAsync(CancellationToken.None);
                    await _proxy.DisposeAsync();
                }

                _stopping.Dispose();
            }
        }
    }

    private static Task Observe<T>(System.Threading.Channels.ChannelReader<T> reader, Action<T> observe, CancellationToken ct) =>
        Task.Run(async () =>
        {
            try
            {
                await foreach (var item in reader.ReadAllAsync(ct))
                {
                    observe(item);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
        }, CancellationToken.None);

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
