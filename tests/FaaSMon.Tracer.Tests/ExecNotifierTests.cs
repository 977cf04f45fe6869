using System.Diagnostics;
using System.Threading.Channels;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Tracer.Tests;

public sealed class ExecNotifierTests
{
    [Fact]
    public async Task The_kernel_names_a_process_that_execs_while_it_still_runs()
    {
        var execs = Channel.CreateUnbounded<int>();
        await using var notifier = ExecNotifier.TryOpen(pid => execs.Writer.TryWrite(pid), NullLogger.Instance, out var why);
        Assert.True(notifier is not null, $"this machine cannot give exec events, so discovery would only poll: {why}");

        using var child = Process.Start(new ProcessStartInfo("sleep", "5")) ?? throw new InvalidOperationException("sleep did not start");
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var seen = new List<int>();
            await foreach (var pid in execs.Reader.ReadAllAsync(timeout.Token))
            {
                seen.Add(pid);
                if (pid == child.Id)
                {
                    break;
                }
            }

            Assert.Contains(child.Id, seen);
            Assert.False(child.HasExited, "the event came after the process had ended");
        }
        finally
        {
            child.Kill();
            await child.WaitForExitAsync();
        }
    }
}
