using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Tracer;

/// <summary>
/// What the two ptrace backends share: one tracer process (strace, faasmon-ptrace) per function process, started at its
/// attach at real-time priority (<see cref="TracerOptions.StraceRealtimePriority"/>), counted once it says it attached,
/// stopped with its process group at the function's exit or the end. A process the tracer of its parent follows already
/// (a function's child that matches the pattern too) is not attached twice: a second ptrace would fail with EPERM.
/// </summary>
internal abstract partial class ToolPerProcessBackend(EventSink sink, TracerOptions options, ILogger logger) : ITraceBackend
{
    private readonly ConcurrentDictionary<int, (ToolProcess Tool, Task Pump)> _attached = new();
    private int _priorityWarned;

    public abstract string Name { get; }

    /// <summary>The tracer's name in log lines.</summary>
    protected abstract string Tool { get; }

    protected EventSink Sink => sink;

    protected TracerOptions Options => options;

    protected ILogger Logger => logger;

    public abstract Task StartAsync(CancellationToken ct);

    /// <summary>Starts the tracer on a process: it, what says whether it attached (false when it could not), and its pumps.</summary>
    protected abstract (ToolProcess Tool, Task<bool> Attached, Task Pump) StartTool(FunctionProcess process);

    public async Task<bool> AttachAsync(FunctionProcess process, CancellationToken ct)
    {
        var pid = process.Pid;
        if (ProcFs.TracedByOurTool(pid))
        {
            LogFollowed(logger, pid, process.Identity.Function, Tool);
            return true; // its events already flow, through the tracer of the function that started it
        }

        var (tool, attached, pump) = StartTool(process);
        if (Prerequisites.TryRaiseToRealtime(tool.Pid, options.StraceRealtimePriority) is { } reason && Interlocked.Exchange(ref _priorityWarned, 1) == 0)
        {
            LogNoRealtime(logger, Tool, options.StraceRealtimePriority, reason);
        }

        _attached[pid] = (tool, pump);
        bool outcome;
        try
        {
            outcome = await attached.WaitAsync(TimeSpan.FromSeconds(10), ct);
        }
        catch (TimeoutException)
        {
            outcome = false;
        }

        if (outcome)
        {
            sink.Counters.Attached();
            LogAttached(logger, Tool, pid, process.Identity.Function, process.Identity.Instance);
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

    public async ValueTask DetachAsync(FunctionProcess process)
    {
        if (_attached.TryRemove(process.Pid, out var entry))
        {
            await StopAsync(entry);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var pid in _attached.Keys.ToList())
        {
            if (_attached.TryRemove(pid, out var entry))
            {
                await StopAsync(entry);
            }
        }
    }

    /// <summary>SIGTERM to the tracer's group: strace detaches, faasmon-ptrace writes what waits; then what it wrote is read.</summary>
    private async Task StopAsync((ToolProcess Tool, Task Pump) entry)
    {
        await entry.Tool.DisposeAsync();
        await entry.Pump.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        sink.Counters.Detached();
    }

    /// <summary>A line the parser did not understand, said for the first few only.</summary>
    protected void Malformed(long count, ReadOnlySpan<char> line)
    {
        if (count <= 3)
        {
            LogMalformed(logger, Tool, new string(line.Length > 300 ? line[..300] : line));
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Tool} runs without real-time priority {Priority} ({Reason}): traced functions wait longer for it on a busy machine")]
    private static partial void LogNoRealtime(ILogger logger, string tool, int priority, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Tool} line not understood (skipped, counted): {Line}")]
    private static partial void LogMalformed(ILogger logger, string tool, string line);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Tool} attached to pid {Pid} ({Function}/{Instance})")]
    private static partial void LogAttached(ILogger logger, string tool, int pid, string function, string instance);

    [LoggerMessage(Level = LogLevel.Debug, Message = "pid {Pid} ({Function}) is followed already by the {Tool} of the process that started it")]
    private static partial void LogFollowed(ILogger logger, int pid, string function, string tool);
}
