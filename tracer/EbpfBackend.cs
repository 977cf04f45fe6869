using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Tracer;

/// <summary>
/// One eBPF program for all function processes: tracepoints on the same system calls as the strace backend, filtered
/// in the kernel to the watched pids and their descendants. Loaded by our libbpf loader (<c>ebpf/faasmon-bpf</c> with
/// <c>ebpf/faasmon.bpf.o</c>; a pid is added by a "watch PID" line on its stdin) or by bpftrace running
/// <c>ebpf/faasmon.bt</c> (a pid is added by the tracer calling <c>getpgid(pid)</c>, which the program recognises by
/// the caller's pid), as <see cref="TracerOptions.EbpfLoader"/> says. Both print the same records (W acknowledges a pid).
/// </summary>
internal sealed partial class EbpfBackend(EventSink sink, TracerOptions options, ILogger<EbpfBackend> logger) : ITraceBackend
{
    private readonly ConcurrentDictionary<int, TaskCompletionSource> _acks = new();
    private ToolProcess? _tool;
    private Task? _pump;
    private Task? _errors;
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly System.Text.StringBuilder _stderr = new();
    private readonly SemaphoreSlim _commands = new(1, 1);

    public string Name => "ebpf";

    public static string ProgramPath => Path.Combine(AppContext.BaseDirectory, "ebpf", "faasmon.bt");

    public static string LoaderPath => Path.Combine(AppContext.BaseDirectory, "ebpf", "faasmon-bpf");

    public static string ObjectPath => Path.Combine(AppContext.BaseDirectory, "ebpf", "faasmon.bpf.o");

    private bool UsesLibbpf => options.EbpfLoader != "bpftrace";

    private string Tool => UsesLibbpf ? "faasmon-bpf" : "bpftrace";

    public async Task StartAsync(CancellationToken ct)
    {
        if (UsesLibbpf)
        {
            Prerequisites.RequireLibbpfLoader(LoaderPath, ObjectPath);
        }
        else
        {
            Prerequisites.RequireBpftrace();
            if (!File.Exists(ProgramPath))
            {
                throw new TracerUnavailableException($"the bpftrace program is missing: {ProgramPath}");
            }
        }

        var parser = new EbpfLineParser(EbpfLineParser.CurrentMonotonicOffsetTicks(), options.MaxDataBytes, EbpfLineParser.LookupProcFd);
        parser.Watching += pid =>
        {
            if (_acks.TryRemove(pid, out var ack))
            {
                ack.TrySetResult();
            }
        };
        parser.Ready += () => _ready.TrySetResult();
        // the loader reads the ring every few ms and writes what it found in one go; it acknowledges a watch at once
        // -B none: with a pipe bpftrace buffers fully, and an idle function would hold our acknowledgements back
        _tool = UsesLibbpf
            ? ToolProcess.Start(LoaderPath, [ObjectPath], redirectInput: true)
            : ToolProcess.Start("bpftrace", ["-B", "none", "-f", "json", ProgramPath, Environment.ProcessId.ToString(CultureInfo.InvariantCulture)],
                new Dictionary<string, string> { ["BPFTRACE_STRLEN"] = "128", ["BPFTRACE_PERF_RB_PAGES"] = "2048" });
        _pump = Task.Run(() => PumpAsync(_tool, parser), CancellationToken.None);
        _errors = Task.Run(() => PumpErrorsAsync(_tool), CancellationToken.None);

        // BPFTRACE_PERF_RB_PAGES: a node start is a burst of thousands of calls; a bigger ring loses none of them.
        // BPFTRACE_STRLEN 128: a probe's strings must fit the 512-byte BPF stack (200, bpftrace 0.17's maximum, did not
        // for execve); str() keeps at most that much, so socket bytes come in two chunks (C lines): 256, as strace keeps
        // compiling and attaching ~80 probes takes bpftrace seconds on two cores; the loader's program is compiled already
        var attachTimeout = TimeSpan.FromSeconds(UsesLibbpf ? 30 : 90);
        try
        {
            await _ready.Task.WaitAsync(attachTimeout, ct);
        }
        catch (TimeoutException)
        {
            throw new TracerUnavailableException($"{Tool} did not attach its probes within {attachTimeout.TotalSeconds:F0} s: {_stderr}");
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

        // the tool ended: a start failure is reported with what it said
        _ready.TrySetException(new TracerUnavailableException($"{Tool} exited before attaching its probes: {_stderr.ToString().Trim()}"));
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

            LogToolError(logger, Tool, line.StartsWith(Tool + ": ", StringComparison.Ordinal) ? line[(Tool.Length + 2)..] : line);
        }
    }

