namespace FaaSMon.Compose.Tests;

/// <summary>
/// compose/Dockerfile.dockerignore applied to a path of the build context: the subset of the syntax it uses
/// (<c>NAME/</c> for a folder at the root, <c>**/NAME/</c> for a folder at any depth, <c>!</c> to take a path back).
/// </summary>
internal static class DockerIgnore
{
    private static readonly IReadOnlyList<string> Patterns = [.. Repository.Read("compose/Dockerfile.dockerignore").Split('\n')
        .Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))];

    public static bool Excludes(string path)
    {
        var segments = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        var excluded = false;
        foreach (var pattern in Patterns)
        {
            var negated = pattern.StartsWith('!');
            var body = negated ? pattern[1..] : pattern;
            if (Matches(body, segments))
            {
                excluded = !negated;
            }
        }

        return excluded;
    }

    private static bool Matches(string pattern, string[] segments)
    {
        var folder = pattern.TrimEnd('/');
        if (folder.StartsWith("**/", StringComparison.Ordinal))
        {
            // a folder of that name anywhere above the file
            return segments.AsSpan(0, segments.Length - 1).Contains(folder[3..]);
        }

        if (folder.Contains('*', StringComparison.Ordinal))
        {
            throw new NotSupportedException($"dockerignore pattern '{pattern}': extend DockerIgnore to check it");
        }

        var parts = folder.Split('/');
        return segments.Length >= parts.Length && parts.AsSpan().SequenceEqual(segments.AsSpan(0, parts.Length));
    }
}
