using FaaSMon.Core;

namespace FaaSMon.Network.Capture;

/// <summary>
/// Accumulates the packets of one time window into flows and turns them into a <see cref="TemporalGraph"/>. A flow is
/// one (protocol, endpoint pair), both directions; its source is the endpoint of the first packet seen. Flows that
/// cross a window boundary are cut there: each window stands alone, as a sample must.
/// </summary>
internal sealed class FlowWindow(DateTimeOffset startUtc, TimeSpan length)
{
    private readonly Dictionary<(FlowProtocol, string, string), Flow> _flows = [];
    private readonly List<Flow> _order = [];
    private long _frames;
    private long _truncated;
    private long _nonIp;
    private long _malformed;

    public DateTimeOffset StartUtc { get; } = startUtc;

    public TimeSpan Length { get; } = length;

    public DateTimeOffset EndUtc => StartUtc + Length;

    public int FlowCount => _order.Count;

    public CaptureCounts Counts => new(_frames, _truncated, _nonIp, _malformed);

    public void Count(FrameProblem problem)
    {
        _frames++;
        switch (problem)
        {
            case FrameProblem.Truncated:
                _truncated++;
                break;
            case FrameProblem.NonIp:
                _nonIp++;
                break;
            case FrameProblem.Malformed:
                _malformed++;
                break;
            default:
                break;
        }
    }

    /// <summary>Adds a parsed frame (it must already be counted with <see cref="Count"/>).</summary>
    public void Add(in FramePacket packet)
    {
        var from = $"{packet.SourceAddress}:{packet.SourcePort}";
        var to = $"{packet.DestinationAddress}:{packet.DestinationPort}";
        var key = string.CompareOrdinal(from, to) <= 0 ? (packet.Protocol, from, to) : (packet.Protocol, to, from);
        if (!_flows.TryGetValue(key, out var flow))
        {
            flow = new Flow(from, to, packet.Protocol, packet.TimestampTicks);
            _flows[key] = flow;
            _order.Add(flow);
        }

        flow.Add(packet, forward: string.Equals(from, flow.Source, StringComparison.Ordinal));
    }

    public TemporalGraph ToGraph(string label, string scenario)
    {
        var nodes = new List<string>();
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        int Node(string endpoint)
        {
            if (!index.TryGetValue(endpoint, out var i))
            {
                i = nodes.Count;
                index[endpoint] = i;
                nodes.Add(endpoint);
            }

            return i;
        }

        var startTicks = StartUtc.UtcTicks;
        var edges = _order.OrderBy(f => f.FirstTicks).Select(f => new FlowEdge(
            Node(f.Source), Node(f.Target),
            Math.Max(0, (f.FirstTicks - startTicks) / (double)TimeSpan.TicksPerSecond),
            (f.LastTicks - f.FirstTicks) / (double)TimeSpan.TicksPerSecond,
            f.Protocol, f.Packets, f.Bytes, f.PacketsBack, f.BytesBack,
            f.Protocol == FlowProtocol.Tcp ? new TcpFlagCounts(f.Syn, f.Ack, f.Fin, f.Rst, f.Psh) : TcpFlagCounts.None,
            f.ArpRequests, f.ArpReplies)).ToList();
        return new TemporalGraph(TemporalGraph.CurrentFormatVersion, label, scenario, StartUtc, Length.TotalSeconds, nodes, edges, Counts);
    }

    private sealed class Flow(string source, string target, FlowProtocol protocol, long firstTicks)
    {
        public string Source { get; } = source;

        public string Target { get; } = target;

        public FlowProtocol Protocol { get; } = protocol;

        public long FirstTicks { get; } = firstTicks;

        public long LastTicks { get; private set; } = firstTicks;

        public long Packets { get; private set; }

        public long Bytes { get; private set; }

        public long PacketsBack { get; private set; }

        public long BytesBack { get; private set; }

        public int Syn { get; private set; }

        public int Ack { get; private set; }

        public int Fin { get; private set; }

        public int Rst { get; private set; }

        public int Psh { get; private set; }

        public int ArpRequests { get; private set; }

        public int ArpReplies { get; private set; }

        public void Add(in FramePacket packet, bool forward)
        {
            LastTicks = Math.Max(LastTicks, packet.TimestampTicks);
            if (forward)
            {
                Packets++;
                Bytes += packet.WireLength;
            }
            else
            {
                PacketsBack++;
                BytesBack += packet.WireLength;
            }

            var flags = packet.TcpFlags;
            Syn += (flags & FrameParser.Syn) != 0 ? 1 : 0;
            Ack += (flags & FrameParser.Ack) != 0 ? 1 : 0;
            Fin += (flags & FrameParser.Fin) != 0 ? 1 : 0;
            Rst += (flags & FrameParser.Rst) != 0 ? 1 : 0;
            Psh += (flags & FrameParser.Psh) != 0 ? 1 : 0;
            ArpRequests += packet.ArpOperation == 1 ? 1 : 0;
            ArpReplies += packet.ArpOperation == 2 ? 1 : 0;
        }
    }
}
