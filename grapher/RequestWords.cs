using System.Text;
using FaaSMon.Core;

namespace FaaSMon.Grapher;

/// <summary>
/// Distinctive words: runs of letters, digits, '.', '_' and '-' at least 8 long with a letter and a digit in them (ids,
/// nonces), or file names of at least 6 with a short extension (<c>catalog-cache.json</c>, <c>evil.sh</c>), cut from request bytes (percent-decoded too: a query
/// names a path as <c>%2Ftmp%2Fname.json</c>) and from what a system call names. A word a request carried that a later
/// call names (the file a photo URL ends in, the id in a query, a file a query's code writes) ties the call to that
/// request when time alone cannot. Absolute paths of two components or more (<c>/var/openfaas/secrets</c>) are words too,
/// and so is the directory of each: a file opened in a directory a request named.
/// </summary>
internal static class RequestWords
{
    private const int MinLength = 8;
    private const int MinFileNameLength = 6;
    private const int MaxWords = 64;

    public static HashSet<string> Of(byte[]? data) => data is null ? [] : Of(Encoding.Latin1.GetString(data));

    public static HashSet<string> Of(string? text)
    {
        var words = new HashSet<string>(StringComparer.Ordinal);
        Add(words, text);
        return words;
    }

    /// <summary>What an event names: its paths, its argv, and the bytes it sends.</summary>
    public static HashSet<string> OfEvent(SyscallEvent evt)
    {
        var words = new HashSet<string>(StringComparer.Ordinal);
        Add(words, evt.Path);
        Add(words, evt.Path2);
        if (evt.Argv is { } argv)
        {
            foreach (var arg in argv)
            {
                Add(words, arg);
            }
        }

        if (evt.Data is { } data && evt.Fd is { IsSocket: true } && evt.Syscall is "write" or "writev" or "sendto" or "sendmsg")
        {
            Add(words, Encoding.Latin1.GetString(data));
        }

        return words;
    }

    private static void AddWord(HashSet<string> words, ReadOnlySpan<char> word)
    {
        var letters = word.IndexOfAnyInRange('a', 'z') >= 0 || word.IndexOfAnyInRange('A', 'Z') >= 0;
        if (letters && (word.Length >= MinLength && word.IndexOfAnyInRange('0', '9') >= 0 || word.Length >= MinFileNameLength && IsFileName(word)))
        {
            words.Add(word.ToString());
        }
    }

    /// <summary>Absolute paths in the text (not URLs: <c>//host/…</c>), and their directories, of two components or more.</summary>
    private static void AddPaths(HashSet<string> words, string text)
    {
        var slash = text.IndexOf('/', StringComparison.Ordinal);
        while (slash >= 0 && words.Count < MaxWords)
        {
            var end = slash;
            while (end < text.Length && (char.IsAsciiLetterOrDigit(text[end]) || text[end] is '.' or '_' or '-' or '/'))
            {
                end++;
            }

            var startsClean = slash == 0 || !(char.IsAsciiLetterOrDigit(text[slash - 1]) || text[slash - 1] is '.' or '_' or '-' or ':' or '/');
            if (startsClean && slash + 1 < text.Length && text[slash + 1] != '/')
            {
                var path = text.AsSpan(slash, end - slash).TrimEnd('/');
                for (var i = 0; i < 2 && path.Length >= MinLength && path[1..].IndexOf('/') > 0; i++)
                {
                    words.Add(path.ToString());
                    path = path[..path.LastIndexOf('/')];
                }
            }

            slash = end < text.Length ? text.IndexOf('/', end) : -1;
        }
    }

    /// <summary>A name with a short lower-case extension after a stem of at least 3 (<c>catalog-cache.json</c>, not <c>fs.readFileSync</c>).</summary>
    private static bool IsFileName(ReadOnlySpan<char> word)
    {
        var dot = word.LastIndexOf('.');
        if (dot < 3 || word.Length - dot - 1 is < 2 or > 4)
        {
            return false;
        }

        foreach (var c in word[(dot + 1)..])
        {
            if (c is < 'a' or > 'z')
            {
                return false;
            }
        }

        return true;
    }

    private static void Add(HashSet<string> words, string? text)
    {
        if (text is null)
        {
            return;
        }

        if (text.Contains('%', StringComparison.Ordinal))
        {
            string decoded;
            try
            {
                decoded = Uri.UnescapeDataString(text);
            }
            catch (UriFormatException)
            {
                decoded = text;
            }

            if (!ReferenceEquals(decoded, text) && decoded != text)
            {
                AddRun(words, decoded);
            }
        }

        AddRun(words, text);
    }

    private static void AddRun(HashSet<string> words, string text)
    {
        AddPaths(words, text);

        var start = -1;
        for (var i = 0; i <= text.Length && words.Count < MaxWords; i++)
        {
            var inWord = i < text.Length && (char.IsAsciiLetterOrDigit(text[i]) || text[i] is '.' or '_' or '-');
            if (inWord && start < 0)
            {
                start = i;
            }
            else if (!inWord && start >= 0)
            {
                var word = text.AsSpan(start, i - start).Trim('.');
                AddWord(words, word);
                // the stem before an extension too: the kept bytes may end inside "name.png", and a copy may rename "name.jpg"
                if (word.IndexOf('.') is > 0 and var dot)
                {
                    AddWord(words, word[..dot]);
                }

                start = -1;
            }
        }
    }
}
