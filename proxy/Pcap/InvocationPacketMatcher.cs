using FaaSMon.Core;
using SharpPcap;

namespace FaaSMon.Proxy.Pcap;

/// <summary>The packets matched to one invocation (one proxy hop), until its slice is written.</summary>
internal sealed class InvocationSlice(string? callId, string? traceId, string? spanId)
{
    public string? CallId { get; } = callId;
    public string? TraceId { get; } = traceId;
    public string? SpanId { get; } = spanId;
    public List<RawCapture> Packets { get; } = [];
    public Dictionary<(TcpEndpoint Source, TcpEndpoint Destination), FlowCounters> Flows { get; } = [];
    public long BufferedBytes { get; set; }
    public bool Overflowed { get; set; }
    public bool Closed { get; set; }
    public long LastSeenTicks { get; set; }

    /// <summary>When the proxy finished this invocation (UTC ticks), 0 while it is still running.</summary>
    public long CompletedTicks { get; set; }

    internal sealed class FlowCounters(DateTimeOffset first)
    {
        public long Packets;
        public long Bytes;
        public DateTimeOffset First = first;
        public DateTimeOffset Last = first;
    }

    public IEnumerable<PacketFlow> ToFlows(SliceLocation? slice) => Flows.Select(f => new PacketFlow(
        CallId, TraceId, SpanId, "tcp", f.Key.Source.AddressText(), f.Key.Source.Port, f.Key.Destination.AddressText(), f.Key.Destination.Port,
        f.Value.Packets, f.Value.Bytes, f.Value.First, f.Value.Last, slice?.File, slice?.Offset ?? 0, slice?.Length ?? 0));
}

/// <summary>
/// Matches gateway-side TCP packets to invocations. YARP pools upstream connections, so one connection carries
/// many invocations, one after the other (HTTP/1.1, no pipelining). Each request's first segment starts with the
/// request line and carries our X-Call-Id and traceparent: its sequence number opens that invocation's range on the
/// connection. A proxy→gateway packet belongs to the range holding its sequence number; a gateway→proxy packet
/// belongs to the range holding the last request byte it acknowledges (the gateway answers a request only after
/// reading it, and the next request is sent only after that answer).
/// </summary>
internal sealed class InvocationPacketMatcher(int upstreamPort, int maxSliceBytes, long maxBufferedBytes)
{
    private const int BoundariesPerConnection = 8;
    private const int MaxConnections = 65536;

    private readonly Dictionary<(TcpEndpoint Client, TcpEndpoint Server), Connection> _connections = [];
    // Open slices in the order they were opened (for the max-open backstop) and, once the proxy finished them, in
    // the order it did (for the idle close). A sweep looks at the heads only: scanning every open slice ten times a
    // second cost the capture thread ~1 µs per slice (a cache miss each), and at 10k req/s 20k slices are open.
    private readonly Queue<InvocationSlice> _byOpening = new();
    private readonly Queue<InvocationSlice> _byCompletion = new();
    private readonly Dictionary<string, InvocationSlice> _openBySpan = new(StringComparer.Ordinal);
    private int _openCount;

    // Invocations the proxy finished before their request packets were matched (capture runs behind the proxy).
    private readonly Dictionary<string, long> _completedEarly = new(StringComparer.Ordinal);
    private readonly Queue<(string SpanId, long Ticks)> _completedEarlyOrder = new();
    private long _bufferedBytes;

    public long Unmatched { get; private set; }

    public long Late { get; private set; }

    public int OpenSlices => _openCount;

    /// <summary>The capture time of the newest packet seen (UTC ticks): the clock slices go idle by.</summary>
    public long LatestCaptureTicks { get; private set; }

