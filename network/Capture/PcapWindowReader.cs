using FaaSMon.Core;
using SharpPcap;
using SharpPcap.LibPcap;

namespace FaaSMon.Network.Capture;

/// <summary>The windows of a capture, with what could not be used: nothing here is fatal.</summary>
/// <param name="Graphs">One graph per window that had at least one flow.</param>
/// <param name="EmptyWindows">Windows inside the capture's span with no usable packet (no sample is made of them).</param>
/// <param name="Counts">Frames over the whole capture, by fate.</param>
/// <param name="CutRecords">Records the file ended in the middle of (a capture killed while writing): counted as truncated.</param>
internal sealed record WindowedCapture(IReadOnlyList<TemporalGraph> Graphs, int EmptyWindows, CaptureCounts Counts, int CutRecords);

/// <summary>Cuts a pcap file into fixed windows of temporal graphs (offline counterpart of <see cref="BridgeCapture"/>).</summary>
internal static class PcapWindowReader
{
    /// <param name="start">Start of the first window; null = the first packet's time.</param>
    /// <param name="end">End of the last window; null = after the last packet.</param>
    public static WindowedCapture Read(string path, TimeSpan window, string label, string scenario, DateTimeOffset? start = null, DateTimeOffset? end = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero);
        var frames = new List<(long Ticks, byte[] Data, int WireLength)>();
        var cut = 0;
        using (var device = new CaptureFileReaderDevice(path))
        {
            device.Open();
            while (true)
            {
                GetPacketStatus status;
                PacketCapture capture;
                try
                {
                    status = device.GetNextPacket(out capture);
                }
                catch (PcapException)
                {
                    // libpcap reports a record cut by the end of the file as an error: the file ends there.
                    cut++;
                    break;
                }

                if (status == GetPacketStatus.PacketRead)
                {
                    var raw = capture.GetPacket();
                    frames.Add((raw.Timeval.Date.ToUniversalTime().Ticks, raw.Data, BridgeCapture.WireLength(capture, raw)));
                }
                else if (status == GetPacketStatus.Error)
                {
                    cut++;
                    break;
                }
                else if (status != GetPacketStatus.ReadTimeout)
                {
                    break;
                }
            }
        }

        return Window(frames, window, label, scenario, start, end, cut);
    }

    internal static WindowedCapture Window(IReadOnlyList<(long Ticks, byte[] Data, int WireLength)> frames, TimeSpan window, string label, string scenario,
        DateTimeOffset? start, DateTimeOffset? end, int cutRecords = 0)
    {
        var first = start ?? (frames.Count > 0 ? new DateTimeOffset(frames.Min(f => f.Ticks), TimeSpan.Zero) : DateTimeOffset.UnixEpoch);
        var last = end ?? (frames.Count > 0 ? new DateTimeOffset(frames.Max(f => f.Ticks) + 1, TimeSpan.Zero) : first);
        var count = Math.Max(1, (int)Math.Ceiling((last - first) / window));
        var windows = Enumerable.Range(0, count).Select(i => new FlowWindow(first + (i * window), window)).ToArray();
        var outside = CaptureCounts.Zero;
        foreach (var (ticks, data, wireLength) in frames)
        {
            var i = (int)Math.Floor((ticks - first.UtcTicks) / (double)window.Ticks);
            var problem = FrameParser.TryParse(data, wireLength, ticks, out var packet);
            if (i < 0 || i >= count)
            {
                outside = outside.Add(new CaptureCounts(1, 0, 0, 0));
                continue;
            }

            windows[i].Count(problem);
            if (problem == FrameProblem.None)
            {
                windows[i].Add(packet);
            }
        }

        var counts = windows.Aggregate(CaptureCounts.Zero, (sum, w) => sum.Add(w.Counts)).Add(outside);
        counts = counts with { Truncated = counts.Truncated + cutRecords };
        var graphs = windows.Where(w => w.FlowCount > 0).Select(w => w.ToGraph(label, scenario)).ToList();
        return new WindowedCapture(graphs, count - graphs.Count, counts, cutRecords);
    }
}
