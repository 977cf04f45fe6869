using System.Text;
using FaaSMon.Core;

namespace FaaSMon.Grapher.Tests;

/// <summary>
/// System calls of one function process, shaped as the tracer emits them (strace -yy: descriptors decoded with their
/// paths and endpoints, socket bytes kept), with a clock that moves 1 ms per call.
/// </summary>
internal sealed class Events(int pid = 4242, string function = "product-photos-receive", string instance = "product-photos-receive-abc123")
{
    private DateTimeOffset _time = new(2026, 12, 1, 12, 0, 0, TimeSpan.Zero);

    public int Pid => pid;

    public DateTimeOffset Time => _time;

    public Events Wait(TimeSpan delay)
    {
        _time += delay;
        return this;
    }

    public SyscallEvent Request(int fd, string callId, string target = "/", string? traceparent = null, int clientPort = 50000, string method = "POST", int? tid = null)
    {
        var head = $"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nX-Call-Id: {callId}\r\n" + (traceparent is null ? "" : $"traceparent: {traceparent}\r\n") + "\r\n";
        return Next("read", tid: tid, fd: Socket(fd, clientPort), data: Encoding.ASCII.GetBytes(head), ret: head.Length);
    }

    public SyscallEvent Response(int fd, int clientPort = 50000) =>
        Next("writev", fd: Socket(fd, clientPort), data: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"u8.ToArray(), ret: 40);

    public SyscallEvent OpenWrite(string path, int fd = 30) => Next("openat", path: path, flags: "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC", fd: new FileDescriptorInfo(fd, path), ret: fd);

    public SyscallEvent OpenRead(string path, int fd = 31) => Next("openat", path: path, flags: "O_RDONLY|O_CLOEXEC", fd: new FileDescriptorInfo(fd, path), ret: fd);

    public SyscallEvent Write(int fd, string path, int? tid = null) => Next("write", tid: tid, fd: new FileDescriptorInfo(fd, path), ret: 100);

    public SyscallEvent Read(int fd, string path, int? tid = null) => Next("read", tid: tid, fd: new FileDescriptorInfo(fd, path), ret: 100);

    public SyscallEvent Rename(string from, string to) => Next("rename", path: from, path2: to);

    public SyscallEvent Chmod(string path) => Next("chmod", path: path, flags: "0755");

    public SyscallEvent Connect(int fd, string remote, int localPort = 40000) =>
        Next("connect", fd: new FileDescriptorInfo(fd, "TCP", $"127.0.0.1:{localPort}", remote), ret: -1, errno: "EINPROGRESS");

    public SyscallEvent Send(int fd, string remote, int localPort = 40000, byte[]? data = null) =>
        Next("sendto", fd: new FileDescriptorInfo(fd, "TCP", $"127.0.0.1:{localPort}", remote), data: data, ret: 64);

    public SyscallEvent Fork(int child) => Next("clone", flags: "CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD", ret: child, target: child);

    public SyscallEvent Thread(int tid) => Next("clone3", flags: "CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD", ret: tid, target: tid);

    public SyscallEvent Exec(int processPid, string exe, params string[] argv) => Next("execve", pid: processPid, path: exe, argv: argv.Length == 0 ? [exe] : argv);

    public SyscallEvent Exit(int processPid) => Next("exited", pid: processPid, kind: SyscallEventKind.Exit);

    public SyscallEvent Next(
        string syscall,
        int? pid = null,
        int? tid = null,
        string? path = null,
        string? path2 = null,
        FileDescriptorInfo? fd = null,
        string? flags = null,
        IReadOnlyList<string>? argv = null,
        long ret = 0,
        string? errno = null,
        byte[]? data = null,
        int target = 0,
        SyscallEventKind kind = SyscallEventKind.Syscall,
        string? functionOverride = null)
    {
        _time += TimeSpan.FromMilliseconds(1);
        var p = pid ?? this.Pid;
        return new SyscallEvent(_time, p, tid ?? p, p == this.Pid ? 1 : this.Pid, syscall, kind, path, path2, fd, flags, argv, ret, errno, TimeSpan.FromMicroseconds(5), data,
            functionOverride ?? function, instance, target);
    }

    public static FileDescriptorInfo Socket(int fd, int clientPort) => new(fd, "TCP", "127.0.0.1:8080", $"127.0.0.1:{clientPort}");
}

/// <summary>An attributor with short delays whose finished invocations are collected.</summary>
internal sealed class Harness
{
    public Harness(GrapherOptions? options = null)
    {
        Options = options ?? new GrapherOptions
        {
            SettleDelay = TimeSpan.FromMilliseconds(50),
            RecordWait = TimeSpan.FromMilliseconds(100),
            ChildGrace = TimeSpan.FromSeconds(1),
            WindowTimeout = TimeSpan.FromSeconds(10),
        };
        Attributor = new InvocationAttributor(Options, Counters, Finished.Add);
    }

    public GrapherOptions Options { get; }

    public GrapherCounters Counters { get; } = new();

    public InvocationAttributor Attributor { get; }

    public List<FinishedInvocation> Finished { get; } = [];

    public Harness Feed(params SyscallEvent[] events)
    {
        foreach (var e in events)
        {
            Attributor.Add(e);
        }

        return this;
    }

    /// <summary>Moves the clock past every delay so whatever is closed gets built.</summary>
    public Harness Settle(DateTimeOffset now)
    {
        Attributor.Advance(now + TimeSpan.FromSeconds(2));
        return this;
    }

    public ProvenanceGraph Graph(string callId) =>
        Assert.Single(Finished, f => f.Graph.CallId == callId).Graph;
}

internal static class GraphAssert
{
    public static GraphNode Node(ProvenanceGraph graph, NodeKind kind, string label) =>
        graph.Nodes.FirstOrDefault(n => n.Kind == kind && n.Label == label)
        ?? throw new Xunit.Sdk.XunitException($"no {kind} '{label}' in {graph.GraphId}: {Describe(graph)}");

    public static bool HasEdge(ProvenanceGraph graph, EdgeKind kind, Func<GraphNode, bool> source, Func<GraphNode, bool> target) =>
        graph.Edges.Any(e => e.Kind == kind && source(graph.Nodes[e.Source]) && target(graph.Nodes[e.Target]));

    public static GraphNode Self(ProvenanceGraph graph) =>
        graph.Nodes.Single(n => n.Kind == NodeKind.Invocation && n.Attributes?.GetValueOrDefault("role") == "self");

    public static string Describe(ProvenanceGraph graph) =>
        string.Join("; ", graph.Edges.Select(e => $"{graph.Nodes[e.Source].Label} -{e.Kind}-> {graph.Nodes[e.Target].Label}"));
}
