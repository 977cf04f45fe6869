using System.Text.Json;
using FaaSMon.LocalFaaS;
using FaaSMon.Workload;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Functions.Tests;

/// <summary>
/// Runs alone: it starts its own LocalFaaS (PostgreSQL and every function as a warm container) and its attacks leave that
/// store and those containers changed (a forged purchase, a tampered cache), so it shares them with no other test.
/// </summary>
[CollectionDefinition("workload-end-to-end", DisableParallelization = true)]
public sealed class WorkloadEndToEndCollection;

/// <summary>The whole kit against real functions: benign hello-retail traffic and all five attacks, each verified.</summary>
[Collection("workload-end-to-end")]
public sealed class WorkloadEndToEndTests : IAsyncLifetime
{
    private string _state = "";
    private string _output = "";
    private LocalFaasHost _faas = null!;

    public async Task InitializeAsync()
    {
        _state = TestState.NewDirectory();
        _output = WorkloadProcesses.NewTempDirectory();
        _faas = await LocalFaasHost.StartAsync(new LocalFaasOptions { Port = 0, StateDirectory = _state });
    }

    public async Task DisposeAsync()
    {
        if (_faas is not null)
        {
            await _faas.DisposeAsync();
        }

        TestState.Delete(_state);
        Directory.Delete(_output, recursive: true);
    }

    [Fact]
    public async Task Benign_traffic_and_all_five_attacks_run_end_to_end_with_verified_evidence_and_ground_truth()
    {
        var groundTruth = Path.Combine(_output, "ground-truth.jsonl");
        var driver = new WorkloadDriver(NullLogger<WorkloadDriver>.Instance);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));

        var report = await driver.RunAsync(
            new WorkloadOptions
            {
                Gateway = _faas.GatewayUrl,
                Benign = 30,
                Attacks = ["all"],
                GroundTruthPath = groundTruth,
                Seed = 1,
                Concurrency = 2,
                KnownSecrets = _faas.SecretValues,
            },
            null,
            timeout.Token);

        // Every attack really worked, and says how we know.
        Assert.Equal(WorkloadDriver.AttackFamilies, report.Attacks.Select(a => a.Family));
        Assert.All(report.Attacks, attack =>
        {
            Assert.True(attack.Succeeded, $"{attack.Family}: {attack.Evidence}");
            Assert.False(string.IsNullOrWhiteSpace(attack.Evidence));
            Assert.NotEmpty(attack.CallIds);
            Assert.Matches("^[0-9a-f]{32}$", attack.TraceId);
        });
        var theft = Assert.Single(report.Attacks, a => a.Family == "credential-theft");
        Assert.Contains("PGPASSWORD", theft.Evidence, StringComparison.Ordinal);
        Assert.Contains("equal to the platform's", theft.Evidence, StringComparison.Ordinal);
        Assert.All(_faas.SecretValues.Values, secret =>
            Assert.All(report.Attacks, a => Assert.DoesNotContain(secret, a.Evidence, StringComparison.Ordinal)));

        // The store mostly answers benign traffic as expected (deliberate 401/402/404 included).
        Assert.Equal(30, report.BenignSent);
        Assert.True(report.BenignOk >= 27, $"benign as expected: {report.BenignOk}/30; {string.Join("; ", report.BenignByFunction)}");

        // One ground-truth line per request, every attack's calls among them, all five families labelled.
        var lines = (await File.ReadAllLinesAsync(groundTruth)).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(report.RequestsSent, lines.Count);
        var callIds = lines.Select(l => l.GetProperty("callId").GetString()!).ToHashSet();
        Assert.Equal(lines.Count, callIds.Count);
        Assert.All(report.Attacks.SelectMany(a => a.CallIds), id => Assert.Contains(id, callIds));
        var labels = lines.Select(l => l.GetProperty("label").GetString()).ToHashSet();
        Assert.Superset(new HashSet<string?>(["benign", .. WorkloadDriver.AttackFamilies]), labels);
        Assert.Equal(30, lines.Count(l => !l.TryGetProperty("step", out _))); // every request of an attack names its step

        // Container reuse: a stage and a later, separate trigger; tampering: a benign victim read marked as affected.
        var reuse = lines.Where(l => l.GetProperty("label").GetString() == "container-reuse").ToList();
        Assert.Contains(reuse, l => l.GetProperty("step").GetString() == "stage");
        Assert.Contains(reuse, l => l.GetProperty("step").GetString() == "trigger");
        Assert.Contains(lines, l => l.GetProperty("label").GetString() == "benign"
            && l.TryGetProperty("affectedBy", out var by) && by.GetString() == "tampering"
            && l.GetProperty("path").GetString() == "/function/product-catalog-api/products/p-cam-001");
    }
}
