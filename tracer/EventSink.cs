using System.Collections.Concurrent;
using System.Threading.Channels;
using FaaSMon.Core;

namespace FaaSMon.Tracer;

/// <summary>
/// Where every backend hands its events: stamps each with its function and instance (children inherit their
/// parent's, LocalFaaS children are also recognised by their own cgroup), makes execve/chdir paths absolute from
/// the process's working directory, counts, and writes to the one bounded channel (a full channel drops and counts).
/// Thread-safe: each strace reader publishes from its own task.
/// </summary>
internal sealed class EventSink(ChannelWriter<SyscallEvent> writer, TracerCounters counters)
{
    private readonly ConcurrentDictionary<int, FunctionIdentity> _identity = new();
    private readonly ConcurrentDictionary<int, string> _cwd = new();

    public TracerCounters Counters => counters;

    public void Register(FunctionProcess process)
    {
        _identity[process.Pid] = process.Identity;
        if (ReadCwd(process.Pid) is { } cwd)
        {
            _cwd[process.Pid] = cwd;
        }
    }

    public void Forget(int pid)
    {
        _identity.TryRemove(pid, out _);
        _cwd.TryRemove(pid, out _);
    }

    public FunctionIdentity? IdentityOf(int pid) => _identity.GetValueOrDefault(pid);

    public void Publish(SyscallEvent evt)
    {
        var identity = Identify(evt.Pid, evt.Ppid);
        var cwd = CwdOf(evt.Pid, evt.Ppid);
        if (evt is { Syscall: "chdir", Failed: false, Path: { } dir })
        {
            var absolute = dir.StartsWith('/') || cwd is null ? dir : StraceLineParser.PathJoin(cwd, dir);
            _cwd[evt.Pid] = absolute;
            evt = evt with { Path = absolute };
        }
        else if (evt.Path is { Length: > 0 } path && path[0] != '/' && cwd is not null && evt.Syscall is "execve" or "openat" or "open"
                 or "unlink" or "unlinkat" or "chmod" or "fchmodat" or "rename" or "renameat" or "renameat2")
        {
            evt = evt with { Path = StraceLineParser.PathJoin(cwd, path) };
        }

        if (evt is { Syscall: "fork", Backend: not "strace", TargetPid: > 0 } && identity is not null)
        {
            // the kernel (or faasmon-ptrace) names the child with its host pid: it belongs where its parent does and starts in its cwd.
            // bpftrace reads its per-CPU buffers one after another, so the child's first calls (libuv's chdir to a
            // spawn's cwd) can come before its parent's fork line: what they taught stays
            _identity.TryAdd(evt.TargetPid, identity);
            if (cwd is not null)
            {
                _cwd.TryAdd(evt.TargetPid, cwd);
            }
        }

        if (evt.Kind == SyscallEventKind.Exit && evt.Pid == evt.Tid)
        {
            Forget(evt.Pid);
        }

        evt = evt with { Function = identity?.Function, Instance = identity?.Instance };
        if (writer.TryWrite(evt))
        {
            counters.AddEvent();
        }
        else
        {
            counters.AddDrops(1);
        }
    }

    private FunctionIdentity? Identify(int pid, int ppid)
    {
        if (_identity.TryGetValue(pid, out var known))
        {
            return known;
        }

        if (ppid > 0 && _identity.TryGetValue(ppid, out var parent))
        {
            _identity[pid] = parent;
            return parent;
        }

        // a child forked before we learnt its parent (or reparented): its cgroup still says where it belongs
        if (ProcFs.Cgroup(pid) is { } text && CgroupIdentity.Parse(text).Identity is { } fromCgroup)
        {
            _identity[pid] = fromCgroup;
            return fromCgroup;
        }

        return null;
    }

    private string? CwdOf(int pid, int ppid)
    {
        if (_cwd.TryGetValue(pid, out var cwd))
        {
            return cwd;
        }

        // a new child starts where its parent was
        var inherited = (ppid > 0 ? _cwd.GetValueOrDefault(ppid) : null) ?? ReadCwd(pid);
        if (inherited is not null)
        {
            _cwd[pid] = inherited;
        }

        return inherited;
    }

    private static string? ReadCwd(int pid)
    {
        try
        {
            return new FileInfo($"/proc/{pid}/cwd").LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }
}
