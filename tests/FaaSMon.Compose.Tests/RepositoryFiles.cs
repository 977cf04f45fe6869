using System.Diagnostics;

namespace FaaSMon.Compose.Tests;

/// <summary>Files of the repository this test assembly was built from: the folder above it that holds FaaSMon.sln.</summary>
internal static class Repository
{
    public static string Root { get; } = FindRoot();

    public static string PathOf(string relative) => Path.Combine(Root, relative);

    public static string Read(string relative) => File.ReadAllText(PathOf(relative));

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "FaaSMon.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no FaaSMon.sln above {AppContext.BaseDirectory}");
    }
}

internal sealed record ToolResult(int ExitCode, string StandardOutput, string StandardError);

/// <summary>Runs a command-line tool with an argument list (no shell) and a deadline.</summary>
internal static class Tool
{
    public static string? Find(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    /// <summary>The tool's path, or a failed test that names the Debian package to install: never a silent skip.</summary>
    public static string Require(string name, string debianPackage, string? installedBy = null) =>
        Find(name) ?? throw new Xunit.Sdk.XunitException(
            $"{name} is not installed: install the Debian package '{debianPackage}' (apt-get install {debianPackage}){(installedBy is null ? "" : $"; {installedBy} installs it")}");

    /// <param name="clearVariablesStartingWith">environment variables left out, so that the result does not depend on the caller's shell</param>
    public static ToolResult Run(string executable, IEnumerable<string> arguments, string workingDirectory, TimeSpan timeout, params string[] clearVariablesStartingWith)
    {
        var start = new ProcessStartInfo(executable)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        foreach (var name in start.Environment.Keys.Where(k => clearVariablesStartingWith.Any(p => k.StartsWith(p, StringComparison.Ordinal))).ToList())
        {
            start.Environment.Remove(name);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException($"{executable} did not start");
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout))
        {
            process.Kill(entireProcessTree: true);
            throw new Xunit.Sdk.XunitException($"{executable} {string.Join(' ', start.ArgumentList)} did not finish within {timeout.TotalSeconds} s");
        }

        return new ToolResult(process.ExitCode, output.GetAwaiter().GetResult(), error.GetAwaiter().GetResult());
    }
}
