using System.Diagnostics;

namespace FaaSMon.Tracer;

/// <summary>
/// strace, bpftrace or the eBPF loader as a child in its own process group (util-linux <c>setsid</c> execs in place, so
/// the child's pid is the group id), started with an argument list, never a shell, and stopped with its whole group.
/// </summary>
internal sealed class ToolProcess : IAsyncDisposable
{
    private const int SigTerm = 15;
    private const int SigKill = 9;
    private readonly Process _process;

    private ToolProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    public StreamReader Output => _process.StandardOutput;

    public StreamReader Error => _process.StandardError;

    /// <summary>The tool's stdin, when started with <c>redirectInput</c> (flushed at every write); closing it tells the loader to end.</summary>
    public StreamWriter Input => _process.StandardInput;

    public bool HasExited => _process.HasExited;

    public static ToolProcess Start(string tool, IEnumerable<string> arguments, IReadOnlyDictionary<string, string>? environment = null, bool redirectInput = false)
    {
        var info = new ProcessStartInfo("setsid")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = redirectInput,
            UseShellExecute = false,
        };
        info.ArgumentList.Add(tool);
        foreach (var a in arguments)
        {
            info.ArgumentList.Add(a);
        }

        foreach (var (k, v) in environment ?? new Dictionary<string, string>())
        {
            info.Environment[k] = v;
        }

        var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {tool}");
        if (redirectInput)
        {
            process.StandardInput.AutoFlush = true;
        }

        return new ToolProcess(process);
    }

    public Task WaitForExitAsync(CancellationToken ct) => _process.WaitForExitAsync(ct);

    public int ExitCode => _process.ExitCode;

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            // SIGTERM first: strace detaches its tracees cleanly, bpftrace and the loader unload their programs
            _ = Prerequisites.kill(-_process.Id, SigTerm);
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(3));
            try
            {
                await _process.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                _ = Prerequisites.kill(-_process.Id, SigKill);
                await _process.WaitForExitAsync(CancellationToken.None);
            }
        }

        _process.Dispose();
    }
}
