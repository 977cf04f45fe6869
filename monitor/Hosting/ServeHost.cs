using System.ComponentModel.DataAnnotations;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using FaaSMon.Classifier.Inference;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Native;
using FaaSMon.Classifier.Temporal;
using FaaSMon.Core;
using FaaSMon.Grapher;
using FaaSMon.Monitor.Alerts;
using FaaSMon.Monitor.Api;
using FaaSMon.Monitor.Dashboard;
using FaaSMon.Monitor.Snapshots;
using FaaSMon.Monitor.Store;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;

namespace FaaSMon.Monitor.Hosting;

/// <summary>Configuration section <c>Monitor</c> of <c>faasmon serve</c> (appsettings.json, <c>FAASMON_Monitor__*</c>, command line).</summary>
internal sealed class ServeOptions
{
    public const string Section = "Monitor";

    /// <summary>API and dashboard address, host:port. 127.0.0.1 unless told otherwise.</summary>
    [Required]
    public string Listen { get; set; } = "127.0.0.1:8090";

    /// <summary>The only place serve writes: SQLite, graphs, follow positions, LocalFaaS state in all-in-one mode.</summary>
    [Required]
    public string DataDirectory { get; set; } = "/var/lib/faasmon/monitor";

    /// <summary>basic-auth-user, basic-auth-password (and optionally api-token); default DATA/secrets, generated when absent.</summary>
    public string? SecretsDirectory { get; set; }

    /// <summary>A proxy running elsewhere: follow its records (and pcap slices) instead of starting one.</summary>
    public string? ProxyData { get; set; }

    /// <summary>A tracer running elsewhere: follow its NDJSON events instead of starting one.</summary>
    public string? TraceEvents { get; set; }

    /// <summary>The model file (faasmon train); without one the verdicts come from the rules only.</summary>
    public string? Model { get; set; }

    /// <summary>A rules file instead of the default rules.</summary>
    public string? Rules { get; set; }

    /// <summary>Falco-format JSON alerts for intrusion verdicts are posted here.</summary>
    public Uri? AlertWebhook { get; set; }

    /// <summary>All-in-one mode: where the proxy in front of LocalFaaS listens (the gateway URL clients use).</summary>
    public string Gateway { get; set; } = "127.0.0.1:8080";

    /// <summary>All-in-one mode: strace, ebpf or ptrace.</summary>
    [RegularExpression("^(strace|ebpf|ptrace)$")]
    public string Backend { get; set; } = "strace";

    /// <summary>All-in-one mode, eBPF backend: libbpf or bpftrace (<see cref="FaaSMon.Tracer.TracerOptions.EbpfLoader"/>).</summary>
    [RegularExpression("^(libbpf|bpftrace)$")]
    public string EbpfLoader { get; set; } = "libbpf";

    /// <summary>All-in-one mode: capture each invocation's packets.</summary>
    public bool Pcap { get; set; } = true;

    /// <summary>
    /// On an intrusion, snapshot the function instances on its causal path: <c>off</c>, <c>state</c> (/proc state and the
    /// private /tmp), or <c>full</c> (also a core of each instance's memory).
    /// </summary>
    [RegularExpression("^(off|state|full)$")]
    public string Snapshots { get; set; } = "full";

    /// <summary>Bytes all snapshots together may take under DATA/snapshots.</summary>
    [Range(1L << 20, 1L << 44)]
    public long SnapshotBudgetBytes { get; set; } = 4L << 30;

    /// <summary>Docker Engine socket (e.g. unix:///var/run/docker.sock): snapshots alongside OpenFaaS by docker commit.</summary>
    public string? DockerHost { get; set; }

    /// <summary>Network model (faasmon train --task network); the network view is off without one.</summary>
    public string? NetworkModel { get; set; }

    /// <summary>Where the network view captures: the interface the function containers' traffic passes.</summary>
    [RegularExpression("^[A-Za-z0-9_.:@-]{1,15}$")]
    public string NetworkInterface { get; set; } = "lo";

    /// <summary>A libpcap filter for the network view; null = every frame.</summary>
    [StringLength(1000)]
    public string? NetworkFilter { get; set; }

    [Range(100, 100_000_000)]
    public int MaxInvocations { get; set; } = 200_000;

