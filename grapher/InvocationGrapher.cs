using System.Threading.Channels;
using FaaSMon.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace FaaSMon.Grapher;

/// <summary>
/// The grapher as a service: system calls, proxy records and packet flows go in (each <c>TryWrite</c> never blocks: a
/// full queue drops and counts), one <see cref="InvocationAttributor"/> and one <see cref="TraceAssembler"/> run on a
/// single task, and finished invocation and trace graphs come out on two channels for the host to consume. A wall-clock
/// tick builds what is due while no events arrive; stopping drains the input and builds every open invocation.
/// </summary>
public sealed partial class InvocationGrapher : BackgroundService
{
    private static readonly TimeSpan Tick = TimeSpan.FromMilliseconds(100);

    private readonly Channel<Input> _input;
    private readonly Channel<FinishedInvocation> _invocations;
    private readonly Channel<ProvenanceGraph> _traces;
    private readonly InvocationAttributor _attributor;
    private readonly TraceAssembler _assembler;
    private readonly TimeProvider _clock;
    private readonly ILogger<InvocationGrapher> _logger;
    private long _graphsDropped;

    public InvocationGrapher(IOptions<GrapherOptions> options, ILogger<InvocationGrapher> logger, TimeProvider? clock = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var o = options.Value;
        _logger = logger;
        _clock = clock ?? TimeProvider.System;
        _input = Channel.CreateBounded<Input>(new BoundedChannelOptions(o.QueueCapacity) { FullMode = BoundedChannelFullMode.DropWrite, SingleReader = true });
        _invocations = Channel.CreateBounded<FinishedInvocation>(new BoundedChannelOptions(o.QueueCapacity) { FullMode = BoundedChannelFullMode.DropWrite, SingleWriter = true });
        _traces = Channel.CreateBounded<ProvenanceGraph>(new BoundedChannelOptions(o.QueueCapacity) { FullMode = BoundedChannelFullMode.DropWrite, SingleWriter = true });
        _assembler = new TraceAssembler(o, Counters, graph =>
        {
            if (!_traces.Writer.TryWrite(graph))
            {
                Interlocked.Increment(ref _graphsDropped);
            }
        });
        _attributor = new InvocationAttributor(o, Counters, invocation =>
        {
            if (!_invocations.Writer.TryWrite(invocation))
            {
                Interlocked.Increment(ref _graphsDropped);
            }

            if (!invocation.Provisional)
            {
                _assembler.Add(invocation, _attributor!.Now);
            }
        });
    }

    public GrapherCounters Counters { get; } = new();

    /// <summary>Graphs no consumer took in time (the output queues were full).</summary>
    public long GraphsDropped => Interlocked.Read(ref _graphsDropped);

    public ChannelReader<FinishedInvocation> Invocations => _invocations.Reader;

    public ChannelReader<ProvenanceGraph> Traces => _traces.Reader;

    public bool TryWrite(SyscallEvent evt) => Enqueue(new Input(evt, null, null));

    public bool TryWrite(InvocationRecord record) => Enqueue(new Input(null, record, null));

    public bool TryWrite(PacketFlow flow) => Enqueue(new Input(null, null, flow));

    /// <summary>Forwards everything <paramref name="source"/> yields (the tracer's events, a proxy subscription) until it completes.</summary>
    public Task PumpAsync<T>(ChannelReader<T> source, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(source);
        return Task.Run(async () =>
        {
            try
            {
                await foreach (var item in source.ReadAllAsync(ct))
                {
                    _ = item switch
                    {
                        SyscallEvent e => TryWrite(e),
                        InvocationRecord r => TryWrite(r),
                        PacketFlow f => TryWrite(f),
                        _ => throw new ArgumentException($"the grapher takes SyscallEvent, InvocationRecord or PacketFlow, not {typeof(T).Name}", nameof(source)),
                    };
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
        }, CancellationToken.None);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var ticker = new Timer(_ => _input.Writer.TryWrite(default), null, Tick, Tick);
        var reader = _input.Reader;
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                Drain(reader);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        // what arrived before the stop still counts
        Drain(reader);
        _attributor.FlushAll();
        _assembler.FlushAll();
        _invocations.Writer.TryComplete();
        _traces.Writer.TryComplete();
        LogStopped(_logger, Counters.ToString());
    }

    private void Drain(ChannelReader<Input> reader)
    {
        while (reader.TryRead(out var item))
        {
            try
            {
                if (item.Event is { } evt)
                {
                    _attributor.Add(evt);
                }
                else if (item.Record is { } record)
                {
                    _attributor.Add(record);
                }
                else if (item.Flow is { } flow)
                {
                    _attributor.Add(flow);
                }
                else
                {
                    var now = _clock.GetUtcNow();
                    _attributor.Advance(now);
                    _assembler.Advance(_attributor.Now);
                }
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // one bad input must not stop the graphs of everything else
                LogBadInput(_logger, e);
            }
        }
    }

    private bool Enqueue(Input input)
    {
        if (_input.Writer.TryWrite(input))
        {
            return true;
        }

        Counters.AddDropped();
        return false;
    }

    private readonly record struct Input(SyscallEvent? Event, InvocationRecord? Record, PacketFlow? Flow);

    [LoggerMessage(Level = LogLevel.Information, Message = "grapher stopped: {Counters}")]
    private static partial void LogStopped(ILogger logger, string counters);

    [LoggerMessage(Level = LogLevel.Warning, Message = "grapher skipped an input it could not use")]
    private static partial void LogBadInput(ILogger logger, Exception exception);
}
