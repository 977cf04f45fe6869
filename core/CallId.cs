namespace FaaSMon.Core;

/// <summary>
/// The OpenFaaS <c>X-Call-Id</c>: a UUID when the gateway mints it. A caller may send its own; FaaSMon keeps
/// it only if it is a usable correlation key, because it is written into records and searched for in packets.
/// </summary>
public static class CallId
{
    public const string HeaderName = "X-Call-Id";

    /// <summary>Longer ids are refused: a UUID is 36 characters, and every hop copies the id into headers and records.</summary>
    public const int MaxLength = 128;

    public static string New() => Guid.NewGuid().ToString();

    /// <summary>Visible ASCII only (no spaces, control characters or non-ASCII), 1 to <see cref="MaxLength"/> characters.</summary>
    public static bool IsValid(ReadOnlySpan<char> value)
    {
        if (value.IsEmpty || value.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (c is < '!' or > '~')
            {
                return false;
            }
        }

        return true;
    }
}