    /// <summary>Attributes one packet; returns the slice it went to, or null (handshake, unknown connection, late).</summary>
    public InvocationSlice? Add(RawCapture raw)
    {
        // Idleness is measured on the capture's clock, not on when this loop got to a packet: when writing slices
        // holds the loop up, packets wait in the queue, and a processing clock would close their slices too early.
        var nowTicks = CaptureTicks(raw.Timeval);
        LatestCaptureTicks = Math.Max(LatestCaptureTicks, nowTicks);
        if (!TcpSegment.TryParse(raw.LinkLayerType, raw.Data, out var tcp))
        {
            Unmatched++;
            return null;
        }

        var toUpstream = tcp.Destination.Port == upstreamPort;
        if (!toUpstream && tcp.Source.Port != upstreamPort)
        {
            Unmatched++;
            return null;
        }

        var key = toUpstream ? (tcp.Source, tcp.Destination) : (tcp.Destination, tcp.Source);
        if (!_connections.TryGetValue(key, out var connection))
        {
            if (_connections.Count >= MaxConnections)
            {
                EvictOldestConnection();
            }

            connection = new Connection();
            _connections[key] = connection;
        }

        connection.LastSeenTicks = nowTicks;
        if (tcp.Has(TcpSegment.Rst) || tcp.Has(TcpSegment.Fin))
        {
            connection.Closing = true;
        }

        var payloadLength = tcp.Payload.Length;
        InvocationSlice? slice;
        if (toUpstream)
        {
            // a request's first segment starts with its whole request line (a continuation may start with any bytes)
            if (payloadLength > 0 && HttpHead.Parse(tcp.Payload) is { IsRequest: true, RequestLineComplete: true } head)
            {
                var spanId = head.TraceParent?.SpanId;
                slice = new InvocationSlice(head.CallId, head.TraceParent?.TraceId, spanId) { LastSeenTicks = nowTicks };
                connection.Open(tcp.Sequence, slice);
                _byOpening.Enqueue(slice);
                _openCount++;
                if (spanId is not null)
                {
                    _openBySpan[spanId] = slice;
                    if (_completedEarly.Remove(spanId, out var completed))
                    {
                        slice.CompletedTicks = completed;
                        _byCompletion.Enqueue(slice);
                    }
                }
            }
            else
            {
                slice = connection.Find(payloadLength > 0 || tcp.Has(TcpSegment.Syn) ? tcp.Sequence : tcp.Sequence - 1);
            }
        }
        else
        {
            slice = tcp.Has(TcpSegment.Ack) ? connection.Find(tcp.Acknowledgment - 1) : null;
        }

        if (slice is null)
        {
            Unmatched++;
            return null;
        }

        if (slice.Closed)
        {
            Late++;
            return null;
        }

        slice.LastSeenTicks = nowTicks;
        var flowKey = (tcp.Source, tcp.Destination);
        var time = new DateTimeOffset(nowTicks, TimeSpan.Zero);
        if (!slice.Flows.TryGetValue(flowKey, out var flow))
        {
            flow = new InvocationSlice.FlowCounters(time);
            slice.Flows[flowKey] = flow;
        }

        flow.Packets++;
        flow.Bytes += raw.PacketLength;
        flow.Last = time;
        if (!slice.Overflowed)
        {
            if (slice.BufferedBytes + raw.Data.Length > maxSliceBytes || _bufferedBytes + raw.Data.Length > maxBufferedBytes)
            {
                slice.Overflowed = true;
            }
            else
            {
                slice.Packets.Add(raw);
                slice.BufferedBytes += raw.Data.Length;
                _bufferedBytes += raw.Data.Length;
            }
        }

        return slice;
    }

    public static long CaptureTicks(PosixTimeval time) =>
        DateTime.UnixEpoch.Ticks + ((long)time.Seconds * TimeSpan.TicksPerSecond) + ((long)time.MicroSeconds * TimeSpan.TicksPerMicrosecond);

    /// <summary>The proxy finished the invocation with this span: its slice may close once its packets go quiet.</summary>
    public void Complete(string spanId, long endTicks)
    {
        if (_openBySpan.TryGetValue(spanId, out var slice))
        {
            if (slice.CompletedTicks == 0)
            {
                _byCompletion.Enqueue(slice);
            }

            slice.CompletedTicks = endTicks;
        }
        else if (_completedEarly.Count < MaxConnections * 4)
        {
            _completedEarly[spanId] = endTicks;
            _completedEarlyOrder.Enqueue((spanId, endTicks));
            if (_completedEarlyOrder.Count > (2 * _completedEarly.Count) + 1024)
            {
                // Most early completions meet their packets within moments; drop their stale queue entries (amortized).
                var live = _completedEarlyOrder.Where(e => _completedEarly.TryGetValue(e.SpanId, out var t) && t == e.Ticks).ToList();
                _completedEarlyOrder.Clear();
                foreach (var e in live)
                {
                    _completedEarlyOrder.Enqueue(e);
                }
            }
        }
    }

