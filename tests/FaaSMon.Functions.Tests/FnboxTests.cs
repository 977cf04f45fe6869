using System.Diagnostics;
using FaaSMon.LocalFaaS;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Functions.Tests;

/// <summary>The container launcher on its own: namespaces, cgroup, and no process outliving its owner.</summary>
public sealed class FnboxTests
{
    private static readonly string Fnbox = Path.Combine(AppContext.BaseDirectory, "faasmon-fnbox");

    [Fact]
    public async Task The_container_goes_down_with_everything_in_it_when_its_owner_goes_away()
    {
        var cgroups = CgroupTree.Detect(NullLogger.Instance);
        var instance = $"fnbox-test-{Guid.NewGuid():N}"[..24];
        var dirs = cgroups.Create("fnbox-test", instance, memoryBytes: 64 << 20, pidsMax: 32);
        var info = new ProcessStartInfo(Fnbox) { RedirectStandardInput = true, UseShellExecute = false };
        foreach (var dir in dirs)
        {
            info.ArgumentList.Add("--cgroup");
            info.ArgumentList.Add(dir);
        }

        foreach (var arg in new[] { "--hostname", instance, "--chdir", "/", "--user", "65534:65534" })
        {
            info.ArgumentList.Add(arg);
        }

        info.Environment["fprocess"] = "sleep 600";
        using var box = Process.Start(info)!;
        try
        {
            var sleeper = await WaitForDescendant(box.Id, depth: 2);
            Assert.Equal("sleep 600", File.ReadAllText($"/proc/{sleeper}/cmdline").Replace('\0', ' ').Trim());
            Assert.Equal(("fnbox-test", instance), CgroupTree.Parse(File.ReadAllText($"/proc/{sleeper}/cgroup")));

            // The owner dying closes the pipe on fnbox's stdin; that alone must end the container.
            box.StandardInput.Close();
            Assert.True(box.WaitForExit(10_000), "fnbox exited");
            await WaitUntil(() => !Directory.Exists($"/proc/{sleeper}"));
        }
        finally
        {
            if (!box.HasExited)
            {
                box.Kill(entireProcessTree: true);
            }

            CgroupTree.Remove(dirs);
        }
    }

    private static async Task<int> WaitForDescendant(int pid, int depth)
    {
        for (var attempt = 0; attempt < 100; attempt++)
        {
            var current = pid;
            for (var level = 0; level < depth && current != 0; level++)
            {
                current = Children(current).FirstOrDefault();
            }

            if (current != 0 && File.ReadAllText($"/proc/{current}/cmdline").StartsWith("sleep", StringComparison.Ordinal))
            {
                return current;
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"no process {depth} levels below {pid}");
    }

    private static IEnumerable<int> Children(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/task/{pid}/children").Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse);
        }
        catch (IOException)
        {
            return [];
        }
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        for (var attempt = 0; attempt < 100 && !condition(); attempt++)
        {
            await Task.Delay(50);
        }

        Assert.True(condition());
    }
}
