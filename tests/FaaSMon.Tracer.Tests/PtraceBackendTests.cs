using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using FaaSMon.Core;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace FaaSMon.Tracer.Tests;

/// <summary>
/// The ptrace backend's own tracer (ptrace/faasmon-ptrace.c) against real processes: what it sees of a process, its
/// children and their execs, that its lines forge nothing, that its target outlives it, and its answers to bad input.
/// </summary>
public sealed class PtraceBackendTests(ITestOutputHelper output)
{
    // more arguments than eBPF sends (2), one longer than its 127 bytes: a shell's whole command line is one argument
    private static readonly string LongArgument = "echo \"" + new string('x', 180) + "\" >> /tmp/outbox.log";
    private static readonly string[] EchoArgv = ["/bin/echo", "first-arg", "second-arg", LongArgument, "fourth"];

    private static string Tool => PtraceBackend.ToolPath;

    /// <summary>
    /// A bash, once attached, opens a file named with a tab and a newline, writes binary bytes with zeros to a loopback
    /// socket, runs a child that execs with four arguments (one of 203 bytes), takes a signal it traps, and exits with 3. fd 1 stays the socket
    /// (exec 1>&amp;3): dup2 is not traced, so the parser looks fd 1 up in /proc when it reads the write.
    /// </summary>
    [Fact]
    public async Task A_process_its_child_the_childs_exec_a_signal_and_the_exit_come_through_with_socket_bytes_kept()
    {
        Prerequisites.RequirePtraceTool(Tool);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        var (port, accepted) = Listen(listener);
        var dir = Directory.CreateTempSubdirectory("faasmon-ptrace-");
        var evil = Path.Combine(dir.FullName, "a\tb\nX\t1\t1\t1\t1\tunlink\t0\t1\t0\t0\t0\tpasswd\\x0a");
        var (channel, sink, backend) = NewBackend();
        string? clientEnd = null;
        var events = new List<SyscallEvent>();
        using var bash = Process.Start(new ProcessStartInfo("bash", ["-c",
            "trap 'echo usr1 > /dev/null' USR1; read go; : > \"$1\"; exec 3<>/dev/tcp/127.0.0.1/$2; exec 1>&3; printf 'T\\000\\000\\001\\054\\201\\377zz'; " +
            "/bin/echo first-arg second-arg \"$3\" fourth > /dev/null; kill -USR1 $$; read done; exit 3",
            "bash", evil, port.ToString(CultureInfo.InvariantCulture), LongArgument])
        {
            RedirectStandardInput = true,
        }) ?? throw new InvalidOperationException("bash");
        try
        {
            await backend.StartAsync(CancellationToken.None);
            Assert.True(await backend.AttachAsync(Target(bash.Id), CancellationToken.None), "faasmon-ptrace did not say it attached");
            await bash.StandardInput.WriteLineAsync("go");
            using var client = await accepted.WaitAsync(TimeSpan.FromSeconds(10));
            clientEnd = client.Client.RemoteEndPoint?.ToString();
            var received = new byte[9];
            await client.GetStream().ReadExactlyAsync(received).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            // fd 1 is looked up in /proc when the write's line is parsed: bash must still hold it then, however late the
            // line comes on a loaded machine (up to 10 ms in the tracer, then the pump)
            var sw = Stopwatch.StartNew();
            while (!events.Any(e => e.Syscall == "write" && e.Data is { Length: 9 }) && sw.Elapsed < TimeSpan.FromSeconds(10))
            {
                while (channel.Reader.TryRead(out var e))
                {
                    events.Add(e);
                }

                await Task.Delay(20);
            }

            await bash.StandardInput.WriteLineAsync("done");
            await bash.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(3, bash.ExitCode);
            await Task.Delay(300); // the tracer ends with its target and writes what waits
        }
        finally
        {
            await backend.DisposeAsync();
            channel.Writer.TryComplete();
            dir.Delete(recursive: true);
        }

        await foreach (var e in channel.Reader.ReadAllAsync())
        {
            events.Add(e);
        }

        output.WriteLine($"{events.Count} events, {sink.Counters}");
        foreach (var e in events.Where(e => e.Syscall is not ("close" or "read" or "mmap" or "openat") || e.Path == evil))
        {
            output.WriteLine($"  {e.Pid}/{e.Tid} {e.Syscall} {e.ReturnValue} fd {e.Fd?.Fd} {e.Fd?.Path} {e.Path} target {e.TargetPid} data {(e.Data is null ? "-" : Convert.ToHexString(e.Data))}");
        }

        Assert.Equal(0, sink.Counters.ParseErrors);
        Assert.All(events, e => Assert.Equal("ptrace", e.Backend));
        var open = Assert.Single(events, e => e.Syscall == "openat" && e.Path == evil);
        Assert.Contains("O_CREAT", open.Flags, StringComparison.Ordinal);
        Assert.DoesNotContain(events, e => e.Path == "passwd\\x0a" || e.Syscall == "unlink");
        var connect = Assert.Single(events, e => e.Syscall == "connect" && e.Fd?.RemoteEndpoint == $"127.0.0.1:{port}");
        Assert.Equal(clientEnd, connect.Fd!.LocalEndpoint); // the port the proxy would record as its client
        var write = Assert.Single(events, e => e.Syscall == "write" && e.Data is { Length: 9 });
        Assert.Equal(new byte[] { (byte)'T', 0, 0, 1, 0x2c, 0x81, 0xff, (byte)'z', (byte)'z' }, write.Data);
        Assert.True(write.Fd?.IsSocket, "the write's fd is not known as the socket");

        // the child: announced by a fork line naming it, then its own exec with its arguments, then its exit
        var exec = Assert.Single(events, e => e is { Syscall: "execve", Path: "/bin/echo" });
        Assert.NotEqual(bash.Id, exec.Pid);
        Assert.Equal(bash.Id, exec.Ppid);
        Assert.Equal(EchoArgv, exec.Argv);
        Assert.Contains(events, e => e is { Syscall: "fork", Kind: SyscallEventKind.Syscall, Duration: null } && e.Pid == bash.Id && e.TargetPid == exec.Pid);
        Assert.Contains(events, e => e.Kind == SyscallEventKind.Exit && e.Pid == exec.Pid);
        Assert.Contains(events, e => e is { Kind: SyscallEventKind.Signal, Syscall: "SIGUSR1" } && e.Pid == bash.Id);
        var exit = Assert.Single(events, e => e.Kind == SyscallEventKind.Exit && e.Pid == bash.Id);
        Assert.Equal(3, exit.ReturnValue);
    }

