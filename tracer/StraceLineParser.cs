using System.Buffers;
using System.Collections.Frozen;
using System.Globalization;
using System.Text;
using FaaSMon.Core;

namespace FaaSMon.Tracer;

/// <summary>What one line of strace output turned out to be.</summary>
internal enum StraceLineKind
{
    /// <summary>A complete event was produced.</summary>
    Event,

    /// <summary>An <c>&lt;unfinished ...&gt;</c> half kept until its <c>resumed</c> half arrives.</summary>
    Pending,

    /// <summary>A well-formed line of no interest (a system call outside the traced set, a blank line).</summary>
    Ignored,

    /// <summary>A line that is not strace's format or was cut short; counted by the caller, never fatal.</summary>
    Malformed,
}

/// <summary>
/// Streaming parser for <c>strace -f -ttt -T -yy -s N -o ...</c> lines ("TID SECONDS.MICROS call(args) = ret &lt;dur&gt;").
/// One instance per strace process: it keeps the state that spans lines (unfinished calls per thread, which
/// thread belongs to which process, parents learnt from clone results).
/// Not thread-safe; one reader drives it. The hot path allocates only what an event carries: lines of no interest and
/// unfinished halves cost no allocation (halves are kept in reused buffers), and the strings and fd decodings an event
/// shares with earlier ones (flags, paths, the same socket) come from bounded caches.
/// </summary>
internal sealed class StraceLineParser(int maxDataBytes = 256, Func<int, (int Tgid, int Ppid)?>? resolveThread = null)
{
    /// <summary>The system calls FaaSMon keeps; everything else strace prints is ignored cheaply.</summary>
    public static readonly FrozenSet<string> TracedSyscalls = FrozenSet.Create(StringComparer.Ordinal,
    [
        "execve", "clone", "clone3", "fork", "vfork", "exit_group", "open", "openat", "read", "pread64", "write", "pwrite64",
        "writev", "readv", "unlink", "unlinkat", "rename", "renameat", "renameat2", "chmod", "fchmodat", "chdir", "connect",
        "accept", "accept4", "socket", "bind", "listen", "sendto", "recvfrom", "sendmsg", "recvmsg", "kill", "tgkill",
        "mmap", "mprotect",
    ]);

    private static readonly FrozenSet<string>.AlternateLookup<ReadOnlySpan<char>> TracedLookup =
        TracedSyscalls.GetAlternateLookup<ReadOnlySpan<char>>();

    private readonly Dictionary<int, UnfinishedCall> _unfinished = [];
    private readonly Stack<UnfinishedCall> _spareCalls = new();
    private readonly TextCache _texts = new(4096);
    private readonly FdCache _fdCache = new(4096);
    private char[] _joined = new char[1024];
    private readonly Dictionary<int, int> _tgidOfTid = [];
    private readonly Dictionary<int, int> _parentOf = [];

    // clone/fork results are pids of the tracee's PID namespace while strace prefixes lines with host tids, so a new
    // task is matched to its parent by asking /proc (live) or, when it is already gone, by the oldest unmatched fork.
    private readonly Queue<int> _forkParents = new();

    /// <summary>Lines that were not strace's format (the caller counts them as parse errors).</summary>
    public long Malformed { get; private set; }

    /// <summary>Tells the parser a thread's process (threads that existed before strace attached).</summary>
    public void RegisterThread(int tid, int tgid) => _tgidOfTid[tid] = tgid;

    /// <summary>Tells the parser a process's parent (the attached root, whose fork strace did not see).</summary>
    public void RegisterParent(int pid, int ppid) => _parentOf[pid] = ppid;

    private int LearnTask(int tid)
    {
        if (resolveThread?.Invoke(tid) is { } known)
        {
            _tgidOfTid[tid] = known.Tgid;
            if (known.Tgid == tid)
            {
                _parentOf[tid] = known.Ppid;
            }

            return known.Tgid;
        }

        _tgidOfTid[tid] = tid;
        if (!_parentOf.ContainsKey(tid) && _forkParents.TryDequeue(out var parent))
        {
            _parentOf[tid] = parent;
        }

        return tid;
    }

    public StraceLineKind Parse(string line, out SyscallEvent? evt) => Parse(line.AsSpan(), out evt);

    /// <summary>Parses one line; the span need only live for the call (the pump hands out its read buffer).</summary>
    public StraceLineKind Parse(ReadOnlySpan<char> line, out SyscallEvent? evt)
    {
        evt = null;
        var kind = ParseCore(line, ref evt);
        if (kind == StraceLineKind.Malformed)
        {
            Malformed++;
        }

        return kind;
    }

