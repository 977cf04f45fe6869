using System.Diagnostics;
using FaaSMon.Monitor.Commands;

namespace FaaSMon.Monitor.Tests;

/// <summary>The parts of <c>faasmon bench proxy</c> its figures rest on: reading wrk's report and a process tree's CPU time.</summary>
public sealed class ProxyBenchTests
{
    // wrk 4.1.0 (Debian 12), verbatim
    private const string WrkReport = """
        Running 1s test @ http://127.0.0.1:29090/
          1 threads and 2 connections
          Thread Stats   Avg      Stdev     Max   +/- Stdev
            Latency     4.75ms    2.03ms  16.05ms   65.65%
            Req/Sec   414.55     63.67   510.00     54.55%
          Latency Distribution
             50%    4.70ms
             75%    5.95ms
             90%    7.47ms
             99%    9.97ms
          454 requests in 1.10s, 2.81MB read
          Non-2xx or 3xx responses: 3
        Requests/sec:    412.66
        Transfer/sec:      2.56MB
        """;

    [Fact]
    public void A_wrk_report_gives_rate_percentiles_requests_and_errors()
    {
        var result = ProxyBenchCommand.ParseWrk(WrkReport);

        Assert.Equal(412.66, result.RequestsPerSecond, 2);
        Assert.Equal(4.70, result.P50Ms, 2);
        Assert.Equal(9.97, result.P99Ms, 2);
        Assert.Equal(454, result.Requests);
        Assert.Equal(3, result.Errors);
        Assert.True(double.IsNaN(result.CpuUsPerRequest));
    }

    [Fact]
    public async Task The_CPU_of_a_process_counts_its_children()
    {
        // timeout itself sleeps; its child yes spins (writing to a pipe we drain), like nginx's master and workers
        var info = new ProcessStartInfo("timeout", ["20", "yes"]) { RedirectStandardOutput = true, UseShellExecute = false };
        using var parent = Process.Start(info)!;
        try
        {
            var drain = parent.StandardOutput.BaseStream.CopyToAsync(Stream.Null);
            var before = ProxyBenchCommand.ProcessTreeCpu(parent.Id);
            var spin = Stopwatch.StartNew();
            while (spin.Elapsed < TimeSpan.FromSeconds(10) && ProxyBenchCommand.ProcessTreeCpu(parent.Id) - before < TimeSpan.FromMilliseconds(300))
            {
                await Task.Delay(50);
            }

            var tree = ProxyBenchCommand.ProcessTreeCpu(parent.Id) - before;
            Assert.True(tree >= TimeSpan.FromMilliseconds(300), $"{tree.TotalMilliseconds} ms of CPU counted for timeout + yes in {spin.Elapsed.TotalSeconds:0.0} s");
            Assert.True(ProxyBenchCommand.ProcessCpu(parent.Id) < TimeSpan.FromMilliseconds(100), "timeout alone should barely run: the CPU came from its child");
        }
        finally
        {
            parent.Kill(entireProcessTree: true);
            await parent.WaitForExitAsync();
        }
    }
}
