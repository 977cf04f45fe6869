using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using FaaSMon.Classifier.Evaluation;
using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Models;
using FaaSMon.Classifier.Native;
using FaaSMon.Core;
using FaaSMon.Grapher.Dataset;
using FaaSMon.Monitor.Hosting;
using FaaSMon.Workload;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace FaaSMon.Monitor.Commands;

/// <summary>What the demo found, as <c>--report FILE</c> writes it.</summary>
internal sealed record DemoReport(
    string Model,
    bool ModelTrainedNow,
    double Minutes,
    IReadOnlyList<DemoFamily> Families,
    int BenignInvocations,
    int BenignFlagged,
    double BenignFalsePositiveRate,
    int Invocations,
    double FirstVerdictP50Ms,
    double FirstVerdictP99Ms,
    double FinalVerdictP50Ms,
    double FinalVerdictP99Ms,
    double FirstGraphP50Ms,
    double FirstGraphP99Ms,
    double FirstWorkP50Ms,
    double FirstWorkP99Ms,
    double FirstTracedP50Ms,
    double FirstTracedP99Ms,
    double FirstBuiltP50Ms,
    double FirstBuiltP99Ms,
    long FirstVerdictsFromFinalGraph,
    string Dashboard);

/// <summary>One attack family: its runs (verified end to end by the attack kit), the runs detected, and its invocations flagged.</summary>
internal sealed record DemoFamily(string Family, int Runs, int RunsVerified, int RunsDetected, int Invocations, int InvocationsFlagged, IReadOnlyList<string> Rules);

internal static partial class DemoCommand
{
    private static readonly JsonSerializerOptions ReportJson = new(JsonSerializerDefaults.Web) { WriteIndented = true };

    public static readonly Option<int> Benign = new("--benign")
    {
        Description = "Benign requests to mix with the attacks in the live run.",
        DefaultValueFactory = _ => 80,
    };

    private static readonly Option<int> Runs = new("--runs")
    {
        Description = "Runs of each attack family in the live run.",
        DefaultValueFactory = _ => 2,
    };

    private static readonly Option<int> TrainBenign = new("--train-benign")
    {
        Description = "Benign requests of the training collection (when no cached model).",
        DefaultValueFactory = _ => 400,
    };

    private static readonly Option<int> TrainRuns = new("--train-runs")
    {
        Description = "Runs of each attack family in the training collection.",
        DefaultValueFactory = _ => 20,
    };

    private static readonly Option<bool> Retrain = new("--retrain") { Description = "Collect and train again even when a cached model exists." };

    private static readonly Option<DirectoryInfo?> DataDir = new("--data-dir") { Description = "Demo state: model cache, training data, store, LocalFaaS (default /var/lib/faasmon/demo)." };

    private static readonly Option<string> Listen = new("--listen") { Description = "Dashboard and API address.", DefaultValueFactory = _ => "127.0.0.1:8090" };

    private static readonly Option<string> Gateway = new("--gateway") { Description = "The proxy (gateway) address.", DefaultValueFactory = _ => "127.0.0.1:8080" };

    private static readonly Option<FileInfo?> Report = new("--report") { Description = "Also write the final report as JSON to this file." };

    private static readonly Option<bool> Stay = new("--stay") { Description = "Keep the dashboard running after the report until Ctrl-C (default when the terminal is interactive)." };

    private static readonly Option<bool> Exit = new("--exit") { Description = "Exit after the report even in an interactive terminal." };

