namespace FaaSMon.Core;

/// <summary>
/// The packets of one direction of one TCP connection that belong to one invocation
/// (the proxy's upstream connections are pooled, so a connection carries many invocations).
/// </summary>
/// <param name="CallId">The <c>X-Call-Id</c> found in the request bytes.</param>
/// <param name="SpanId">The span id found in the request's <c>traceparent</c>; ties the flow to its <see cref="InvocationRecord"/>.</param>
/// <param name="SliceFile">The per-invocation pcap file these packets were also written to, when one was written.</param>
public sealed record PacketFlow(
    string? CallId,
    string? TraceId,
    string? SpanId,
    string Protocol,
    string SourceAddress,
    int SourcePort,
    string DestinationAddress,
    int DestinationPort,
    long Packets,
    long Bytes,
    DateTimeOffset FirstSeenUtc,
    DateTimeOffset LastSeenUtc,
    string? SliceFile);
