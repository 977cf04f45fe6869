using System.Net.Sockets;
using Microsoft.Extensions.Logging;

namespace FaaSMon.LocalFaaS;

internal enum InstanceState
{
    Starting,
    Ready,
    Crashed,
    Stopped,
}

/// <summary>What an instance is started from: the function's "image" and its configuration.</summary>
internal sealed record InstanceSpec(
    string Function,
    string TemplateDirectory,
    string HandlerDirectory,
    string Fprocess,
    IReadOnlyDictionary<string, string> Environment,
    string? SecretsDirectory,
    long? MemoryBytes);

/// <summary>
/// One function instance: a lightweight container (fnbox: mount + PID + UTS + IPC namespaces, a
/// private tmpfs <c>/tmp</c>, its own cgroup) running <c>node index.js</c>, kept warm between
/// invocations as of-watchdog's http mode does, and restarted when it crashes.
/// </summary>
internal sealed partial class FunctionInstance : IAsyncDisposable
{
    private const int LogTail = 40;
    private readonly InstanceSpec _spec;
    private readonly RuntimePaths _paths;
    private readonly CgroupTree _cgroups;
    private readonly ILogger _logger;
    private readonly Queue<string> _stderrTail = new();
    private readonly CancellationTokenSource _stopping = new();
    private ChildProcess? _box;
    private IReadOnlyList<string> _cgroupDirs = [];
    private int _inflight;
    private Task? _supervisor;

    public FunctionInstance(InstanceSpec spec, string name, RuntimePaths paths, CgroupTree cgroups, ILogger logger)
    {
        _spec = spec;
        Name = name;
        _paths = paths;
        _cgroups = cgroups;
        _logger = logger;
    }

    public string Name { get; }

    public string Function => _spec.Function;

    public int Port { get; private set; }

    public InstanceState State { get; private set; } = InstanceState.Starting;

    public int Restarts { get; private set; }

    public string? LastError { get; private set; }

    public DateTimeOffset StartedAt { get; private set; }

    public int Inflight => Volatile.Read(ref _inflight);

    /// <summary>Host PID of the function process (<c>node index.js</c>), once it runs.</summary>
    public int? FunctionPid => _box is { HasExited: false } box ? FindFunctionPid(box.Pid) : null;

    public string AppDirectory => Path.Combine(_paths.Instances, Name, "app");

