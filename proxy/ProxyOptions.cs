using Microsoft.Extensions.Options;

namespace FaaSMon.Proxy;

/// <summary>Configuration section <c>Proxy</c> (environment: <c>Proxy__Upstream</c> …).</summary>
public sealed class ProxyOptions
{
    public const string Section = "Proxy";

    /// <summary>The OpenFaaS gateway every request is forwarded to.</summary>
    public Uri? Upstream { get; set; }

    /// <summary>Where records (<c>records/</c>) and captures (<c>pcap/</c>) are written. Kept outside /tmp.</summary>
    public string DataDirectory { get; set; } = "/var/lib/faasmon/proxy";

    /// <summary>Write invocation records and packet flows as NDJSON under <see cref="DataDirectory"/>.</summary>
    public bool WriteRecords { get; set; } = true;

    /// <summary>How much of each request and response body goes into a record (after redaction).</summary>
    public int BodyCaptureBytes { get; set; } = 4096;

    /// <summary>Records waiting for one subscriber before further ones are dropped (and counted).</summary>
    public int RecordQueueCapacity { get; set; } = 16384;

    /// <summary>Reject requests (503) that cannot be monitored, instead of forwarding them unrecorded. For strict deployments.</summary>
    public bool FailClosed { get; set; }

    /// <summary>Request bodies above this answer 413 (OpenFaaS sets no limit; an unbounded front door is a memory risk for the upstream).</summary>
    public long MaxRequestBodyBytes { get; set; } = 32 * 1024 * 1024;

    /// <summary>All request headers together; above it Kestrel answers 431.</summary>
    public int MaxRequestHeadersBytes { get; set; } = 32 * 1024;

    /// <summary>A client that has not sent its headers by then gets 408: slow-header clients cannot hold connections open.</summary>
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest silence from the upstream on one request (OpenFaaS upstream_timeout defaults to 60s).</summary>
    public TimeSpan UpstreamTimeout { get; set; } = TimeSpan.FromSeconds(65);

    public PcapOptions Pcap { get; set; } = new();
}

/// <summary>Configuration section <c>Proxy:Pcap</c>: capture of the gateway-side traffic.</summary>
public sealed class PcapOptions
{
    public bool Enabled { get; set; } = true;

    public string Interface { get; set; } = "lo";

    /// <summary>BPF filter; empty means <c>tcp port &lt;upstream port&gt;</c>, the proxy↔gateway traffic.</summary>
    public string? Filter { get; set; }

    /// <summary>Start a new capture file after this many bytes.</summary>
    public long RotateBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Capture files kept; the oldest is deleted first.</summary>
    public int MaxFiles { get; set; } = 16;

    /// <summary>Write one pcap file per invocation with the packets matched to it.</summary>
    public bool Slices { get; set; } = true;

    /// <summary>An invocation's slice is written once none of its packets arrived for this long.</summary>
    public TimeSpan SliceIdleTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Per-invocation slices beyond this many bytes keep only their flow counters.</summary>
    public int MaxSliceBytes { get; set; } = 1024 * 1024;

    /// <summary>Packets waiting between the capture thread and the writer before further ones are dropped (and counted).</summary>
    public int QueueCapacity { get; set; } = 262144;

    public int Snaplen { get; set; } = 65535;
}

internal sealed class ProxyOptionsValidator : IValidateOptions<ProxyOptions>
{
    public ValidateOptionsResult Validate(string? name, ProxyOptions options)
    {
        List<string> errors = [];
        if (options.Upstream is not { IsAbsoluteUri: true } upstream || upstream.Scheme is not ("http" or "https"))
        {
            errors.Add($"{ProxyOptions.Section}:Upstream must be an absolute http(s) URL of the gateway (got '{options.Upstream}').");
        }

        if (string.IsNullOrWhiteSpace(options.DataDirectory))
        {
            errors.Add($"{ProxyOptions.Section}:DataDirectory is required.");
        }

        Check(options.BodyCaptureBytes is >= 0 and <= 1024 * 1024, "BodyCaptureBytes must be 0..1048576");
        Check(options.RecordQueueCapacity is >= 1 and <= 10_000_000, "RecordQueueCapacity must be 1..10000000");
        Check(options.MaxRequestBodyBytes > 0, "MaxRequestBodyBytes must be positive");
        Check(options.MaxRequestHeadersBytes >= 1024, "MaxRequestHeadersBytes must be at least 1024");
        Check(options.RequestHeadersTimeout > TimeSpan.Zero, "RequestHeadersTimeout must be positive");
        Check(options.UpstreamTimeout > TimeSpan.Zero, "UpstreamTimeout must be positive");
        var pcap = options.Pcap;
        if (pcap.Enabled)
        {
            Check(!string.IsNullOrWhiteSpace(pcap.Interface), "Pcap:Interface is required when capture is enabled");
            Check(pcap.RotateBytes >= 64 * 1024, "Pcap:RotateBytes must be at least 65536");
            Check(pcap.MaxFiles >= 1, "Pcap:MaxFiles must be at least 1");
            Check(pcap.SliceIdleTimeout > TimeSpan.Zero, "Pcap:SliceIdleTimeout must be positive");
            Check(pcap.MaxSliceBytes >= 1024, "Pcap:MaxSliceBytes must be at least 1024");
            Check(pcap.QueueCapacity >= 16, "Pcap:QueueCapacity must be at least 16");
            Check(pcap.Snaplen is >= 96 and <= 262144, "Pcap:Snaplen must be 96..262144");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);

        void Check(bool ok, string message)
        {
            if (!ok)
            {
                errors.Add($"{ProxyOptions.Section}:{message}.");
            }
        }
    }
}
