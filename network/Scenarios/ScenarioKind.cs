namespace FaaSMon.Network.Scenarios;

/// <summary>What runs during a window. Benign windows carry only the background traffic; attack windows carry it too.</summary>
internal enum ScenarioKind
{
    Benign,
    PortScan,
    SshBruteForce,
    ReverseShell,
    Ddos,
    ArpSpoof,
}

internal static class ScenarioNames
{
    public static string Label(this ScenarioKind kind) => kind switch
    {
        ScenarioKind.Benign => Core.TemporalGraph.BenignLabel,
        ScenarioKind.PortScan => "port-scan",
        ScenarioKind.SshBruteForce => "ssh-brute-force",
        ScenarioKind.ReverseShell => "reverse-shell",
        ScenarioKind.Ddos => "ddos",
        ScenarioKind.ArpSpoof => "arp-spoof",
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    public static IReadOnlyList<ScenarioKind> Attacks { get; } = [.. Enum.GetValues<ScenarioKind>().Where(k => k != ScenarioKind.Benign)];
}
