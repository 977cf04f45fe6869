using FaaSMon.Classifier.Features;
using FaaSMon.Core;

namespace FaaSMon.Classifier.Tests;

public sealed class FeatureTests
{
    private static ProvenanceGraph Graph(IReadOnlyList<GraphNode> nodes, IReadOnlyList<GraphEdge> edges) =>
        new("g1", GraphScope.Invocation, "c1", null, "f", null, nodes, edges);

    private static GraphEdge Edge(int source, int target, EdgeKind kind, int count = 1) => new(source, target, kind, kind.ToString(), 1, 2, count);

    [Fact]
    public void Node_kinds_edge_counts_degrees_and_inherited_flag_land_in_their_columns()
    {
        var graph = Graph(
            [
                new(10, NodeKind.Process, "node", new Dictionary<string, string> { ["exe"] = "/usr/local/bin/node" }),
                new(11, NodeKind.File, "/tmp/x", new Dictionary<string, string> { ["path"] = "/tmp/x" }),
                new(12, NodeKind.Invocation, "earlier"),
                new(13, NodeKind.Socket, "203.0.113.9:443"),
            ],
            [Edge(10, 11, EdgeKind.Execve), Edge(12, 11, EdgeKind.Inherits), Edge(10, 11, EdgeKind.Write, 3), Edge(10, 13, EdgeKind.Connect)]);
        var features = GraphFeatures.From(graph);
        var width = GraphFeatures.FeatureCount;
        float At(int node, int column) => features.X[(node * width) + column];
        int nk = GraphFeatures.NodeKinds, ek = GraphFeatures.EdgeKinds;

        Assert.Equal(4, features.NodeCount);
        Assert.Equal([10, 11, 12, 13], features.NodeIds);
        Assert.Equal(1f, At(0, (int)NodeKind.Process));
        Assert.Equal(1f, At(1, (int)NodeKind.File));
        Assert.Equal(MathF.Log(2), At(0, nk + ek + (int)EdgeKind.Execve));   // process: one outgoing execve
        Assert.Equal(MathF.Log(2), At(1, nk + (int)EdgeKind.Execve));        // file: one incoming execve
        Assert.Equal(MathF.Log(2), At(1, nk + (int)EdgeKind.Write));         // collapsed edges count once per edge record
        Assert.Equal(MathF.Log(1 + 3), At(1, nk + (2 * ek)));                // file in-degree 3
        Assert.Equal(1f, At(1, nk + (2 * ek) + 2));                          // inherited
        Assert.Equal(0f, At(0, nk + (2 * ek) + 2));
        Assert.Equal(1f, At(1, nk + (2 * ek) + 3 + 1));                      // /tmp file
        Assert.Equal(1f, At(3, nk + (2 * ek) + 3 + 6));                      // public address

        // Every edge travels both ways; the reverse carries its own type.
        Assert.Equal(8, features.Source.Length);
        Assert.Equal([0L, 1L], [features.Source[0], features.Target[0]]);
        Assert.Equal([1L, 0L], [features.Source[1], features.Target[1]]);
        Assert.Equal((long)EdgeKind.Execve + ek, features.EdgeType[1]);
    }

    [Fact]
    public void Behaviour_flags_say_how_the_call_arrived_and_what_ran_a_planted_file()
    {
        Dictionary<string, string> A(params (string Key, string Value)[] pairs) => pairs.ToDictionary(p => p.Key, p => p.Value);
        var graph = Graph(
            [
                new(0, NodeKind.Invocation, "forged", A(("role", "self"), ("method", "GET"), ("status", "502"), ("untracedCall", "true"), ("callerCallId", "c0"),
                    ("path", "/products?sort=%28a%2Cb%29%3D%3Ea.price"))),
                new(1, NodeKind.Invocation, "traced", A(("role", "self"), ("method", "POST"), ("status", "200"), ("callerFunction", "f0"), ("callerCallId", "c0"),
                    ("path", "/products?category=cameras"))),
                new(2, NodeKind.Invocation, "earlier", A(("role", "writer"), ("method", "GET"))),
                new(3, NodeKind.Process, "function-process", A(("role", "function"))),
                new(4, NodeKind.Process, "sh", A(("exe", "/bin/sh"))),
                new(5, NodeKind.File, "/tmp/evil.sh", A(("content", "script"))),
                new(6, NodeKind.File, "/bin/sh"),
                new(7, NodeKind.Socket, "127.0.0.1:9000"),
                new(8, NodeKind.Socket, "127.0.0.1:9001"),
                new(9, NodeKind.File, "/tmp/a.png", A(("content", "image"))),
                new(10, NodeKind.File, "/tmp/a.out", A(("content", "elf"))),
            ],
            [
                Edge(3, 5, EdgeKind.Rename), Edge(3, 4, EdgeKind.Fork), Edge(4, 6, EdgeKind.Execve), Edge(4, 5, EdgeKind.Execve),
                Edge(4, 7, EdgeKind.Connect), Edge(3, 8, EdgeKind.Connect), Edge(3, 9, EdgeKind.Write), Edge(3, 10, EdgeKind.Write),
            ]);
        var features = GraphFeatures.From(graph);
        var offset = GraphFeatures.NodeKinds + (2 * GraphFeatures.EdgeKinds) + 3 + GraphFeatures.NameFlags;
        float[] Flags(int node) => features.X.AsSpan((node * GraphFeatures.FeatureCount) + offset, GraphFeatures.BehaviourColumns).ToArray();

        // No calling function, untraced, GET, error status; a decoded query "sort=(a,b)=>a.price" holds code.
        Assert.Equal([1f, 1f, 1f, 1f, 0f, 0f, 0f, 1f, MathF.Log(1 + "sort=(a,b)=>a.price".Length), 0f], Flags(0));
        Assert.Equal([0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, MathF.Log(1 + "category=cameras".Length), 0f], Flags(1));   // a traced POST from a function
        Assert.Equal(new float[10], Flags(2));   // a writer placeholder says nothing about this call
        Assert.Equal(new float[10], Flags(3));   // the function's own connect is its job
        Assert.Equal([0f, 0f, 0f, 0f, 1f, 1f, 0f, 0f, 0f, 0f], Flags(4));   // ran the renamed file and connected out
        Assert.Equal([0f, 0f, 0f, 0f, 0f, 0f, 1f, 0f, 0f, 1f], Flags(5));   // a script written here, then run
        Assert.Equal(new float[10], Flags(6));   // /bin/sh was run but never written
        Assert.Equal(new float[10], Flags(9));   // an image is data
        Assert.Equal([0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 0f, 1f], Flags(10));   // a program written, not (yet) run
    }

