using System.Globalization;
using FaaSMon.Core;

namespace FaaSMon.Grapher;

/// <summary>An invocation whose graph is built: the graph, the proxy record it was joined with, and its place in the trace.</summary>
/// <param name="InvocationNode">The graph's own invocation node (trace graphs hang <c>invoke</c> edges on it).</param>
/// <param name="Closed">Why the window closed: <c>response</c>, or <c>timeout</c>, <c>evicted</c>, <c>process-exit</c>, <c>next-request</c>, <c>shutdown</c>.</param>
public sealed record FinishedInvocation(
    ProvenanceGraph Graph,
    int InvocationNode,
    InvocationRecord? Record,
    string? SpanId,
    string? ParentSpanId,
    string? TraceId,
    string Closed,
    CallerInfo? Caller = null)
{
    /// <summary>
    /// Built as soon as the response and the proxy record were both seen, before the settle delay (see
    /// <see cref="GrapherOptions.ProvisionalGraphs"/>); the final graph of the same <see cref="ProvenanceGraph.GraphId"/> follows.
    /// </summary>
    public bool Provisional { get; init; }

    /// <summary>Wall clock when the event that closed the window was processed (the tracer's lag ends there).</summary>
    public DateTimeOffset? ClosedSeenUtc { get; init; }

    /// <summary>Wall clock when this graph was built.</summary>
    public DateTimeOffset BuiltUtc { get; init; }
}

/// <summary>The invocation a call came from, found by the client endpoint the proxy saw.</summary>
public sealed record CallerInfo(long WindowId, string GraphId, string? CallId, string? TraceId, string Function);

/// <summary>
/// Joins system calls, proxy records and packet flows into invocations, one provenance graph each (DESIGN.md, "Attribution").
/// A function process reading an HTTP request from a socket opens a window (the call id and trace context come from the
/// bytes read); the status line written back on that socket closes it. Events on descriptors that a window opened (the
/// request socket, files it opened, connections it made) belong to it; processes started inside a window belong to it for
/// their life; other events of the process go to the window open at their time, and when several are open the latest one
/// takes them and both graphs are marked ambiguous. After a settle delay (late events, the proxy's record, children still
/// running) the graph is built. Per function instance it keeps the container state: who last wrote each file, so a later
/// invocation that reads, maps or executes it gets an <c>inherits</c> edge back to the writer.
/// Not thread-safe: one reader feeds it (<see cref="InvocationGrapher"/>).
/// </summary>
public sealed class InvocationAttributor
{
    private const int FlushCheckEvery = 4096;
    private const int MaxPendingForks = 65_536;
    private const int FlushedKeptPerProcess = 16;
    private const int MaxHeldEvents = 64;
    private const int MaxSendsPerEndpoint = 8;

    /// <summary>How long before the proxy began a call its client's send may be (a loaded machine delays the proxy's start).</summary>
    private static readonly TimeSpan CallerSendAge = TimeSpan.FromSeconds(1);

    /// <summary>How far after the proxy's start a send may be stamped and still be the one that started the call (clock granularity).</summary>
    private static readonly TimeSpan CallerSendSlack = TimeSpan.FromMilliseconds(20);

    private readonly GrapherOptions _options;
    private readonly Action<FinishedInvocation> _finished;
    private readonly Dictionary<int, ProcessTrack> _processes = [];
    private readonly Dictionary<string, ProcessTrack> _servers = new(StringComparer.Ordinal);
    private readonly Dictionary<int, PendingFork> _forks = [];
    private readonly Dictionary<string, ContainerState> _containers = new(StringComparer.Ordinal);
    private readonly LinkedList<Window> _open = [];
    private readonly Dictionary<string, List<PendingRecord>> _recordsByCallId = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<PendingRecord>> _recordsByFunction = new(StringComparer.Ordinal);
    private readonly Queue<PendingRecord> _recordAge = new();
    private readonly Dictionary<string, List<PacketFlow>> _flowsBySpan = new(StringComparer.Ordinal);
    private readonly Queue<(DateTimeOffset Time, string Span)> _flowAge = new();
    private readonly Dictionary<string, List<CallerSend>> _callersByLocal = new(StringComparer.Ordinal);
    private readonly Queue<(DateTimeOffset Time, string Local)> _callerAge = new();
    private DateTimeOffset _now = DateTimeOffset.MinValue;
    private long _nextWindowId;
    private long _sinceCheck;
    private long _forkSweep;

    public InvocationAttributor(GrapherOptions options, GrapherCounters counters, Action<FinishedInvocation> finished)
    {
        _options = options;
        Counters = counters;
        _finished = finished;
    }

    public GrapherCounters Counters { get; }

    /// <summary>The grapher's clock: the latest event time or wall-clock tick seen.</summary>
    public DateTimeOffset Now => _now;

    public int OpenInvocations => _open.Count;

    public void Add(SyscallEvent evt)
    {
        ArgumentNullException.ThrowIfNull(evt);
        Counters.AddEvent();
        if (evt.Timestamp > _now)
        {
            _now = evt.Timestamp;
        }

        if (++_sinceCheck >= FlushCheckEvery)
        {
            _sinceCheck = 0;
            FlushDue();
        }

        if (evt.Function is null)
        {
            Counters.AddUnknownProcess();
            return;
        }

        var process = Track(evt);
        if (evt.Kind == SyscallEventKind.Exit)
        {
            if (evt.Pid == evt.Tid)
            {
                Exited(process, evt); // a thread's exit is not its process's
            }

            return;
        }

        if (evt.Kind == SyscallEventKind.Signal)
        {
            return; // a signal says nothing about provenance; the kill that sent it does
        }

        var window = Route(process, evt, out var ambiguous);
        if (window is null)
        {
            return;
        }

        if (window.Flushed)
        {
            Counters.AddLate();
            return;
        }

        Counters.AddAttributed();
        window.Events++;
        if (ambiguous)
        {
            Counters.AddAmbiguous();
            window.Ambiguous = true;
        }

        Apply(window, process, evt);
    }

    public void Add(InvocationRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        var pending = new PendingRecord(record, _now == DateTimeOffset.MinValue ? record.EndUtc : Max(_now, record.EndUtc));
        Index(_recordsByCallId, record.CallId, pending);
        if (record.Function is not null)
        {
            Index(_recordsByFunction, record.Function, pending);
        }

        _recordAge.Enqueue(pending);

        // The proxy answered: a window of this call that saw no status line (bpftrace keeps no writev bytes) ends here.
        foreach (var window in _open)
        {
            if (window.Closed is null && window.CallId == record.CallId && window.Process.Function == record.Function && window.Opened <= record.EndUtc)
            {
                Close(window, record.EndUtc, "record");
                break;
            }
        }

        if (_options.ProvisionalGraphs)
        {
            // the record usually comes just after the status line: the provisional graph need not wait for the next tick
            foreach (var window in _open)
            {
                if (window.Closed is not null && window.CallId == record.CallId && window.Process.Function == record.Function && SendProvisional(window))
                {
                    break;
                }
            }
        }
    }

