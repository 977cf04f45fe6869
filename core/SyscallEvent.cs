namespace FaaSMon.Core;

/// <summary>What kind of line of a trace an event stands for: a completed system call, or a process-level fact.</summary>
public enum SyscallEventKind
{
    /// <summary>A system call with its result (an <c>unfinished</c>/<c>resumed</c> pair is merged into one).</summary>
    Syscall,

    /// <summary>A signal delivered to the thread (<see cref="SyscallEvent.Syscall"/> holds its name, e.g. <c>SIGCHLD</c>).</summary>
    Signal,

    /// <summary>The process exited (<see cref="SyscallEvent.ReturnValue"/> is the status) or was killed (<see cref="SyscallEvent.Syscall"/> names the signal).</summary>
    Exit,
}

/// <summary>A file descriptor as the tracer decoded it: what it points at when it was used.</summary>
/// <param name="Path">File path, or for a socket its kind (<c>TCP</c>, <c>UDP</c>, <c>UNIX-STREAM</c>, ...).</param>
/// <param name="LocalEndpoint">For an inet socket, <c>ip:port</c> of this end.</param>
/// <param name="RemoteEndpoint">For a connected inet socket, <c>ip:port</c> of the peer.</param>
public sealed record FileDescriptorInfo(int Fd, string? Path, string? LocalEndpoint = null, string? RemoteEndpoint = null)
{
    /// <summary>True when the descriptor is a socket (its bytes are what the grapher reads call ids from).</summary>
    public bool IsSocket => Path is "TCP" or "TCPv6" or "UDP" or "UDPv6" or "UNIX" or "UNIX-STREAM" or "UNIX-DGRAM" || Path?.StartsWith("socket:", StringComparison.Ordinal) == true;
}

/// <summary>
/// One system call (or signal, or exit) of a function process, the same whatever backend traced it (strace or eBPF).
/// The grapher builds provenance from these; the fields are what the backends can both supply.
/// </summary>
/// <param name="Timestamp">When the call started (wall clock, UTC).</param>
/// <param name="Pid">Process id (thread group id) on the host.</param>
/// <param name="Tid">Thread id on the host.</param>
/// <param name="Ppid">Parent process id when known (0 when not).</param>
/// <param name="Syscall">The call's name (<c>openat</c>, <c>execve</c>, ...), the signal's name, or the exit kind.</param>
/// <param name="Path">The path argument (open/execve/unlink/chmod; the old path of a rename).</param>
/// <param name="Path2">The second path (the new path of a rename).</param>
/// <param name="Fd">The descriptor the call worked on, decoded, when it has one.</param>
/// <param name="Flags">Symbolic flags (<c>O_WRONLY|O_CREAT</c>, <c>PROT_READ|PROT_EXEC</c>, clone flags, a signal name for kill).</param>
/// <param name="Argv">execve's argument vector.</param>
/// <param name="ReturnValue">The return value (a new fd, a byte count, a child pid); -1 with <paramref name="Errno"/> on failure.</param>
/// <param name="Errno">The error name (<c>ENOENT</c>) when the call failed.</param>
/// <param name="Duration">Time spent in the call, when the backend measured it.</param>
/// <param name="Data">The first bytes read from or written to a socket (bounded), as the process saw them; for a write to a
/// file only its first <see cref="FileMagicBytes"/>, enough to tell what kind of file it is and too few to carry a secret.</param>
/// <param name="Function">The OpenFaaS function the process belongs to.</param>
/// <param name="Instance">The function instance (container) the process belongs to.</param>
/// <param name="TargetPid">The other process a call names (kill's target, the child of a clone/fork).</param>
/// <param name="Backend"><c>strace</c>, <c>ebpf</c> or <c>ptrace</c> (the last two print the same records: a process
/// creation is a <c>fork</c> event naming the child, and a clone carries no flags).</param>
public sealed record SyscallEvent(
    DateTimeOffset Timestamp,
    int Pid,
    int Tid,
    int Ppid,
    string Syscall,
    SyscallEventKind Kind = SyscallEventKind.Syscall,
    string? Path = null,
    string? Path2 = null,
    FileDescriptorInfo? Fd = null,
    string? Flags = null,
    IReadOnlyList<string>? Argv = null,
    long ReturnValue = 0,
    string? Errno = null,
    TimeSpan? Duration = null,
    byte[]? Data = null,
    string? Function = null,
    string? Instance = null,
    int TargetPid = 0,
    string Backend = "strace")
{
    /// <summary>How many bytes of a write to a file are kept: a file's magic number (a script's <c>#!</c>, ELF, PNG, JPEG).</summary>
    public const int FileMagicBytes = 8;

    /// <summary>True when the call failed.</summary>
    public bool Failed => Errno is not null;
}
