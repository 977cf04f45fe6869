namespace FaaSMon.Tracer;

/// <summary>What the tracer has done so far; read by the command, the bench and the monitor's metrics.</summary>
public sealed class TracerCounters
{
    private long _events;
    private long _parseErrors;
    private long _drops;
    private long _attached;
    private long _attachFailures;
    private long _discoveryLatencyTicksMax;
    private long _discoveryLatencyTicksLast;
    private long _execsHeard;

    public long Events => Interlocked.Read(ref _events);

    /// <summary>Backend output lines that were not understood (skipped).</summary>
    public long ParseErrors => Interlocked.Read(ref _parseErrors);

    /// <summary>Events lost: the kernel's lost events (eBPF) plus events the full channel refused.</summary>
    public long Drops => Interlocked.Read(ref _drops);

    /// <summary>Function processes currently traced.</summary>
    public long AttachedProcesses => Interlocked.Read(ref _attached);

    public long AttachFailures => Interlocked.Read(ref _attachFailures);

    public TimeSpan LastDiscoveryLatency => TimeSpan.FromTicks(Interlocked.Read(ref _discoveryLatencyTicksLast));

    /// <summary>Execs the kernel announced (each starts a discovery pass at once); 0 where only polling works.</summary>
    public long ExecsHeard => Interlocked.Read(ref _execsHeard);

    public TimeSpan MaxDiscoveryLatency => TimeSpan.FromTicks(Interlocked.Read(ref _discoveryLatencyTicksMax));

    internal void AddEvent() => Interlocked.Increment(ref _events);

    internal void AddParseErrors(long n) => Interlocked.Add(ref _parseErrors, n);

    internal void AddDrops(long n) => Interlocked.Add(ref _drops, n);

    internal void Attached() => Interlocked.Increment(ref _attached);

    internal void Detached() => Interlocked.Decrement(ref _attached);

    internal void AttachFailed() => Interlocked.Increment(ref _attachFailures);

    internal void ExecHeard() => Interlocked.Increment(ref _execsHeard);

    internal void Discovered(TimeSpan latency)
    {
        Interlocked.Exchange(ref _discoveryLatencyTicksLast, latency.Ticks);
        long max;
        while (latency.Ticks > (max = Interlocked.Read(ref _discoveryLatencyTicksMax))
               && Interlocked.CompareExchange(ref _discoveryLatencyTicksMax, latency.Ticks, max) != max)
        {
        }
    }

    public override string ToString() =>
        $"events={Events} parse_errors={ParseErrors} drops={Drops} attached={AttachedProcesses} attach_failures={AttachFailures} " +
        $"discovery_latency_last_ms={LastDiscoveryLatency.TotalMilliseconds:F0} discovery_latency_max_ms={MaxDiscoveryLatency.TotalMilliseconds:F0} execs_heard={ExecsHeard}";
}
