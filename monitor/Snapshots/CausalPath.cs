using FaaSMon.Core;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>
/// The function instances on a request's causal path: every invocation of its trace (the proxy's trace id, joined by
/// <c>Invoke</c> edges in the trace graph), and every call made without trace context that the grapher linked to one of
/// them by the caller's endpoint (<c>callerGraphId</c>/<c>callerCallId</c> + <c>callerFunction</c>, <c>untracedCall</c>):
/// a forged call starts a trace of its own, so it is followed both ways, as are the traces it reaches. Exactly those.
/// </summary>
public static class CausalPath
{
    /// <summary>One invocation as the path sees it (from an invocation graph, or a self node of a trace graph).</summary>
    private sealed record Hop(string? GraphId, string? CallId, string? TraceId, string? SpanId, string Function, string Instance,
        string? CallerGraphId, string? CallerCallId, string? CallerFunction);

    /// <summary>
    /// The instances on the causal path of <paramref name="seed"/> (a trace graph, or the invocation graph a verdict is
    /// about), looking for untraced calls among <paramref name="known"/> (the invocation and trace graphs the host
    /// holds). Sorted by function, then instance.
    /// </summary>
    public static IReadOnlyList<SnapshotTarget> Of(ProvenanceGraph seed, IEnumerable<ProvenanceGraph> known)
    {
        ArgumentNullException.ThrowIfNull(seed);
        ArgumentNullException.ThrowIfNull(known);
        var universe = known.SelectMany(Hops).ToList();
        var members = Hops(seed).ToList();
        universe.AddRange(members);
        var traces = new HashSet<string>(StringComparer.Ordinal);
        var changed = true;
        while (changed)
        {
            changed = false;
            foreach (var m in members)
            {
                if (m.TraceId is not null)
                {
                    traces.Add(m.TraceId);
                }
            }

            foreach (var hop in universe)
            {
                if (members.Contains(hop))
                {
                    continue;
                }

                if ((hop.TraceId is not null && traces.Contains(hop.TraceId))
                    || members.Any(m => Calls(m, hop) || Calls(hop, m))
                    || members.Any(m => Same(m, hop)))
                {
                    members.Add(hop);
                    changed = true;
                }
            }
        }

        return [.. members.Select(m => (m.Function, m.Instance)).Distinct()
            .OrderBy(m => m.Function, StringComparer.Ordinal).ThenBy(m => m.Instance, StringComparer.Ordinal)
            .Select(m => new SnapshotTarget(m.Function, m.Instance))];
    }

    /// <summary>Whether <paramref name="caller"/> made the call that is <paramref name="callee"/>, by the link the grapher recorded.</summary>
    private static bool Calls(Hop caller, Hop callee)
    {
        if (callee.CallerGraphId is not null && caller.GraphId is not null)
        {
            return callee.CallerGraphId == caller.GraphId;
        }

        return callee.CallerCallId is not null && callee.CallerCallId == caller.CallId && callee.CallerFunction == caller.Function;
    }

    /// <summary>The same invocation seen twice (in its own graph and as a self node of its trace graph).</summary>
    private static bool Same(Hop a, Hop b) =>
        (a.GraphId is not null && a.GraphId == b.GraphId)
        || (a.SpanId is not null && a.SpanId == b.SpanId && a.TraceId == b.TraceId);

    private static IEnumerable<Hop> Hops(ProvenanceGraph graph)
    {
        foreach (var node in graph.Nodes)
        {
            if (node.Kind != NodeKind.Invocation || node.Attributes is not { } a || a.GetValueOrDefault("role") != "self"
                || a.GetValueOrDefault("function") is not { } function || a.GetValueOrDefault("instance") is not { Length: > 0 } instance)
            {
                continue; // "writer" nodes name an earlier invocation, not a hop of this request
            }

            yield return new Hop(
                graph.Scope == GraphScope.Invocation ? graph.GraphId : a.GetValueOrDefault("graphId"),
                a.GetValueOrDefault("callId"),
                a.GetValueOrDefault("traceId") ?? (graph.Scope == GraphScope.Invocation ? graph.TraceId : null),
                a.GetValueOrDefault("spanId"),
                function,
                instance,
                a.GetValueOrDefault("callerGraphId"),
                a.GetValueOrDefault("callerCallId"),
                a.GetValueOrDefault("callerFunction"));
        }
    }
}
