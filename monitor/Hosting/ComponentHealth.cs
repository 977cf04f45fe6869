using System.Collections.Concurrent;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace FaaSMon.Monitor.Hosting;

/// <summary>The state of one part of the host, as <c>/healthz</c> shows it.</summary>
internal sealed record ComponentState(string Status, string? Detail, DateTimeOffset Since)
{
    public bool Failed => Status == ComponentHealth.Failed;
}

/// <summary>
/// What each component of the host reports about itself. A component that fails says so here and stops; the others keep
/// running, and <c>/healthz</c> answers 503 naming it, so an operator sees a half-working monitor instead of a silent one.
/// </summary>
internal sealed class ComponentHealth : IHealthCheck
{
    public const string Running = "running";
    public const string Starting = "starting";
    public const string Failed = "failed";
    public const string Degraded = "degraded";

    private readonly ConcurrentDictionary<string, ComponentState> _states = new(StringComparer.Ordinal);
    private readonly TimeProvider _clock;

    public ComponentHealth(TimeProvider? clock = null) => _clock = clock ?? TimeProvider.System;

    public IReadOnlyDictionary<string, ComponentState> States => _states;

    public void Report(string component, string status, string? detail = null) =>
        _states[component] = new ComponentState(status, detail, _clock.GetUtcNow());

    /// <summary>Runs <paramref name="work"/> as the component <paramref name="name"/>: running while it runs, failed with the reason when it throws.</summary>
    public Task Supervise(string name, Func<CancellationToken, Task> work, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(work);
        Report(name, Running);
        return Task.Run(async () =>
        {
            try
            {
                await work(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception e)
            {
                Report(name, Failed, e.Message);
            }
        }, CancellationToken.None);
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var data = _states.ToDictionary(s => s.Key, s => (object)(s.Value.Detail is null ? s.Value.Status : $"{s.Value.Status}: {s.Value.Detail}"), StringComparer.Ordinal);
        var failed = _states.Where(s => s.Value.Failed).Select(s => s.Key).ToList();
        if (failed.Count > 0)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"failed: {string.Join(", ", failed)}", data: data));
        }

        return Task.FromResult(_states.Values.Any(s => s.Status == Degraded)
            ? HealthCheckResult.Degraded("degraded", data: data)
            : HealthCheckResult.Healthy("healthy", data));
    }
}
