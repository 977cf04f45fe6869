using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using FaaSMon.Grapher;
using FaaSMon.Grapher.Dataset;
using FaaSMon.Monitor.Hosting;
using FaaSMon.Tracer;
using FaaSMon.Workload;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

/// <summary>
/// <c>faasmon collect</c>: a labelled dataset of provenance graphs from real runs. LocalFaaS + proxy + tracer + grapher,
/// driven by the workload (benign traffic and attacks), one graph per invocation and per trace, labelled from the ground truth.
/// </summary>
internal static class CollectCommand
{
    private static readonly Option<DirectoryInfo> Out = new("--out", "-o") { Description = "Dataset directory (created; graphs already there are kept).", Required = true };

    private static readonly Option<int> RunsPerFamily = new("--runs-per-family")
    {
        Description = "Runs of each attack family (default: a fifth of --benign, at least 1).",
    };

    private static readonly Option<string> Backend = new("--backend") { Description = "Tracer backend: strace, ebpf or ptrace.", DefaultValueFactory = _ => "strace" };

    private static readonly Option<bool> NoPcap = new("--no-pcap") { Description = "Do not capture packets (graphs then carry no packet counts)." };

    private static readonly Option<DirectoryInfo?> State = new("--state-dir") { Description = "LocalFaaS and proxy state (default /var/lib/faasmon/collect)." };

