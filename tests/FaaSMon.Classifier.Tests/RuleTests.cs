using FaaSMon.Classifier.Features;
using FaaSMon.Classifier.Rules;
using FaaSMon.Core;

namespace FaaSMon.Classifier.Tests;

public sealed class RuleTests
{
    private static readonly RuleSet Default = RuleSet.LoadDefault();

    [Fact]
    public void The_shipped_rules_load_from_the_output_folder()
    {
        Assert.Equal(["shell-under-function", "exec-inherited-file", "program-written", "untraced-call", "connect-outside-allow-list", "read-secrets"], Default.RuleIds);
    }

    [Fact]
    public void No_rule_fires_on_benign_graphs()
    {
        var random = new Random(7);
        for (var i = 0; i < 50; i++)
        {
            var graph = SyntheticGraphs.Create(random, SyntheticGraphs.Benign, random.Next(10, 200));
            Assert.Empty(Default.Evaluate(graph));
        }
    }

    [Theory]
    [InlineData(SyntheticGraphs.Shell, new[] { "shell-under-function", "connect-outside-allow-list" })]
    [InlineData(SyntheticGraphs.InheritedExec, new[] { "exec-inherited-file", "connect-outside-allow-list" })]
    [InlineData(SyntheticGraphs.SecretTheft, new[] { "connect-outside-allow-list", "read-secrets" })]
    public void Each_attack_fires_exactly_its_rules_with_an_explanation(string family, string[] expected)
    {
        var graph = SyntheticGraphs.Create(new Random(8), family);
        var hits = Default.Evaluate(graph);
        Assert.Equal(expected.Order(StringComparer.Ordinal), hits.Select(h => h.RuleId).Order(StringComparer.Ordinal));
        Assert.All(hits, h => Assert.NotEmpty(h.NodeIds));
        Assert.All(hits, h => Assert.All(h.NodeIds, id => Assert.Contains(graph.Nodes, n => n.Id == id)));
    }

    [Fact]
    public void How_the_nodes_are_numbered_and_ordered_does_not_change_the_hits()
    {
        var random = new Random(10);
        foreach (var family in SyntheticGraphs.AttackFamilies)
        {
            var graph = SyntheticGraphs.Create(random, family, 200);
            // ids 7i + 3 instead of 0..n-1, nodes reversed, plus an edge to a node that is not there: the id map is taken.
            var renumbered = graph with
            {
                Nodes = [.. graph.Nodes.Select(n => n with { Id = (7 * n.Id) + 3 }).Reverse()],
                Edges = [.. graph.Edges.Select(e => e with { Source = (7 * e.Source) + 3, Target = (7 * e.Target) + 3 }), new(3, 1_000_000, EdgeKind.Connect, "connect", 1, 1)],
            };
            var hits = Default.Evaluate(graph);
            var other = Default.Evaluate(renumbered);
            Assert.Equal(hits.Select(h => h.RuleId).Order(StringComparer.Ordinal), other.Select(h => h.RuleId).Order(StringComparer.Ordinal));
            Assert.Equal(hits.SelectMany(h => h.NodeIds.Select(id => (7 * id) + 3)).Order(), other.SelectMany(h => h.NodeIds).Order());
        }
    }

    [Fact]
    public void Explanations_name_what_happened()
    {
        var shell = Default.Evaluate(SyntheticGraphs.Create(new Random(9), SyntheticGraphs.Shell)).Single(h => h.RuleId == "shell-under-function");
        Assert.Contains("started by 'node'", shell.Explanation, StringComparison.Ordinal);
        var inherited = Default.Evaluate(SyntheticGraphs.Create(new Random(9), SyntheticGraphs.InheritedExec)).Single(h => h.RuleId == "exec-inherited-file");
        Assert.Contains("executed /tmp/.cache/x, written by invocation", inherited.Explanation, StringComparison.Ordinal);
        var secrets = Default.Evaluate(SyntheticGraphs.Create(new Random(9), SyntheticGraphs.SecretTheft)).Single(h => h.RuleId == "read-secrets");
        Assert.Contains("/var/openfaas/secrets/payment-api-key", secrets.Explanation, StringComparison.Ordinal);
        Assert.Contains("/proc/1/environ", secrets.Explanation, StringComparison.Ordinal);
    }

    [Fact]
    public void A_shell_that_is_the_first_process_is_not_under_a_function_and_direction_of_edges_does_not_matter()
    {
        var nodes = new List<GraphNode>
        {
            new(1, NodeKind.Process, "sh", new Dictionary<string, string> { ["exe"] = "/bin/dash" }),
            new(2, NodeKind.File, "/var/openfaas/secrets/key"),
            new(3, NodeKind.Process, "node"),
        };
        // Read drawn process→file here (the other way from the generator): still a read of a secret.
        var graph = new ProvenanceGraph("g", GraphScope.Invocation, null, null, null, null, nodes, [new(3, 2, EdgeKind.Read, "read", 1, 1)]);
        Assert.Equal(["read-secrets"], Default.Evaluate(graph).Select(h => h.RuleId));
    }

