using System.Text;
using System.Text.Json;

namespace FaaSMon.Monitor.Hosting;

/// <summary>
/// Follows NDJSON files another process appends to (the proxy's hourly record files, the tracer's event file), line by
/// line, as <c>tail -F</c> does: new files matching the pattern are picked up in name order, a file that shrinks (the
/// tracer restarted and recreated it) is read again from its start, and a half-written last line waits for its newline.
/// Where it got to is saved in <paramref name="positionsFile"/>, so a restart continues where it stopped and loses
/// nothing written meanwhile. A line longer than <see cref="MaxLineBytes"/> is skipped and counted.
/// </summary>
internal sealed class NdjsonFollower(string directory, string pattern, string positionsFile)
{
    public const int MaxLineBytes = 4 * 1024 * 1024;
    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan SaveEvery = TimeSpan.FromSeconds(2);

    private readonly Dictionary<string, long> _positions = Load(positionsFile);
    private long _skipped;

    /// <summary>Lines too long or not JSON, skipped.</summary>
    public long Skipped => Interlocked.Read(ref _skipped);

    /// <summary>Reads every complete line as it appears, until <paramref name="ct"/> fires; <paramref name="line"/> gets each.</summary>
    /// <exception cref="IOException">The directory or a file cannot be read (the caller reports the component as failed).</exception>
    public async Task RunAsync(Action<string> line, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(line);
        var lastSave = DateTime.UtcNow;
        var buffer = new byte[64 * 1024];
        var pending = new MemoryStream();
        while (!ct.IsCancellationRequested)
        {
            var any = false;
            if (Directory.Exists(directory))
            {
                foreach (var path in Directory.GetFiles(directory, pattern).Order(StringComparer.Ordinal))
                {
                    any |= ReadNew(path, buffer, pending, line);
                }
            }
            else if (File.Exists(directory))
            {
                throw new IOException($"{directory} is not a directory");
            }

            if (DateTime.UtcNow - lastSave >= SaveEvery)
            {
                Save();
                lastSave = DateTime.UtcNow;
            }

            if (!any)
            {
                await Task.Delay(Poll, ct).ContinueWith(_ => { }, TaskScheduler.Default);
            }
        }

        Save();
    }

    private bool ReadNew(string path, byte[] buffer, MemoryStream pending, Action<string> line)
    {
        var name = Path.GetFileName(path);
        var position = _positions.GetValueOrDefault(name);
        FileStream file;
        try
        {
            file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1, FileOptions.SequentialScan);
        }
        catch (FileNotFoundException)
        {
            return false; // removed between listing and opening
        }

        using (file)
        {
            if (file.Length < position)
            {
                position = 0; // recreated: start over
            }

            if (file.Length == position)
            {
                return false;
            }

            file.Position = position;
            pending.SetLength(0);
            var lineStart = position;
            var skipping = false;
            int read;
            while ((read = file.Read(buffer, 0, buffer.Length)) > 0)
            {
                var start = 0;
                for (var i = 0; i < read; i++)
                {
                    if (buffer[i] != (byte)'\n')
                    {
                        continue;
                    }

                    if (!skipping)
                    {
                        pending.Write(buffer, start, i - start);
                        Emit(pending, line);
                    }

                    skipping = false;
                    pending.SetLength(0);
                    start = i + 1;
                    lineStart = file.Position - read + i + 1;
                }

                if (!skipping)
                {
                    pending.Write(buffer, start, read - start);
                    if (pending.Length > MaxLineBytes)
                    {
                        skipping = true;
                        pending.SetLength(0);
                        Interlocked.Increment(ref _skipped);
                    }
                }
            }

            // a last line without its newline is still being written: read it again next time
            _positions[name] = lineStart;
            return lineStart != position;
        }
    }

    private void Emit(MemoryStream pending, Action<string> line)
    {
        if (pending.Length == 0)
        {
            return;
        }

        var text = Encoding.UTF8.GetString(pending.GetBuffer(), 0, (int)pending.Length).TrimEnd('\r');
        try
        {
            line(text);
        }
        catch (JsonException)
        {
            Interlocked.Increment(ref _skipped);
        }
    }

    private void Save()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(positionsFile)!);
        var temporary = positionsFile + ".tmp";
        File.WriteAllText(temporary, JsonSerializer.Serialize(_positions));
        File.Move(temporary, positionsFile, overwrite: true);
    }

    private static Dictionary<string, long> Load(string path)
    {
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize<Dictionary<string, long>>(File.ReadAllText(path)) ?? [] : [];
        }
        catch (JsonException)
        {
            return [];
        }
    }
}