    /// <summary>Builds the provisional graph of a closed window once, when its proxy record is known (see <see cref="GrapherOptions.ProvisionalGraphs"/>).</summary>
    private bool SendProvisional(Window window)
    {
        if (window.ProvisionalSent || window.Flushed || window.Closed is null || (window.Record is null && !TryMatchRecord(window)))
        {
            return false;
        }

        window.ProvisionalSent = true;
        _finished(Build(window, provisional: true));
        return true;
    }

    public void Add(PacketFlow flow)
    {
        ArgumentNullException.ThrowIfNull(flow);
        if (flow.SpanId is not { } span)
        {
            return;
        }

        if (!_flowsBySpan.TryGetValue(span, out var flows))
        {
            _flowsBySpan[span] = flows = [];
        }

        flows.Add(flow);
        _flowAge.Enqueue((Max(_now, flow.LastSeenUtc), span));
    }

    /// <summary>Moves the clock to <paramref name="now"/> (a wall-clock tick while no events arrive) and builds what is due.</summary>
    public void Advance(DateTimeOffset now)
    {
        if (now > _now)
        {
            _now = now;
        }

        FlushDue();
    }

    /// <summary>Builds every graph now, whatever its state (shutdown, end of a replay).</summary>
    public void FlushAll()
    {
        foreach (var window in _open.ToList())
        {
            if (window.Closed is null)
            {
                Close(window, _now, "shutdown");
            }

            Flush(window);
        }
    }

    private ProcessTrack Track(SyscallEvent evt)
    {
        if (_processes.TryGetValue(evt.Pid, out var known) && !known.Exited)
        {
            return known;
        }

        var instance = evt.Instance ?? evt.Function!;
        var track = new ProcessTrack(evt.Pid, evt.Function!, instance);
        if (_forks.Remove(evt.Pid, out var fork))
        {
            track.Parent = fork.Parent;
            track.Owner = fork.Owner;
            track.Tentative = fork.Tentative;
            track.Label = fork.Parent.Label;
            track.Exe = fork.Parent.Exe;
        }
        else if ((evt.Ppid > 0 && _processes.TryGetValue(evt.Ppid, out var forker) && !forker.Exited ? forker : ServerOf(instance, evt.Pid)) is { } parent)
        {
            // the fork itself was not seen by its pid (a PID namespace numbers the child differently): the parent's window
            // at this time takes the child; when several were open, only provisionally, until its execve says more
            track.Parent = parent;
            if (parent.Owner is { } inherited)
            {
                track.Owner = inherited;
                track.Tentative = parent.Tentative;
            }
            else
            {
                track.Owner = At(parent, evt.Timestamp, _options.SettleDelay, out var guessed);
                track.Tentative = guessed;
            }

            track.Label = parent.Label;
            track.Exe = parent.Exe;
        }

        if (track.Owner is { } owner)
        {
            owner.LiveChildren.Add(evt.Pid);
            owner.UnseenChildren = Math.Max(0, owner.UnseenChildren - 1);
        }

        _processes[evt.Pid] = track;
        return track;
    }

    /// <summary>
    /// The process that serves an instance's requests. A new process of that instance whose parent is not known (strace
    /// guesses a child's parent from recent forks, and may name one already gone) descends from it: nothing else runs in
    /// a function's container.
    /// </summary>
    private ProcessTrack? ServerOf(string instance, int pid) =>
        _servers.TryGetValue(instance, out var server) && server.Pid != pid && !server.Exited ? server : null;

    private void Exited(ProcessTrack process, SyscallEvent evt)
    {
        Release(process);
        process.Exited = true;
        _processes.Remove(process.Pid);
        process.Owner?.LiveChildren.Remove(process.Pid);
        foreach (var window in process.Windows.Where(w => w.Closed is null).ToList())
        {
            Close(window, evt.Timestamp, "process-exit");
        }
    }

