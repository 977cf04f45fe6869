using System.Diagnostics.Metrics;
using System.Threading.Channels;
using FaaSMon.Classifier.Inference;
using FaaSMon.Core;
using FaaSMon.Grapher;
using FaaSMon.Monitor.Alerts;
using FaaSMon.Monitor.Store;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Hosting;

/// <summary>A verdict as it was stored: what the live table and the snapshots react to.</summary>
/// <param name="LatencyMs">From the response leaving the proxy to the verdict being stored; null without a proxy record.</param>
internal sealed record VerdictNotice(string Id, ProvenanceGraph Graph, InvocationRecord? Record, Verdict Verdict, bool Final, double? LatencyMs);

/// <summary>
/// The inference service: every graph the grapher finishes is classified (model + rules), stored with its verdict, and
/// an intrusion is alerted once. Provisional graphs (built the moment the response and the proxy record are seen) give
/// the first verdict; the final graph, after the settle delay, replaces it. Proxy records make pending rows before that.
/// </summary>
internal sealed partial class VerdictPipeline
{
    public const string MeterName = "FaaSMon.Monitor";
    private const int LatencySamples = 100_000;
    private const int LaneCapacity = 10_000;
    private const int MaxOpenFirsts = 100_000;

    private static readonly Meter Meter = new(MeterName);
    private static readonly Histogram<double> FirstLatency = Meter.CreateHistogram<double>("faasmon_verdict_latency_ms", "ms", "response leaving the proxy → first verdict stored");
    private static readonly Counter<long> VerdictCount = Meter.CreateCounter<long>("faasmon_verdicts", description: "verdicts stored");

    private readonly VerdictStore _store;
    private readonly GraphClassifier _classifier;
    private readonly ComponentHealth _health;
    private readonly FalcoWebhook? _alerts;
    private readonly ILogger _logger;
    private readonly TimeProvider _clock;
    private readonly HashSet<string> _alerted = new(StringComparer.Ordinal);
    private readonly Queue<string> _alertedOrder = new();
    private readonly Latencies _first = new(LatencySamples);
    private readonly Latencies _final = new(LatencySamples);
    private readonly Latencies _graphed = new(LatencySamples);
    private readonly Latencies _work = new(LatencySamples);
    private readonly Latencies _traced = new(LatencySamples);
    private readonly Latencies _built = new(LatencySamples);
    private long _classified;
    private long _firstFromFinal;
    private long _failed;

    public VerdictPipeline(VerdictStore store, GraphClassifier classifier, ComponentHealth health, FalcoWebhook? alerts, ILogger logger, TimeProvider? clock = null)
    {
        _store = store;
        _classifier = classifier;
        _health = health;
        _alerts = alerts;
        _logger = logger;
        _clock = clock ?? TimeProvider.System;
    }

    /// <summary>Raised after each stored verdict, on either lane's worker (so possibly two at once): handlers must be quick and thread-safe.</summary>
    public event Action<VerdictNotice>? Stored;

    public long Classified => Interlocked.Read(ref _classified);

    public long Failed => Interlocked.Read(ref _failed);

    /// <summary>Response → first verdict (provisional or final), ms.</summary>
    public Latencies FirstVerdict => _first;

    /// <summary>Response → final verdict, ms.</summary>
    public Latencies FinalVerdict => _final;

    /// <summary>Of the first verdict: response → its graph reaching this pipeline (tracing, attribution, the record join), ms.</summary>
    public Latencies FirstGraph => _graphed;

    /// <summary>Of the first verdict: classifying, explaining and storing it, ms.</summary>
    public Latencies FirstWork => _work;

    /// <summary>Of the first verdict: response → the grapher seeing the event that closed its window (the tracer's lag), ms.</summary>
    public Latencies FirstTraced => _traced;

    /// <summary>Of the first verdict: response → its graph built (tracer lag + waiting for the record), ms; the rest of <see cref="FirstGraph"/> is the queue.</summary>
    public Latencies FirstBuilt => _built;

    public bool ModelLoaded => _classifier.HasModel;

