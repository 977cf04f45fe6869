using System.Diagnostics;
using System.Runtime.InteropServices;

namespace FaaSMon.LocalFaaS;

/// <summary>
/// A child process started without a shell, in its own session and process group (through
/// util-linux <c>setsid</c>, which execs in place), whose output is handed over line by line and
/// whose whole group is killed when it is disposed.
/// </summary>
internal sealed partial class ChildProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildProcess(Process process) => _process = process;

    public int Pid => _process.Id;

    /// <summary>Completes with the exit code once the process has exited and its output is drained.</summary>
    public Task<int> Exited => _exited.Task;

    public bool HasExited => _exited.Task.IsCompleted;

    /// <param name="keepStdinOpen">Hold a pipe on the child's stdin so it can notice when we die.</param>
    public static ChildProcess Start(
        string fileName,
        IEnumerable<string> arguments,
        Action<string, bool> onLine,
        IReadOnlyDictionary<string, string>? environment = null,
        bool clearEnvironment = false,
        string? workingDirectory = null,
        bool keepStdinOpen = false)
    {
        var startInfo = new ProcessStartInfo("setsid")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = keepStdinOpen,
            UseShellExecute = false,
            WorkingDirectory = workingDirectory ?? "",
        };
        startInfo.ArgumentList.Add(fileName);
        foreach (var argument in arguments)
        {
            startInfo.ArgumentList.Add(argument);
        }

        if (clearEnvironment)
        {
            startInfo.Environment.Clear();
        }

        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                startInfo.Environment[key] = value;
            }
        }

        var process = new Process { StartInfo = startInfo, EnableRaisingEvents = true };
        var child = new ChildProcess(process);
        var openStreams = 2;
        void StreamClosed()
        {
            if (Interlocked.Decrement(ref openStreams) == 0)
            {
                // Not on this callback's thread: WaitForExit waits for the output readers, this one included.
                _ = Task.Run(() =>
                {
                    process.WaitForExit();
                    child._exited.TrySetResult(process.ExitCode);
                });
            }
        }

        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is null) StreamClosed(); else onLine(e.Data, false);
        };
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is null) StreamClosed(); else onLine(e.Data, true);
        };
        if (!process.Start())
        {
            throw new InvalidOperationException($"could not start {fileName}");
        }

        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Sends a signal to the child's whole process group.</summary>
    public void SignalGroup(int signal)
    {
        if (!HasExited)
        {
            _ = Kill(-_process.Id, signal);
        }
    }

    /// <summary>SIGTERM to the group, then SIGKILL after <paramref name="grace"/>.</summary>
    public async Task StopAsync(TimeSpan grace)
    {
        if (HasExited)
        {
            return;
        }

        SignalGroup(Signals.Term);
        if (await Task.WhenAny(Exited, Task.Delay(grace)) != Exited)
        {
            SignalGroup(Signals.Kill);
            await Task.WhenAny(Exited, Task.Delay(TimeSpan.FromSeconds(5)));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(TimeSpan.FromSeconds(3));
        if (_process.StartInfo.RedirectStandardInput)
        {
            try
            {
                _process.StandardInput.Close();
            }
            catch (IOException)
            {
                // the child is gone; nothing to close
            }
        }

        _process.Dispose();
    }

    internal static class Signals
    {
        public const int Int = 2;
        public const int Kill = 9;
        public const int Term = 15;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
