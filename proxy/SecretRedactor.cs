using System.Text.RegularExpressions;

namespace FaaSMon.Proxy;

/// <summary>
/// Removes secrets from what goes into records and logs: body prefixes, query strings and header values.
/// Records end up in files and dashboards that more people read than the functions' own secrets.
/// </summary>
internal static partial class SecretRedactor
{
    public const string Mask = "[REDACTED]";

    // Names that carry credentials in hello-retail and in the usual APIs (password, token, apiKey, card, cookie…).
    private const string SecretName = @"[^""=&\s]*(?:pass|secret|token|key|auth|cookie|session|card|cvv|credential|signature)[^""=&\s]*";

    public static string? Text(string? text)
    {
        if (string.IsNullOrEmpty(text) || !MayHoldSecret(text))
        {
            return text;
        }

        text = JsonStringMember().Replace(text, m => $"{m.Groups["head"].Value}\"{Mask}{(m.Groups["end"].Value.Length > 0 ? "\"" : "")}");
        text = JsonNumberMember().Replace(text, m => $"{m.Groups["head"].Value}\"{Mask}\"");
        text = FormMember().Replace(text, m => $"{m.Groups["key"].Value}={Mask}");
        text = HttpCredential().Replace(text, m => $"{m.Groups["scheme"].Value} {Mask}");
        return CardNumber().Replace(text, m => PassesLuhn(m.Value) ? Mask : m.Value);
    }

    /// <summary>
    /// Most bodies and headers name no secret and hold no card-length digit run: one vectorized scan spares them
    /// the regexes, which matters on every request.
    /// </summary>
    private static bool MayHoldSecret(ReadOnlySpan<char> text)
    {
        if (text.ContainsAny(SecretWords))
        {
            return true;
        }

        var run = 0; // digits in a row, spaces and dashes allowed between them, as card numbers are written
        foreach (var c in text)
        {
            if (char.IsAsciiDigit(c))
            {
                if (++run >= 13)
                {
                    return true;
                }
            }
            else if (c is not (' ' or '-'))
            {
                run = 0;
            }
        }

        return false;
    }

    private static readonly System.Buffers.SearchValues<string> SecretWords = System.Buffers.SearchValues.Create(
        ["pass", "secret", "token", "key", "auth", "cookie", "session", "card", "cvv", "credential", "signature", "bearer", "basic", "digest"],
        StringComparison.OrdinalIgnoreCase);

    public static bool IsSecretHeader(string name) =>
        name.Equals("Authorization", StringComparison.OrdinalIgnoreCase)
        || name.Equals("Proxy-Authorization", StringComparison.OrdinalIgnoreCase)
        || name.AsSpan().ContainsAny(SecretHeaderWords);

    // Checked for every header of every request: one vectorized scan instead of a regex.
    private static readonly System.Buffers.SearchValues<string> SecretHeaderWords = System.Buffers.SearchValues.Create(
        ["cookie", "token", "secret", "passw", "apikey", "api-key", "auth", "session", "signature"], StringComparison.OrdinalIgnoreCase);

    private static bool PassesLuhn(string candidate)
    {
        int sum = 0, digits = 0;
        for (var i = candidate.Length - 1; i >= 0; i--)
        {
            var c = candidate[i];
            if (!char.IsAsciiDigit(c))
            {
                continue;
            }

            var d = c - '0';
            if (digits++ % 2 == 1)
            {
                d = d * 2 > 9 ? (d * 2) - 9 : d * 2;
            }

            sum += d;
        }

        return digits is >= 13 and <= 19 && sum % 10 == 0;
    }

    // The value may be cut by the prefix limit, so the closing quote is optional.
    [GeneratedRegex($@"(?<head>""{SecretName}""\s*:\s*)""(?:[^""\\]|\\.)*(?<end>""|$)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex JsonStringMember();

    [GeneratedRegex($@"(?<head>""{SecretName}""\s*:\s*)-?\d[\d.eE+-]*", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex JsonNumberMember();

    [GeneratedRegex($@"(?<=^|[?&\s])(?<key>{SecretName})=[^&\s""]*", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex FormMember();

    [GeneratedRegex(@"\b(?<scheme>Bearer|Basic|Digest|Token)\s+[A-Za-z0-9._~+/=-]{8,}", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex HttpCredential();

    [GeneratedRegex(@"(?<![\d])\d(?:[ -]?\d){12,18}(?![\d])", RegexOptions.CultureInvariant)]
    private static partial Regex CardNumber();
}
