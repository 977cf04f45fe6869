using System.Diagnostics;
using System.Text.Json;
using FaaSMon.Core;
using FaaSMon.Network.Capture;
using FaaSMon.Network.Scenarios;
using FaaSMon.Network.Testbed;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Network.Collection;

/// <param name="WindowsPerEpisode">Consecutive windows one scenario runs for (each is one sample).</param>
/// <param name="Testbeds">Testbeds collecting side by side (each its own namespaces, capture and servers).</param>
internal sealed record CollectOptions(int Samples, string OutDirectory, int Seed = 1, double WindowSeconds = 2, int WindowsPerEpisode = 4, int Testbeds = 1);

/// <summary>What a collection produced and set aside; also written as <c>collection.json</c> beside the samples.</summary>
internal sealed record CollectionSummary(
    int FormatVersion,
    int Samples,
    IReadOnlyDictionary<string, int> SamplesByLabel,
    int EmptyWindows,
    CaptureCounts Counts,
    long FramesBetweenEpisodes,
    int BenignOperations,
    int BenignFailures,
    double WindowSeconds,
    double ElapsedSeconds,
    IReadOnlyList<string> RunIds);

/// <summary>
/// Runs scenarios on real testbeds and cuts the bridge capture into labelled windows: one temporal graph per window,
/// written as <c>samples/&lt;label&gt;/&lt;run&gt;-&lt;episode&gt;-&lt;window&gt;.json</c>. Half the episodes are benign, the
/// other half cycle through the five attacks; benign background traffic runs in every window.
/// </summary>
internal sealed partial class NetCollector(ILogger logger)
{
    /// <summary>Time after an episode for its last packets to reach the capture (it delivers within 50 ms).</summary>
    private static readonly TimeSpan CaptureSettle = TimeSpan.FromMilliseconds(250);