    /// <summary>Node writes its HTTP requests and responses with writev: the bytes are gathered from the iovecs (eBPF sends none).</summary>
    [Fact]
    public async Task What_a_writev_moves_to_a_socket_is_kept_across_its_iovecs()
    {
        Prerequisites.RequirePtraceTool(Tool);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        var (port, accepted) = Listen(listener);
        var (channel, sink, backend) = NewBackend();
        const string script = """
            const fs = require('fs'), net = require('net');
            process.stdin.once('data', () => {
              const s = net.connect(+process.argv[1], '127.0.0.1', () => {
                fs.writevSync(s._handle.fd, [Buffer.from('POST /function/x HTTP/1.1\r\n'), Buffer.from('X-Call-Id: c1\r\n\r\n'), Buffer.from([0, 255])]);
                process.stdin.once('data', () => process.exit(0));
              });
            });
            """;
        using var node = Process.Start(new ProcessStartInfo("node", ["-e", script, port.ToString(CultureInfo.InvariantCulture)]) { RedirectStandardInput = true })
            ?? throw new InvalidOperationException("node");
        try
        {
            await backend.StartAsync(CancellationToken.None);
            Assert.True(await backend.AttachAsync(Target(node.Id), CancellationToken.None), "faasmon-ptrace did not say it attached");
            await node.StandardInput.WriteLineAsync("go");
            using var client = await accepted.WaitAsync(TimeSpan.FromSeconds(10));
            var received = new byte[Expected.Length];
            await client.GetStream().ReadExactlyAsync(received).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            Assert.Equal(Expected, received);
            await Task.Delay(300);
            await node.StandardInput.WriteLineAsync("done");
            await node.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            await Task.Delay(300);
        }
        finally
        {
            await backend.DisposeAsync();
            channel.Writer.TryComplete();
            if (!node.HasExited)
            {
                node.Kill();
            }
        }

        var events = new List<SyscallEvent>();
        await foreach (var e in channel.Reader.ReadAllAsync())
        {
            events.Add(e);
        }

        var writev = Assert.Single(events, e => e.Syscall == "writev" && e.Fd?.RemoteEndpoint == $"127.0.0.1:{port}");
        Assert.Equal(Expected.Length, writev.ReturnValue);
        Assert.Equal(Expected, writev.Data);
    }

    private static readonly byte[] Expected = [.. "POST /function/x HTTP/1.1\r\nX-Call-Id: c1\r\n\r\n"u8, 0, 255];

