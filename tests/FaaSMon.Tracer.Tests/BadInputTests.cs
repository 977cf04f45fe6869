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

    [Fact]
    public async Task A_target_that_exits_before_the_attach_is_a_counted_failure_not_a_crash()
    {
        using var gone = Process.Start(new ProcessStartInfo("true")) ?? throw new InvalidOperationException();
        await gone.WaitForExitAsync();
        var channel = System.Threading.Channels.Channel.CreateUnbounded<SyscallEvent>();
        var sink = new EventSink(channel.Writer, new TracerCounters());
        await using var backend = new StraceBackend(sink, new TracerOptions(), NullLogger<StraceBackend>.Instance);
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
    public void Garbage_from_bpftrace_is_counted_and_skipped(string line)
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

    [Fact]
    public void An_entry_and_its_exit_make_one_event_with_the_socket_bytes()
    {
        var parser = new EbpfLineParser(0, lookupFd: (_, fd) => new FileDescriptorInfo(fd, "socket:[1]"));
        Assert.Equal(StraceLineKind.Pending, parser.Parse("{\"type\": \"printf\", \"data\": \"E\\t1000\\t7\\t7\\t1\\ttracepoint:syscalls:sys_enter_read\\t20\\t65536\\t0\\t\\t\\n\"}", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse("{\"type\": \"printf\", \"data\": \"D\\t3000\\t7\\t7\\ttracepoint:syscalls:sys_exit_read\\t5\\tGET /\\\\x0d\\n\"}", out var evt));
        Assert.Equal("read", evt!.Syscall);
        Assert.Equal("GET /\r"u8.ToArray(), evt.Data);
        Assert.Equal(TimeSpan.FromTicks(20), evt.Duration ?? TimeSpan.FromTicks(20));
        Assert.Equal(5, evt.ReturnValue);
    }

    /// <summary>bpftrace keeps at most BPFTRACE_STRLEN (128) bytes per buf(): the program prints bytes 128..255 on a C line first.</summary>
    [Fact]
    public void A_second_chunk_of_socket_bytes_joins_its_read_and_a_stale_one_is_dropped()
    {
        var parser = new EbpfLineParser(0, maxDataBytes: 256, lookupFd: (_, fd) => new FileDescriptorInfo(fd, "socket:[1]"));
        var head = "GET /categories HTTP/1.1\\\\x0d\\\\x0aHost: x\\\\x0d\\\\x0a" + new string('a', 98);
        Assert.Equal(StraceLineKind.Pending, parser.Parse("{\"type\": \"printf\", \"data\": \"E\\t1000\\t7\\t7\\t1\\ttracepoint:syscalls:sys_enter_read\\t20\\t65536\\t0\\t\\t\\n\"}", out _));
        Assert.Equal(StraceLineKind.Pending, parser.Parse("{\"type\": \"printf\", \"data\": \"C\\t3000\\t7\\tX-Call-Id: abc\\\\x0d\\\\x0a\\n\"}", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse($"{{\"type\": \"printf\", \"data\": \"D\\t3000\\t7\\t7\\ttracepoint:syscalls:sys_exit_read\\t144\\t{head}\\n\"}}", out var evt));
        var text = System.Text.Encoding.ASCII.GetString(evt!.Data!);
        Assert.StartsWith("GET /categories HTTP/1.1\r\nHost: x\r\n", text, StringComparison.Ordinal);
        Assert.EndsWith("aX-Call-Id: abc\r\n", text, StringComparison.Ordinal);

        // a chunk whose own line was lost must not be glued to the next read of that thread
        parser.Parse("{\"type\": \"printf\", \"data\": \"C\\t4000\\t7\\tstale\\n\"}", out _);
        parser.Parse("{\"type\": \"printf\", \"data\": \"E\\t5000\\t7\\t7\\t1\\ttracepoint:syscalls:sys_enter_read\\t20\\t65536\\t0\\t\\t\\n\"}", out _);
        parser.Parse("{\"type\": \"printf\", \"data\": \"D\\t6000\\t7\\t7\\ttracepoint:syscalls:sys_exit_read\\t3\\tGET\\n\"}", out var next);
        Assert.Equal("GET"u8.ToArray(), next!.Data);
    }
}
