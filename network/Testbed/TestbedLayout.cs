namespace FaaSMon.Network.Testbed;

/// <summary>A host of the testbed: its own network namespace with one veth to the bridge.</summary>
/// <param name="Role">Short role name, part of the namespace and link names.</param>
internal sealed record TestbedHost(string Role, string Address);

/// <summary>
/// Names and addresses of one testbed run. Everything carries the run id, so concurrent runs (and other engineers'
/// tests) never collide, and a sweep finds exactly what a dead run left behind.
/// </summary>
internal sealed class TestbedLayout
{
    public const string Prefix = "fmnet-";
    public const string Subnet = "10.231.0.0/24";
    public const int PrefixLength = 24;

    /// <summary>Where runs keep their state (configs, database, keys), one folder per run id.</summary>
    public static string StateRoot { get; } = Environment.GetEnvironmentVariable("FAASMON_NET_STATE") is { Length: > 0 } root ? root : "/var/lib/faasmon/net-testbed";

    public TestbedLayout(string runId)
    {
        if (runId.Length != 6 || !runId.All(Uri.IsHexDigit))
        {
            throw new ArgumentException("a run id is 6 hex digits", nameof(runId));
        }

        RunId = runId.ToLowerInvariant();
    }

    public static TestbedLayout CreateNew() => new(Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3)).ToLowerInvariant());

    public string RunId { get; }

    public TestbedHost Web { get; } = new("web", "10.231.0.10");

    public TestbedHost Redis { get; } = new("redis", "10.231.0.11");

    public TestbedHost Db { get; } = new("db", "10.231.0.12");

    /// <summary>The API service; also runs the SSH server.</summary>
    public TestbedHost Api { get; } = new("api", "10.231.0.13");

    public TestbedHost Client { get; } = new("client", "10.231.0.20");

    public TestbedHost Attacker { get; } = new("attacker", "10.231.0.66");

    /// <summary>Extra addresses on the attacker's interface: the "bots" of the DDoS.</summary>
    public IReadOnlyList<string> BotAddresses { get; } = [.. Enumerable.Range(100, 8).Select(i => $"10.231.0.{i}")];

    public IReadOnlyList<TestbedHost> Hosts => [Web, Redis, Db, Api, Client, Attacker];

    /// <summary>The namespace holding the bridge: not the host's, so no host interface can ever be a bridge port.</summary>
    public string BridgeNamespace => $"{Prefix}{RunId}-br";

    public string BridgeName => $"fm{RunId}br";

    public string StateDirectory => Path.Combine(StateRoot, RunId);

    public string Namespace(TestbedHost host) => $"{Prefix}{RunId}-{host.Role}";

    /// <summary>The bridge-side end of a host's veth (≤ 15 characters); the host side is eth0 in the host's namespace.</summary>
    public string BridgePort(TestbedHost host) => $"fm{RunId}{host.Role[..Math.Min(3, host.Role.Length)]}";

    public IEnumerable<string> AllNamespaces => Hosts.Select(Namespace).Prepend(BridgeNamespace);

    /// <summary>The run id inside a namespace or link name of ours, or null.</summary>
    public static string? RunIdOf(string name)
    {
        if (name.StartsWith(Prefix, StringComparison.Ordinal) && name.Length >= Prefix.Length + 7 && name[Prefix.Length + 6] == '-')
        {
            var id = name.Substring(Prefix.Length, 6);
            return id.All(Uri.IsHexDigit) ? id : null;
        }

        return null;
    }
}
