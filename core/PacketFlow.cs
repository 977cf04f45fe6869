namespace FaaSMon.Core;

/// <summary>
/// The packets of one direction of one TCP connection that belong to one invocation
/// (the proxy's upstream connections are pooled, so a connection carries many invocations).
/// </summary>
/// <param name="CallId">The <c>X-Call-Id</c> found in the request bytes.</param>
/// <param name="SpanId">The span id found in the request's <c>traceparent</c>; ties the flow to its <see cref="InvocationRecord"/>.</param>
/// <param name="SliceFile">The pcap file holding this invocation's slice, when one was written. Slices are kept in
/// bundle files (creating one file per invocation cannot keep up with thousands of invocations a second), each
/// invocation's packet records contiguous: the bytes [<paramref name="SliceOffset"/>, +<paramref name="SliceLength"/>)
/// after the file's 24-byte pcap header are the invocation's own pcap (header + that range = a standalone file).</param>
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
    string? SliceFile,
    long SliceOffset = 0,
    long SliceLength = 0);