    [Theory]
    [InlineData("script", EdgeKind.Write, "wrote /tmp/.receive-1.part (a #! script)")]
    [InlineData("elf", EdgeKind.Rename, "wrote /tmp/.receive-1.part (an ELF program)")]
    [InlineData("image", EdgeKind.Write, null)]
    [InlineData("script", EdgeKind.Read, null)]
    public void A_script_or_program_written_by_a_function_fires_and_an_image_or_a_script_only_read_does_not(string content, EdgeKind how, string? expected)
    {
        var graph = new ProvenanceGraph("g", GraphScope.Invocation, null, null, null, null,
            [new(1, NodeKind.Process, "node"), new(2, NodeKind.File, "/tmp/.receive-1.part", new Dictionary<string, string> { ["path"] = "/tmp/.receive-1.part", ["content"] = content })],
            [new(how == EdgeKind.Read ? 2 : 1, how == EdgeKind.Read ? 1 : 2, how, "write", 1, 1)]);
        var hits = Default.Evaluate(graph).Where(h => h.RuleId == "program-written").ToList();
        if (expected is null)
        {
            Assert.Empty(hits);
        }
        else
        {
            Assert.Contains(expected, Assert.Single(hits).Explanation, StringComparison.Ordinal);
            Assert.Equal([1, 2], hits[0].NodeIds.Order());
        }
    }

    [Theory]
    [InlineData(true, "called by product-purchase-get-price (inv-c0-product-purchase-get-price-1) without the trace context")]
    [InlineData(false, null)]
    public void A_call_from_a_function_that_dropped_its_trace_context_fires_and_a_traced_one_does_not(bool untraced, string? expected)
    {
        // what the grapher writes on publish's own node when get-price's process called it (lateral movement), see AttackGraphTests
        var self = new Dictionary<string, string>
        {
            ["role"] = "self", ["callerFunction"] = "product-purchase-get-price", ["callerGraphId"] = "inv-c0-product-purchase-get-price-1", ["callerCallId"] = "c0",
        };
        if (untraced)
        {
            self["untracedCall"] = "true";
        }

        var graph = new ProvenanceGraph("g", GraphScope.Invocation, null, null, null, null,
            [new(0, NodeKind.Invocation, "publish", self), new(1, NodeKind.Process, "node")], [new(1, 0, EdgeKind.Recv, "read", 1, 1)]);
        var hits = Default.Evaluate(graph);
        if (expected is null)
        {
            Assert.Empty(hits);
        }
        else
        {
            var hit = Assert.Single(hits);
            Assert.Equal("untraced-call", hit.RuleId);
            Assert.Contains(expected, hit.Explanation, StringComparison.Ordinal);
            Assert.Equal([0], hit.NodeIds);
        }
    }

