using System.Runtime.InteropServices;

namespace FaaSMon.LocalFaaS;

/// <summary>The few libc calls the BCL does not offer.</summary>
internal static partial class Unix
{
    public static void Chown(string path, int uid, int gid)
    {
        if (ChownNative(path, uid, gid) != 0)
        {
            throw new IOException($"chown {path}: errno {Marshal.GetLastPInvokeError()}");
        }
    }

    /// <summary>uid and gid of a user from /etc/passwd, or null when there is no such user.</summary>
    public static (int Uid, int Gid)? LookupUser(string name)
    {
        foreach (var line in File.ReadLines("/etc/passwd"))
        {
            var fields = line.Split(':');
            if (fields.Length > 3 && fields[0] == name)
            {
                return (int.Parse(fields[2], System.Globalization.CultureInfo.InvariantCulture),
                        int.Parse(fields[3], System.Globalization.CultureInfo.InvariantCulture));
            }
        }

        return null;
    }

    public static bool IsRoot => GetEuid() == 0;

    public static bool ProcessExists(int pid) => Directory.Exists($"/proc/{pid}");

    [LibraryImport("libc", EntryPoint = "chown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int ChownNative(string path, int uid, int gid);

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();
}
