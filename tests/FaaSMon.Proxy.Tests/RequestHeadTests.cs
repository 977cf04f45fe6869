using System.Text;
using FaaSMon.Proxy.Pcap;

namespace FaaSMon.Proxy.Tests;

public sealed class RequestHeadTests
{
    [Fact]
    public void ReadsCallIdAndSpanFromARequestHead()
    {
        var payload = Encoding.ASCII.GetBytes(
            "POST /function/echo HTTP/1.1\r\nHost: x\r\nx-call-id: abc-123\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\nbody");
        Assert.True(RequestHead.TryRead(payload, out var head));
        Assert.Equal("abc-123", head.CallId);
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", head.TraceId);
        Assert.Equal("b7ad6b7169203331", head.SpanId);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nX-Call-Id: abc\r\n\r\n")] // a response, not a request
    [InlineData("{\"json\":\"GET / HTTP/1.1\"}")]
    [InlineData("get / HTTP/1.1\r\n\r\n")]
    public void IgnoresWhatIsNotARequestHead(string text) => Assert.False(RequestHead.TryRead(Encoding.ASCII.GetBytes(text), out _));
}
