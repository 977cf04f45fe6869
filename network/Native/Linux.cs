using System.Runtime.InteropServices;

namespace FaaSMon.Network.Native;

/// <summary>The few libc calls the testbed needs.</summary>
internal static partial class Linux
{
    public const int CloneNewNet = 0x40000000;
    public const int SigTerm = 15;
    public const int SigKill = 9;

    [LibraryImport("libc.so.6", EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int nsType);

    [LibraryImport("libc.so.6", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);

    /// <summary>Whether a process with this PID exists (signal 0 checks without sending).</summary>
    public static bool ProcessExists(int pid) => pid > 0 && (Kill(pid, 0) == 0 || Marshal.GetLastPInvokeError() == 1 /* EPERM: exists */);
}
