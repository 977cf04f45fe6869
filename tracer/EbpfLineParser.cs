using System.Globalization;
using System.Text;
using System.Text.Json;
using FaaSMon.Core;

namespace FaaSMon.Tracer;

/// <summary>
/// Turns the eBPF backend's output lines (see <c>ebpf/faasmon.bt</c> for the record types) into <see cref="SyscallEvent"/>s:
/// one exit line (X) per system call carries its arguments; only execve's entry (E, A) waits for its exit. Kernel
/// monotonic nanoseconds become wall time through an offset taken at start. Fds are decoded from what the
/// process opened (openat/socket/accept results) and, for older ones, from <c>/proc/PID/fd</c>.
/// Two framings of the same records, told apart by each line's first byte: bpftrace's <c>-f json</c> (a JSON object
/// per printf, strings as bpftrace's %s prints them, buffers in 128-byte chunks) and the libbpf loader's plain lines
/// (<c>ebpf/faasmon-bpf.c</c>: the string field with every control byte, backslash and byte ≥ 0x80 as <c>\xNN</c>,
/// a buffer's bytes all on its X line, zeros kept; L lines count lost records). The ptrace backend's tracer
/// (<c>ptrace/faasmon-ptrace.c</c>) prints the loader's lines too; its events are named by <paramref name="backend"/>.
/// Not thread-safe; one reader drives it.
/// </summary>
internal sealed class EbpfLineParser(long monotonicToWallTicks, int maxDataBytes = 256, Func<int, int, FileDescriptorInfo?>? lookupFd = null, string backend = "ebpf")
{
    private const int ChunkBytes = 128; // BPFTRACE_STRLEN: what one str() keeps

    private readonly Dictionary<int, Exec> _execs = [];
    private readonly Dictionary<(int Pid, int Fd), FileDescriptorInfo> _fds = [];

    // what the program prints on a line of its own just before a call's X line (same tid and ns): a buffer's bytes
    // 128..255 (C), a rename's new path (N)
    private readonly Dictionary<int, (long Ns, string Text)> _continuations = [];
    private readonly Dictionary<int, (long Ns, string Text)> _newPaths = [];

    // faasmon-ptrace's P line before a connect's or an accept's X line: the socket's own and peer sockaddr, escaped
    private readonly Dictionary<int, (long Ns, string Text)> _sockNames = [];

    private sealed record Exec(long Ns, string Path)
    {
        public List<string> Argv { get; } = [Path];
    }

    private sealed record Call(string Name, long Ns, int Pid, int Ppid, long A0, long A1, long A2, string S0, string S1);

    // the line being parsed is the libbpf loader's (escaped bytes), not bpftrace's JSON
    private bool _escaped;

    public long Malformed { get; private set; }

    /// <summary>Events the kernel could not hand over (bpftrace "lost_events", the loader's L lines).</summary>
    public long Lost { get; private set; }

    /// <summary>Pids bpftrace acknowledged adding to its in-kernel filter.</summary>
    public event Action<int>? Watching;

    /// <summary>The program's BEGIN ran: every probe is attached.</summary>
    public event Action? Ready;

    /// <summary>Wall-clock offset for bpftrace's <c>nsecs</c> (CLOCK_MONOTONIC, as <see cref="System.Diagnostics.Stopwatch"/> on Linux).</summary>
    public static long CurrentMonotonicOffsetTicks()
    {
        var mono = System.Diagnostics.Stopwatch.GetTimestamp();
        var monoTicks = (long)(mono * ((double)TimeSpan.TicksPerSecond / System.Diagnostics.Stopwatch.Frequency));
        return DateTime.UtcNow.Ticks - monoTicks;
    }

