using System.Collections.Concurrent;
using System.Text.Json;
using FaaSMon.Core;
using FaaSMon.Grapher;
using FaaSMon.Monitor.Hosting;
using FaaSMon.Monitor.Snapshots;
using FaaSMon.Workload;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// On real LocalFaaS containers under the whole pipeline: the lateral-movement attack (get-price's injected code calls
/// publish without trace context), its causal path from the graphs, and a snapshot of exactly those instances.
/// </summary>
public sealed class SnapshotCausalPathTests(ITestOutputHelper output)
{
    private const string GetPrice = "product-purchase-get-price";
    private const string Publish = "product-purchase-publish";

    [Fact]
    public async Task Lateral_movement_snapshots_exactly_the_instances_on_the_traces_path_and_none_else()
    {
        var state = SnapshotAssert.TestDirectory("snapshot-path");
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(25));
        using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        var invocations = new ConcurrentQueue<FinishedInvocation>();
        var traces = new ConcurrentQueue<ProvenanceGraph>();
        try
        {
            await using var stack = await MonitoredStack.StartAsync(new MonitoredStackOptions
            {
                StateDirectory = Path.Combine(state, "localfaas"),
                ProxyDataDirectory = Path.Combine(state, "proxy"),
                Pcap = false,
            }, loggers, timeout.Token);
            var consuming = Task.WhenAll(
                Task.Run(async () => { await foreach (var i in stack.Grapher.Invocations.ReadAllAsync()) { invocations.Enqueue(i); } }),
                Task.Run(async () => { await foreach (var t in stack.Grapher.Traces.ReadAllAsync()) { traces.Enqueue(t); } }));
            var groundTruth = Path.Combine(state, "gt.jsonl");
            var report = await new WorkloadDriver(loggers.CreateLogger<WorkloadDriver>()).RunAsync(new WorkloadOptions
            {
                Gateway = stack.GatewayUrl, Benign = 0, Attacks = ["lateral-movement"], KnownSecrets = stack.Faas.SecretValues, GroundTruthPath = groundTruth,
            }, null, timeout.Token);
            Assert.True(report.Attacks.Single().Succeeded, report.Attacks.Single().Evidence);
            await stack.DrainAsync(TimeSpan.FromSeconds(2), timeout.Token); // graphs built; the containers keep running
            await consuming;

            var sent = File.ReadLines(groundTruth).Select(l => JsonSerializer.Deserialize<SentRequest>(l, JsonSerializerOptions.Web)!).ToList();
            var step = sent.Single(s => s.Step == "trigger");
            var graphs = invocations.Select(i => i.Graph).ToList();
            var trigger = graphs.Single(g => g.CallId == step.CallId && g.Function == GetPrice);
            var forged = graphs.Single(g => g.Function == Publish && Self(g)?.GetValueOrDefault("callerCallId") == trigger.CallId);
            Assert.Equal("true", Self(forged)!["untracedCall"]);
            var trace = traces.Single(t => t.TraceId == trigger.TraceId);
            var traceInstances = trace.Nodes.Where(n => n.Attributes?.GetValueOrDefault("role") == "self").Select(n => n.Attributes!["instance"]).ToHashSet();
            output.WriteLine($"trace {trace.GraphId}: instances {string.Join(", ", traceInstances)}; forged call {forged.GraphId} on {forged.Instance}, trace {forged.TraceId} (trigger's {trigger.TraceId})");

            var path = CausalPath.Of(trace, [.. graphs, .. traces]);
            var expected = new HashSet<string>(traceInstances) { trigger.Instance!, forged.Instance! };
            Assert.Equal(expected.Order(StringComparer.Ordinal), path.Select(p => p.Instance).Order(StringComparer.Ordinal));
            Assert.Equal([GetPrice, Publish], path.Select(p => p.Function).Distinct().Order(StringComparer.Ordinal));
            // the verdict may be about the forged call instead: its path is the same
            Assert.Equal(path, CausalPath.Of(forged, [.. graphs, .. traces]));

            // a marker in get-price's private /tmp, written from the host through the container's root
            var live = stack.Faas.Instances;
            var pidOf = live.Where(i => i.Pid is not null).ToDictionary(i => i.Instance, i => i.Pid!.Value);
            var marker = $"/proc/{pidOf[trigger.Instance!]}/root/tmp/faasmon-snapshot-test";
            await File.WriteAllTextAsync(marker, "left by the test", timeout.Token);
            var tmpNow = Directory.EnumerateFileSystemEntries($"/proc/{pidOf[trigger.Instance!]}/root/tmp", "*", SearchOption.AllDirectories)
                .Select(p => Path.GetRelativePath($"/proc/{pidOf[trigger.Instance!]}/root/tmp", p)).ToHashSet();

            var dir = Path.Combine(state, "snapshots");
            // the default resident dumper: ~100 MiB per Node instance, frozen through the instance's own cgroup
            using var service = new SnapshotService(new SnapshotOptions { Directory = dir, MaxTotalBytes = 40L << 30, ToolTimeout = TimeSpan.FromMinutes(8), ResolvePid = t => pidOf.GetValueOrDefault(t.Instance) is var p and > 0 ? p : null });
            var set = await service.SnapshotAsync("verdict-lateral", path, timeout.Token);
            foreach (var i in set.Instances)
            {
                output.WriteLine($"{i.Instance}: {i.Status} {i.Error} {i.DurationMs:F0} ms: {string.Join(", ", i.Parts.Select(p => $"{p.Name} {p.DurationMs:F0} ms"))}; {string.Join(", ", i.Files.Select(f => $"{f.Name} {f.Bytes}"))}");
            }

            Assert.All(set.Instances, i => Assert.True(i.Status == SnapshotStatus.Complete, $"{i.Instance}: {i.Status}: {i.Error}"));
            Assert.Equal(expected.Order(StringComparer.Ordinal), Directory.GetDirectories(Path.Combine(dir, "verdict-lateral")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
            Assert.True(live.Count > expected.Count + 5, $"{live.Count} instances run; the path has {expected.Count}");

            foreach (var i in set.Instances)
            {
                var folder = Path.Combine(dir, "verdict-lateral", i.Instance);
                SnapshotAssert.IsElfCore(Path.Combine(folder, "core"));
                Assert.StartsWith("cgroup ", i.Core?.Freeze, StringComparison.Ordinal); // LocalFaaS's …/faasmon/FUNCTION/INSTANCE, not SIGSTOP
                Assert.Equal(pidOf[i.Instance], i.Pid);
                var environ = await File.ReadAllTextAsync(Path.Combine(folder, "environ"), timeout.Token);
                Assert.Contains("PGPASSWORD=[redacted]\n", environ, StringComparison.Ordinal);
                Assert.Contains($"HOSTNAME={i.Instance}\n", environ, StringComparison.Ordinal);
                foreach (var secret in stack.Faas.SecretValues.Values)
                {
                    Assert.DoesNotContain(secret, environ, StringComparison.Ordinal);
                    Assert.DoesNotContain(secret, await File.ReadAllTextAsync(Path.Combine(folder, "process.json"), timeout.Token), StringComparison.Ordinal);
                }

                var fds = await File.ReadAllTextAsync(Path.Combine(folder, "process.json"), timeout.Token);
                Assert.Contains("\"state\": \"LISTEN\"", fds, StringComparison.Ordinal); // the function's http port
            }

            var tar = SnapshotAssert.TarEntries(Path.Combine(dir, "verdict-lateral", trigger.Instance!, "tmp.tar"));
            Assert.Superset(tmpNow, tar.Keys.ToHashSet());
            Assert.Contains("faasmon-snapshot-test", tar.Keys);
            Assert.Equal("left by the test", SnapshotAssert.Content(tar["faasmon-snapshot-test"]));
        }
        finally
        {
            if (Directory.Exists(state))
            {
                Directory.Delete(state, recursive: true);
            }
        }
    }

    private static IReadOnlyDictionary<string, string>? Self(ProvenanceGraph g) =>
        g.Nodes.FirstOrDefault(n => n.Kind == NodeKind.Invocation && n.Attributes?.GetValueOrDefault("role") == "self")?.Attributes;
}
