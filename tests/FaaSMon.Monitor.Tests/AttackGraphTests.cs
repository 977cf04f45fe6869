using FaaSMon.Core;
using Xunit.Abstractions;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// For every attack family, on real runs: the attack invocation's provenance graph holds the structure that caused it,
/// and the benign invocations of the same function do not.
/// </summary>
[Collection("pipeline")]
public sealed class AttackGraphTests(PipelineFixture run, ITestOutputHelper output)
{
    private const string Receive = "product-photos-receive";
    private const string Catalog = "product-catalog-api";
    private const string Message = "product-photos-message";
    private const string GetPrice = "product-purchase-get-price";
    private const string Publish = "product-purchase-publish";

    [Fact]
    public void Every_attack_was_verified_and_the_benign_run_made_graphs_for_every_function_it_reached()
    {
        output.WriteLine(run.Counters);
        Assert.All(run.Outcomes.Values, o => Assert.True(o.Succeeded, $"{o.Family}: {o.Evidence}"));
        Assert.Equal(5, run.Outcomes.Count);
        foreach (var function in new[] { Catalog, "product-purchase", "product-purchase-authenticate", GetPrice, Publish })
        {
            Assert.NotEmpty(run.Benign(function));
        }

        Assert.NotEmpty(run.Traces);
    }

    [Fact]
    public void Container_reuse_the_trigger_executes_a_file_the_stage_wrote_into_the_warm_tmp()
    {
        var stage = run.Graph(run.Step("container-reuse", "stage"));
        var trigger = run.Graph(run.Step("container-reuse", "trigger"));
        output.WriteLine(Describe(trigger));

        Assert.Equal(stage.Instance, trigger.Instance);
        Assert.Contains(stage.Edges, e => e.Kind is EdgeKind.Write or EdgeKind.Rename && stage.Nodes[e.Target].Label.StartsWith("/tmp/", StringComparison.Ordinal));
        Assert.True(ExecutesInherited(trigger, writerGraphId: stage.GraphId), $"trigger: {Describe(trigger)}");

        Assert.All(run.Benign(Receive), g => Assert.False(ExecutesInherited(g, null), $"benign {g.GraphId}: {Describe(g)}"));
    }

    [Fact]
    public void Credential_theft_reads_the_secrets_and_connects_where_benign_catalog_reads_never_do()
    {
        var trigger = run.Graph(run.Step("credential-theft", "trigger"));
        output.WriteLine(Describe(trigger));
        var benign = run.Benign(Catalog);
        var benignRemotes = benign.SelectMany(g => g.Edges.Where(e => e.Kind == EdgeKind.Connect).Select(e => g.Nodes[e.Target].Label)).ToHashSet();

        Assert.Contains(trigger.Nodes, IsSecretPath);
        Assert.Contains(trigger.Edges, e => e.Kind == EdgeKind.Connect && !benignRemotes.Contains(trigger.Nodes[e.Target].Label));
        Assert.All(benign, g => Assert.DoesNotContain(g.Nodes, IsSecretPath));
    }

    [Fact]
    public void Lateral_movement_get_price_calls_publish_without_trace_context_which_benign_pricing_never_does()
    {
        var trigger = run.Graph(run.Step("lateral-movement", "trigger"));
        var proxy = $"{run.Gateway.Host}:{run.Gateway.Port}";
        output.WriteLine(Describe(trigger));

        Assert.Contains(trigger.Edges, e => e.Kind is EdgeKind.Connect or EdgeKind.Send && trigger.Nodes[e.Target].Label == proxy);
        var forged = run.Invocations.Select(i => i.Graph).Where(g => g.Function == Publish && Self(g)?.Attributes?.GetValueOrDefault("callerCallId") == trigger.CallId).ToList();
        var publish = Assert.Single(forged);
        Assert.Equal("true", Self(publish)!.Attributes!["untracedCall"]);
        Assert.Equal(GetPrice, Self(publish)!.Attributes!["callerFunction"]);

        Assert.All(run.Benign(GetPrice), g => Assert.DoesNotContain(g.Edges, e => e.Kind is EdgeKind.Connect or EdgeKind.Send && g.Nodes[e.Target].Label == proxy));
        Assert.All(run.Benign(Publish), g => Assert.False(Self(g)?.Attributes?.ContainsKey("untracedCall") ?? false, $"benign {g.GraphId}"));
    }

