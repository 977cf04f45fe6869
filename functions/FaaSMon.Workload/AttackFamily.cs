namespace FaaSMon.Workload;

/// <summary>The attack families of the kit, by the names the CLI and the ground truth use.</summary>
internal static class AttackFamily
{
    public const string ContainerReuse = "container-reuse";
    public const string CredentialTheft = "credential-theft";
    public const string LateralMovement = "lateral-movement";
    public const string ReverseShell = "reverse-shell";
    public const string Tampering = "tampering";

    public const string All = "all";

    public static IReadOnlyList<string> Names { get; } = [ContainerReuse, CredentialTheft, LateralMovement, ReverseShell, Tampering];

    /// <summary>
    /// Resolves the requested names (case-insensitive, <c>all</c> expands, duplicates kept so a family can run twice) or
    /// throws an <see cref="ArgumentException"/> that lists the valid names.
    /// </summary>
    public static IReadOnlyList<string> Resolve(IReadOnlyList<string> requested)
    {
        ArgumentNullException.ThrowIfNull(requested);
        var resolved = new List<string>();
        foreach (var raw in requested)
        {
            var name = raw?.Trim().ToLowerInvariant() ?? "";
            if (name == All)
            {
                resolved.AddRange(Names);
            }
            else if (Names.Contains(name))
            {
                resolved.Add(name);
            }
            else
            {
                throw new ArgumentException(
                    $"unknown attack family '{raw}'; valid families: {string.Join(", ", Names)} (or {All})",
                    nameof(requested));
            }
        }

        return resolved;
    }
}