    [Range(typeof(TimeSpan), "00:01:00", "3650.00:00:00")]
    public TimeSpan Retention { get; set; } = TimeSpan.FromDays(7);

    public bool AllInOne => ProxyData is null && TraceEvents is null;
}

internal sealed class ServeOptionsValidator : IValidateOptions<ServeOptions>
{
    public ValidateOptionsResult Validate(string? name, ServeOptions options)
    {
        var errors = new List<string>();
        var context = new ValidationContext(options);
        var results = new List<ValidationResult>();
        if (!Validator.TryValidateObject(options, context, results, validateAllProperties: true))
        {
            errors.AddRange(results.Select(r => $"Monitor: {r.ErrorMessage}"));
        }

        if (!ServeHost.TryParseEndpoint(options.Listen, out _))
        {
            errors.Add($"Monitor:Listen '{options.Listen}' is not host:port (e.g. 127.0.0.1:8090)");
        }

        if (options.AllInOne && !ServeHost.TryParseEndpoint(options.Gateway, out _))
        {
            errors.Add($"Monitor:Gateway '{options.Gateway}' is not host:port (e.g. 127.0.0.1:8080)");
        }

        if ((options.ProxyData is null) != (options.TraceEvents is null))
        {
            errors.Add("give both --proxy-data and --trace-events (a proxy and a tracer running elsewhere), or neither (all-in-one)");
        }

        if (options.ProxyData is { } proxy && !Directory.Exists(proxy))
        {
            errors.Add($"--proxy-data {proxy}: no such directory");
        }

        if (options.Model is { } model && !File.Exists(model))
        {
            errors.Add($"--model {model}: no such file");
        }

        if (options.NetworkModel is { } networkModel && !File.Exists(networkModel))
        {
            errors.Add($"--network-model {networkModel}: no such file");
        }

        if (options.Rules is { } rules && !File.Exists(rules))
        {
            errors.Add($"--rules {rules}: no such file");
        }

        if (options.AlertWebhook is { } hook && (!hook.IsAbsoluteUri || hook.Scheme is not ("http" or "https")))
        {
            errors.Add($"--alert-webhook {hook}: an absolute http(s) URL");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}

/// <summary>
/// <c>faasmon serve</c>: the verdict API, dashboard, store and alerts, fed either by its own pipeline (all-in-one:
/// LocalFaaS behind a proxy, strace/eBPF, grapher — <see cref="MonitoredStack"/>) or by the files of a proxy and a
/// tracer running elsewhere (compose). Each part runs supervised by <see cref="ComponentHealth"/>: one that fails is
/// reported on <c>/healthz</c> and the rest keeps running. Stopping flushes every open invocation into the store.
/// </summary>
internal sealed partial class ServeHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly CancellationTokenSource _stopping = new();
    private readonly List<Task> _components = [];
    private readonly List<Task> _verdictPumps = [];
    private MonitoredStack? _stack;
    private InvocationGrapher? _grapher;
    private FalcoWebhook? _alerts;
    private NetworkWatch? _network;
    private int _disposed;

    private ServeHost(WebApplication app) => _app = app;

    public Uri ApiUrl { get; private set; } = null!;

    /// <summary>The gateway clients use in all-in-one mode (the proxy in front of LocalFaaS); null otherwise.</summary>
    public Uri? GatewayUrl => _stack?.GatewayUrl;

    public MonitoredStack? Stack => _stack;

    public VerdictPipeline Pipeline => _app.Services.GetRequiredService<VerdictPipeline>();

    public VerdictStore Store => _app.Services.GetRequiredService<VerdictStore>();

    public ComponentHealth Health => _app.Services.GetRequiredService<ComponentHealth>();

    public ApiCredentials Credentials => _app.Services.GetRequiredService<ApiCredentials>();

    public ServeOptions Options => _app.Services.GetRequiredService<IOptions<ServeOptions>>().Value;

    /// <summary>The network view; null when no network model is configured or it could not be loaded.</summary>
    public NetworkWatch? Network => _network;

    /// <summary>Builds and starts the host.</summary>
    /// <exception cref="OptionsValidationException">The configuration is wrong; the message lists every mistake.</exception>
    public static async Task<ServeHost> StartAsync(string[] args, IDictionary<string, string?> settings, bool verbose, CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true)
            .AddEnvironmentVariables("FAASMON_")
            .AddInMemoryCollection(settings);
        builder.Logging.ClearProviders().AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "HH:mm:ss ";
        }).SetMinimumLevel(verbose ? LogLevel.Information : LogLevel.Warning)
          .AddFilter("Microsoft.AspNetCore", verbose ? LogLevel.Information : LogLevel.Warning)
          .AddFilter("Microsoft.Extensions.Diagnostics.HealthChecks", LogLevel.Error); // /healthz answers for itself

        var options = builder.Configuration.GetSection(ServeOptions.Section).Get<ServeOptions>() ?? new ServeOptions();
        var result = new ServeOptionsValidator().Validate(null, options);
        if (result.Failed)
        {
            throw new OptionsValidationException(ServeOptions.Section, typeof(ServeOptions), result.Failures);
        }

        builder.Services.AddOptions<ServeOptions>().BindConfiguration(ServeOptions.Section);
        _ = TryParseEndpoint(options.Listen, out var listen); // validated above
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Listen(listen!);
            // the API takes no bodies: anything large is refused before it is read
            k.Limits.MaxRequestBodySize = 64 * 1024;
            k.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
            k.Limits.MaxRequestLineSize = 8 * 1024;
        });

        var dataDirectory = Path.GetFullPath(options.DataDirectory);
        Directory.CreateDirectory(dataDirectory);
        var secrets = options.SecretsDirectory ?? Path.Combine(dataDirectory, "secrets");
        var credentials = ApiCredentials.Load(secrets, create: options.SecretsDirectory is null);
        builder.Services.AddSingleton(credentials);
        builder.Services.AddSingleton(_ => VerdictStore.Open(Path.Combine(dataDirectory, "store"), new StoreOptions { MaxInvocations = options.MaxInvocations, MaxAge = options.Retention }));
        builder.Services.AddSingleton<ComponentHealth>();
        builder.Services.AddSingleton(sp => GraphClassifier.Open(options.Model, options.Rules, sp.GetRequiredService<ILoggerFactory>().CreateLogger("FaaSMon.Classifier")));
        builder.Services.AddSingleton(sp => new VerdictPipeline(
            sp.GetRequiredService<VerdictStore>(),
            sp.GetRequiredService<GraphClassifier>(),
            sp.GetRequiredService<ComponentHealth>(),
            sp.GetService<FalcoWebhook>(),
            sp.GetRequiredService<ILoggerFactory>().CreateLogger<VerdictPipeline>()));
        if (options.AlertWebhook is { } hook)
        {
            builder.Services.AddSingleton(sp => new FalcoWebhook(hook, sp.GetRequiredService<ILoggerFactory>().CreateLogger<FalcoWebhook>()));
        }

        if (options.Snapshots != "off" && (options.AllInOne || options.DockerHost is not null))
        {
            builder.Services.AddSingleton(sp => new SnapshotService(new SnapshotOptions
            {
                Directory = Path.Combine(dataDirectory, "snapshots"),
                MaxTotalBytes = options.SnapshotBudgetBytes,
                CoreDump = options.Snapshots == "full",
                DockerHost = options.DockerHost,
            }, sp.GetRequiredService<ILoggerFactory>().CreateLogger<SnapshotService>()));
        }

        builder.Services.AddAuthentication(ApiAuthenticationHandler.SchemeName)
            .AddScheme<AuthenticationSchemeOptions, ApiAuthenticationHandler>(ApiAuthenticationHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        builder.Services.AddHealthChecks().AddCheck<ComponentHealth>("components");
        builder.Services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(VerdictPipeline.MeterName)
            .AddPrometheusExporter(o => o.DisableTotalNameSuffixForCounters = true));

        var app = builder.Build();
        var host = new ServeHost(app);
        try
        {
            await host.StartCoreAsync(options, dataDirectory, verbose, ct);
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    private async Task StartCoreAsync(ServeOptions options, string dataDirectory, bool verbose, CancellationToken ct)
    {
        var app = _app;
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapHealthChecks("/healthz", new HealthCheckOptions { ResponseWriter = WriteHealth });
        app.MapPrometheusScrapingEndpoint("/metrics");
        var api = app.MapVerdictApi(Store);
        api.RequireAuthorization();
        var snapshots = app.Services.GetService<SnapshotService>();
        if (snapshots is not null)
        {
            api.MapSnapshots(snapshots, reference => Store.Find(reference)?.Summary.Id);
        }
        else
        {
            api.MapGet("/invocations/{reference}/snapshots", () => Results.Json(Array.Empty<object>()));
        }

        app.MapDashboard().RequireAuthorization();
        app.MapFallback(() => Results.Json(new { error = "not found" }, statusCode: StatusCodes.Status404NotFound));

        var health = Health;
        var pipeline = Pipeline;
        health.Report("classifier", pipeline.ModelLoaded ? ComponentHealth.Running : ComponentHealth.Degraded,
            pipeline.ModelLoaded ? null : "rules only (no model loaded)");
        health.Report("store", ComponentHealth.Running);
        pipeline.WarmUp();
        _alerts = app.Services.GetService<FalcoWebhook>();
        await app.StartAsync(ct);
        ApiUrl = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()
            .Replace("[::]", "127.0.0.1", StringComparison.Ordinal).Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal) + "/");

        var loggers = app.Services.GetRequiredService<ILoggerFactory>();
        _network = StartNetworkView(options, health, loggers);
        var network = _network;
        void AddFlow(PacketFlow flow)
        {
            Store.AddFlow(flow);
            network?.AddFlow(flow);
        }

        var grapherOptions = new GrapherOptions { ProvisionalGraphs = true };
        if (options.AllInOne)
        {
            health.Report("pipeline", ComponentHealth.Starting);
            _stack = await MonitoredStack.StartAsync(new MonitoredStackOptions
            {
                StateDirectory = Path.Combine(dataDirectory, "localfaas"),
                ProxyDataDirectory = Path.Combine(dataDirectory, "proxy"),
                ProxyListen = options.Gateway,
                Backend = options.Backend,
                EbpfLoader = options.EbpfLoader,
                Pcap = options.Pcap,
                Grapher = grapherOptions,
                OnRecord = pipeline.AddRecord,
                OnFlow = AddFlow,
                Verbose = verbose,
            }, loggers, ct);
            health.Report("pipeline", ComponentHealth.Running, $"LocalFaaS behind the proxy at {_stack.GatewayUrl}");
            _grapher = _stack.Grapher;
        }
        else
        {
            _grapher = new InvocationGrapher(Microsoft.Extensions.Options.Options.Create(grapherOptions), loggers.CreateLogger<InvocationGrapher>());
            await _grapher.StartAsync(ct);
            var follow = Path.Combine(dataDirectory, "follow");
            var records = new NdjsonFollower(Path.Combine(options.ProxyData!, "records"), "invocations-*.ndjson", Path.Combine(follow, "invocations.json"));
            var flows = new NdjsonFollower(Path.Combine(options.ProxyData!, "records"), "flows-*.ndjson", Path.Combine(follow, "flows.json"));
            var traceFile = Path.GetFullPath(options.TraceEvents!);
            var events = new NdjsonFollower(Path.GetDirectoryName(traceFile)!, Path.GetFileName(traceFile), Path.Combine(follow, "events.json"));
            var grapher = _grapher;
            _components.Add(health.Supervise("proxy-records", t => records.RunAsync(line =>
            {
                var record = JsonSerializer.Deserialize<InvocationRecord>(line, FileJson) ?? throw new JsonException("null record");
                pipeline.AddRecord(record);
                grapher.TryWrite(record);
            }, t), _stopping.Token));
            _components.Add(health.Supervise("proxy-flows", t => flows.RunAsync(line =>
            {
                var flow = JsonSerializer.Deserialize<PacketFlow>(line, FileJson) ?? throw new JsonException("null flow");
                AddFlow(flow);
                grapher.TryWrite(flow);
            }, t), _stopping.Token));
            _components.Add(health.Supervise("trace-events", t => events.RunAsync(line =>
            {
                var evt = JsonSerializer.Deserialize<SyscallEvent>(line, FileJson) ?? throw new JsonException("null event");
                grapher.TryWrite(evt);
            }, t), _stopping.Token));
        }

        if (snapshots is not null)
        {
            var taker = new SnapshotTrigger(snapshots, _stack, loggers.CreateLogger<SnapshotTrigger>());
            pipeline.Stored += taker.Observe;
            _components.Add(health.Supervise("snapshots", taker.RunAsync, _stopping.Token));
        }
        else
        {
            health.Report("snapshots", ComponentHealth.Running, options.Snapshots == "off" ? "off" : "off: needs all-in-one or --docker-host");
        }

        var g = _grapher;
        _verdictPumps.Add(health.Supervise("grapher", t => pipeline.RunInvocationsAsync(g.Invocations, t), CancellationToken.None));
        _verdictPumps.Add(health.Supervise("traces", t => pipeline.RunTracesAsync(g.Traces, t), CancellationToken.None));
        _components.AddRange(_verdictPumps);
        _components.Add(health.Supervise("retention", async t =>
        {
            using var timer = new PeriodicTimer(TimeSpan.FromMinutes(1));
            do
            {
                Store.Prune(DateTimeOffset.UtcNow);
            }
            while (await timer.WaitForNextTickAsync(t));
        }, _stopping.Token));
    }

    /// <summary>
    /// Loads the network model and starts capturing, supervised: a model that cannot load or an interface that cannot be
    /// captured is reported on /healthz as the network component, and everything else runs on.
    /// </summary>
    private NetworkWatch? StartNetworkView(ServeOptions options, ComponentHealth health, ILoggerFactory loggers)
    {
        if (options.NetworkModel is not { } path)
        {
            health.Report("network", ComponentHealth.Running, "off (no --network-model)");
            return null;
        }

        TemporalModel model;
        double windowSeconds;
        try
        {
            model = TemporalModel.Load(path, out windowSeconds);
        }
        catch (Exception e) when (e is ModelFileException or TorchUnavailableException)
        {
            health.Report("network", ComponentHealth.Failed, e.Message);
            return null;
        }

        var watch = new NetworkWatch(new NetworkWatchOptions(options.NetworkInterface, options.NetworkFilter), model, windowSeconds, Store, _alerts,
            loggers.CreateLogger<NetworkWatch>());
        _components.Add(health.Supervise("network", watch.RunAsync, _stopping.Token));
        return watch;
    }

    /// <summary>Stops the sources, builds every open invocation and stores its verdict (graceful shutdown).</summary>
    public async Task DrainAsync(TimeSpan settle, CancellationToken ct)
    {
        if (_stack is not null)
        {
            await _stack.DrainAsync(settle, ct);
        }
        else if (_grapher is not null)
        {
            await Task.Delay(settle, ct);
            await _stopping.CancelAsync();
            await _grapher.StopAsync(CancellationToken.None);
        }

        // the grapher's channels complete after its last graph: the pipeline stores them and ends
        await Task.WhenAll(_verdictPumps).WaitAsync(TimeSpan.FromSeconds(30), ct).ContinueWith(_ => { }, TaskScheduler.Default);
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        try
        {
            await _stopping.CancelAsync();
            if (_stack is not null)
            {
                await _stack.DisposeAsync();
            }
            else if (_grapher is not null)
            {
                await _grapher.StopAsync(CancellationToken.None);
            }

            await Task.WhenAll(_components).WaitAsync(TimeSpan.FromSeconds(30)).ContinueWith(_ => { }, TaskScheduler.Default);
            if (_alerts is not null)
            {
                await _alerts.DisposeAsync();
            }

            _network?.Dispose();
        }
        finally
        {
            _grapher?.Dispose();
            await _app.StopAsync(CancellationToken.None);
            await _app.DisposeAsync();
            _stopping.Dispose();
        }
    }

    internal static readonly JsonSerializerOptions FileJson = new(JsonSerializerDefaults.Web)
    {
        Converters = { new JsonStringEnumConverter() },
    };

    internal static bool TryParseEndpoint(string text, out IPEndPoint? endpoint)
    {
        endpoint = null;
        var colon = text.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(text.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
        {
            return false;
        }

        var host = text[..colon].Trim('[', ']');
        if (host == "localhost")
        {
            host = "127.0.0.1";
        }

        if (!IPAddress.TryParse(host, out var address))
        {
            return false;
        }

        endpoint = new IPEndPoint(address, port);
        return true;
    }

    private static Task WriteHealth(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        var entry = report.Entries.Values.FirstOrDefault();
        return context.Response.WriteAsync(JsonSerializer.Serialize(new
        {
            status = report.Status.ToString().ToLowerInvariant(),
            detail = entry.Description,
            components = entry.Data,
        }));
    }
}
