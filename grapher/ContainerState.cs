namespace FaaSMon.Grapher;

/// <summary>The invocation that last wrote a file in a warm container.</summary>
internal sealed record FileWriter(long WindowId, string GraphId, string? CallId, string Function, DateTimeOffset Time);

/// <summary>
/// What a warm function instance carries from one invocation to the next: for each file, the invocation that last wrote
/// its content (a chmod or a read does not make a writer; a rename carries the writer along; an unlink forgets it). A later
/// invocation that reads, maps or executes such a file inherits it. Bounded: the oldest entries are forgotten first.
/// </summary>
internal sealed class ContainerState(int maxFiles)
{
    private readonly Dictionary<string, FileWriter> _writers = new(StringComparer.Ordinal);

    public int Count => _writers.Count;

    public FileWriter? WriterOf(string path) => _writers.GetValueOrDefault(path);

    public void Wrote(string path, FileWriter writer)
    {
        if (!Tracked(path))
        {
            return;
        }

        _writers[path] = writer;
        if (_writers.Count > maxFiles)
        {
            // forget the oldest tenth at once, so the sort is paid rarely
            foreach (var old in _writers.OrderBy(p => p.Value.Time).Take(Math.Max(1, maxFiles / 10)).Select(p => p.Key).ToList())
            {
                _writers.Remove(old);
            }
        }
    }

    public void Renamed(string from, string to, FileWriter renamer)
    {
        var writer = _writers.Remove(from, out var previous) ? previous : renamer;
        Wrote(to, writer);
    }

    public void Removed(string path) => _writers.Remove(path);

    /// <summary>Real files only: devices, /proc and anonymous descriptors carry no state between invocations.</summary>
    public static bool Tracked(string path) =>
        path.StartsWith('/') && !path.StartsWith("/dev/", StringComparison.Ordinal) && !path.StartsWith("/proc/", StringComparison.Ordinal)
        && !path.StartsWith("/sys/", StringComparison.Ordinal);
}
