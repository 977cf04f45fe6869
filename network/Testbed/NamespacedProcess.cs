using System.Diagnostics;
using FaaSMon.Network.Native;

namespace FaaSMon.Network.Testbed;

/// <summary>
/// A program running inside a testbed namespace: <c>setsid ip netns exec NS program args…</c>, an argument list and no
/// shell. util-linux setsid and ip both exec in place, so the program's PID is its process-group id, and stopping it
/// signals the whole group by that id (never by name). The last lines of its output are kept to explain failures.
/// </summary>
internal sealed class NamespacedProcess : IAsyncDisposable
{
    private const int TailLines = 40;
    private readonly Process _process;
    private readonly Queue<string> _tail = new();

    private NamespacedProcess(Process process, string display)
    {
        _process = process;
        Display = display;
    }

    public int Pid => _process.Id;

    public string Display { get; }

    public bool HasExited => _process.HasExited;

    public int ExitCode => _process.ExitCode;

    public StreamWriter StandardInput => _process.StandardInput;

    public Stream StandardOutput => _process.StandardOutput.BaseStream;

    /// <summary>The last lines the program printed (stderr, and stdout unless it is handed over raw).</summary>
    public string Tail
    {
        get
        {
            lock (_tail)
            {
                return string.Join('\n', _tail);
            }
        }
    }

    /// <param name="netns">The namespace to run in; null runs in the caller's namespace (setup tools).</param>
    /// <param name="rawOutput">Leave stdout to the caller (<see cref="StandardOutput"/>) instead of collecting lines.</param>
    public static NamespacedProcess Start(string? netns, string program, IEnumerable<string> arguments,
        bool redirectInput = false, bool rawOutput = false, IReadOnlyDictionary<string, string>? environment = null)
    {
        var info = new ProcessStartInfo("setsid")
        {
            UseShellExecute = false,
            RedirectStandardInput = redirectInput,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        if (netns is not null)
        {
            foreach (var a in new[] { "ip", "netns", "exec", netns })
            {
                info.ArgumentList.Add(a);
            }
        }

        info.ArgumentList.Add(program);
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var display = string.Join(' ', info.ArgumentList.Skip(netns is null ? 0 : 4));
        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {display}");
        var child = new NamespacedProcess(process, display);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data);
        process.BeginErrorReadLine();
        if (!rawOutput)
        {
            process.OutputDataReceived += (_, e) => child.Keep(e.Data);
            process.BeginOutputReadLine();
        }

        return child;
    }

    /// <summary>Runs a program to completion (bounded by <paramref name="timeout"/>) and returns its exit code and output tail.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string? netns, string program, IEnumerable<string> arguments,
        TimeSpan timeout, IReadOnlyDictionary<string, string>? environment = null, CancellationToken cancellationToken = default)
    {
        await using var child = Start(netns, program, arguments, environment: environment);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(timeout);
        try
        {
            await child._process.WaitForExitAsync(limit.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            return (-1, $"{child.Display}: still running after {timeout.TotalSeconds:F0} s, killed\n{child.Tail}");
        }

        // WaitForExitAsync returns before the asynchronous readers drained: WaitForExit() waits for them.
        child._process.WaitForExit();
        return (child.ExitCode, child.Tail);
    }

    /// <summary>Runs a setup tool and throws with its output when it fails.</summary>
    public static async Task CheckAsync(string? netns, string program, params string[] arguments)
    {
        var (code, output) = await RunAsync(netns, program, arguments, TimeSpan.FromSeconds(30));
        if (code != 0)
        {
            throw new TestbedException($"`{program} {string.Join(' ', arguments)}`{(netns is null ? "" : $" in {netns}")} failed ({code}): {output}");
        }
    }

    public Task WaitForExitAsync(CancellationToken cancellationToken) => _process.WaitForExitAsync(cancellationToken);

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_tail)
        {
            _tail.Enqueue(line);
            while (_tail.Count > TailLines)
            {
                _tail.Dequeue();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _ = Linux.Kill(-_process.Id, Linux.SigTerm);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            try
            {
                await _process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                _ = Linux.Kill(-_process.Id, Linux.SigKill);
                await _process.WaitForExitAsync(CancellationToken.None);
            }
        }

        _process.Dispose();
    }
}

/// <summary>The testbed could not be built or run; the message says which step and what the tool printed.</summary>
internal sealed class TestbedException(string message, Exception? inner = null) : Exception(message, inner);