    public StraceLineKind Parse(string line, out SyscallEvent? evt)
    {
        evt = null;
        if (!line.StartsWith('{'))
        {
            // the loader's plain line: a record letter first, never a brace
            _escaped = true;
            var plain = ParseRecord(line, out evt);
            if (plain == StraceLineKind.Malformed)
            {
                Malformed++;
            }

            return plain;
        }

        _escaped = false;
        string? type = null;
        string? data = null;
        long lost = -1;
        try
        {
            var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(line));
            var depth = 0;
            string? property = null;
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        depth++;
                        break;
                    case JsonTokenType.EndObject:
                        depth--;
                        break;
                    case JsonTokenType.PropertyName:
                        property = reader.GetString();
                        break;
                    case JsonTokenType.String when depth == 1 && property == "type":
                        type = reader.GetString();
                        break;
                    case JsonTokenType.String when depth == 1 && property == "data":
                        data = reader.GetString();
                        break;
                    case JsonTokenType.Number when depth == 2 && property == "events":
                        lost = reader.GetInt64();
                        break;
                }
            }
        }
        catch (JsonException)
        {
            Malformed++;
            return StraceLineKind.Malformed;
        }

        if (type == "lost_events" && lost >= 0)
        {
            Lost += lost;
            return StraceLineKind.Ignored;
        }

        if (type != "printf" || data is null)
        {
            if (type is null)
            {
                Malformed++;
                return StraceLineKind.Malformed;
            }

            return StraceLineKind.Ignored; // attached_probes and the like
        }

        var kind = ParseRecord(data.EndsWith('\n') ? data[..^1] : data, out evt);
        if (kind == StraceLineKind.Malformed)
        {
            Malformed++;
        }

        return kind;
    }

    private StraceLineKind ParseRecord(string data, out SyscallEvent? evt)
    {
        evt = null;
        var f = data.Split('\t');
        try
        {
            switch (f[0])
            {
                case "X" when f.Length >= 12:
                    var tid = Int(f[2]);
                    var ns = Long(f[1]);
                    var name = Name(f[5]);
                    var ret = Long(f[6]);
                    var text = Rest(data, 11);
                    var second = name is "rename" or "renameat" or "renameat2" ? Take(_newPaths, tid, ns) : "";
                    var names = name is "connect" or "accept" or "accept4" ? Take(_sockNames, tid, ns) : "";
                    if (name == "execve")
                    {
                        // its entry line has the path and argv: the exit runs in the new image
                        if (!_execs.Remove(tid, out var exec))
                        {
                            return StraceLineKind.Ignored; // the entry happened before the process was watched
                        }

                        return Complete(tid, new Call(name, exec.Ns, Int(f[3]), Int(f[4]), 0, 0, 0, exec.Path, ""), ret, Long(f[7]), null, exec.Argv, out evt);
                    }

                    // faasmon-ptrace also gathers what a vector call moved from its iovecs; the eBPF programs send none
                    var bytes = IsBufferCall(name) ? _escaped ? Unescape(text, maxDataBytes) : JoinChunks(text, Take(_continuations, tid, ns), ret)
                        : _escaped && text.Length > 0 && IsVectorCall(name) ? Unescape(text, maxDataBytes) : null;
                    var s0 = bytes is not null || name is "connect" or "bind" ? text : PathText(text);
                    return Complete(tid, new Call(name, ns, Int(f[3]), Int(f[4]), Long(f[8]), Long(f[9]), Long(f[10]), s0, names.Length > 0 ? names : PathText(second)), ret, Long(f[7]), bytes, null, out evt);
                case "R":
                    Ready?.Invoke();
                    return StraceLineKind.Ignored;
                case "L" when f.Length >= 2 && _escaped:
                    Lost += Long(f[1]);
                    return StraceLineKind.Ignored;
                case "W" when f.Length >= 2:
                    Watching?.Invoke(Int(f[1]));
                    return StraceLineKind.Ignored;
                case "C" when f.Length >= 4:
                    _continuations[Int(f[2])] = (Long(f[1]), Rest(data, 3));
                    return StraceLineKind.Pending;
                case "P" when f.Length >= 5:
                    _sockNames[Int(f[2])] = (Long(f[1]), Rest(data, 3));
                    return StraceLineKind.Pending;
                case "N" when f.Length >= 4:
                    _newPaths[Int(f[2])] = (Long(f[1]), Rest(data, 3));
                    return StraceLineKind.Pending;
                case "E" when f.Length >= 6:
                    _execs[Int(f[2])] = new Exec(Long(f[1]), PathText(Rest(data, 5)));
                    return StraceLineKind.Pending;
                case "A" when f.Length >= 3:
                    if (_execs.TryGetValue(Int(f[1]), out var entered) && Rest(data, 2) is { Length: > 0 } arg)
                    {
                        entered.Argv.Add(PathText(arg));
                    }

                    return StraceLineKind.Pending;
                case "F" when f.Length >= 5:
                    evt = new SyscallEvent(Time(Long(f[1])), Int(f[3]), Int(f[2]), 0, "fork", TargetPid: Int(f[4]), Backend: backend);
                    return StraceLineKind.Event;
                case "Q" when f.Length >= 6:
                    var pid = Int(f[3]);
                    evt = new SyscallEvent(Time(Long(f[1])), pid, Int(f[2]), Int(f[4]), "exited", SyscallEventKind.Exit, ReturnValue: Long(f[5]), Backend: backend);
                    foreach (var key in _fds.Keys.Where(k => k.Pid == pid).ToList())
                    {
                        _fds.Remove(key);
                    }

                    return StraceLineKind.Event;
                case "S" when f.Length >= 6:
                    evt = new SyscallEvent(Time(Long(f[1])), Int(f[3]), Int(f[2]), Int(f[4]), SignalName(Int(f[5])), SyscallEventKind.Signal, Backend: backend);
                    return StraceLineKind.Event;
                default:
                    return StraceLineKind.Malformed;
            }
        }
        catch (FormatException)
        {
            return StraceLineKind.Malformed;
        }
        catch (OverflowException)
        {
            return StraceLineKind.Malformed;
        }
    }

    private StraceLineKind Complete(int tid, Call e, long ret, long durationNs, byte[]? bytes, IReadOnlyList<string>? execArgv, out SyscallEvent? evt)
    {
        evt = null;
        var name = e.Name;
        var errno = ret < 0 && ret > -4096 ? ErrnoName((int)-ret) : null;
        var time = Time(e.Ns);
        TimeSpan? duration = durationNs >= 0 ? TimeSpan.FromTicks(durationNs / 100) : null;
        string? path = null, path2 = null, flags = null;
        FileDescriptorInfo? fd = null;
        IReadOnlyList<string>? argv = null;
        byte[]? data = null;
        var target = 0;
        switch (name)
        {
            case "execve":
                path = e.S0;
                argv = execArgv;
                break;
            case "openat" or "open":
                path = e.S0;
                flags = OpenFlags(e.A1);
                if (ret >= 0)
                {
                    fd = new FileDescriptorInfo((int)ret, path.StartsWith('/') ? path : null);
                    if (fd.Path is not null)
                    {
                        _fds[(e.Pid, (int)ret)] = fd;
                    }
                }

                break;
            case "unlink" or "unlinkat" or "chdir":
                path = e.S0;
                break;
            case "chmod" or "fchmodat":
                path = e.S0;
                flags = "0" + Convert.ToString(e.A1, 8);
                break;
            case "rename" or "renameat" or "renameat2":
                path = e.S0;
                path2 = e.S1;
                break;
            case "write" or "pwrite64" or "sendto" or "read" or "pread64" or "recvfrom" or "writev" or "readv" or "sendmsg" or "recvmsg":
                fd = Fd(e.Pid, (int)e.A0);
                if (fd?.IsSocket == true)
                {
                    data = bytes;
                }
                else if (fd is { Path: not null } && name is "write" or "pwrite64" or "writev" && ret > 0 && bytes is { Length: > 0 })
                {
                    data = bytes.Length <= SyscallEvent.FileMagicBytes ? bytes : bytes[..SyscallEvent.FileMagicBytes];
                }

                break;
            case "listen":
                fd = Fd(e.Pid, (int)e.A0);
                break;
            case "close":
                _fds.Remove((e.Pid, (int)e.A0));
                return StraceLineKind.Ignored; // only keeps the fd table true
            case "connect" or "bind":
                fd = Fd(e.Pid, (int)e.A0) ?? new FileDescriptorInfo((int)e.A0, "socket");
                var endpoint = Sockaddr(_escaped ? Unescape(e.S0, 28) : StraceLineParser.Unescape(e.S0.AsSpan(), 28));
                fd = name == "connect" ? fd with { RemoteEndpoint = endpoint, LocalEndpoint = SockName(e.S1, 0) ?? fd.LocalEndpoint } : fd with { LocalEndpoint = endpoint };
                if (name == "connect")
                {
                    _fds[(e.Pid, (int)e.A0)] = fd;
                }

                break;
            case "accept" or "accept4":
                if (ret >= 0)
                {
                    // faasmon-ptrace names both ends (as strace -yy); the eBPF programs do not, and /proc gives the inode
                    fd = SockName(e.S1, 0) is { } local
                        ? new FileDescriptorInfo((int)ret, local.StartsWith('[') ? "TCPv6" : local.Contains(':', StringComparison.Ordinal) ? "TCP" : "UNIX-STREAM", local, SockName(e.S1, 1))
                        : lookupFd?.Invoke(e.Pid, (int)ret) ?? new FileDescriptorInfo((int)ret, "TCP");
                    _fds[(e.Pid, (int)ret)] = fd;
                }

                break;
            case "socket":
                flags = $"{Family(e.A0)}, {e.A1}, {e.A2}";
                if (ret >= 0)
                {
                    fd = new FileDescriptorInfo((int)ret, e.A0 switch { 1 => "UNIX", 10 => "TCPv6", _ => (e.A1 & 0xf) == 2 ? "UDP" : "TCP" });
                    _fds[(e.Pid, (int)ret)] = fd;
                }

                break;
            case "kill":
                target = (int)e.A0;
                flags = SignalName((int)e.A1);
                break;
            case "mmap" or "mprotect":
                flags = ProtFlags(e.A1);
                fd = name == "mmap" && e.A0 >= 0 ? Fd(e.Pid, (int)e.A0) : null;
                break;
            case "clone" or "clone3" or "fork" or "vfork":
                target = ret > 0 ? (int)ret : 0;
                break;
        }

        evt = new SyscallEvent(time, e.Pid, tid, e.Ppid, name, SyscallEventKind.Syscall, path, path2, fd, flags, argv,
            ret, errno, duration, data, TargetPid: target, Backend: backend);
        return StraceLineKind.Event;
    }

    private static bool IsBufferCall(string name) => name is "write" or "pwrite64" or "sendto" or "read" or "pread64" or "recvfrom";

    private static bool IsVectorCall(string name) => name is "writev" or "readv" or "sendmsg" or "recvmsg";

    /// <summary>What was printed for this very call (same ns) on a line before it; a stale one, whose call line was lost, is dropped.</summary>
    private static string Take(Dictionary<int, (long Ns, string Text)> before, int tid, long ns) =>
        before.Remove(tid, out var line) && line.Ns == ns ? line.Text : "";

    /// <summary>
    /// A buffer's bytes from its two str() chunks. str() ends at a NUL, so a binary buffer is kept up to its first zero
    /// byte: the second chunk follows the first only when the first kept all its 128 bytes.
    /// </summary>
    private byte[] JoinChunks(string first, string second, long ret)
    {
        var head = Decode(first, Math.Min(maxDataBytes, ChunkBytes));
        if (head.Length < ChunkBytes || ret <= ChunkBytes || second.Length == 0 || maxDataBytes <= ChunkBytes)
        {
            return head;
        }

        var tail = Decode(second, maxDataBytes - ChunkBytes);
        return [.. head, .. tail];
    }

    /// <summary>
    /// The bytes of a string bpftrace printed with %s in JSON mode: ASCII as is, and a byte ≥ 0x80 as
    /// <c>\uffffffXX</c> (its char sign-extended into a \u escape), which JSON reads as U+FFFF then "ffXX".
    /// </summary>
    internal static byte[] Decode(string text, int max = int.MaxValue)
    {
        var bytes = new List<byte>(Math.Min(text.Length, max));
        for (var i = 0; i < text.Length && bytes.Count < max; i++)
        {
            var c = text[i];
            if (c == '\uffff' && i + 4 < text.Length && text[i + 1] == 'f' && text[i + 2] == 'f'
                && byte.TryParse(text.AsSpan(i + 3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var high))
            {
                bytes.Add(high);
                i += 4;
            }
            else
            {
                bytes.Add(c < 0x80 ? (byte)c : (byte)'?');
            }
        }

        return [.. bytes];
    }

    /// <summary>
    /// The bytes of the loader's string field: <c>\xNN</c> is byte NN, any other character the byte it is (the loader
    /// escapes every byte ≥ 0x80, so a character beyond ASCII is not its output and reads as '?').
    /// </summary>
    internal static byte[] Unescape(string text, int max = int.MaxValue)
    {
        var bytes = new byte[Math.Min(text.Length, max)];
        var n = 0;
        for (var i = 0; i < text.Length && n < bytes.Length; i++)
        {
            var c = text[i];
            if (c == '\\' && i + 3 < text.Length && text[i + 1] == 'x'
                && byte.TryParse(text.AsSpan(i + 2, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var b))
            {
                bytes[n++] = b;
                i += 3;
            }
            else
            {
                bytes[n++] = c < 0x80 ? (byte)c : (byte)'?';
            }
        }

        return n == bytes.Length ? bytes : bytes[..n];
    }

    /// <summary>A path as the file system has it (UTF-8), from bpftrace's %s or the loader's escaped field.</summary>
    private string PathText(string text) => _escaped
        ? text.Contains('\\', StringComparison.Ordinal) ? Encoding.UTF8.GetString(Unescape(text)) : text
        : text.Contains('\uffff', StringComparison.Ordinal) ? Encoding.UTF8.GetString(Decode(text)) : text;

    /// <summary>Field <paramref name="index"/> and all after it: a path or bytes printed last may hold tabs of its own.</summary>
    private static string Rest(string data, int index)
    {
        var at = 0;
        for (var i = 0; i < index; i++)
        {
            at = data.IndexOf('\t', at) + 1;
            if (at == 0)
            {
                return "";
            }
        }

        return data[at..];
    }

    private FileDescriptorInfo? Fd(int pid, int fd)
    {
        if (_fds.TryGetValue((pid, fd), out var known))
        {
            return known;
        }

        var looked = lookupFd?.Invoke(pid, fd);
        if (looked is not null)
        {
            _fds[(pid, fd)] = looked;
        }

        return looked ?? new FileDescriptorInfo(fd, null);
    }

    /// <summary>What an fd of a live process points at, from /proc (sockets show as "socket:[inode]").</summary>
    public static FileDescriptorInfo? LookupProcFd(int pid, int fd)
    {
        try
        {
            var target = new FileInfo($"/proc/{pid}/fd/{fd}").LinkTarget;
            return target is null ? null : new FileDescriptorInfo(fd, target);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>struct sockaddr_in / sockaddr_in6 / sockaddr_un bytes → "ip:port" or the socket path.</summary>
    /// <summary>Field <paramref name="index"/> (0: own, 1: peer) of a P line's text, decoded; null when absent.</summary>
    private static string? SockName(string names, int index)
    {
        if (names.Length == 0)
        {
            return null;
        }

        var tab = names.IndexOf('\t', StringComparison.Ordinal);
        var field = index == 0 ? (tab < 0 ? names : names[..tab]) : (tab < 0 ? "" : names[(tab + 1)..]);
        // an unnamed unix socket (a client's own end) has no name to give
        return field.Length == 0 ? null : Sockaddr(Unescape(field, 128)) is { Length: > 0 } name ? name : null;
    }

    internal static string? Sockaddr(byte[] b)
    {
        if (b.Length < 2)
        {
            return null;
        }

        var family = b[0] | (b[1] << 8);
        if (family == 2 && b.Length >= 8)
        {
            return $"{b[4]}.{b[5]}.{b[6]}.{b[7]}:{(b[2] << 8) | b[3]}";
        }

        if (family == 10 && b.Length >= 24)
        {
            return $"[{new System.Net.IPAddress(b.AsSpan(8, 16))}]:{(b[2] << 8) | b[3]}";
        }

        if (family == 1)
        {
            var path = b.AsSpan(2);
            var nul = path.IndexOf((byte)0);
            return Encoding.UTF8.GetString(nul < 0 ? path : path[..nul]);
        }

        return null;
    }

    private DateTimeOffset Time(long ns) => new(monotonicToWallTicks + (ns / 100), TimeSpan.Zero);

    /// <summary>"tracepoint:syscalls:sys_enter_openat" → "openat"; names printed literally stay as they are.</summary>
    private static string Name(string probe)
    {
        var at = probe.LastIndexOf(':');
        var n = at < 0 ? probe : probe[(at + 1)..];
        return n.StartsWith("sys_enter_", StringComparison.Ordinal) ? n[10..] : n.StartsWith("sys_exit_", StringComparison.Ordinal) ? n[9..] : n;
    }

    private static int Int(string s) => int.Parse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);

    private static long Long(string s) => long.Parse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);

    private static string Family(long f) => f switch { 1 => "AF_UNIX", 2 => "AF_INET", 10 => "AF_INET6", 16 => "AF_NETLINK", _ => f.ToString(CultureInfo.InvariantCulture) };

    private static string ProtFlags(long prot)
    {
        var parts = new List<string>(3);
        if ((prot & 1) != 0)
        {
            parts.Add("PROT_READ");
        }

        if ((prot & 2) != 0)
        {
            parts.Add("PROT_WRITE");
        }

        if ((prot & 4) != 0)
        {
            parts.Add("PROT_EXEC");
        }

        return parts.Count == 0 ? "PROT_NONE" : string.Join('|', parts);
    }

    /// <summary>The open flags strace would print, for the ones provenance cares about.</summary>
    internal static string OpenFlags(long flags)
    {
        var parts = new List<string>(6) { (flags & 3) switch { 1 => "O_WRONLY", 2 => "O_RDWR", _ => "O_RDONLY" } };
        if ((flags & 0x40) != 0)
        {
            parts.Add("O_CREAT");
        }

        if ((flags & 0x200) != 0)
        {
            parts.Add("O_TRUNC");
        }

        if ((flags & 0x400) != 0)
        {
            parts.Add("O_APPEND");
        }

        if ((flags & 0x80000) != 0)
        {
            parts.Add("O_CLOEXEC");
        }

        return string.Join('|', parts);
    }

    private static string SignalName(int sig) => sig switch
    {
        1 => "SIGHUP", 2 => "SIGINT", 3 => "SIGQUIT", 6 => "SIGABRT", 9 => "SIGKILL", 10 => "SIGUSR1", 11 => "SIGSEGV",
        12 => "SIGUSR2", 13 => "SIGPIPE", 14 => "SIGALRM", 15 => "SIGTERM", 17 => "SIGCHLD", 18 => "SIGCONT", 19 => "SIGSTOP",
        0 => "0", _ => "SIG" + sig.ToString(CultureInfo.InvariantCulture),
    };

    private static string ErrnoName(int errno) => errno switch
    {
        1 => "EPERM", 2 => "ENOENT", 3 => "ESRCH", 4 => "EINTR", 9 => "EBADF", 11 => "EAGAIN", 12 => "ENOMEM", 13 => "EACCES",
        17 => "EEXIST", 20 => "ENOTDIR", 21 => "EISDIR", 22 => "EINVAL", 32 => "EPIPE", 104 => "ECONNRESET",
        111 => "ECONNREFUSED", 115 => "EINPROGRESS", _ => "E" + errno.ToString(CultureInfo.InvariantCulture),
    };
}