    /// <summary>Every verdict: features, rules, model and explanation, ms.</summary>
    public Latencies ClassifyTime { get; } = new(LatencySamples);

    /// <summary>Every verdict: the row and the graph file written, ms.</summary>
    public Latencies StoreTime { get; } = new(LatencySamples);

    /// <summary>First verdicts that came from a final graph: no provisional one was built (no record matched in time).</summary>
    public long FirstFromFinal => Interlocked.Read(ref _firstFromFinal);

    /// <summary>Runs the classifier and the store's serializers once before traffic (see <see cref="GraphClassifier.WarmUp"/>).</summary>
    public void WarmUp() => VerdictStore.WarmUp(_classifier.WarmUp());

    public void AddRecord(InvocationRecord record)
    {
        try
        {
            _store.AddRecord(record);
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException)
        {
            _health.Report("store", ComponentHealth.Degraded, e.Message);
            LogStoreFailed(_logger, e);
        }
    }

    /// <summary>
    /// Two lanes, each with its own worker. First verdicts (a provisional graph, or a final one that never had a provisional
    /// verdict) go to the first lane; a final graph that revises a verdict a person already has goes to the revision lane,
    /// whose explanation and graph file cost tens of milliseconds: a first verdict never waits behind that. A revision waits
    /// for the first verdict it revises, so the final verdict of an invocation is always stored after its provisional one.
    /// A provisional graph whose final is already queued is skipped: the final gives the first verdict.
    /// </summary>
    public async Task RunInvocationsAsync(ChannelReader<FinishedInvocation> invocations, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(invocations);
        var firsts = Channel.CreateBounded<(FinishedInvocation Invocation, PendingFirstVerdict? Provisional)>(
            new BoundedChannelOptions(LaneCapacity) { SingleReader = true, SingleWriter = true });
        var revisions = Channel.CreateBounded<(FinishedInvocation Invocation, Task Revised)>(
            new BoundedChannelOptions(LaneCapacity) { SingleReader = true, SingleWriter = true });
        var firstWorker = Task.Run(() => RunFirstsAsync(firsts.Reader, ct), CancellationToken.None);
        var revisionWorker = Task.Run(() => RunRevisionsAsync(revisions.Reader, ct), CancellationToken.None);
        // the provisional verdicts not yet revised, by graph id; bounded for graphs whose final never comes
        var open = new Dictionary<string, PendingFirstVerdict>(StringComparer.Ordinal);
        var openOrder = new Queue<string>();
        try
        {
            await foreach (var item in invocations.ReadAllAsync(ct))
            {
                var graphId = item.Graph.GraphId;
                if (item.Provisional)
                {
                    var first = new PendingFirstVerdict();
                    if (open.TryAdd(graphId, first))
                    {
                        openOrder.Enqueue(graphId);
                        while (openOrder.Count > MaxOpenFirsts && openOrder.TryDequeue(out var oldest))
                        {
                            open.Remove(oldest);
                        }
                    }
                    else
                    {
                        open[graphId] = first;
                    }

                    await firsts.Writer.WriteAsync((item, first), ct);
                }
                else if (open.Remove(graphId, out var provisional) && !provisional.TrySupersede())
                {
                    await revisions.Writer.WriteAsync((item, provisional.Done), ct);
                }
                else
                {
                    // no provisional verdict, or one the first lane has not started: this final gives the first verdict
                    await firsts.Writer.WriteAsync((item, null), ct);
                }
            }
        }
        finally
        {
            firsts.Writer.TryComplete();
            revisions.Writer.TryComplete();
            // what the lanes hold is still classified and stored (graceful shutdown flushes open invocations)
            await Task.WhenAll(firstWorker, revisionWorker).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        await Task.WhenAll(firstWorker, revisionWorker);
    }

    private async Task RunFirstsAsync(ChannelReader<(FinishedInvocation Invocation, PendingFirstVerdict? Provisional)> lane, CancellationToken ct)
    {
        await foreach (var (invocation, provisional) in lane.ReadAllAsync(ct))
        {
            if (provisional is not null && !provisional.TryStart())
            {
                continue; // superseded by its final, which follows in this lane
            }

            try
            {
                HandleSafely(invocation);
            }
            finally
            {
                provisional?.Finish();
            }
        }
    }

    private async Task RunRevisionsAsync(ChannelReader<(FinishedInvocation Invocation, Task Revised)> lane, CancellationToken ct)
    {
        await foreach (var (invocation, revised) in lane.ReadAllAsync(ct))
        {
            await revised.WaitAsync(ct);
            HandleSafely(invocation);
        }
    }

    private void HandleSafely(FinishedInvocation invocation)
    {
        try
        {
            Handle(invocation);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // a bug in one verdict's handling must not end the verdicts of all that follow
            Interlocked.Increment(ref _failed);
            _health.Report("grapher", ComponentHealth.Degraded, $"{invocation.Graph.GraphId}: {e.Message}");
            LogHandlerFailed(_logger, e);
        }
    }

    public async Task RunTracesAsync(ChannelReader<ProvenanceGraph> traces, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(traces);
        await foreach (var trace in traces.ReadAllAsync(ct))
        {
            try
            {
                _store.AddTrace(trace, _clock.GetUtcNow());
            }
            catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException)
            {
                _health.Report("store", ComponentHealth.Degraded, e.Message);
                LogStoreFailed(_logger, e);
            }
        }
    }

