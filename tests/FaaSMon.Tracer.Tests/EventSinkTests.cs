using System.Threading.Channels;
using FaaSMon.Core;

namespace FaaSMon.Tracer.Tests;

public sealed class EventSinkTests
{
    // above the kernel's largest pid_max: no /proc entry can answer for these, only the events do
    private const int Parent = 4_194_400, Child = 4_194_401;

    private static readonly DateTimeOffset T = DateTimeOffset.UnixEpoch;

    [Fact]
    public async Task A_child_whose_chdir_comes_before_its_parents_fork_line_keeps_that_cwd_for_a_relative_execve()
    {
        // bpftrace prints its per-CPU buffers one after another: libuv's child chdir'ed to the spawn's cwd on one
        // CPU, its parent's fork line sat in another's and came after it (CI: the trigger's ./evil.sh became
        // the function's directory joined with evil.sh)
        var (sink, channel) = FunctionInHomeApp();
        sink.Publish(new SyscallEvent(T.AddTicks(2), Child, Child, Parent, "chdir", Path: "/tmp", Backend: "ebpf"));
        sink.Publish(new SyscallEvent(T.AddTicks(1), Parent, Parent, 1, "fork", TargetPid: Child, Backend: "ebpf"));
        sink.Publish(new SyscallEvent(T.AddTicks(3), Child, Child, Parent, "execve", Path: "./evil.sh", Argv: ["./evil.sh"], Backend: "ebpf"));
        channel.Writer.Complete();

        var exec = Assert.Single(await ReadAll(channel.Reader), e => e.Syscall == "execve");
        Assert.Equal("/tmp/evil.sh", exec.Path);
        Assert.Equal(("product-photos-receive", "receive-1"), (exec.Function, exec.Instance));
    }

    [Fact]
    public async Task A_fork_line_in_order_gives_the_child_its_parents_cwd_and_identity()
    {
        var (sink, channel) = FunctionInHomeApp();
        sink.Publish(new SyscallEvent(T.AddTicks(1), Parent, Parent, 1, "fork", TargetPid: Child, Backend: "ebpf"));
        // reparented before its first call: the fork line is all that ties it to the function
        sink.Publish(new SyscallEvent(T.AddTicks(2), Child, Child, 1, "openat", Path: "data.json", Flags: "O_RDONLY", Backend: "ebpf"));
        channel.Writer.Complete();

        var open = Assert.Single(await ReadAll(channel.Reader), e => e.Syscall == "openat");
        Assert.Equal("/home/app/data.json", open.Path);
        Assert.Equal("receive-1", open.Instance);
    }

    /// <summary>A sink that knows the function's node process (<see cref="Parent"/>) and has seen it chdir to /home/app.</summary>
    private static (EventSink Sink, Channel<SyscallEvent> Channel) FunctionInHomeApp()
    {
        var channel = Channel.CreateUnbounded<SyscallEvent>();
        var sink = new EventSink(channel.Writer, new TracerCounters());
        sink.Register(new FunctionProcess(Parent, 1, 0, "node index.js", new FunctionIdentity("product-photos-receive", "receive-1", "cgroup"), T, T, TimeSpan.Zero));
        sink.Publish(new SyscallEvent(T, Parent, Parent, 1, "chdir", Path: "/home/app", Backend: "ebpf"));
        return (sink, channel);
    }

    private static async Task<List<SyscallEvent>> ReadAll(ChannelReader<SyscallEvent> reader)
    {
        var events = new List<SyscallEvent>();
        await foreach (var e in reader.ReadAllAsync())
        {
            events.Add(e);
        }

        return events;
    }
}
