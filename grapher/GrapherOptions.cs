using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace FaaSMon.Grapher;

/// <summary>Configuration section <c>Grapher</c>.</summary>
public sealed class GrapherOptions
{
    public const string Section = "Grapher";

    /// <summary>
    /// After the response is written, how long to wait for late events and for the proxy's record before the graph is built.
    /// It is also the tail: what the process does in this time while serving no other request (the callbacks a handler
    /// did not await, a timer it set) belongs to the request it just answered.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan SettleDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Also build each graph as soon as its response and proxy record were seen, before the settle delay, marked
    /// provisional: a verdict host answers within moments of the response, then revises with the final graph.
    /// </summary>
    public bool ProvisionalGraphs { get; set; }

    /// <summary>How long a finished invocation waits for its proxy record (the join with trace context) at most.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:05:00")]
    public TimeSpan RecordWait { get; set; } = TimeSpan.FromSeconds(3);

    /// <summary>
    /// Processes started inside an invocation may outlive its response (a backgrounded shell): wait this long for them.
    /// A reverse shell's connect comes after its interpreter starts, which takes seconds on a loaded machine.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan ChildGrace { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>An invocation whose response never came is flushed (and flagged) after this long.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan WindowTimeout { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>A trace graph is built once no invocation of its trace finished for this long.</summary>
    [Range(typeof(TimeSpan), "00:00:00", "00:10:00")]
    public TimeSpan TraceSettle { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Nodes of one graph; beyond it nodes are left out, counted, and the graph is flagged truncated.</summary>
    [Range(16, 1_000_000)]
    public int MaxNodesPerGraph { get; set; } = 5_000;

    /// <summary>Distinct edges of one graph (repeats are collapsed and do not count).</summary>
    [Range(16, 10_000_000)]
    public int MaxEdgesPerGraph { get; set; } = 20_000;

    /// <summary>Invocations open at once; beyond it the oldest is flushed early (and flagged).</summary>
    [Range(1, 1_000_000)]
    public int MaxOpenInvocations { get; set; } = 10_000;

    /// <summary>Files remembered per function instance (who last wrote each); the oldest are forgotten first.</summary>
    [Range(16, 10_000_000)]
    public int MaxFilesPerInstance { get; set; } = 20_000;

    /// <summary>Proxy records and flows not matched to an invocation are kept this long.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "01:00:00")]
    public TimeSpan RecordRetention { get; set; } = TimeSpan.FromSeconds(120);

    /// <summary>Events, records and flows buffered in front of the grapher; beyond it they are dropped and counted.</summary>
    [Range(16, 10_000_000)]
    public int QueueCapacity { get; set; } = 262_144;
}

[OptionsValidator]
internal sealed partial class GrapherOptionsValidator : IValidateOptions<GrapherOptions>;
