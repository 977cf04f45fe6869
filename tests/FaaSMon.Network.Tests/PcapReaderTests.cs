using System.Buffers.Binary;
using System.Net.NetworkInformation;
using FaaSMon.Network.Capture;
using FaaSMon.Network.Scenarios;

namespace FaaSMon.Network.Tests;

/// <summary>Bad capture input: counted and set aside, never fatal.</summary>
public sealed class PcapReaderTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string _dir = Directory.CreateTempSubdirectory("faasmon-pcap-").FullName;

    [Fact]
    public void Truncated_non_ip_and_malformed_frames_are_counted_and_good_frames_still_make_flows()
    {
        var good = TcpFrame("10.231.0.20", 40000, "10.231.0.10", 80, FrameParser.Syn);
        var reply = TcpFrame("10.231.0.10", 80, "10.231.0.20", 40000, FrameParser.Syn | FrameParser.Ack);
        var lldp = new byte[60];
        BinaryPrimitives.WriteUInt16BigEndian(lldp.AsSpan(12), 0x88CC);
        var badVersion = (byte[])good.Clone();
        badVersion[14] = 0x55;
        var path = WritePcap("bad.pcap",
            (T0, good, good.Length),
            (T0.AddMilliseconds(1), good[..30], good.Length),   // cut inside the IPv4 header (snap length)
            (T0.AddMilliseconds(2), good[..40], good.Length),   // IPv4 whole, TCP header cut
            (T0.AddMilliseconds(3), good[..8], good.Length),    // not even an Ethernet header
            (T0.AddMilliseconds(4), lldp, lldp.Length),
            (T0.AddMilliseconds(5), badVersion, badVersion.Length),
            (T0.AddMilliseconds(6), reply, reply.Length));

        var result = PcapWindowReader.Read(path, TimeSpan.FromSeconds(1), "benign", "test");

        Assert.Equal(7, result.Counts.Frames);
        Assert.Equal(3, result.Counts.Truncated);
        Assert.Equal(1, result.Counts.NonIp);
        Assert.Equal(1, result.Counts.Malformed);
        var graph = Assert.Single(result.Graphs);
        var flow = Assert.Single(graph.Edges);
        Assert.Equal("10.231.0.20:40000", graph.Nodes[flow.Source]);
        Assert.Equal((1, 1), (flow.Packets, flow.PacketsBack));
        Assert.Equal(2, flow.Flags.Syn);
    }

    [Fact]
    public void A_record_cut_by_the_end_of_the_file_is_counted_as_truncated()
    {
        var frame = TcpFrame("10.231.0.20", 40000, "10.231.0.10", 80, FrameParser.Syn);
        var path = WritePcap("cut.pcap", (T0, frame, frame.Length), (T0.AddMilliseconds(1), frame, frame.Length));
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..^20]);

        var result = PcapWindowReader.Read(path, TimeSpan.FromSeconds(1), "benign", "test");

        Assert.Equal(1, result.CutRecords);
        Assert.Equal(1, result.Counts.Truncated);
        Assert.Single(Assert.Single(result.Graphs).Edges);
    }

    [Fact]
    public void Empty_windows_are_counted_and_make_no_sample()
    {
        var frame = TcpFrame("10.231.0.20", 40000, "10.231.0.10", 80, FrameParser.Syn);
        var path = WritePcap("gap.pcap", (T0, frame, frame.Length), (T0.AddSeconds(3.5), frame, frame.Length));

        var result = PcapWindowReader.Read(path, TimeSpan.FromSeconds(1), "benign", "test");

        Assert.Equal(2, result.Graphs.Count);
        Assert.Equal(2, result.EmptyWindows);
        var nothing = PcapWindowReader.Read(WritePcap("empty.pcap"), TimeSpan.FromSeconds(1), "benign", "test");
        Assert.Empty(nothing.Graphs);
        Assert.Equal(1, nothing.EmptyWindows);
        Assert.Equal(0, nothing.Counts.Frames);
    }

    [Fact]
    public void Forged_arp_replies_become_arp_flows()
    {
        var reply = AttackTraffic.ArpReply(PhysicalAddress.Parse("02-00-00-00-00-66"), "10.231.0.12", PhysicalAddress.Parse("02-00-00-00-00-20"), "10.231.0.20");
        var path = WritePcap("arp.pcap", (T0, reply, reply.Length), (T0.AddMilliseconds(100), reply, reply.Length));

        var graph = Assert.Single(PcapWindowReader.Read(path, TimeSpan.FromSeconds(1), "arp-spoof", "test").Graphs);

        var flow = Assert.Single(graph.Edges);
        Assert.Equal(Core.FlowProtocol.Arp, flow.Protocol);
        Assert.Equal((0, 2), (flow.ArpRequests, flow.ArpReplies));
        Assert.Equal(["10.231.0.12:0", "10.231.0.20:0"], graph.Nodes);
    }

    internal static byte[] TcpFrame(string source, int sourcePort, string destination, int destinationPort, byte flags)
    {
        var frame = new byte[14 + 20 + 20];
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0800);
        frame[14] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(16), 40);
        frame[22] = 64;
        frame[23] = 6;
        System.Net.IPAddress.Parse(source).GetAddressBytes().CopyTo(frame, 26);
        System.Net.IPAddress.Parse(destination).GetAddressBytes().CopyTo(frame, 30);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(34), (ushort)sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(36), (ushort)destinationPort);
        frame[46] = 0x50;
        frame[47] = flags;
        return frame;
    }

    /// <summary>A classic little-endian pcap (Ethernet), written by hand so records can be cut and lengths can lie.</summary>
    private string WritePcap(string name, params (DateTimeOffset Time, byte[] Data, int WireLength)[] records)
    {
        var path = Path.Combine(_dir, name);
        using var file = File.Create(path);
        var header = new byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(header, 0xA1B2C3D4);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(4), 2);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(6), 4);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(16), 65535);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), 1);
        file.Write(header);
        foreach (var (time, data, wire) in records)
        {
            var record = new byte[16];
            var micros = (time - DateTimeOffset.UnixEpoch).Ticks / 10;
            BinaryPrimitives.WriteUInt32LittleEndian(record, (uint)(micros / 1_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(4), (uint)(micros % 1_000_000));
            BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(8), (uint)data.Length);
            BinaryPrimitives.WriteUInt32LittleEndian(record.AsSpan(12), (uint)wire);
            file.Write(record);
            file.Write(data);
        }

        return path;
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
