using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace FaaSMon.Proxy;

/// <summary>One catch-all route to the gateway: every OpenFaaS route (/function, /system with its basic auth, /healthz…) passes unchanged.</summary>
internal sealed class UpstreamConfigProvider(IOptions<ProxyOptions> options) : IProxyConfigProvider
{
    public const string ClusterId = "gateway";

    private readonly Lazy<IProxyConfig> _config = new(() => new Config(options.Value));

    public IProxyConfig GetConfig() => _config.Value;

    private sealed class Config(ProxyOptions options) : IProxyConfig
    {
        public IReadOnlyList<RouteConfig> Routes { get; } =
        [
            new RouteConfig { RouteId = "gateway", ClusterId = ClusterId, Match = new RouteMatch { Path = "{**catch-all}" } },
        ];

        public IReadOnlyList<ClusterConfig> Clusters { get; } =
        [
            new ClusterConfig
            {
                ClusterId = ClusterId,
                Destinations = new Dictionary<string, DestinationConfig> { ["gateway"] = new() { Address = options.Upstream!.ToString() } },
                HttpRequest = new ForwarderRequestConfig
                {
                    ActivityTimeout = options.UpstreamTimeout,
                    // The gateway speaks HTTP/1.1; one pooled connection carries one request at a time, which is
                    // what lets the capture attribute packets to invocations by sequence ranges.
                    Version = System.Net.HttpVersion.Version11,
                    VersionPolicy = System.Net.Http.HttpVersionPolicy.RequestVersionExact,
                },
            },
        ];

        public IChangeToken ChangeToken { get; } = new CancellationChangeToken(CancellationToken.None);
    }
}

/// <summary>
/// YARP's client normally rewrites traceparent/tracestate from <c>Activity.Current</c>; the proxy sets them itself
/// (one child span per hop, our tracestate member), so the handler must leave them alone.
/// </summary>
internal sealed class TraceKeepingHttpClientFactory : ForwarderHttpClientFactory
{
    protected override void ConfigureHandler(ForwarderHttpClientContext context, System.Net.Http.SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        handler.ActivityHeadersPropagator = null;
    }
}
