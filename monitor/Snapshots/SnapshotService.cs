using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>
/// What the host calls on an intrusion verdict: snapshots the given instances (those on the request's causal path,
/// <see cref="CausalPath"/>) into <c>DATA/snapshots/VERDICT/INSTANCE/</c>, one folder per instance with its
/// <c>snapshot.json</c> manifest, and <c>set.json</c> for the verdict.
/// <list type="bullet">
/// <item>Idempotent: a verdict already snapshotted returns its set from disk; concurrent asks share one run.</item>
/// <item>Each instance is written into a hidden <c>.INSTANCE.partial-*</c> folder and renamed when whole, so a
/// folder under its real name is always complete; a run cut short leaves only partial folders, removed at start.</item>
/// <item>A byte budget for the whole folder: reaching it marks that instance <c>incomplete: size limit</c> and removes
/// its files; a target that exits mid-snapshot is recorded as failed with the reason; the other instances are kept.</item>
/// </list>
/// Targets with a container id are taken in Docker mode (commit + checkpoint), the others in local mode (gcore, /proc, /tmp).
/// </summary>
public sealed partial class SnapshotService : IDisposable
{
    private const string Manifest = "snapshot.json";
    private const string SetFile = "set.json";
    private readonly SnapshotOptions _options;
    private readonly IInstanceSnapshotter _local;
    private readonly IInstanceSnapshotter? _docker;
    private readonly ILogger _logger;
    private readonly SnapshotBudget _budget;
    private readonly ConcurrentDictionary<string, Lazy<Task<SnapshotSet>>> _running = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();

    public SnapshotService(SnapshotOptions options, ILogger<SnapshotService>? logger = null)
        : this(options, new LocalSnapshotter(options), options.DockerHost is null ? null : new DockerSnapshotter(options), logger)
    {
    }

    internal SnapshotService(SnapshotOptions options, IInstanceSnapshotter local, IInstanceSnapshotter? docker, ILogger? logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        var root = Path.GetFullPath(options.Directory);
        if (root == "/tmp" || root.StartsWith("/tmp/", StringComparison.Ordinal))
        {
            throw new ArgumentException("the snapshot folder must not be under /tmp", nameof(options));
        }

        _options = options;
        _local = local;
        _docker = docker;
        _logger = logger ?? NullLogger.Instance;
        Root = root;
        Directory.CreateDirectory(Root);
        RemovePartials();
        _budget = new SnapshotBudget(options.MaxTotalBytes, SnapshotBudget.SizeOf(Root));
    }

    /// <summary>The snapshot folder (<see cref="SnapshotOptions.Directory"/>, absolute).</summary>
    public string Root { get; }

    /// <summary>Bytes under <see cref="Root"/> as the budget counts them.</summary>
    public long UsedBytes => _budget.Used;

    /// <summary>How many instance snapshots this service has taken (not reused from disk).</summary>
    public int Taken => Volatile.Read(ref _taken);

    private int _taken;

    /// <summary>
    /// Snapshots <paramref name="targets"/> for <paramref name="verdictId"/>, or returns the set already taken for it.
    /// Cancelling stops waiting; the run itself ends when the service is disposed.
    /// </summary>
    /// <exception cref="ArgumentException">The verdict id cannot be a folder name (<see cref="IsSafeName"/>).</exception>
    public Task<SnapshotSet> SnapshotAsync(string verdictId, IReadOnlyCollection<SnapshotTarget> targets, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(targets);
        if (!IsSafeName(verdictId))
        {
            throw new ArgumentException($"verdict id '{verdictId}' is not usable as a folder name", nameof(verdictId));
        }

        lock (_running)
        {
            if (Find(verdictId) is { } done)
            {
                return Task.FromResult(done);
            }

            var run = _running.GetOrAdd(verdictId, id => new Lazy<Task<SnapshotSet>>(() => RunAsync(id, targets)));
            return run.Value.WaitAsync(ct);
        }
    }

    /// <summary>The finished set of a verdict, or null when there is none (yet).</summary>
    public SnapshotSet? Find(string verdictId)
    {
        if (!IsSafeName(verdictId))
        {
            return null;
        }

        var path = Path.Combine(Root, verdictId, SetFile);
        return File.Exists(path) ? JsonSerializer.Deserialize<SnapshotSet>(File.ReadAllBytes(path), SnapshotJson.Options) : null;
    }

