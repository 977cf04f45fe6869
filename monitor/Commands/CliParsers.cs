using System.CommandLine.Parsing;

namespace FaaSMon.Monitor.Commands;

/// <summary>Parsers System.CommandLine does not have (it converts no <see cref="Uri"/> by itself).</summary>
internal static class CliParsers
{
    /// <summary>An absolute http(s) URL, or an error that names the option and what was given.</summary>
    public static Uri HttpUrl(ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
        if (Uri.TryCreate(text, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https")
        {
            return uri;
        }

        var option = (result.Parent as OptionResult)?.Option.Name ?? "the URL";
        result.AddError($"{option} must be an absolute http(s) URL, got '{text}'");
        return null!;
    }
}
