using FaaSMon.Core;
using FaaSMon.Proxy.Pcap;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace FaaSMon.Proxy;

/// <summary>Registers the proxy in a web host; the host only says where to listen.</summary>
public static class ProxyHostingExtensions
{
    public const string HealthPath = "/faasmon/healthz";

    /// <summary>Services, options (section <c>Proxy</c>, validated at start), YARP, metrics, health, record writers and capture.</summary>
    public static IHostApplicationBuilder AddFaaSMonProxy(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<ProxyOptions>().BindConfiguration(ProxyOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ProxyOptions>, ProxyOptionsValidator>();
        services.AddOptions<KestrelServerOptions>().Configure<IOptions<ProxyOptions>>((kestrel, proxy) =>
        {
            var o = proxy.Value;
            kestrel.AddServerHeader = false;
            kestrel.Limits.MaxRequestBodySize = o.MaxRequestBodyBytes;
            kestrel.Limits.MaxRequestHeadersTotalSize = o.MaxRequestHeadersBytes;
            kestrel.Limits.RequestHeadersTimeout = o.RequestHeadersTimeout;
            kestrel.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(75);
        });

        services.AddSingleton(sp => new RecordStream<InvocationRecord>("invocation", sp.GetRequiredService<IOptions<ProxyOptions>>().Value.RecordQueueCapacity));
        services.AddSingleton(sp => new RecordStream<PacketFlow>("flow", sp.GetRequiredService<IOptions<ProxyOptions>>().Value.RecordQueueCapacity));
        services.AddSingleton<CaptureStatus>();
        services.AddSingleton<ProxyMetrics>();
        services.AddSingleton<InvocationPipeline>();

        // AddSingleton, not AddHostedService: the latter de-duplicates factory registrations of one declared type.
        services.AddSingleton<IHostedService>(sp => new MetricsActivator(sp.GetRequiredService<ProxyMetrics>()));
        services.AddSingleton<IHostedService>(sp => RecordWriter(sp, sp.GetRequiredService<RecordStream<InvocationRecord>>(), "invocations", ProxyJsonContext.Default.InvocationRecord));
        services.AddSingleton<IHostedService>(sp => RecordWriter(sp, sp.GetRequiredService<RecordStream<PacketFlow>>(), "flows", ProxyJsonContext.Default.PacketFlow));
        services.AddSingleton<IHostedService>(sp => sp.GetRequiredService<IOptions<ProxyOptions>>().Value.Pcap.Enabled
            ? ActivatorUtilities.CreateInstance<PcapRecorder>(sp)
            : new NoCapture());

        services.TryAddSingleton<IForwarderHttpClientFactory, TraceKeepingHttpClientFactory>();
        services.AddSingleton<IProxyConfigProvider, UpstreamConfigProvider>();
        services.AddReverseProxy();

        services.AddHealthChecks().AddCheck<ProxyHealthCheck>("proxy");
        services.AddOpenTelemetry().WithMetrics(metrics => metrics
            .AddMeter(ProxyMetrics.MeterName)
            .AddPrometheusExporter(o => o.DisableTotalNameSuffixForCounters = true));
        return builder;
    }

    /// <summary>
    /// <c>/metrics</c>, the proxy's own health at <c>/faasmon/healthz</c>, and everything else forwarded to the gateway,
    /// <c>/healthz</c> included (it answers 503 itself while the proxy cannot capture, so a probe sees both halves).
    /// </summary>
    public static IEndpointRouteBuilder MapFaaSMonProxy(this IEndpointRouteBuilder endpoints)
    {
        var pipeline = endpoints.ServiceProvider.GetRequiredService<InvocationPipeline>();
        endpoints.MapPrometheusScrapingEndpoint("/metrics");
        endpoints.MapHealthChecks(HealthPath);
        endpoints.MapReverseProxy(proxy =>
        {
            proxy.Use((context, next) => pipeline.InvokeAsync(context, next));
            proxy.UseSessionAffinity();
            proxy.UseLoadBalancing();
            proxy.UsePassiveHealthChecks();
        });
        return endpoints;
    }

    private static IHostedService RecordWriter<T>(IServiceProvider sp, RecordStream<T> stream, string prefix, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
    {
        var options = sp.GetRequiredService<IOptions<ProxyOptions>>().Value;
        return options.WriteRecords
            ? new NdjsonRecordWriter<T>(stream, Path.Combine(options.DataDirectory, "records"), prefix, type,
                sp.GetRequiredService<ILogger<NdjsonRecordWriter<T>>>())
            : new NoCapture();
    }

    /// <summary>Creates the meter at start, so /metrics lists FaaSMon's counters before the first request.</summary>
    private sealed class MetricsActivator(ProxyMetrics metrics) : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.FromResult(metrics);

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }

    private sealed class NoCapture : IHostedService
    {
        public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}

/// <summary>Healthy while records have a subscriber and, when enabled, packets are being captured.</summary>
internal sealed class ProxyHealthCheck(CaptureStatus capture, RecordStream<InvocationRecord> records, IOptions<ProxyOptions> options) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (options.Value.Pcap.Enabled && !capture.Running)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"packet capture not running{(capture.Error is { } e ? ": " + e : "")}"));
        }

        return Task.FromResult(records.Subscriptions.Count == 0
            ? HealthCheckResult.Degraded("no invocation record subscriber")
            : HealthCheckResult.Healthy());
    }
}
