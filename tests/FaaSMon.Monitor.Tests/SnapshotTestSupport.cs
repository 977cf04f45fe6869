using System.Diagnostics;
using System.Formats.Tar;
using System.Globalization;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// A real process shaped like a function container: its own mount namespace with a private tmpfs <c>/tmp</c> (a marker
/// file and a symlink to a host file in it) and a tmpfs secrets folder, a secret-looking environment, then <c>sleep</c>.
/// Killed and reaped on dispose.
/// </summary>
internal sealed class ContainedSleeper : IAsyncDisposable
{
    public const string SecretValue = "s3cr3t-value-42";
    public const string TokenValue = "tok-0123456789";
    public const string Marker = "marker from the test\n";

    private readonly Process _process;

    private ContainedSleeper(Process process) => _process = process;

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <param name="program">What the container runs once set up (exec'd; its command line must start with <paramref name="name"/>).</param>
    public static async Task<ContainedSleeper> StartAsync(string program = "sleep 300", string name = "sleep")
    {
        foreach (var tool in new[] { "unshare", "gcore", program.Split(' ')[0].Replace("/usr/bin/", "", StringComparison.Ordinal) })
        {
            Assert.True(File.Exists($"/usr/bin/{tool}"), $"/usr/bin/{tool} is missing: install util-linux, gdb (./faasmon installs it) and python3");
        }

        Assert.True(Environment.UserName == "root", "snapshot tests need root (namespaces, ptrace)");
        var script = "mount -t tmpfs tmpfs /tmp && printf 'marker from the test\\n' > /tmp/marker && mkdir /tmp/sub && printf x > /tmp/sub/inner " +
                     "&& ln -s /etc/hostname /tmp/link && mkdir -p /var/openfaas/secrets && mount -t tmpfs tmpfs /var/openfaas/secrets " +
                     $"&& printf '{SecretValue}' > /var/openfaas/secrets/db-pass && exec {program}";
        var info = new ProcessStartInfo("unshare") { UseShellExecute = false, RedirectStandardError = true };
        foreach (var a in new[] { "-m", "--propagation", "private", "sh", "-c", script })
        {
            info.ArgumentList.Add(a);
        }

        info.Environment["DB_CONN"] = SecretValue; // a value equal to a mounted secret, under a harmless key
        info.Environment["API_TOKEN"] = TokenValue; // a key that names a secret
        info.Environment["PLAIN_SETTING"] = "visible";
        var process = Process.Start(info) ?? throw new InvalidOperationException("unshare did not start");
        var sleeper = new ContainedSleeper(process);
        var stderr = process.StandardError.ReadToEndAsync();
        var sw = Stopwatch.StartNew();
        while (!(File.Exists($"/proc/{process.Id}/cmdline") && File.ReadAllText($"/proc/{process.Id}/cmdline").StartsWith(name, StringComparison.Ordinal)))
        {
            if (process.HasExited || sw.Elapsed > TimeSpan.FromSeconds(10))
            {
                var exit = process.HasExited ? process.ExitCode : -1;
                await sleeper.DisposeAsync();
                Assert.Fail($"the contained process did not start (exit {exit}): {await stderr}");
            }

            await Task.Delay(10);
        }

        return sleeper;
    }

    public void Kill()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }
    }

    public async ValueTask DisposeAsync()
    {
        Kill();
        await _process.WaitForExitAsync();
        _process.Dispose();
    }
}

internal static class SnapshotAssert
{
    /// <summary>An ELF core file: the ELF magic and e_type ET_CORE (4).</summary>
    public static void IsElfCore(string path)
    {
        Assert.True(File.Exists(path), $"{path} is missing");
        var head = new byte[18];
        using (var f = File.OpenRead(path))
        {
            Assert.Equal(18, f.Read(head));
        }

        Assert.Equal(new byte[] { 0x7f, (byte)'E', (byte)'L', (byte)'F' }, head[..4]);
        Assert.Equal(4, BitConverter.ToUInt16(head, 16));
    }

    /// <summary>The process runs and no thread of it is stopped (state T/t): a dumper thawed it.</summary>
    public static bool RunningNotStopped(int pid)
    {
        foreach (var task in Directory.GetDirectories($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/task"))
        {
            var stat = File.ReadAllText(Path.Combine(task, "stat"));
            if (stat[stat.LastIndexOf(')') + 2] is 'T' or 't' or 'Z' or 'X')
            {
                return false;
            }
        }

        return true;
    }

    public static Dictionary<string, TarEntry> TarEntries(string path)
    {
        var entries = new Dictionary<string, TarEntry>(StringComparer.Ordinal);
        using var stream = File.OpenRead(path);
        using var reader = new TarReader(stream);
        while (reader.GetNextEntry(copyData: true) is { } entry)
        {
            entries[entry.Name.TrimEnd('/')] = entry;
        }

        return entries;
    }

    public static string Content(TarEntry entry)
    {
        using var reader = new StreamReader(entry.DataStream!);
        return reader.ReadToEnd();
    }

    public static string TestDirectory(string name) =>
        Path.Combine("/var/lib/faasmon/tests", $"{name}-{DateTime.UtcNow.ToString("HHmmss", CultureInfo.InvariantCulture)}-{Guid.NewGuid().ToString("N")[..8]}");
}
