using FaaSMon.Core;

namespace FaaSMon.Classifier.Features;

/// <summary>
/// Generated provenance graphs shaped like hello-retail invocations, for the classifier bench and tests until the grapher
/// produces real ones. Benign graphs vary in size and sometimes spawn a helper process, so "a child process" alone does not
/// give an attack away; attacks add one family's pattern to an otherwise benign graph.
/// </summary>
internal static class SyntheticGraphs
{
    public const string Benign = "benign";

    /// <summary>A file written by an earlier invocation, then executed (container reuse).</summary>
    public const string InheritedExec = "inherited-exec";

    /// <summary>A shell under the function process that fetches from outside.</summary>
    public const string Shell = "shell";

    /// <summary>Reads the function's secrets and sends them out.</summary>
    public const string SecretTheft = "secret-theft";

    public static IReadOnlyList<string> AttackFamilies { get; } = [InheritedExec, Shell, SecretTheft];

    public static ProvenanceGraph Create(Random random, string family, int nodes = 40)
    {
        var builder = new Builder(random, $"{family}-{random.Next():x8}");
        var function = builder.Node(NodeKind.Function, "product-catalog", new() { ["instance"] = "product-catalog-0" });
        var invocation = builder.Node(NodeKind.Invocation, "call", new() { ["callId"] = Guid.NewGuid().ToString("N") });
        var node = builder.Process("node", "/usr/local/bin/node");
        builder.Edge(function, invocation, EdgeKind.Invoke);
        builder.Edge(builder.Socket("10.62.0.2:8080"), node, EdgeKind.Recv, random.Next(1, 4));
        builder.Edge(node, builder.Socket("10.62.0.2:8080"), EdgeKind.Send, random.Next(1, 4));
        var budget = Math.Max(nodes - 8, 4);
        while (builder.Count < budget)
        {
            switch (random.Next(10))
            {
                case < 5:
                    var file = builder.File($"/home/app/node_modules/m{random.Next(500)}/index.js");
                    builder.Edge(file, node, EdgeKind.Read, random.Next(1, 30));
                    builder.Edge(node, file, EdgeKind.Open);
                    break;
                case < 7:
                    builder.Edge(node, builder.Socket($"10.62.0.{random.Next(3, 9)}:{(random.Next(2) == 0 ? 5432 : 6379)}"), EdgeKind.Connect);
                    break;
                case < 9:
                    var temporary = builder.File($"/tmp/upload-{random.Next(1000)}.jpg");
                    builder.Edge(node, temporary, EdgeKind.Write, random.Next(1, 10));
                    if (random.Next(3) == 0)
                    {
                        builder.Edge(node, temporary, EdgeKind.Unlink);
                    }

                    break;
                default:
                    // hello-retail's photo pipeline runs an image tool: benign process creation.
                    var tool = builder.Process("convert", "/usr/bin/convert");
                    builder.Edge(node, tool, EdgeKind.Fork);
                    builder.Edge(tool, builder.File("/usr/bin/convert"), EdgeKind.Execve);
                    builder.Edge(builder.File($"/tmp/upload-{random.Next(1000)}.jpg"), tool, EdgeKind.Read, random.Next(1, 5));
                    break;
            }
        }

        switch (family)
        {
            case Benign:
                break;
            case InheritedExec:
                var earlier = builder.Node(NodeKind.Invocation, "earlier call", new() { ["callId"] = Guid.NewGuid().ToString("N") });
                var payload = builder.File("/tmp/.cache/x");
                builder.Edge(earlier, payload, EdgeKind.Inherits);
                var dropped = builder.Process("x", "/tmp/.cache/x");
                builder.Edge(node, dropped, EdgeKind.Fork);
                builder.Edge(dropped, payload, EdgeKind.Execve);
                builder.Edge(dropped, builder.Socket($"203.0.113.{random.Next(1, 250)}:4444"), EdgeKind.Connect);
                break;
            case Shell:
                var shell = builder.Process(random.Next(2) == 0 ? "sh" : "bash", "/bin/sh");
                builder.Edge(node, shell, EdgeKind.Fork);
                builder.Edge(shell, builder.File("/bin/sh"), EdgeKind.Execve);
                var curl = builder.Process("curl", "/usr/bin/curl");
                builder.Edge(shell, curl, EdgeKind.Fork);
                builder.Edge(curl, builder.File("/usr/bin/curl"), EdgeKind.Execve);
                builder.Edge(curl, builder.Socket($"198.51.100.{random.Next(1, 250)}:80"), EdgeKind.Connect);
                break;
            case SecretTheft:
                var secret = builder.File("/var/openfaas/secrets/payment-api-key");
                builder.Edge(secret, node, EdgeKind.Read);
                builder.Edge(builder.File("/proc/1/environ"), node, EdgeKind.Read);
                builder.Edge(node, builder.Socket($"198.51.100.{random.Next(1, 250)}:443"), EdgeKind.Connect);
                break;
            default:
                throw new ArgumentException($"unknown family {family}", nameof(family));
        }

        return builder.Build(family);
    }

    /// <summary>A labelled dataset: <paramref name="benign"/> benign graphs and <paramref name="perFamily"/> of each attack family.</summary>
    public static IReadOnlyList<ProvenanceGraph> Dataset(int seed, int benign, int perFamily, int minNodes = 20, int maxNodes = 80)
    {
        var random = new Random(seed);
        var graphs = new List<ProvenanceGraph>();
        graphs.AddRange(Enumerable.Range(0, benign).Select(_ => Create(random, Benign, random.Next(minNodes, maxNodes + 1))));
        foreach (var family in AttackFamilies)
        {
            graphs.AddRange(Enumerable.Range(0, perFamily).Select(_ => Create(random, family, random.Next(minNodes, maxNodes + 1))));
        }

        return graphs;
    }

    private sealed class Builder(Random random, string graphId)
    {
        private readonly List<GraphNode> _nodes = [];
        private readonly List<GraphEdge> _edges = [];
        private readonly Dictionary<(NodeKind, string), int> _byLabel = [];
        private long _time = 1_000_000;

        public int Count => _nodes.Count;

        public int Node(NodeKind kind, string label, Dictionary<string, string> attributes)
        {
            var id = _nodes.Count;
            _nodes.Add(new GraphNode(id, kind, label, attributes));
            return id;
        }

        public int Process(string name, string exe) =>
            Node(NodeKind.Process, name, new() { ["pid"] = random.Next(100, 30000).ToString(System.Globalization.CultureInfo.InvariantCulture), ["exe"] = exe });

        public int File(string path) => Shared(NodeKind.File, path, "path");

        public int Socket(string remote) => Shared(NodeKind.Socket, remote, "remote");

        public void Edge(int source, int target, EdgeKind kind, int count = 1)
        {
            var first = _time += random.Next(1_000, 100_000);
            _edges.Add(new GraphEdge(source, target, kind, kind.ToString().ToLowerInvariant(), first, first + (count * 1_000), count));
        }

        public ProvenanceGraph Build(string label) =>
            new(graphId, GraphScope.Invocation, Guid.NewGuid().ToString("N"), null, "product-catalog", "product-catalog-0", _nodes, _edges) { Label = label };

        private int Shared(NodeKind kind, string label, string attribute)
        {
            if (!_byLabel.TryGetValue((kind, label), out var id))
            {
                id = Node(kind, label, new() { [attribute] = label });
                _byLabel[(kind, label)] = id;
            }

            return id;
        }
    }
}
