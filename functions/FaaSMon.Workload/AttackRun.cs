using Microsoft.Extensions.Logging;

namespace FaaSMon.Workload;

/// <summary>What every attack run shares: the gateway, the attacker's servers, and what the platform's secrets really are.</summary>
internal sealed class AttackEnvironment(
    GatewayClient gateway,
    AttackerServer attacker,
    ReverseShellListener shells,
    IReadOnlyDictionary<string, string> knownSecrets,
    ILogger logger)
{
    public GatewayClient Gateway { get; } = gateway;

    public AttackerServer Attacker { get; } = attacker;

    public ReverseShellListener Shells { get; } = shells;

    public IReadOnlyDictionary<string, string> KnownSecrets { get; } = knownSecrets;

    public ILogger Logger { get; } = logger;

    /// <summary>
    /// The listener hands connections out in arrival order; one reverse shell at a time keeps a shell matched to the run
    /// that opened it.
    /// </summary>
    public SemaphoreSlim ShellTurn { get; } = new(1, 1);
}

/// <summary>
/// One run of one attack: its id and nonce, the benign-traffic positions its steps wait for, and the requests it sent.
/// </summary>
internal sealed class AttackRun(
    string family,
    string attackId,
    string nonce,
    IReadOnlyList<int> stepPositions,
    BenignProgress benignProgress,
    AttackEnvironment environment)
{
    private readonly List<string> callIds = [];
    private string triggerTraceId = "";

    public string Family { get; } = family;

    public string AttackId { get; } = attackId;

    public string Nonce { get; } = nonce;

    public AttackEnvironment Environment { get; } = environment;

    /// <summary>Waits until the benign traffic has reached the position drawn for gated step <paramref name="step"/>.</summary>
    public Task ReachStepAsync(int step, CancellationToken ct) =>
        step < stepPositions.Count ? benignProgress.WaitForAsync(stepPositions[step], ct) : Task.CompletedTask;

    /// <summary>Sends a request that carries the attack (labelled with the family).</summary>
    public Task<GatewayResponse> SendMaliciousAsync(GatewayRequest request, string step, CancellationToken ct) =>
        SendAsync(request, new RequestLabel(Family, AttackId, step), ct);

    /// <summary>
    /// Sends an ordinary-looking request that belongs to the run (a verification poll, a victim's read): labelled benign,
    /// because nothing in it is malicious, but tied to the run by its attack id and step.
    /// </summary>
    public Task<GatewayResponse> SendBenignAsync(GatewayRequest request, string step, CancellationToken ct) =>
        SendAsync(request, new RequestLabel(RequestLabel.BenignLabel, AttackId, step), ct);

    public AttackOutcome Outcome(bool succeeded, string evidence)
    {
        lock (callIds)
        {
            return new AttackOutcome(Family, succeeded, evidence, [.. callIds], triggerTraceId);
        }
    }

    private async Task<GatewayResponse> SendAsync(GatewayRequest request, RequestLabel label, CancellationToken ct)
    {
        var response = await Environment.Gateway.SendAsync(request, label, ct);
        lock (callIds)
        {
            callIds.Add(response.Trace.CallId);
            if (label.Step == AttackStep.Trigger)
            {
                triggerTraceId = response.Trace.TraceId;
            }
        }

        WorkloadLog.AttackStep(Environment.Logger, AttackId, label.Step ?? "", request.Function, response.ToString());
        return response;
    }
}

/// <summary>The step names of the ground truth.</summary>
internal static class AttackStep
{
    /// <summary>Prepares state the trigger needs (an implant in a warm /tmp).</summary>
    public const string Stage = "stage";

    /// <summary>The request carrying the malicious input that does the damage.</summary>
    public const string Trigger = "trigger";

    /// <summary>A benign request that reads what the attack changed.</summary>
    public const string Victim = "victim";

    /// <summary>The attacker checking that the attack worked.</summary>
    public const string Verify = "verify";
}

/// <summary>One attack family, end to end: stage and trigger among benign traffic, then verify the evidence arrived.</summary>
internal interface IAttackScenario
{
    string Family { get; }

    /// <summary>How many of its steps wait for a drawn position in the benign traffic.</summary>
    int GatedSteps { get; }

    Task<AttackOutcome> RunAsync(AttackRun run, CancellationToken ct);
}
