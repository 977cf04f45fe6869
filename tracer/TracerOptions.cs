using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace FaaSMon.Tracer;

/// <summary>Configuration section <c>Tracer</c>.</summary>
public sealed class TracerOptions
{
    public const string Section = "Tracer";

    /// <summary>Command-line substring that marks a function process (as <c>pgrep -f</c>).</summary>
    [Required(AllowEmptyStrings = false)]
    public string Match { get; set; } = "index.js";

    /// <summary>
    /// <c>strace</c>, <c>ebpf</c>, or <c>ptrace</c>: our own ptrace tracer (<c>ptrace/faasmon-ptrace</c>), strace's way of
    /// tracing (every call of a traced function stops it) without strace's decoding, fd lookups and per-line writes.
    /// </summary>
    [RegularExpression("^(strace|ebpf|ptrace)$")]
    public string Backend { get; set; } = "strace";

    /// <summary>
    /// What loads the eBPF backend's programs: <c>libbpf</c>, our own loader (<c>ebpf/faasmon-bpf</c>, records through a
    /// binary ring buffer), or <c>bpftrace</c> running <c>ebpf/faasmon.bt</c>, whose userspace formats every printf
    /// (~14 µs of CPU a line) and which keeps a buffer only up to its first zero byte. Same records, same events.
    /// </summary>
    [RegularExpression("^(libbpf|bpftrace)$")]
    public string EbpfLoader { get; set; } = "libbpf";

    /// <summary>How often /proc is scanned for new function processes; bounds the discovery latency.</summary>
    [Range(5, 10_000)]
    public int PollIntervalMs { get; set; } = 50;

    /// <summary>Bytes kept of each socket read/write (the request line and headers hold the call id).</summary>
    [Range(0, 4096)]
    public int MaxDataBytes { get; set; } = 256;

    /// <summary>
    /// Real-time (SCHED_RR) priority of each strace (and each faasmon-ptrace), 0 to leave it a normal process. A ptrace'd function stops at every
    /// system call until strace has looked at it, so on a busy machine the function waits for strace to get a CPU;
    /// the lowest real-time priority lets strace run the moment its function stops. strace only runs when its function
    /// makes a call, and the kernel caps real-time tasks at 95 % of each second (sched_rt_runtime_us).
    /// </summary>
    [Range(0, 99)]
    public int StraceRealtimePriority { get; set; } = 1;

    /// <summary>
    /// The ptrace backend's tracer resumes every stop at once and reports no call (<c>faasmon-ptrace --stops-only</c>):
    /// what ptrace itself costs, for <c>faasmon bench tracer --modes ptrace-stops</c>; not configurable (internal).
    /// </summary>
    internal bool PtraceStopsOnly { get; set; }

    /// <summary>Events buffered between the backends and the consumer; beyond it events are dropped and counted.</summary>
    [Range(16, 10_000_000)]
    public int ChannelCapacity { get; set; } = 65_536;

    /// <summary>
    /// Decides, for each discovered process id, whether it is traced (unset: every match). An all-in-one host sets it to
    /// its own runtime's instances, so another runtime's functions on the same machine are neither traced nor slowed.
    /// </summary>
    public Func<int, bool>? AcceptPid { get; set; }

    /// <summary>Docker Engine API endpoint for container → function (unset: DOCKER_HOST, then /var/run/docker.sock; "none" disables it).</summary>
    public string? DockerHost { get; set; }
}

[OptionsValidator]
internal sealed partial class TracerOptionsValidator : IValidateOptions<TracerOptions>;
