using System.CommandLine;
using FaaSMon.Network.Collection;
using FaaSMon.Network.Testbed;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon netcollect</c>: labelled temporal-graph samples from the network testbed (network/README.md).</summary>
internal static class NetCollectCommand
{
    private static readonly Option<int> Samples = new("--samples") { Description = "Samples (time windows) to collect.", Required = true };

    private static readonly Option<DirectoryInfo> Out = new("--out") { Description = "Output directory (samples/<label>/*.json, collection.json).", Required = true };

    private static readonly Option<int> Seed = new("--seed") { Description = "Random seed (scenario order, traffic).", DefaultValueFactory = _ => 1 };

    private static readonly Option<double> WindowSeconds = new("--window-seconds") { Description = "Length of one sample's time window.", DefaultValueFactory = _ => 2 };

    private static readonly Option<int> WindowsPerEpisode = new("--windows-per-episode")
    {
        Description = "Consecutive windows each scenario runs for.",
        DefaultValueFactory = _ => 4,
    };

    private static readonly Option<int> Testbeds = new("--testbeds")
    {
        Description = "Testbeds collecting side by side (each its own namespaces and servers).",
        DefaultValueFactory = _ => 1,
    };

    public static Command Create()
    {
        var command = new Command("netcollect",
            "Start the network testbed (namespaces, a bridge, nginx, Redis, PostgreSQL, an API, sshd, an attacker), run benign and attack " +
            "scenarios, capture the bridge and write one labelled temporal graph per time window. Removes the testbed when done, also on failure.")
        {
            Samples, Out, Seed, WindowSeconds, WindowsPerEpisode, Testbeds, LocalFaasCommand.Verbose,
        };
        Samples.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 1)
            {
                r.AddError("--samples must be 1 or more");
            }
        });
        WindowSeconds.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<double>() is < 0.2 or > 60)
            {
                r.AddError("--window-seconds must be between 0.2 and 60");
            }
        });
        Testbeds.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 8)
            {
                r.AddError("--testbeds must be between 1 and 8");
            }
        });
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var logging = CliLogging.Create(parse.GetValue(LocalFaasCommand.Verbose));
            var options = new CollectOptions(parse.GetValue(Samples), parse.GetValue(Out)!.FullName, parse.GetValue(Seed), parse.GetValue(WindowSeconds),
                Math.Max(1, parse.GetValue(WindowsPerEpisode)), parse.GetValue(Testbeds));
            try
            {
                var summary = await new NetCollector(logging.CreateLogger<NetCollector>()).RunAsync(options, cancellationToken);
                Console.WriteLine($"{summary.Samples} samples in {summary.ElapsedSeconds:F0} s: " +
                    string.Join(", ", summary.SamplesByLabel.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Value} {p.Key}")));
                Console.WriteLine($"frames {summary.Counts.Frames} (truncated {summary.Counts.Truncated}, non-IP {summary.Counts.NonIp}, malformed {summary.Counts.Malformed}), " +
                    $"empty windows {summary.EmptyWindows}, benign operations {summary.BenignOperations} ({summary.BenignFailures} failed)");
                Console.WriteLine($"Written to {options.OutDirectory}");
                return 0;
            }
            catch (Exception e) when (e is TestbedException or Network.Capture.TestbedCaptureException)
            {
                Console.Error.WriteLine($"faasmon: {e.Message}");
                return 2;
            }
        });
        return command;
    }
}