    [Fact]
    public async Task Its_target_runs_on_untraced_when_the_tracer_is_killed()
    {
        Prerequisites.RequirePtraceTool(Tool);
        using var target = Process.Start(new ProcessStartInfo("bash", ["-c", "while read line; do echo \"got $line\"; done"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
        }) ?? throw new InvalidOperationException("bash");
        try
        {
            using var tracer = Process.Start(new ProcessStartInfo(Tool, [target.Id.ToString(CultureInfo.InvariantCulture)])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            }) ?? throw new InvalidOperationException("faasmon-ptrace");
            try
            {
                Assert.Equal($"W\t{target.Id}", await tracer.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)));
                await target.StandardInput.WriteLineAsync("one");
                Assert.Equal("got one", await target.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)));
                Assert.Equal(tracer.Id, TracerPid(target.Id));
            }
            finally
            {
                tracer.Kill(); // SIGKILL: nothing of ours runs on the way out; the kernel detaches the tracee
                await tracer.WaitForExitAsync();
            }

            await target.StandardInput.WriteLineAsync("two");
            Assert.Equal("got two", await target.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal(0, TracerPid(target.Id));
        }
        finally
        {
            target.Kill();
        }
    }

    /// <summary>
    /// A child of a traced process that the discovery finds too (it matches the pattern) is followed already by its
    /// parent's tracer: a second tracer could not attach (EPERM), so it is neither started nor counted as a failure.
    /// </summary>
    [Theory]
    [InlineData("ptrace")]
    [InlineData("strace")]
    public async Task A_child_its_parents_tracer_follows_already_is_not_attached_twice(string name)
    {
        var channel = Channel.CreateUnbounded<SyscallEvent>();
        var sink = new EventSink(channel.Writer, new TracerCounters());
        var logs = TestOutputLoggerProvider.Factory(output);
        await using ITraceBackend backend = name == "ptrace"
            ? new PtraceBackend(sink, new TracerOptions { Backend = name }, logs.CreateLogger<PtraceBackend>())
            : new StraceBackend(sink, new TracerOptions(), logs.CreateLogger<StraceBackend>());
        using var bash = Process.Start(new ProcessStartInfo("bash", ["-c", "read go; sleep 30 & echo $!; read done; kill $!"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
        }) ?? throw new InvalidOperationException("bash");
        try
        {
            await backend.StartAsync(CancellationToken.None);
            Assert.True(await backend.AttachAsync(Target(bash.Id), CancellationToken.None));
            await bash.StandardInput.WriteLineAsync("go");
            var child = int.Parse((await bash.StandardOutput.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)))!, CultureInfo.InvariantCulture);
            Assert.NotEqual(0, TracerPid(child)); // followed from its fork
            Assert.True(await backend.AttachAsync(Target(child), CancellationToken.None));
            Assert.Equal(1, sink.Counters.AttachedProcesses);
            Assert.Equal(0, sink.Counters.AttachFailures);
            await bash.StandardInput.WriteLineAsync("done");
            await bash.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        finally
        {
            if (!bash.HasExited)
            {
                bash.Kill(entireProcessTree: true);
            }
        }
    }

    [Theory]
    [InlineData("abc", 2, "usage")]
    [InlineData("99999999999", 2, "usage")]
    [InlineData("-s 0 1", 2, "usage")]
    [InlineData("1 2", 2, "usage")]
    [InlineData("4194000", 1, "No such process")]
    public async Task Bad_arguments_and_a_missing_target_are_refused_with_a_reason(string arguments, int exitCode, string says)
    {
        Prerequisites.RequirePtraceTool(Tool);
        using var tool = Process.Start(new ProcessStartInfo(Tool, arguments.Split(' ')) { RedirectStandardError = true, RedirectStandardOutput = true })
            ?? throw new InvalidOperationException("faasmon-ptrace");
        var stderr = await tool.StandardError.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await tool.WaitForExitAsync();
        Assert.Equal(exitCode, tool.ExitCode);
        Assert.Contains(says, stderr, StringComparison.Ordinal);
        Assert.Equal("", await tool.StandardOutput.ReadToEndAsync());
    }

    [Fact]
    public void A_missing_tracer_binary_is_named_with_what_builds_it()
    {
        var e = Assert.Throws<TracerUnavailableException>(() => Prerequisites.RequirePtraceTool("/nonexistent/faasmon-ptrace"));
        Assert.Contains("/nonexistent/faasmon-ptrace", e.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install gcc", e.Message, StringComparison.Ordinal);
    }

    /// <summary>A channel the backend's sink writes to, the sink, and a ptrace backend on it (not started).</summary>
    private (Channel<SyscallEvent> Channel, EventSink Sink, PtraceBackend Backend) NewBackend()
    {
        var channel = Channel.CreateUnbounded<SyscallEvent>();
        var sink = new EventSink(channel.Writer, new TracerCounters());
        return (channel, sink, new PtraceBackend(sink, new TracerOptions { Backend = "ptrace" }, TestOutputLoggerProvider.Factory(output).CreateLogger<PtraceBackend>()));
    }

    /// <summary>The listener started on a free loopback port, and its first connection to come.</summary>
    private static (int Port, Task<TcpClient> Accepted) Listen(TcpListener listener)
    {
        listener.Start();
        return (((IPEndPoint)listener.LocalEndpoint).Port, listener.AcceptTcpClientAsync());
    }

    private static FunctionProcess Target(int pid) =>
        new(pid, Environment.ProcessId, 0, "bash", FunctionIdentity.Unknown, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow, TimeSpan.Zero);

    private static int TracerPid(int pid) =>
        File.ReadLines($"/proc/{pid}/status").Where(l => l.StartsWith("TracerPid:", StringComparison.Ordinal))
            .Select(l => int.Parse(l.AsSpan(10).Trim(), CultureInfo.InvariantCulture)).Single();
}
