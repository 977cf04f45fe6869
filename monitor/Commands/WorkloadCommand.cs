using System.CommandLine;
using FaaSMon.Workload;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

internal static class WorkloadCommand
{
    public static readonly Option<Uri> Gateway = new("--gateway", "-g")
    {
        Description = "The OpenFaaS(-compatible) gateway or FaaSMon proxy to drive.",
        DefaultValueFactory = _ => new Uri("http://127.0.0.1:8081"),
        CustomParser = CliParsers.HttpUrl,
    };

    public static readonly Option<int> Benign = new("--benign")
    {
        Description = "Number of benign top-level requests across the hello-retail chain.",
        DefaultValueFactory = _ => 50,
    };

    public static readonly Option<string[]> Attacks = new("--attacks")
    {
        Description = $"Attack families to run ('all', or any of: {string.Join(", ", WorkloadDriver.AttackFamilies)}); none by default.",
        AllowMultipleArgumentsPerToken = true,
        DefaultValueFactory = _ => [],
    };

    public static readonly Option<FileInfo?> GroundTruth = new("--ground-truth")
    {
        Description = "Write one JSON line per request: call id, trace id, function, label (benign or the attack family).",
    };

    public static readonly Option<int> Seed = new("--seed") { Description = "Random seed for inputs and attack timing.", DefaultValueFactory = _ => 1 };

    public static readonly Option<int> Concurrency = new("--concurrency") { Description = "Requests in flight at once.", DefaultValueFactory = _ => 2 };

    public static Command Create()
    {
        var command = new Command("workload",
            "Drive benign hello-retail traffic and real attacks (container reuse, credential theft, lateral movement, " +
            "reverse shell, tampering) against a gateway; every attack is verified end to end.")
        {
            Gateway, Benign, Attacks, GroundTruth, Seed, Concurrency, LocalFaasCommand.Verbose,
        };
        Benign.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() < 0)
            {
                r.AddError("--benign must be 0 or more");
            }
        });
        Concurrency.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 64)
            {
                r.AddError("--concurrency must be 1..64");
            }
        });
        Attacks.Validators.Add(r =>
        {
            var unknown = (r.GetValueOrDefault<string[]>() ?? []).SelectMany(Split)
                .Where(a => a != "all" && !WorkloadDriver.AttackFamilies.Contains(a)).ToList();
            if (unknown.Count > 0)
            {
                r.AddError($"unknown attack famil{(unknown.Count == 1 ? "y" : "ies")}: {string.Join(", ", unknown)} (valid: all, {string.Join(", ", WorkloadDriver.AttackFamilies)})");
            }
        });
        command.SetAction(async (parse, ct) =>
        {
            using var logging = CliLogging.Create(parse.GetValue(LocalFaasCommand.Verbose));
            var report = await RunAsync(Options(parse, parse.GetValue(Gateway)!), logging, ct);
            return report.Attacks.All(a => a.Succeeded) ? 0 : 1;
        });
        return command;
    }

    public static WorkloadOptions Options(ParseResult parse, Uri gateway, IReadOnlyDictionary<string, string>? knownSecrets = null) => new()
    {
        Gateway = gateway,
        Benign = parse.GetValue(Benign),
        Attacks = [.. (parse.GetValue(Attacks) ?? []).SelectMany(Split)],
        GroundTruthPath = parse.GetValue(GroundTruth)?.FullName,
        Seed = parse.GetValue(Seed),
        Concurrency = parse.GetValue(Concurrency),
        KnownSecrets = knownSecrets ?? new Dictionary<string, string>(),
    };

    public static async Task<WorkloadReport> RunAsync(WorkloadOptions options, ILoggerFactory logging, CancellationToken ct)
    {
        var driver = new WorkloadDriver(logging.CreateLogger<WorkloadDriver>());
        var lastShown = 0;
        var progress = new Progress<WorkloadProgress>(p =>
        {
            // A line per tenth of the work: readable in CI logs, alive on a terminal.
            var step = Math.Max(1, p.Total / 10);
            if (p.Done == p.Total || p.Done - lastShown >= step)
            {
                lastShown = p.Done;
                Console.WriteLine($"  {p.Done}/{p.Total} requests ({p.Last})");
            }
        });
        var report = await driver.RunAsync(options, progress, ct);
        ReportPrinter.Print(report);
        return report;
    }

    private static IEnumerable<string> Split(string value) =>
        value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
