using System.Text;
using FaaSMon.Core;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FaaSMon.Tracer.Tests;

public sealed class StraceLineParserTests
{
    private static readonly string FixtureDir = Path.Combine(AppContext.BaseDirectory, "Fixtures");

    public static TheoryData<string> Recordings() => ["catalog-api-full.strace", "purchase-full.strace", "photos-receive.strace"];

    [Theory]
    [MemberData(nameof(Recordings))]
    public void Real_recordings_from_this_machine_parse_without_a_malformed_line(string file)
    {
        var parser = new StraceLineParser();
        var events = new List<SyscallEvent>();
        var lines = File.ReadAllLines(Path.Combine(FixtureDir, file));
        var malformed = new List<string>();
        foreach (var line in lines)
        {
            var kind = parser.Parse(line, out var evt);
            if (kind == StraceLineKind.Event)
            {
                events.Add(evt!);
            }
            else if (kind == StraceLineKind.Malformed)
            {
                malformed.Add(line);
            }
        }

        Assert.Empty(malformed);
        Assert.NotEmpty(events);
        // the HTTP request a function reads carries the call id the grapher attributes by
        Assert.Contains(events, e => e.Syscall is "read" && e.Fd?.IsSocket == true && e.Data is { } d
            && Encoding.ASCII.GetString(d).Contains("X-Call-Id:", StringComparison.Ordinal));
    }

