using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using FaaSMon.Grapher;
using FaaSMon.Grapher.Dataset;
using FaaSMon.Monitor.Hosting;
using FaaSMon.Tracer;
using FaaSMon.Workload;

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

    private static readonly Option<string> Backend = new("--backend") { Description = "Tracer backend: strace or ebpf.", DefaultValueFactory = _ => "strace" };

    private static readonly Option<bool> NoPcap = new("--no-pcap") { Description = "Do not capture packets (graphs then carry no packet counts)." };

    private static readonly Option<DirectoryInfo?> State = new("--state-dir") { Description = "LocalFaaS and proxy state (default /var/lib/faasmon/collect)." };

    public static Command Create()
    {
        Backend.AcceptOnlyFromAmong("strace", "ebpf");
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
            var attacks = Enumerable.Repeat(families, runs).SelectMany(f => f).ToList();
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
                var report = await WorkloadCommand.RunAsync(new WorkloadOptions
                {
                    Gateway = stack.GatewayUrl,
                    Benign = benign,
                    Attacks = attacks,
                    GroundTruthPath = groundTruth,
                    Seed = parse.GetValue(WorkloadCommand.Seed),
                    Concurrency = parse.GetValue(WorkloadCommand.Concurrency),
                    KnownSecrets = stack.Faas.SecretValues,
                }, logging, ct);
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
                    ["attacksVerified"] = report.Attacks.Count(a => a.Succeeded),
                    ["attacksRun"] = report.Attacks.Count,
                    ["seconds"] = Math.Round(started.Elapsed.TotalSeconds),
                    ["grapher"] = stack.Grapher.Counters.ToString(),
                    ["tracer"] = stack.Tracer.Counters.ToString(),
                });
                Console.WriteLine($"faasmon collect: {started.Elapsed.TotalMinutes:F1} min; {report.Attacks.Count(a => a.Succeeded)}/{report.Attacks.Count} attacks verified; " +
                    $"ground truth {labels.Count} lines{(skipped > 0 ? $" ({skipped} unreadable)" : "")}");
                Console.WriteLine($"  invocation graphs: {Describe(counts.Invocations)}");
                Console.WriteLine($"  trace graphs:      {Describe(counts.Traces)}");
                Console.WriteLine($"  not in the ground truth (left out of the manifest): {counts.Unlabelled}");
                Console.WriteLine($"  grapher: {stack.Grapher.Counters}");
                Console.WriteLine($"  tracer: {stack.Tracer.Counters}");
                Console.WriteLine($"  manifest: {Path.Combine(outDir, DatasetWriter.ManifestName)}; train with: faasmon eval --data {Path.Combine(outDir, DatasetWriter.InvocationsFolder)} --out DIR");
                return report.Attacks.All(a => a.Succeeded) ? 0 : 1;
            }
        });
        return command;
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
