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
internal sealed partial class PtraceBackend(EventSink sink, TracerOptions options, ILogger<PtraceBackend> logger)
    : ToolPerProcessBackend(sink, options, logger)
{
    private long _monotonicOffset;

    public override string Name => "ptrace";

    protected override string Tool => "faasmon-ptrace";

    public static string ToolPath => Path.Combine(AppContext.BaseDirectory, "ptrace", "faasmon-ptrace");

    public override Task StartAsync(CancellationToken ct)
    {
        Prerequisites.RequirePtraceTool(ToolPath);
        _monotonicOffset = EbpfLineParser.CurrentMonotonicOffsetTicks();
        return Task.CompletedTask;
    }

    protected override (ToolProcess Tool, Task<bool> Attached, Task Pump) StartTool(FunctionProcess process)
    {
        var pid = process.Pid;
        string[] arguments = ["-s", Math.Max(1, Options.MaxDataBytes).ToString(CultureInfo.InvariantCulture), pid.ToString(CultureInfo.InvariantCulture)];
        var tool = ToolProcess.Start(ToolPath, Options.PtraceStopsOnly ? ["--stops-only", .. arguments] : arguments);
        var parser = new EbpfLineParser(_monotonicOffset, Options.MaxDataBytes, EbpfLineParser.LookupProcFd, Name);
        var attached = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
        parser.Watching += watched => attached.TrySetResult(watched == pid);
        var pump = Task.Run(() => PumpAsync(tool, parser, attached), CancellationToken.None);
        var errors = Task.Run(() => PumpErrorsAsync(tool, pid), CancellationToken.None);
        return (tool, attached.Task, Task.WhenAll(pump, errors));
    }

    private async Task PumpAsync(ToolProcess tool, EbpfLineParser parser, TaskCompletionSource<bool> attached)
    {
        long errors = 0;
        while (await tool.Output.ReadLineAsync() is { } line)
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

            if (parser.Malformed != errors)
            {
                Sink.Counters.AddParseErrors(parser.Malformed - errors);
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
            LogToolError(Logger, pid, line.StartsWith("faasmon-ptrace: ", StringComparison.Ordinal) ? line["faasmon-ptrace: ".Length..] : line);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "faasmon-ptrace on pid {Pid}: {Line}")]
    private static partial void LogToolError(ILogger logger, int pid, string line);
}