    [Fact]
    public void Unfinished_and_resumed_halves_become_one_event_with_both_halves_arguments()
    {
        var parser = new StraceLineParser();
        Assert.Equal(StraceLineKind.Pending, parser.Parse("""22673 1795391279.843682 execve("/bin/sh", ["/bin/sh", "-c", "sha256sum \"x\"; ./evil.sh"], 0x1d797db0 /* 19 vars */ <unfinished ...>""", out _));
        Assert.Equal(StraceLineKind.Ignored, parser.Parse("21371 1795391279.843700 epoll_wait(3<anon_inode:[eventpoll]>,  <unfinished ...>", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse("22673 1795391279.844529 <... execve resumed>) = 0 <0.000252>", out var evt));
        Assert.Equal("execve", evt!.Syscall);
        Assert.Equal("/bin/sh", evt.Path);
        Assert.Equal(["/bin/sh", "-c", "sha256sum \"x\"; ./evil.sh"], evt.Argv);
        Assert.Equal(TimeSpan.FromTicks(2520), evt.Duration);
        Assert.Equal(new DateTimeOffset(2026, 11, 22, 23, 47, 59, TimeSpan.Zero).AddTicks(8436820), evt.Timestamp);
    }

    [Fact]
    public void Fds_decode_to_paths_and_socket_endpoints()
    {
        var parser = new StraceLineParser();
        parser.Parse("""21300 1795391279.418572 read(20<TCP:[127.0.0.1:40551->127.0.0.1:37176]>, "GET / HTTP/1.1\r\nX-Call-Id: a\r\n"..., 65536) = 312 <0.000010>""", out var read);
        Assert.Equal(new FileDescriptorInfo(20, "TCP", "127.0.0.1:40551", "127.0.0.1:37176"), read!.Fd);
        Assert.Equal("GET / HTTP/1.1\r\nX-Call-Id: a\r\n", Encoding.ASCII.GetString(read.Data!));

        parser.Parse("""1 1795391279.1 openat(AT_FDCWD</tmp>, "evil.sh", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 21</tmp/evil.sh> <0.000020>""", out var open);
        Assert.Equal("/tmp/evil.sh", open!.Path);
        Assert.Equal("O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC", open.Flags);
        Assert.Equal(new FileDescriptorInfo(21, "/tmp/evil.sh"), open.Fd);

        parser.Parse("""1 1795391279.1 openat(AT_FDCWD</>, "/nope", O_RDONLY) = -1 ENOENT (No such file or directory) <0.000008>""", out var failed);
        Assert.Equal("ENOENT", failed!.Errno);
        Assert.Equal(-1, failed.ReturnValue);

        parser.Parse("""1 1795391279.1 connect(21<TCP:[715390]>, {sa_family=AF_INET, sin_port=htons(5432), sin_addr=inet_addr("127.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress) <0.000038>""", out var connect);
        Assert.Equal("127.0.0.1:5432", connect!.Fd!.RemoteEndpoint);

        parser.Parse("1 1795391279.1 write(3</dev/null<char 1:3>>, \"x\", 1) = 1 <0.000008>", out var dev);
        Assert.Equal("/dev/null", dev!.Fd!.Path);
        Assert.Equal("x"u8.ToArray(), dev.Data);
    }

    [Fact]
    public void A_writev_keeps_every_iov_so_a_body_sent_beside_its_headers_is_seen_and_stops_at_one_strace_cut()
    {
        var parser = new StraceLineParser(maxDataBytes: 1024);
        parser.Parse("""7 1795391279.1 writev(23<TCP:[127.0.0.1:40000->127.0.0.1:8080]>, [{iov_base="POST /function/publish HTTP/1.1\r\nhost: gw\r\n\r\n", iov_len=44}, {iov_base="{\"user\":\"mallory-7\"}", iov_len=20}], 2) = 64 <0.000030>""", out var both);
        Assert.Equal("POST /function/publish HTTP/1.1\r\nhost: gw\r\n\r\n{\"user\":\"mallory-7\"}", Encoding.ASCII.GetString(both!.Data!));

        // a cut iov is not followed by the next one, which would make bytes that never went over the wire side by side
        parser.Parse("""7 1795391279.1 writev(23<TCP:[127.0.0.1:40000->127.0.0.1:8080]>, [{iov_base="POST /function/publish HTTP/1.1\r\n"..., iov_len=4000}, {iov_base="{}", iov_len=2}], 2) = 4002 <0.000030>""", out var cut);
        Assert.Equal("POST /function/publish HTTP/1.1\r\n", Encoding.ASCII.GetString(cut!.Data!));

        var small = new StraceLineParser(maxDataBytes: 8);
        small.Parse("""7 1795391279.1 sendmsg(23<UNIX:[1->2]>, {msg_name={sa_family=AF_UNIX, sun_path="/run/x"}, msg_namelen=9, msg_iov=[{iov_base="abcde", iov_len=5}, {iov_base="fghij", iov_len=5}], msg_iovlen=2, msg_controllen=0, msg_flags=0}, MSG_NOSIGNAL) = 10 <0.000010>""", out var bounded);
        Assert.Equal("abcdefgh", Encoding.ASCII.GetString(bounded!.Data!));
    }

    [Fact]
    public void A_write_to_a_file_keeps_only_its_magic_number_and_a_read_from_one_keeps_nothing()
    {
        var parser = new StraceLineParser(maxDataBytes: 256);
        parser.Parse("""7 1795391279.1 write(24</tmp/.receive-2-56b9.part>, "#!/bin/sh\n# staged by one invocation\n", 38) = 38 <0.000063>""", out var script);
        Assert.Equal("#!/bin/sh"u8[..SyscallEvent.FileMagicBytes].ToArray(), script!.Data);

        parser.Parse("""7 1795391279.1 pwrite64(24</tmp/x.png>, "\211PNG\r\n\32\n\0\0\0\rIHDR", 16, 0) = 16 <0.000010>""", out var png);
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G', (byte)'\r', (byte)'\n', 0x1a, (byte)'\n' }, png!.Data);

        parser.Parse("""7 1795391279.1 read(24</var/openfaas/secrets/token>, "s3cret-value", 4096) = 12 <0.000010>""", out var secret);
        Assert.Null(secret!.Data);

        parser.Parse("""7 1795391279.1 write(24</tmp/a>, "abc", 3) = -1 ENOSPC (No space left on device) <0.000010>""", out var failed);
        Assert.Null(failed!.Data); // nothing was written
    }

    [Fact]
    public void Signals_exits_kills_and_executable_mappings_are_events_other_mappings_are_not()
    {
        var parser = new StraceLineParser();
        Assert.Equal(StraceLineKind.Event, parser.Parse("19216 1795391117.089128 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=19219} ---", out var sig));
        Assert.Equal((SyscallEventKind.Signal, "SIGCHLD"), (sig!.Kind, sig.Syscall));
        parser.Parse("578   1795391117.1 +++ exited with 3 +++", out var exit); // short pids are padded
        Assert.Equal((SyscallEventKind.Exit, 3L), (exit!.Kind, exit.ReturnValue));
        parser.Parse("19216 1795391117.1 +++ killed by SIGKILL +++", out var killed);
        Assert.Equal("SIGKILL", killed!.Flags);
        parser.Parse("5 1795391117.1 kill(42, SIGTERM) = 0 <0.000008>", out var kill);
        Assert.Equal((42, "SIGTERM"), (kill!.TargetPid, kill.Flags));
        Assert.Equal(StraceLineKind.Event, parser.Parse("5 1795391117.1 mprotect(0x7f00, 4096, PROT_READ|PROT_EXEC) = 0 <0.000008>", out _));
        Assert.Equal(StraceLineKind.Ignored, parser.Parse("5 1795391117.1 mprotect(0x7f00, 4096, PROT_READ|PROT_WRITE) = 0 <0.000008>", out _));
        Assert.Equal(StraceLineKind.Event, parser.Parse("5 1795391117.1 exit_group(7) = ?", out var group));
        Assert.Equal(7, group!.ReturnValue);
    }

    /// <summary>
    /// The hot path allocates nothing for a line that is no event (an ignored call, an unfinished half) and, for an
    /// event like the last one, only the event itself: flags, paths and fd decodings come from the parser's caches.
    /// </summary>
    [Fact]
    public void Lines_that_are_no_event_allocate_nothing_and_repeated_events_share_their_strings()
    {
        string[] noEvents =
        [
            "21418 1795391277.439445 futex(0x1622ee70, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 0, NULL, FUTEX_BITSET_MATCH_ANY <unfinished ...>",
            "21414 1795391279.196653 mprotect(0x30c5234c0000, 262144, PROT_READ|PROT_WRITE) = 0 <0.000049>",
            "21419 1795391279.204493 openat(AT_FDCWD</srv>, \"/srv/handler.js\", O_RDONLY|O_CLOEXEC <unfinished ...>",
            "21420 1795391279.204500 epoll_pwait(9<anon_inode:[eventpoll]>, [], 1024, 0, NULL, 8) = 0 <0.000011>",
        ];
        const string Open = "21419 1795391279.204493 openat(AT_FDCWD</srv>, \"/srv/handler.js\", O_RDONLY|O_CLOEXEC) = 21</srv/handler.js> <0.000020>";
        var parser = new StraceLineParser();
        var lines = noEvents.Select(l => l.ToCharArray()).ToArray();
        var open = Open.ToCharArray();
        for (var warm = 0; warm < 3; warm++)
        {
            foreach (var line in lines)
            {
                parser.Parse(line, out _);
            }

            parser.Parse(open, out _);
        }

        var kinds = new StraceLineKind[lines.Length];
        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < lines.Length; i++)
        {
            kinds[i] = parser.Parse(lines[i], out _);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal([StraceLineKind.Ignored, StraceLineKind.Ignored, StraceLineKind.Pending, StraceLineKind.Ignored], kinds);
        Assert.Equal(0, allocated);
        Assert.Equal(StraceLineKind.Event, parser.Parse(open, out var first));
        Assert.Equal(StraceLineKind.Event, parser.Parse(open, out var second));
        Assert.Equal("/srv/handler.js", second!.Path);
        Assert.Same(first!.Path, second.Path);
        Assert.Same(first.Flags, second.Flags);
        Assert.Same(first.Fd, second.Fd);
        Assert.Equal(new FileDescriptorInfo(21, "/srv/handler.js"), second.Fd);
    }

    [Theory]
    [InlineData("0.000049", 490)]
    [InlineData("0.000035", 350)]
    [InlineData("12.5", 125_000_000)]
    [InlineData("3", 30_000_000)]
    [InlineData("0.123456789", 1_234_567)]
    public void Durations_are_exact_ticks(string text, long ticks)
    {
        Assert.True(StraceLineParser.TryDuration(text, out var parsed));
        Assert.Equal(ticks, parsed);
    }

    [Theory]
    [InlineData("")]
    [InlineData("garbage")]
    [InlineData("123")]
    [InlineData("123 notatime openat(")]
    [InlineData("123 1795391117.1 openat(AT_FDCWD</tmp>, \"/tmp/cut")]
    [InlineData("123 1795391117.1 openat(AT_FDCWD</tmp>, \"/tmp/x\", O_RDONLY) =")]
    [InlineData("123 1795391117.1 <... read resumed")]
    [InlineData("123 1795391117.1 +++ exited with")]
    [InlineData("\0\0\0\u00ff(((")]
    public void Garbage_and_truncated_lines_are_counted_and_skipped(string line)
    {
        var parser = new StraceLineParser();
        var kind = parser.Parse(line, out var evt);
        Assert.Null(evt);
        Assert.True(kind is StraceLineKind.Malformed or StraceLineKind.Ignored, $"{kind}");
        Assert.Equal(kind == StraceLineKind.Malformed ? 1 : 0, parser.Malformed);
        // and the parser goes on
        Assert.Equal(StraceLineKind.Event, parser.Parse("5 1795391117.1 unlink(\"/tmp/a\") = 0 <0.000008>", out _));
    }

    [Property(MaxTest = 500)]
    public bool Any_line_is_handled_without_throwing(string? line)
    {
        var parser = new StraceLineParser();
        var kind = parser.Parse(line ?? "", out var evt);
        return (kind == StraceLineKind.Event) == (evt is not null) && parser.Malformed == (kind == StraceLineKind.Malformed ? 1 : 0);
    }

    [Property(MaxTest = 300)]
    public Property Any_cut_of_a_real_line_is_never_fatal()
    {
        var lines = File.ReadAllLines(Path.Combine(FixtureDir, "photos-receive.strace"));
        var gen = from i in Gen.Choose(0, lines.Length - 1)
                  from cut in Gen.Choose(0, lines[i].Length)
                  select lines[i][..cut];
        return Prop.ForAll(gen.ToArbitrary(), cut =>
        {
            var parser = new StraceLineParser();
            parser.Parse(cut, out _);
            return parser.Malformed <= 1;
        });
    }

    /// <summary>Paths with any bytes, escaped the way strace escapes them, come back as they were.</summary>
    [Property(MaxTest = 500)]
    public Property Escaped_paths_round_trip()
    {
        var gen = Gen.ArrayOf(Gen.Choose(1, 255).Select(b => (byte)b)).Where(b => b.Length > 0);
        return Prop.ForAll(gen.ToArbitrary(), bytes =>
        {
            var escaped = new StringBuilder();
            foreach (var b in bytes)
            {
                escaped.Append(b switch
                {
                    (byte)'"' => "\\\"",
                    (byte)'\\' => "\\\\",
                    (byte)'\n' => "\\n",
                    (byte)'\t' => "\\t",
                    < 0x20 or >= 0x7f => $"\\{Convert.ToString(b, 8).PadLeft(3, '0')}", // strace pads when a digit follows; always padding is as valid
                    _ => ((char)b).ToString(),
                });
            }

            var parser = new StraceLineParser();
            var kind = parser.Parse($"7 1795391117.000001 unlink(\"/tmp/{escaped}\") = -1 ENOENT (No such file or directory) <0.000008>", out var evt);
            return kind == StraceLineKind.Event && evt!.Path == "/tmp/" + Encoding.UTF8.GetString(bytes) && evt.Errno == "ENOENT";
        });
    }
}