    public bool TryAcquire(int maxInflight)
    {
        while (true)
        {
            var current = Volatile.Read(ref _inflight);
            if (State != InstanceState.Ready || (maxInflight > 0 && current >= maxInflight))
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _inflight, current + 1, current) == current)
            {
                return true;
            }
        }
    }

    public void Release() => Interlocked.Decrement(ref _inflight);

    /// <summary>Starts the container and waits until the function accepts connections.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        await LaunchAsync(ct);
        _supervisor = SuperviseAsync();
    }

    public async ValueTask DisposeAsync()
    {
        State = InstanceState.Stopped;
        await _stopping.CancelAsync();
        if (_box is not null)
        {
            await _box.DisposeAsync();
        }

        if (_supervisor is not null)
        {
            await _supervisor;
        }

        CgroupTree.Remove(_cgroupDirs);
        TryDeleteDirectory(Path.Combine(_paths.Instances, Name));
        _stopping.Dispose();
    }

    private async Task LaunchAsync(CancellationToken ct)
    {
        State = InstanceState.Starting;
        PrepareAppDirectory();
        Port = PostgresStore.FreePort();
        _cgroupDirs = _cgroups.Create(Function, Name, _spec.MemoryBytes, pidsMax: 512);

        var args = new List<string>();
        foreach (var dir in _cgroupDirs)
        {
            args.AddRange(["--cgroup", dir]);
        }

        args.AddRange(["--hostname", Name, "--chdir", AppDirectory, "--tmpfs-size", "64m",
                       "--user", $"{_paths.FunctionUser.Uid}:{_paths.FunctionUser.Gid}",
                       "--bind", $"{_paths.PhotosVolume}:{Path.Combine(AppDirectory, "photos")}",
                       "--bind", $"{Path.Combine(_spec.TemplateDirectory, "node_modules")}:{Path.Combine(AppDirectory, "node_modules")}:ro"]);
        if (_spec.SecretsDirectory is not null)
        {
            args.AddRange(["--bind", $"{_spec.SecretsDirectory}:{RuntimePaths.SecretMountPath}:ro"]);
        }

        var environment = new Dictionary<string, string>(_spec.Environment, StringComparer.Ordinal)
        {
            ["fprocess"] = _spec.Fprocess,
            ["http_port"] = Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["http_host"] = "127.0.0.1",
            ["PHOTOS_DIR"] = Path.Combine(AppDirectory, "photos"),
            ["secret_mount_path"] = RuntimePaths.SecretMountPath,
            ["HOSTNAME"] = Name,
        };
        lock (_stderrTail)
        {
            _stderrTail.Clear();
        }

        StartedAt = DateTimeOffset.UtcNow;
        _box = ChildProcess.Start(_paths.Fnbox, args, OnOutput, environment, clearEnvironment: true,
            workingDirectory: AppDirectory, keepStdinOpen: true);
        await WaitUntilListeningAsync(_box, ct);
        State = InstanceState.Ready;
        LogReady(_logger, Name, FunctionPid ?? 0, Port);
    }

    private async Task WaitUntilListeningAsync(ChildProcess box, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            if (box.HasExited)
            {
                throw new InvalidOperationException($"{Name} exited during start with code {await box.Exited}: {StderrTail()}");
            }

            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(System.Net.IPAddress.Loopback, Port, ct);
                return;
            }
            catch (SocketException) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(50, ct);
            }
            catch (SocketException e)
            {
                throw new TimeoutException($"{Name} did not listen on port {Port} within 30 s: {StderrTail()}", e);
            }
        }
    }

    // A crashed container is restarted as Kubernetes restarts a pod's container: same name, a
    // fresh filesystem layer and /tmp, the error kept for /system/function.
    private async Task SuperviseAsync()
    {
        var backoff = TimeSpan.FromMilliseconds(250);
        while (!_stopping.IsCancellationRequested)
        {
            var code = await _box!.Exited.WaitAsync(_stopping.Token).ContinueWith(t => t.IsCompletedSuccessfully ? t.Result : (int?)null, TaskScheduler.Default);
            if (code is null || _stopping.IsCancellationRequested)
            {
                return;
            }

            State = InstanceState.Crashed;
            LastError = $"{DateTimeOffset.UtcNow:O} exited with code {code}: {StderrTail()}";
            Restarts++;
            LogCrashed(_logger, Name, code.Value, StderrTail());
            await _box.DisposeAsync();
            CgroupTree.Remove(_cgroupDirs);
            try
            {
                await Task.Delay(backoff, _stopping.Token);
                await LaunchAsync(_stopping.Token);
                backoff = TimeSpan.FromMilliseconds(250);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException)
            {
                LastError = $"{DateTimeOffset.UtcNow:O} restart failed: {e.Message}";
                LogRestartFailed(_logger, Name, e.Message);
                backoff = TimeSpan.FromTicks(Math.Min(backoff.Ticks * 2, TimeSpan.FromSeconds(10).Ticks));
            }
        }
    }

    /// <summary>Lays out the instance's writable copy of the image: template + handler, as the node template's Dockerfile does.</summary>
    private void PrepareAppDirectory()
    {
        var app = AppDirectory;
        TryDeleteDirectory(app);
        CopyTree(_spec.TemplateDirectory, app, skip: name => name is "node_modules" or "function" or "Dockerfile" or "template.yml");
        CopyTree(_spec.HandlerDirectory, Path.Combine(app, "function"), skip: name => name is "node_modules");
        // node_modules is bind-mounted (read-only) rather than linked: a link into a checkout under
        // /tmp would dangle inside the container, whose /tmp is its own.
        Directory.CreateDirectory(Path.Combine(app, "node_modules"));
        Directory.CreateDirectory(Path.Combine(app, "photos"));
    }

    private static void CopyTree(string source, string target, Func<string, bool> skip)
    {
        Directory.CreateDirectory(target);
        foreach (var entry in new DirectoryInfo(source).EnumerateFileSystemInfos())
        {
            if (skip(entry.Name) || entry.LinkTarget is not null)
            {
                continue;
            }

            var destination = Path.Combine(target, entry.Name);
            if (entry is DirectoryInfo)
            {
                CopyTree(entry.FullName, destination, _ => false);
            }
            else
            {
                File.Copy(entry.FullName, destination, overwrite: true);
            }
        }
    }

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
        }
    }

    private void OnOutput(string line, bool isError)
    {
        if (isError)
        {
            lock (_stderrTail)
            {
                _stderrTail.Enqueue(line);
                while (_stderrTail.Count > LogTail)
                {
                    _stderrTail.Dequeue();
                }
            }

            LogFunctionStderr(_logger, Name, line);
        }
        else
        {
            LogFunctionStdout(_logger, Name, line);
        }
    }

    private string StderrTail()
    {
        lock (_stderrTail)
        {
            var lines = _stderrTail.TakeLast(8).ToList();
            return lines.Count == 0 ? "(no output)" : string.Join(" | ", lines);
        }
    }

    /// <summary>fnbox → init → function: the function is init's first child.</summary>
    private static int? FindFunctionPid(int boxPid)
    {
        var init = Children(boxPid).FirstOrDefault();
        return init == 0 ? null : Children(init).FirstOrDefault() is var fn && fn != 0 ? fn : null;
    }

    private static IEnumerable<int> Children(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/task/{pid}/children")
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture));
        }
        catch (IOException)
        {
            return [];
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Instance} ready: pid {Pid}, port {Port}")]
    private static partial void LogReady(ILogger logger, string instance, int pid, int port);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Instance} crashed with exit code {Code}, restarting: {Tail}")]
    private static partial void LogCrashed(ILogger logger, string instance, int code, string tail);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Instance} could not be restarted: {Reason}")]
    private static partial void LogRestartFailed(ILogger logger, string instance, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "[{Instance}] {Line}")]
    private static partial void LogFunctionStderr(ILogger logger, string instance, string line);

    [LoggerMessage(Level = LogLevel.Debug, Message = "[{Instance}] {Line}")]
    private static partial void LogFunctionStdout(ILogger logger, string instance, string line);
}
