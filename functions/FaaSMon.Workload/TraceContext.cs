using System.Security.Cryptography;

namespace FaaSMon.Workload;

/// <summary>The identity the driver stamps on one request: a fresh X-Call-Id and a new W3C trace.</summary>
internal sealed record TraceContext(string CallId, string TraceId, string SpanId)
{
    /// <summary>W3C <c>traceparent</c>, version 00, sampled.</summary>
    public string Traceparent => $"00-{TraceId}-{SpanId}-01";

    public static TraceContext NewRoot() =>
        new(Guid.NewGuid().ToString(), RandomHex(16), RandomHex(8));

    private static string RandomHex(int bytes)
    {
        Span<byte> buffer = stackalloc byte[bytes];
        do
        {
            RandomNumberGenerator.Fill(buffer);
        }
        while (buffer.IndexOfAnyExcept((byte)0) < 0); // W3C forbids all-zero trace and span ids.
        return Convert.ToHexStringLower(buffer);
    }
}
