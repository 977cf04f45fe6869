using System.Text;

namespace FaaSMon.Core;

/// <summary>
/// What the first bytes of an HTTP/1.x message say: a request line (method, target, and the call id and trace context when
/// they are among the bytes) or a status line. The bytes may be cut short, as a tracer keeps them or a packet carries them:
/// a header counts only when its line ends inside them, and a request line cut before its end is still a request
/// (<see cref="RequestLineComplete"/> false) whose target is what was kept.
/// </summary>
public readonly record struct HttpHead(bool IsRequest, bool IsResponse, bool RequestLineComplete, string? Method, string? Target, string? CallId, TraceParent? TraceParent)
{
    private const int MaxMethodLength = 16;

    public static HttpHead None => default;

    public static HttpHead Parse(ReadOnlySpan<byte> data)
    {
        if (data.StartsWith("HTTP/1."u8))
        {
            return new HttpHead(false, true, false, null, null, null, null);
        }

        var space = data[..Math.Min(data.Length, MaxMethodLength)].IndexOf((byte)' ');
        if (space <= 0 || !IsUpperAscii(data[..space]))
        {
            return None;
        }

        var lineEnd = data.IndexOf("\r\n"u8);
        var requestLine = lineEnd < 0 ? data : data[..lineEnd];
        var rest = requestLine[(space + 1)..];
        var targetEnd = rest.IndexOf((byte)' ');
        if (lineEnd >= 0 && (targetEnd <= 0 || !rest[targetEnd..].StartsWith(" HTTP/1."u8)))
        {
            return None; // a body that happens to start with a verb
        }

        var target = Encoding.ASCII.GetString(targetEnd < 0 ? rest : rest[..targetEnd]);
        string? callId = null;
        TraceParent? traceParent = null;
        var headers = lineEnd < 0 ? [] : data[(lineEnd + 2)..];
        while (headers.IndexOf("\r\n"u8) is >= 0 and var end)
        {
            var line = headers[..end];
            headers = headers[(end + 2)..];
            if (line.IsEmpty)
            {
                break; // the end of the head
            }

            var colon = line.IndexOf((byte)':');
            if (colon <= 0)
            {
                continue;
            }

            // only the two headers that matter are decoded: this runs on every request head a capture or a trace sees
            var name = line[..colon];
            if (Ascii.EqualsIgnoreCase(name, "x-call-id"u8))
            {
                var value = Encoding.ASCII.GetString(line[(colon + 1)..].Trim((byte)' '));
                callId = Core.CallId.IsValid(value) ? value : null;
            }
            else if (Ascii.EqualsIgnoreCase(name, "traceparent"u8) && Core.TraceParent.TryParse(Encoding.ASCII.GetString(line[(colon + 1)..].Trim((byte)' ')), out var parsed))
            {
                traceParent = parsed;
            }
        }

        return new HttpHead(true, false, lineEnd >= 0, Encoding.ASCII.GetString(data[..space]), target, callId, traceParent);
    }

    private static bool IsUpperAscii(ReadOnlySpan<byte> word)
    {
        foreach (var b in word)
        {
            if (b is < (byte)'A' or > (byte)'Z')
            {
                return false;
            }
        }

        return true;
    }
}
