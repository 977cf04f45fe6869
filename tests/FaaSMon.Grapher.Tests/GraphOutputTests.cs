using System.Globalization;
using System.Xml.Linq;
using FaaSMon.Core;
using FaaSMon.Grapher.Dataset;
using FaaSMon.Tracer;
using static FaaSMon.Grapher.Tests.GraphAssert;

namespace FaaSMon.Grapher.Tests;

public sealed class GraphOutputTests
{
    [Fact]
    public void A_trace_graph_joins_the_invocations_of_one_trace_with_invoke_edges_along_the_parent_spans()
    {
        var trace = TraceIds.NewTraceId();
        var (rootSpan, childSpan) = ("1111111111111111", "2222222222222222");
        var parent = new Events(pid: 100, function: "product-purchase", instance: "purchase-1");
        var child = new Events(pid: 200, function: "product-purchase-authenticate", instance: "auth-1");
        var h = new Harness();
        var rootRecord = AttributionTests.Record("c", "product-purchase", "/function/product-purchase", null, parent.Time, parent.Time + TimeSpan.FromSeconds(1), traceId: trace, spanId: rootSpan);
        var childRecord = AttributionTests.Record("c", "product-purchase-authenticate", "/function/product-purchase-authenticate", null, parent.Time, parent.Time + TimeSpan.FromSeconds(1),
            parentSpan: rootSpan, traceId: trace, spanId: childSpan);
        h.Attributor.Add(rootRecord);
        h.Attributor.Add(childRecord);
        h.Feed(
            parent.Request(20, "c", traceparent: $"00-{trace}-{rootSpan}-01"),
            child.Request(20, "c", traceparent: $"00-{trace}-{childSpan}-01"),
            child.OpenRead("/etc/passwd"),
            child.Response(20),
            parent.Response(20));
        h.Settle(parent.Time);
        Assert.Equal(2, h.Finished.Count);

        var graph = TraceAssembler.Build(trace, h.Finished);
        Assert.Equal(GraphScope.Trace, graph.Scope);
        Assert.Equal("product-purchase", graph.Function);
        Assert.Equal(h.Finished.Sum(f => f.Graph.Nodes.Count), graph.Nodes.Count);
        var invoke = Assert.Single(graph.Edges, e => e.Kind == EdgeKind.Invoke && e.Syscall == "call");
        Assert.Equal("product-purchase", graph.Nodes[invoke.Source].Attributes!["function"]);
        Assert.Equal("product-purchase-authenticate", graph.Nodes[invoke.Target].Attributes!["function"]);
        Assert.All(graph.Nodes.Select((n, i) => (n, i)), p => Assert.Equal(p.i, p.n.Id));

        var emitted = new List<ProvenanceGraph>();
        var assembler = new TraceAssembler(new GrapherOptions { TraceSettle = TimeSpan.FromSeconds(1) }, new GrapherCounters(), emitted.Add);
        foreach (var f in h.Finished)
        {
            assembler.Add(f, parent.Time);
        }

        assembler.Advance(parent.Time + TimeSpan.FromMilliseconds(500));
        Assert.Empty(emitted);
        assembler.Advance(parent.Time + TimeSpan.FromSeconds(2));
        Assert.Single(emitted);
    }

    [Fact]
    public void Exports_are_valid_json_graphml_and_dot_even_with_hostile_labels()
    {
        var ev = new Events();
        var hostile = "/tmp/evil.sh\";chmod +x x;\u0001\u001b[31m<script>&--";
        var h = new Harness().Feed(ev.Request(20, "x"), ev.OpenWrite(hostile), ev.Response(20));
        h.Settle(ev.Time);
        var graph = h.Graph("x");

        var json = ProvenanceGraphJson.Deserialize(ProvenanceGraphExport.Write(graph, GraphFormat.Json));
        Assert.Equal(graph.Nodes.Count, json.Nodes.Count);
        Assert.Contains(json.Nodes, n => n.Label == hostile);

        var graphMl = ProvenanceGraphExport.Write(graph, GraphFormat.GraphMl);
        Assert.StartsWith("<?xml version=\"1.0\" encoding=\"utf-8\"?>", graphMl, StringComparison.Ordinal); // what a file of this text holds
        var xml = XDocument.Parse(graphMl);
        XNamespace ns = "http://graphml.graphdrawing.org/xmlns";
        Assert.Equal(graph.Nodes.Count, xml.Descendants(ns + "node").Count());
        Assert.Equal(graph.Edges.Count, xml.Descendants(ns + "edge").Count());
        var keys = xml.Descendants(ns + "key").Select(k => (string)k.Attribute("id")!).ToHashSet();
        Assert.All(xml.Descendants(ns + "data"), d => Assert.Contains((string)d.Attribute("key")!, keys));

        var dot = ProvenanceGraphExport.Write(graph, GraphFormat.Dot);
        Assert.StartsWith("digraph ", dot, StringComparison.Ordinal);
        Assert.Equal(graph.Edges.Count, dot.Split('\n').Count(l => l.Contains(" -> ", StringComparison.Ordinal)));
        Assert.DoesNotContain('\u0001', dot);
        Assert.Contains("\\\";chmod", dot, StringComparison.Ordinal); // the quote is escaped, the label stays one string
    }

