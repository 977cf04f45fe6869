using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>An open file descriptor and, for a socket, its endpoints from <c>/proc/PID/net</c>.</summary>
internal sealed record OpenFd(int Fd, string Target, string? Protocol = null, string? Local = null, string? Remote = null, string? State = null);

/// <summary>
/// The <c>/proc</c> side of a local snapshot: maps, status, command line, cwd, environment (secrets redacted) and open
/// fds with their endpoints. Reads are bounded; a process that vanishes makes them throw <see cref="TargetGoneException"/>.
/// </summary>
internal static partial class ProcessState
{
    public const string Redacted = "[redacted]";
    private const int MaxProcFileBytes = 8 << 20;
    private const int MaxSecretBytes = 64 << 10;

    /// <summary>Keys whose values are secrets whatever they hold.</summary>
    [GeneratedRegex("secret|passw|token|key|credential|auth", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex SecretKey();

    public static byte[] Read(int pid, string name)
    {
        try
        {
            using var stream = new FileStream($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/{name}", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 0);
            using var copy = new MemoryStream();
            var buffer = new byte[16384];
            int n;
            while ((n = stream.Read(buffer)) > 0 && copy.Length < MaxProcFileBytes)
            {
                copy.Write(buffer, 0, Math.Min(n, MaxProcFileBytes - (int)copy.Length));
            }

            return copy.ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Gone(pid, name, e);
        }
    }

    public static string? Link(int pid, string name)
    {
        try
        {
            return new FileInfo($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/{name}").LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Gone(pid, name, e);
        }
    }

    public static IReadOnlyList<string> CommandLine(int pid) =>
        Encoding.UTF8.GetString(Read(pid, "cmdline")).Split('\0', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Resident set size from <c>/proc/PID/status</c> (<paramref name="field"/> VmRSS or VmHWM), null when gone.</summary>
    public static long? Memory(int pid, string field = "VmRSS")
    {
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status"))
            {
                if (line.StartsWith(field + ":", StringComparison.Ordinal))
                {
                    var value = line.AsSpan(field.Length + 1).Trim();
                    var space = value.IndexOf(' ');
                    return long.Parse(space < 0 ? value : value[..space], CultureInfo.InvariantCulture) * 1024;
                }
            }

            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return null;
        }
    }

    /// <summary>Start time in clock ticks (field 22 of stat): tells the same process from a reused pid.</summary>
    public static long? StartTicks(int pid)
    {
        try
        {
            var text = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/stat");
            var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
            return fields[2] == "Z" ? null : long.Parse(fields[19], CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }

    /// <summary>
    /// The environment as <c>KEY=VALUE</c> lines with secrets replaced: values of keys that name a secret, and any value
    /// that equals (or holds) the content of a file under the instance's <c>/var/openfaas/secrets</c>.
    /// </summary>
    public static string RedactedEnvironment(int pid)
    {
        var secrets = SecretValues(pid);
        var text = new StringBuilder();
        foreach (var entry in Encoding.UTF8.GetString(Read(pid, "environ")).Split('\0', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = entry.IndexOf('=', StringComparison.Ordinal);
            var key = eq < 0 ? entry : entry[..eq];
            var value = eq < 0 ? "" : entry[(eq + 1)..];
            text.Append(key).Append('=').Append(Redact(key, value, secrets)).Append('\n');
        }

        return text.ToString();
    }

    public static string Redact(string key, string value, IReadOnlyCollection<string> secrets)
    {
        if (value.Length == 0)
        {
            return value;
        }

        if (SecretKey().IsMatch(key) || secrets.Any(s => value == s || (s.Length >= 6 && value.Contains(s, StringComparison.Ordinal))))
        {
            return Redacted;
        }

        return value;
    }

    /// <summary>The secrets the instance holds: each file under its <c>/var/openfaas/secrets</c>, as is and trimmed.</summary>
    public static IReadOnlyCollection<string> SecretValues(int pid)
    {
        var values = new HashSet<string>(StringComparer.Ordinal);
        var dir = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/root/var/openfaas/secrets";
        try
        {
            foreach (var file in new DirectoryInfo(dir).EnumerateFiles())
            {
                if (file.LinkTarget is not null || file.Length > MaxSecretBytes)
                {
                    continue; // a link inside /proc/PID/root resolves against our root, not the container's
                }

                var content = File.ReadAllText(file.FullName);
                foreach (var v in new[] { content, content.Trim() })
                {
                    if (v.Length > 0)
                    {
                        values.Add(v);
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // no secrets mounted
        }

        return values;
    }

    /// <summary>Open fds; sockets resolved to their protocol and endpoints through the target's own network tables.</summary>
    public static IReadOnlyList<OpenFd> OpenFds(int pid)
    {
        var dir = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/fd";
        string[] entries;
        try
        {
            entries = Directory.GetFileSystemEntries(dir);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw Gone(pid, "fd", e);
        }

        var sockets = new Lazy<Dictionary<string, OpenFd>>(() => SocketTable(pid));
        var fds = new List<OpenFd>();
        foreach (var entry in entries)
        {
            if (!int.TryParse(Path.GetFileName(entry), NumberStyles.None, CultureInfo.InvariantCulture, out var fd))
            {
                continue;
            }

            string? target;
            try
            {
                target = new FileInfo(entry).LinkTarget;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                continue; // closed between the listing and the read
            }

            if (target is null)
            {
                continue;
            }

            if (target.StartsWith("socket:[", StringComparison.Ordinal) && sockets.Value.TryGetValue(target[8..^1], out var socket))
            {
                fds.Add(socket with { Fd = fd, Target = target });
            }
            else
            {
                fds.Add(new OpenFd(fd, target));
            }
        }

        fds.Sort((a, b) => a.Fd.CompareTo(b.Fd));
        return fds;
    }

    private static Dictionary<string, OpenFd> SocketTable(int pid)
    {
        var table = new Dictionary<string, OpenFd>(StringComparer.Ordinal);
        var net = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/net/";
        foreach (var protocol in new[] { "tcp", "tcp6", "udp", "udp6" })
        {
            foreach (var line in Lines(net + protocol).Skip(1))
            {
                var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (f.Length > 9)
                {
                    table[f[9]] = new OpenFd(0, "", protocol, Endpoint(f[1]), Endpoint(f[2]), protocol.StartsWith("tcp", StringComparison.Ordinal) ? TcpState(f[3]) : null);
                }
            }
        }

        foreach (var line in Lines(net + "unix").Skip(1))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length > 6)
            {
                table[f[6]] = new OpenFd(0, "", "unix", f.Length > 7 ? f[7] : null);
            }
        }

        return table;
    }

    private static string[] Lines(string path)
    {
        try
        {
            return File.ReadAllLines(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    /// <summary><c>0100007F:1F90</c> → <c>127.0.0.1:8080</c>; IPv6 as its 32 hex digits in four host-order words.</summary>
    internal static string Endpoint(string hex)
    {
        var colon = hex.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            return hex;
        }

        var port = int.Parse(hex.AsSpan(colon + 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var address = hex[..colon];
        var bytes = new byte[address.Length / 2];
        for (var word = 0; word < bytes.Length / 4; word++)
        {
            var value = uint.Parse(address.AsSpan(word * 8, 8), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            BitConverter.TryWriteBytes(bytes.AsSpan(word * 4, 4), value); // the kernel prints each word in host order
        }

        var ip = new System.Net.IPAddress(bytes);
        return ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{ip}]:{port.ToString(CultureInfo.InvariantCulture)}" : $"{ip}:{port.ToString(CultureInfo.InvariantCulture)}";
    }

    private static string TcpState(string hex) => hex switch
    {
        "01" => "ESTABLISHED",
        "02" => "SYN_SENT",
        "03" => "SYN_RECV",
        "04" => "FIN_WAIT1",
        "05" => "FIN_WAIT2",
        "06" => "TIME_WAIT",
        "07" => "CLOSE",
        "08" => "CLOSE_WAIT",
        "09" => "LAST_ACK",
        "0A" => "LISTEN",
        "0B" => "CLOSING",
        _ => hex,
    };

    private static TargetGoneException Gone(int pid, string what, Exception e) =>
        new(pid, $"process {pid.ToString(CultureInfo.InvariantCulture)} is gone (reading /proc/{pid.ToString(CultureInfo.InvariantCulture)}/{what}: {e.Message})", e);
}

/// <summary>The target process exited (or was never there) while its snapshot was taken.</summary>
internal sealed class TargetGoneException(int pid, string message, Exception? inner = null) : Exception(message, inner)
{
    public int Pid { get; } = pid;
}

/// <summary>The snapshot byte budget ran out.</summary>
internal sealed class SizeLimitException(string message) : Exception(message);
