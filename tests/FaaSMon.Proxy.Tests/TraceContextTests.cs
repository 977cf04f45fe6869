using FaaSMon.Core;
using Microsoft.Extensions.Primitives;

namespace FaaSMon.Proxy.Tests;

public sealed class TraceContextTests
{
    private const string Valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    [Fact]
    public void ParsesTheW3CExample()
    {
        Assert.True(TraceParent.TryParse(Valid, out var tp));
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", tp.Value.TraceId);
        Assert.Equal("b7ad6b7169203331", tp.Value.SpanId);
        Assert.True(tp.Value.Sampled);
        Assert.Equal(Valid, tp.Value.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("garbage")]
    [InlineData("00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01")] // uppercase is invalid
    [InlineData("ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")] // version ff is invalid
    [InlineData("00-00000000000000000000000000000000-b7ad6b7169203331-01")] // all-zero trace id
    [InlineData("00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01")] // all-zero parent id
    [InlineData("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra")] // version 00 has exactly four fields
    [InlineData("00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01")] // short trace id
    [InlineData("00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333g-01")]
    public void RejectsInvalidTraceParents(string value) => Assert.False(TraceParent.TryParse(value, out _));

    [Fact]
    public void ReadsTheKnownFieldsOfAFutureVersion() =>
        Assert.True(TraceParent.TryParse("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-the-future-holds", out _));

    [Fact]
    public void NewIdsAreLowercaseHexOfTheRightLength()
    {
        var root = TraceParent.NewRoot();
        Assert.True(TraceParent.TryParse(root.ToString(), out _));
        Assert.NotEqual(root.SpanId, root.Child().SpanId);
        Assert.Equal(root.TraceId, root.Child().TraceId);
    }

    [Theory]
    [InlineData("8b3c2a9e-3f0e-4c1e-9a51-0d1c7d2f6b11", true)]
    [InlineData("my-own-id_42", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("tab\there", false)]
    [InlineData("newline\nhere", false)]
    [InlineData("nul\0here", false)]
    [InlineData("non-ascii-é", false)]
    public void ValidatesCallIds(string value, bool valid) => Assert.Equal(valid, CallId.IsValid(value));

    [Fact]
    public void RefusesCallIdsLongerThanTheLimit()
    {
        Assert.True(CallId.IsValid(new string('a', CallId.MaxLength)));
        Assert.False(CallId.IsValid(new string('a', CallId.MaxLength + 1)));
    }

    [Fact]
    public void AHopWithoutContextStartsATraceAndMintsACallId()
    {
        var id = HopIdentity.Resolve(StringValues.Empty, StringValues.Empty, StringValues.Empty, out var error)!;
        Assert.Null(error);
        Assert.True(Guid.TryParse(id.CallId, out _));
        Assert.Null(id.ParentSpanId);
        Assert.Equal($"faasmon={id.Hop.SpanId}", id.TraceState);
    }

    [Fact]
    public void AHopContinuesTheIncomingTraceWithAChildSpan()
    {
        var id = HopIdentity.Resolve("caller-id", Valid, "congo=t61rcWkgMzE", out _)!;
        Assert.Equal("caller-id", id.CallId);
        Assert.Equal("0af7651916cd43dd8448eb211c80319c", id.Hop.TraceId);
        Assert.NotEqual("b7ad6b7169203331", id.Hop.SpanId);
        Assert.Equal("b7ad6b7169203331", id.ParentSpanId);
        Assert.Equal($"faasmon={id.Hop.SpanId},congo=t61rcWkgMzE", id.TraceState);
    }

    [Fact]
    public void OurTraceStateMemberNamesTheCallingHop()
    {
        // A function called by hop 1111… mints its own span (2222…) and forwards tracestate unchanged.
        var id = HopIdentity.Resolve("c", "00-0af7651916cd43dd8448eb211c80319c-2222222222222222-01", "faasmon=1111111111111111,rojo=00f067aa0ba902b7", out _)!;
        Assert.Equal("1111111111111111", id.ParentSpanId);
        Assert.Equal("2222222222222222", id.ClientSpanId);
        Assert.Equal($"faasmon={id.Hop.SpanId},rojo=00f067aa0ba902b7", id.TraceState);
    }

    [Fact]
    public void AnInvalidTraceParentStartsANewTraceAndDropsTheTraceState()
    {
        var id = HopIdentity.Resolve(StringValues.Empty, "00-zzzz-01", "faasmon=1111111111111111", out _)!;
        Assert.Null(id.ParentSpanId);
        Assert.Equal($"faasmon={id.Hop.SpanId}", id.TraceState);
    }

    [Fact]
    public void TwoTraceParentsAreInvalid()
    {
        var id = HopIdentity.Resolve(StringValues.Empty, new StringValues([Valid, Valid]), StringValues.Empty, out _)!;
        Assert.NotEqual("0af7651916cd43dd8448eb211c80319c", id.Hop.TraceId);
    }

    [Theory]
    [InlineData("a\u0001b")]
    [InlineData("with space")]
    public void InvalidCallIdsAreRefused(string callId)
    {
        Assert.Null(HopIdentity.Resolve(callId, StringValues.Empty, StringValues.Empty, out var error));
        Assert.Contains("X-Call-Id", error, StringComparison.Ordinal);
        Assert.Null(HopIdentity.Resolve(new StringValues(["a", "b"]), StringValues.Empty, StringValues.Empty, out _));
    }

    [Fact]
    public void MalformedTraceStateMembersAreDroppedAndTheListIsBounded()
    {
        var members = string.Join(",", Enumerable.Range(0, 50).Select(i => $"k{i}=v{i}"));
        var id = HopIdentity.Resolve(StringValues.Empty, Valid, $"BAD=x,ok=1,{members}", out _)!;
        var list = id.TraceState.Split(',');
        Assert.Equal(32, list.Length);
        Assert.DoesNotContain("BAD=x", list);
        Assert.Contains("ok=1", list);
    }
}

public sealed class SecretRedactorTests
{
    [Theory]
    [InlineData("""{"user":"alice","password":"alice-pass-1"}""", "alice-pass-1")]
    [InlineData("""{"user":"alice","token":"abc.def.ghi"}""", "abc.def.ghi")]
    [InlineData("""{"card":"4111111111111111","quantity":1}""", "4111111111111111")]
    [InlineData("""{"card": 4111111111111111}""", "4111111111111111")]
    [InlineData("""{"apiKey":"sk_live_123456"}""", "sk_live_123456")]
    [InlineData("""{"user":"alice","password":"cut-by-the-prefix""", "cut-by-the-prefix")]
    [InlineData("user=alice&password=hunter2&x=1", "hunter2")]
    [InlineData("?access_token=abcdef123&page=2", "abcdef123")]
    [InlineData("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9")]
    [InlineData("pay with 4111 1111 1111 1111 today", "4111 1111 1111 1111")]
    public void RemovesSecrets(string text, string secret)
    {
        var redacted = SecretRedactor.Text(text)!;
        Assert.DoesNotContain(secret, redacted, StringComparison.Ordinal);
        Assert.Contains(SecretRedactor.Mask, redacted, StringComparison.Ordinal);
    }

    [Fact]
    public void KeepsWhatIsNotSecret()
    {
        const string text = """{"user":"alice","product":"p-cam-001","quantity":2,"ts":1700000000000}""";
        Assert.Equal(text, SecretRedactor.Text(text));
    }

    [Theory]
    [InlineData("Authorization", true)]
    [InlineData("Cookie", true)]
    [InlineData("X-Api-Key", true)]
    [InlineData("X-Auth-Token", true)]
    [InlineData("Content-Type", false)]
    [InlineData("X-Call-Id", false)]
    public void KnowsSecretHeaders(string name, bool secret) => Assert.Equal(secret, SecretRedactor.IsSecretHeader(name));
}