    public static Command Create()
    {
        Backend.AcceptOnlyFromAmong("strace", "ebpf", "ptrace");
        var command = new Command("collect",
            "Collect a labelled dataset: run LocalFaaS + proxy + tracer + grapher, drive benign hello-retail traffic and the attack kit, " +
            "and write one provenance graph per invocation (DIR/invocations) and per trace (DIR/traces), labelled from the ground truth, " +
            "with manifest.json (labels and counts per label). Needs root.")
        {
            WorkloadCommand.Benign, WorkloadCommand.Attacks, RunsPerFamily, Out, WorkloadCommand.Seed, WorkloadCommand.Concurrency, Backend, NoPcap, State,
            LocalFaasCommand.Verbose,
        };
        RunsPerFamily.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<int>() is < 1 or > 10_000)
            {
                r.AddError("--runs-per-family must be 1..10000");
            }
        });
        command.SetAction(async (parse, ct) =>
        {
            var verbose = parse.GetValue(LocalFaasCommand.Verbose);
            using var logging = CliLogging.Create(verbose);
            var outDir = parse.GetValue(Out)!.FullName;
            var state = parse.GetValue(State)?.FullName ?? "/var/lib/faasmon/collect";
            var benign = parse.GetValue(WorkloadCommand.Benign);
            var runs = parse.GetResult(RunsPerFamily) is null ? Math.Max(1, (benign + 4) / 5) : parse.GetValue(RunsPerFamily);
            var families = (parse.GetValue(WorkloadCommand.Attacks) ?? [])
                .SelectMany(a => a.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                .SelectMany(a => a == "all" ? WorkloadDriver.AttackFamilies : [a]).Distinct().ToList();
            var started = Stopwatch.StartNew();
            Console.WriteLine($"faasmon collect: {benign} benign requests, {runs} run(s) of each of {families.Count} attack famil{(families.Count == 1 ? "y" : "ies")}, tracer {parse.GetValue(Backend)}, into {outDir}");

            var writer = new DatasetWriter(outDir);
            MonitoredStack stack;
            try
            {
                stack = await MonitoredStack.StartAsync(new MonitoredStackOptions
                {
                    StateDirectory = Path.Combine(state, "localfaas"),
                    ProxyDataDirectory = Path.Combine(state, "proxy"),
                    Backend = parse.GetValue(Backend)!,
                    Pcap = !parse.GetValue(NoPcap),
                    Verbose = verbose,
                }, logging, ct);
            }
            catch (TracerUnavailableException e)
            {
                await Console.Error.WriteLineAsync($"faasmon collect: {e.Message}");
                return 2;
            }

            await using (stack)
            {
                Console.WriteLine($"  pipeline up in {started.Elapsed.TotalSeconds:F0} s: proxy {stack.GatewayUrl}, {stack.Faas.Instances.Count} function instances traced");
                var consuming = ConsumeAsync(stack.Grapher, writer);
                var groundTruth = Path.Combine(outDir, "ground-truth.jsonl");
                using var progress = new Timer(_ => Console.WriteLine(
                    $"  {started.Elapsed.TotalSeconds,5:F0} s: {writer.Written} graphs written; grapher {stack.Grapher.Counters.Invocations} invocations, " +
                    $"{stack.Grapher.Counters.Events} events; tracer {stack.Tracer.Counters}"), null, TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(30));
                var outcomes = await DriveAsync(stack, benign, families, runs, parse.GetValue(WorkloadCommand.Seed), parse.GetValue(WorkloadCommand.Concurrency), groundTruth, logging, ct);
                await stack.DrainAsync(TimeSpan.FromSeconds(2), ct);
                await consuming;

                var labels = GroundTruthLabels.Load(groundTruth, out var skipped);
                var counts = writer.Label(labels, new Dictionary<string, object>
                {
                    ["benignRequests"] = benign,
                    ["runsPerFamily"] = runs,
                    ["families"] = families,
                    ["seed"] = parse.GetValue(WorkloadCommand.Seed),
                    ["backend"] = parse.GetValue(Backend)!,
                    ["attacksVerified"] = outcomes.Count(a => a.Succeeded),
                    ["attacksRun"] = outcomes.Count,
                    ["seconds"] = Math.Round(started.Elapsed.TotalSeconds),
                    ["grapher"] = stack.Grapher.Counters.ToString(),
                    ["tracer"] = stack.Tracer.Counters.ToString(),
                });
                Console.WriteLine($"faasmon collect: {started.Elapsed.TotalMinutes:F1} min; {outcomes.Count(a => a.Succeeded)}/{outcomes.Count} attacks verified " +
                    $"({string.Join(", ", outcomes.GroupBy(o => o.Family).Select(g => $"{g.Key} {g.Count(o => o.Succeeded)}/{g.Count()}"))}); " +
                    $"ground truth {labels.Count} lines{(skipped > 0 ? $" ({skipped} unreadable)" : "")}");
                Console.WriteLine($"  invocation graphs: {Describe(counts.Invocations)}");
                Console.WriteLine($"  trace graphs:      {Describe(counts.Traces)}");
                Console.WriteLine($"  not in the ground truth (left out of the manifest): {counts.Unlabelled}");
                Console.WriteLine($"  grapher: {stack.Grapher.Counters}");
                Console.WriteLine($"  tracer: {stack.Tracer.Counters}");
                Console.WriteLine($"  manifest: {Path.Combine(outDir, DatasetWriter.ManifestName)}; train with: faasmon eval --data {Path.Combine(outDir, DatasetWriter.InvocationsFolder)} --out DIR");
                return outcomes.All(a => a.Succeeded) ? 0 : 1;
            }
        });
        return command;
    }

    /// <summary>
    /// The workload in rounds: each round is one ordinary workload run (its share of the benign requests and one run of
    /// every family), so attacks never pile up on one function (a warm cache poisoned twice at once, max_inflight 429s)
    /// and every attack run is a whole one. Before each round the container-reuse implant is removed from the warm
    /// receive containers, so each stage really downloads it rather than finding the last round's copy.
    /// </summary>
    internal static async Task<List<AttackOutcome>> DriveAsync(MonitoredStack stack, int benign, List<string> families, int rounds, int seed, int concurrency,
        string groundTruth, ILoggerFactory logging, CancellationToken ct, bool quiet = false)
    {
        rounds = families.Count == 0 ? 1 : rounds;
        var driver = new WorkloadDriver(logging.CreateLogger<WorkloadDriver>());
        var outcomes = new List<AttackOutcome>();
        await using var combined = new StreamWriter(groundTruth, append: false) { NewLine = "\n" };
        var roundFile = groundTruth + ".round";
        var benignLeft = benign;
        for (var round = 0; round < rounds; round++)
        {
            var share = benignLeft / (rounds - round);
            benignLeft -= share;
            foreach (var (function, _, pid) in stack.Faas.Instances)
            {
                if (function == "product-photos-receive" && pid is { } p)
                {
                    try
                    {
                        File.Delete($"/proc/{p.ToString(CultureInfo.InvariantCulture)}/root/tmp/{AttackPayloads.StagedFileName}");
                    }
                    catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                    {
                        // the instance just went away: its replacement starts with an empty /tmp
                    }
                }
            }

            var report = await driver.RunAsync(new WorkloadOptions
            {
                Gateway = stack.GatewayUrl,
                Benign = share,
                Attacks = families,
                GroundTruthPath = roundFile,
                Seed = seed + round,
                Concurrency = concurrency,
                KnownSecrets = stack.Faas.SecretValues,
            }, null, ct);
            outcomes.AddRange(report.Attacks);
            foreach (var line in await File.ReadAllLinesAsync(roundFile, ct))
            {
                await combined.WriteLineAsync(line);
            }

            await combined.FlushAsync(ct);
            if (!quiet && (rounds <= 20 || (round + 1) % Math.Max(1, rounds / 20) == 0 || round == rounds - 1))
            {
                Console.WriteLine($"  round {round + 1}/{rounds}: {report.BenignOk}/{report.BenignSent} benign ok, {report.Attacks.Count(a => a.Succeeded)}/{report.Attacks.Count} attacks verified" +
                    (report.Attacks.FirstOrDefault(a => !a.Succeeded) is { } failed ? $" ({failed.Family} failed: {failed.Evidence})" : ""));
            }
        }

        File.Delete(roundFile);
        return outcomes;
    }

    /// <summary>Writes every graph the grapher finishes, invocations and traces, until both channels complete.</summary>
    internal static Task ConsumeAsync(InvocationGrapher grapher, DatasetWriter writer) => Task.WhenAll(
        Task.Run(async () =>
        {
            await foreach (var invocation in grapher.Invocations.ReadAllAsync())
            {
                writer.Write(invocation.Graph);
            }
        }),
        Task.Run(async () =>
        {
            await foreach (var trace in grapher.Traces.ReadAllAsync())
            {
                writer.Write(trace);
            }
        }));

    private static string Describe(IReadOnlyDictionary<string, int> counts) =>
        counts.Count == 0 ? "none" : string.Join(", ", counts.Select(c => $"{c.Key} {c.Value.ToString(CultureInfo.InvariantCulture)}")) + $" (total {counts.Values.Sum()})";
}
