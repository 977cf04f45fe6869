using System.Text.Json;

namespace FaaSMon.Compose.Tests;

internal sealed record DockerInstruction(string Keyword, string Arguments, int Line)
{
    /// <summary>The arguments as the JSON array of the exec form, or null for the shell form.</summary>
    public static IReadOnlyList<string>? ParseExecForm(string arguments)
    {
        if (!arguments.TrimStart().StartsWith('['))
        {
            return null;
        }

        try
        {
            return JsonSerializer.Deserialize<string[]>(arguments);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public IReadOnlyList<string>? ExecForm() => ParseExecForm(Arguments);

    /// <summary>Leading <c>--flag=value</c> options (COPY --from, HEALTHCHECK --interval) and what follows them.</summary>
    public (IReadOnlyDictionary<string, string> Flags, string Remainder) SplitFlags()
    {
        Dictionary<string, string> flags = new(StringComparer.Ordinal);
        var rest = Arguments.TrimStart();
        while (rest.StartsWith("--", StringComparison.Ordinal))
        {
            var end = rest.IndexOf(' ', StringComparison.Ordinal);
            var flag = end < 0 ? rest : rest[..end];
            var eq = flag.IndexOf('=', StringComparison.Ordinal);
            flags[eq < 0 ? flag[2..] : flag[2..eq]] = eq < 0 ? "" : flag[(eq + 1)..];
            rest = end < 0 ? "" : rest[end..].TrimStart();
        }

        return (flags, rest);
    }
}

internal sealed record DockerStage(string BaseImage, string? Name, IReadOnlyList<DockerInstruction> Instructions)
{
    public IEnumerable<DockerInstruction> All(string keyword) => Instructions.Where(i => i.Keyword == keyword);

    public DockerInstruction? Last(string keyword) => Instructions.LastOrDefault(i => i.Keyword == keyword);
}

/// <summary>
/// Enough of the Dockerfile grammar for the checks here: comments and parser directives, backslash continuations
/// (comment lines inside them dropped, as BuildKit does), instructions by stage.
/// </summary>
internal static class DockerfileParser
{
    public static IReadOnlyList<DockerStage> Parse(string text)
    {
        List<DockerStage> stages = [];
        List<DockerInstruction>? current = null;
        string? image = null, name = null;
        var logical = new System.Text.StringBuilder();
        var startLine = 0;
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].TrimEnd('\r');
            var trimmed = line.Trim();
            if (trimmed.StartsWith('#') || (trimmed.Length == 0 && logical.Length == 0))
            {
                continue;
            }

            if (logical.Length == 0)
            {
                startLine = i + 1;
            }

            var continues = trimmed.EndsWith('\\');
            logical.Append(continues ? trimmed[..^1] : trimmed).Append(' ');
            if (continues && i + 1 < lines.Length)
            {
                continue;
            }

            var instruction = logical.ToString().Trim();
            logical.Clear();
            if (instruction.Length == 0)
            {
                continue;
            }

            var space = instruction.IndexOf(' ', StringComparison.Ordinal);
            var keyword = (space < 0 ? instruction : instruction[..space]).ToUpperInvariant();
            var arguments = space < 0 ? "" : instruction[(space + 1)..].Trim();
            if (keyword == "FROM")
            {
                if (current is not null)
                {
                    stages.Add(new DockerStage(image!, name, current));
                }

                var words = arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries).Where(w => !w.StartsWith("--", StringComparison.Ordinal)).ToArray();
                image = words[0];
                name = words.Length >= 3 && words[1].Equals("AS", StringComparison.OrdinalIgnoreCase) ? words[2] : null;
                current = [];
            }

            (current ?? throw new FormatException($"line {startLine}: {keyword} before the first FROM")).Add(new DockerInstruction(keyword, arguments, startLine));
        }

        if (current is not null)
        {
            stages.Add(new DockerStage(image!, name, current));
        }

        return stages;
    }
}