    public Task<bool> AttachAsync(FunctionProcess process, CancellationToken ct) =>
        UsesLibbpf ? AttachByCommandAsync(process, ct) : AttachByGetpgidAsync(process, ct);

    /// <summary>The loader adds the pid to its map when it reads our "watch PID" line, and answers W at once.</summary>
    private async Task<bool> AttachByCommandAsync(FunctionProcess process, CancellationToken ct)
    {
        var pid = process.Pid;
        var ack = _acks.GetOrAdd(pid, _ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (Prerequisites.getpgid(pid) < 0 || !await SendAsync($"watch {pid.ToString(CultureInfo.InvariantCulture)}", ct))
        {
            return Failed(process);
        }

        try
        {
            await ack.Task.WaitAsync(TimeSpan.FromSeconds(10), ct);
        }
        catch (TimeoutException)
        {
            return Failed(process);
        }

        if (Prerequisites.getpgid(pid) < 0)
        {
            // gone meanwhile: its exit may have passed before the pid was in the map, so nothing would remove it
            await SendAsync($"unwatch {pid.ToString(CultureInfo.InvariantCulture)}", ct);
            return Failed(process);
        }

        sink.Counters.Attached();
        LogWatching(logger, pid, process.Identity.Function, process.Identity.Instance);
        return true;
    }

    private bool Failed(FunctionProcess process)
    {
        _acks.TryRemove(process.Pid, out _);
        sink.Counters.AttachFailed();
        if (Prerequisites.getpgid(process.Pid) < 0)
        {
            LogGone(logger, process.Pid);
        }

        return false;
    }

    /// <summary>One command line to the loader; false when it is gone (its stdin closed).</summary>
    private Task<bool> SendAsync(string command, CancellationToken ct) => SendRawAsync(command + "\n", ct);

    /// <summary>Text as is to the loader's stdin (tests send it what a hostile writer could).</summary>
    internal async Task<bool> SendRawAsync(string text, CancellationToken ct = default)
    {
        if (_tool is not { HasExited: false } tool)
        {
            return false;
        }

        await _commands.WaitAsync(ct);
        try
        {
            await tool.Input.WriteAsync(text);
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        finally
        {
            _commands.Release();
        }
    }

    private async Task<bool> AttachByGetpgidAsync(FunctionProcess process, CancellationToken ct)
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
            if (UsesLibbpf)
            {
                // its stdin's end makes the loader print what the ring still holds and exit
                await _commands.WaitAsync();
                try
                {
                    _tool.Input.Close();
                }
                catch (IOException)
                {
                }

                _commands.Release();
                using var exited = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _tool.WaitForExitAsync(exited.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            }

            await _tool.DisposeAsync();
            await Task.WhenAll(_pump ?? Task.CompletedTask, _errors ?? Task.CompletedTask).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
        }

        _commands.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "eBPF filter now includes pid {Pid} ({Function}/{Instance})")]
    private static partial void LogWatching(ILogger logger, int pid, string function, string instance);

    [LoggerMessage(Level = LogLevel.Information, Message = "pid {Pid} exited before it could be watched")]
    private static partial void LogGone(ILogger logger, int pid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "the kernel lost {Count} eBPF events (counted as drops)")]
    private static partial void LogLost(ILogger logger, long count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Tool}: {Line}")]
    private static partial void LogToolError(ILogger logger, string tool, string line);
}
