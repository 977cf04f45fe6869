namespace FaaSMon.Tracer;

/// <summary>A way of tracing function processes (strace or eBPF); both publish <see cref="FaaSMon.Core.SyscallEvent"/>s to one sink.</summary>
internal interface ITraceBackend : IAsyncDisposable
{
    string Name { get; }

    /// <summary>
    /// Raised when a process may have started (an exec anywhere on the machine), by a backend that learns it from the
    /// kernel; the tracer then scans /proc at once and otherwise only every <see cref="TracerOptions.AnnouncedPollIntervalMs"/>.
    /// </summary>
    event Action? ProcessMayHaveStarted;

    /// <summary>Whether <see cref="ProcessMayHaveStarted"/> is raised (known once started).</summary>
    bool AnnouncesProcesses { get; }

    /// <summary>Checks prerequisites and starts what runs for all processes; throws <see cref="TracerUnavailableException"/> naming what is missing.</summary>
    Task StartAsync(CancellationToken ct);

    /// <summary>Starts tracing a process; completes when its events flow (false when it could not be attached, e.g. it exited).</summary>
    Task<bool> AttachAsync(FunctionProcess process, CancellationToken ct);

    /// <summary>Stops following a process that is gone.</summary>
    ValueTask DetachAsync(FunctionProcess process);
}
