using System.Text.Json;
using System.Text.Json.Serialization;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>
/// One function instance to snapshot. Local mode needs the host pid of its function process (or finds it through the
/// instance's cgroup); Docker mode needs the container id.
/// </summary>
public sealed record SnapshotTarget(string Function, string Instance, int? Pid = null, string? ContainerId = null);

/// <summary>A file of an instance snapshot, as its manifest lists it.</summary>
public sealed record SnapshotFile(string Name, long Bytes, string Sha256);

/// <summary>One part of an instance snapshot (gcore, /proc, /tmp; commit, checkpoint) and what it cost.</summary>
public sealed record SnapshotPart(string Name, double DurationMs, string? Error = null);

/// <summary>
/// Memory the snapshot cost: the target's resident set before and after, and the peak resident memory of the tools the
/// snapshotter ran (gdb for gcore) plus the copy buffers it held.
/// </summary>
public sealed record SnapshotMemory(long? TargetRssBeforeBytes, long? TargetRssAfterBytes, long SnapshotterPeakBytes)
{
    public long? TargetRssDeltaBytes => TargetRssAfterBytes - TargetRssBeforeBytes;
}

/// <summary>Outcomes of one instance snapshot.</summary>
public static class SnapshotStatus
{
    public const string Complete = "complete";
    public const string SizeLimit = "incomplete: size limit";
    public const string Failed = "failed";
}

/// <summary>
/// The manifest of one instance's snapshot (<c>snapshot.json</c> in its folder): what was taken, sizes, SHA-256, time,
/// memory, and why anything is missing.
/// </summary>
public sealed record InstanceSnapshot
{
    public required string Function { get; init; }

    public required string Instance { get; init; }

    /// <summary>"local" (gcore + /proc + /tmp) or "docker" (commit + checkpoint).</summary>
    public required string Mode { get; init; }

    public int? Pid { get; init; }

    public string? ContainerId { get; init; }

    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>One of <see cref="SnapshotStatus"/>.</summary>
    public required string Status { get; init; }

    /// <summary>Why the snapshot is failed or incomplete; null when complete.</summary>
    public string? Error { get; init; }

    public double DurationMs { get; init; }

    public IReadOnlyList<SnapshotPart> Parts { get; init; } = [];

    public IReadOnlyList<SnapshotFile> Files { get; init; } = [];

    public SnapshotMemory? Memory { get; init; }

    /// <summary>Entries of /tmp left out of the copy (symlinks are kept as links, never followed), with the reason.</summary>
    public IReadOnlyList<string> Skipped { get; init; } = [];

    /// <summary>Docker mode: the image <c>docker commit</c> made and the checkpoint id, when they were made.</summary>
    public string? ImageId { get; init; }

    public string? CheckpointId { get; init; }

    /// <summary>Local mode with the resident dumper: how the core was taken (freeze, time held, what was left out).</summary>
    public CoreDumpInfo? Core { get; init; }
}

/// <summary>Every instance snapshot taken for one verdict (<c>set.json</c> in the verdict's folder).</summary>
public sealed record SnapshotSet(string VerdictId, DateTimeOffset CreatedAt, IReadOnlyList<InstanceSnapshot> Instances)
{
    public bool Complete => Instances.All(i => i.Status == SnapshotStatus.Complete);
}

internal static class SnapshotJson
{
    public static JsonSerializerOptions Options { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        WriteIndented = true,
    };

    /// <summary>The API's JSON (api.md): web defaults, nulls omitted, not indented.</summary>
    public static JsonSerializerOptions Api { get; } = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };
}

/// <summary>Local-mode core dump routes (<see cref="SnapshotOptions.CoreDumper"/>).</summary>
public enum CoreDumper
{
    /// <summary>Present pages from /proc/PID/mem into an ELF core, the instance frozen (cgroup.freeze or SIGSTOP).</summary>
    Resident,

    /// <summary><c>gcore</c> (gdb): every mapping, registers included; slow and large for Node.</summary>
    Gcore,
}

/// <summary>Where a snapshot goes and how much it may take.</summary>
public sealed class SnapshotOptions
{
    /// <summary>The folder of every snapshot: <c>DATA/snapshots</c>. Must not be under /tmp.</summary>
    public required string Directory { get; init; }

    /// <summary>
    /// Byte budget for everything under <see cref="Directory"/> (a full disk's stand-in); reaching it marks the snapshot
    /// <c>incomplete: size limit</c>. gcore writes a Node instance's core at about 11 GB (V8's reserved address space as
    /// zeros), so the default holds a few.
    /// </summary>
    public long MaxTotalBytes { get; init; } = 48L << 30;

    /// <summary>Local mode: take a core dump; false keeps /proc and /tmp only.</summary>
    public bool CoreDump { get; init; } = true;

    /// <summary>
    /// Local mode: how the core is taken. <see cref="CoreDumper.Resident"/> (default) copies only present pages with the
    /// instance frozen (~100 MiB and well under a second for a Node instance); <see cref="CoreDumper.Gcore"/> runs gdb's
    /// gcore (30–45 s and ~11 GB for a Node instance: V8's reserved address space written as zeros), with registers.
    /// </summary>
    public CoreDumper CoreDumper { get; init; } = CoreDumper.Resident;

    /// <summary>Bytes of an instance's /tmp copied at most; files beyond it are listed as skipped.</summary>
    public long MaxTmpBytes { get; init; } = 64L << 20;

    public int MaxTmpEntries { get; init; } = 10_000;

    /// <summary>gcore (or a Docker call) that takes longer is killed and the part recorded as failed; a Node core takes 30–60 s here.</summary>
    public TimeSpan ToolTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>Docker Engine endpoint (<c>unix:///var/run/docker.sock</c>); null: targets with a container id fail.</summary>
    public string? DockerHost { get; init; }

    /// <summary>Repository of the images <c>docker commit</c> makes; the tag is the verdict and instance.</summary>
    public string DockerRepository { get; init; } = "faasmon-snapshot";

    /// <summary>Finds a local target's pid when the target has none (the host plugs LocalFaaS in); default: the instance's cgroup.</summary>
    public Func<SnapshotTarget, int?>? ResolvePid { get; init; }
}
