using System.CommandLine;
using FaaSMon.Network.Collection;
using FaaSMon.Network.Testbed;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon netcollect</c>: labelled temporal-graph samples from the network testbed (network/README.md).</summary>
internal static class NetCollectCommand
{
    private static readonly Option<int> Samples = new("--samples") { Description = "Samples (time windows) to collect from the testbed (required without --pcap)." };

    private static readonly Option<FileInfo[]> Pcaps = new("--pcap")
    {
        Description = "Instead of the testbed: cut these capture files (e.g. tcpdump -i lo -w FILE of the functions' own benign traffic) into " +
            "samples labelled --label, so a network model can learn what this deployment's normal traffic looks like.",
        AllowMultipleArgumentsPerToken = true,
    };

    private static readonly Option<string> Label = new("--label") { Description = "Label of the --pcap samples (benign, or an attack family).", DefaultValueFactory = _ => "benign" };

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
            Samples, Out, Seed, WindowSeconds, WindowsPerEpisode, Testbeds, Pcaps, Label, LocalFaasCommand.Verbose,
        };
        Label.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string>() is not { Length: > 0 and <= 64 } label || !label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_'))
            {
                r.AddError("--label must be 1-64 letters, digits, '-' or '_'");
            }
        });
        command.Validators.Add(r =>
        {
            var fromPcap = r.GetValue(Pcaps) is { Length: > 0 };
            if (!fromPcap && r.GetResult(Samples) is null)
            {
                r.AddError("give --samples N (testbed) or --pcap FILE ... (capture files)");
            }
        });
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
            if (parse.GetValue(Pcaps) is { Length: > 0 } pcaps)
            {
                return FromPcaps(pcaps, parse.GetValue(Label)!, parse.GetValue(WindowSeconds), parse.GetValue(Out)!.FullName);
            }

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

    /// <summary>Samples from capture files: every window with a flow is one sample, written as the testbed's are.</summary>
    private static int FromPcaps(FileInfo[] pcaps, string label, double windowSeconds, string outDirectory)
    {
        var directory = Directory.CreateDirectory(Path.Combine(outDirectory, "samples", label)).FullName;
        var written = 0;
        foreach (var pcap in pcaps)
        {
            if (!pcap.Exists)
            {
                Console.Error.WriteLine($"faasmon: --pcap {pcap.FullName}: no such file");
                return 2;
            }

            Network.Capture.WindowedCapture capture;
            try
            {
                capture = Network.Capture.PcapWindowReader.Read(pcap.FullName, TimeSpan.FromSeconds(windowSeconds), label, $"pcap:{pcap.Name}");
            }
            catch (Exception e) when (e is SharpPcap.PcapException or IOException)
            {
                Console.Error.WriteLine($"faasmon: --pcap {pcap.FullName}: not a readable capture file ({e.Message})");
                return 2;
            }

            var stem = Path.GetFileNameWithoutExtension(pcap.Name);
            for (var i = 0; i < capture.Graphs.Count; i++)
            {
                File.WriteAllText(Path.Combine(directory, $"pcap-{stem}-{i:D5}.json"), capture.Graphs[i].ToJson());
            }

            written += capture.Graphs.Count;
            var c = capture.Counts;
            Console.WriteLine($"{pcap.Name}: {capture.Graphs.Count} samples, {capture.EmptyWindows} empty windows; frames {c.Frames} " +
                $"(truncated {c.Truncated}, non-IP {c.NonIp}, malformed {c.Malformed}, records cut {capture.CutRecords})");
        }

        Console.WriteLine($"{written} {label} samples of {windowSeconds} s written to {directory}");
        return 0;
    }
}
