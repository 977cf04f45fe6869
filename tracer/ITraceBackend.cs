namespace FaaSMon.Tracer;

/// <summary>A way of tracing function processes (strace or eBPF); both publish <see cref="FaaSMon.Core.SyscallEvent"/>s to one sink.</summary>
internal interface ITraceBackend : IAsyncDisposable
{
    string Name { get; }

    /// <summary>Checks prerequisites and starts what runs for all processes; throws <see cref="TracerUnavailableException"/> naming what is missing.</summary>
    Task StartAsync(CancellationToken ct);

    /// <summary>Starts tracing a process; completes when its events flow (false when it could not be attached, e.g. it exited).</summary>
    Task<bool> AttachAsync(FunctionProcess process, CancellationToken ct);

    /// <summary>Stops following a process that is gone.</summary>
    ValueTask DetachAsync(FunctionProcess process);
}
