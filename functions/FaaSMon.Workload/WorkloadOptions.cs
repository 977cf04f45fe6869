namespace FaaSMon.Workload;

/// <summary>What <see cref="WorkloadDriver"/> sends, and where.</summary>
public sealed record WorkloadOptions
{
    /// <summary>The OpenFaaS-compatible gateway (LocalFaaS, OpenFaaS, or FaaSMon's proxy in front of either).</summary>
    public required Uri Gateway { get; init; }

    /// <summary>Number of benign top-level requests; requests made to stage, trigger or verify attacks come on top.</summary>
    public int Benign { get; init; } = 50;

    /// <summary>Attack family names (see <see cref="WorkloadDriver.AttackFamilies"/>), or <c>["all"]</c>.</summary>
    public IReadOnlyList<string> Attacks { get; init; } = [];

    /// <summary>Where the ground-truth JSONL goes (one line per request the driver sends); null writes none.</summary>
    public string? GroundTruthPath { get; init; }

    /// <summary>Seeds the benign inputs and where attacks fall among them. Attack nonces are always fresh.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Benign requests in flight at once.</summary>
    public int Concurrency { get; init; } = 2;

    /// <summary>Secret values the platform really holds (e.g. PGPASSWORD), to verify exfiltration exactly. Never logged.</summary>
    public IReadOnlyDictionary<string, string> KnownSecrets { get; init; } = new Dictionary<string, string>();

    /// <summary>How long one request may take before it counts as failed.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(15);
}
