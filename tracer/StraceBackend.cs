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
internal sealed partial class StraceBackend(EventSink sink, TracerOptions options, ILogger<StraceBackend> logger)
    : ToolPerProcessBackend(sink, options, logger)
{
    private static readonly string TraceSet = "trace=" + string.Join(',', StraceLineParser.TracedSyscalls.Order(StringComparer.Ordinal));

    public override string Name => "strace";

    protected override string Tool => "strace";

    public override Task StartAsync(CancellationToken ct)
    {
        Prerequisites.RequireStrace();
        return Task.CompletedTask;
    }

    protected override (ToolProcess Tool, Task<bool> Attached, Task Pump) StartTool(FunctionProcess process)
    {
        var pid = process.Pid;
        var tool = ToolProcess.Start("strace",
        [
            "-f", "-ttt", "-T", "-yy", "-s", Options.MaxDataBytes.ToString(CultureInfo.InvariantCulture), "-e", TraceSet,
            "-o", "/proc/self/fd/1", "-p", pid.ToString(CultureInfo.InvariantCulture),
        ]);
        var parser = new StraceLineParser(Options.MaxDataBytes, ProcFs.TaskIds);
        parser.RegisterParent(pid, process.Ppid);
        foreach (var tid in ProcFs.Threads(pid))
        {
            parser.RegisterThread(tid, pid);
        }

        var attached = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        var errors = PumpErrorsAsync(tool, pid, attached);
        var pump = Task.Run(() => PumpAsync(tool, parser), CancellationToken.None);
        return (tool, attached.Task, Task.WhenAll(pump, errors));
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
                Sink.Counters.AddParseErrors(parser.Malformed - reported);
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
                Sink.Publish(evt!);
            }
            else if (kind == StraceLineKind.Malformed)
            {
                Malformed(parser.Malformed, line);
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
                LogAttachFailed(Logger, pid, line);
                attached.TrySetResult(false);
            }
        }

        attached.TrySetResult(false); // strace ended without attaching: the target was gone
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "strace could not attach to pid {Pid}: {Reason}")]
    private static partial void LogAttachFailed(ILogger logger, int pid, string reason);
}