    public static Command Create()
    {
        var command = new Command("demo",
            "The whole thing on this machine, no Docker, no OpenFaaS: train a model on a small collected hello-retail dataset " +
            "(or reuse the cached one), start the monitor all-in-one (LocalFaaS with the functions as real warm containers, proxy, " +
            "tracer, grapher, classifier, API, dashboard), drive benign traffic and every attack family, show verdicts live and " +
            "report detection per family, benign false-positive rate and verdict latency. Needs root.")
        {
            Benign, Runs, TrainBenign, TrainRuns, Retrain, DataDir, Listen, Gateway, Report, Stay, Exit, LocalFaasCommand.Verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var verbose = parse.GetValue(LocalFaasCommand.Verbose);
            using var logging = CliLogging.Create(verbose, quiet: true);
            var data = parse.GetValue(DataDir)?.FullName ?? "/var/lib/faasmon/demo";
            var started = Stopwatch.StartNew();
            Directory.CreateDirectory(data);

            // 1. the model: cached, or trained now on a collection of this machine's own traffic
            var modelPath = Path.Combine(data, "model", "gin.gnn");
            var trainedNow = false;
            var why = "";
            if (parse.GetValue(Retrain) || !ModelUsable(modelPath, out why))
            {
                Console.WriteLine(parse.GetValue(Retrain) ? "Retraining as asked." : $"No usable cached model ({why}): collecting a training set and training one.");
                if (await TrainAsync(data, modelPath, parse.GetValue(TrainBenign), parse.GetValue(TrainRuns), logging, verbose, ct) is { } failure)
                {
                    await Console.Error.WriteLineAsync($"faasmon demo: {failure}");
                    return 2;
                }

                trainedNow = true;
            }
            else
            {
                Console.WriteLine($"Using the cached model {modelPath} (--retrain to train a new one).");
            }

            // 2. the monitor, all-in-one, with that model
            Console.WriteLine($"[{started.Elapsed:mm\\:ss}] Starting the monitor: LocalFaaS + proxy + tracer + grapher + classifier + API ...");
            var store = Path.Combine(data, "monitor");
            foreach (var previous in (string[])["store", "snapshots"])
            {
                // each demo reports on its own run; the snapshots of earlier runs belong to verdicts no longer stored,
                // and left in place they would fill the snapshot budget until no new intrusion gets one
                if (Directory.Exists(Path.Combine(store, previous)))
                {
                    Directory.Delete(Path.Combine(store, previous), recursive: true);
                }
            }

            ServeHost host;
            try
            {
                host = await ServeHost.StartAsync([], new Dictionary<string, string?>
                {
                    ["Monitor:DataDirectory"] = store,
                    ["Monitor:Model"] = modelPath,
                    ["Monitor:Listen"] = parse.GetValue(Listen),
                    ["Monitor:Gateway"] = parse.GetValue(Gateway),
                }, verbose, ct);
            }
            catch (Exception e) when (e is IOException or InvalidOperationException or Tracer.TracerUnavailableException)
            {
                await Console.Error.WriteLineAsync($"faasmon demo: the monitor did not start: {e.Message}");
                return 2;
            }

            await using (host)
            {
                var notices = new ConcurrentDictionary<string, VerdictNotice>(StringComparer.Ordinal);
                var live = new LiveView(AnsiConsole.Profile.Capabilities.Interactive && !Console.IsOutputRedirected);
                void Observe(VerdictNotice notice)
                {
                    notices[notice.Id] = notice;
                    live.Add(notice);
                }

                host.Pipeline.Stored += Observe;
                Console.WriteLine($"[{started.Elapsed:mm\\:ss}] Dashboard {host.ApiUrl} (user {host.Credentials.User}, password in {Path.Combine(store, "secrets", "basic-auth-password")}); gateway {host.GatewayUrl}");
                Console.WriteLine($"[{started.Elapsed:mm\\:ss}] Driving {parse.GetValue(Benign)} benign requests and {parse.GetValue(Runs)} run(s) of each attack family ...");
                var groundTruth = Path.Combine(data, "ground-truth.jsonl");
                var outcomes = await live.RunAsync(() => CollectCommand.DriveAsync(host.Stack!, parse.GetValue(Benign), [.. WorkloadDriver.AttackFamilies],
                    parse.GetValue(Runs), seed: 1000 + Environment.TickCount % 1000, concurrency: 4, groundTruth, logging, ct, quiet: true));
                await WaitForFinalVerdictsAsync(host, groundTruth, notices, ct);
                host.Pipeline.Stored -= Observe; // the report is of this run's traffic; the dashboard keeps showing what comes later
                var report = Summarise(host, notices.Values, outcomes, groundTruth, modelPath, trainedNow, started.Elapsed);
                Print(report, outcomes);
                var p = host.Pipeline;
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"    per verdict ({p.Classified}): classify p50 {p.ClassifyTime.Percentile(0.5):F1} ms, p99 {p.ClassifyTime.Percentile(0.99):F1} ms; store p50 {p.StoreTime.Percentile(0.5):F1} ms, p99 {p.StoreTime.Percentile(0.99):F1} ms"));
                if (parse.GetValue(Report) is { } file)
                {
                    await File.WriteAllTextAsync(file.FullName, JsonSerializer.Serialize(report, ReportJson), ct);
                    Console.WriteLine($"Report written to {file.FullName}");
                }

                var stay = parse.GetValue(Stay) || (!parse.GetValue(Exit) && !Console.IsInputRedirected && !Console.IsOutputRedirected);
                if (stay)
                {
                    Console.WriteLine($"The dashboard stays at {host.ApiUrl} (user {host.Credentials.User}); Ctrl-C to stop.");
                    try
                    {
                        await Task.Delay(Timeout.Infinite, ct);
                    }
                    catch (OperationCanceledException)
                    {
                    }
                }
                else
                {
                    Console.WriteLine($"Browse the verdicts again with: ./faasmon serve --data-dir {store}  (dashboard {host.ApiUrl})");
                }

                var detected = report.Families.All(f => f.RunsDetected > 0);
                return detected && outcomes.All(o => o.Succeeded) ? 0 : 1;
            }
        });
        return command;
    }

    /// <summary>A model file that loads here with this build's features; else why not.</summary>
    private static bool ModelUsable(string path, out string why)
    {
        if (!File.Exists(path))
        {
            why = "none cached";
            return false;
        }

        try
        {
            using var model = GnnModel.Load(path);
            why = "";
            return true;
        }
        catch (Exception e) when (e is ModelFileException or TorchUnavailableException)
        {
            why = e.Message;
            return false;
        }
    }

    /// <summary>Collects a small labelled dataset on LocalFaaS and trains GIN on it; returns why it failed, or null.</summary>
    private static async Task<string?> TrainAsync(string data, string modelPath, int benign, int runs, ILoggerFactory logging, bool verbose, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        var dataset = Path.Combine(data, "train");
        if (Directory.Exists(dataset))
        {
            Directory.Delete(dataset, recursive: true);
        }

        var writer = new DatasetWriter(dataset);
        Console.WriteLine($"  collecting: {benign} benign requests and {runs} runs of each attack family on LocalFaaS, traced with strace ...");
        await using (var stack = await MonitoredStack.StartAsync(new MonitoredStackOptions
        {
            StateDirectory = Path.Combine(data, "monitor", "localfaas"),
            ProxyDataDirectory = Path.Combine(data, "train-proxy"),
            Pcap = false,
            Verbose = verbose,
        }, logging, ct))
        {
            var consuming = CollectCommand.ConsumeAsync(stack.Grapher, writer);
            var groundTruth = Path.Combine(dataset, "ground-truth.jsonl");
            var outcomes = await CollectCommand.DriveAsync(stack, benign, [.. WorkloadDriver.AttackFamilies], runs, seed: 7, concurrency: 4, groundTruth, logging, ct, quiet: true);
            await stack.DrainAsync(TimeSpan.FromSeconds(2), ct);
            await consuming;
            var counts = writer.Label(GroundTruthLabels.Load(groundTruth, out _), new Dictionary<string, object> { ["purpose"] = "faasmon demo training set" });
            Console.WriteLine($"  collected in {clock.Elapsed.TotalSeconds:F0} s: {outcomes.Count(o => o.Succeeded)}/{outcomes.Count} attacks verified; graphs " +
                string.Join(", ", counts.Invocations.Select(c => $"{c.Key} {c.Value}")));
        }

        var graphs = GraphDataset.Load(Path.Combine(dataset, DatasetWriter.InvocationsFolder));
        if (graphs.Select(g => g.IsAttack).Distinct().Count() < 2)
        {
            return "the training collection has only one class of graphs; see the log above";
        }

        try
        {
            var trainer = new GnnTrainer(logging.CreateLogger<GnnTrainer>());
            var train = Stopwatch.StartNew();
            using var model = trainer.Train(new GnnOptions(GnnArch.Gin, TrainingMode.Supervised, 32, 3), new TrainingOptions(Epochs: 30, Seed: 42),
                [.. graphs.Select(d => new LabeledGraph(GraphFeatures.From(d.Graph), d.IsAttack, d.Label))]);
            Directory.CreateDirectory(Path.GetDirectoryName(modelPath)!);
            model.Save(modelPath);
            Console.WriteLine($"  trained {model.Name} on {graphs.Count} graphs in {train.Elapsed.TotalSeconds:F0} s: {modelPath}");
            return null;
        }
        catch (TorchUnavailableException e)
        {
            Console.WriteLine($"  torch cannot run here ({e.Message}): the demo goes on with the rules only");
            return null;
        }
    }

    /// <summary>Every request of the ground truth has a final verdict, or nothing new came for a while (the settle delays are seconds).</summary>
    private static async Task WaitForFinalVerdictsAsync(ServeHost host, string groundTruth, ConcurrentDictionary<string, VerdictNotice> notices, CancellationToken ct)
    {
        var callIds = File.ReadLines(groundTruth)
            .Select(l => JsonSerializer.Deserialize<GroundTruthEntry>(l, ServeHost.FileJson)?.CallId)
            .OfType<string>().ToHashSet(StringComparer.Ordinal);
        var last = host.Pipeline.Classified;
        var quiet = Stopwatch.StartNew();
        var limit = Stopwatch.StartNew();
        while (limit.Elapsed < TimeSpan.FromSeconds(60))
        {
            var finals = notices.Values.Where(n => n.Final).Select(n => n.Graph.CallId).OfType<string>().ToHashSet(StringComparer.Ordinal);
            if (callIds.All(finals.Contains) && quiet.Elapsed > TimeSpan.FromSeconds(5))
            {
                return;
            }

            if (host.Pipeline.Classified != last)
            {
                last = host.Pipeline.Classified;
                quiet.Restart();
            }
            else if (quiet.Elapsed > TimeSpan.FromSeconds(15))
            {
                return; // some requests never reached a function (a 4xx at the gateway): nothing more will come
            }

            await Task.Delay(250, ct);
        }
    }

    private static DemoReport Summarise(ServeHost host, IEnumerable<VerdictNotice> all, IReadOnlyList<AttackOutcome> outcomes, string groundTruth,
        string modelPath, bool trainedNow, TimeSpan elapsed)
    {
        var labels = GroundTruthLabels.Load(groundTruth, out _);
        var finals = all.Where(n => n.Final).ToList();
        var labelled = finals.Select(n => (Notice: n, Label: labels.ForGraph(n.Graph))).Where(p => p.Label is not null).ToList();
        var families = new List<DemoFamily>();
        foreach (var family in WorkloadDriver.AttackFamilies)
        {
            var runs = outcomes.Where(o => o.Family == family).ToList();
            var invocations = labelled.Where(p => p.Label == family).ToList();
            var detectedRuns = runs.Count(run => finals.Any(n => n.Verdict.IsIntrusion && Belongs(n, run)));
            families.Add(new DemoFamily(family, runs.Count, runs.Count(r => r.Succeeded), detectedRuns, invocations.Count,
                invocations.Count(p => p.Notice.Verdict.IsIntrusion),
                [.. invocations.SelectMany(p => p.Notice.Verdict.RuleHits).Select(h => h.RuleId).Distinct(StringComparer.Ordinal)]));
        }

        var benign = labelled.Where(p => p.Label == GroundTruthLabels.Benign).ToList();
        var flagged = benign.Count(p => p.Notice.Verdict.IsIntrusion);
        var pipeline = host.Pipeline;
        return new DemoReport(
            $"{(pipeline.ModelLoaded ? "gin-supervised" : "rules only")} ({modelPath})",
            trainedNow,
            Math.Round(elapsed.TotalMinutes, 2),
            families,
            benign.Count,
            flagged,
            benign.Count == 0 ? 0 : Math.Round((double)flagged / benign.Count, 4),
            finals.Count,
            Math.Round(pipeline.FirstVerdict.Percentile(0.50), 1),
            Math.Round(pipeline.FirstVerdict.Percentile(0.99), 1),
            Math.Round(pipeline.FinalVerdict.Percentile(0.50), 1),
            Math.Round(pipeline.FinalVerdict.Percentile(0.99), 1),
            Math.Round(pipeline.FirstGraph.Percentile(0.50), 1),
            Math.Round(pipeline.FirstGraph.Percentile(0.99), 1),
            Math.Round(pipeline.FirstWork.Percentile(0.50), 1),
            Math.Round(pipeline.FirstWork.Percentile(0.99), 1),
            Math.Round(pipeline.FirstTraced.Percentile(0.50), 1),
            Math.Round(pipeline.FirstTraced.Percentile(0.99), 1),
            Math.Round(pipeline.FirstBuilt.Percentile(0.50), 1),
            Math.Round(pipeline.FirstBuilt.Percentile(0.99), 1),
            pipeline.FirstFromFinal,
            host.ApiUrl.ToString());
    }

    /// <summary>An invocation of this attack run: one of its call ids, its trace, or called (untraced) from one of them.</summary>
    private static bool Belongs(VerdictNotice notice, AttackOutcome run)
    {
        var graph = notice.Graph;
        if (graph.CallId is { } callId && run.CallIds.Contains(callId, StringComparer.Ordinal) || graph.TraceId == run.TraceId)
        {
            return true;
        }

        var caller = graph.Nodes.FirstOrDefault(n => n.Kind == NodeKind.Invocation && n.Attributes?.GetValueOrDefault("role") == "self")?.Attributes?.GetValueOrDefault("callerCallId");
        return caller is not null && run.CallIds.Contains(caller, StringComparer.Ordinal);
    }

    private static void Print(DemoReport report, IReadOnlyList<AttackOutcome> outcomes)
    {
        Console.WriteLine();
        Console.WriteLine($"FaaSMon demo report ({report.Minutes:F1} min, model {report.Model}{(report.ModelTrainedNow ? ", trained in this run" : ", cached")})");
        Console.WriteLine($"  {"family",-18} {"runs",5} {"verified",9} {"detected",9} {"invocations flagged",20}  rules that fired");
        foreach (var f in report.Families)
        {
            Console.WriteLine($"  {f.Family,-18} {f.Runs,5} {f.RunsVerified,9} {f.RunsDetected,9} {$"{f.InvocationsFlagged}/{f.Invocations}",20}  {(f.Rules.Count == 0 ? "-" : string.Join(", ", f.Rules))}");
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  benign: {report.BenignFlagged} of {report.BenignInvocations} invocations flagged (false-positive rate {report.BenignFalsePositiveRate:P2})"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  verdict latency after the response left the proxy: first verdict p50 {report.FirstVerdictP50Ms:F1} ms, p99 {report.FirstVerdictP99Ms:F1} ms; final verdict p50 {report.FinalVerdictP50Ms:F1} ms, p99 {report.FinalVerdictP99Ms:F1} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"    of the first verdict: graph ready p50 {report.FirstGraphP50Ms:F1} ms, p99 {report.FirstGraphP99Ms:F1} ms; classify + explain + store p50 {report.FirstWorkP50Ms:F1} ms, p99 {report.FirstWorkP99Ms:F1} ms"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"    graph ready, split: response event traced p50 {report.FirstTracedP50Ms:F1} ms, p99 {report.FirstTracedP99Ms:F1} ms; graph built p50 {report.FirstBuiltP50Ms:F1} ms, p99 {report.FirstBuiltP99Ms:F1} ms (the rest is the verdict queue); {report.FirstVerdictsFromFinalGraph} first verdicts came from a final graph"));
        foreach (var failed in outcomes.Where(o => !o.Succeeded))
        {
            Console.WriteLine($"  note: a {failed.Family} run was not verified by the attack kit: {failed.Evidence}");
        }

        Console.WriteLine($"  dashboard: {report.Dashboard}");
    }

    /// <summary>The verdicts as they come: a live table when the terminal is interactive, plain lines (intrusions and a count every 10 s) otherwise.</summary>
    private sealed class LiveView(bool interactive)
    {
        private readonly ConcurrentQueue<VerdictNotice> _recent = new();
        private long _benign;
        private long _intrusions;

        public void Add(VerdictNotice notice)
        {
            if (!notice.Final)
            {
                return;
            }

            if (notice.Verdict.IsIntrusion)
            {
                Interlocked.Increment(ref _intrusions);
                if (!interactive)
                {
                    Console.WriteLine($"  {DateTime.Now:HH:mm:ss} INTRUSION {notice.Graph.Function,-30} score {Score(notice)} rules {Rules(notice)} call {notice.Graph.CallId}");
                }
            }
            else
            {
                Interlocked.Increment(ref _benign);
            }

            _recent.Enqueue(notice);
            while (_recent.Count > 18)
            {
                _recent.TryDequeue(out _);
            }
        }

        public async Task<T> RunAsync<T>(Func<Task<T>> work)
        {
            if (!interactive)
            {
                using var timer = new Timer(_ => Console.WriteLine($"  {DateTime.Now:HH:mm:ss} verdicts so far: {Interlocked.Read(ref _benign)} benign, {Interlocked.Read(ref _intrusions)} intrusion"),
                    null, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10));
                return await work();
            }

            T result = default!;
            await AnsiConsole.Live(Table()).StartAsync(async context =>
            {
                var running = work();
                while (!running.IsCompleted)
                {
                    context.UpdateTarget(Table());
                    await Task.WhenAny(running, Task.Delay(500));
                }

                context.UpdateTarget(Table());
                result = await running;
            });
            return result;
        }

        private Table Table()
        {
            var table = new Table().Title($"verdicts: {Interlocked.Read(ref _benign)} benign, [red]{Interlocked.Read(ref _intrusions)} intrusion[/]")
                .AddColumns("time", "function", "verdict", "score", "rules", "call id");
            foreach (var n in _recent.Reverse())
            {
                table.AddRow(
                    Markup.Escape(DateTime.Now.ToString("HH:mm:ss", CultureInfo.InvariantCulture)),
                    Markup.Escape(n.Graph.Function ?? "?"),
                    n.Verdict.IsIntrusion ? "[red]intrusion[/]" : "[green]benign[/]",
                    Markup.Escape(Score(n)),
                    Markup.Escape(Rules(n)),
                    Markup.Escape(n.Graph.CallId ?? "-"));
            }

            return table;
        }

        private static string Score(VerdictNotice n) => n.Verdict.Score is { } s ? s.ToString("F3", CultureInfo.InvariantCulture) : "-";

        private static string Rules(VerdictNotice n) => n.Verdict.RuleHits.Count == 0 ? "-" : string.Join(",", n.Verdict.RuleHits.Select(h => h.RuleId));
    }
}
