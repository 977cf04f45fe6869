using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using FaaSMon.Core;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace FaaSMon.Tracer.Tests;

/// <summary>
/// The libbpf loader's framing (ebpf/faasmon-bpf.c): plain tab-separated lines whose string field escapes every control
/// byte, backslash and byte ≥ 0x80 as \xNN, parsed by the same <see cref="EbpfLineParser"/> as bpftrace's JSON; then
/// the real loader against a real process.
/// </summary>
public sealed class EbpfLoaderTests(ITestOutputHelper output)
{
    private static EbpfLineParser SocketParser() => new(0, maxDataBytes: 256, lookupFd: (_, fd) => new FileDescriptorInfo(fd, "socket:[1]"));

    [Fact]
    public void A_buffer_comes_whole_on_its_exit_line_with_its_zero_and_high_bytes()
    {
        var parser = SocketParser();
        // a PostgreSQL message: type byte, big-endian length (zeros), then 300 bytes of which the first 256 are kept
        var bytes = new byte[] { (byte)'T', 0, 0, 1, 0x2c, 0x81, 0xff, (byte)'\\' }.Concat(Enumerable.Repeat((byte)'a', 292)).ToArray();
        var line = $"X\t3000\t7\t7\t1\trecvfrom\t300\t10\t22\t0\t0\t{Escape(bytes.AsSpan(0, 256))}";
        Assert.Equal(StraceLineKind.Event, parser.Parse(line, out var evt));
        Assert.Equal("recvfrom", evt!.Syscall);
        Assert.Equal(bytes[..256], evt.Data);
        Assert.Equal(300, evt.ReturnValue);
        Assert.Equal("ebpf", evt.Backend);
        Assert.Equal(0, parser.Malformed);
    }

    [Fact]
    public void A_write_to_a_file_keeps_only_its_magic_number_and_a_read_from_one_keeps_nothing()
    {
        var parser = new EbpfLineParser(0, maxDataBytes: 256, lookupFd: (_, fd) => new FileDescriptorInfo(fd, "/tmp/.receive-1.part"));
        var script = "#!/bin/sh\necho staged\n"u8.ToArray();
        Assert.Equal(StraceLineKind.Event, parser.Parse($"X\t3000\t7\t7\t1\twrite\t{script.Length}\t10\t24\t0\t0\t{Escape(script)}", out var write));
        Assert.Equal(script[..SyscallEvent.FileMagicBytes], write!.Data);
        Assert.Equal("/tmp/.receive-1.part", write.Fd!.Path);

        Assert.Equal(StraceLineKind.Event, parser.Parse($"X\t3001\t7\t7\t1\tread\t{script.Length}\t10\t24\t0\t0\t{Escape(script)}", out var read));
        Assert.Null(read!.Data);
        Assert.Equal(0, parser.Malformed);
    }