    private void Handle(FinishedInvocation invocation)
    {
        var arrived = _clock.GetUtcNow();
        Verdict verdict;
        try
        {
            verdict = _classifier.Classify(invocation.Graph, withExplanation: !invocation.Provisional);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // one graph the model cannot take must not stop the verdicts of the others
            Interlocked.Increment(ref _failed);
            _health.Report("classifier", ComponentHealth.Degraded, $"{invocation.Graph.GraphId}: {e.Message}");
            LogClassifyFailed(_logger, invocation.Graph.GraphId, e);
            verdict = new Verdict(invocation.Graph.GraphId, invocation.Graph.CallId, invocation.TraceId, invocation.Graph.Function, null, null, false, [], [], [])
            {
                ModelUnavailable = $"classification failed: {e.Message}",
            };
        }

        var final = !invocation.Provisional;
        var pcap = invocation.Graph.Nodes.FirstOrDefault(n => n.Id == invocation.InvocationNode)?.Attributes?.GetValueOrDefault("pcap");
        string id;
        try
        {
            var classified = _clock.GetUtcNow();
            ClassifyTime.Add((classified - arrived).TotalMilliseconds);
            id = _store.AddVerdict(invocation.Graph, invocation.Record, invocation.SpanId, verdict, final, pcap, _clock.GetUtcNow());
            StoreTime.Add((_clock.GetUtcNow() - classified).TotalMilliseconds);
        }
        catch (Exception e) when (e is Microsoft.Data.Sqlite.SqliteException or IOException or UnauthorizedAccessException)
        {
            _health.Report("store", ComponentHealth.Degraded, e.Message);
            LogStoreFailed(_logger, e);
            return;
        }

        Interlocked.Increment(ref _classified);
        VerdictCount.Add(1, new KeyValuePair<string, object?>("verdict", verdict.IsIntrusion ? "intrusion" : "benign"));
        double? latency = null;
        if (invocation.Record is { } record)
        {
            latency = (_clock.GetUtcNow() - record.EndUtc).TotalMilliseconds;
            if (_first.TryAddFirst(id, latency.Value))
            {
                if (final)
                {
                    Interlocked.Increment(ref _firstFromFinal);
                    LogFirstFromFinal(_logger, invocation.Graph.GraphId, invocation.Graph.Function ?? "?", invocation.Closed, latency.Value);
                }

                FirstLatency.Record(latency.Value);
                _graphed.Add((arrived - record.EndUtc).TotalMilliseconds);
                _work.Add((_clock.GetUtcNow() - arrived).TotalMilliseconds);
                _built.Add((invocation.BuiltUtc - record.EndUtc).TotalMilliseconds);
                if (invocation.ClosedSeenUtc is { } seen)
                {
                    _traced.Add((seen - record.EndUtc).TotalMilliseconds);
                }
            }

            if (final)
            {
                _final.Add(latency.Value);
            }
        }

        if (verdict.IsIntrusion && Remember(id))
        {
            _alerts?.Post(FalcoAlert.For(verdict, id, invocation.Graph.Instance, _clock.GetUtcNow()));
        }

        try
        {
            Stored?.Invoke(new VerdictNotice(id, invocation.Graph, invocation.Record, verdict, final, latency));
        }
        catch (Exception e)
        {
            LogHandlerFailed(_logger, e);
        }
    }

