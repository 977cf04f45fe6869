using System.Diagnostics.CodeAnalysis;

namespace FaaSMon.Core;

/// <summary>A W3C Trace Context <c>traceparent</c> (version 00): trace id, parent (span) id and flags.</summary>
public readonly record struct TraceParent(string TraceId, string SpanId, byte Flags)
{
    public const string HeaderName = "traceparent";
    public const string StateHeaderName = "tracestate";

    public bool Sampled => (Flags & 1) == 1;

    public override string ToString() => $"00-{TraceId}-{SpanId}-{Flags:x2}";

    /// <summary>A child of this context: same trace and flags, a fresh span id.</summary>
    public TraceParent Child() => this with { SpanId = TraceIds.NewSpanId() };

    public static TraceParent NewRoot() => new(TraceIds.NewTraceId(), TraceIds.NewSpanId(), 1);

    /// <summary>
    /// Parses a traceparent as the W3C spec asks a receiver to: version ff is invalid, an all-zero trace or
    /// parent id is invalid, uppercase hex is invalid; a future version is read for its first four fields
    /// when what follows them starts with '-'.
    /// </summary>
    public static bool TryParse(string? value, [NotNullWhen(true)] out TraceParent? parsed)
    {
        parsed = null;
        if (value is null)
        {
            return false;
        }

        var s = value.AsSpan().Trim(" \t");
        if (s.Length < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-')
        {
            return false;
        }

        var version = s[..2];
        if (!IsLowerHex(version) || version.SequenceEqual("ff"))
        {
            return false;
        }

        if (version.SequenceEqual("00") ? s.Length != 55 : s.Length > 55 && s[55] != '-')
        {
            return false;
        }

        var traceId = s.Slice(3, 32);
        var spanId = s.Slice(36, 16);
        var flags = s.Slice(53, 2);
        if (!IsLowerHex(traceId) || !IsLowerHex(spanId) || !IsLowerHex(flags) || IsAllZero(traceId) || IsAllZero(spanId))
        {
            return false;
        }

        parsed = new TraceParent(traceId.ToString(), spanId.ToString(), Convert.ToByte(flags.ToString(), 16));
        return true;
    }

    private static bool IsLowerHex(ReadOnlySpan<char> s)
    {
        foreach (var c in s)
        {
            if (!char.IsAsciiDigit(c) && c is not (>= 'a' and <= 'f'))
            {
                return false;
            }
        }

        return true;
    }

    private static bool IsAllZero(ReadOnlySpan<char> s) => !s.ContainsAnyExcept('0');
}

/// <summary>
/// Random W3C ids: never all zeroes, lowercase hex. W3C asks for randomness, not secrecy, so a fast PRNG is used, as
/// .NET's own ActivitySpanId does; a cryptographic generator cost a system call on every hop.
/// </summary>
public static class TraceIds
{
    public static string NewTraceId() => NewHex(16);

    public static string NewSpanId() => NewHex(8);

    private static string NewHex(int bytes)
    {
        Span<byte> buffer = stackalloc byte[16];
        var id = buffer[..bytes];
        do
        {
            Random.Shared.NextBytes(id);
        }
        while (!id.ContainsAnyExcept((byte)0));

        return Convert.ToHexStringLower(id);
    }
}