    [Fact]
    public void Real_strace_recordings_make_one_graph_per_request_with_the_store_and_the_chain_calls()
    {
        var parser = new StraceLineParser(512);
        var h = new Harness();
        var lines = 0;
        foreach (var line in File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Fixtures", "purchase-full.strace")))
        {
            lines++;
            if (parser.Parse(line, out var evt) == StraceLineKind.Event && evt is not null)
            {
                h.Attributor.Add(evt with { Function = "product-purchase", Instance = "product-purchase-9f30ce" });
            }
        }

        h.Attributor.FlushAll();
        Assert.True(lines > 1000);
        var requests = File.ReadLines(Path.Combine(AppContext.BaseDirectory, "Fixtures", "purchase-full.strace")).Count(l => l.Contains("\"POST / HTTP/1.1\\r\\nAccept", StringComparison.Ordinal)); // a read of a request, whole or resumed
        Assert.Equal(requests, h.Finished.Count); // one graph per request the process read
        Assert.All(h.Finished, f => Assert.Equal("response", Self(f.Graph).Attributes!["closed"]));
        var graph = Assert.Single(h.Finished, f => f.Graph.CallId == "45f2c958-f7c6-453c-823c-a873175af933").Graph;
        // the orchestrator called its chain through the gateway on loopback
        Assert.True(HasEdge(graph, EdgeKind.Connect, n => n.Kind == NodeKind.Process, n => n.Label == "127.0.0.1:18099"), Describe(graph));
        Assert.Contains(h.Finished, f => f.Graph.Nodes.Any(n => n.Kind == NodeKind.File && n.Label.Contains("<instance>", StringComparison.Ordinal)));
        Assert.DoesNotContain(h.Finished, f => f.Graph.Nodes.Any(n => n.Kind == NodeKind.File && n.Label.Contains("9f30ce", StringComparison.Ordinal)));
        Assert.True(h.Counters.Idle > 0); // the start-up before the request is nobody's
    }

    [Fact]
    public void The_dataset_is_labelled_from_the_ground_truth_with_a_manifest_the_classifier_reads()
    {
        var dir = Path.Combine("/var/lib/faasmon/tests", $"dataset-{Guid.NewGuid():N}");
        try
        {
            var writer = new DatasetWriter(dir);
            var attackTrace = TraceIds.NewTraceId();
            writer.Write(Graph("inv-1", GraphScope.Invocation, "root-attack", attackTrace, "product-purchase-get-price"));
            writer.Write(Graph("inv-2", GraphScope.Invocation, "root-attack", attackTrace, "product-purchase-publish")); // the hop the attack moved to
            writer.Write(Graph("inv-3", GraphScope.Invocation, "root-benign", null, "product-catalog-api"));
            writer.Write(Graph("inv-4", GraphScope.Invocation, "fresh", null, "product-purchase-publish", callerCallId: "root-attack", callerFunction: "product-purchase-get-price"));
            writer.Write(Graph("inv-5", GraphScope.Invocation, "not-ours", null, "product-catalog-api"));
            writer.Write(Graph($"trace-{attackTrace}", GraphScope.Trace, "root-attack", attackTrace, "product-purchase-get-price"));
            var labels = new GroundTruthLabels(
            [
                new GroundTruthEntry("root-attack", attackTrace, "product-purchase-get-price", "lateral-movement", "lateral-movement-1", "trigger"),
                new GroundTruthEntry("root-benign", null, "product-catalog-api", "benign", null, null),
            ]);

            var counts = writer.Label(labels);
            Assert.Equal(3, counts.Invocations["lateral-movement"]);
            Assert.Equal(1, counts.Invocations["benign"]);
            Assert.Equal(1, counts.Traces["lateral-movement"]);
            Assert.Equal(1, counts.Unlabelled);
            Assert.False(File.Exists(Path.Combine(dir, "invocations", "product-catalog-api", "inv-5.json")));

            using var manifest = System.Text.Json.JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "invocations", "manifest.json")));
            var listed = manifest.RootElement.GetProperty("labels").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetString());
            Assert.Equal(4, listed.Count);
            foreach (var (relative, label) in listed)
            {
                var graph = ProvenanceGraphJson.Deserialize(File.ReadAllText(Path.Combine(dir, "invocations", relative)));
                Assert.Equal(label, graph.Label);
            }
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    [Fact]
    public void Ground_truth_lines_that_are_not_json_are_counted_not_fatal()
    {
        var file = Path.Combine("/var/lib/faasmon/tests", $"gt-{Guid.NewGuid():N}.jsonl");
        Directory.CreateDirectory(Path.GetDirectoryName(file)!);
        try
        {
            File.WriteAllLines(file, ["""{"callId":"a","label":"benign","function":"f"}""", "not json", """{"label":"benign"}""", "", """[1,2]"""]);
            var labels = GroundTruthLabels.Load(file, out var skipped);
            Assert.Equal(1, labels.Count);
            Assert.Equal(3, skipped);
            Assert.Equal("benign", labels.ForInvocation("a", null, "f"));
            Assert.Null(labels.ForInvocation("b", null, "f"));
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static ProvenanceGraph Graph(string id, GraphScope scope, string callId, string? traceId, string function, string? callerCallId = null, string? callerFunction = null)
    {
        var self = new Dictionary<string, string> { ["role"] = "self", ["callId"] = callId };
        if (callerCallId is not null)
        {
            self["callerCallId"] = callerCallId;
            self["callerFunction"] = callerFunction!;
        }

        return new ProvenanceGraph(id, scope, callId, traceId, function, function + "-1",
            [new GraphNode(0, NodeKind.Invocation, function, self), new GraphNode(1, NodeKind.Process, "function-process", new Dictionary<string, string> { ["pid"] = 1.ToString(CultureInfo.InvariantCulture) })],
            [new GraphEdge(1, 0, EdgeKind.Recv, "read", 1, 1)]);
    }
}
