using System.Diagnostics;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Tracer;

/// <summary>A function process the tracer follows.</summary>
/// <param name="StartTicks">Start time in clock ticks after boot: with the pid, the identity of the process (pids are reused).</param>
/// <param name="DiscoveryLatency">From the process's start to its discovery.</param>
internal sealed record FunctionProcess(int Pid, int Ppid, long StartTicks, string CommandLine, FunctionIdentity Identity,
    DateTimeOffset StartedAt, DateTimeOffset DiscoveredAt, TimeSpan DiscoveryLatency);

/// <summary>A process appeared (<see cref="Started"/>) or went away.</summary>
internal sealed record DiscoveryChange(FunctionProcess Process, bool Started);

/// <summary>
/// Finds processes whose command line contains a pattern (as <c>pgrep -f</c>) by scanning <c>/proc</c> every
/// interval, and maps each to its function through its cgroups (LocalFaaS, faasd) or the Docker API.
/// Polling is what works everywhere (no netlink proc connector in containers); the interval bounds how late
/// a new process is seen. Most passes are quick: they list <c>/proc</c> and read only the pids that are new since
/// the last pass, plus the young ones that did not match (they may still exec the function). Once a second a
/// full pass reads every process's stat, which is what catches a pid reused between two passes or a process that
/// execs the function late in life. Reading every stat every 50 ms cost the tracer about 6 % of a core on an idle
/// machine of 70 processes, and that, not the tracing, was most of what eBPF still cost the functions.
/// </summary>
internal sealed partial class ProcessDiscovery(string pattern, DockerIdentityResolver? docker, ILogger<ProcessDiscovery> logger)
{
    private readonly Dictionary<int, FunctionProcess> _known = [];
    private readonly Dictionary<int, long> _notMatching = [];
    private readonly HashSet<int> _listed = [];
    private readonly int _self = Environment.ProcessId;
    private long? _lastFullPass;

    /// <summary>How often a pass reads every process, not only the new and young ones.</summary>
    internal static readonly TimeSpan FullPassInterval = TimeSpan.FromSeconds(1);

    public IReadOnlyCollection<FunctionProcess> Current => _known.Values;

    /// <summary>
    /// One pass over /proc: new matching processes, and the ones that exited (or whose pid now belongs to another
    /// process). <paramref name="full"/>: read every process; otherwise only those new since the last pass and the
    /// young non-matching ones, unless a full pass is due.
    /// </summary>
    public async Task<List<DiscoveryChange>> ScanAsync(CancellationToken ct, bool full = true)
    {
        var now0 = Stopwatch.GetTimestamp();
        if (full || _lastFullPass is not { } last || Stopwatch.GetElapsedTime(last, now0) >= FullPassInterval)
        {
            full = true;
            _lastFullPass = now0;
        }

        var changes = new List<DiscoveryChange>();
        var seen = new HashSet<int>();
        var youngSince = DateTimeOffset.UtcNow.AddSeconds(-2);
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir.AsSpan()), NumberStyles.None, CultureInfo.InvariantCulture, out var pid) || pid == _self)
            {
                continue;
            }

            // listed last time and nothing to recheck: a quick pass trusts that it is the same process (a pid is
            // reused only after the kernel has gone through every other free pid; the full pass checks anyway). An exec
            // keeps pid and start ticks, so a non-matching process is read again while young (launchers exec the
            // function at once) and on every full pass.
            if (!full && _listed.Contains(pid)
                && (_known.ContainsKey(pid) || !_notMatching.TryGetValue(pid, out var startTicks) || ProcFs.StartTime(startTicks) < youngSince))
            {
                seen.Add(pid);
                continue;
            }

            if (ProcFs.Stat(pid) is not { } stat)
            {
                continue;
            }

            seen.Add(pid);
            if (_known.TryGetValue(pid, out var known))
            {
                if (known.StartTicks == stat.StartTicks)
                {
                    continue;
                }

                _known.Remove(pid); // pid reused by another process
                changes.Add(new DiscoveryChange(known, Started: false));
            }

            var cmdline = ProcFs.CommandLine(pid);
            if (cmdline is null || !cmdline.Contains(pattern, StringComparison.Ordinal) || IsOurTool(cmdline))
            {
                _notMatching[pid] = stat.StartTicks;
                continue;
            }

            _notMatching.Remove(pid);
            var identity = await IdentifyAsync(pid, ct);
            var now = DateTimeOffset.UtcNow;
            var started = ProcFs.StartTime(stat.StartTicks);
            // start ticks count in 10 ms steps from a boot time read every 10 s: a process found at once can look found before it started
            var latency = now > started ? now - started : TimeSpan.Zero;
            var process = new FunctionProcess(pid, stat.Ppid, stat.StartTicks, cmdline, identity, started, now, latency);
            _known[pid] = process;
            changes.Add(new DiscoveryChange(process, Started: true));
            LogFound(logger, pid, identity.Function, identity.Instance, latency.TotalMilliseconds);
        }

        foreach (var pid in _known.Keys.Where(p => !seen.Contains(p)).ToList())
        {
            changes.Add(new DiscoveryChange(_known[pid], Started: false));
            _known.Remove(pid);
        }

        foreach (var pid in _notMatching.Keys.Where(p => !seen.Contains(p)).ToList())
        {
            _notMatching.Remove(pid);
        }

        _listed.Clear();
        _listed.UnionWith(seen);
        return changes;
    }

    /// <summary>strace/bpftrace command lines name the pattern's process only by pid, but a shell wrapper could: never trace our own tools.</summary>
    private static bool IsOurTool(string cmdline) =>
        cmdline.StartsWith("strace ", StringComparison.Ordinal) || cmdline.StartsWith("bpftrace ", StringComparison.Ordinal)
        || cmdline.Contains("/strace ", StringComparison.Ordinal) || cmdline.Contains("/bpftrace ", StringComparison.Ordinal);

    internal async Task<FunctionIdentity> IdentifyAsync(int pid, CancellationToken ct)
    {
        var text = ProcFs.Cgroup(pid);
        if (text is null)
        {
            return FunctionIdentity.Unknown;
        }

        var (identity, containerId) = CgroupIdentity.Parse(text);
        if (identity is not null)
        {
            return identity;
        }

        if (containerId is not null && docker is not null)
        {
            var sw = Stopwatch.StartNew();
            var fromDocker = await docker.ResolveAsync(containerId, ct);
            LogDocker(logger, containerId, fromDocker?.Function ?? "(not a function)", sw.ElapsedMilliseconds);
            if (fromDocker is not null)
            {
                return fromDocker;
            }
        }

        return FunctionIdentity.Unknown;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "found pid {Pid}: function {Function} instance {Instance}, {LatencyMs:F0} ms after it started")]
    private static partial void LogFound(ILogger logger, int pid, string function, string instance, double latencyMs);

    [LoggerMessage(Level = LogLevel.Debug, Message = "container {ContainerId} is {Function} (Docker API, {Ms} ms)")]
    private static partial void LogDocker(ILogger logger, string containerId, string function, long ms);
}