    private static readonly JsonSerializerOptions SummaryJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public async Task<CollectionSummary> RunAsync(CollectOptions options, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Samples, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.WindowSeconds, 0.2);
        await NetworkTestbed.SweepAsync(logger);
        Directory.CreateDirectory(options.OutDirectory);
        var clock = Stopwatch.StartNew();
        var state = new SharedState(options.Samples);
        var loops = Enumerable.Range(0, Math.Max(1, options.Testbeds)).Select(i => CollectOnOneTestbedAsync(options, options.Seed + (1000 * i), state, cancellationToken)).ToList();
        await Task.WhenAll(loops);
        var summary = new CollectionSummary(1, state.Written, state.ByLabel.ToDictionary(), state.Empty, state.Counts, state.BetweenEpisodes,
            state.BenignOperations, state.BenignFailures, options.WindowSeconds, clock.Elapsed.TotalSeconds, [.. state.RunIds]);
        await File.WriteAllTextAsync(Path.Combine(options.OutDirectory, "collection.json"),
            JsonSerializer.Serialize(summary, SummaryJson), CancellationToken.None);
        return summary;
    }

    private sealed class SharedState(int wanted)
    {
        private int _claimed;

        public int Written;
        public int Empty;
        public long BetweenEpisodes;
        public int BenignOperations;
        public int BenignFailures;
        public CaptureCounts Counts = CaptureCounts.Zero;
        public readonly Dictionary<string, int> ByLabel = new(StringComparer.Ordinal);
        public readonly List<string> RunIds = [];

        /// <summary>Claims up to <paramref name="count"/> samples still wanted; 0 when the collection is complete.</summary>
        public int Claim(int count)
        {
            while (true)
            {
                var claimed = Volatile.Read(ref _claimed);
                var grant = Math.Min(count, wanted - claimed);
                if (grant <= 0)
                {
                    return 0;
                }

                if (Interlocked.CompareExchange(ref _claimed, claimed + grant, claimed) == claimed)
                {
                    return grant;
                }
            }
        }

        public void Unclaim(int count) => Interlocked.Add(ref _claimed, -count);
    }

    private async Task CollectOnOneTestbedAsync(CollectOptions options, int seed, SharedState state, CancellationToken cancellationToken)
    {
        var random = new Random(seed);
        await using var testbed = await NetworkTestbed.StartAsync(logger, cancellationToken);
        lock (state)
        {
            state.RunIds.Add(testbed.Layout.RunId);
        }

        using var capture = BridgeCapture.Start(testbed.BridgeThread, testbed.Layout.BridgeName);
        var benign = new BenignTraffic(testbed, random);
        var attacks = new AttackTraffic(testbed, random);
        var window = TimeSpan.FromSeconds(options.WindowSeconds);
        var schedule = new Queue<ScenarioKind>();
        for (var episode = 0; ; episode++)
        {
            var windows = state.Claim(options.WindowsPerEpisode);
            if (windows == 0)
            {
                break;
            }

            if (schedule.Count == 0)
            {
                // Half benign, half the five attacks, in shuffled order.
                foreach (var kind in ScenarioNames.Attacks.Concat(Enumerable.Repeat(ScenarioKind.Benign, ScenarioNames.Attacks.Count)).OrderBy(_ => random.Next()))
                {
                    schedule.Enqueue(kind);
                }
            }

            var scenario = schedule.Dequeue();
            var between = capture.Drain();
            var start = DateTimeOffset.UtcNow;
            var end = start + (windows * window);
            var background = new[] { testbed.Layout.Client, testbed.Layout.Web }
                .Select(h => benign.RunAsync(h, end, random.Next(60, 400), cancellationToken)).ToList();
            var attack = attacks.RunAsync(scenario, end, cancellationToken);
            await Task.WhenAll(background.Append(attack));
            var wait = end + CaptureSettle - DateTimeOffset.UtcNow;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellationToken);
            }

            var frames = capture.Drain();
            var written = 0;
            var empty = 0;
            var counts = CaptureCounts.Zero;
            var cut = Cut(frames, start, window, windows);
            for (var w = 0; w < cut.Length; w++)
            {
                counts = counts.Add(cut[w].Counts);
                if (cut[w].FlowCount == 0)
                {
                    empty++;
                    continue;
                }

                var graph = cut[w].ToGraph(scenario.Label(), scenario.Label());
                var directory = Directory.CreateDirectory(Path.Combine(options.OutDirectory, "samples", graph.Label)).FullName;
                await File.WriteAllTextAsync(Path.Combine(directory, $"{testbed.Layout.RunId}-{episode:D5}-{w}.json"), graph.ToJson(), CancellationToken.None);
                written++;
            }

            state.Unclaim(windows - written);
            lock (state)
            {
                state.Written += written;
                state.Empty += empty;
                state.BetweenEpisodes += between.Count;
                state.Counts = state.Counts.Add(counts);
                state.ByLabel[scenario.Label()] = state.ByLabel.GetValueOrDefault(scenario.Label()) + written;
                state.BenignOperations = benign.Operations;
                state.BenignFailures = benign.Failures;
            }

            LogEpisode(logger, testbed.Layout.RunId, episode, scenario.Label(), written, frames.Count, state.Written, options.Samples);
        }
    }

    /// <summary>The frames of an episode into its windows; frames outside [start, start + count × window) are dropped.</summary>
    internal static FlowWindow[] Cut(IReadOnlyList<CapturedFrame> frames, DateTimeOffset start, TimeSpan window, int count)
    {
        var windows = Enumerable.Range(0, count).Select(i => new FlowWindow(start + (i * window), window)).ToArray();
        foreach (var frame in frames)
        {
            var i = (int)Math.Floor((frame.TimestampTicks - start.UtcTicks) / (double)window.Ticks);
            if (i < 0 || i >= count)
            {
                continue;
            }

            windows[i].Count(frame.Problem);
            if (frame.Problem == FrameProblem.None)
            {
                windows[i].Add(frame.Packet);
            }
        }

        return windows;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{RunId} episode {Episode} {Label}: {Written} samples from {Frames} frames ({Total}/{Wanted})")]
    private static partial void LogEpisode(ILogger logger, string runId, int episode, string label, int written, int frames, int total, int wanted);
}
