using System.Text;
using FaaSMon.Core;

namespace FaaSMon.Grapher;

/// <summary>
/// What the first bytes of a socket read or write say about HTTP: a request line (with the call id and trace context when
/// they fit in the bytes the tracer kept) or a status line. The tracer keeps a bounded prefix, so every field may be cut.
/// </summary>
internal readonly record struct HttpHead(bool IsRequest, bool IsResponse, string? Method, string? Target, string? CallId, TraceParent? TraceParent)
{
    private static readonly string[] Methods = ["GET ", "POST ", "PUT ", "DELETE ", "PATCH ", "HEAD ", "OPTIONS "];

    public static HttpHead None => default;

    public static HttpHead Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < 8)
        {
            return None;
        }

        if (data.StartsWith("HTTP/1."u8))
        {
            return new HttpHead(false, true, null, null, null, null);
        }

        string? method = null;
        foreach (var m in Methods)
        {
            if (data.StartsWith(Encoding.ASCII.GetBytes(m)))
            {
                method = m[..^1];
                break;
            }
        }

        if (method is null)
        {
            return None;
        }

        var text = Encoding.ASCII.GetString(data);
        var lineEnd = text.IndexOf("\r\n", StringComparison.Ordinal);
        var requestLine = lineEnd < 0 ? text : text[..lineEnd];
        var parts = requestLine.Split(' ');
        if (lineEnd >= 0 && (parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal)))
        {
            return None; // a body that happens to start with a verb
        }

        var target = parts.Length > 1 ? parts[1] : null;
        string? callId = null;
        TraceParent? traceParent = null;
        if (lineEnd >= 0)
        {
            foreach (var line in text[(lineEnd + 2)..].Split("\r\n"))
            {
                if (line.Length == 0)
                {
                    break; // end of the head
                }

                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0)
                {
                    continue;
                }

                var name = line.AsSpan(0, colon);
                var value = line.AsSpan(colon + 1).Trim();
                // a header at the very end of the kept bytes may be cut: only a value followed by CRLF is whole
                var complete = text.Contains(line + "\r\n", StringComparison.Ordinal);
                if (!complete)
                {
                    continue;
                }

                if (name.Equals(Core.CallId.HeaderName, StringComparison.OrdinalIgnoreCase) && Core.CallId.IsValid(value))
                {
                    callId = value.ToString();
                }
                else if (name.Equals(Core.TraceParent.HeaderName, StringComparison.OrdinalIgnoreCase) && Core.TraceParent.TryParse(value.ToString(), out var parsed))
                {
                    traceParent = parsed;
                }
            }
        }

        return new HttpHead(true, false, method, target, callId, traceParent);
    }
}
