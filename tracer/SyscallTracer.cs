using System.Collections.Concurrent;
using System.Threading.Channels;
using FaaSMon.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FaaSMon.Tracer;

/// <summary>
/// The tracer: finds function processes, attaches the chosen backend to each, and exposes one stream of
/// <see cref="SyscallEvent"/> plus <see cref="TracerCounters"/>, whatever the backend.
/// </summary>
internal sealed partial class SyscallTracer : BackgroundService
{
    private readonly TracerOptions _options;
    private readonly ILoggerFactory _loggers;
    private readonly ILogger<SyscallTracer> _logger;
    private readonly Channel<SyscallEvent> _channel;
    private readonly EventSink _sink;
    private readonly ConcurrentDictionary<int, FunctionProcess> _attached = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public SyscallTracer(IOptions<TracerOptions> options, ILoggerFactory loggers)
    {
        _options = options.Value;
        _loggers = loggers;
        _logger = loggers.CreateLogger<SyscallTracer>();
        _channel = Channel.CreateBounded<SyscallEvent>(new BoundedChannelOptions(_options.ChannelCapacity)
        {
            FullMode = BoundedChannelFullMode.DropWrite, // counted by the sink: a slow consumer must not stall ptrace'd functions
            SingleReader = true,
        });
        _sink = new EventSink(_channel.Writer, Counters);
    }

    public ChannelReader<SyscallEvent> Events => _channel.Reader;

    public TracerCounters Counters { get; } = new();

    /// <summary>Completes when the backend runs (faults with <see cref="TracerUnavailableException"/> when it cannot).</summary>
    public Task Started => _started.Task;

    /// <summary>Processes whose events flow now.</summary>
    public IReadOnlyDictionary<int, FunctionProcess> Attached => _attached;

    /// <summary>Waits until a process is attached (tests and the bench use it so the first request is traced).</summary>
    public async Task<FunctionProcess> WaitForAttachedAsync(Func<FunctionProcess, bool> predicate, TimeSpan timeout, CancellationToken ct = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        while (true)
        {
            foreach (var p in _attached.Values)
            {
                if (predicate(p))
                {
                    return p;
                }
            }

            try
            {
                await Task.Delay(10, cts.Token);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new TimeoutException($"no matching process attached within {timeout.TotalSeconds:F0} s (attached: {string.Join(", ", _attached.Values.Select(p => $"{p.Pid} {p.Identity.Function}"))}; {Counters})");
            }
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        DockerIdentityResolver? docker = null;
        ITraceBackend backend = _options.Backend switch
        {
            "ebpf" => new EbpfBackend(_sink, _options, _loggers.CreateLogger<EbpfBackend>()),
            "ptrace" => new PtraceBackend(_sink, _options, _loggers.CreateLogger<PtraceBackend>()),
            _ => new StraceBackend(_sink, _options, _loggers.CreateLogger<StraceBackend>()),
        };
        var attaching = new List<Task>();
        ExecNotifier? execs = null;
        try
        {
            try
            {
                await backend.StartAsync(stoppingToken);
            }
            catch (Exception e)
            {
                _started.TrySetException(e);
                throw;
            }

            var dockerHost = _options.DockerHost ?? Environment.GetEnvironmentVariable("DOCKER_HOST");
            if (dockerHost != "none" && (dockerHost is not null || File.Exists("/var/run/docker.sock")))
            {
                docker = new DockerIdentityResolver(DockerIdentityResolver.CreateClient(dockerHost), _loggers.CreateLogger<DockerIdentityResolver>());
            }

            var discovery = new ProcessDiscovery(_options.Match, docker, _loggers.CreateLogger<ProcessDiscovery>());
            var startedAt = DateTimeOffset.UtcNow;
            LogStarted(_logger, backend.Name, _options.Match);

            // a pass every poll interval, and one at once whenever a process execs (when the kernel tells us); wakes
            // that come while a pass runs make one more pass, not one each
            var wake = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
            _ = WakeEveryAsync(wake.Writer, TimeSpan.FromMilliseconds(_options.PollIntervalMs), stoppingToken);
            execs = ExecNotifier.TryOpen(_ =>
            {
                Counters.ExecHeard();
                wake.Writer.TryWrite(true);
            }, _logger, out var why);
            if (execs is null)
            {
                LogPollingOnly(_logger, _options.PollIntervalMs, why!);
            }

            _started.TrySetResult();
            do
            {
                foreach (var change in await discovery.ScanAsync(stoppingToken, full: false))
                {
                    if (change.Started && _options.AcceptPid is { } accept && !accept(change.Process.Pid))
                    {
                        continue;
                    }

                    if (change.Started)
                    {
                        if (change.Process.StartedAt >= startedAt)
                        {
                            // only a process born while we watch says how quickly we find new ones
                            Counters.Discovered(change.Process.DiscoveryLatency);
                        }

                        _sink.Register(change.Process);
                        attaching.Add(AttachAsync(backend, change.Process, stoppingToken));
                    }
                    else if (_attached.TryRemove(change.Process.Pid, out var gone))
                    {
                        await backend.DetachAsync(gone);
                        LogGone(_logger, gone.Pid, gone.Identity.Function);
                    }
                }

                attaching.RemoveAll(t => t.IsCompleted);
            }
            while (await wake.Reader.WaitToReadAsync(stoppingToken) && wake.Reader.TryRead(out _));
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        finally
        {
            if (execs is not null)
            {
                await execs.DisposeAsync();
            }

            await Task.WhenAll(attaching).ContinueWith(_ => { }, TaskScheduler.Default);
            await backend.DisposeAsync();
            docker?.Dispose();
            _channel.Writer.TryComplete();
            LogStopped(_logger, Counters.ToString());
        }
    }

    private async Task AttachAsync(ITraceBackend backend, FunctionProcess process, CancellationToken ct)
    {
        try
        {
            if (await backend.AttachAsync(process, ct))
            {
                _attached[process.Pid] = process;
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (TimeoutException)
        {
            Counters.AttachFailed();
        }
    }

    private static async Task WakeEveryAsync(ChannelWriter<bool> wake, TimeSpan interval, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(interval);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                wake.TryWrite(true);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "discovery polls /proc every {IntervalMs} ms only: {Why}")]
    private static partial void LogPollingOnly(ILogger logger, int intervalMs, string why);

    [LoggerMessage(Level = LogLevel.Information, Message = "tracing processes matching '{Match}' with {Backend}")]
    private static partial void LogStarted(ILogger logger, string backend, string match);

    [LoggerMessage(Level = LogLevel.Information, Message = "pid {Pid} ({Function}) is gone")]
    private static partial void LogGone(ILogger logger, int pid, string function);

    [LoggerMessage(Level = LogLevel.Information, Message = "tracer stopped: {Counters}")]
    private static partial void LogStopped(ILogger logger, string counters);
}
