namespace FaaSMon.Grapher;

/// <summary>What the grapher did with its input; read by /metrics, the bench and the collect report.</summary>
public sealed class GrapherCounters
{
    private long _events;
    private long _attributed;
    private long _idle;
    private long _unknownProcess;
    private long _late;
    private long _ambiguous;
    private long _invocations;
    private long _graphs;
    private long _traceGraphs;
    private long _truncated;
    private long _timedOut;
    private long _recordsMatched;
    private long _recordsUnmatched;
    private long _dropped;
    private long _movedFiles;

    public long Events => Interlocked.Read(ref _events);

    /// <summary>Events that went into an invocation's graph.</summary>
    public long Attributed => Interlocked.Read(ref _attributed);

    /// <summary>Events of a function process while it served no request (start-up, timers, pool keep-alives).</summary>
    public long Idle => Interlocked.Read(ref _idle);

    /// <summary>Events of processes that belong to no known function.</summary>
    public long UnknownProcess => Interlocked.Read(ref _unknownProcess);

    /// <summary>Events of a process whose invocation was already flushed.</summary>
    public long Late => Interlocked.Read(ref _late);

    /// <summary>Events attributed by time between overlapping invocations of one process.</summary>
    public long Ambiguous => Interlocked.Read(ref _ambiguous);

    public long Invocations => Interlocked.Read(ref _invocations);

    public long Graphs => Interlocked.Read(ref _graphs);

    public long TraceGraphs => Interlocked.Read(ref _traceGraphs);

    public long Truncated => Interlocked.Read(ref _truncated);

    /// <summary>Invocations flushed without a response (timeout, eviction, process exit, shutdown).</summary>
    public long TimedOut => Interlocked.Read(ref _timedOut);

    public long RecordsMatched => Interlocked.Read(ref _recordsMatched);

    /// <summary>Proxy records no traced invocation claimed before they expired (a function not traced, or no call id seen).</summary>
    public long RecordsUnmatched => Interlocked.Read(ref _recordsUnmatched);

    /// <summary>Input dropped because the grapher's queue was full.</summary>
    public long Dropped => Interlocked.Read(ref _dropped);

    /// <summary>Files (a download's temporary file) whose writes moved to the invocation that renamed them.</summary>
    public long MovedFiles => Interlocked.Read(ref _movedFiles);

    /// <summary>Invocations open now (gauge).</summary>
    public int Open { get; internal set; }

    internal void AddEvent() => Interlocked.Increment(ref _events);

    internal void AddAttributed() => Interlocked.Increment(ref _attributed);

    internal void AddIdle() => Interlocked.Increment(ref _idle);

    internal void AddUnknownProcess() => Interlocked.Increment(ref _unknownProcess);

    internal void AddLate() => Interlocked.Increment(ref _late);

    internal void AddAmbiguous() => Interlocked.Increment(ref _ambiguous);

    internal void AddInvocation() => Interlocked.Increment(ref _invocations);

    internal void AddGraph(bool truncated)
    {
        Interlocked.Increment(ref _graphs);
        if (truncated)
        {
            Interlocked.Increment(ref _truncated);
        }
    }

    internal void AddTraceGraph() => Interlocked.Increment(ref _traceGraphs);

    internal void AddTimedOut() => Interlocked.Increment(ref _timedOut);

    internal void AddRecordMatched() => Interlocked.Increment(ref _recordsMatched);

    internal void AddRecordUnmatched() => Interlocked.Increment(ref _recordsUnmatched);

    internal void AddDropped() => Interlocked.Increment(ref _dropped);

    internal void AddMovedFile() => Interlocked.Increment(ref _movedFiles);

    public override string ToString() =>
        $"events {Events} (attributed {Attributed}, idle {Idle}, unknown process {UnknownProcess}, late {Late}, ambiguous {Ambiguous}, dropped {Dropped}); files moved to their renamer {MovedFiles}; " +
        $"invocations {Invocations} (timed out {TimedOut}, open {Open}); graphs {Graphs} (truncated {Truncated}), trace graphs {TraceGraphs}; " +
        $"records matched {RecordsMatched}, unmatched {RecordsUnmatched}";
}
