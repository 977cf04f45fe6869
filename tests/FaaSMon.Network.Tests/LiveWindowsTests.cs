using FaaSMon.Core;
using FaaSMon.Network.Capture;

namespace FaaSMon.Network.Tests;

/// <summary>The live capture cut into the model's windows: aligned, handed out after their lag, late and empty ones counted.</summary>
public sealed class LiveWindowsTests
{
    private static readonly DateTimeOffset Second = new(2026, 12, 2, 1, 0, 0, TimeSpan.Zero);

    [Fact]
    public void Windows_are_aligned_to_the_epoch_and_handed_out_once_their_lag_has_passed()
    {
        var windows = new LiveWindows(TimeSpan.FromSeconds(2));
        windows.Add(Frame(Second.AddMilliseconds(100), 40000, 80));
        windows.Add(Frame(Second.AddMilliseconds(1900), 40000, 80)); // same flow, same window
        windows.Add(Frame(Second.AddMilliseconds(2100), 40001, 6379));
        windows.Add(Frame(Second.AddMilliseconds(4500), 40002, 5432));

        Assert.Empty(windows.TakeFinished(Second.AddMilliseconds(2400), TimeSpan.FromMilliseconds(500)));
        var first = Assert.Single(windows.TakeFinished(Second.AddMilliseconds(2500), TimeSpan.FromMilliseconds(500)));
        Assert.Equal(Second, first.WindowStartUtc);
        Assert.Equal(2, first.WindowSeconds);
        var edge = Assert.Single(first.Edges);
        Assert.Equal(2, edge.Packets);
        Assert.Equal(["10.0.0.1:40000", "10.0.0.2:80"], first.Nodes);
        Assert.Equal(LiveWindows.LiveLabel, first.Label);

        // a frame of a window already handed out is counted, not silently put into a later one
        windows.Add(Frame(Second.AddMilliseconds(300), 40003, 22));
        Assert.Equal(1, windows.Late);

        var rest = windows.TakeFinished(now: null, TimeSpan.Zero);
        Assert.Equal([Second.AddSeconds(2), Second.AddSeconds(4)], rest.Select(w => w.WindowStartUtc));
        Assert.Equal(6379, int.Parse(rest[0].Nodes[1].Split(':')[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void A_window_of_unusable_frames_is_counted_as_empty_not_scored()
    {
        var windows = new LiveWindows(TimeSpan.FromSeconds(1));
        windows.Add(new CapturedFrame(Second.UtcTicks, FrameProblem.NonIp, default));
        windows.Add(new CapturedFrame(Second.AddMilliseconds(10).UtcTicks, FrameProblem.Truncated, default));
        Assert.Empty(windows.TakeFinished(now: null, TimeSpan.Zero));
        Assert.Equal(1, windows.Empty);
        Assert.Throws<ArgumentOutOfRangeException>(() => new LiveWindows(TimeSpan.Zero));
    }

    private static CapturedFrame Frame(DateTimeOffset at, int sourcePort, int destinationPort) =>
        new(at.UtcTicks, FrameProblem.None, new FramePacket(at.UtcTicks, FlowProtocol.Tcp, "10.0.0.1", sourcePort, "10.0.0.2", destinationPort, 60, FrameParser.Ack, 0));
}
