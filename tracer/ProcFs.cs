using System.Globalization;

namespace FaaSMon.Tracer;

/// <summary>The few <c>/proc</c> reads the tracer needs, tolerant of processes that vanish between two reads.</summary>
internal static class ProcFs
{
    private static readonly Lazy<long> BootTimeTicks = new(ReadBootTime);

    /// <summary>The command line with NULs as spaces, or null when the process is gone.</summary>
    public static string? CommandLine(int pid)
    {
        try
        {
            var bytes = File.ReadAllBytes($"/proc/{pid}/cmdline");
            if (bytes.Length == 0)
            {
                return null; // kernel thread or a zombie
            }

            for (var i = 0; i < bytes.Length; i++)
            {
                if (bytes[i] == 0)
                {
                    bytes[i] = (byte)' ';
                }
            }

            return System.Text.Encoding.UTF8.GetString(bytes).TrimEnd();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Parent pid and start time (clock ticks after boot, which tells a reused pid from the old process); null when gone.</summary>
    public static (int Ppid, long StartTicks)? Stat(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid}/stat");
            var close = text.LastIndexOf(')'); // comm may hold spaces and parentheses
            var fields = text[(close + 2)..].Split(' ');
            return (int.Parse(fields[1], CultureInfo.InvariantCulture), long.Parse(fields[19], CultureInfo.InvariantCulture));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>Tgid and parent of any task, threads included (<c>/proc/TID</c> resolves even though it is not listed).</summary>
    public static (int Tgid, int Ppid)? TaskIds(int tid)
    {
        try
        {
            int tgid = 0, ppid = 0;
            foreach (var line in File.ReadLines($"/proc/{tid}/status"))
            {
                if (line.StartsWith("Tgid:", StringComparison.Ordinal))
                {
                    tgid = int.Parse(line.AsSpan(5).Trim(), CultureInfo.InvariantCulture);
                }
                else if (line.StartsWith("PPid:", StringComparison.Ordinal))
                {
                    ppid = int.Parse(line.AsSpan(5).Trim(), CultureInfo.InvariantCulture);
                    break;
                }
            }

            return tgid > 0 ? (tgid, ppid) : null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>
    /// True when pid is ptrace'd by a process this one started (an strace or faasmon-ptrace of ours): a function's child
    /// that matches the pattern too is followed from its fork by its parent's tracer, and a second attach would fail.
    /// </summary>
    public static bool TracedByOurTool(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("TracerPid:", StringComparison.Ordinal));
            return line is not null && int.Parse(line.AsSpan(10).Trim(), CultureInfo.InvariantCulture) is > 0 and var tracer
                && Stat(tracer)?.Ppid == Environment.ProcessId;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return false;
        }
    }

    public static string? Cgroup(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cgroup");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public static IEnumerable<int> Threads(int pid)
    {
        string[] dirs;
        try
        {
            dirs = Directory.GetDirectories($"/proc/{pid}/task");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            yield break;
        }

        foreach (var dir in dirs)
        {
            if (int.TryParse(Path.GetFileName(dir.AsSpan()), NumberStyles.None, CultureInfo.InvariantCulture, out var tid))
            {
                yield return tid;
            }
        }
    }

    /// <summary>
    /// When a process started, from its start ticks (USER_HZ is 100 on Linux). Measured against /proc/uptime rather than
    /// btime, which is rounded to whole seconds and would make discovery latencies off by up to a second.
    /// </summary>
    public static DateTimeOffset StartTime(long startTicks) => BootTime() + TimeSpan.FromSeconds(startTicks / 100.0);

    private sealed record BootClock(long ReadAt, DateTimeOffset Boot);

    private static volatile BootClock? s_boot;

    /// <summary>
    /// The wall-clock time of boot (now minus /proc/uptime), read again every 10 s so that a wall-clock step is
    /// followed. Discovery asks for start times of every young process on every pass: reading /proc/uptime each
    /// time was over a thousand opens a second.
    /// </summary>
    private static DateTimeOffset BootTime()
    {
        var now = Environment.TickCount64;
        if (s_boot is { } cached && now - cached.ReadAt < 10_000)
        {
            return cached.Boot;
        }

        DateTimeOffset boot;
        try
        {
            var uptime = File.ReadAllText("/proc/uptime");
            var seconds = double.Parse(uptime.AsSpan(0, uptime.IndexOf(' ')), NumberStyles.Float, CultureInfo.InvariantCulture);
            boot = DateTimeOffset.UtcNow - TimeSpan.FromSeconds(seconds);
        }
        catch (Exception e) when (e is IOException or FormatException)
        {
            boot = new(BootTimeTicks.Value, TimeSpan.Zero);
        }

        s_boot = new BootClock(now, boot);
        return boot;
    }

    private static long ReadBootTime()
    {
        foreach (var line in File.ReadLines("/proc/stat"))
        {
            if (line.StartsWith("btime ", StringComparison.Ordinal))
            {
                return DateTime.UnixEpoch.Ticks + (long.Parse(line.AsSpan(6), CultureInfo.InvariantCulture) * TimeSpan.TicksPerSecond);
            }
        }

        return DateTime.UnixEpoch.Ticks;
    }
}
