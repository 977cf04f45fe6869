using System.Collections.Concurrent;
using System.Threading.Channels;
using FaaSMon.Core;
using FaaSMon.Monitor.Snapshots;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Hosting;

/// <summary>
/// Snapshots the instances on an intrusion's causal path. It waits a moment after the final verdict, so the other hops of
/// the trace (and a call made without trace context) have their graphs too, then asks <see cref="CausalPath"/> which
/// instances those are among the graphs seen lately. One snapshot set per intrusion; a burst is queued, never dropped
/// silently (a full queue is logged).
/// </summary>
internal sealed partial class SnapshotTrigger(SnapshotService snapshots, MonitoredStack? stack, ILogger<SnapshotTrigger> logger)
{
    private const int Recent = 5_000;
    private static readonly TimeSpan TraceSettle = TimeSpan.FromSeconds(2.5);

    private readonly ConcurrentQueue<ProvenanceGraph> _recent = new();
    private readonly Channel<(string Id, ProvenanceGraph Graph, DateTimeOffset At)> _due =
        Channel.CreateBounded<(string, ProvenanceGraph, DateTimeOffset)>(new BoundedChannelOptions(256) { FullMode = BoundedChannelFullMode.DropWrite });

    public void Observe(VerdictNotice notice)
    {
        if (!notice.Final)
        {
            return;
        }

        _recent.Enqueue(notice.Graph);
        while (_recent.Count > Recent)
        {
            _recent.TryDequeue(out _);
        }

        if (notice.Verdict.IsIntrusion && !_due.Writer.TryWrite((notice.Id, notice.Graph, DateTimeOffset.UtcNow)))
        {
            LogQueueFull(logger, notice.Id);
        }
    }

    public async Task RunAsync(CancellationToken ct)
    {
        await foreach (var (id, graph, at) in _due.Reader.ReadAllAsync(ct))
        {
            var wait = at + TraceSettle - DateTimeOffset.UtcNow;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, ct);
            }

            var targets = CausalPath.Of(graph, [.. _recent])
                .Select(t => t with { Pid = t.Pid ?? PidOf(t.Instance) })
                .ToList();
            if (targets.Count == 0)
            {
                continue;
            }

            var set = await snapshots.SnapshotAsync(id, targets, ct);
            LogTaken(logger, id, set.Instances.Count, string.Join(", ", set.Instances.Select(i => $"{i.Instance} {i.Status}")));
        }
    }

    private int? PidOf(string instance) =>
        stack?.Faas.Instances.FirstOrDefault(i => i.Instance == instance).Pid;

    [LoggerMessage(Level = LogLevel.Warning, Message = "snapshot queue full: the intrusion {Id} is not snapshotted")]
    private static partial void LogQueueFull(ILogger logger, string id);

    [LoggerMessage(Level = LogLevel.Information, Message = "snapshots of intrusion {Id}: {Count} instance(s): {Instances}")]
    private static partial void LogTaken(ILogger logger, string id, int count, string instances);
}
