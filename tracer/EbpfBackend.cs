using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Tracer;

/// <summary>
/// One bpftrace process running <c>ebpf/faasmon.bt</c> for all function processes: tracepoints on the same system
/// calls as the strace backend, filtered in the kernel to the watched pids and their descendants. A process is
/// added to the filter by the tracer calling <c>getpgid(pid)</c>, which the program recognises by the caller's pid.
/// </summary>
internal sealed partial class EbpfBackend(EventSink sink, TracerOptions options, ILogger<EbpfBackend> logger) : ITraceBackend
{
    private readonly ConcurrentDictionary<int, TaskCompletionSource> _acks = new();
    private ToolProcess? _tool;
    private Task? _pump;
    private Task? _errors;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _stderr = new();

    public string Name => "ebpf";

    public static string ProgramPath => Path.Combine(AppContext.BaseDirectory, "ebpf", "faasmon.bt");

    public async Task StartAsync(CancellationToken ct)
    {
        Prerequisites.RequireBpftrace();
        if (!File.Exists(ProgramPath))
        {
            throw new TracerUnavailableException($"the bpftrace program is missing: {ProgramPath}");
        }

        var parser = new EbpfLineParser(EbpfLineParser.CurrentMonotonicOffsetTicks(), options.MaxDataBytes, EbpfLineParser.LookupProcFd);
        parser.Watching += pid =>
        {
            if (_acks.TryRemove(pid, out var ack))
            {
                ack.TrySetResult();
            }
        };
        // -B none: with a pipe bpftrace buffers fully, and an idle function would hold our acknowledgements back
        parser.Ready += () => _ready.TrySetResult();
        _tool = ToolProcess.Start("bpftrace", ["-B", "none", "-f", "json", ProgramPath, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)],
            new Dictionary<string, string> { ["BPFTRACE_STRLEN"] = "128", ["BPFTRACE_PERF_RB_PAGES"] = "2048" });
        _pump = Task.Run(() => PumpAsync(_tool, parser), CancellationToken.None);
        _errors = Task.Run(() => PumpErrorsAsync(_tool), CancellationToken.None);

        // BPFTRACE_PERF_RB_PAGES: a node start is a burst of thousands of calls; a bigger ring loses none of them.
        // BPFTRACE_STRLEN 128: a probe's strings must fit the 512-byte BPF stack (200, bpftrace 0.17's maximum, did not
        // for execve); str() keeps at most that much, so socket bytes come in two chunks (C lines): 256, as strace keeps
        // compiling and attaching ~80 probes takes seconds on two cores
        try
        {
            await _ready.Task.WaitAsync(TimeSpan.FromSeconds(90), ct);
        }
        catch (TimeoutException)
        {
            throw new TracerUnavailableException($"bpftrace did not attach its probes within 90 s: {_stderr}");
        }
    }

    private async Task PumpAsync(ToolProcess tool, EbpfLineParser parser)
    {
        long errors = 0, lost = 0;
        while (await tool.Output.ReadLineAsync() is { } line)
        {
            if (parser.Parse(line, out var evt) == StraceLineKind.Event)
            {
                sink.Publish(evt!);
            }

            if (parser.Malformed != errors)
            {
                sink.Counters.AddParseErrors(parser.Malformed - errors);
                errors = parser.Malformed;
            }

            if (parser.Lost != lost)
            {
                sink.Counters.AddDrops(parser.Lost - lost);
                LogLost(logger, parser.Lost - lost);
                lost = parser.Lost;
            }
        }

        // bpftrace ended: a start failure is reported with what it said
        _ready.TrySetException(new TracerUnavailableException($"bpftrace exited before attaching its probes: {_stderr.ToString().Trim()}"));
    }

    private async Task PumpErrorsAsync(ToolProcess tool)
    {
        while (await tool.Error.ReadLineAsync() is { } line)
        {
            if (line.Contains("RLIMIT_MEMLOCK", StringComparison.Ordinal))
            {
                continue; // harmless on kernels that account BPF memory to cgroups
            }

            lock (_stderr)
            {
                _stderr.AppendLine(line);
            }

            LogBpftrace(logger, line);
        }
    }

    public async Task<bool> AttachAsync(FunctionProcess process, CancellationToken ct)
    {
        var ack = _acks.GetOrAdd(process.Pid, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (Prerequisites.getpgid(process.Pid) < 0)
        {
            _acks.TryRemove(process.Pid, out _);
            sink.Counters.AttachFailed();
            LogGone(logger, process.Pid);
            return false; // exited before we could watch it
        }

        // asked again until acknowledged: the request is one syscall, harmless to repeat
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!ack.Task.IsCompleted)
        {
            if (DateTime.UtcNow > deadline)
            {
                _acks.TryRemove(process.Pid, out _);
                sink.Counters.AttachFailed();
                return false;
            }

            await Task.WhenAny(ack.Task, Task.Delay(250, ct));
            if (!ack.Task.IsCompleted && Prerequisites.getpgid(process.Pid) < 0)
            {
                _acks.TryRemove(process.Pid, out _);
                sink.Counters.AttachFailed();
                return false;
            }
        }

        sink.Counters.Attached();
        LogWatching(logger, process.Pid, process.Identity.Function, process.Identity.Instance);
        return true;
    }

    public ValueTask DetachAsync(FunctionProcess process)
    {
        // the program forgets a pid itself when the process exits (sched_process_exit)
        sink.Counters.Detached();
        return ValueTask.CompletedTask;
    }

    public async ValueTask DisposeAsync()
    {
        if (_tool is not null)
        {
            await _tool.DisposeAsync();
            await Task.WhenAll(_pump ?? Task.CompletedTask, _errors ?? Task.CompletedTask).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "eBPF filter now includes pid {Pid} ({Function}/{Instance})")]
    private static partial void LogWatching(ILogger logger, int pid, string function, string instance);

    [LoggerMessage(Level = LogLevel.Information, Message = "pid {Pid} exited before it could be watched")]
    private static partial void LogGone(ILogger logger, int pid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "bpftrace lost {Count} events (counted as drops)")]
    private static partial void LogLost(ILogger logger, long count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "bpftrace: {Line}")]
    private static partial void LogBpftrace(ILogger logger, string line);
}
