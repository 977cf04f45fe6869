using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>
/// Holds a function instance still while its memory is copied, so the core is one moment's image: the instance's
/// cgroup v2 frozen through <c>cgroup.freeze</c> when it has one of its own (<c>…/faasmon/FUNCTION/INSTANCE</c>), or
/// else SIGSTOP of the process (every thread of it), SIGCONT on dispose. Dispose always thaws; a process that was
/// stopped before is left stopped.
/// </summary>
internal sealed class InstanceFreeze : IDisposable
{
    private const int SigStop = 19;
    private const int SigCont = 18;
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(1);
    private readonly int _pid;
    private readonly string? _cgroup;
    private readonly bool _signalled;
    private readonly Stopwatch _frozenFor;
    private bool _thawed;

    private InstanceFreeze(int pid, string? cgroup, bool signalled, string method)
    {
        _pid = pid;
        _cgroup = cgroup;
        _signalled = signalled;
        Method = method;
        _frozenFor = Stopwatch.StartNew();
    }

    /// <summary>"cgroup DIR", "sigstop", or "none (already stopped)".</summary>
    public string Method { get; }

    /// <summary>Set when the freeze did not settle within a second (a thread in uninterruptible sleep); the copy goes on.</summary>
    public string? Warning { get; private set; }

    /// <summary>How long the instance has been (or was, once thawed) held still, from the freeze request.</summary>
    public TimeSpan Frozen => _frozenFor.Elapsed;

    /// <exception cref="TargetGoneException">The process is not there to freeze.</exception>
    public static InstanceFreeze Freeze(int pid, string function, string instance)
    {
        if (FreezableCgroup(pid, function, instance) is { } dir)
        {
            File.WriteAllText(Path.Combine(dir, "cgroup.freeze"), "1");
            var freeze = new InstanceFreeze(pid, dir, signalled: false, $"cgroup {dir}");
            while (!IsFrozen(dir))
            {
                if (freeze.Frozen > Settle)
                {
                    freeze.Warning = "the cgroup did not report frozen within 1 s";
                    break;
                }

                Thread.Sleep(0);
            }

            return freeze;
        }

        if (AllStopped(pid))
        {
            return new InstanceFreeze(pid, null, signalled: false, "none (already stopped)");
        }

        if (Kill(pid, SigStop) != 0)
        {
            throw new TargetGoneException(pid, $"process {pid.ToString(CultureInfo.InvariantCulture)} could not be stopped (errno {Marshal.GetLastPInvokeError().ToString(CultureInfo.InvariantCulture)})");
        }

        var stop = new InstanceFreeze(pid, null, signalled: true, "sigstop");
        while (!AllStopped(pid))
        {
            if (stop.Frozen > Settle)
            {
                stop.Warning = "not every thread stopped within 1 s";
                break;
            }

            Thread.Sleep(0);
        }

        return stop;
    }

    public void Dispose()
    {
        if (_thawed)
        {
            return;
        }

        _thawed = true;
        _frozenFor.Stop();
        if (_cgroup is not null)
        {
            try
            {
                File.WriteAllText(Path.Combine(_cgroup, "cgroup.freeze"), "0");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // the cgroup is gone with its processes: nothing left to thaw
            }
        }
        else if (_signalled)
        {
            _ = Kill(_pid, SigCont);
        }
    }

    /// <summary>
    /// The instance's own cgroup v2 folder when it can be frozen: its <c>/proc/PID/cgroup</c> v2 path must end in
    /// <c>/faasmon/FUNCTION/INSTANCE</c> (so this never freezes a cgroup the monitor itself shares).
    /// </summary>
    internal static string? FreezableCgroup(int pid, string function, string instance)
    {
        string? path;
        try
        {
            path = File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/cgroup").FirstOrDefault(l => l.StartsWith("0::", StringComparison.Ordinal))?[3..];
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        if (path is null || !path.EndsWith($"/faasmon/{function}/{instance}", StringComparison.Ordinal))
        {
            return null;
        }

        var root = File.Exists("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
        var dir = root + path;
        return File.Exists(Path.Combine(dir, "cgroup.freeze")) ? dir : null;
    }

    internal static bool IsFrozen(string cgroupDir)
    {
        try
        {
            return File.ReadLines(Path.Combine(cgroupDir, "cgroup.events")).Any(l => l == "frozen 1");
        }
        catch (IOException)
        {
            return true; // removed with its processes: nothing runs in it
        }
    }

    /// <summary>Every thread in stopped (T/t), zombie or dead state; also true when the process is gone.</summary>
    internal static bool AllStopped(int pid)
    {
        string[] tasks;
        try
        {
            tasks = Directory.GetDirectories($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return true;
        }

        foreach (var task in tasks)
        {
            var state = ThreadState(task);
            if (state is not ('T' or 't' or 'Z' or 'X' or null))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The state letter of <c>/proc/…/stat</c> under <paramref name="procDir"/>, null when gone.</summary>
    internal static char? ThreadState(string procDir)
    {
        try
        {
            var stat = File.ReadAllText(Path.Combine(procDir, "stat"));
            var close = stat.LastIndexOf(')');
            return close > 0 && close + 2 < stat.Length ? stat[close + 2] : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    // DllImport, not LibraryImport: this project does not allow the unsafe code the generator emits
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Kill(int pid, int signal);
}
