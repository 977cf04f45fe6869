using System.Diagnostics;
using FaaSMon.Core;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Tracer.Tests;

public sealed class BadInputTests
{
    [Theory]
    [InlineData("strace")]
    [InlineData("bpftrace")]
    public void A_missing_tool_is_named_with_its_debian_package(string tool)
    {
        var e = Assert.Throws<TracerUnavailableException>(() => Prerequisites.FindExecutable(tool + "-not-installed", tool));
        Assert.Contains($"apt-get install {tool}", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void This_machine_has_what_both_backends_need()
    {
        // the tests below and the LocalFaaS tests rely on it: say so plainly instead of failing obscurely
        Prerequisites.RequireStrace();
        Prerequisites.RequireBpftrace();
        Prerequisites.RequireLibbpfLoader(EbpfBackend.LoaderPath, EbpfBackend.ObjectPath);
        Prerequisites.RequirePtraceTool(PtraceBackend.ToolPath);
    }

    [Fact]
    public async Task Without_ptrace_permission_strace_refuses_with_a_message_naming_the_capability()
    {
        // a real unprivileged strace: what the backend reads on stderr when attaching is not permitted
        using var target = Process.Start(new ProcessStartInfo("sleep", "30")) ?? throw new InvalidOperationException();
        try
        {
            var psi = new ProcessStartInfo("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "strace", "-p", target.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])
            {
                RedirectStandardError = true,
            };
            using var strace = Process.Start(psi)!;
            var stderr = await strace.StandardError.ReadToEndAsync();
            await strace.WaitForExitAsync();
            Assert.Contains("Operation not permitted", stderr, StringComparison.Ordinal);
        }
        finally
        {
            target.Kill();
        }
    }

    [Theory]
    [InlineData("strace")]
    [InlineData("ptrace")]
    public async Task A_target_that_exits_before_the_attach_is_a_counted_failure_not_a_crash(string name)
    {
        using var gone = Process.Start(new ProcessStartInfo("true")) ?? throw new InvalidOperationException();
        await gone.WaitForExitAsync();
        var channel = System.Threading.Channels.Channel.CreateUnbounded<SyscallEvent>();
        var sink = new EventSink(channel.Writer, new TracerCounters());
        await using ITraceBackend backend = name == "ptrace"
            ? new PtraceBackend(sink, new TracerOptions { Backend = name }, NullLogger<PtraceBackend>.Instance)
            : new StraceBackend(sink, new TracerOptions(), NullLogger<StraceBackend>.Instance);
        await backend.StartAsync(CancellationToken.None);
        var process = new FunctionProcess(gone.Id, 1, 0, "true", FunctionIdentity.Unknown, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow, TimeSpan.Zero);
        Assert.False(await backend.AttachAsync(process, CancellationToken.None));
        Assert.Equal(1, sink.Counters.AttachFailures);
        Assert.Equal(0, sink.Counters.AttachedProcesses);
    }

    [Theory]
    [InlineData("not json")]
    [InlineData("{\"type\": \"printf\", \"data\": \"E\\tnot-a-number\\t1\\t1\\t1\\topenat\\t1\\t2\\t3\\tx\\t\\n\"}")]
    [InlineData("{\"type\": \"printf\", \"data\": \"Z\\t1\\n\"}")]
    [InlineData("{\"data\": 1}")]
    // the libbpf loader's framing: plain tab-separated lines
    [InlineData("")]
    [InlineData("Z\t1")]
    [InlineData("X\t1\t2")]
    [InlineData("X\tnan\t7\t7\t1\tread\t5\t10\t3\t0\t0\tabc")]
    public void Garbage_from_bpftrace_or_the_loader_is_counted_and_skipped(string line)
    {
        var parser = new EbpfLineParser(0);
        Assert.Equal(StraceLineKind.Malformed, parser.Parse(line, out var evt));
        Assert.Null(evt);
        Assert.Equal(1, parser.Malformed);
    }

    [Fact]
    public void Lost_events_reported_by_bpftrace_become_drops()
    {
        var parser = new EbpfLineParser(0);
        parser.Parse("{\"type\": \"lost_events\", \"data\": {\"events\": 17}}", out _);
        Assert.Equal(17, parser.Lost);
    }

    /// <summary>A line as bpftrace -f json prints it: the printf text JSON-escaped.</summary>
    private static string Printf(string data) =>
        "{\"type\": \"printf\", \"data\": " + System.Text.Json.JsonSerializer.Serialize(data + "\n") + "}";

    [Fact]
    public void One_exit_line_makes_one_event_with_its_arguments_and_socket_bytes()
    {
        var parser = new EbpfLineParser(0, lookupFd: (_, fd) => new FileDescriptorInfo(fd, "socket:[1]"));
        Assert.Equal(StraceLineKind.Event, parser.Parse(Printf("X\t1000\t7\t7\t1\ttracepoint:syscalls:sys_exit_read\t5\t2000\t20\t0\t0\tGET /"), out var evt));
        Assert.Equal("read", evt!.Syscall);
        Assert.Equal("GET /"u8.ToArray(), evt.Data);
        Assert.Equal(TimeSpan.FromTicks(20), evt.Duration);
        Assert.Equal(new DateTimeOffset(10, TimeSpan.Zero), evt.Timestamp); // the entry's time, as strace's
        Assert.Equal(5, evt.ReturnValue);
        Assert.Equal(20, evt.Fd!.Fd);
        Assert.Equal(1, evt.Ppid);
    }

    /// <summary>One str() keeps at most BPFTRACE_STRLEN (128) bytes: the program prints bytes 128..255 on a C line first.</summary>
    [Fact]
    public void A_second_chunk_of_socket_bytes_joins_its_read_and_a_stale_one_is_dropped()
    {
        var parser = new EbpfLineParser(0, maxDataBytes: 256, lookupFd: (_, fd) => new FileDescriptorInfo(fd, "socket:[1]"));
        var head = "GET /categories HTTP/1.1\r\nHost: x\r\n" + new string('a', 128 - 35);
        Assert.Equal(StraceLineKind.Pending, parser.Parse(Printf("C\t3000\t7\tX-Call-Id: abc\r\n"), out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse(Printf($"X\t3000\t7\t7\t1\ttracepoint:syscalls:sys_exit_read\t144\t10\t20\t0\t0\t{head}"), out var evt));
        var text = System.Text.Encoding.ASCII.GetString(evt!.Data!);
        Assert.StartsWith("GET /categories HTTP/1.1\r\nHost: x\r\n", text, StringComparison.Ordinal);
        Assert.EndsWith("aX-Call-Id: abc\r\n", text, StringComparison.Ordinal);

        // a chunk whose own line was lost must not be glued to the next read of that thread
        parser.Parse(Printf("C\t4000\t7\tstale"), out _);
        parser.Parse(Printf($"X\t5000\t7\t7\t1\ttracepoint:syscalls:sys_exit_read\t300\t10\t20\t0\t0\t{head}"), out var next);
        Assert.Equal(128, next!.Data!.Length);
    }

    /// <summary>str() ends at a NUL: a binary buffer is kept up to its first zero byte, and bytes 128.. do not follow a cut first chunk.</summary>
    [Fact]
    public void A_binary_buffer_keeps_its_bytes_before_the_first_zero_and_its_high_bytes()
    {
        var parser = new EbpfLineParser(0, maxDataBytes: 256, lookupFd: (_, fd) => new FileDescriptorInfo(fd, "socket:[1]"));
        // bpftrace prints a byte >= 0x80 of a %s as \uffffffXX (a sign-extended char): JSON reads U+FFFF then "ffXX"
        parser.Parse(Printf("C\t3000\t7\tafter"), out _);
        var line = "{\"type\": \"printf\", \"data\": \"X\\t3000\\t7\\t7\\t1\\ttracepoint:syscalls:sys_exit_recvfrom\\t375\\t10\\t22\\t0\\t0\\tT\\u0001\\uffffff81\\uffffffff\\n\"}";
        Assert.Equal(StraceLineKind.Event, parser.Parse(line, out var evt));
        Assert.Equal(new byte[] { (byte)'T', 1, 0x81, 0xff }, evt!.Data);
    }

    /// <summary>-f json keeps every printf on one JSON line: no byte of a file name (tab, newline) can end a record or forge one.</summary>
    [Fact]
    public void A_file_name_with_tabs_and_newlines_stays_one_path_and_forges_nothing()
    {
        var parser = new EbpfLineParser(0);
        var evil = "/tmp/a\tb\nX\t1\t1\t1\t1\ttracepoint:syscalls:sys_exit_unlink\t0\t1\t0\t0\t0\t/etc/passwd\n";
        Assert.Equal(StraceLineKind.Event, parser.Parse(Printf($"X\t1000\t7\t7\t1\ttracepoint:syscalls:sys_exit_openat\t3\t10\t0\t577\t0\t{evil}"), out var evt));
        Assert.Equal("openat", evt!.Syscall);
        Assert.Equal(evil, evt.Path);
        Assert.Equal("O_WRONLY|O_CREAT|O_TRUNC", evt.Flags);

        // a rename's new path comes on its own line, so both paths may hold tabs; non-ASCII names come back as UTF-8
        Assert.Equal(StraceLineKind.Pending, parser.Parse("{\"type\": \"printf\", \"data\": \"N\\t2000\\t7\\t/tmp/\\uffffffc3\\uffffffa9\\tvil.sh\\n\"}", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse(Printf("X\t2000\t7\t7\t1\ttracepoint:syscalls:sys_exit_rename\t0\t10\t0\t0\t0\t/tmp/dl\t1"), out var rename));
        Assert.Equal("/tmp/dl\t1", rename!.Path);
        Assert.Equal("/tmp/\u00e9\tvil.sh", rename.Path2);
        Assert.Equal(0, parser.Malformed);
    }

    [Fact]
    public void An_execve_entry_with_its_arguments_completes_at_its_exit()
    {
        var parser = new EbpfLineParser(0);
        Assert.Equal(StraceLineKind.Pending, parser.Parse(Printf("E\t1000\t9\t9\t7\t/bin/sh"), out _));
        parser.Parse(Printf("A\t9\t-c"), out _);
        parser.Parse(Printf("A\t9\tcurl x | sh"), out _);
        Assert.Equal(StraceLineKind.Event, parser.Parse(Printf("X\t1000\t9\t9\t7\texecve\t0\t500\t0\t0\t0\t"), out var evt));
        Assert.Equal("/bin/sh", evt!.Path);
        Assert.Equal(["/bin/sh", "-c", "curl x | sh"], evt.Argv);

        // the exit of an execve entered before the process was watched is no event
        Assert.Equal(StraceLineKind.Ignored, parser.Parse(Printf("X\t3000\t9\t9\t7\texecve\t0\t500\t0\t0\t0\t"), out _));
    }
}
