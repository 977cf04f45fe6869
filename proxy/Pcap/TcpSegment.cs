using System.Buffers.Binary;
using System.Net;
using PacketDotNet;

namespace FaaSMon.Proxy.Pcap;

/// <summary>One side of a TCP connection, kept as raw address bytes so matching a packet allocates nothing.</summary>
internal readonly record struct TcpEndpoint(UInt128 Address, bool IsV6, ushort Port)
{
    // Flow records name the same few addresses over and over (the proxy's and the gateway's); only the capture
    // thread formats them, so a small per-thread cache spares an IPAddress and a string per flow.
    [ThreadStatic]
    private static Dictionary<(UInt128, bool), string>? t_texts;

    public string AddressText()
    {
        var texts = t_texts ??= [];
        if (texts.TryGetValue((Address, IsV6), out var cached))
        {
            return cached;
        }

        var text = Format();
        if (texts.Count < 1024)
        {
            texts[(Address, IsV6)] = text;
        }

        return text;
    }

    private string Format()
    {
        Span<byte> bytes = stackalloc byte[16];
        BinaryPrimitives.WriteUInt128BigEndian(bytes, Address);
        return (IsV6 ? new IPAddress(bytes) : new IPAddress(bytes[12..])).ToString();
    }
}

/// <summary>
/// The fields of a captured TCP/IP packet the matcher needs, read straight from the frame. PacketDotNet builds an
/// object graph per packet; at tens of thousands of packets a second on the proxy's own cores that cost showed up
/// as proxy latency, so the hot path reads the headers itself (tests check the slices with PacketDotNet).
/// </summary>
internal readonly ref struct TcpSegment
{
    public const byte Fin = 0x01;
    public const byte Syn = 0x02;
    public const byte Rst = 0x04;
    public const byte Ack = 0x10;

    private TcpSegment(TcpEndpoint source, TcpEndpoint destination, uint sequence, uint acknowledgment, byte flags, ReadOnlySpan<byte> payload)
    {
        Source = source;
        Destination = destination;
        Sequence = sequence;
        Acknowledgment = acknowledgment;
        Flags = flags;
        Payload = payload;
    }

    public TcpEndpoint Source { get; }
    public TcpEndpoint Destination { get; }
    public uint Sequence { get; }
    public uint Acknowledgment { get; }
    public byte Flags { get; }

    /// <summary>The TCP payload as captured (shorter than sent when the snaplen cut it).</summary>
    public ReadOnlySpan<byte> Payload { get; }

    public bool Has(byte flag) => (Flags & flag) != 0;

    public static bool TryParse(LinkLayers link, ReadOnlySpan<byte> frame, out TcpSegment segment)
    {
        segment = default;
        int offset;
        int ipVersion;
        switch (link)
        {
            case LinkLayers.Ethernet:
                if (frame.Length < 14)
                {
                    return false;
                }

                offset = 14;
                var etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
                if (etherType == 0x8100 && frame.Length >= 18)
                {
                    etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[16..]);
                    offset = 18;
                }

                ipVersion = etherType switch { 0x0800 => 4, 0x86DD => 6, _ => 0 };
                break;
            case LinkLayers.LinuxSll:
                if (frame.Length < 16)
                {
                    return false;
                }

                offset = 16;
                ipVersion = BinaryPrimitives.ReadUInt16BigEndian(frame[14..]) switch { 0x0800 => 4, 0x86DD => 6, _ => 0 };
                break;
            case LinkLayers.LinuxSll2:
                if (frame.Length < 20)
                {
                    return false;
                }

                offset = 20;
                ipVersion = BinaryPrimitives.ReadUInt16BigEndian(frame) switch { 0x0800 => 4, 0x86DD => 6, _ => 0 };
                break;
            case LinkLayers.Null or LinkLayers.Loop:
                offset = 4;
                ipVersion = frame.Length > 4 ? frame[4] >> 4 : 0;
                break;
            case LinkLayers.Raw or LinkLayers.RawLegacy or LinkLayers.IPv4 or LinkLayers.IPv6:
                offset = 0;
                ipVersion = frame.Length > 0 ? frame[0] >> 4 : 0;
                break;
            default:
                return false;
        }

        var ip = frame[offset..];
        TcpEndpoint src, dst;
        ReadOnlySpan<byte> tcp;
        if (ipVersion == 4)
        {
            if (ip.Length < 20 || ip[9] != 6 || (BinaryPrimitives.ReadUInt16BigEndian(ip[6..]) & 0x1FFF) != 0)
            {
                return false; // not TCP, or a non-first fragment
            }

            var headerLength = (ip[0] & 0x0F) * 4;
            var totalLength = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(ip[2..]), ip.Length);
            if (headerLength < 20 || totalLength < headerLength + 20)
            {
                return false;
            }

            src = new TcpEndpoint(BinaryPrimitives.ReadUInt32BigEndian(ip[12..]), false, 0);
            dst = new TcpEndpoint(BinaryPrimitives.ReadUInt32BigEndian(ip[16..]), false, 0);
            tcp = ip[headerLength..totalLength];
        }
        else if (ipVersion == 6)
        {
            if (ip.Length < 60 || ip[6] != 6)
            {
                return false; // extension headers before TCP are not followed
            }

            var end = Math.Min(40 + BinaryPrimitives.ReadUInt16BigEndian(ip[4..]), ip.Length);
            src = new TcpEndpoint(BinaryPrimitives.ReadUInt128BigEndian(ip[8..]), true, 0);
            dst = new TcpEndpoint(BinaryPrimitives.ReadUInt128BigEndian(ip[24..]), true, 0);
            tcp = ip[40..end];
        }
        else
        {
            return false;
        }

        if (tcp.Length < 20)
        {
            return false;
        }

        var dataOffset = (tcp[12] >> 4) * 4;
        if (dataOffset < 20 || dataOffset > tcp.Length)
        {
            return false;
        }

        segment = new TcpSegment(
            src with { Port = BinaryPrimitives.ReadUInt16BigEndian(tcp) },
            dst with { Port = BinaryPrimitives.ReadUInt16BigEndian(tcp[2..]) },
            BinaryPrimitives.ReadUInt32BigEndian(tcp[4..]),
            BinaryPrimitives.ReadUInt32BigEndian(tcp[8..]),
            tcp[13],
            tcp[dataOffset..]);
        return true;
    }
}