    /// <summary>The instance snapshots of a verdict on disk, finished ones only (also while the rest are still taken).</summary>
    public IReadOnlyList<InstanceSnapshot> List(string verdictId)
    {
        if (!IsSafeName(verdictId) || !Directory.Exists(Path.Combine(Root, verdictId)))
        {
            return [];
        }

        var list = new List<InstanceSnapshot>();
        foreach (var dir in Directory.GetDirectories(Path.Combine(Root, verdictId)).Order(StringComparer.Ordinal))
        {
            if (ReadManifest(dir) is { } manifest)
            {
                list.Add(manifest);
            }
        }

        return list;
    }

    /// <summary>
    /// The path of one file of one instance snapshot, when every segment is a plain name and the instance's manifest
    /// lists the file; null otherwise (unknown, or an attempt to leave the folder).
    /// </summary>
    public string? FilePath(string verdictId, string instance, string file)
    {
        if (!IsSafeName(verdictId) || !IsSafeName(instance) || !IsSafeName(file))
        {
            return null;
        }

        var dir = Path.Combine(Root, verdictId, instance);
        if (ReadManifest(dir) is not { } manifest || manifest.Files.All(f => f.Name != file))
        {
            return null;
        }

        var path = Path.GetFullPath(Path.Combine(dir, file));
        return path.StartsWith(Root + "/", StringComparison.Ordinal) && File.Exists(path) && new FileInfo(path).LinkTarget is null ? path : null;
    }

    /// <summary>A name usable as one path segment: letters, digits, <c>._-</c>, 1–200 characters, not starting with a dot.</summary>
    public static bool IsSafeName(string? name) => name is { Length: > 0 and <= 200 } && SafeName().IsMatch(name);

    [GeneratedRegex("^[A-Za-z0-9_-][A-Za-z0-9._-]*$", RegexOptions.CultureInvariant)]
    private static partial Regex SafeName();

    public void Dispose()
    {
        _stopping.Cancel();
        (_docker as IDisposable)?.Dispose();
        _stopping.Dispose();
    }

    private async Task<SnapshotSet> RunAsync(string verdictId, IReadOnlyCollection<SnapshotTarget> targets)
    {
        try
        {
            var ct = _stopping.Token;
            await Task.Yield(); // never run the dumps under the caller's lock
            var createdAt = DateTimeOffset.UtcNow;
            var folder = Path.Combine(Root, verdictId);
            Directory.CreateDirectory(folder);
            var instances = new List<InstanceSnapshot>();
            // one at a time: gcore stops its target while it copies memory, and these machines have few cores
            foreach (var target in targets.DistinctBy(t => (t.Function, t.Instance)))
            {
                instances.Add(await SnapshotInstanceAsync(folder, target, ct));
            }

            var set = new SnapshotSet(verdictId, createdAt, instances);
            WriteAtomically(Path.Combine(folder, SetFile), JsonSerializer.SerializeToUtf8Bytes(set, SnapshotJson.Options));
            LogSet(_logger, verdictId, instances.Count, instances.Count(i => i.Status == SnapshotStatus.Complete));
            return set;
        }
        finally
        {
            lock (_running)
            {
                _running.TryRemove(verdictId, out _);
            }
        }
    }

