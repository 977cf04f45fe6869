using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using FaaSMon.Tracer;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>Takes one instance's snapshot into a folder; the service names, checks and publishes the folder.</summary>
internal interface IInstanceSnapshotter
{
    /// <summary>
    /// Writes the snapshot's files into <paramref name="directory"/> and returns the manifest without its file list.
    /// </summary>
    /// <exception cref="TargetGoneException">The target exited before or during the snapshot.</exception>
    /// <exception cref="SizeLimitException">The byte budget ran out.</exception>
    Task<InstanceSnapshot> SnapshotAsync(SnapshotTarget target, string directory, BudgetScope budget, CancellationToken ct);
}

/// <summary>
/// Local mode (LocalFaaS containers, or any host process): a core dump of the resident pages with the instance frozen
/// (<see cref="ResidentCoreDumper"/>, the default) or with <c>gcore</c>, the <c>/proc</c> state (maps, status, command
/// line, cwd, environment with secrets redacted, open fds with their endpoints) and a tar of the instance's private
/// <c>/tmp</c>. The target keeps running: either dumper stops it only while it copies its memory.
/// </summary>
internal sealed class LocalSnapshotter(SnapshotOptions options) : IInstanceSnapshotter
{
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(10);

    public async Task<InstanceSnapshot> SnapshotAsync(SnapshotTarget target, string directory, BudgetScope budget, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var createdAt = DateTimeOffset.UtcNow;
        var pid = target.Pid ?? options.ResolvePid?.Invoke(target) ?? FindByCgroup(target.Function, target.Instance)
            ?? throw new TargetGoneException(0, $"no running process for instance {target.Instance} of {target.Function}");
        var ticks = ProcessState.StartTicks(pid) ?? throw new TargetGoneException(pid, $"process {pid.ToString(CultureInfo.InvariantCulture)} of {target.Instance} is not running");
        var rssBefore = ProcessState.Memory(pid);
        var parts = new List<SnapshotPart>();

        long toolPeak = 0;
        CoreDumpInfo? core = null;
        if (options.CoreDump && options.CoreDumper == CoreDumper.Gcore)
        {
            (var corePart, toolPeak) = await CoreDumpAsync(pid, ticks, directory, budget, ct);
            parts.Add(corePart);
        }
        else if (options.CoreDump)
        {
            (var corePart, core) = await ResidentCoreAsync(target, pid, ticks, directory, budget, ct);
            parts.Add(corePart);
            toolPeak = ResidentCoreDumper.BufferBytes;
        }

        var rssAfter = ProcessState.Memory(pid);

        parts.Add(Timed("proc", () => ProcState(pid, directory, budget)));
        EnsureSame(pid, ticks, "reading /proc");

        IReadOnlyList<string> skipped = [];
        parts.Add(Timed("tmp", () =>
        {
            var tar = Path.Combine(directory, "tmp.tar");
            var result = TmpArchiver.Archive($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/root/tmp", tar + ".part", options.MaxTmpBytes, options.MaxTmpEntries, budget);
            File.Move(tar + ".part", tar);
            skipped = result.Skipped;
        }));
        EnsureSame(pid, ticks, "copying /tmp");

        var failed = parts.Where(p => p.Error is not null).ToList();
        return new InstanceSnapshot
        {
            Function = target.Function,
            Instance = target.Instance,
            Mode = "local",
            Pid = pid,
            CreatedAt = createdAt,
            Status = failed.Count == 0 ? SnapshotStatus.Complete : SnapshotStatus.Failed,
            Error = failed.Count == 0 ? null : string.Join("; ", failed.Select(p => $"{p.Name}: {p.Error}")),
            DurationMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            Parts = parts,
            Memory = new SnapshotMemory(rssBefore, rssAfter, toolPeak + TmpArchiver.BufferBytes),
            Skipped = skipped,
            Core = core,
        };
    }

    /// <summary>
    /// The resident dumper (<see cref="ResidentCoreDumper"/>) on a pool thread: the instance frozen, its present pages
    /// copied into <c>core.part</c>, renamed <c>core</c>. A read or write error or the timeout fails the part.
    /// </summary>
    private async Task<(SnapshotPart Part, CoreDumpInfo? Info)> ResidentCoreAsync(SnapshotTarget target, int pid, long ticks, string directory, BudgetScope budget, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var part = Path.Combine(directory, "core.part");
        try
        {
            var info = await Task.Run(() => ResidentCoreDumper.Dump(pid, ticks, target.Function, target.Instance, part, budget, options.ToolTimeout, ct), ct);
            File.Move(part, Path.Combine(directory, "core"));
            return (new SnapshotPart("core", sw.Elapsed.TotalMilliseconds), info);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or TimeoutException)
        {
            TryDelete(part);
            return (new SnapshotPart("core", sw.Elapsed.TotalMilliseconds, e.Message), null);
        }
    }

    /// <summary>
    /// <c>gcore -o PREFIX PID</c> (it writes <c>PREFIX.PID</c>) in its own process group, watched every few ms: the
    /// core's growth against the budget (killed when it would pass it) and the tools' peak resident memory.
    /// </summary>
    private async Task<(SnapshotPart Part, long PeakBytes)> CoreDumpAsync(int pid, long ticks, string directory, BudgetScope budget, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var prefix = Path.Combine(directory, "core.part");
        var written = $"{prefix}.{pid.ToString(CultureInfo.InvariantCulture)}";
        long peak = 0;
        ToolProcess tool;
        try
        {
            tool = ToolProcess.Start("gcore", ["-o", prefix, pid.ToString(CultureInfo.InvariantCulture)]);
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            return (new SnapshotPart("gcore", sw.Elapsed.TotalMilliseconds, $"gcore could not be started ({e.Message}); install gdb"), 0);
        }

        string? error = null;
        string stderr;
        await using (tool)
        {
            var output = tool.Output.ReadToEndAsync(ct);
            var errors = tool.Error.ReadToEndAsync(ct);
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(options.ToolTimeout);
            var exited = tool.WaitForExitAsync(timeout.Token);
            try
            {
                while (!exited.IsCompleted)
                {
                    peak = Math.Max(peak, TreeMemory(tool.Pid));
                    if (File.Exists(written) && new FileInfo(written).Length > budget.Remaining)
                    {
                        throw new SizeLimitException($"the core dump passed the {budget.Remaining} bytes left of the snapshot budget");
                    }

                    await Task.WhenAny(exited, Task.Delay(Poll, CancellationToken.None));
                }

                await exited;
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                error = $"gcore did not finish within {options.ToolTimeout.TotalSeconds:F0} s";
            }

            // disposing kills the group if it still runs; the output readers end with it
            if (error is null && tool.ExitCode != 0)
            {
                error = $"gcore exited with {tool.ExitCode.ToString(CultureInfo.InvariantCulture)}";
            }

            stderr = error is null ? "" : await ReadQuietly(errors);
            _ = output;
        }

        if (ProcessState.StartTicks(pid) != ticks)
        {
            throw new TargetGoneException(pid, $"process {pid.ToString(CultureInfo.InvariantCulture)} exited during the core dump{(stderr.Length > 0 ? $" (gcore: {Tail(stderr)})" : "")}");
        }

        if (error is null && !File.Exists(written))
        {
            error = "gcore wrote no core file";
        }

        if (error is not null)
        {
            TryDelete(written);
            return (new SnapshotPart("gcore", sw.Elapsed.TotalMilliseconds, stderr.Length > 0 ? $"{error}: {Tail(stderr)}" : error), peak);
        }

        budget.Reserve(new FileInfo(written).Length, "the core dump");
        File.Move(written, Path.Combine(directory, "core"));
        return (new SnapshotPart("gcore", sw.Elapsed.TotalMilliseconds), peak);
    }

    private static void ProcState(int pid, string directory, BudgetScope budget)
    {
        var cmdline = ProcessState.CommandLine(pid);
        var process = new
        {
            pid,
            cmdline,
            cwd = ProcessState.Link(pid, "cwd"),
            exe = ProcessState.Link(pid, "exe"),
            fds = ProcessState.OpenFds(pid),
        };
        Write(directory, "maps", ProcessState.Read(pid, "maps"), budget);
        Write(directory, "status", ProcessState.Read(pid, "status"), budget);
        Write(directory, "environ", Encoding.UTF8.GetBytes(ProcessState.RedactedEnvironment(pid)), budget);
        Write(directory, "process.json", JsonSerializer.SerializeToUtf8Bytes(process, SnapshotJson.Options), budget);
    }

    /// <summary>Written under a temporary name and renamed, so a file of a snapshot is whole or absent.</summary>
    internal static void Write(string directory, string name, byte[] content, BudgetScope budget)
    {
        budget.Reserve(content.Length, name);
        var path = Path.Combine(directory, name);
        File.WriteAllBytes(path + ".part", content);
        File.Move(path + ".part", path);
    }

    private static SnapshotPart Timed(string name, Action part)
    {
        var sw = Stopwatch.StartNew();
        part();
        return new SnapshotPart(name, sw.Elapsed.TotalMilliseconds);
    }

    private static void EnsureSame(int pid, long ticks, string during)
    {
        if (ProcessState.StartTicks(pid) != ticks)
        {
            throw new TargetGoneException(pid, $"process {pid.ToString(CultureInfo.InvariantCulture)} exited while {during}");
        }
    }

    /// <summary>Peak resident memory of a tool and its children (gcore is a script that runs gdb).</summary>
    private static long TreeMemory(int root)
    {
        long total = 0;
        var pending = new Stack<int>([root]);
        while (pending.Count > 0)
        {
            var pid = pending.Pop();
            total += ProcessState.Memory(pid, "VmHWM") ?? 0;
            try
            {
                foreach (var child in File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task/{pid.ToString(CultureInfo.InvariantCulture)}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries))
                {
                    pending.Push(int.Parse(child, CultureInfo.InvariantCulture));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                // exited meanwhile
            }
        }

        return total;
    }

    /// <summary>
    /// The function process of a LocalFaaS instance through its cgroup (<c>…/faasmon/FUNCTION/INSTANCE</c>): the
    /// <c>node</c> process, not the fnbox init that is PID 1 of the container.
    /// </summary>
    internal static int? FindByCgroup(string function, string instance)
    {
        var suffix = $"/faasmon/{function}/{instance}";
        var found = new List<int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir.AsSpan()), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                if (File.ReadLines(Path.Combine(dir, "cgroup")).Any(l => l.EndsWith(suffix, StringComparison.Ordinal))
                    && ProcessState.CommandLine(pid) is [var exe, ..] && Path.GetFileName(exe) == "node")
                {
                    found.Add(pid);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or TargetGoneException)
            {
                // gone meanwhile
            }
        }

        return found.Count == 0 ? null : found.Min();
    }

    private static async Task<string> ReadQuietly(Task<string> read)
    {
        try
        {
            return (await read.WaitAsync(TimeSpan.FromSeconds(1))).Trim();
        }
        catch (Exception e) when (e is TimeoutException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            return "";
        }
    }

    private static string Tail(string text)
    {
        var lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("warning:", StringComparison.Ordinal)).TakeLast(2);
        var joined = string.Join(" / ", lines);
        return joined.Length > 300 ? joined[..300] : joined;
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // the folder is removed with the snapshot anyway
        }
    }
}
