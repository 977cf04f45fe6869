namespace FaaSMon.Core;

/// <summary>
/// What kind of file a write starts, from its first bytes (a file's magic number): a function that downloads photos
/// writes images, and one that suddenly writes a script or a program into its warm /tmp is planting something. Only the
/// kind is kept in the graph (a file node's <c>content</c> attribute), never the bytes. The grapher writes it, the
/// classifier's features and rules read it.
/// </summary>
public static class FileContent
{
    public const string Script = "script";
    public const string Program = "elf";
    public const string Image = "image";
    public const string Text = "text";
    public const string Data = "data";

    public static string Kind(ReadOnlySpan<byte> first)
    {
        if (first.StartsWith("#!"u8))
        {
            return Script;
        }

        if (first.StartsWith("\u007fELF"u8))
        {
            return Program;
        }

        if (first.StartsWith((ReadOnlySpan<byte>)[0x89, (byte)'P', (byte)'N', (byte)'G']) || first.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xD8, 0xFF])
            || first.StartsWith("GIF8"u8) || first.StartsWith("RIFF"u8))
        {
            return Image;
        }

        foreach (var b in first)
        {
            if (b is < 0x20 and not ((byte)'\t' or (byte)'\n' or (byte)'\r') or 0x7F)
            {
                return Data;
            }
        }

        return Text;
    }

    /// <summary>Whether a <c>content</c> kind is code that runs: a script or an ELF program.</summary>
    public static bool IsProgram(string? kind) => kind is Script or Program;
}
