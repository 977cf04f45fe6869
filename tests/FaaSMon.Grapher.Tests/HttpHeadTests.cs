using System.Text;
using FaaSMon.Core;

namespace FaaSMon.Grapher.Tests;

/// <summary>The bytes a tracer keeps of a socket read are cut short: what <see cref="HttpHead"/> still takes from them.</summary>
public sealed class HttpHeadTests
{
    [Fact]
    public void A_header_cut_by_the_kept_bytes_is_not_taken()
    {
        var head = HttpHead.Parse(Encoding.ASCII.GetBytes("GET /products HTTP/1.1\r\nX-Call-Id: abc-123\r\ntraceparent: 00-0af7651916cd43dd8448eb211c8031"));
        Assert.True(head.IsRequest);
        Assert.Equal("abc-123", head.CallId);
        Assert.Null(head.TraceParent);

        // the call id's own line is cut: "abc-1" must not pass for the call id
        Assert.Null(HttpHead.Parse(Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\nX-Call-Id: abc-1")).CallId);
    }

    [Fact]
    public void A_request_line_cut_by_the_kept_bytes_is_still_a_request_with_the_target_kept()
    {
        var head = HttpHead.Parse(Encoding.ASCII.GetBytes("GET /products?category=cameras&sort=%28globalThis.__c"));
        Assert.True(head is { IsRequest: true, RequestLineComplete: false, Method: "GET" });
        Assert.Equal("/products?category=cameras&sort=%28globalThis.__c", head.Target);
        Assert.Null(head.CallId);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false, true)]
    [InlineData("\u0000\u0000\u0000hSCRAM", false, false)] // database protocol bytes
    [InlineData("6B\r\n{\"url\":\"x\"}", false, false)] // a chunk of a body
    [InlineData("POST / HTTP/1.1\r\n\r\n", true, false)]
    public void Requests_responses_and_other_bytes_are_told_apart(string text, bool request, bool response)
    {
        var head = HttpHead.Parse(Encoding.Latin1.GetBytes(text));
        Assert.Equal(request, head.IsRequest);
        Assert.Equal(response, head.IsResponse);
    }
}