    [Fact]
    public void Reverse_shell_a_process_the_function_started_connects_out_which_benign_messages_never_do()
    {
        var trigger = run.Graph(run.Step("reverse-shell", "trigger"));
        output.WriteLine(Describe(trigger));

        Assert.True(ChildConnects(trigger), Describe(trigger));
        Assert.Contains(trigger.Nodes, n => n.Kind == NodeKind.Process && n.Label is "sh" or "bash");
        var benign = run.Benign(Message);
        Assert.NotEmpty(benign);
        Assert.All(benign, g => Assert.False(ChildConnects(g), $"benign {g.GraphId}: {Describe(g)}"));
    }

    [Fact]
    public void Tampering_the_injection_rewrites_the_warm_cache_and_the_victim_read_inherits_it()
    {
        var trigger = run.Graph(run.Step("tampering", "trigger"));
        output.WriteLine(Describe(trigger));
        const string Cache = "/tmp/catalog-cache.json";

        Assert.Contains(trigger.Edges, e => e.Kind is EdgeKind.Write or EdgeKind.Open && trigger.Nodes[e.Target].Label == Cache);
        var victims = run.Sent.Where(s => s.AttackId?.StartsWith("tampering-", StringComparison.Ordinal) == true && s.Step == "victim").Select(run.Graph).ToList();
        Assert.Contains(victims, v => v.Edges.Any(e => e.Kind == EdgeKind.Inherits && v.Nodes[e.Target].Label == Cache
            && v.Nodes[e.Source].Attributes?.GetValueOrDefault("graphId") == trigger.GraphId));

        // before the attack, what benign reads inherit comes from benign writers only
        var benignIds = run.Benign(Catalog).Select(g => g.GraphId).ToHashSet();
        Assert.All(run.Benign(Catalog), g => Assert.All(g.Edges.Where(e => e.Kind == EdgeKind.Inherits),
            e => Assert.Contains(g.Nodes[e.Source].Attributes!["graphId"], benignIds)));
    }

    [Fact]
    public void Chains_become_trace_graphs_linked_by_invoke_edges()
    {
        var purchase = run.Traces.Where(t => t.Function == "product-purchase").ToList();
        Assert.NotEmpty(purchase);
        var trace = purchase.MaxBy(t => t.Edges.Count(e => e.Kind == EdgeKind.Invoke && e.Syscall == "call"))!;
        var calls = trace.Edges.Where(e => e.Kind == EdgeKind.Invoke && e.Syscall == "call").ToList();
        output.WriteLine($"{trace.GraphId}: {calls.Count} calls");
        // product-purchase → authenticate, get-price, authorize-cc, publish
        Assert.True(calls.Count >= 4, $"{calls.Count} invoke edges");
        Assert.All(calls, e => Assert.Equal("product-purchase", trace.Nodes[e.Source].Attributes!["function"]));
    }

    private static bool ExecutesInherited(ProvenanceGraph g, string? writerGraphId) =>
        g.Edges.Where(e => e.Kind == EdgeKind.Execve).Select(e => e.Target).Any(file => g.Edges.Any(i => i.Kind == EdgeKind.Inherits && i.Target == file
            && (writerGraphId is null || g.Nodes[i.Source].Attributes?.GetValueOrDefault("graphId") == writerGraphId)));

    private static bool ChildConnects(ProvenanceGraph g) =>
        g.Edges.Any(e => e.Kind == EdgeKind.Connect && g.Nodes[e.Source] is { Kind: NodeKind.Process } p && p.Attributes?.GetValueOrDefault("role") != "function");

    private static bool IsSecretPath(GraphNode n) => n.Kind == NodeKind.File && n.Label.StartsWith("/var/openfaas/secrets", StringComparison.Ordinal);

    private static GraphNode? Self(ProvenanceGraph g) => g.Nodes.FirstOrDefault(n => n.Attributes?.GetValueOrDefault("role") == "self");

    private static string Describe(ProvenanceGraph g) =>
        $"{g.GraphId} ({g.Nodes.Count} nodes{(g.Ambiguous ? ", ambiguous" : "")}): " +
        string.Join("; ", g.Edges.Where(e => e.Kind is not (EdgeKind.Read or EdgeKind.Recv or EdgeKind.MmapExec))
            .Select(e => $"{g.Nodes[e.Source].Label} -{e.Kind}-> {g.Nodes[e.Target].Label}"));
}
