using System.Collections.Concurrent;
using System.Text.Json;
using FaaSMon.Core;
using FaaSMon.Grapher;
using FaaSMon.Monitor.Hosting;
using FaaSMon.Workload;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Tests;

/// <summary>A ground-truth line as the workload driver writes it (the fields the tests read).</summary>
public sealed record SentRequest(string CallId, string TraceId, string Function, string Label, string? AttackId, string? Step);

/// <summary>
/// The whole pipeline once, on real processes: LocalFaaS + proxy + strace + grapher. A benign run first, then each attack
/// family on its own (so its graphs are not shared with concurrent traffic), every graph kept for the tests to read.
/// </summary>
public sealed class PipelineFixture : IAsyncLifetime
{
    private readonly ConcurrentQueue<FinishedInvocation> _invocations = new();
    private readonly ConcurrentQueue<ProvenanceGraph> _traces = new();
    private string _state = "";

    public IReadOnlyList<FinishedInvocation> Invocations => [.. _invocations];

    public IReadOnlyList<ProvenanceGraph> Traces => [.. _traces];

    public List<SentRequest> Sent { get; } = [];

    public Dictionary<string, AttackOutcome> Outcomes { get; } = [];

    public Uri Gateway { get; private set; } = null!;

    public string Counters { get; private set; } = "";

    public async Task InitializeAsync()
    {
        _state = Path.Combine("/var/lib/faasmon/tests", $"pipeline-{DateTime.UtcNow:HHmmss}-{Guid.NewGuid().ToString("N")[..8]}");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        var stack = await MonitoredStack.StartAsync(new MonitoredStackOptions
        {
            StateDirectory = Path.Combine(_state, "localfaas"),
            ProxyDataDirectory = Path.Combine(_state, "proxy"),
            Pcap = false,
        }, loggers, timeout.Token);
        await using (stack)
        {
            Gateway = stack.GatewayUrl;
            var consuming = Task.WhenAll(
                Task.Run(async () =>
                {
                    await foreach (var i in stack.Grapher.Invocations.ReadAllAsync())
                    {
                        _invocations.Enqueue(i);
                    }
                }),
                Task.Run(async () =>
                {
                    await foreach (var t in stack.Grapher.Traces.ReadAllAsync())
                    {
                        _traces.Enqueue(t);
                    }
                }));
            var driver = new WorkloadDriver(loggers.CreateLogger<WorkloadDriver>());
            var runs = new List<(string Name, WorkloadOptions Options)>
            {
                ("benign", new WorkloadOptions { Gateway = stack.GatewayUrl, Benign = 40, Attacks = [], Seed = 7, Concurrency = 2 }),
            };
            runs.AddRange(WorkloadDriver.AttackFamilies.Select(f => (f, new WorkloadOptions { Gateway = stack.GatewayUrl, Benign = 0, Attacks = [f], KnownSecrets = stack.Faas.SecretValues })));
            foreach (var (name, options) in runs)
            {
                var groundTruth = Path.Combine(_state, $"gt-{name}.jsonl");
                var report = await driver.RunAsync(options with { GroundTruthPath = groundTruth }, null, timeout.Token);
                foreach (var outcome in report.Attacks)
                {
                    Outcomes[outcome.Family] = outcome;
                }

                Sent.AddRange(File.ReadLines(groundTruth).Select(l => JsonSerializer.Deserialize<SentRequest>(l, JsonSerializerOptions.Web)!));
                await Task.Delay(1500, timeout.Token); // the next run must not fall into this one's settle window
            }

            await stack.DrainAsync(TimeSpan.FromSeconds(2), timeout.Token);
            await consuming;
            Counters = $"grapher: {stack.Grapher.Counters}";
        }
    }

    public Task DisposeAsync()
    {
        if (Directory.Exists(_state))
        {
            Directory.Delete(_state, recursive: true);
        }

        return Task.CompletedTask;
    }

    public ProvenanceGraph Graph(SentRequest request) =>
        Invocations.Select(i => i.Graph).FirstOrDefault(g => g.CallId == request.CallId && g.Function == request.Function)
        ?? throw new Xunit.Sdk.XunitException($"no graph for {request.Step ?? request.Label} {request.Function} call {request.CallId}; {Invocations.Count} graphs; {Counters}");

    public SentRequest Step(string family, string step, string? function = null) =>
        Sent.FirstOrDefault(s => s.AttackId?.StartsWith(family + "-", StringComparison.Ordinal) == true && s.Step == step && (function is null || s.Function == function))
        ?? throw new Xunit.Sdk.XunitException($"the {family} run sent no {step} request");

    /// <summary>Graphs of the benign run for one function (top-level requests and the hops they made).</summary>
    public IReadOnlyList<ProvenanceGraph> Benign(string function)
    {
        var benignCalls = Sent.Where(s => s.AttackId is null && s.Label == "benign").Select(s => s.CallId).ToHashSet();
        return [.. Invocations.Select(i => i.Graph).Where(g => g.Function == function && g.CallId is not null && benignCalls.Contains(g.CallId))];
    }
}

[CollectionDefinition("pipeline", DisableParallelization = true)]
public sealed class PipelineCollection : ICollectionFixture<PipelineFixture>;