    private Window? Route(ProcessTrack process, SyscallEvent evt, out bool ambiguous)
    {
        ambiguous = false;
        if (process.Owner is { } owner)
        {
            if (!process.Tentative)
            {
                return owner;
            }

            // a child whose parent served several requests when it started: hold its first events until its execve's
            // argv names something only one of them asked for (a file name from the request, an id), or until it has
            // done enough to be given to the guess
            if (evt.Syscall == "execve" && !evt.Failed && Candidates(process.Parent!, evt.Timestamp, TimeSpan.Zero) is var among
                && (ByContent(among, evt) ?? ByWrittenName(among, evt)) is { } named && named != owner)
            {
                Reown(process, named);
            }
            else if (evt.Syscall != "execve" && process.Held.Count < MaxHeldEvents)
            {
                if (process.Held.Count == 0)
                {
                    owner.HeldChildren.Add(process);
                }

                process.Held.Add(evt);
                return null;
            }

            Release(process);
            return process.Owner;
        }

        var head = evt.Data is { Length: > 0 } data && evt.Fd is { IsSocket: true } ? HttpHead.Parse(data) : HttpHead.None;
        if (head.IsRequest && IsRead(evt.Syscall) && !evt.Failed)
        {
            return Open(process, evt, head);
        }

        if (head is { IsRequest: true, CallId: { } outgoing } && IsWrite(evt.Syscall) && evt.Fd is { } callFd
            && process.Windows.LastOrDefault(w => !w.Flushed && w.Closed is null && w.CallId == outgoing) is { } caller)
        {
            // a call to another function carries the caller's call id: it says which invocation made it, whatever was guessed before
            process.Fds[FdKey.Of(evt.Pid, callFd)] = new FdClaim(caller, false);
            return caller;
        }

        if (evt.Fd is { } fd && process.Fds.TryGetValue(FdKey.Of(evt.Pid, fd), out var claim)
            && !claim.Window.Flushed && (claim.Window.Closed is null || claim.Request || InFileTail(claim, fd, evt)))
        {
            if (claim is { Request: false, Call: false, Window.Closed: null } && head.IsRequest && IsWrite(evt.Syscall)
                && ByContent(Candidates(process, evt.Timestamp, _options.SettleDelay), evt) is { } namedCaller && namedCaller != claim.Window)
            {
                // a call on a connection opened while another request was open: time gave that one the connect, and with it
                // every write and reply on the socket, but the request names its caller (c7: lateral movement's injected
                // fetch, made after its get-price answered, on a new connection while a benign get-price was served). The
                // connect moves along unless the other request also used that endpoint
                var socket = SocketKey(fd);
                if (claim.Window.Graph.EdgesOf(NodeKind.Socket, socket) == 1)
                {
                    claim.Window.Graph.MoveNode(NodeKind.Socket, socket, namedCaller.Graph);
                }

                claim = new FdClaim(namedCaller, false, Call: true);
                process.Fds[FdKey.Of(evt.Pid, fd)] = claim;
            }

            if (claim.Request && head.IsResponse && IsWrite(evt.Syscall) && claim.Window.Closed is null)
            {
                Close(claim.Window, evt.Timestamp, "response");
                if (_options.ProvisionalGraphs)
                {
                    SendProvisional(claim.Window); // when the record came first (strace lags behind the proxy)
                }
            }

            if (evt.Tid == evt.Pid)
            {
                process.Context = claim.Window;
            }

            if (claim.Request && IsRead(evt.Syscall) && evt.Data is { Length: > 0 } body && claim.Window.Words.Count < 64)
            {
                // the body often comes in a read of its own (chunked from the gateway): its ids and names count too
                claim.Window.Words.UnionWith(RequestWords.Of(body));
            }

            return claim.Window;
        }

        var window = At(process, evt.Timestamp, _options.SettleDelay, out ambiguous, out var open, out var tails);
        var outgoingRequest = head.IsRequest && IsWrite(evt.Syscall);
        if (open + tails > 1
            && ((open != 1 || outgoingRequest ? ByContent(Candidates(process, evt.Timestamp, open > 1 ? TimeSpan.Zero : _options.SettleDelay), evt) : null)
                ?? ByRenamedWriter(Candidates(process, evt.Timestamp, _options.SettleDelay), process, evt)) is { } namedBy)
        {
            // among the overlapping requests, or among the answered ones whose tails overlap while none is open (a timer one
            // of them set), what the call names (a path, an argv, bytes sent) was in exactly one of their requests; with one
            // request open, what it names is not weighed against the tails (its own handler may name what an earlier
            // request named), except by a request it sends: a call to another function made after its caller answered
            // (an injected fetch on a pooled connection) carries what its caller was asked, not what the open one was.
            // Else the temporary file a rename moves was written by exactly one of the requests open or still in their
            // tail (a download's callback runs while the next request is served).
            window = namedBy;
            ambiguous = false;
            if (evt.Tid == evt.Pid)
            {
                process.Context = namedBy;
            }

            if (outgoingRequest && evt.Fd is { } sentOn)
            {
                process.Fds[FdKey.Of(evt.Pid, sentOn)] = new FdClaim(namedBy, false, Call: true); // its reply comes back on it
            }
        }
        else if (ambiguous && process.Context is { Flushed: false } context && context != window
            && context.Opened <= evt.Timestamp && (context.Closed is null || evt.Timestamp <= context.Closed))
        {
            // an event loop runs one request's callback at a time: the request its main thread last worked for provably
            // (a read or write on that request's descriptors) is the likeliest owner, better than the latest to arrive
            window = context;
        }
        if (window is null)
        {
            if (process.Windows.Any(w => w.Flushed && w.Opened <= evt.Timestamp && evt.Timestamp <= (w.Closed ?? DateTimeOffset.MaxValue)))
            {
                Counters.AddLate();
            }
            else
            {
                Counters.AddIdle();
            }

            return null;
        }

        var usable = !evt.Failed || evt is { Syscall: "connect", Errno: "EINPROGRESS" };
        if (evt.Fd is not null && usable && (evt.Syscall is "connect" or "openat" or "open" or "accept" or "accept4" || head is { IsRequest: true, CallId: not null }))
        {
            process.Fds[FdKey.Of(evt.Pid, evt.Fd!)] = new FdClaim(window, false);
        }

        return window;
    }

    /// <summary>The windows that could own an event by time: those open at <paramref name="time"/> and those still in their tail.</summary>
    private static List<Window> Candidates(ProcessTrack process, DateTimeOffset time, TimeSpan tail) =>
        [.. process.Windows.Where(w => !w.Flushed && w.Opened <= time && (w.Closed is null || time <= w.Closed || time - w.Closed <= tail))];

    /// <summary>
    /// A file a window opened stays its own after the response, for the tail: the write a callback of that request makes on
    /// it is that request's, whichever request is being served then. Not sockets (a pooled connection serves the next
    /// request) and not a new open (the next request may open the same file and get the same descriptor).
    /// </summary>
    private bool InFileTail(FdClaim claim, FileDescriptorInfo fd, SyscallEvent evt) =>
        !claim.Request && (!fd.IsSocket && evt.Syscall is not ("openat" or "open") || claim.Call && fd.IsSocket && IsRead(evt.Syscall))
        && claim.Window.Closed is { } closed && evt.Timestamp - closed <= _options.SettleDelay;

    /// <summary>
    /// A rename given to this window (its request named the file) of a temporary file that another request, open at the
    /// same time, wrote by the guess of time: a download's open and writes run on the thread pool while the event loop
    /// serves the next request. The file and its writes move to the renamer's graph, and the renamer becomes its writer,
    /// so the download is one invocation's, not half of each. Not when the writer is no longer a candidate (then the
    /// rename's window is the guess) or its graph is built.
    /// </summary>
    private void TakeRenamedFile(Window window, ProcessTrack process, ContainerState state, string from, DateTimeOffset time)
    {
        if (state.WriterOf(from) is not { } writer || writer.WindowId == window.Id
            || Candidates(process, time, _options.SettleDelay).FirstOrDefault(w => w.Id == writer.WindowId) is not { } wrote
            || !wrote.Graph.MoveNode(NodeKind.File, from, window.Graph))
        {
            return;
        }

        wrote.WrittenNames.Remove(Path.GetFileName(from));
        window.AddWrittenName(from);
        state.Wrote(from, window.Writer(writer.Time));
        Counters.AddMovedFile();
    }

    /// <summary>The one candidate that wrote the file a rename moves (a download's temporary file), or null.</summary>
    private Window? ByRenamedWriter(List<Window> candidates, ProcessTrack process, SyscallEvent evt)
    {
        if (evt.Syscall is not ("rename" or "renameat" or "renameat2") || evt.Path is not { } from
            || Container(process.Instance).WriterOf(from) is not { } writer)
        {
            return null;
        }

        return candidates.FirstOrDefault(w => w.Id == writer.WindowId);
    }

    /// <summary>
    /// The one candidate that wrote a file an execve's argv names by its file name (a shell run on a file the request just
    /// downloaded: <c>sha256sum "evil.sh"</c>, relative to a working directory the tracer does not report), or null.
    /// </summary>
    private static Window? ByWrittenName(List<Window> candidates, SyscallEvent evt)
    {
        if (candidates.Count < 2 || evt.Argv is not { Count: > 0 } argv)
        {
            return null;
        }

        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var arg in argv.Skip(1))
        {
            foreach (var token in arg.Split([' ', '\t', '"', '\'', ';', '&', '|', '<', '>', '(', ')', '`', '$'], StringSplitOptions.RemoveEmptyEntries))
            {
                if (Path.GetFileName(token) is { Length: > 0 } name)
                {
                    names.Add(name);
                }
            }
        }

        Window? found = null;
        foreach (var window in candidates)
        {
            if (window.WrittenNames.Overlaps(names))
            {
                if (found is not null)
                {
                    return null;
                }

                found = window;
            }
        }

