namespace FaaSMon.Core;

/// <summary>
/// What the proxy saw of one HTTP request that crossed it: identity, timing, sizes and a redacted
/// prefix of both bodies. One record per request, whether or not it named a function.
/// </summary>
/// <param name="CallId">The <c>X-Call-Id</c> the request carried upstream (kept from the caller or generated).
/// A function forwards its caller's call id, so the hops of one chain share it; <see cref="SpanId"/> is unique per hop.</param>
/// <param name="TraceId">W3C trace id (32 lowercase hex).</param>
/// <param name="SpanId">The span id this hop sent upstream in <c>traceparent</c> (16 lowercase hex).</param>
/// <param name="ParentSpanId">The span of the invocation that made this call when the proxy knows it (a proxy hop
/// earlier in the same trace), otherwise the parent id of the incoming <c>traceparent</c>; null for a new trace.</param>
/// <param name="ClientSpanId">The parent id exactly as the incoming <c>traceparent</c> carried it (the caller's own span).</param>
/// <param name="Function">The function named by <c>/function/NAME</c> or <c>/async-function/NAME</c>, else null.</param>
/// <param name="StartMonotonicNs">CLOCK_MONOTONIC nanoseconds, the clock bpftrace and the kernel use.</param>
/// <param name="UpstreamDurationMs">Time spent forwarding to the upstream and relaying its answer.</param>
/// <param name="RequestBodyPrefix">The first bytes of the body (UTF-8, secrets redacted); <c>RequestBodyTruncated</c> tells whether there was more.</param>
/// <param name="Outcome">"ok", or why the proxy answered itself ("bad-call-id", "upstream-error: ...", "rejected: ...").</param>
public sealed record InvocationRecord(
    string CallId,
    string TraceId,
    string SpanId,
    string? ParentSpanId,
    string? ClientSpanId,
    string? Function,
    string Method,
    string Path,
    string? Query,
    int Status,
    long BytesIn,
    long BytesOut,
    DateTimeOffset StartUtc,
    DateTimeOffset EndUtc,
    long StartMonotonicNs,
    long EndMonotonicNs,
    string? ClientAddress,
    double UpstreamDurationMs,
    string? RequestBodyPrefix,
    bool RequestBodyTruncated,
    string? ResponseBodyPrefix,
    bool ResponseBodyTruncated,
    IReadOnlyDictionary<string, string>? RequestHeaders,
    string Outcome)
{
    public double DurationMs => (EndMonotonicNs - StartMonotonicNs) / 1e6;
}
