using FaaSMon.Network.Testbed;

namespace FaaSMon.Network.Tests;

/// <summary>What a testbed run may have left: namespaces, links in the host namespace, processes, state.</summary>
internal static class Leftovers
{
    public static void AssertNone(TestbedLayout layout)
    {
        Assert.Empty(NetworkTestbed.ExistingNamespaces(layout.RunId));
        var links = Directory.GetDirectories("/sys/class/net").Select(Path.GetFileName).Where(n => n!.Contains(layout.RunId, StringComparison.Ordinal));
        Assert.Empty(links);
        Assert.Empty(ProcessesMentioning(layout.StateDirectory));
        Assert.False(Directory.Exists(layout.StateDirectory), $"{layout.StateDirectory} still exists");
    }

    /// <summary>Processes whose command line names the run's state folder (every server's config lives there).</summary>
    public static List<string> ProcessesMentioning(string text)
    {
        var found = new List<string>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
            {
                continue;
            }

            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(text, StringComparison.Ordinal))
                {
                    found.Add($"{pid}: {cmdline}");
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return found;
    }
}
