using FaaSMon.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FaaSMon.Tracer;

/// <summary>A tracer outside a host (the bench and tests): validated options, started, stopped on dispose.</summary>
internal sealed class TracerSession : IAsyncDisposable
{
    private readonly SyscallTracer _tracer;

    private TracerSession(SyscallTracer tracer) => _tracer = tracer;

    public SyscallTracer Tracer => _tracer;

    public System.Threading.Channels.ChannelReader<SyscallEvent> Events => _tracer.Events;

    public TracerCounters Counters => _tracer.Counters;

    public static async Task<TracerSession> StartAsync(TracerOptions options, ILoggerFactory loggers, CancellationToken ct = default)
    {
        var validation = new TracerOptionsValidator().Validate(null, options);
        if (validation.Failed)
        {
            throw new OptionsValidationException(TracerOptions.Section, typeof(TracerOptions), validation.Failures);
        }

        var tracer = new SyscallTracer(Options.Create(options), loggers);
        await tracer.StartAsync(ct);
        var session = new TracerSession(tracer);
        try
        {
            await tracer.Started.WaitAsync(ct);
        }
        catch
        {
            await session.DisposeAsync();
            throw;
        }

        return session;
    }

    private int _disposed;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _tracer.StopAsync(CancellationToken.None);
        _tracer.Dispose();
    }
}
