namespace FaaSMon.Workload;

/// <summary>What a workload run did.</summary>
/// <param name="BenignByFunction">Benign top-level requests per entry function.</param>
/// <param name="Attacks">One outcome per attack run, in the order they were asked for.</param>
/// <param name="Duration">Wall-clock time of the run.</param>
/// <param name="GroundTruthPath">The ground-truth JSONL written, if any.</param>
/// <param name="RequestsSent">Every request sent to the gateway (benign, attack steps, verification reads): one ground-truth line each.</param>
public sealed record WorkloadReport(
    IReadOnlyList<FunctionTraffic> BenignByFunction,
    IReadOnlyList<AttackOutcome> Attacks,
    TimeSpan Duration,
    string? GroundTruthPath,
    int RequestsSent)
{
    public int BenignSent => BenignByFunction.Sum(f => f.Sent);

    public int BenignOk => BenignByFunction.Sum(f => f.Ok);

    public int BenignFailed => BenignByFunction.Sum(f => f.Failed);
}

/// <summary>Benign requests to one entry function.</summary>
/// <param name="Ok">Answered as expected: 2xx, or the 401/402/404 that a deliberately failing request asks for.</param>
/// <param name="Failed">Anything else: timeouts, connection errors, 5xx, an unexpected status.</param>
/// <param name="DeliberateErrors">How many of <paramref name="Ok"/> were expected 401/402/404 answers.</param>
public sealed record FunctionTraffic(string Function, int Sent, int Ok, int Failed, int DeliberateErrors);

/// <summary>One attack run, end to end.</summary>
/// <param name="Succeeded">True only when the attack's evidence really arrived (beacon, exfil, forged record, shell output, tampered read).</param>
/// <param name="Evidence">What was observed, without secret values.</param>
/// <param name="CallIds">X-Call-Id of every request this attack sent (stage, trigger, verification).</param>
/// <param name="TraceId">The trace id of the request that carried the malicious trigger (empty if it was never sent).</param>
public sealed record AttackOutcome(string Family, bool Succeeded, string Evidence, IReadOnlyList<string> CallIds, string TraceId);

/// <summary>Progress: <paramref name="Done"/> of <paramref name="Total"/> work items (benign requests and whole attacks).</summary>
public sealed record WorkloadProgress(int Done, int Total, string Last);
