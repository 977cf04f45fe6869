using System.Net;
using System.Net.NetworkInformation;
using System.Text;
using FaaSMon.Proxy.Pcap;
using PacketDotNet;
using SharpPcap;

namespace FaaSMon.Proxy.Tests;

/// <summary>
/// When the matcher closes slices: real Ethernet/IPv4/TCP frames (built with PacketDotNet) of two invocations on one
/// pooled upstream connection, as the proxy sends them, on the capture clock.
/// </summary>
public sealed class PacketMatcherTests
{
    private const int UpstreamPort = 8081;
    private const string Trace = "0af7651916cd43dd8448eb211c80319c";
    private static readonly long Idle = TimeSpan.FromSeconds(2).Ticks;
    private static readonly long MaxOpen = TimeSpan.FromSeconds(60).Ticks;
    private static readonly DateTime T0 = new(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc);

    [Fact]
    public void ClosesAFinishedQuietSliceWhileAnEarlierOneStillGetsPackets()
    {
        var matcher = new InvocationPacketMatcher(UpstreamPort, 1024 * 1024, 64L * 1024 * 1024);
        var (a, b) = TwoInvocations(matcher);
        matcher.Complete(a, At(1));
        matcher.Complete(b, At(3));

        // a late ACK of A's answer: A was finished first, but its packets are not quiet yet
        Assert.Equal(a, matcher.Add(FromUpstream(seq: 5000, ack: 1000 + (uint)Request(a).Length, At(1500)))?.SpanId);

        var first = matcher.TakeIdle(At(2100), Idle, MaxOpen);
        Assert.Equal([b], first.Select(s => s.SpanId));
        Assert.Equal(1, matcher.OpenSlices);

        var second = matcher.TakeIdle(At(3600), Idle, MaxOpen);
        Assert.Equal([a], second.Select(s => s.SpanId));
        Assert.Equal(3, second[0].Packets.Count); // its request, its answer and the late ACK; none of B's
        Assert.Equal(0, matcher.OpenSlices);
    }

    [Fact]
    public void KeepsAnUnfinishedSliceUntilMaxOpenAndGivesEverythingOnStop()
    {
        var matcher = new InvocationPacketMatcher(UpstreamPort, 1024 * 1024, 64L * 1024 * 1024);
        var (a, b) = TwoInvocations(matcher);

        // no record ever came for either: idle alone does not close them
        Assert.Empty(matcher.TakeIdle(At(10_000), Idle, MaxOpen));
        matcher.Complete(b, At(3));
        Assert.Equal([b], matcher.TakeIdle(At(10_100), Idle, MaxOpen).Select(s => s.SpanId));
        Assert.Equal([a], matcher.TakeIdle(At(61_000), Idle, MaxOpen).Select(s => s.SpanId));

        var again = new InvocationPacketMatcher(UpstreamPort, 1024 * 1024, 64L * 1024 * 1024);
        var (c, d) = TwoInvocations(again);
        again.Complete(c, At(1));
        Assert.Equal(new[] { c, d }.Order(), again.TakeIdle(long.MaxValue, null).Select(s => s.SpanId!).Order());
        Assert.Equal(0, again.OpenSlices);
    }

    [Fact]
    public void ACompletionSeenBeforeItsPacketsStillClosesTheSlice()
    {
        // The capture runs behind the proxy: the record of an invocation often arrives before its first packet.
        var matcher = new InvocationPacketMatcher(UpstreamPort, 1024 * 1024, 64L * 1024 * 1024);
        const string span = "00f067aa0ba902b7";
        matcher.Complete(span, At(2));
        Assert.Equal(span, matcher.Add(ToUpstream(seq: 1000, Encoding.ASCII.GetBytes(Request(span)), At(0)))?.SpanId);
        Assert.Empty(matcher.TakeIdle(At(1000), Idle, MaxOpen));
        Assert.Equal([span], matcher.TakeIdle(At(2100), Idle, MaxOpen).Select(s => s.SpanId));
    }

    /// <summary>A at t=0 ms (answered at 1 ms), then B on the same connection at 2 ms (answered at 3 ms).</summary>
    private static (string A, string B) TwoInvocations(InvocationPacketMatcher matcher)
    {
        const string a = "b7ad6b7169203331";
        const string b = "c8be7c827a314442";
        var requestA = Encoding.ASCII.GetBytes(Request(a));
        var requestB = Encoding.ASCII.GetBytes(Request(b));
        var seqB = 1000 + (uint)requestA.Length;
        Assert.Equal(a, matcher.Add(ToUpstream(1000, requestA, At(0)))?.SpanId);
        Assert.Equal(a, matcher.Add(FromUpstream(5000, seqB, At(1), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"u8.ToArray()))?.SpanId);
        Assert.Equal(b, matcher.Add(ToUpstream(seqB, requestB, At(2)))?.SpanId);
        Assert.Equal(b, matcher.Add(FromUpstream(5100, seqB + (uint)requestB.Length, At(3), "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"u8.ToArray()))?.SpanId);
        return (a, b);
    }

    private static string Request(string span) =>
        $"GET /function/echo HTTP/1.1\r\nHost: gateway\r\nX-Call-Id: call-{span}\r\ntraceparent: 00-{Trace}-{span}-01\r\n\r\n";

    private static long At(int milliseconds) => T0.AddMilliseconds(milliseconds).Ticks;

    private static RawCapture ToUpstream(uint seq, byte[] payload, long ticks) => Frame(40000, UpstreamPort, seq, 5000, payload, ticks);

    private static RawCapture FromUpstream(uint seq, uint ack, long ticks, byte[]? payload = null) => Frame(UpstreamPort, 40000, seq, ack, payload ?? [], ticks);

    private static RawCapture Frame(ushort sourcePort, ushort destinationPort, uint seq, uint ack, byte[] payload, long ticks)
    {
        var tcp = new TcpPacket(sourcePort, destinationPort)
        {
            SequenceNumber = seq,
            AcknowledgmentNumber = ack,
            Flags = 0x18, // PSH|ACK
            WindowSize = 65535,
            PayloadData = payload,
        };
        var ip = new IPv4Packet(IPAddress.Loopback, IPAddress.Loopback) { PayloadPacket = tcp, TimeToLive = 64 };
        var ethernet = new EthernetPacket(new PhysicalAddress(new byte[6]), new PhysicalAddress(new byte[6]), EthernetType.IPv4) { PayloadPacket = ip };
        ip.UpdateCalculatedValues();
        var bytes = ethernet.Bytes;
        var time = new DateTime(ticks, DateTimeKind.Utc) - DateTime.UnixEpoch;
        var timeval = new PosixTimeval((ulong)(time.Ticks / TimeSpan.TicksPerSecond), (ulong)(time.Ticks % TimeSpan.TicksPerSecond / TimeSpan.TicksPerMicrosecond));
        return new RawCapture(LinkLayers.Ethernet, timeval, bytes);
    }
}
