using FaaSMon.Core;

namespace FaaSMon.Network.Capture;

/// <summary>
/// Cuts a live capture into the fixed windows a network model was trained on: windows start at multiples of the window
/// length since the Unix epoch (so any two monitors agree on them), and a window is handed out once it has ended and
/// <c>lag</c> has passed (late frames from the capture buffer still land in it). Frames for a window already handed out
/// are counted as late, not lost silently.
/// </summary>
internal sealed class LiveWindows(TimeSpan window)
{
    private readonly SortedDictionary<long, FlowWindow> _open = [];
    private long _lastHandedOut = long.MinValue;

    public TimeSpan Window { get; } = window > TimeSpan.Zero ? window : throw new ArgumentOutOfRangeException(nameof(window));

    /// <summary>Frames that arrived after their window was handed out.</summary>
    public long Late { get; private set; }

    /// <summary>Windows that ended with frames but no usable flow (all non-IP, truncated or malformed).</summary>
    public long Empty { get; private set; }

    public void Add(in CapturedFrame frame)
    {
        var index = Math.DivRem(frame.TimestampTicks, Window.Ticks, out var remainder) - (remainder < 0 ? 1 : 0);
        if (index <= _lastHandedOut)
        {
            Late++;
            return;
        }

        if (!_open.TryGetValue(index, out var flows))
        {
            _open[index] = flows = new FlowWindow(new DateTimeOffset(index * Window.Ticks, TimeSpan.Zero), Window);
        }

        flows.Count(frame.Problem);
        if (frame.Problem == FrameProblem.None)
        {
            flows.Add(frame.Packet);
        }
    }

    /// <summary>The windows that ended at least <paramref name="lag"/> before <paramref name="now"/> (all of them when null), oldest first.</summary>
    public IReadOnlyList<TemporalGraph> TakeFinished(DateTimeOffset? now, TimeSpan lag)
    {
        var finished = new List<TemporalGraph>();
        while (_open.Count > 0)
        {
            var (index, flows) = _open.First();
            if (now is { } clock && flows.EndUtc + lag > clock)
            {
                break;
            }

            _open.Remove(index);
            _lastHandedOut = index;
            if (flows.FlowCount == 0)
            {
                Empty++;
                continue;
            }

            finished.Add(flows.ToGraph(LiveLabel, LiveScenario));
        }

        return finished;
    }

    /// <summary>Live windows carry no ground truth.</summary>
    public const string LiveLabel = "unlabelled";

    public const string LiveScenario = "live";
}
