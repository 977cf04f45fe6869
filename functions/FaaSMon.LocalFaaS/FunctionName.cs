using System.Text.RegularExpressions;

namespace FaaSMon.LocalFaaS;

/// <summary>
/// Function names as the OpenFaaS gateway routes them (<c>[-a-zA-Z_0-9.]+</c>), further held to a
/// DNS label (what Kubernetes and faasd accept) so that a name can never become a path or a flag.
/// </summary>
internal static partial class FunctionName
{
    public const int MaxLength = 63;

    public static bool IsValid(string? name) =>
        name is { Length: > 0 and <= MaxLength } && Pattern().IsMatch(name);

    /// <summary>A printable, bounded rendering of untrusted input for error messages and logs.</summary>
    public static string Describe(string? name)
    {
        if (name is null)
        {
            return "(none)";
        }

        var shown = new string([.. name.Take(40).Select(c => char.IsControl(c) ? '?' : c)]);
        return name.Length > 40 ? $"{shown}… ({name.Length} chars)" : shown;
    }

    // Starts and ends with a letter or digit, so "..", ".x" and "-x" are out.
    [GeneratedRegex("^[a-zA-Z0-9](?:[-a-zA-Z_0-9.]*[a-zA-Z0-9])?$")]
    private static partial Regex Pattern();
}
