using System.Buffers.Binary;
using System.Net;
using FaaSMon.Core;

namespace FaaSMon.Network.Capture;

/// <summary>Why a frame was not turned into a flow packet.</summary>
internal enum FrameProblem
{
    None,
    /// <summary>Fewer bytes captured than its headers need (snap length, or a cut record).</summary>
    Truncated,
    /// <summary>Neither IPv4, IPv6 nor ARP (LLDP, STP, …).</summary>
    NonIp,
    /// <summary>Claims to be IP or ARP but its headers make no sense.</summary>
    Malformed,
}

/// <summary>One packet's flow-relevant fields. Ports are 0 for ICMP and ARP; <see cref="WireLength"/> is the length on the wire.</summary>
internal readonly record struct FramePacket(
    long TimestampTicks,
    FlowProtocol Protocol,
    string SourceAddress,
    int SourcePort,
    string DestinationAddress,
    int DestinationPort,
    int WireLength,
    byte TcpFlags,
    ushort ArpOperation);

/// <summary>
/// Reads Ethernet → IPv4/IPv6 → TCP/UDP/ICMP headers, and ARP, straight from the bytes (PacketDotNet throws or guesses
/// on cut frames; here every length is checked and a frame that does not fit is classified, never fatal).
/// </summary>
internal static class FrameParser
{
    public const byte Fin = 0x01;
    public const byte Syn = 0x02;
    public const byte Rst = 0x04;
    public const byte Psh = 0x08;
    public const byte Ack = 0x10;

    private const int EthernetHeader = 14;

    public static FrameProblem TryParse(ReadOnlySpan<byte> frame, int wireLength, long timestampTicks, out FramePacket packet)
    {
        packet = default;
        if (frame.Length < EthernetHeader)
        {
            return FrameProblem.Truncated;
        }

        var offset = 12;
        var etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[offset..]);
        offset += 2;
        while (etherType is 0x8100 or 0x88A8)
        {
            // 802.1Q / 802.1ad tags: skip to the inner EtherType.
            if (frame.Length < offset + 4)
            {
                return FrameProblem.Truncated;
            }

            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[(offset + 2)..]);
            offset += 4;
        }

        var payload = frame[offset..];
        return etherType switch
        {
            0x0800 => ParseIPv4(payload, wireLength, timestampTicks, out packet),
            0x86DD => ParseIPv6(payload, wireLength, timestampTicks, out packet),
            0x0806 => ParseArp(payload, wireLength, timestampTicks, out packet),
            _ => FrameProblem.NonIp,
        };
    }

    private static FrameProblem ParseIPv4(ReadOnlySpan<byte> ip, int wireLength, long ticks, out FramePacket packet)
    {
        packet = default;
        if (ip.Length < 20)
        {
            return FrameProblem.Truncated;
        }

        if (ip[0] >> 4 != 4)
        {
            return FrameProblem.Malformed;
        }

        var headerLength = (ip[0] & 0x0F) * 4;
        if (headerLength < 20)
        {
            return FrameProblem.Malformed;
        }

        if (ip.Length < headerLength)
        {
            return FrameProblem.Truncated;
        }

        var source = new IPAddress(ip.Slice(12, 4)).ToString();
        var destination = new IPAddress(ip.Slice(16, 4)).ToString();
        // Only the first fragment carries the transport header.
        var fragmentOffset = BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1FFF;
        return ParseTransport(ip[9], fragmentOffset == 0 ? ip[headerLength..] : [], fragmentOffset != 0, source, destination, wireLength, ticks, out packet);
    }

    private static FrameProblem ParseIPv6(ReadOnlySpan<byte> ip, int wireLength, long ticks, out FramePacket packet)
    {
        packet = default;
        if (ip.Length < 40)
        {
            return FrameProblem.Truncated;
        }

        if (ip[0] >> 4 != 6)
        {
            return FrameProblem.Malformed;
        }

        var source = $"[{new IPAddress(ip.Slice(8, 16))}]";
        var destination = $"[{new IPAddress(ip.Slice(24, 16))}]";
        return ParseTransport(ip[6], ip[40..], false, source, destination, wireLength, ticks, out packet);
    }

    private static FrameProblem ParseTransport(byte protocol, ReadOnlySpan<byte> transport, bool laterFragment, string source, string destination,
        int wireLength, long ticks, out FramePacket packet)
    {
        packet = default;
        switch (protocol)
        {
            case 6 when !laterFragment:
            {
                if (transport.Length < 14)
                {
                    return FrameProblem.Truncated;
                }

                packet = new FramePacket(ticks, FlowProtocol.Tcp, source, BinaryPrimitives.ReadUInt16BigEndian(transport),
                    destination, BinaryPrimitives.ReadUInt16BigEndian(transport[2..]), wireLength, transport[13], 0);
                return FrameProblem.None;
            }

            case 17 when !laterFragment:
            {
                if (transport.Length < 4)
                {
                    return FrameProblem.Truncated;
                }

                packet = new FramePacket(ticks, FlowProtocol.Udp, source, BinaryPrimitives.ReadUInt16BigEndian(transport),
                    destination, BinaryPrimitives.ReadUInt16BigEndian(transport[2..]), wireLength, 0, 0);
                return FrameProblem.None;
            }

            case 1 or 58:
                packet = new FramePacket(ticks, FlowProtocol.Icmp, source, 0, destination, 0, wireLength, 0, 0);
                return FrameProblem.None;
            default:
                packet = new FramePacket(ticks, laterFragment && protocol is 6 ? FlowProtocol.Tcp : laterFragment && protocol is 17 ? FlowProtocol.Udp : FlowProtocol.Other,
                    source, 0, destination, 0, wireLength, 0, 0);
                return FrameProblem.None;
        }
    }

    private static FrameProblem ParseArp(ReadOnlySpan<byte> arp, int wireLength, long ticks, out FramePacket packet)
    {
        packet = default;
        if (arp.Length < 8)
        {
            return FrameProblem.Truncated;
        }

        var hardwareLength = arp[4];
        var protocolLength = arp[5];
        if (BinaryPrimitives.ReadUInt16BigEndian(arp[2..]) != 0x0800 || protocolLength != 4)
        {
            return FrameProblem.Malformed;
        }

        if (arp.Length < 8 + (2 * hardwareLength) + (2 * protocolLength))
        {
            return FrameProblem.Truncated;
        }

        var operation = BinaryPrimitives.ReadUInt16BigEndian(arp[6..]);
        var sender = new IPAddress(arp.Slice(8 + hardwareLength, 4)).ToString();
        var target = new IPAddress(arp.Slice(8 + (2 * hardwareLength) + 4, 4)).ToString();
        packet = new FramePacket(ticks, FlowProtocol.Arp, sender, 0, target, 0, wireLength, 0, operation);
        return FrameProblem.None;
    }
}