        return found;
    }

    /// <summary>The one candidate whose request bytes hold a distinctive word the event names, or null.</summary>
    private static Window? ByContent(List<Window> candidates, SyscallEvent evt)
    {
        if (candidates.Count < 2)
        {
            return null;
        }

        var words = RequestWords.OfEvent(evt);
        if (words.Count == 0)
        {
            return null;
        }

        Window? found = null;
        foreach (var window in candidates)
        {
            if (window.Words.Overlaps(words))
            {
                if (found is not null)
                {
                    return null; // named by more than one: no better than time
                }

                found = window;
            }
        }

        return found;
    }

    private static void Reown(ProcessTrack process, Window owner)
    {
        process.Owner?.LiveChildren.Remove(process.Pid);
        process.Owner = owner;
        owner.LiveChildren.Add(process.Pid);
    }

    /// <summary>Gives a child's held events to its (now decided) owner.</summary>
    private void Release(ProcessTrack process)
    {
        process.Tentative = false;
        if (process.Held.Count == 0 || process.Owner is not { } owner)
        {
            return;
        }

        foreach (var held in process.Held)
        {
            if (owner.Flushed)
            {
                Counters.AddLate();
                continue;
            }

            owner.Events++;
            owner.Ambiguous = true;
            Counters.AddAttributed();
            Counters.AddAmbiguous();
            Apply(owner, process, held);
        }

        process.Held.Clear();
    }

    /// <summary>
    /// The window of a process open at <paramref name="time"/>: the latest when several are (all marked ambiguous), else
    /// the one whose tail holds it.
    /// </summary>
    private static Window? At(ProcessTrack process, DateTimeOffset time, TimeSpan tail, out bool ambiguous) =>
        At(process, time, tail, out ambiguous, out _, out _);

    /// <param name="open">Windows open at <paramref name="time"/>.</param>
    /// <param name="tails">Windows answered before <paramref name="time"/> and still in their tail.</param>
    private static Window? At(ProcessTrack process, DateTimeOffset time, TimeSpan tail, out bool ambiguous, out int open, out int tails)
    {
        // on every event not claimed by a descriptor: a plain loop, no allocation
        Window? found = null;
        Window? tailOf = null;
        open = 0;
        tails = 0;
        foreach (var window in process.Windows)
        {
            if (window.Flushed)
            {
                continue;
            }

            if (window.Opened <= time && (window.Closed is null || time <= window.Closed))
            {
                open++;
                if (found is null || window.Opened >= found.Opened)
                {
                    found = window;
                }
            }
            else if (window.Closed is { } closed && closed < time && time - closed <= tail)
            {
                tails++;
                if (tailOf is null || closed > tailOf.Closed)
                {
                    tailOf = window;
                }
            }
        }

        ambiguous = open > 1;
        if (ambiguous)
        {
            foreach (var window in process.Windows)
            {
                if (!window.Flushed && window.Opened <= time && (window.Closed is null || time <= window.Closed))
                {
                    window.Ambiguous = true;
                }
            }
        }

        // Node answers and goes on running the request's callbacks (a fetch it did not await, a timer): until the
        // settle delay is over, what the process does while serving nobody else is the last request's tail.
        return found ?? tailOf;
    }

    private Window Open(ProcessTrack process, SyscallEvent evt, HttpHead head)
    {
        var opened = OpenWindow(process, evt, head);
        process.Context = opened;
        return opened;
    }

    private Window OpenWindow(ProcessTrack process, SyscallEvent evt, HttpHead head)
    {
        var key = FdKey.Of(evt.Pid, evt.Fd!);
        if (process.Fds.TryGetValue(key, out var previous) && previous.Request && previous.Window.Closed is null)
        {
            Close(previous.Window, evt.Timestamp, "next-request");
        }

        var id = ++_nextWindowId;
        var window = new Window(id, process, evt.Timestamp, new GraphAccumulator(_options.MaxNodesPerGraph, _options.MaxEdgesPerGraph))
        {
            CallId = head.CallId,
            Incoming = head.TraceParent,
            Method = head.Method,
            Target = head.Target,
            Words = RequestWords.Of(evt.Data),
        };
        var graph = window.Graph;
        window.InvocationNode = graph.Node(NodeKind.Invocation, "self", $"{process.Function} {head.Method} {head.Target}");
        var function = graph.Node(NodeKind.Function, process.Instance, process.Function);
        graph.SetAttribute(function, "instance", process.Instance);
        graph.Edge(function, window.InvocationNode, EdgeKind.Invoke, "request", Ns(evt.Timestamp));
        var self = ProcessNode(window, process, Ns(evt.Timestamp));
        var fd = evt.Fd!;
        var socket = graph.Node(NodeKind.Socket, "request:" + (fd.LocalEndpoint ?? fd.Path ?? "?"), $"{Host(fd.RemoteEndpoint)} → {fd.LocalEndpoint ?? fd.Path}");
        graph.SetAttribute(socket, "local", fd.LocalEndpoint);
        graph.SetAttribute(socket, "remote", fd.RemoteEndpoint);
        graph.SetAttribute(socket, "role", "request");
        graph.Edge(socket, self, EdgeKind.Recv, evt.Syscall, Ns(evt.Timestamp));
        process.Windows.Add(window);
        _servers[process.Instance] = process;
        process.Fds[key] = new FdClaim(window, true);
        window.Events++;
        Counters.AddAttributed();
        Counters.AddInvocation();
        _open.AddLast(window);
        if (_open.Count > _options.MaxOpenInvocations && _open.First!.Value is var oldest && oldest != window)
        {
            Close(oldest, evt.Timestamp, "evicted");
            Flush(oldest);
        }

        Counters.Open = _open.Count;
        return window;
    }

    private static void Close(Window window, DateTimeOffset time, string reason)
    {
        window.Closed = time < window.Opened ? window.Opened : time;
        window.CloseReason = reason;
        window.ClosedSeen = DateTimeOffset.UtcNow;
    }

    private void Apply(Window window, ProcessTrack process, SyscallEvent evt)
    {
        var graph = window.Graph;
        var time = Ns(evt.Timestamp);
        var self = ProcessNode(window, process, time);
        var failed = evt.Failed && !(evt.Syscall == "connect" && evt.Errno == "EINPROGRESS");
        if (failed)
        {
            return;
        }

        var state = Container(process.Instance);
        switch (evt.Syscall)
        {
            case "execve" when evt.Path is { } exe:
                process.Exe = exe;
                process.Label = Path.GetFileName(evt.Argv is [{ Length: > 0 } argv0, ..] ? argv0 : exe);
                graph.SetLabel(self, process.Label);
                graph.SetAttribute(self, "exe", exe);
                graph.SetAttribute(self, "argv", evt.Argv is null ? null : Bounded(string.Join(' ', evt.Argv), 512));
                var program = FileNode(graph, exe, process.Instance);
                graph.Edge(self, program, EdgeKind.Execve, evt.Syscall, time);
                Inherit(window, state, exe, program, evt.Syscall, time);
                break;
            case "clone" or "clone3" or "fork" or "vfork" when evt.TargetPid > 0 && IsProcessCreation(evt):
                if (evt.Backend == "strace")
                {
                    // bpftrace's fork line names the child by its host pid (and announces threads, which never show up)
                    window.UnseenChildren++;
                }

                if (_forks.Count < MaxPendingForks)
                {
                    _forks[evt.TargetPid] = new PendingFork(process, window, evt.Timestamp, window.Ambiguous && process.Owner is null);
                }

                break;
            case "open" or "openat" when evt.Path is { } path:
                var opened = FileNode(graph, path, process.Instance);
                graph.Edge(self, opened, EdgeKind.Open, evt.Syscall, time);
                if (OpensForWriting(evt.Flags))
                {
                    state.Wrote(path, window.Writer(evt.Timestamp));
                    window.AddWrittenName(path);
                }
                else
                {
                    Inherit(window, state, path, opened, evt.Syscall, time);
                }

                break;
            case "read" or "pread64" or "readv" or "recvfrom" or "recvmsg" when evt.Fd is { } fd:
                if (fd.IsSocket)
                {
                    graph.Edge(SocketNode(graph, fd), self, EdgeKind.Recv, evt.Syscall, time);
                }
                else if (fd.Path is { } readPath)
                {
                    var file = FileNode(graph, readPath, process.Instance);
                    graph.Edge(file, self, EdgeKind.Read, evt.Syscall, time);
                    Inherit(window, state, readPath, file, evt.Syscall, time);
                }

                break;
            case "write" or "pwrite64" or "writev" or "sendto" or "sendmsg" when evt.Fd is { } fd:
                if (fd.IsSocket)
                {
                    graph.Edge(self, SocketNode(graph, fd), EdgeKind.Send, evt.Syscall, time);
                    RegisterCaller(window, fd, evt.Timestamp, evt.Data);
                }
                else if (fd.Path is { } writePath)
                {
                    var written = FileNode(graph, writePath, process.Instance);
                    graph.Edge(self, written, EdgeKind.Write, evt.Syscall, time);
                    if (evt.Data is { Length: > 0 } magic && graph.Attribute(written, "content") is null)
                    {
                        graph.SetAttribute(written, "content", FileContent.Kind(magic));
                    }

                    state.Wrote(writePath, window.Writer(evt.Timestamp));
                    window.AddWrittenName(writePath);
                }

                break;
            case "unlink" or "unlinkat" when evt.Path is { } path:
                graph.Edge(self, FileNode(graph, path, process.Instance), EdgeKind.Unlink, evt.Syscall, time);
                state.Removed(path);
                break;
            case "chmod" or "fchmodat" when evt.Path is { } path:
                var changed = FileNode(graph, path, process.Instance);
                graph.Edge(self, changed, EdgeKind.Chmod, evt.Syscall, time);
                Inherit(window, state, path, changed, evt.Syscall, time);
                break;
            case "rename" or "renameat" or "renameat2" when evt.Path is { } from && evt.Path2 is { } to:
                TakeRenamedFile(window, process, state, from, evt.Timestamp);
                var target = FileNode(graph, to, process.Instance);
                graph.SetAttribute(target, "renamedFrom", from);
                if (graph.Find(NodeKind.File, from) is { } source && graph.Attribute(source, "content") is { } content)
                {
                    graph.SetAttribute(target, "content", content); // a download lands under a temporary name first
                }

                graph.Edge(self, target, EdgeKind.Rename, evt.Syscall, time);
                state.Renamed(from, to, window.Writer(evt.Timestamp));
                window.AddWrittenName(to);
                break;
            case "connect" when evt.Fd is { } fd:
                graph.Edge(self, SocketNode(graph, fd), EdgeKind.Connect, evt.Syscall, time);
                RegisterCaller(window, fd, evt.Timestamp, null);
                break;
            case "accept" or "accept4" when evt.Fd is { } fd:
                graph.Edge(SocketNode(graph, fd), self, EdgeKind.Accept, evt.Syscall, time);
                break;
            case "kill" or "tgkill" when evt.TargetPid > 0:
                var victim = graph.Node(NodeKind.Process, "pid:" + evt.TargetPid.ToString(CultureInfo.InvariantCulture), "pid " + evt.TargetPid.ToString(CultureInfo.InvariantCulture));
                graph.SetAttribute(victim, "pid", evt.TargetPid.ToString(CultureInfo.InvariantCulture));
                graph.SetAttribute(victim, "signal", evt.Flags);
                graph.Edge(self, victim, EdgeKind.Kill, evt.Syscall, time);
                break;
            case "mmap" or "mprotect":
                var mapped = evt.Fd?.Path is { } mappedPath ? FileNode(graph, mappedPath, process.Instance) : graph.Node(NodeKind.File, "[anonymous]", "[anonymous memory]");
                graph.Edge(self, mapped, EdgeKind.MmapExec, evt.Syscall, time);
                if (evt.Fd?.Path is { } code)
                {
                    Inherit(window, state, code, mapped, evt.Syscall, time);
                }

                break;
        }
    }

    /// <summary>
    /// Remembers which invocation sent on a client connection (by its local endpoint) when, and the request line it sent:
    /// when the proxy's record of a call names that endpoint as its client, the call came from the invocation that sent
    /// it, with or without trace context (an injected call forwards none). See <see cref="CallerOf"/>.
    /// </summary>
    private void RegisterCaller(Window window, FileDescriptorInfo fd, DateTimeOffset time, byte[]? data)
    {
        if (fd.LocalEndpoint is not { } local || fd.RemoteEndpoint is null || window.Process.Fds.TryGetValue(FdKey.Of(window.Process.Pid, fd), out var claim) && claim.Request)
        {
            return;
        }

        var head = data is { Length: > 0 } ? HttpHead.Parse(data) : HttpHead.None;
        var caller = new CallerInfo(window.Id, window.GraphId(window.CallId), window.CallId, window.Incoming?.TraceId, window.Process.Function);
        if (!_callersByLocal.TryGetValue(local, out var sends))
        {
            _callersByLocal[local] = sends = [];
        }

        if (sends.Count >= MaxSendsPerEndpoint)
        {
            sends.RemoveAt(0);
        }

        sends.Add(new CallerSend(time, caller, head.IsRequest ? head.Target : null));
        _callerAge.Enqueue((time, local));
    }

    /// <summary>
    /// The invocation whose send on the record's client endpoint started the call: the latest send there before the proxy
    /// began the call (a little slack for clocks) and before it answered (the next call on a kept-alive connection comes
    /// after), at most <see cref="CallerSendAge"/> before it. A client port seen long ago belongs to nobody now: ports are
    /// reused, and the workload driver's or the gateway's connection is no function's. A send whose request line names
    /// another path was another call. Looked up when the graph is built, not when the record arrives: strace reports the
    /// send after the proxy has often already logged the call.
    /// </summary>
    private CallerInfo? CallerOf(InvocationRecord record)
    {
        if (record.ClientAddress is not { } client || !_callersByLocal.TryGetValue(client, out var sends))
        {
            return null;
        }

        var latest = Min(record.StartUtc + CallerSendSlack, record.EndUtc);
        for (var i = sends.Count - 1; i >= 0; i--)
        {
            var send = sends[i];
            if (send.Time > latest)
            {
                continue;
            }

            if (record.StartUtc - send.Time > CallerSendAge)
            {
                return null;
            }

            return send.Target is null || SamePath(send.Target, record.Path) ? send.Caller : null;
        }

        return null;
    }

    /// <summary>The path of a request line a function sent against the path the proxy logged (no query, no trailing slash).</summary>
    private static bool SamePath(string target, string path)
    {
        var query = target.IndexOf('?', StringComparison.Ordinal);
        var sent = (query >= 0 ? target[..query] : target).TrimEnd('/');
        return string.Equals(sent, path.TrimEnd('/'), StringComparison.Ordinal);
    }

    /// <summary>The process's node in this window's graph; a child's first appearance (at <paramref name="timeNs"/>) brings the fork edge from its parent.</summary>
    private static int ProcessNode(Window window, ProcessTrack process, long timeNs)
    {
        var graph = window.Graph;
        var key = "pid:" + process.Pid.ToString(CultureInfo.InvariantCulture);
        if (graph.Find(NodeKind.Process, key) is { } known)
        {
            return known;
        }

        var node = graph.Node(NodeKind.Process, key, process.Label);
        graph.SetAttribute(node, "pid", process.Pid.ToString(CultureInfo.InvariantCulture));
        graph.SetAttribute(node, "exe", process.Exe);
        if (process.Owner is null)
        {
            graph.SetAttribute(node, "role", "function");
        }
        else if (process.Parent is { } parent)
        {
            graph.SetAttribute(node, "ppid", parent.Pid.ToString(CultureInfo.InvariantCulture));
            graph.Edge(ProcessNode(window, parent, timeNs), node, EdgeKind.Fork, "fork", timeNs);
        }

        return node;
    }

    private static void Inherit(Window window, ContainerState state, string path, int file, string syscall, long time)
    {
        if (state.WriterOf(path) is not { } writer || writer.WindowId == window.Id)
        {
            return;
        }

        var graph = window.Graph;
        var earlier = graph.Node(NodeKind.Invocation, "writer:" + writer.GraphId, $"earlier invocation of {writer.Function}");
        graph.SetAttribute(earlier, "graphId", writer.GraphId);
        graph.SetAttribute(earlier, "callId", writer.CallId);
        graph.SetAttribute(earlier, "function", writer.Function);
        graph.SetAttribute(earlier, "role", "writer");
        graph.Edge(earlier, file, EdgeKind.Inherits, syscall, time);
    }

    private void FlushDue()
    {
        var node = _open.First;
        while (node is not null)
        {
            var next = node.Next;
            var window = node.Value;
            if (window.Closed is null)
            {
                if (_now - window.Opened > _options.WindowTimeout)
                {
                    Close(window, _now, "timeout");
                    Flush(window);
                }
            }
            else
            {
                var since = _now - window.Closed.Value;
                if (_options.ProvisionalGraphs && since < _options.SettleDelay)
                {
                    SendProvisional(window);
                }

                if (since >= _options.SettleDelay
                    && (window.Record is not null || TryMatchRecord(window) || since >= _options.RecordWait)
                    && (window.LiveChildren.Count == 0 && window.UnseenChildren == 0 || since >= _options.ChildGrace))
                {
                    Flush(window);
                }
            }

            node = next;
        }

        ExpireRecords();
    }

    private void Flush(Window window)
    {
        if (window.Flushed)
        {
            return;
        }

        // a child still held for its execve (a reverse shell never execs) goes with the guess: its events are this graph's
        foreach (var held in window.HeldChildren)
        {
            if (held.Owner == window && held.Held.Count > 0)
            {
                Release(held);
            }
        }

        window.Flushed = true;
        _open.Remove(window);
        Counters.Open = _open.Count;
        if (window.Record is null)
        {
            TryMatchRecord(window);
        }

        var process = window.Process;
        if (process.Windows.Count(w => w.Flushed) > FlushedKeptPerProcess)
        {
            process.Windows.Remove(process.Windows.First(w => w.Flushed));
        }

        if (window.CloseReason is not ("response" or "record"))
        {
            Counters.AddTimedOut();
        }

        var finished = Build(window, provisional: false);
        Counters.AddGraph(finished.Graph.Truncated);
        _finished(finished);
    }

    /// <summary>
    /// The graph as it stands, with the invocation node's attributes. A provisional build leaves the packet flows in
    /// place for the final one.
    /// </summary>
    private FinishedInvocation Build(Window window, bool provisional)
    {
        var process = window.Process;
        var graph = window.Graph;
        var record = window.Record;
        var callId = record?.CallId ?? window.CallId;
        var spanId = record?.SpanId ?? window.Incoming?.SpanId;
        var traceId = record?.TraceId ?? window.Incoming?.TraceId;
        var self = window.InvocationNode;
        if (record is not null)
        {
            window.Caller = CallerOf(record); // the caller's send may have come in after the record
        }

        graph.SetAttribute(self, "callId", callId);
        graph.SetAttribute(self, "function", process.Function);
        graph.SetAttribute(self, "instance", process.Instance);
        graph.SetAttribute(self, "traceId", traceId);
        graph.SetAttribute(self, "spanId", spanId);
        graph.SetAttribute(self, "parentSpanId", record?.ParentSpanId);
        graph.SetAttribute(self, "method", window.Method);
        graph.SetAttribute(self, "path", window.Target);
        graph.SetAttribute(self, "role", "self");
        graph.SetAttribute(self, "closed", window.CloseReason);
        graph.SetAttribute(self, "events", window.Events.ToString(CultureInfo.InvariantCulture));
        graph.SetAttribute(self, "opened", window.Opened.ToString("O", CultureInfo.InvariantCulture));
        graph.SetAttribute(self, "durationMs", ((window.Closed ?? _now) - window.Opened).TotalMilliseconds.ToString("F3", CultureInfo.InvariantCulture));
        if (record is not null)
        {
            graph.SetAttribute(self, "status", record.Status.ToString(CultureInfo.InvariantCulture));
        }

        if (window.Caller is { } caller && caller.WindowId != window.Id)
        {
            graph.SetAttribute(self, "callerGraphId", caller.GraphId);
            graph.SetAttribute(self, "callerCallId", caller.CallId);
            graph.SetAttribute(self, "callerFunction", caller.Function);
            if (record?.ParentSpanId is null || caller.TraceId != traceId)
            {
                // a function called another without passing on its trace: what injected code does
                graph.SetAttribute(self, "untracedCall", "true");
            }
        }

        if (spanId is not null && (provisional ? _flowsBySpan.TryGetValue(spanId, out var flows) : _flowsBySpan.Remove(spanId, out flows)))
        {
            graph.SetAttribute(self, "packets", flows.Sum(f => f.Packets).ToString(CultureInfo.InvariantCulture));
            graph.SetAttribute(self, "bytes", flows.Sum(f => f.Bytes).ToString(CultureInfo.InvariantCulture));
            graph.SetAttribute(self, "pcap", flows.Select(f => f.SliceFile).FirstOrDefault(f => f is not null));
        }

        if (graph.Truncated)
        {
            graph.SetAttribute(self, "leftOut", graph.LeftOut.ToString(CultureInfo.InvariantCulture));
        }

        var built = graph.Build(window.GraphId(callId), GraphScope.Invocation, callId, traceId, process.Function, process.Instance) with { Ambiguous = window.Ambiguous };
        return new FinishedInvocation(built, self, record, spanId, record?.ParentSpanId, traceId, window.CloseReason ?? "shutdown", window.Caller)
        {
            Provisional = provisional,
            ClosedSeenUtc = window.ClosedSeen,
            BuiltUtc = DateTimeOffset.UtcNow,
        };
    }

    /// <summary>
    /// The proxy record of this invocation: by call id and function (the hops of a chain share the call id), the span id
    /// when the trace context was read, else the record whose time holds the window's start. Without a call id in the bytes
    /// read, the function's records around that time decide, ambiguously when more than one fits.
    /// </summary>
    private bool TryMatchRecord(Window window)
    {
        var function = window.Process.Function;
        var slack = TimeSpan.FromSeconds(1);
        IEnumerable<PendingRecord> pool = window.CallId is { } callId
            ? _recordsByCallId.GetValueOrDefault(callId) ?? []
            : _recordsByFunction.GetValueOrDefault(function) ?? [];
        var unmatched = pool.Where(p => !p.Matched && (p.Record.Function is null || p.Record.Function == function)).ToList();
        var candidates = unmatched.Where(p => SameTarget(window.Target, p.Record)).ToList();
        var byTargetToo = candidates.Count > 0;
        if (!byTargetToo)
        {
            // the record's query was redacted (a token in it), so the two cannot be compared: time alone, when it is clear
            candidates = unmatched;
        }

        if (candidates.Count == 0)
        {
            return false;
        }

        var bySpan = window.Incoming is { } incoming ? candidates.FirstOrDefault(p => p.Record.SpanId == incoming.SpanId) : null;
        var chosen = bySpan;
        if (chosen is null)
        {
            var around = candidates.Where(p => p.Record.StartUtc - slack <= window.Opened && window.Opened <= p.Record.EndUtc + slack)
                .OrderBy(p => (window.Opened - p.Record.StartUtc).Duration()).ToList();
            if (around.Count == 0)
            {
                return false;
            }

            if (window.CallId is null && around.Count > 1 && window.Words.Count > 0)
            {
                // the proxy kept the body too: the one whose ids and names the function read is this one
                var byBody = around.Where(p => RequestWords.Of(p.Record.RequestBodyPrefix).Overlaps(window.Words)).ToList();
                if (byBody.Count == 1)
                {
                    around = byBody;
                }
            }

            if (!byTargetToo && window.CallId is null && around.Count > 1)
            {
                return false;
            }

            chosen = around[0];
            if (window.CallId is null && around.Count > 1)
            {
                window.Ambiguous = true;
            }
        }

        chosen.Matched = true;
        window.Record = chosen.Record;
        window.Caller = CallerOf(chosen.Record);
        Counters.AddRecordMatched();
        return true;
    }

    /// <summary>
    /// The request line the function read (maybe cut short by the bytes kept) against the proxy's path and query: the
    /// gateway strips <c>/function/NAME</c>. Telling concurrent requests apart matters most when the call id was cut off.
    /// </summary>
    private static bool SameTarget(string? target, InvocationRecord record)
    {
        if (target is null || record.Function is null)
        {
            return true;
        }

        var path = record.Path;
        foreach (var prefix in (string[])[$"/function/{record.Function}", $"/async-function/{record.Function}"])
        {
            if (path.StartsWith(prefix, StringComparison.Ordinal))
            {
                path = path[prefix.Length..];
                break;
            }
        }

        var full = (path.Length == 0 ? "/" : path) + (string.IsNullOrEmpty(record.Query) ? "" : (record.Query.StartsWith('?') ? record.Query : "?" + record.Query));
        // only the function's copy can be cut short: a request for /products does not match one read as /products?sort=…
        return full.StartsWith(target, StringComparison.Ordinal);
    }

    private void ExpireRecords()
    {
        while (_recordAge.TryPeek(out var oldest) && _now - oldest.Arrived > _options.RecordRetention)
        {
            _recordAge.Dequeue();
            if (!oldest.Matched)
            {
                Counters.AddRecordUnmatched();
            }

            Unindex(_recordsByCallId, oldest.Record.CallId, oldest);
            if (oldest.Record.Function is { } function)
            {
                Unindex(_recordsByFunction, function, oldest);
            }
        }

        if (_forks.Count > 0 && ++_forkSweep % 64 == 0)
        {
            foreach (var stale in _forks.Where(f => _now - f.Value.Time > _options.RecordRetention).Select(f => f.Key).ToList())
            {
                _forks.Remove(stale);
            }
        }

        while (_callerAge.TryPeek(out var sent) && _now - sent.Time > _options.RecordRetention)
        {
            _callerAge.Dequeue();
            if (_callersByLocal.TryGetValue(sent.Local, out var sends))
            {
                sends.RemoveAll(s => _now - s.Time > _options.RecordRetention);
                if (sends.Count == 0)
                {
                    _callersByLocal.Remove(sent.Local);
                }
            }
        }

        while (_flowAge.TryPeek(out var flow) && _now - flow.Time > _options.RecordRetention)
        {
            _flowAge.Dequeue();
            _flowsBySpan.Remove(flow.Span);
        }
    }

    private ContainerState Container(string instance)
    {
        if (!_containers.TryGetValue(instance, out var state))
        {
            _containers[instance] = state = new ContainerState(_options.MaxFilesPerInstance);
        }

        return state;
    }

    private static int FileNode(GraphAccumulator graph, string path, string instance)
    {
        var node = graph.Node(NodeKind.File, path, FileLabel(path, instance));
        graph.SetAttribute(node, "path", path);
        return node;
    }

    /// <summary>Labels generalise across instances and descriptors: the instance's own name and a pipe's inode are left out.</summary>
    private static string FileLabel(string path, string instance)
    {
        var label = path.Replace(instance, "<instance>", StringComparison.Ordinal);
        var bracket = label.IndexOf(":[", StringComparison.Ordinal);
        return bracket > 0 && label.EndsWith(']') && label.AsSpan(bracket + 2, label.Length - bracket - 3).IndexOfAnyExceptInRange('0', '9') < 0
            ? label[..bracket]
            : label;
    }

    private static string SocketKey(FileDescriptorInfo fd) => fd.RemoteEndpoint ?? fd.Path ?? "socket";

    private static int SocketNode(GraphAccumulator graph, FileDescriptorInfo fd)
    {
        var key = SocketKey(fd);
        var node = graph.Node(NodeKind.Socket, key, key.StartsWith("socket:[", StringComparison.Ordinal) ? "socket" : key);
        graph.SetAttribute(node, "remote", fd.RemoteEndpoint);
        graph.SetAttribute(node, "protocol", fd.Path);
        return node;
    }

    private static string Host(string? endpoint) =>
        endpoint is null ? "?" : endpoint.LastIndexOf(':') is > 0 and var colon ? endpoint[..colon] : endpoint;

    /// <summary>strace says whether a clone made a thread; eBPF's and faasmon-ptrace's clone carries no flags, their fork line does the job.</summary>
    private static bool IsProcessCreation(SyscallEvent evt) => evt.Backend != "strace"
        ? evt.Syscall == "fork" && evt.Kind == SyscallEventKind.Syscall && evt.Flags is null && evt.Duration is null
        : evt.Flags?.Contains("CLONE_THREAD", StringComparison.Ordinal) != true;

    private static bool OpensForWriting(string? flags) =>
        flags is not null && (flags.Contains("O_WRONLY", StringComparison.Ordinal) || flags.Contains("O_RDWR", StringComparison.Ordinal)
            || flags.Contains("O_CREAT", StringComparison.Ordinal) || flags.Contains("O_TRUNC", StringComparison.Ordinal));

    private static bool IsRead(string syscall) => syscall is "read" or "readv" or "recvfrom" or "recvmsg" or "pread64";

    private static bool IsWrite(string syscall) => syscall is "write" or "writev" or "sendto" or "sendmsg" or "pwrite64";

    internal static long Ns(DateTimeOffset time) => (time - DateTimeOffset.UnixEpoch).Ticks * 100;

    private static DateTimeOffset Max(DateTimeOffset a, DateTimeOffset b) => a > b ? a : b;

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    private static string Bounded(string text, int max) => text.Length <= max ? text : text[..max] + "…";

    private static void Index(Dictionary<string, List<PendingRecord>> index, string key, PendingRecord record)
    {
        if (!index.TryGetValue(key, out var list))
        {
            index[key] = list = [];
        }

        list.Add(record);
    }

    private static void Unindex(Dictionary<string, List<PendingRecord>> index, string key, PendingRecord record)
    {
        if (index.TryGetValue(key, out var list) && list.Remove(record) && list.Count == 0)
        {
            index.Remove(key);
        }
    }

    private sealed class ProcessTrack(int pid, string function, string instance)
    {
        public int Pid { get; } = pid;

        public string Function { get; } = function;

        public string Instance { get; } = instance;

        /// <summary>The window this process was started in (children); null for a function's own process.</summary>
        public Window? Owner { get; set; }

        public ProcessTrack? Parent { get; set; }

        public string Label { get; set; } = "function-process";

        public string? Exe { get; set; }

        public bool Exited { get; set; }

        /// <summary>Windows this process opened (it read their requests), the open ones and a few flushed ones.</summary>
        public List<Window> Windows { get; } = [];

        public Dictionary<FdKey, FdClaim> Fds { get; } = [];

        /// <summary>The window the main thread last provably worked for.</summary>
        public Window? Context { get; set; }

        /// <summary>The owner was guessed among overlapping windows; the first execve may correct it.</summary>
        public bool Tentative { get; set; }

        /// <summary>A tentative child's events before its execve.</summary>
        public List<SyscallEvent> Held { get; } = [];
    }

    private sealed class Window(long id, ProcessTrack process, DateTimeOffset opened, GraphAccumulator graph)
    {
        public long Id { get; } = id;

        public ProcessTrack Process { get; } = process;

        public DateTimeOffset Opened { get; } = opened;

        public GraphAccumulator Graph { get; } = graph;

        public int InvocationNode { get; set; }

        public string? CallId { get; init; }

        public TraceParent? Incoming { get; init; }

        public string? Method { get; init; }

        public string? Target { get; init; }

        /// <summary>Distinctive words of the request bytes read (ids, file names): what its own system calls may name.</summary>
        public HashSet<string> Words { get; init; } = [];

        /// <summary>File names (no directory) of the files this invocation wrote or renamed, a few dozen at most.</summary>
        public HashSet<string> WrittenNames { get; } = new(StringComparer.Ordinal);

        public void AddWrittenName(string path)
        {
            if (WrittenNames.Count < 64 && System.IO.Path.GetFileName(path) is { Length: > 0 } name)
            {
                WrittenNames.Add(name);
            }
        }

        public DateTimeOffset? Closed { get; set; }

        public string? CloseReason { get; set; }

        public DateTimeOffset? ClosedSeen { get; set; }

        public HashSet<int> LiveChildren { get; } = [];

        /// <summary>Children whose events were held, waiting for their execve, while this window was their guess.</summary>
        public List<ProcessTrack> HeldChildren { get; } = [];

        /// <summary>
        /// Forks whose child has not shown up yet. strace reports a container's child by its pid in the container's PID
        /// namespace, so the child is known only when its own first event comes; until then the graph waits for it.
        /// </summary>
        public int UnseenChildren { get; set; }

        public bool Ambiguous { get; set; }

        public bool Flushed { get; set; }

        public bool ProvisionalSent { get; set; }

        public long Events { get; set; }

        public InvocationRecord? Record { get; set; }

        public CallerInfo? Caller { get; set; }

        private string? _graphId;

        public string GraphId(string? callId) => _graphId ??= $"inv-{Safe(callId ?? "nocallid")}-{Safe(Process.Function)}-{Id.ToString(CultureInfo.InvariantCulture)}";

        public FileWriter Writer(DateTimeOffset time) => new(Id, GraphId(Record?.CallId ?? CallId), Record?.CallId ?? CallId, Process.Function, time);

        private static string Safe(string text) =>
            new([.. text.Take(64).Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_')]);
    }

    private readonly record struct FdKey(int Pid, int Fd, string? Identity)
    {
        public static FdKey Of(int pid, FileDescriptorInfo fd) => new(pid, fd.Fd, fd.RemoteEndpoint ?? fd.Path);
    }

    /// <param name="Call">A request its window sent on the socket: the reply read on it, in the tail too, is that window's.</param>
    private sealed record FdClaim(Window Window, bool Request, bool Call = false);

    /// <summary>A fork whose child has not shown up yet (bpftrace also announces threads this way: those never show up).</summary>
    private sealed record PendingFork(ProcessTrack Parent, Window Owner, DateTimeOffset Time, bool Tentative);

    private sealed class PendingRecord(InvocationRecord record, DateTimeOffset arrived)
    {
        public InvocationRecord Record { get; } = record;

        public DateTimeOffset Arrived { get; } = arrived;

        public bool Matched { get; set; }
    }

    /// <summary>A send on a client connection: who sent, when, and the request line's target when the bytes held one.</summary>
    private sealed record CallerSend(DateTimeOffset Time, CallerInfo Caller, string? Target);
}
