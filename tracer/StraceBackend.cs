using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Tracer;

/// <summary>
/// One <c>strace -f -p PID</c> per function process, its output parsed as it streams. Options are those Debian 12's
/// strace 6.1 accepts with <c>-p</c>: <c>-f</c> (children), <c>-ttt</c> (epoch microseconds), <c>-T</c> (durations),
/// <c>-yy</c> (paths and socket endpoints of fds), <c>-s N</c> (bounded strings), <c>-e trace=</c> (only our calls, so
/// the others cost their two ptrace stops and no formatting); <c>--seccomp-bpf</c> does not work with <c>-p</c>, so
/// every call of the function stops it twice, and strace runs at real-time priority so those stops are short on a busy
/// machine (see tracer/README.md).
/// </summary>
internal sealed partial class StraceBackend(EventSink sink, TracerOptions options, ILogger<StraceBackend> logger) : ITraceBackend
{
    private static readonly string TraceSet = "trace=" + string.Join(',', StraceLineParser.TracedSyscalls.Order(StringComparer.Ordinal));
    private readonly ConcurrentDictionary<int, (ToolProcess Tool, Task Pump)> _attached = new();
    private int _priorityWarned;

    public string Name => "strace";

    public Task StartAsync(CancellationToken ct)
    {
        Prerequisites.RequireStrace();
        return Task.CompletedTask;
    }

    public async Task<bool> AttachAsync(FunctionProcess process, CancellationToken ct)
    {
        var pid = process.Pid;
        if (ProcFs.TracedByOurTool(pid))
        {
            LogFollowed(logger, pid, process.Identity.Function);
            return true; // its events already flow, through the tracer of the function that started it
        }

        var tool = ToolProcess.Start("strace",
        [
            "-f", "-ttt", "-T", "-yy", "-s", options.MaxDataBytes.ToString(CultureInfo.InvariantCulture), "-e", TraceSet,
            "-o", "/proc/self/fd/1", "-p", pid.ToString(CultureInfo.InvariantCulture),
        ]);
        RaisePriority(tool.Pid);
        var parser = new StraceLineParser(options.MaxDataBytes, ProcFs.TaskIds);
        parser.RegisterParent(pid, process.Ppid);
        foreach (var tid in ProcFs.Threads(pid))
        {
            parser.RegisterThread(tid, pid);
        }

        var attached = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var errors = PumpErrorsAsync(tool, pid, attached);
        var pump = Task.Run(() => PumpAsync(tool, parser), CancellationToken.None);
        _attached[pid] = (tool, Task.WhenAll(pump, errors));
        var outcome = await attached.Task.WaitAsync(TimeSpan.FromSeconds(10), ct);
        if (outcome)
        {
            sink.Counters.Attached();
            LogAttached(logger, pid, process.Identity.Function, process.Identity.Instance);
        }
        else
        {
            sink.Counters.AttachFailed();
            if (_attached.TryRemove(pid, out var entry))
            {
                await entry.Tool.DisposeAsync();
            }
        }

        return outcome;
    }

    /// <summary>See <see cref="TracerOptions.StraceRealtimePriority"/>; without CAP_SYS_NICE strace stays a normal process (said once).</summary>
    private void RaisePriority(int pid)
    {
        if (Prerequisites.TryRaiseToRealtime(pid, options.StraceRealtimePriority) is { } reason && Interlocked.Exchange(ref _priorityWarned, 1) == 0)
        {
            LogNoRealtime(logger, options.StraceRealtimePriority, reason);
        }
    }

    private async Task PumpAsync(ToolProcess tool, StraceLineParser parser)
    {
        using var lines = new Utf8LineReader(tool.Output.BaseStream);
        var reported = 0L;
        while (await lines.FillAsync())
        {
            ParseAvailable(lines, parser);
            if (parser.Malformed != reported)
            {
                sink.Counters.AddParseErrors(parser.Malformed - reported);
                reported = parser.Malformed;
            }
        }
    }

    /// <summary>Every complete line read so far, parsed from the read buffer (no string per line).</summary>
    private void ParseAvailable(Utf8LineReader lines, StraceLineParser parser)
    {
        while (lines.TryReadLine(out ReadOnlySpan<char> line))
        {
            var kind = parser.Parse(line, out var evt);
            if (kind == StraceLineKind.Event)
            {
                sink.Publish(evt!);
            }
            else if (kind == StraceLineKind.Malformed && parser.Malformed <= 3)
            {
                LogMalformed(logger, new string(line.Length > 300 ? line[..300] : line));
            }
        }
    }

    /// <summary>strace says on stderr whether it attached ("Process N attached") or why not (EPERM, ESRCH when the target exited).</summary>
    private async Task PumpErrorsAsync(ToolProcess tool, int pid, TaskCompletionSource<bool> attached)
    {
        while (await tool.Error.ReadLineAsync() is { } line)
        {
            if (line.Contains($"Process {pid} attached", StringComparison.Ordinal))
            {
                attached.TrySetResult(true);
            }
            else if (line.Contains("attach:", StringComparison.Ordinal) || line.Contains("No such process", StringComparison.Ordinal)
                     || line.Contains("Operation not permitted", StringComparison.Ordinal))
            {
                LogAttachFailed(logger, pid, line);
                attached.TrySetResult(false);
            }
        }

        attached.TrySetResult(false); // strace ended without attaching: the target was gone
    }

    public async ValueTask DetachAsync(FunctionProcess process)
    {
        if (_attached.TryRemove(process.Pid, out var entry))
        {
            await entry.Tool.DisposeAsync();
            await entry.Pump.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
            sink.Counters.Detached();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var pid in _attached.Keys.ToList())
        {
            if (_attached.TryRemove(pid, out var entry))
            {
                await entry.Tool.DisposeAsync();
                sink.Counters.Detached();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "strace runs without real-time priority {Priority} ({Reason}): traced functions wait longer for it on a busy machine")]
    private static partial void LogNoRealtime(ILogger logger, int priority, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "strace line not understood (skipped, counted): {Line}")]
    private static partial void LogMalformed(ILogger logger, string line);

    [LoggerMessage(Level = LogLevel.Information, Message = "strace attached to pid {Pid} ({Function}/{Instance})")]
    private static partial void LogAttached(ILogger logger, int pid, string function, string instance);

    [LoggerMessage(Level = LogLevel.Warning, Message = "strace could not attach to pid {Pid}: {Reason}")]
    private static partial void LogAttachFailed(ILogger logger, int pid, string reason);

    [LoggerMessage(Level = LogLevel.Debug, Message = "pid {Pid} ({Function}) is followed already by the strace of the process that started it")]
    private static partial void LogFollowed(ILogger logger, int pid, string function);
}