    [Fact]
    public void The_allow_list_takes_addresses_and_ranges()
    {
        var rules = RuleSet.Parse("""
            rules:
              - id: egress
                description: Outside.
                match:
                  connect-outside: [10.0.0.0/8, 203.0.113.7, "2001:db8::/32"]
            """);
        ProvenanceGraph Connect(string remote) => new("g", GraphScope.Invocation, null, null, null, null,
            [new(1, NodeKind.Process, "node"), new(2, NodeKind.Socket, remote)], [new(1, 2, EdgeKind.Connect, "connect", 1, 1)]);
        Assert.Empty(rules.Evaluate(Connect("10.1.2.3:5432")));
        Assert.Empty(rules.Evaluate(Connect("203.0.113.7:443")));
        Assert.Empty(rules.Evaluate(Connect("[2001:db8::1]:443")));
        Assert.Single(rules.Evaluate(Connect("203.0.113.8:443")));
        Assert.Contains("203.0.113.8:443", rules.Evaluate(Connect("203.0.113.8:443"))[0].Explanation, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("product-photos-receive", "/bin/sh -c sha256sum \"p-cam-001-front-c370.png\"", false)]
    [InlineData("product-photos-receive", "/bin/sh -c sha256sum \"evil.sh\";chmod +x evil.sh;PATH=.:$PATH evil.sh 127.0.0.1:46617 1c98;echo \"\"", true)]
    [InlineData("product-photos-message", "/bin/sh -c sha256sum \"p-cam-001-front-c370.png\"", true)]
    [InlineData("product-photos-message", "/bin/sh -c echo \"To +15550100: your photo is in\" >> /tmp/outbox.log", false)]
    [InlineData("product-photos-message", "/bin/sh -c echo \"To x\"; echo aGk= | base64 -d | sh >/dev/null 2>&1 & echo \"\" >> /tmp/outbox.log", true)]
    [InlineData("product-photos-message", "/bin/sh -c echo \"To $(id -u)\" >> /tmp/outbox.log", true)]
    public void A_functions_own_shell_command_is_allowed_and_an_injected_one_is_not(string function, string argv, bool fires)
    {
        var graph = new ProvenanceGraph("g", GraphScope.Invocation, "c", null, function, null,
            [new(1, NodeKind.Process, "function-process", new Dictionary<string, string> { ["role"] = "function" }),
             new(2, NodeKind.Process, "sh", new Dictionary<string, string> { ["exe"] = "/bin/sh", ["argv"] = argv })],
            [new(1, 2, EdgeKind.Fork, "fork", 1, 1)]);
        Assert.Equal(fires, Default.Evaluate(graph).Any(h => h.RuleId == "shell-under-function"));
    }

    [Theory]
    [InlineData("product-purchase-authorize-cc", "/var/openfaas/secrets/payment-api-key", false)]
    [InlineData("product-purchase-authenticate", "/var/openfaas/secrets/payment-api-key", true)]
    [InlineData("product-purchase-authenticate", "/var/openfaas/secrets/auth-token-key", false)]
    [InlineData("product-catalog-api", "/var/openfaas/secrets", true)]
    [InlineData("product-catalog-api", "/var/openfaas/secrets/auth-token-key", true)]
    public void A_function_reading_its_own_secret_is_allowed_and_listing_the_mount_or_another_secret_is_not(string function, string path, bool fires)
    {
        var graph = new ProvenanceGraph("g", GraphScope.Invocation, "c", null, function, null,
            [new(1, NodeKind.Process, "function-process"), new(2, NodeKind.File, path, new Dictionary<string, string> { ["path"] = path })],
            [new(1, 2, EdgeKind.Open, "openat", 1, 1)]);
        Assert.Equal(fires, Default.Evaluate(graph).Any(h => h.RuleId == "read-secrets"));
    }

    [Fact]
    public void In_a_trace_the_allow_list_applies_to_the_functions_the_trace_invoked()
    {
        var graph = new ProvenanceGraph("t", GraphScope.Trace, null, "t1", null, null,
            [new(0, NodeKind.Invocation, "receive", new Dictionary<string, string> { ["role"] = "self", ["function"] = "product-photos-receive" }),
             new(1, NodeKind.Process, "function-process"),
             new(2, NodeKind.Process, "sh", new Dictionary<string, string> { ["exe"] = "/bin/sh", ["argv"] = "/bin/sh -c sha256sum \"a.png\"" })],
            [new(1, 2, EdgeKind.Fork, "fork", 1, 1)]);
        Assert.Empty(Default.Evaluate(graph));
        var writerOnly = graph with { Nodes = [graph.Nodes[0] with { Attributes = new Dictionary<string, string> { ["role"] = "writer", ["function"] = "product-photos-receive" } }, .. graph.Nodes.Skip(1)] };
        Assert.Single(Default.Evaluate(writerOnly));
    }

    [Theory]
    [InlineData("rules: [", "line")]
    [InlineData("rules: []", "no rules")]
    [InlineData("rules:\n  - id: x\n    match: {}\n", "no conditions")]
    [InlineData("rules:\n  - description: y\n    match: {exec-inherited-file: true}\n", "no id")]
    [InlineData("rules:\n  - id: x\n    match: {teapot: true}\n", "teapot")]
    [InlineData("rules:\n  - id: x\n    match: {connect-outside: [not-an-ip]}\n", "not-an-ip")]
    [InlineData("rules:\n  - id: x\n    match: {process-names: [sh]}\n    allow: [{function: f, command-line: 'sh'}]\n", "needs function, reason and one of command-line or path")]
    [InlineData("rules:\n  - id: x\n    match: {process-names: [sh]}\n    allow: [{function: f, command-line: '(', reason: r}]\n", "not a regular expression")]
    [InlineData("rules:\n  - id: x\n    match: {exec-inherited-file: true}\n    allow: [{function: f, command-line: 'sh', reason: r}]\n", "applies to process conditions")]
    [InlineData("rules:\n  - id: x\n    match: {process-names: [sh]}\n    allow: [{function: f, path: /a, reason: r}]\n", "applies to read-paths")]
    [InlineData("rules:\n  - id: x\n    match: {process-names: [sh]}\n    allow: [{function: f, path: /a, command-line: sh, reason: r}]\n", "one of command-line or path")]
    public void Bad_rule_files_are_clear_errors(string yaml, string expected)
    {
        var error = Assert.Throws<RuleFileException>(() => RuleSet.Parse(yaml, "test.yml"));
        Assert.Contains("test.yml", error.Message, StringComparison.Ordinal);
        Assert.Contains(expected, error.Message, StringComparison.Ordinal);
    }
}
