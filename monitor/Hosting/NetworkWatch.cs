using System.Diagnostics.Metrics;
using System.Globalization;
using FaaSMon.Classifier.Temporal;
using FaaSMon.Core;
using FaaSMon.Monitor.Alerts;
using FaaSMon.Monitor.Store;
using FaaSMon.Network.Capture;
using FaaSMon.Network.Join;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Hosting;

/// <summary>What <see cref="NetworkWatch"/> captures and how long it waits.</summary>
/// <param name="Interface">Where the function containers' traffic passes (LocalFaaS: <c>lo</c>; Docker: the bridge).</param>
/// <param name="Filter">A libpcap filter; null = every frame of the interface.</param>
/// <param name="Lag">After a window ends: time for the capture buffer and for the proxy's flows (published after their slice goes idle).</param>
internal sealed record NetworkWatchOptions(string Interface = "lo", string? Filter = null, TimeSpan? Lag = null)
{
    public TimeSpan EffectiveLag => Lag ?? TimeSpan.FromSeconds(2);
}

/// <summary>
/// The network view inside <c>faasmon serve</c>: the traffic of the interface is cut into the windows the network model
/// (TGAT or GCN, <c>faasmon train --task network</c>) was trained on, each window is scored, and the score joins the
/// verdict of every invocation whose proxy <see cref="PacketFlow"/>s are flows of that window
/// (<see cref="NetworkFlowJoin"/>): stored per invocation and alerted when it is an intrusion.
/// </summary>
internal sealed partial class NetworkWatch : IDisposable
{
    private const int MaxPendingFlows = 100_000;

    private static readonly Meter Meter = new(VerdictPipeline.MeterName);
    private static readonly Counter<long> WindowCount = Meter.CreateCounter<long>("faasmon_network_windows", description: "network windows scored");
    private static readonly Counter<long> JoinCount = Meter.CreateCounter<long>("faasmon_network_joins", description: "invocations given a network-window verdict");
    private static readonly Counter<long> DroppedFlowCount = Meter.CreateCounter<long>("faasmon_network_flows_dropped", description: "proxy flows not joined: the join fell behind");

    private readonly NetworkWatchOptions _options;
    private readonly TemporalModel _model;
    private readonly double _windowSeconds;
    private readonly VerdictStore _store;
    private readonly FalcoWebhook? _alerts;
    private readonly ILogger _logger;
    private readonly TimeProvider _clock;
    private readonly LiveWindows _windows;
    private readonly Queue<PacketFlow> _incoming = new();
    private readonly List<PacketFlow> _recent = [];
    private long _windowsScored;
    private long _frames;

    public NetworkWatch(NetworkWatchOptions options, TemporalModel model, double windowSeconds, VerdictStore store, FalcoWebhook? alerts, ILogger logger, TimeProvider? clock = null)
    {
        _options = options;
        _model = model;
        _windowSeconds = windowSeconds;
        _store = store;
        _alerts = alerts;
        _logger = logger;
        _clock = clock ?? TimeProvider.System;
        _windows = new LiveWindows(TimeSpan.FromSeconds(windowSeconds));
    }

    public long WindowsScored => Interlocked.Read(ref _windowsScored);

    public long Frames => Interlocked.Read(ref _frames);

    /// <summary>A proxy flow (any thread): joined with the windows it overlaps once they are scored.</summary>
    public void AddFlow(PacketFlow flow)
    {
        ArgumentNullException.ThrowIfNull(flow);
        if (flow.SpanId is null)
        {
            return;
        }

        lock (_incoming)
        {
            if (_incoming.Count >= MaxPendingFlows)
            {
                DroppedFlowCount.Add(1);
                return;
            }

            _incoming.Enqueue(flow);
        }
    }

