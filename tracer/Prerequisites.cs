using System.Globalization;
using System.Runtime.InteropServices;

namespace FaaSMon.Tracer;

/// <summary>Checks that a backend can run before it is started, so a missing package or capability is named, not guessed.</summary>
internal static partial class Prerequisites
{
    private const int CapSysPtrace = 19;
    private const int CapSysAdmin = 21;
    private const int CapPerfmon = 38;
    private const int CapBpf = 39;

    public static string FindExecutable(string name, string debianPackage)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new TracerUnavailableException($"{name} is not installed (not on PATH): install the Debian package '{debianPackage}' (apt-get install {debianPackage})");
    }

    public static void RequireStrace()
    {
        FindExecutable("setsid", "util-linux");
        FindExecutable("strace", "strace");
        RequirePtrace("strace");
    }

    /// <summary>Our own ptrace tracer, built with the tracer (tracer/FaaSMon.Tracer.csproj, needs only a C compiler), and ptrace.</summary>
    public static void RequirePtraceTool(string tool)
    {
        FindExecutable("setsid", "util-linux");
        if (!File.Exists(tool))
        {
            throw new TracerUnavailableException(
                $"the ptrace backend's tracer is missing: {tool} (it is built with the tracer when a C compiler is installed: apt-get install gcc, then rebuild; or use --backend strace)");
        }

        RequirePtrace("ptrace");
    }

    private static void RequirePtrace(string backend)
    {
        if (!HasCapability(CapSysPtrace))
        {
            throw new TracerUnavailableException($"the {backend} backend needs CAP_SYS_PTRACE to attach to function processes: run as root or grant cap_sys_ptrace");
        }

        if (ReadInt("/proc/sys/kernel/yama/ptrace_scope") == 3)
        {
            throw new TracerUnavailableException($"ptrace is disabled on this kernel (kernel.yama.ptrace_scope=3); the {backend} backend cannot attach: use --backend ebpf");
        }
    }

    /// <summary>
    /// A tracer process at real-time priority (SCHED_RR): a ptrace'd function stops at every system call until its tracer
    /// has looked at it, so it should not wait for the tracer to get a CPU. The reason when it cannot (no CAP_SYS_NICE).
    /// </summary>
    public static string? TryRaiseToRealtime(int pid, int priority)
    {
        var param = new SchedParam { Priority = priority };
        return priority <= 0 || sched_setscheduler(pid, SchedRoundRobin, in param) == 0 ? null : Marshal.GetLastPInvokeErrorMessage();
    }

    public static void RequireBpftrace()
    {
        FindExecutable("setsid", "util-linux");
        FindExecutable("bpftrace", "bpftrace");
        if (!HasCapability(CapSysAdmin) && !(HasCapability(CapBpf) && HasCapability(CapPerfmon)))
        {
            throw new TracerUnavailableException("the eBPF backend needs CAP_SYS_ADMIN (or CAP_BPF and CAP_PERFMON) to load bpftrace programs: run as root or grant them");
        }

        EnsureTracefs();
    }

    /// <summary>The libbpf loader and its compiled program, built with the tracer (tracer/FaaSMon.Tracer.csproj), and the capabilities to load it.</summary>
    public static void RequireLibbpfLoader(string loader, string program)
    {
        FindExecutable("setsid", "util-linux");
        foreach (var file in new[] { loader, program })
        {
            if (!File.Exists(file))
            {
                throw new TracerUnavailableException(
                    $"the eBPF loader is missing: {file} (it is built with the tracer when clang, libbpf-dev, libelf-dev and zlib1g-dev are installed: " +
                    "apt-get install clang libbpf-dev libelf-dev zlib1g-dev, then rebuild; or use Tracer:EbpfLoader=bpftrace)");
            }
        }

        if (!HasCapability(CapSysAdmin) && !(HasCapability(CapBpf) && HasCapability(CapPerfmon)))
        {
            throw new TracerUnavailableException("the eBPF backend needs CAP_SYS_ADMIN (or CAP_BPF and CAP_PERFMON) to load its programs: run as root or grant them");
        }

        if (!File.Exists("/sys/kernel/btf/vmlinux"))
        {
            throw new TracerUnavailableException("the libbpf loader needs the kernel's BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF): use a kernel built with it, or Tracer:EbpfLoader=bpftrace");
        }

        EnsureTracefs();
    }

    /// <summary>Tracepoints need tracefs; containers and minimal hosts often lack the mount, so we make it.</summary>
    public static void EnsureTracefs()
    {
        if (Directory.Exists("/sys/kernel/tracing/events") || Directory.Exists("/sys/kernel/debug/tracing/events"))
        {
            return;
        }

        if (mount("nodev", "/sys/kernel/tracing", "tracefs", 0, IntPtr.Zero) != 0)
        {
            var errno = Marshal.GetLastPInvokeError();
            throw new TracerUnavailableException(
                $"tracefs is not mounted and mounting it at /sys/kernel/tracing failed (errno {errno}; needs CAP_SYS_ADMIN): " +
                "run 'mount -t tracefs nodev /sys/kernel/tracing' as root, or in a container bind-mount /sys/kernel/tracing");
        }
    }

    public static bool HasCapability(int capability)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("CapEff:", StringComparison.Ordinal))
            {
                var mask = ulong.Parse(line.AsSpan(7).Trim(), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
                return (mask & (1UL << capability)) != 0;
            }
        }

        return false;
    }

    private static int? ReadInt(string path)
    {
        try
        {
            return int.Parse(File.ReadAllText(path).Trim(), CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or FormatException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    [LibraryImport("libc", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int mount(string source, string target, string fstype, nuint flags, IntPtr data);

    /// <summary>The signal the eBPF program listens for: a getpgid(pid) from the tracer adds pid to the in-kernel filter.</summary>
    [LibraryImport("libc", SetLastError = true)]
    internal static partial int getpgid(int pid);

    [LibraryImport("libc", SetLastError = true)]
    internal static partial int kill(int pid, int signal);

    internal const int SchedRoundRobin = 2;

    [StructLayout(LayoutKind.Sequential)]
    internal struct SchedParam
    {
        public int Priority;
    }

    [LibraryImport("libc", SetLastError = true)]
    internal static partial int sched_setscheduler(int pid, int policy, in SchedParam param);
}
