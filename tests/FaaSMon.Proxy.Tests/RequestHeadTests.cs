using System.Text;
using FaaSMon.Core;

namespace FaaSMon.Proxy.Tests;

/// <summary>What the packet matcher reads from the first segment of a request (core's <see cref="HttpHead"/>).</summary>
public sealed class RequestHeadTests
{
    [Fact]
    public void ReadsCallIdAndSpanFromARequestHead()
    {
        var payload = Encoding.ASCII.GetBytes(
            "POST /function/echo HTTP/1.1\r\nHost: x\r\nx-call-id: abc-123\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\nbody");
        var head = HttpHead.Parse(payload);
        Assert.True(head is { IsRequest: true, RequestLineComplete: true });
        Assert.Equal("abc-123", head.CallId);
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", head.TraceParent?.TraceId);
        Assert.Equal("b7ad6b7169203331", head.TraceParent?.SpanId);
        Assert.Equal("/function/echo", head.Target);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nX-Call-Id: abc\r\n\r\n")] // a response, not a request
    [InlineData("{\"json\":\"GET / HTTP/1.1\"}")]
    [InlineData("get / HTTP/1.1\r\n\r\n")]
    [InlineData("POST the rest of a body\r\n")] // a continuation segment that starts with a verb
    public void IgnoresWhatIsNotARequestHead(string text) => Assert.False(HttpHead.Parse(Encoding.ASCII.GetBytes(text)).IsRequest);
}
