using System.Diagnostics;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Tracer.Tests;

/// <summary>
/// The quick passes of <see cref="ProcessDiscovery"/> read only new and young pids; these are the cases that rest
/// on the rest of the design: an exec soon after start, an exec late in life (only a full pass sees it), an exit.
/// </summary>
public sealed class DiscoveryTests
{
    [Fact]
    public async Task A_process_that_execs_the_function_soon_after_it_starts_is_found_by_a_quick_pass()
    {
        var id = Guid.NewGuid().ToString("N");
        var marker = $"fm-quick-{id}";
        var discovery = new ProcessDiscovery(marker, null, NullLogger<ProcessDiscovery>.Instance);
        await discovery.ScanAsync(CancellationToken.None); // the full pass that every later quick pass builds on

        // a launcher that execs the function 300 ms after it starts, as LocalFaaS's fnbox and faasd's shims do at once
        using var launcher = Start("sleep 0.3; exec -a fm-quick-$0 sleep 30", id);
        try
        {
            var found = await ScanUntilAsync(discovery, TimeSpan.FromSeconds(5), full: false);
            Assert.NotNull(found);
            Assert.Equal(launcher.Id, found.Process.Pid);
            Assert.StartsWith(marker, found.Process.CommandLine, StringComparison.Ordinal);
        }
        finally
        {
            launcher.Kill(entireProcessTree: true);
            await launcher.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_process_that_execs_the_function_late_in_life_is_found_by_the_next_full_pass_and_its_exit_by_a_quick_one()
    {
        var id = Guid.NewGuid().ToString("N");
        var marker = $"fm-late-{id}";
        var discovery = new ProcessDiscovery(marker, null, NullLogger<ProcessDiscovery>.Instance);
        // 2.5 s: past the 2 s in which a quick pass still re-reads a non-matching process
        using var launcher = Start("sleep 2.5; exec -a fm-late-$0 sleep 30", id);
        try
        {
            var started = Stopwatch.StartNew();
            var found = await ScanUntilAsync(discovery, TimeSpan.FromSeconds(8), full: false);
            Assert.NotNull(found);
            Assert.Equal(launcher.Id, found.Process.Pid);
            Assert.True(started.Elapsed >= TimeSpan.FromSeconds(2.4), $"found after {started.Elapsed.TotalSeconds:0.00} s, before its exec");
            Assert.True(started.Elapsed <= TimeSpan.FromSeconds(2.5) + ProcessDiscovery.FullPassInterval + TimeSpan.FromSeconds(1.5),
                $"found {started.Elapsed.TotalSeconds:0.00} s after start: the full pass should have seen it within {ProcessDiscovery.FullPassInterval.TotalSeconds} s of its exec");

            launcher.Kill(entireProcessTree: true);
            await launcher.WaitForExitAsync();
            var gone = Assert.Single(await discovery.ScanAsync(CancellationToken.None, full: false));
            Assert.False(gone.Started);
            Assert.Equal(launcher.Id, gone.Process.Pid);
        }
        finally
        {
            if (!launcher.HasExited)
            {
                launcher.Kill(entireProcessTree: true);
                await launcher.WaitForExitAsync();
            }
        }
    }

    private static async Task<DiscoveryChange?> ScanUntilAsync(ProcessDiscovery discovery, TimeSpan timeout, bool full)
    {
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < timeout)
        {
            if ((await discovery.ScanAsync(CancellationToken.None, full)).FirstOrDefault(c => c.Started) is { } change)
            {
                return change;
            }

            await Task.Delay(50);
        }

        return null;
    }

    // bash for `exec -a` (the name the exec'd process shows in its command line); the test's own child, killed after.
    // The id comes in as $0, so bash's own command line holds it but never the whole marker.
    private static Process Start(string script, string id) =>
        Process.Start(new ProcessStartInfo("bash", ["-c", script, id]) { UseShellExecute = false }) ?? throw new InvalidOperationException("bash");
}