    /// <summary>Captures until cancelled, then scores what is left.</summary>
    /// <exception cref="TestbedCaptureException">The interface cannot be captured (no libpcap, no rights, no such interface).</exception>
    public async Task RunAsync(CancellationToken ct)
    {
        using var capture = BridgeCapture.StartHere(_options.Interface, _options.Filter);
        LogStarted(_logger, _options.Interface, _options.Filter ?? "(all)", _model.Name, _windowSeconds);
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(500), _clock);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                Step(capture.Drain(), _clock.GetUtcNow());
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // stopping: what was captured is still scored
        }

        Step(capture.Drain(), now: null);
    }

    /// <summary>
    /// Adds frames, scores the windows that are finished at <paramref name="now"/> (every window when null) and stores
    /// their verdicts for the invocations whose flows they hold.
    /// </summary>
    internal void Step(IReadOnlyList<CapturedFrame> frames, DateTimeOffset? now)
    {
        Interlocked.Add(ref _frames, frames.Count);
        foreach (var frame in frames)
        {
            _windows.Add(frame);
        }

        lock (_incoming)
        {
            _recent.AddRange(_incoming);
            _incoming.Clear();
        }

        var finished = _windows.TakeFinished(now, _options.EffectiveLag);
        if (finished.Count == 0)
        {
            return;
        }

        var scores = _model.Predict([.. finished.Select(TemporalFeatures.From)]);
        // counted before they are stored, so whoever sees a window's verdict in the store sees it counted too
        Interlocked.Add(ref _windowsScored, finished.Count);
        WindowCount.Add(finished.Count);
        var matchesByWindow = NetworkFlowJoin.Match(_recent, finished).ToLookup(m => m.Window, ReferenceEqualityComparer.Instance);
        for (var i = 0; i < finished.Count; i++)
        {
            var window = finished[i];
            var bySpan = matchesByWindow[window]
                .GroupBy(m => m.Flow.SpanId!, StringComparer.Ordinal)
                .ToDictionary(g => g.Key, g => g.Select(m => m.EdgeIndex).Distinct().Count(), StringComparer.Ordinal);
            Store(window, scores[i], bySpan);
        }

        // flows older than a window and its lag can match no window still to come
        var horizon = finished[^1].WindowStartUtc + TimeSpan.FromSeconds(finished[^1].WindowSeconds) - _options.EffectiveLag - TimeSpan.FromSeconds(_windowSeconds);
        _recent.RemoveAll(f => f.LastSeenUtc < horizon);
    }

    private void Store(TemporalGraph window, double score, IReadOnlyDictionary<string, int> flowsBySpan)
    {
        var intrusion = score >= 0.5;
        foreach (var (span, flows) in flowsBySpan)
        {
            var verdict = new NetworkVerdict(window.WindowStartUtc, window.WindowSeconds, score, intrusion, _model.Name, flows, window.Nodes.Count, window.Edges.Count);
            try
            {
                _store.AddNetworkVerdict(span, verdict);
            }
            catch (Microsoft.Data.Sqlite.SqliteException e)
            {
                LogStoreFailed(_logger, span, e.Message);
                continue;
            }

            JoinCount.Add(1);
            if (intrusion)
            {
                var found = _store.Find(span)?.Summary;
                _alerts?.Post(FalcoAlert.ForNetwork(verdict, span, found?.CallId, found?.TraceId, found?.Function, found?.Instance, _clock.GetUtcNow()));
                LogIntrusion(_logger, span, found?.Function ?? "?", score, window.WindowStartUtc.ToString("HH:mm:ss.fff", CultureInfo.InvariantCulture));
            }
        }
    }

    public void Dispose() => _model.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "network view: capturing {Interface} (filter {Filter}), {Model} on {Seconds} s windows")]
    private static partial void LogStarted(ILogger logger, string @interface, string filter, string model, double seconds);

    [LoggerMessage(Level = LogLevel.Warning, Message = "network verdict for {Span} not stored: {Problem}")]
    private static partial void LogStoreFailed(ILogger logger, string span, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "network intrusion: invocation {Span} ({Function}) had flows in the window at {Window}, score {Score:F3}")]
    private static partial void LogIntrusion(ILogger logger, string span, string function, double score, string window);
}