    [Fact]
    public void Escaped_tabs_and_newlines_in_a_path_stay_in_the_path_and_forge_nothing()
    {
        var parser = new EbpfLineParser(0);
        var evil = "/tmp/a\tb\nX\t1\t1\t1\t1\tunlink\t0\t1\t0\t0\t0\t/etc/passwd\n\u00e9";
        var line = $"X\t1000\t7\t7\t1\topenat\t3\t10\t0\t577\t0\t{Escape(Encoding.UTF8.GetBytes(evil))}";
        Assert.DoesNotContain('\t', line[(line.LastIndexOf('\t') + 1)..]);
        Assert.DoesNotContain('\n', line);
        Assert.Equal(StraceLineKind.Event, parser.Parse(line, out var evt));
        Assert.Equal("openat", evt!.Syscall);
        Assert.Equal(evil, evt.Path);
        Assert.Equal("O_WRONLY|O_CREAT|O_TRUNC", evt.Flags);

        // a rename's new path on its N line, escaped the same way
        Assert.Equal(StraceLineKind.Pending, parser.Parse($"N\t2000\t7\t{Escape(Encoding.UTF8.GetBytes("/tmp/\u00e9\tvil.sh"))}", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse(@"X	2000	7	7	1	renameat2	0	10	0	0	0	/tmp/dl\x5cx41", out var rename));
        Assert.Equal(@"/tmp/dl\x41", rename!.Path); // an escaped backslash is a backslash, not the start of an escape
        Assert.Equal("/tmp/\u00e9\tvil.sh", rename.Path2);
        Assert.Equal(0, parser.Malformed);
    }

    [Fact]
    public void Both_framings_go_through_one_parser()
    {
        var parser = new EbpfLineParser(0);
        Assert.Equal(StraceLineKind.Pending, parser.Parse(@"E	1000	9	9	7	/bin/sh", out _));
        parser.Parse("A\t9\t-c", out _);
        parser.Parse(@"A	9	curl x\x09| sh", out _);
        Assert.Equal(StraceLineKind.Event, parser.Parse("X\t1000\t9\t9\t7\texecve\t0\t500\t0\t0\t0\t", out var exec));
        Assert.Equal(["/bin/sh", "-c", "curl x\t| sh"], exec!.Argv);

        var json = "{\"type\": \"printf\", \"data\": \"X\\t2000\\t9\\t9\\t7\\ttracepoint:syscalls:sys_exit_unlink\\t0\\t10\\t0\\t0\\t0\\t/tmp/x\\n\"}";
        Assert.Equal(StraceLineKind.Event, parser.Parse(json, out var unlink));
        Assert.Equal("/tmp/x", unlink!.Path);
    }

    [Fact]
    public void A_connect_sockaddr_is_decoded_from_its_escaped_bytes()
    {
        var parser = new EbpfLineParser(0);
        byte[] sockaddr = [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.Equal(StraceLineKind.Event, parser.Parse($"X\t1000\t7\t7\t1\tconnect\t0\t10\t5\t0\t0\t{Escape(sockaddr)}", out var evt));
        Assert.Equal("127.0.0.1:8080", evt!.Fd!.RemoteEndpoint);
    }

    /// <summary>faasmon-ptrace's P line names a socket's own and peer endpoints just before its connect's or accept's X line.</summary>
    [Fact]
    public void A_sockets_own_endpoint_comes_on_the_line_before_its_connect_or_accept_and_only_for_that_call()
    {
        var parser = new EbpfLineParser(0, backend: "ptrace");
        byte[] remote = [2, 0, 0x1f, 0x90, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        byte[] local = [2, 0, 0xd9, 0x03, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        Assert.Equal(StraceLineKind.Pending, parser.Parse($"P\t1000\t7\t{Escape(local)}\t", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse($"X\t1000\t7\t7\t1\tconnect\t-115\t10\t5\t0\t0\t{Escape(remote)}", out var connect));
        Assert.Equal(("127.0.0.1:55555", "127.0.0.1:8080"), (connect!.Fd!.LocalEndpoint, connect.Fd.RemoteEndpoint));
        Assert.Equal("ptrace", connect.Backend);

        // an accepted socket: both ends, and the fd is known as it for the reads that follow
        Assert.Equal(StraceLineKind.Pending, parser.Parse($"P\t2000\t7\t{Escape(remote)}\t{Escape(local)}", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse("X\t2000\t7\t7\t1\taccept4\t9\t10\t3\t0\t0\t", out var accept));
        Assert.Equal(new FileDescriptorInfo(9, "TCP", "127.0.0.1:8080", "127.0.0.1:55555"), accept!.Fd);
        Assert.Equal(StraceLineKind.Event, parser.Parse("X\t2100\t7\t7\t1\tread\t3\t10\t9\t0\t0\tGET", out var read));
        Assert.Equal("127.0.0.1:55555", read!.Fd!.RemoteEndpoint);
        Assert.Equal("GET"u8.ToArray(), read.Data);

        // a P line whose call line was lost is not given to the next call
        Assert.Equal(StraceLineKind.Pending, parser.Parse($"P\t3000\t7\t{Escape(local)}\t", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse($"X\t3500\t7\t7\t1\tconnect\t0\t10\t6\t0\t0\t{Escape(remote)}", out var other));
        Assert.Null(other!.Fd!.LocalEndpoint);

        // a unix client's own end is unnamed: no endpoint, not an empty one
        Assert.Equal(StraceLineKind.Event, parser.Parse("X\t4000\t7\t7\t1\tsocket\t8\t10\t1\t1\t0\t", out _));
        Assert.Equal(StraceLineKind.Pending, parser.Parse($"P\t4100\t7\t{Escape([1, 0])}\t{Escape([1, 0, (byte)'/', (byte)'s'])}", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse($"X\t4100\t7\t7\t1\tconnect\t0\t10\t8\t0\t0\t{Escape([1, 0, (byte)'/', (byte)'s'])}", out var unix));
        Assert.Equal(("/s", (string?)null), (unix!.Fd!.RemoteEndpoint, unix.Fd.LocalEndpoint));
    }

    [Fact]
    public void Lost_records_reported_by_the_loader_add_up()
    {
        var parser = new EbpfLineParser(0);
        Assert.Equal(StraceLineKind.Ignored, parser.Parse("L\t17", out _));
        Assert.Equal(StraceLineKind.Ignored, parser.Parse("L\t3", out _));
        Assert.Equal(20, parser.Lost);
        Assert.Equal(StraceLineKind.Malformed, parser.Parse("L\tmany", out _));
        Assert.Equal(20, parser.Lost);
    }

    [Fact]
    public void Escaping_then_unescaping_gives_every_byte_back()
    {
        var all = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();
        var escaped = Escape(all);
        Assert.All(escaped, c => Assert.InRange(c, ' ', '~'));
        Assert.Equal(all, EbpfLineParser.Unescape(escaped));
    }

    /// <summary>
    /// The real loader, fed through <see cref="EbpfBackend"/>: a bash that opens a file named with a tab and a newline and
    /// writes binary bytes with zeros to a loopback socket. Its commands on stdin are validated: garbage is refused, and
    /// a real watch still works after it.
    /// </summary>
    [Fact]
    public async Task The_loader_keeps_binary_socket_bytes_and_forges_nothing_from_a_file_name()
    {
        Prerequisites.RequireLibbpfLoader(EbpfBackend.LoaderPath, EbpfBackend.ObjectPath);
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        var accepted = listener.AcceptTcpClientAsync();
        var dir = Directory.CreateTempSubdirectory("faasmon-loader-");
        var evil = Path.Combine(dir.FullName, "a\tb\nX\t1\t1\t1\t1\tunlink\t0\t1\t0\t0\t0\tpasswd\\x0a");
        var channel = Channel.CreateUnbounded<SyscallEvent>();
        var sink = new EventSink(channel.Writer, new TracerCounters());
        var backend = new EbpfBackend(sink, new TracerOptions { Backend = "ebpf", EbpfLoader = "libbpf" }, TestOutputLoggerProvider.Factory(output).CreateLogger<EbpfBackend>());
        // fd 1 stays the socket (exec 1>&3): dup2 is not traced, so the parser looks fd 1 up in /proc when it reads the write
        using var bash = Process.Start(new ProcessStartInfo("bash", ["-c",
            "read go; : > \"$1\"; exec 3<>/dev/tcp/127.0.0.1/$2; exec 1>&3; printf 'T\\000\\000\\001\\054\\201\\377zz'; read done", "bash", evil, port.ToString(System.Globalization.CultureInfo.InvariantCulture)])
        {
            RedirectStandardInput = true,
        }) ?? throw new InvalidOperationException("bash");
        try
        {
            await backend.StartAsync(CancellationToken.None);
            // what a confused or hostile writer could send the loader: refused, and it keeps serving
            await backend.SendRawAsync("watch abc\nwatch 99999999999\nwatch 0\nwatch -1\nunwatch \n" + new string('9', 600) + "\n");
            var process = new FunctionProcess(bash.Id, Environment.ProcessId, 0, "bash", FunctionIdentity.Unknown, DateTimeOffset.UtcNow, DateTimeOffset.UtcNow, TimeSpan.Zero);
            Assert.True(await backend.AttachAsync(process, CancellationToken.None), "the loader did not acknowledge the watch");
            await bash.StandardInput.WriteLineAsync("go");
            using var client = await accepted.WaitAsync(TimeSpan.FromSeconds(10));
            var received = new byte[9];
            await client.GetStream().ReadExactlyAsync(received).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
            await Task.Delay(300); // the loader reads its ring every 10 ms
            await bash.StandardInput.WriteLineAsync("done");
            await bash.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            await Task.Delay(300);
        }
        finally
        {
            await backend.DisposeAsync();
            channel.Writer.TryComplete();
            dir.Delete(recursive: true);
        }

        var events = new List<SyscallEvent>();
        await foreach (var e in channel.Reader.ReadAllAsync())
        {
            events.Add(e);
        }

        output.WriteLine($"{events.Count} events, {sink.Counters}");
        foreach (var e in events)
        {
            output.WriteLine($"  {e.Syscall} {e.ReturnValue} fd {e.Fd?.Fd} {e.Fd?.Path} {e.Path} data {(e.Data is null ? "-" : Convert.ToHexString(e.Data))}");
        }

        Assert.Equal(0, sink.Counters.ParseErrors);
        Assert.Equal(0, sink.Counters.Drops);
        var open = Assert.Single(events, e => e.Syscall == "openat" && e.Path == evil);
        Assert.Contains("O_CREAT", open.Flags, StringComparison.Ordinal);
        Assert.DoesNotContain(events, e => e.Path == "passwd\\x0a" || e.Syscall == "unlink");
        Assert.Contains(events, e => e.Syscall == "connect" && e.Fd?.RemoteEndpoint == $"127.0.0.1:{port}");
        var write = Assert.Single(events, e => e.Syscall == "write" && e.Data is { Length: 9 });
        Assert.Equal(new byte[] { (byte)'T', 0, 0, 1, 0x2c, 0x81, 0xff, (byte)'z', (byte)'z' }, write.Data);
        Assert.Contains(events, e => e.Kind == SyscallEventKind.Exit && e.Pid == bash.Id);
    }

    /// <summary>The loader's and faasmon-ptrace's escaping (fm_escape in ebpf/faasmon-lines.h).</summary>
    private static string Escape(ReadOnlySpan<byte> bytes)
    {
        var s = new StringBuilder(bytes.Length * 4);
        foreach (var b in bytes)
        {
            if (b < 0x20 || b >= 0x7f || b == '\\')
            {
                s.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\x{b:x2}");
            }
            else
            {
                s.Append((char)b);
            }
        }

        return s.ToString();
    }
}