    private async Task<InstanceSnapshot> SnapshotInstanceAsync(string folder, SnapshotTarget target, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        if (!IsSafeName(target.Instance))
        {
            return Failed(target, $"instance name '{target.Instance}' is not usable as a folder name", started, SnapshotStatus.Failed);
        }

        var final = Path.Combine(folder, target.Instance);
        if (ReadManifest(final) is { } existing)
        {
            return existing; // taken by an earlier run that did not get to write the set
        }

        var partial = Path.Combine(folder, $".{target.Instance}.partial-{Guid.NewGuid():N}");
        Directory.CreateDirectory(partial);
        var scope = new BudgetScope(_budget);
        InstanceSnapshot result;
        try
        {
            var snapshotter = target.ContainerId is not null || (_docker is not null && target.Pid is null && _options.ResolvePid is null) ? _docker : _local;
            if (snapshotter is null)
            {
                throw new InvalidOperationException($"{target.Instance} is a Docker container and no Docker host is configured");
            }

            var taken = await snapshotter.SnapshotAsync(target, partial, scope, ct);
            Interlocked.Increment(ref _taken);
            result = taken with { Files = Describe(partial) };
            LocalSnapshotter.Write(partial, Manifest, JsonSerializer.SerializeToUtf8Bytes(result, SnapshotJson.Options), scope);
            Directory.Move(partial, final);
            scope.Settle(SnapshotBudget.SizeOf(final));
            LogInstance(_logger, target.Instance, result.Status, result.DurationMs);
            return result;
        }
        catch (SizeLimitException e)
        {
            result = Failed(target, e.Message, started, SnapshotStatus.SizeLimit);
        }
        catch (TargetGoneException e)
        {
            result = Failed(target, e.Message, started, SnapshotStatus.Failed);
        }
        catch (OperationCanceledException)
        {
            RemovePartial(partial, scope);
            throw;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or InvalidOperationException or JsonException)
        {
            result = Failed(target, e.Message, started, SnapshotStatus.Failed);
        }

        RemovePartial(partial, scope);
        LogFailed(_logger, target.Instance, result.Status, result.Error);
        // the outcome itself is kept (a few hundred bytes, outside the budget: it must be recorded even on a full disk)
        var bytes = JsonSerializer.SerializeToUtf8Bytes(result, SnapshotJson.Options);
        var outcome = Path.Combine(folder, $".{target.Instance}.partial-{Guid.NewGuid():N}");
        Directory.CreateDirectory(outcome);
        WriteAtomically(Path.Combine(outcome, Manifest), bytes);
        Directory.Move(outcome, final);
        _budget.Release(-bytes.Length);
        return result;
    }

    private static InstanceSnapshot Failed(SnapshotTarget target, string error, long started, string status) => new()
    {
        Function = target.Function,
        Instance = target.Instance,
        Mode = target.ContainerId is null ? "local" : "docker",
        Pid = target.Pid,
        ContainerId = target.ContainerId,
        CreatedAt = DateTimeOffset.UtcNow,
        Status = status,
        Error = error,
        DurationMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds,
    };

    private static List<SnapshotFile> Describe(string directory)
    {
        var files = new List<SnapshotFile>();
        foreach (var file in new DirectoryInfo(directory).EnumerateFiles().OrderBy(f => f.Name, StringComparer.Ordinal))
        {
            if (file.Name.EndsWith(".part", StringComparison.Ordinal) || file.Name.Contains(".part.", StringComparison.Ordinal))
            {
                file.Delete(); // a part a tool left behind is not a file of the snapshot
                continue;
            }

            using var stream = file.OpenRead();
            files.Add(new SnapshotFile(file.Name, file.Length, Convert.ToHexStringLower(SHA256.HashData(stream))));
        }

        return files;
    }

    private static InstanceSnapshot? ReadManifest(string directory)
    {
        var path = Path.Combine(directory, Manifest);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<InstanceSnapshot>(File.ReadAllBytes(path), SnapshotJson.Options) : null;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            return null;
        }
    }

    private void RemovePartial(string partial, BudgetScope scope)
    {
        try
        {
            if (Directory.Exists(partial))
            {
                Directory.Delete(partial, recursive: true);
            }
        }
        catch (IOException e)
        {
            LogCleanup(_logger, partial, e.Message);
        }

        scope.ReleaseAll();
    }

    private void RemovePartials()
    {
        foreach (var verdict in Directory.GetDirectories(Root))
        {
            foreach (var partial in Directory.GetDirectories(verdict, ".*.partial-*"))
            {
                Directory.Delete(partial, recursive: true);
            }
        }
    }

    private static void WriteAtomically(string path, byte[] content)
    {
        File.WriteAllBytes(path + ".part", content);
        File.Move(path + ".part", path, overwrite: true);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "snapshot of {Instance}: {Status} in {DurationMs:F0} ms")]
    private static partial void LogInstance(ILogger logger, string instance, string status, double durationMs);

    [LoggerMessage(Level = LogLevel.Warning, Message = "snapshot of {Instance}: {Status}: {Error}")]
    private static partial void LogFailed(ILogger logger, string instance, string status, string? error);

    [LoggerMessage(Level = LogLevel.Information, Message = "snapshots of verdict {VerdictId}: {Complete} of {Count} instances complete")]
    private static partial void LogSet(ILogger logger, string verdictId, int count, int complete);

    [LoggerMessage(Level = LogLevel.Warning, Message = "could not remove the partial snapshot {Path}: {Error}")]
    private static partial void LogCleanup(ILogger logger, string path, string error);
}
