using System.Text;
using FaaSMon.Core;
using Microsoft.Extensions.Primitives;

namespace FaaSMon.Proxy;

/// <summary>Who a request is, as this proxy hop forwards it: call id, the hop's own span, and who called it.</summary>
internal sealed record HopIdentity(string CallId, TraceParent Hop, string? ParentSpanId, string? ClientSpanId, string TraceState)
{
    /// <summary>
    /// Our tracestate member. Functions forward tracestate unchanged while they mint their own span for each
    /// outgoing call, so this member is how a child hop finds the proxy span of the invocation that called it.
    /// </summary>
    public const string TraceStateKey = "faasmon";

    private const int MaxTraceStateMembers = 32;
    private static readonly System.Buffers.SearchValues<char> LowerHex = System.Buffers.SearchValues.Create("0123456789abcdef");

    /// <summary>
    /// Resolves the identity or says why the request is refused. An invalid X-Call-Id is refused (400): it is the
    /// caller's correlation key, and silently swapping it would break the caller's own bookkeeping. An invalid
    /// traceparent is not the caller's key: per W3C it is replaced by a new trace, and its tracestate is discarded.
    /// </summary>
    public static HopIdentity? Resolve(StringValues callIdHeader, StringValues traceParentHeader, StringValues traceStateHeader, out string? error)
    {
        error = null;
        string callId;
        if (callIdHeader.Count == 0)
        {
            callId = Core.CallId.New();
        }
        else if (callIdHeader.Count > 1)
        {
            error = "invalid X-Call-Id: more than one value";
            return null;
        }
        else if (!Core.CallId.IsValid(callIdHeader[0]))
        {
            error = $"invalid X-Call-Id: expected 1 to {Core.CallId.MaxLength} visible ASCII characters";
            return null;
        }
        else
        {
            callId = callIdHeader[0]!;
        }

        TraceParent? incoming = null;
        if (traceParentHeader.Count == 1 && TraceParent.TryParse(traceParentHeader[0], out var parsed))
        {
            incoming = parsed;
        }

        var hop = incoming is { } parent ? parent.Child() : TraceParent.NewRoot();
        string? callerSpan = null;
        var state = new StringBuilder(TraceStateKey.Length + 17).Append(TraceStateKey).Append('=').Append(hop.SpanId);
        if (incoming is not null)
        {
            var members = 1;
            foreach (var header in traceStateHeader)
            {
                foreach (var raw in (header ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    var eq = raw.IndexOf('=', StringComparison.Ordinal);
                    if (eq <= 0 || raw.Length > 512 || !IsValidMember(raw, eq))
                    {
                        continue;
                    }

                    if (raw.AsSpan(0, eq).SequenceEqual(TraceStateKey))
                    {
                        callerSpan ??= IsSpanId(raw.AsSpan(eq + 1)) ? raw[(eq + 1)..] : null;
                        continue;
                    }

                    if (members++ < MaxTraceStateMembers)
                    {
                        state.Append(',').Append(raw);
                    }
                }
            }
        }

        return new HopIdentity(callId, hop, callerSpan ?? incoming?.SpanId, incoming?.SpanId, state.ToString());
    }

    private static bool IsValidMember(string member, int eq)
    {
        for (var i = 0; i < member.Length; i++)
        {
            var c = member[i];
            var ok = i < eq
                ? char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '_' or '-' or '*' or '/' or '@'
                : i == eq || (c is >= ' ' and <= '~' && c != ',' && c != '=');
            if (!ok)
            {
                return false;
            }
        }

        return eq < member.Length - 1;
    }

    private static bool IsSpanId(ReadOnlySpan<char> s) =>
        s.Length == 16 && !s.ContainsAnyExcept(LowerHex) && s.ContainsAnyExcept('0');
}