    /// <summary>True the first time an invocation is an intrusion (one alert each, provisional or final).</summary>
    private bool Remember(string id)
    {
        lock (_alerted)
        {
            if (!_alerted.Add(id))
            {
                return false;
            }

            _alertedOrder.Enqueue(id);
            if (_alertedOrder.Count > 100_000)
            {
                _alerted.Remove(_alertedOrder.Dequeue());
            }

            return true;
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "first verdict of {GraphId} ({Function}, closed by {Closed}) came from its final graph, {Latency:F0} ms after the response")]
    private static partial void LogFirstFromFinal(ILogger logger, string graphId, string function, string closed, double latency);

    [LoggerMessage(Level = LogLevel.Warning, Message = "could not classify graph {GraphId}")]
    private static partial void LogClassifyFailed(ILogger logger, string graphId, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "store write failed")]
    private static partial void LogStoreFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Warning, Message = "a verdict handler failed")]
    private static partial void LogHandlerFailed(ILogger logger, Exception exception);
}

/// <summary>A bounded sample of latencies (the most recent ones) with percentiles; thread-safe.</summary>
internal sealed class Latencies(int capacity)
{
    private readonly Lock _lock = new();
    private readonly Queue<double> _values = new();
    private readonly HashSet<string> _seen = new(StringComparer.Ordinal);
    private readonly Queue<string> _seenOrder = new();

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _values.Count;
            }
        }
    }

    public void Add(double value)
    {
        lock (_lock)
        {
            _values.Enqueue(value);
            if (_values.Count > capacity)
            {
                _values.Dequeue();
            }
        }
    }

    /// <summary>Adds the latency of <paramref name="id"/> only the first time it is seen.</summary>
    public bool TryAddFirst(string id, double value)
    {
        lock (_lock)
        {
            if (!_seen.Add(id))
            {
                return false;
            }

            _seenOrder.Enqueue(id);
            if (_seenOrder.Count > capacity)
            {
                _seen.Remove(_seenOrder.Dequeue());
            }
        }

        Add(value);
        return true;
    }

    /// <summary>The <paramref name="quantile"/> (0..1) by nearest rank; NaN when empty.</summary>
    public double Percentile(double quantile)
    {
        double[] sorted;
        lock (_lock)
        {
            sorted = [.. _values];
        }

        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        Array.Sort(sorted);
        var rank = (int)Math.Ceiling(quantile * sorted.Length) - 1;
        return sorted[Math.Clamp(rank, 0, sorted.Length - 1)];
    }
}

/// <summary>
/// A provisional graph's first verdict as the two lanes see it: the dispatcher supersedes it (its final came before the
/// first lane took it) or the first lane starts it, whichever comes first; the revision lane waits for it to be done.
/// </summary>
internal sealed class PendingFirstVerdict
{
    private const int Queued = 0;
    private const int Started = 1;
    private const int Superseded = 2;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _state;

    public Task Done => _done.Task;

    /// <summary>The final graph takes this first verdict over: true when the first lane had not started it.</summary>
    public bool TrySupersede()
    {
        if (Interlocked.CompareExchange(ref _state, Superseded, Queued) != Queued)
        {
            return false;
        }

        _done.TrySetResult();
        return true;
    }

    /// <summary>The first lane takes it: false when it was superseded.</summary>
    public bool TryStart() => Interlocked.CompareExchange(ref _state, Started, Queued) == Queued;

    public void Finish() => _done.TrySetResult();
}
