using System.Buffers.Binary;
using SharpPcap;

namespace FaaSMon.Proxy.Pcap;

/// <summary>
/// Writes the classic libpcap file format (microsecond timestamps) through a buffered stream. libpcap's dumper
/// through SharpPcap costs a native call per packet and several to open a file; at one slice file per invocation
/// and tens of thousands of packets a second that was where the capture fell behind and dropped packets.
/// </summary>
internal sealed class PcapFileWriter : IDisposable
{
    private readonly FileStream _file;
    private readonly byte[] _header = new byte[16];

    public PcapFileWriter(string path, int linkType, int snaplen, int bufferSize = 64 * 1024)
    {
        _file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.Read, bufferSize, FileOptions.None);
        Span<byte> global = stackalloc byte[24];
        BinaryPrimitives.WriteUInt32LittleEndian(global, 0xa1b2c3d4);
        BinaryPrimitives.WriteUInt16LittleEndian(global[4..], 2);
        BinaryPrimitives.WriteUInt16LittleEndian(global[6..], 4);
        BinaryPrimitives.WriteInt32LittleEndian(global[8..], 0); // thiszone
        BinaryPrimitives.WriteUInt32LittleEndian(global[12..], 0); // sigfigs
        BinaryPrimitives.WriteInt32LittleEndian(global[16..], snaplen);
        BinaryPrimitives.WriteInt32LittleEndian(global[20..], linkType);
        _file.Write(global);
        Length = 24;
    }

    public long Length { get; private set; }

    public void Write(RawCapture packet)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(_header, (uint)packet.Timeval.Seconds);
        BinaryPrimitives.WriteUInt32LittleEndian(_header.AsSpan(4), (uint)packet.Timeval.MicroSeconds);
        BinaryPrimitives.WriteInt32LittleEndian(_header.AsSpan(8), packet.Data.Length);
        BinaryPrimitives.WriteInt32LittleEndian(_header.AsSpan(12), Math.Max(packet.PacketLength, packet.Data.Length));
        _file.Write(_header);
        _file.Write(packet.Data);
        Length += 16 + packet.Data.Length;
    }

    public void Flush() => _file.Flush();

    public void Dispose() => _file.Dispose();
}