    /// <summary>
    /// Slices ready to be written (all of them when <paramref name="idleTicks"/> is null): the proxy finished the
    /// invocation and no packet of it came for <paramref name="idleTicks"/> since, or nothing came for
    /// <paramref name="maxOpenTicks"/> (a record that never arrived must not keep a slice forever). Times are capture-clock.
    /// </summary>
    public List<InvocationSlice> TakeIdle(long nowTicks, long? idleTicks, long maxOpenTicks = long.MaxValue)
    {
        List<InvocationSlice> done = [];
        if (idleTicks is not { } idle)
        {
            foreach (var slice in _byOpening.Concat(_byCompletion).Where(s => !s.Closed))
            {
                Close(slice, done);
            }

            _byOpening.Clear();
            _byCompletion.Clear();
            return done;
        }

        // Finished invocations close in the order the proxy finished them. A head whose packets are still coming
        // (a late ACK or FIN) goes to the back; one finished too recently means the rest were finished later still.
        for (var n = _byCompletion.Count; n > 0 && _byCompletion.TryPeek(out var head); n--)
        {
            if (head.Closed)
            {
                _byCompletion.Dequeue();
            }
            else if (nowTicks - head.CompletedTicks < idle)
            {
                break;
            }
            else if (nowTicks - head.LastSeenTicks < idle)
            {
                _byCompletion.Enqueue(_byCompletion.Dequeue());
            }
            else
            {
                Close(_byCompletion.Dequeue(), done);
            }
        }

        // The backstop for invocations whose record never came: oldest opened first; slices closed or finished
        // meanwhile leave this queue as they reach its head.
        while (_byOpening.TryPeek(out var oldest))
        {
            if (oldest.Closed || oldest.CompletedTicks != 0)
            {
                _byOpening.Dequeue();
            }
            else if (nowTicks - oldest.LastSeenTicks >= maxOpenTicks)
            {
                Close(_byOpening.Dequeue(), done);
            }
            else
            {
                break;
            }
        }

        while (_completedEarlyOrder.TryPeek(out var early) && nowTicks - early.Ticks > maxOpenTicks)
        {
            _completedEarlyOrder.Dequeue();
            if (_completedEarly.TryGetValue(early.SpanId, out var ticks) && ticks == early.Ticks)
            {
                _completedEarly.Remove(early.SpanId);
            }
        }

        // A connection's ranges are kept a while after its last packet, for late ACKs and FINs.
        var stale = _connections.Where(c => nowTicks - c.Value.LastSeenTicks > idle * (c.Value.Closing ? 2 : 30)).Select(c => c.Key).ToList();
        foreach (var key in stale)
        {
            _connections.Remove(key);
        }

        return done;
    }

    private void Close(InvocationSlice slice, List<InvocationSlice> done)
    {
        slice.Closed = true;
        _openCount--;
        if (slice.SpanId is not null)
        {
            _openBySpan.Remove(slice.SpanId);
        }

        _bufferedBytes -= slice.BufferedBytes;
        done.Add(slice);
    }

    private void EvictOldestConnection()
    {
        var oldest = _connections.MinBy(c => c.Value.LastSeenTicks).Key;
        _connections.Remove(oldest);
    }

    private sealed class Connection
    {
        private readonly (uint Start, InvocationSlice Slice)[] _ranges = new (uint, InvocationSlice)[BoundariesPerConnection];
        private int _count;
        private int _next;

        public long LastSeenTicks { get; set; }

        public bool Closing { get; set; }

        public void Open(uint start, InvocationSlice slice)
        {
            _ranges[_next] = (start, slice);
            _next = (_next + 1) % _ranges.Length;
            _count = Math.Min(_count + 1, _ranges.Length);
        }

        /// <summary>The range whose start is the closest at or before <paramref name="seq"/>, modulo 2^32.</summary>
        public InvocationSlice? Find(uint seq)
        {
            InvocationSlice? best = null;
            var bestDistance = uint.MaxValue;
            for (var i = 0; i < _count; i++)
            {
                var distance = seq - _ranges[i].Start;
                if (distance < int.MaxValue && distance < bestDistance)
                {
                    bestDistance = distance;
                    best = _ranges[i].Slice;
                }
            }

            return best;
        }
    }
}