    private StraceLineKind ParseCore(ReadOnlySpan<char> s, ref SyscallEvent? evt)
    {
        s = s.TrimEnd();
        if (s.IsEmpty)
        {
            return StraceLineKind.Ignored;
        }

        // "[pid  123] " is what strace writes to a terminal; with -o every line starts "123 ".
        if (s.StartsWith("[pid", StringComparison.Ordinal))
        {
            var close = s.IndexOf(']');
            if (close < 0)
            {
                return StraceLineKind.Malformed;
            }

            if (!TryInt(s[4..close].Trim(), out var bracketTid))
            {
                return StraceLineKind.Malformed;
            }

            return ParseAfterTid(bracketTid, s[(close + 1)..].TrimStart(), ref evt);
        }

        var sp = s.IndexOf(' ');
        if (sp <= 0 || !TryInt(s[..sp], out var tid))
        {
            return StraceLineKind.Malformed;
        }

        // strace pads short pids to five columns ("1578  1795392348.330416 ...")
        return ParseAfterTid(tid, s[(sp + 1)..].TrimStart(' '), ref evt);
    }

    private StraceLineKind ParseAfterTid(int tid, ReadOnlySpan<char> s, ref SyscallEvent? evt)
    {
        var sp = s.IndexOf(' ');
        if (sp <= 0 || !TryTimestamp(s[..sp], out var time))
        {
            return StraceLineKind.Malformed;
        }

        s = s[(sp + 1)..];
        var pid = _tgidOfTid.TryGetValue(tid, out var tg) ? tg : LearnTask(tid);
        var ppid = _parentOf.GetValueOrDefault(pid);

        if (s.StartsWith("--- ", StringComparison.Ordinal))
        {
            // --- SIGCHLD {si_signo=...} ---
            var rest = s[4..];
            var end = rest.IndexOfAny(' ', '{');
            var name = end < 0 ? rest : rest[..end];
            if (name.Length == 0 || !s.EndsWith("---", StringComparison.Ordinal))
            {
                return StraceLineKind.Malformed;
            }

            evt = new SyscallEvent(time, pid, tid, ppid, _texts.Get(name), SyscallEventKind.Signal);
            return StraceLineKind.Event;
        }

        if (s.StartsWith("+++ ", StringComparison.Ordinal))
        {
            if (!s.EndsWith(" +++", StringComparison.Ordinal))
            {
                return StraceLineKind.Malformed;
            }

            var body = s[4..^4];
            if (body.StartsWith("exited with ", StringComparison.Ordinal) && TryInt(body[12..], out var status))
            {
                evt = new SyscallEvent(time, pid, tid, ppid, "exited", SyscallEventKind.Exit, ReturnValue: status);
            }
            else if (body.StartsWith("killed by ", StringComparison.Ordinal))
            {
                var sig = body[10..];
                var cut = sig.IndexOf(' ');
                evt = new SyscallEvent(time, pid, tid, ppid, "killed", SyscallEventKind.Exit, Flags: _texts.Get(cut < 0 ? sig : sig[..cut]));
            }
            else
            {
                return StraceLineKind.Malformed;
            }

            ForgetUnfinished(tid);
            return StraceLineKind.Event;
        }

        if (s.StartsWith("<... ", StringComparison.Ordinal))
        {
            // <... NAME resumed>REST
            var after = s[5..];
            var nameEnd = after.IndexOf(' ');
            if (nameEnd <= 0 || !after[nameEnd..].StartsWith(" resumed>", StringComparison.Ordinal))
            {
                return StraceLineKind.Malformed;
            }

            var name = after[..nameEnd];
            var rest = after[(nameEnd + 9)..];
            if (!TracedLookup.TryGetValue(name, out var canonical))
            {
                ForgetUnfinished(tid);
                return ValidTail(rest) ? StraceLineKind.Ignored : StraceLineKind.Malformed;
            }

            if (_unfinished.Remove(tid, out var half))
            {
                _spareCalls.Push(half);
                if (half.Name == canonical)
                {
                    return Build(tid, pid, ppid, canonical, half.Time, Join(half.Args.AsSpan(0, half.Length), rest), out evt);
                }
            }

            // strace attached in the middle of this call: the arguments are gone, the result is still worth keeping.
            return BuildResultOnly(tid, pid, ppid, canonical, time, rest, out evt);
        }

        var paren = s.IndexOf('(');
        if (paren <= 0)
        {
            return StraceLineKind.Malformed;
        }

        var callName = s[..paren];
        foreach (var c in callName)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c == '_' || c == '?'))
            {
                return StraceLineKind.Malformed;
            }
        }

        if (s.EndsWith("<detached ...>", StringComparison.Ordinal))
        {
            return StraceLineKind.Ignored; // strace let go of the process in the middle of this call: it has no result
        }

        var unfinished = s.EndsWith("<unfinished ...>", StringComparison.Ordinal);
        if (!TracedLookup.TryGetValue(callName, out var traced))
        {
            return unfinished || ValidTail(s[paren..]) ? StraceLineKind.Ignored : StraceLineKind.Malformed;
        }

        if (!unfinished && traced is "mprotect" or "mmap" && !s.Contains("PROT_EXEC", StringComparison.Ordinal))
        {
            // V8 flips page protections all the time; only executable mappings matter, and the rest need no decoding
            return ValidTail(s[paren..]) ? StraceLineKind.Ignored : StraceLineKind.Malformed;
        }

        if (unfinished)
        {
            RememberUnfinished(tid, traced, time, s[(paren + 1)..^16]);
            return StraceLineKind.Pending;
        }

        return Build(tid, pid, ppid, traced, time, s[(paren + 1)..], out evt);
    }

    /// <summary>Keeps the first half of a call in a buffer reused from call to call (a thread has one call in flight).</summary>
    private void RememberUnfinished(int tid, string name, DateTimeOffset time, ReadOnlySpan<char> args)
    {
        if (!_unfinished.TryGetValue(tid, out var call))
        {
            call = _spareCalls.Count > 0 ? _spareCalls.Pop() : new UnfinishedCall();
            _unfinished[tid] = call;
        }

        if (call.Args.Length < args.Length)
        {
            call.Args = new char[Math.Max(args.Length, call.Args.Length * 2)];
        }

        args.CopyTo(call.Args);
        call.Length = args.Length;
        call.Name = name;
        call.Time = time;
    }

    private void ForgetUnfinished(int tid)
    {
        if (_unfinished.Remove(tid, out var call))
        {
            _spareCalls.Push(call);
        }
    }

    /// <summary>Both halves of an unfinished/resumed pair, side by side in one reused buffer.</summary>
    private ReadOnlySpan<char> Join(ReadOnlySpan<char> first, ReadOnlySpan<char> second)
    {
        var length = first.Length + second.Length;
        if (_joined.Length < length)
        {
            _joined = new char[Math.Max(length, _joined.Length * 2)];
        }

        first.CopyTo(_joined);
        second.CopyTo(_joined.AsSpan(first.Length));
        return _joined.AsSpan(0, length);
    }

    private sealed class UnfinishedCall
    {
        public string Name { get; set; } = "";

        public DateTimeOffset Time { get; set; }

        public char[] Args { get; set; } = new char[256];

        public int Length { get; set; }
    }

    /// <summary>A complete line ends with ") = RESULT" or "= ? ..." (and an optional duration); anything else was cut.</summary>
    private static bool ValidTail(ReadOnlySpan<char> s)
    {
        var eq = s.LastIndexOf(" = ", StringComparison.Ordinal);
        return eq >= 0 && (s.EndsWith(">", StringComparison.Ordinal) || s.EndsWith(")", StringComparison.Ordinal) || char.IsAsciiLetterOrDigit(s[^1]) || s[^1] == '?');
    }

    private StraceLineKind BuildResultOnly(int tid, int pid, int ppid, string name, DateTimeOffset time, ReadOnlySpan<char> rest, out SyscallEvent? evt)
    {
        evt = null;
        var eq = rest.LastIndexOf(") = ", StringComparison.Ordinal);
        if (eq < 0)
        {
            return StraceLineKind.Malformed;
        }

        if (!TryResult(rest[(eq + 4)..], out var ret, out var retFd, out var errno, out var duration))
        {
            return StraceLineKind.Malformed;
        }

        evt = new SyscallEvent(time, pid, tid, ppid, name, Fd: retFd, ReturnValue: ret, Errno: errno, Duration: duration);
        return StraceLineKind.Event;
    }

    /// <summary>Builds an event from "args) = result &lt;duration&gt;".</summary>
    private StraceLineKind Build(int tid, int pid, int ppid, string name, DateTimeOffset time, ReadOnlySpan<char> text, out SyscallEvent? evt)
    {
        evt = null;
        var close = FindArgsEnd(text);
        if (close < 0)
        {
            return StraceLineKind.Malformed;
        }

        var tail = text[(close + 1)..].TrimStart();
        if (!tail.StartsWith("= ", StringComparison.Ordinal))
        {
            return StraceLineKind.Malformed;
        }

        if (!TryResult(tail[2..], out var ret, out var retFd, out var errno, out var duration))
        {
            return StraceLineKind.Malformed;
        }

        Span<Range> ranges = stackalloc Range[8];
        var args = text[..close];
        var count = SplitArgs(args, ranges);
        ReadOnlySpan<char> Arg(int i, ReadOnlySpan<char> all, Span<Range> r, int n) => i < n ? all[r[i]].Trim() : [];

        string? path = null, path2 = null, flags = null;
        FileDescriptorInfo? fd = null;
        IReadOnlyList<string>? argv = null;
        byte[]? data = null;
        var target = 0;
        switch (name)
        {
            case "execve":
                path = Text(Arg(0, args, ranges, count));
                argv = DecodeStringArray(Arg(1, args, ranges, count));
                break;
            case "clone":
            case "clone3":
                flags = Flags(args, "flags=");
                target = ret > 0 ? (int)ret : 0;
                break;
            case "fork":
            case "vfork":
                target = ret > 0 ? (int)ret : 0;
                break;
            case "exit_group":
                _ = long.TryParse(Arg(0, args, ranges, count), NumberStyles.Integer, CultureInfo.InvariantCulture, out ret);
                break;
            case "open":
                path = Text(Arg(0, args, ranges, count));
                flags = _texts.Get(Arg(1, args, ranges, count));
                fd = retFd;
                break;
            case "openat":
                path = Resolve(Arg(0, args, ranges, count), Text(Arg(1, args, ranges, count)));
                flags = _texts.Get(Arg(2, args, ranges, count));
                fd = retFd;
                break;
            case "unlink":
            case "chmod":
            case "chdir":
                path = Text(Arg(0, args, ranges, count));
                flags = name == "chmod" ? _texts.Get(Arg(1, args, ranges, count)) : null;
                break;
            case "unlinkat":
            case "fchmodat":
                path = Resolve(Arg(0, args, ranges, count), Text(Arg(1, args, ranges, count)));
                flags = _texts.Get(Arg(2, args, ranges, count));
                break;
            case "rename":
                path = Text(Arg(0, args, ranges, count));
                path2 = Text(Arg(1, args, ranges, count));
                break;
            case "renameat":
            case "renameat2":
                path = Resolve(Arg(0, args, ranges, count), Text(Arg(1, args, ranges, count)));
                path2 = Resolve(Arg(2, args, ranges, count), Text(Arg(3, args, ranges, count)));
                break;
            case "read":
            case "pread64":
            case "write":
            case "pwrite64":
            case "writev":
            case "readv":
            case "sendto":
            case "recvfrom":
            case "sendmsg":
            case "recvmsg":
                fd = Fd(Arg(0, args, ranges, count));
                if (fd?.IsSocket == true && (ret > 0 || name is "write" or "sendto" or "sendmsg" or "writev"))
                {
                    data = name is "writev" or "readv" or "sendmsg" or "recvmsg"
                        ? IovBytes(Arg(1, args, ranges, count), maxDataBytes)
                        : FirstStringBytes(Arg(1, args, ranges, count), maxDataBytes);
                }
                else if (fd is { IsSocket: false, Path: not null } && ret > 0 && name is "write" or "pwrite64")
                {
                    data = FirstStringBytes(Arg(1, args, ranges, count), Math.Min(maxDataBytes, SyscallEvent.FileMagicBytes));
                }

                break;
            case "connect":
            case "bind":
                fd = Fd(Arg(0, args, ranges, count));
                if (fd is not null && Sockaddr(Arg(1, args, ranges, count)) is { } endpoint)
                {
                    fd = name == "connect" ? fd with { RemoteEndpoint = endpoint } : fd with { LocalEndpoint = endpoint };
                }

                break;
            case "listen":
                fd = Fd(Arg(0, args, ranges, count));
                break;
            case "accept":
            case "accept4":
                fd = retFd ?? Fd(Arg(0, args, ranges, count));
                break;
            case "socket":
                flags = _texts.Get(args);
                fd = retFd;
                break;
            case "kill":
                _ = int.TryParse(Arg(0, args, ranges, count), NumberStyles.Integer, CultureInfo.InvariantCulture, out target);
                flags = _texts.Get(Arg(1, args, ranges, count));
                break;
            case "tgkill":
                _ = int.TryParse(Arg(1, args, ranges, count), NumberStyles.Integer, CultureInfo.InvariantCulture, out target);
                flags = _texts.Get(Arg(2, args, ranges, count));
                break;
            case "mmap":
            case "mprotect":
                var prot = Arg(2, args, ranges, count);
                if (!prot.Contains("PROT_EXEC", StringComparison.Ordinal))
                {
                    return StraceLineKind.Ignored; // only executable mappings matter (injected code)
                }

                flags = _texts.Get(prot);
                fd = name == "mmap" ? Fd(Arg(4, args, ranges, count)) : null;
                break;
        }

        if (target > 0 && errno is null && name is "clone" or "clone3" or "fork" or "vfork")
        {
            if (flags?.Contains("CLONE_THREAD", StringComparison.Ordinal) != true && _forkParents.Count < 1024)
            {
                _forkParents.Enqueue(pid);
            }
        }

        evt = new SyscallEvent(time, pid, tid, ppid, name, SyscallEventKind.Syscall, path, path2, fd, flags, argv, ret, errno, duration, data, TargetPid: target);
        return StraceLineKind.Event;
    }

    /// <summary>A quoted path or name, shared with earlier events that had the same one (strace repeats the same few paths).</summary>
    private string? Text(ReadOnlySpan<char> quoted) =>
        !TryQuoted(quoted, out var inner) ? null
        : inner.IndexOf('\\') < 0 ? _texts.Get(inner)
        : Encoding.UTF8.GetString(Unescape(inner, int.MaxValue));

    /// <summary><see cref="ParseFd"/> of a decoration seen before (the same socket, read after read) is the same record.</summary>
    private FileDescriptorInfo? Fd(ReadOnlySpan<char> s)
    {
        s = s.Trim();
        if (_fdCache.TryGet(s, out var known))
        {
            return known;
        }

        var fd = ParseFd(s);
        if (fd is not null)
        {
            _fdCache.Add(s, fd);
        }

        return fd;
    }

    private string? Sockaddr(ReadOnlySpan<char> s) => ParseSockaddr(s) is { } endpoint ? _texts.Get(endpoint) : null;

    /// <summary>Index of the ')' closing the argument list, skipping strings, nested brackets and fd decorations.</summary>
    internal static int FindArgsEnd(ReadOnlySpan<char> s)
    {
        var depth = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            switch (c)
            {
                case '"':
                    i = SkipString(s, i);
                    if (i < 0)
                    {
                        return -1;
                    }

                    break;
                case '(' or '[' or '{' or '<':
                    depth++;
                    break;
                case '>' when i > 0 && s[i - 1] is '-' or '=':
                    break; // "->" inside a socket decoration, "=>" before clone3's out-values
                case ']' or '}' or '>':
                    depth--;
                    break;
                case ')':
                    if (depth == 0)
                    {
                        return i;
                    }

                    depth--;
                    break;
            }
        }

        return -1;
    }

    /// <summary>Index of the closing quote of the string starting at <paramref name="start"/>, or -1 when the line was cut.</summary>
    private static int SkipString(ReadOnlySpan<char> s, int start)
    {
        for (var i = start + 1; i < s.Length; i++)
        {
            if (s[i] == '\\')
            {
                i++;
            }
            else if (s[i] == '"')
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>Splits top-level arguments; returns how many (at most ranges.Length, the rest lands in the last).</summary>
    internal static int SplitArgs(ReadOnlySpan<char> s, Span<Range> ranges)
    {
        if (s.IsWhiteSpace())
        {
            return 0;
        }

        var count = 0;
        var start = 0;
        var depth = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            switch (c)
            {
                case '"':
                    var end = SkipString(s, i);
                    i = end < 0 ? s.Length : end;
                    break;
                case '(' or '[' or '{' or '<':
                    depth++;
                    break;
                case '>' when i > 0 && s[i - 1] is '-' or '=':
                    break;
                case ')' or ']' or '}' or '>':
                    depth--;
                    break;
                case ',' when depth == 0 && count < ranges.Length - 1:
                    ranges[count++] = new Range(start, i);
                    start = i + 1;
                    break;
            }
        }

        ranges[count++] = new Range(start, s.Length);
        return count;
    }

    /// <summary>Parses "RET[&lt;decoration&gt;] [ERRNO (text)] [&lt;duration&gt;]".</summary>
    private bool TryResult(ReadOnlySpan<char> s, out long ret, out FileDescriptorInfo? fd, out string? errno, out TimeSpan? duration)
    {
        ret = 0;
        fd = null;
        errno = null;
        duration = null;
        s = s.Trim();
        if (s.EndsWith(">", StringComparison.Ordinal))
        {
            var open = s.LastIndexOf('<');
            if (open >= 0 && TryDuration(s[(open + 1)..^1], out var ticks))
            {
                duration = TimeSpan.FromTicks(ticks);
                s = s[..open].TrimEnd();
            }
        }

        if (s.IsEmpty)
        {
            return false;
        }

        if (s[0] == '?')
        {
            return true; // exit_group and calls interrupted by the process's death have no result
        }

        var numEnd = 0;
        while (numEnd < s.Length && (char.IsAsciiHexDigit(s[numEnd]) || s[numEnd] is '-' or 'x'))
        {
            numEnd++;
        }

        var num = s[..numEnd];
        if (num.StartsWith("0x", StringComparison.Ordinal))
        {
            if (!long.TryParse(num[2..], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out ret))
            {
                return false;
            }
        }
        else if (!long.TryParse(num, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out ret))
        {
            return false;
        }

        var rest = s[numEnd..];
        if (rest.StartsWith("<", StringComparison.Ordinal))
        {
            var close = MatchAngle(rest);
            if (close < 0)
            {
                return false;
            }

            fd = Fd(s[..(numEnd + close + 1)]);
            rest = rest[(close + 1)..];
        }

        rest = rest.TrimStart();
        if (ret < 0 && rest.Length > 0 && rest[0] == 'E')
        {
            var cut = rest.IndexOf(' ');
            errno = _texts.Get(cut < 0 ? rest : rest[..cut]);
        }

        return true;
    }

    private static int MatchAngle(ReadOnlySpan<char> s)
    {
        var depth = 0;
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '<')
            {
                depth++;
            }
            else if (s[i] == '>' && !(i > 0 && s[i - 1] == '-'))
            {
                if (--depth == 0)
                {
                    return i;
                }
            }
        }

        return -1;
    }

    /// <summary>"21&lt;TCP:[127.0.0.1:3000-&gt;127.0.0.1:45678]&gt;", "3&lt;/dev/null&lt;char 1:3&gt;&gt;", "7" → what the fd is.</summary>
    internal static FileDescriptorInfo? ParseFd(ReadOnlySpan<char> s)
    {
        s = s.Trim();
        var open = s.IndexOf('<');
        var numPart = open < 0 ? s : s[..open];
        if (!int.TryParse(numPart, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var fd))
        {
            return null;
        }

        if (open < 0 || !s.EndsWith(">", StringComparison.Ordinal))
        {
            return new FileDescriptorInfo(fd, null);
        }

        var inner = s[(open + 1)..^1];
        var colon = inner.IndexOf(":[", StringComparison.Ordinal);
        if (colon > 0 && inner.EndsWith("]", StringComparison.Ordinal))
        {
            var kind = inner[..colon].ToString();
            var endpoints = inner[(colon + 2)..^1];
            var arrow = endpoints.IndexOf("->", StringComparison.Ordinal);
            if (arrow >= 0)
            {
                return new FileDescriptorInfo(fd, kind, endpoints[..arrow].ToString(), endpoints[(arrow + 2)..].ToString());
            }

            return new FileDescriptorInfo(fd, kind, endpoints.Contains(':') ? endpoints.ToString() : null);
        }

        // a device keeps its "<char 1:3>" suffix after the path; the path is what provenance needs
        var nested = inner.IndexOf('<');
        var path = nested > 0 && inner.EndsWith(">", StringComparison.Ordinal) ? inner[..nested] : inner;
        return new FileDescriptorInfo(fd, path.ToString());
    }

    /// <summary>Makes a path relative to a dirfd decoration ("AT_FDCWD&lt;/tmp&gt;", "5&lt;/srv&gt;") absolute when strace told us the directory.</summary>
    private static string? Resolve(ReadOnlySpan<char> dirfd, string? path)
    {
        if (path is null || path.StartsWith('/'))
        {
            return path;
        }

        var open = dirfd.IndexOf('<');
        if (open < 0 || !dirfd.EndsWith(">", StringComparison.Ordinal))
        {
            return path;
        }

        var dir = dirfd[(open + 1)..^1];
        if (path.Length == 0)
        {
            return dir.ToString();
        }

        return PathJoin(dir, path);
    }

    /// <summary>Joins a directory and a relative path, folding "./" (how shells run staged files).</summary>
    internal static string PathJoin(ReadOnlySpan<char> dir, string relative)
    {
        var rel = relative.AsSpan();
        while (rel.StartsWith("./", StringComparison.Ordinal))
        {
            rel = rel[2..];
        }

        return dir.EndsWith("/", StringComparison.Ordinal) ? string.Concat(dir, rel) : string.Concat(dir, "/", rel);
    }

    /// <summary>"{sa_family=AF_INET, sin_port=htons(5432), sin_addr=inet_addr("127.0.0.1")}" → "127.0.0.1:5432".</summary>
    internal static string? ParseSockaddr(ReadOnlySpan<char> s)
    {
        var portAt = s.IndexOf("port=htons(", StringComparison.Ordinal);
        if (portAt < 0)
        {
            var sunPath = s.IndexOf("sun_path=", StringComparison.Ordinal);
            return sunPath < 0 ? null : DecodeString(s[(sunPath + 9)..].TrimEnd('}'));
        }

        var portText = s[(portAt + 11)..];
        portText = portText[..Math.Max(0, portText.IndexOf(')'))];
        var addrAt = s.IndexOf("addr=inet_addr(\"", StringComparison.Ordinal);
        var v6 = false;
        if (addrAt < 0)
        {
            addrAt = s.IndexOf("inet_pton(AF_INET6, \"", StringComparison.Ordinal);
            v6 = addrAt >= 0;
            addrAt = v6 ? addrAt + 21 : -1;
        }
        else
        {
            addrAt += 16;
        }

        if (addrAt < 0)
        {
            return null;
        }

        var addr = s[addrAt..];
        addr = addr[..Math.Max(0, addr.IndexOf('"'))];
        return v6 ? $"[{addr}]:{portText}" : $"{addr}:{portText}";
    }

    private string? Flags(ReadOnlySpan<char> args, string key)
    {
        var at = args.IndexOf(key, StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        var rest = args[(at + key.Length)..];
        var end = rest.IndexOfAny(',', '}');
        return _texts.Get(end < 0 ? rest : rest[..end]);
    }

    /// <summary>The bytes of the first quoted string in an argument (the buffer of read/write, the iov_base of sendmsg).</summary>
    private static byte[]? FirstStringBytes(ReadOnlySpan<char> arg, int max)
    {
        var q = arg.IndexOf('"');
        if (q < 0)
        {
            return null;
        }

        var end = SkipString(arg, q);
        return end < 0 ? null : Unescape(arg[(q + 1)..end], max);
    }

    /// <summary>
    /// The bytes of every iov_base of a writev/readv/sendmsg/recvmsg joined, up to <paramref name="max"/>: undici sends a
    /// request's headers and its body as two iovs of one writev, and the body is what names the caller. Joining stops after
    /// a string strace cut short, so the result is always a true prefix of what went over the socket.
    /// </summary>
    private static byte[]? IovBytes(ReadOnlySpan<char> arg, int max)
    {
        const string key = "iov_base=\"";
        var at = arg.IndexOf(key);
        if (at < 0)
        {
            return FirstStringBytes(arg, max);
        }

        byte[]? rented = null;
        var buffer = max <= 1024 ? stackalloc byte[max] : (rented = ArrayPool<byte>.Shared.Rent(max)).AsSpan(0, max);
        var n = 0;
        var found = false;
        while (at >= 0 && n < max)
        {
            var quote = at + key.Length - 1;
            var end = SkipString(arg, quote);
            if (end < 0)
            {
                break;
            }

            found = true;
            n += Unescape(arg[(quote + 1)..end], buffer[n..]);
            arg = arg[(end + 1)..];
            if (arg.StartsWith("..."))
            {
                break;
            }

            at = arg.IndexOf(key);
        }

        var result = found ? buffer[..n].ToArray() : null;
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }

        return result;
    }

    /// <summary>Decodes a quoted strace string (C escapes, possibly followed by "..." when strace cut it); null when not a string.</summary>
    internal static string? DecodeString(ReadOnlySpan<char> s) =>
        !TryQuoted(s, out var inner) ? null
        : inner.IndexOf('\\') < 0 ? inner.ToString()
        : Encoding.UTF8.GetString(Unescape(inner, int.MaxValue));

    /// <summary>The inside of the quoted string <paramref name="s"/> starts with (escapes still in); false when it starts with none.</summary>
    private static bool TryQuoted(ReadOnlySpan<char> s, out ReadOnlySpan<char> inner)
    {
        s = s.Trim();
        var end = s.Length >= 2 && s[0] == '"' ? SkipString(s, 0) : -1;
        inner = end < 0 ? default : s[1..end];
        return end >= 0;
    }

    private static List<string>? DecodeStringArray(ReadOnlySpan<char> s)
    {
        s = s.Trim();
        if (s.Length < 2 || s[0] != '[')
        {
            return null;
        }

        var list = new List<string>();
        var i = 1;
        while (i < s.Length)
        {
            if (s[i] == '"')
            {
                var end = SkipString(s, i);
                if (end < 0)
                {
                    break;
                }

                list.Add(DecodeString(s[i..(end + 1)]) ?? "");
                i = end + 1;
            }
            else
            {
                i++;
            }
        }

        return list;
    }

    /// <summary>C escapes as strace writes them: \n \t \r \v \f \" \\ \xHH and octal \NNN.</summary>
    internal static byte[] Unescape(ReadOnlySpan<char> s, int max)
    {
        // each char gives at most 3 UTF-8 bytes; the result is one exact-size array
        var capacity = (int)Math.Min(max, (long)s.Length * 3);
        byte[]? rented = null;
        var scratch = capacity <= 1024 ? stackalloc byte[capacity] : (rented = ArrayPool<byte>.Shared.Rent(capacity));
        var n = Unescape(s, scratch[..capacity]);
        var result = scratch[..n].ToArray();
        if (rented is not null)
        {
            ArrayPool<byte>.Shared.Return(rented);
        }

        return result;
    }

    /// <summary>Unescapes into <paramref name="into"/> until it is full; returns the bytes written.</summary>
    internal static int Unescape(ReadOnlySpan<char> s, Span<byte> into)
    {
        Span<byte> utf8 = stackalloc byte[4];
        var n = 0;
        for (var i = 0; i < s.Length && n < into.Length; i++)
        {
            var c = s[i];
            if (c != '\\' || i + 1 >= s.Length)
            {
                if (c < 0x80)
                {
                    into[n++] = (byte)c;
                }
                else
                {
                    var count = Encoding.UTF8.GetBytes(s.Slice(i, 1), utf8);
                    for (var k = 0; k < count && n < into.Length; k++)
                    {
                        into[n++] = utf8[k];
                    }
                }

                continue;
            }

            var e = s[++i];
            switch (e)
            {
                case 'n': into[n++] = (byte)'\n'; break;
                case 't': into[n++] = (byte)'\t'; break;
                case 'r': into[n++] = (byte)'\r'; break;
                case 'v': into[n++] = 0x0b; break;
                case 'f': into[n++] = 0x0c; break;
                case 'x' when i + 2 < s.Length && char.IsAsciiHexDigit(s[i + 1]) && char.IsAsciiHexDigit(s[i + 2]):
                    into[n++] = (byte)((HexValue(s[i + 1]) << 4) | HexValue(s[i + 2]));
                    i += 2;
                    break;
                case >= '0' and <= '7':
                    var value = 0;
                    var digits = 0;
                    while (digits < 3 && i < s.Length && s[i] is >= '0' and <= '7')
                    {
                        value = (value * 8) + (s[i] - '0');
                        i++;
                        digits++;
                    }

                    i--;
                    into[n++] = (byte)value;
                    break;
                default: into[n++] = (byte)e; break;
            }
        }

        return n;
    }

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;

    /// <summary>"0.000049" (seconds, as -T prints them) → ticks, without going through double.</summary>
    internal static bool TryDuration(ReadOnlySpan<char> s, out long ticks)
    {
        ticks = 0;
        var dot = s.IndexOf('.');
        var whole = dot < 0 ? s : s[..dot];
        if (!long.TryParse(whole, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds) || seconds > 1_000_000_000L)
        {
            return false;
        }

        long frac = 0;
        var digits = 0;
        if (dot >= 0)
        {
            foreach (var c in s[(dot + 1)..])
            {
                if (!char.IsAsciiDigit(c))
                {
                    return false;
                }

                if (digits < 7)
                {
                    frac = (frac * 10) + (c - '0');
                    digits++;
                }
            }
        }

        for (; digits < 7; digits++)
        {
            frac *= 10;
        }

        ticks = (seconds * TimeSpan.TicksPerSecond) + frac;
        return true;
    }

    private static bool TryInt(ReadOnlySpan<char> s, out int value) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value);

    /// <summary>"1795391117.065119" → UTC time, without going through double (microseconds matter for ordering).</summary>
    private static bool TryTimestamp(ReadOnlySpan<char> s, out DateTimeOffset time)
    {
        time = default;
        var dot = s.IndexOf('.');
        if (dot <= 0 || !long.TryParse(s[..dot], NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            || !long.TryParse(s[(dot + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var frac))
        {
            return false;
        }

        var digits = s.Length - dot - 1;
        if (digits is < 1 or > 9 || seconds > 253_402_300_799L)
        {
            return false;
        }

        for (var d = digits; d < 7; d++)
        {
            frac *= 10;
        }

        for (var d = digits; d > 7; d--)
        {
            frac /= 10;
        }

        time = new DateTimeOffset(DateTime.UnixEpoch.Ticks + (seconds * TimeSpan.TicksPerSecond) + frac, TimeSpan.Zero);
        return true;
    }
}

/// <summary>
/// Strings shared between events: one instance per distinct text, looked up by span so a hit allocates nothing.
/// Bounded: when full it starts over, which costs a few allocations and never a wrong answer.
/// </summary>
internal sealed class TextCache(int capacity)
{
    private readonly HashSet<string> _set = new(StringComparer.Ordinal);

    public string Get(ReadOnlySpan<char> text)
    {
        if (text.IsEmpty)
        {
            return "";
        }

        var lookup = _set.GetAlternateLookup<ReadOnlySpan<char>>();
        if (lookup.TryGetValue(text, out var known))
        {
            return known;
        }

        if (_set.Count >= capacity)
        {
            _set.Clear();
        }

        var created = text.ToString();
        _set.Add(created);
        return created;
    }
}

/// <summary>Decoded fds by their decoration text ("21&lt;TCP:[127.0.0.1:3000-&gt;127.0.0.1:45678]&gt;"); bounded like <see cref="TextCache"/>.</summary>
internal sealed class FdCache(int capacity)
{
    private readonly Dictionary<string, FileDescriptorInfo> _map = new(StringComparer.Ordinal);

    public bool TryGet(ReadOnlySpan<char> decoration, out FileDescriptorInfo fd) =>
        _map.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(decoration, out fd!);

    public void Add(ReadOnlySpan<char> decoration, FileDescriptorInfo fd)
    {
        if (_map.Count >= capacity)
        {
            _map.Clear();
        }

        _map[decoration.ToString()] = fd;
    }
}
