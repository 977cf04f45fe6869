using System.Diagnostics;
using System.Diagnostics.Metrics;
using FaaSMon.Core;

namespace FaaSMon.Proxy;

/// <summary>
/// The OpenFaaS gateway's metric names (so existing dashboards and alerts keep working behind the proxy)
/// plus FaaSMon's own: what the monitor could not keep is counted, never lost silently.
/// </summary>
internal sealed class ProxyMetrics
{
    public const string MeterName = "FaaSMon.Proxy";

    // Prometheus client_golang's default buckets, which the gateway's histogram uses.
    private static readonly double[] GatewayBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    private static readonly string[] Codes = [.. Enumerable.Range(0, 600).Select(i => i.ToString(System.Globalization.CultureInfo.InvariantCulture))];

    private readonly Counter<long> _invocations;
    private readonly Histogram<double> _seconds;
    private readonly Counter<long> _started;
    private readonly Counter<long> _recordsDropped;
    private readonly Counter<long> _flowsDropped;
    private readonly Counter<long> _rejected;
    private long _packetsCaptured;
    private long _packetsQueueDropped;
    private long _packetsKernelDropped;
    private long _slicesWritten;

    public ProxyMetrics(IMeterFactory meters, RecordStream<InvocationRecord> records, RecordStream<PacketFlow> flows)
    {
        var meter = meters.Create(MeterName);
        _invocations = meter.CreateCounter<long>("gateway_function_invocation_total", description: "Function invocations by status code");
        _seconds = meter.CreateHistogram("gateway_functions_seconds", unit: null, description: "Function invocation duration",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = GatewayBuckets });
        _started = meter.CreateCounter<long>("gateway_function_invocation_started", description: "Function invocations started");
        meter.CreateObservableCounter("faasmon_records_emitted_total", () => records.Published, description: "Invocation records produced, one per request");
        _recordsDropped = meter.CreateCounter<long>("faasmon_records_dropped_total", description: "Invocation records a subscriber could not take (queue full or no subscriber)");
        _flowsDropped = meter.CreateCounter<long>("faasmon_flows_dropped_total", description: "Packet flow records a subscriber could not take");
        meter.CreateObservableCounter("faasmon_packets_captured_total", () => Interlocked.Read(ref _packetsCaptured), description: "Packets captured on the gateway side");
        meter.CreateObservableCounter("faasmon_packets_dropped_total", () => new[]
        {
            new Measurement<long>(Interlocked.Read(ref _packetsQueueDropped), new KeyValuePair<string, object?>("where", "queue")),
            new Measurement<long>(Interlocked.Read(ref _packetsKernelDropped), new KeyValuePair<string, object?>("where", "kernel")),
        }, description: "Packets lost before they were written");
        meter.CreateObservableCounter("faasmon_pcap_slices_written_total", () => Interlocked.Read(ref _slicesWritten), description: "Per-invocation pcap slices written");
        _rejected = meter.CreateCounter<long>("faasmon_requests_rejected_total", description: "Requests the proxy answered itself (bad input, fail-closed)");
        records.Dropped += subscriber => _recordsDropped.Add(1, new KeyValuePair<string, object?>("subscriber", subscriber));
        flows.Dropped += subscriber => _flowsDropped.Add(1, new KeyValuePair<string, object?>("subscriber", subscriber));
    }

    public long PacketsCaptured => Interlocked.Read(ref _packetsCaptured);

    public long PacketsQueueDropped => Interlocked.Read(ref _packetsQueueDropped);

    public void Started(string function) => _started.Add(1, new KeyValuePair<string, object?>("function_name", function));

    public void Completed(string function, int status, double seconds)
    {
        var tags = new TagList { { "function_name", function }, { "code", status is >= 0 and < 600 ? Codes[status] : "0" } };
        _invocations.Add(1, tags);
        _seconds.Record(seconds, tags);
    }

    public void Rejected(string reason) => _rejected.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public void PacketCaptured() => Interlocked.Increment(ref _packetsCaptured);

    public void PacketQueueDropped() => Interlocked.Increment(ref _packetsQueueDropped);

    public void KernelDropped(long total) => Interlocked.Exchange(ref _packetsKernelDropped, total);

    public void SliceWritten() => Interlocked.Increment(ref _slicesWritten);
}
