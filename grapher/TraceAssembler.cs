using FaaSMon.Core;

namespace FaaSMon.Grapher;

/// <summary>
/// Joins the invocations of one trace id into one graph: each invocation's graph side by side, and an <c>invoke</c> edge
/// from the invocation that made a call to the invocation it called (the proxy's parent span id). A trace is built once
/// none of its invocations finished for <see cref="GrapherOptions.TraceSettle"/>.
/// </summary>
public sealed class TraceAssembler(GrapherOptions options, GrapherCounters counters, Action<ProvenanceGraph> finished)
{
    private const int MaxInvocationsPerTrace = 256;

    private readonly Dictionary<string, Pending> _traces = new(StringComparer.Ordinal);

    public int OpenTraces => _traces.Count;

    public void Add(FinishedInvocation invocation, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(invocation);
        if (invocation.TraceId is not { } traceId)
        {
            return;
        }

        if (!_traces.TryGetValue(traceId, out var pending))
        {
            _traces[traceId] = pending = new Pending();
        }

        if (pending.Invocations.Count < MaxInvocationsPerTrace)
        {
            pending.Invocations.Add(invocation);
        }
        else
        {
            pending.LeftOut++;
        }

        pending.Last = now;
    }

    public void Advance(DateTimeOffset now)
    {
        foreach (var (traceId, pending) in _traces.Where(t => now - t.Value.Last >= options.TraceSettle).ToList())
        {
            _traces.Remove(traceId);
            Emit(traceId, pending);
        }
    }

    public void FlushAll()
    {
        foreach (var (traceId, pending) in _traces.ToList())
        {
            _traces.Remove(traceId);
            Emit(traceId, pending);
        }
    }

    private void Emit(string traceId, Pending pending)
    {
        finished(Build(traceId, pending.Invocations, pending.LeftOut));
        counters.AddTraceGraph();
    }

    /// <summary>The trace graph of these invocations (in the order they started).</summary>
    public static ProvenanceGraph Build(string traceId, IReadOnlyList<FinishedInvocation> invocations, int leftOut = 0)
    {
        ArgumentNullException.ThrowIfNull(invocations);
        var ordered = invocations.OrderBy(i => i.Record?.StartUtc ?? DateTimeOffset.MaxValue).ToList();
        var nodes = new List<GraphNode>();
        var edges = new List<GraphEdge>();
        var selfBySpan = new Dictionary<string, int>(StringComparer.Ordinal);
        var selves = new List<(FinishedInvocation Invocation, int Node)>();
        foreach (var invocation in ordered)
        {
            var offset = nodes.Count;
            nodes.AddRange(invocation.Graph.Nodes.Select(n => n with { Id = n.Id + offset }));
            edges.AddRange(invocation.Graph.Edges.Select(e => e with { Source = e.Source + offset, Target = e.Target + offset }));
            var self = invocation.InvocationNode + offset;
            selves.Add((invocation, self));
            if (invocation.SpanId is { } span)
            {
                selfBySpan[span] = self;
            }
        }

        foreach (var (invocation, self) in selves)
        {
            if (invocation.ParentSpanId is { } parent && selfBySpan.TryGetValue(parent, out var caller) && caller != self)
            {
                var time = invocation.Record is { } r ? InvocationAttributor.Ns(r.StartUtc) : 0;
                edges.Add(new GraphEdge(caller, self, EdgeKind.Invoke, "call", time, time));
            }
        }

        var root = ordered.FirstOrDefault(i => i.ParentSpanId is null || !selfBySpan.ContainsKey(i.ParentSpanId)) ?? ordered.FirstOrDefault();
        return new ProvenanceGraph($"trace-{traceId}", GraphScope.Trace, root?.Graph.CallId, traceId, root?.Graph.Function, root?.Graph.Instance, nodes, edges)
        {
            Ambiguous = ordered.Any(i => i.Graph.Ambiguous),
            Truncated = leftOut > 0 || ordered.Any(i => i.Graph.Truncated),
        };
    }

    private sealed class Pending
    {
        public List<FinishedInvocation> Invocations { get; } = [];

        public DateTimeOffset Last { get; set; }

        public int LeftOut { get; set; }
    }
}
