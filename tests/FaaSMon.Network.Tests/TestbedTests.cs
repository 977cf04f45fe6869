using FaaSMon.Network.Testbed;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Network.Tests;

public sealed class TestbedTests
{
    [Fact]
    public async Task Testbed_comes_up_serves_and_leaves_nothing_behind()
    {
        TestbedLayout layout;
        await using (var testbed = await NetworkTestbed.StartAsync(NullLogger.Instance, CancellationToken.None))
        {
            layout = testbed.Layout;
            Assert.Equal(7, NetworkTestbed.ExistingNamespaces(layout.RunId).Count);
            Assert.All(testbed.Services, s => Assert.False(s.HasExited, $"{s.Display}: {s.Tail}"));
            Assert.NotEmpty(Leftovers.ProcessesMentioning(layout.StateDirectory));
            // Isolation: no namespace of the testbed has a default route, and the bridge namespace has no address.
            foreach (var ns in layout.AllNamespaces)
            {
                var (_, routes) = await NamespacedProcess.RunAsync(ns, "ip", ["route", "show"], TimeSpan.FromSeconds(10));
                Assert.DoesNotContain("default", routes, StringComparison.Ordinal);
            }

            var (_, bridgeAddresses) = await NamespacedProcess.RunAsync(layout.BridgeNamespace, "ip", ["-4", "addr", "show"], TimeSpan.FromSeconds(10));
            Assert.DoesNotContain("inet 10.", bridgeAddresses, StringComparison.Ordinal);
        }

        Leftovers.AssertNone(layout);
    }

    [Fact]
    public async Task A_failed_start_leaves_nothing_behind()
    {
        var layout = TestbedLayout.CreateNew();
        var error = await Assert.ThrowsAsync<TestbedException>(() => NetworkTestbed.StartAsync(NullLogger.Instance, CancellationToken.None, layout, failAfterNetwork: true));
        Assert.Contains("forced failure", error.Message, StringComparison.Ordinal);
        Leftovers.AssertNone(layout);
    }

    [Fact]
    public async Task A_run_that_fails_while_its_servers_and_capture_run_leaves_nothing_behind()
    {
        TestbedLayout? layout = null;
        var error = await Assert.ThrowsAsync<InvalidOperationException>(async () =>
        {
            await using var testbed = await NetworkTestbed.StartAsync(NullLogger.Instance, CancellationToken.None);
            layout = testbed.Layout;
            using var capture = Capture.BridgeCapture.Start(testbed.BridgeThread, layout.BridgeName);
            await Scenarios.BenignTraffic.HttpGetAsync(testbed.In(layout.Client), layout.Web.Address, TestbedServices.WebPort, "/", CancellationToken.None);
            throw new InvalidOperationException("failure in the middle of a run");
        });
        Assert.Equal("failure in the middle of a run", error.Message);
        Assert.NotNull(layout);
        Leftovers.AssertNone(layout);
    }

    [Fact]
    public async Task Sweep_removes_what_a_dead_run_left_and_spares_a_live_one()
    {
        // A run whose owner died (its owner file names a PID that does not exist): a namespace with a process in it.
        var dead = TestbedLayout.CreateNew();
        Directory.CreateDirectory(dead.StateDirectory);
        await File.WriteAllTextAsync(Path.Combine(dead.StateDirectory, "owner"), "2147483 0");
        await NamespacedProcess.CheckAsync(null, "ip", "netns", "add", dead.BridgeNamespace);
        var sleeper = NamespacedProcess.Start(dead.BridgeNamespace, "/usr/bin/sleep", ["30"]);
        await using var live = await NetworkTestbed.StartAsync(NullLogger.Instance, CancellationToken.None);

        await NetworkTestbed.SweepAsync(NullLogger.Instance);

        Assert.Empty(NetworkTestbed.ExistingNamespaces(dead.RunId));
        Assert.False(Directory.Exists(dead.StateDirectory));
        await sleeper.WaitForExitAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
        Assert.True(sleeper.HasExited, "the process inside the dead run's namespace was not killed");
        Assert.Equal(7, NetworkTestbed.ExistingNamespaces(live.Layout.RunId).Count);
        await sleeper.DisposeAsync();
    }
}
