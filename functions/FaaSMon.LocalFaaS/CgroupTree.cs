using System.Globalization;
using Microsoft.Extensions.Logging;

namespace FaaSMon.LocalFaaS;

/// <summary>
/// Places function instances in cgroups named <c>…/faasmon/&lt;function&gt;/&lt;instance&gt;</c>, below
/// our own cgroup in every hierarchy we use (cgroup v2, and the v1 <c>pids</c> and <c>memory</c>
/// hierarchies on hybrid hosts), so that <c>/proc/PID/cgroup</c> names the function and instance.
/// </summary>
internal sealed partial class CgroupTree
{
    public const string Segment = "faasmon";
    private readonly List<Hierarchy> _hierarchies;

    private CgroupTree(List<Hierarchy> hierarchies) => _hierarchies = hierarchies;

    private sealed record Hierarchy(string Root, string Kind);

    public static CgroupTree Detect(ILogger logger, string mountRoot = "/sys/fs/cgroup")
    {
        var own = File.ReadAllLines("/proc/self/cgroup")
            .Select(l => l.Split(':', 3))
            .Where(f => f.Length == 3)
            .ToDictionary(f => f[1], f => f[2], StringComparer.Ordinal);
        var hierarchies = new List<Hierarchy>();
        if (File.Exists(Path.Combine(mountRoot, "cgroup.controllers")))
        {
            hierarchies.Add(new Hierarchy(Join(mountRoot, own.GetValueOrDefault("", "/")), "v2"));
        }
        else
        {
            if (Directory.Exists(Path.Combine(mountRoot, "unified")))
            {
                hierarchies.Add(new Hierarchy(Join(Path.Combine(mountRoot, "unified"), own.GetValueOrDefault("", "/")), "v2"));
            }

            foreach (var controller in new[] { "pids", "memory" })
            {
                if (Directory.Exists(Path.Combine(mountRoot, controller)) && own.TryGetValue(controller, out var path))
                {
                    hierarchies.Add(new Hierarchy(Join(Path.Combine(mountRoot, controller), path), controller));
                }
            }
        }

        if (hierarchies.Count == 0)
        {
            throw new InvalidOperationException($"no cgroup hierarchy found under {mountRoot}");
        }

        LogHierarchies(logger, string.Join(", ", hierarchies.Select(h => h.Root)));
        return new CgroupTree(hierarchies);
    }

    /// <summary>Creates the instance's cgroups with their limits and returns their folders.</summary>
    public IReadOnlyList<string> Create(string function, string instance, long? memoryBytes, int pidsMax)
    {
        var created = new List<string>();
        foreach (var h in _hierarchies)
        {
            var dir = Path.Combine(h.Root, Segment, function, instance);
            Directory.CreateDirectory(dir);
            created.Add(dir);
            if (h.Kind == "pids" || (h.Kind == "v2" && File.Exists(Path.Combine(dir, "pids.max"))))
            {
                TryWrite(Path.Combine(dir, "pids.max"), pidsMax.ToString(CultureInfo.InvariantCulture));
            }

            if (memoryBytes is { } bytes)
            {
                var file = h.Kind == "memory" ? "memory.limit_in_bytes" : "memory.max";
                if (h.Kind == "memory" || File.Exists(Path.Combine(dir, file)))
                {
                    TryWrite(Path.Combine(dir, file), bytes.ToString(CultureInfo.InvariantCulture));
                }
            }
        }

        return created;
    }

    /// <summary>Removes an instance's (now empty) cgroups, and the function's folder when it is the last one.</summary>
    public static void Remove(IEnumerable<string> directories)
    {
        foreach (var dir in directories)
        {
            for (var attempt = 0; attempt < 20 && Directory.Exists(dir); attempt++)
            {
                try
                {
                    Directory.Delete(dir);
                }
                catch (IOException)
                {
                    Thread.Sleep(50); // the last task is still leaving
                }
            }

            try
            {
                Directory.Delete(Path.GetDirectoryName(dir)!);
            }
            catch (IOException)
            {
                // other instances of the function are still there
            }
        }
    }

    /// <summary>Function and instance of a process from its <c>/proc/PID/cgroup</c> text, or null when it is not ours.</summary>
    public static (string Function, string Instance)? Parse(string procCgroup)
    {
        foreach (var line in procCgroup.Split('\n'))
        {
            var path = line.Split(':', 3) is { Length: 3 } f ? f[2] : "";
            var parts = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
            var at = Array.LastIndexOf(parts, Segment);
            if (at >= 0 && at + 2 < parts.Length)
            {
                return (parts[at + 1], parts[at + 2]);
            }
        }

        return null;
    }

    private static void TryWrite(string path, string value)
    {
        try
        {
            File.WriteAllText(path, value);
        }
        catch (IOException)
        {
            // a controller that refuses a limit leaves the instance unlimited, not unplaced
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string Join(string root, string own) => Path.Combine(root, own.TrimStart('/'));

    [LoggerMessage(Level = LogLevel.Debug, Message = "function instances go under cgroups {Roots}")]
    private static partial void LogHierarchies(ILogger logger, string roots);
}