    [Fact]
    public void An_empty_graph_is_a_clear_error()
    {
        var error = Assert.Throws<InvalidGraphException>(() => GraphFeatures.From(Graph([], [])));
        Assert.Contains("g1", error.Message, StringComparison.Ordinal);
        Assert.Contains("no nodes", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_edge_naming_a_missing_node_is_a_clear_error()
    {
        var error = Assert.Throws<InvalidGraphException>(() => GraphFeatures.From(Graph([new(1, NodeKind.Process, "p")], [Edge(1, 7, EdgeKind.Read)])));
        Assert.Contains("1→7", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unknown_node_or_edge_kinds_and_duplicate_ids_are_clear_errors()
    {
        Assert.Contains("unknown kind 42", Assert.Throws<InvalidGraphException>(() => GraphFeatures.From(Graph([new(1, (NodeKind)42, "?")], []))).Message, StringComparison.Ordinal);
        Assert.Contains("unknown kind 99", Assert.Throws<InvalidGraphException>(() =>
            GraphFeatures.From(Graph([new(1, NodeKind.Process, "p"), new(2, NodeKind.File, "f")], [Edge(1, 2, (EdgeKind)99)]))).Message, StringComparison.Ordinal);
        Assert.Contains("appears twice", Assert.Throws<InvalidGraphException>(() =>
            GraphFeatures.From(Graph([new(1, NodeKind.Process, "p"), new(1, NodeKind.File, "f")], []))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Nodes_numbered_in_order_get_the_same_errors()
    {
        Assert.Contains("0→7", Assert.Throws<InvalidGraphException>(() => GraphFeatures.From(Graph([new(0, NodeKind.Process, "p")], [Edge(0, 7, EdgeKind.Read)]))).Message, StringComparison.Ordinal);
        Assert.Contains("-1→0", Assert.Throws<InvalidGraphException>(() => GraphFeatures.From(Graph([new(0, NodeKind.Process, "p")], [Edge(-1, 0, EdgeKind.Read)]))).Message, StringComparison.Ordinal);
        Assert.Contains("unknown kind 42", Assert.Throws<InvalidGraphException>(() =>
            GraphFeatures.From(Graph([new(0, NodeKind.Process, "p"), new(1, (NodeKind)42, "?")], []))).Message, StringComparison.Ordinal);
        Assert.Contains("unknown kind -1", Assert.Throws<InvalidGraphException>(() =>
            GraphFeatures.From(Graph([new(0, NodeKind.Process, "p"), new(1, NodeKind.File, "f")], [Edge(0, 1, (EdgeKind)(-1))]))).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void How_the_nodes_are_numbered_and_ordered_does_not_change_a_nodes_features()
    {
        var random = new Random(3);
        foreach (var graph in SyntheticGraphs.Dataset(seed: 11, benign: 4, perFamily: 2, minNodes: 30, maxNodes: 300))
        {
            // ids 7i + 3 instead of 0..n-1, nodes shuffled: the map from ids to rows is taken instead of ids as rows.
            var renumbered = graph with
            {
                Nodes = [.. graph.Nodes.Select(n => n with { Id = (7 * n.Id) + 3 }).OrderBy(_ => random.Next())],
                Edges = [.. graph.Edges.Select(e => e with { Source = (7 * e.Source) + 3, Target = (7 * e.Target) + 3 })],
            };
            var original = GraphFeatures.From(graph);
            var other = GraphFeatures.From(renumbered);
            var width = GraphFeatures.FeatureCount;
            for (var row = 0; row < other.NodeCount; row++)
            {
                var originalRow = (other.NodeIds[row] - 3) / 7;
                Assert.Equal(original.X.AsSpan(originalRow * width, width).ToArray(), other.X.AsSpan(row * width, width).ToArray());
            }
        }
    }

    [Fact]
    public void Unknown_kinds_in_a_json_file_are_rejected_when_read()
    {
        var json = ProvenanceGraphJson.Serialize(Graph([new(1, NodeKind.Process, "p")], [])).Replace("\"process\"", "\"teapot\"", StringComparison.OrdinalIgnoreCase);
        Assert.Throws<InvalidDataException>(() => ProvenanceGraphJson.Deserialize(json));
    }
}
