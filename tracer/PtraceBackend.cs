using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Tracer;

/// <summary>
/// One <c>ptrace/faasmon-ptrace PID</c> per function process: our own ptrace tracer, strace's way of tracing without
/// strace's costs. It follows threads and children as <c>strace -f -p</c> does, and prints the eBPF loader's lines
/// (<see cref="EbpfLineParser"/> reads them; fds are followed from the calls that made them, as with eBPF). A traced
/// function still stops twice at every system call, which is ptrace's share; the tracer resumes it before it formats
/// anything, looks no descriptor up in /proc while it waits, and writes its lines in batches (see tracer/README.md).
/// </summary>
internal sealed partial class PtraceBackend(EventSink sink, TracerOptions options, ILogger<PtraceBackend> logger) : ITraceBackend
{
    private readonly ConcurrentDictionary<int, (ToolProcess Tool, Task Pump)> _attached = new();
    private long _monotonicOffset;
    private int _priorityWarned;

    public string Name => "ptrace";

    public static string ToolPath => Path.Combine(AppContext.BaseDirectory, "ptrace", "faasmon-ptrace");

    public Task StartAsync(CancellationToken ct)
    {
        Prerequisites.RequirePtraceTool(ToolPath);
        _monotonicOffset = EbpfLineParser.CurrentMonotonicOffsetTicks();
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

        string[] arguments = ["-s", Math.Max(1, options.MaxDataBytes).ToString(CultureInfo.InvariantCulture), pid.ToString(CultureInfo.InvariantCulture)];
        var tool = ToolProcess.Start(ToolPath, options.PtraceStopsOnly ? ["--stops-only", .. arguments] : arguments);
        if (Prerequisites.TryRaiseToRealtime(tool.Pid, options.StraceRealtimePriority) is { } reason && Interlocked.Exchange(ref _priorityWarned, 1) == 0)
        {
            LogNoRealtime(logger, options.StraceRealtimePriority, reason);
        }

        var parser = new EbpfLineParser(_monotonicOffset, options.MaxDataBytes, EbpfLineParser.LookupProcFd, Name);
        var attached = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        parser.Watching += watched => attached.TrySetResult(watched == pid);
        var pump = Task.Run(() => PumpAsync(tool, parser, attached), CancellationToken.None);
        var errors = Task.Run(() => PumpErrorsAsync(tool, pid), CancellationToken.None);
        _attached[pid] = (tool, Task.WhenAll(pump, errors));
        bool outcome;
        try
        {
            outcome = await attached.Task.WaitAsync(TimeSpan.FromSeconds(10), ct);
        }
        catch (TimeoutException)
        {
            outcome = false;
        }

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

    private async Task PumpAsync(ToolProcess tool, EbpfLineParser parser, TaskCompletionSource<bool> attached)
    {
        long errors = 0;
        while (await tool.Output.ReadLineAsync() is { } line)
        {
            var kind = parser.Parse(line, out var evt);
            if (kind == StraceLineKind.Event)
            {
                sink.Publish(evt!);
            }
            else if (kind == StraceLineKind.Malformed && parser.Malformed <= 3)
            {
                LogMalformed(logger, line.Length > 300 ? line[..300] : line);
            }

            if (parser.Malformed != errors)
            {
                sink.Counters.AddParseErrors(parser.Malformed - errors);
                errors = parser.Malformed;
            }
        }

        attached.TrySetResult(false); // the tracer ended without attaching: the target was gone, or not permitted
    }

    /// <summary>The tracer says on stderr why it could not attach (ESRCH when the target exited, EPERM); nothing else, normally.</summary>
    private async Task PumpErrorsAsync(ToolProcess tool, int pid)
    {
        while (await tool.Error.ReadLineAsync() is { } line)
        {
            LogToolError(logger, pid, line.StartsWith("faasmon-ptrace: ", StringComparison.Ordinal) ? line["faasmon-ptrace: ".Length..] : line);
        }
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
                // SIGTERM: the tracer writes what waits and ends; the kernel detaches its tracees
                await entry.Tool.DisposeAsync();
                await entry.Pump.WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
                sink.Counters.Detached();
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "faasmon-ptrace runs without real-time priority {Priority} ({Reason}): traced functions wait longer for it on a busy machine")]
    private static partial void LogNoRealtime(ILogger logger, int priority, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "faasmon-ptrace line not understood (skipped, counted): {Line}")]
    private static partial void LogMalformed(ILogger logger, string line);

    [LoggerMessage(Level = LogLevel.Information, Message = "faasmon-ptrace attached to pid {Pid} ({Function}/{Instance})")]
    private static partial void LogAttached(ILogger logger, int pid, string function, string instance);

    [LoggerMessage(Level = LogLevel.Warning, Message = "faasmon-ptrace on pid {Pid}: {Line}")]
    private static partial void LogToolError(ILogger logger, int pid, string line);

    [LoggerMessage(Level = LogLevel.Debug, Message = "pid {Pid} ({Function}) is followed already by the faasmon-ptrace of the process that started it")]
    private static partial void LogFollowed(ILogger logger, int pid, string function);
}
