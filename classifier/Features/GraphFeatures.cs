using FaaSMon.Core;

namespace FaaSMon.Classifier.Features;

/// <summary>A graph that cannot be classified: what is wrong with it, by graph id.</summary>
internal sealed class InvalidGraphException(string graphId, string problem)
    : Exception($"provenance graph {graphId}: {problem}")
{
    public string GraphId { get; } = graphId;
}

/// <summary>
/// Node features and typed edges of one graph, ready to batch. Layout version 1, per node:
/// node-kind one-hot · log(1 + incoming edge count) per edge kind · the same for outgoing · log(1 + in-degree), log(1 + out-degree)
/// · inherited-state flag (the node touches an <see cref="EdgeKind.Inherits"/> edge) · what the node's name says
/// (<see cref="NameFlags"/>: secret, temporary, system-binary and /proc files; shells and programs run from writable
/// folders; sockets to public addresses) · how the node behaved in context (<see cref="BehaviourColumns"/>, layout 2).
/// Counts are logs because one process can issue thousands of reads while one execve decides the verdict. Name flags
/// exist because structure alone cannot tell a read of a secret from a read of a module file. Behaviour flags exist
/// because some attack steps are structurally the function's own work: a forged call differs from a real one only in
/// how it reached the function (no trace context), and a planted file only in being run later.
/// Edges go both ways for message passing; a reversed edge has type <c>kind + EdgeKinds</c>, so direction is not lost.
/// </summary>
internal sealed record GraphFeatures(string GraphId, int NodeCount, float[] X, long[] Source, long[] Target, long[] EdgeType, int[] NodeIds)
{
    public static readonly int NodeKinds = Enum.GetValues<NodeKind>().Length;
    public static readonly int EdgeKinds = Enum.GetValues<EdgeKind>().Length;

    /// <summary>Bumped whenever the meaning of a feature column changes; model files name the layout they were trained on.</summary>
    public const int LayoutVersion = 2;

    /// <summary>Columns derived from a node's path, executable or remote address.</summary>
    public const int NameFlags = 7;

    /// <summary>
    /// Columns of what a node did in this graph: for the invocation, how the call arrived (no calling function,
    /// without trace context, read-only method, error status) and what its request target carried (code characters in
    /// the decoded query, log(1 + its length)); for a process, whether it ran a file written, renamed, made executable or
    /// inherited here, and whether a process other than the function's own connected out; for a file, whether it was run
    /// after being written or inherited here.
    /// </summary>
    public const int BehaviourColumns = 9;

    public static int FeatureCount { get; } = NodeKinds + (2 * EdgeKinds) + 3 + NameFlags + BehaviourColumns;

    /// <summary>Edge types as message passing sees them: each kind forwards and reversed.</summary>
    public static int RelationCount { get; } = 2 * EdgeKinds;

    /// <exception cref="InvalidGraphException">Empty graph, duplicate node ids, edges naming missing nodes, unknown kinds.</exception>
    public static GraphFeatures From(ProvenanceGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var id = graph.GraphId ?? "(no id)";
        if (graph.Nodes is null || graph.Nodes.Count == 0)
        {
            throw new InvalidGraphException(id, "the graph has no nodes");
        }

        var index = new Dictionary<int, int>(graph.Nodes.Count);
        for (var i = 0; i < graph.Nodes.Count; i++)
        {
            var node = graph.Nodes[i];
            if (!Enum.IsDefined(node.Kind))
            {
                throw new InvalidGraphException(id, $"node {node.Id} has unknown kind {(int)node.Kind}");
            }

            if (!index.TryAdd(node.Id, i))
            {
                throw new InvalidGraphException(id, $"node id {node.Id} appears twice");
            }
        }

        var n = graph.Nodes.Count;
        var width = FeatureCount;
        var x = new float[n * width];
        var inCounts = new int[n * EdgeKinds];
        var outCounts = new int[n * EdgeKinds];
        var inherited = new bool[n];
        var edges = graph.Edges ?? [];
        var source = new long[2 * edges.Count];
        var target = new long[2 * edges.Count];
        var type = new long[2 * edges.Count];
        for (var e = 0; e < edges.Count; e++)
        {
            var edge = edges[e];
            if (!Enum.IsDefined(edge.Kind))
            {
                throw new InvalidGraphException(id, $"edge {edge.Source}→{edge.Target} has unknown kind {(int)edge.Kind}");
            }

            if (!index.TryGetValue(edge.Source, out var s) || !index.TryGetValue(edge.Target, out var t))
            {
                throw new InvalidGraphException(id, $"edge {edge.Source}→{edge.Target} ({edge.Kind}) names a node that is not in the graph");
            }

            var kind = (int)edge.Kind;
            outCounts[(s * EdgeKinds) + kind]++;
            inCounts[(t * EdgeKinds) + kind]++;
            if (edge.Kind == EdgeKind.Inherits)
            {
                inherited[s] = inherited[t] = true;
            }

            source[2 * e] = s;
            target[2 * e] = t;
            type[2 * e] = kind;
            source[(2 * e) + 1] = t;
            target[(2 * e) + 1] = s;
            type[(2 * e) + 1] = kind + EdgeKinds;
        }

        var nodeIds = new int[n];
        for (var i = 0; i < n; i++)
        {
            var row = i * width;
            nodeIds[i] = graph.Nodes[i].Id;
            x[row + (int)graph.Nodes[i].Kind] = 1f;
            int inDegree = 0, outDegree = 0;
            for (var k = 0; k < EdgeKinds; k++)
            {
                var inCount = inCounts[(i * EdgeKinds) + k];
                var outCount = outCounts[(i * EdgeKinds) + k];
                inDegree += inCount;
                outDegree += outCount;
                x[row + NodeKinds + k] = MathF.Log(1 + inCount);
                x[row + NodeKinds + EdgeKinds + k] = MathF.Log(1 + outCount);
            }

            x[row + NodeKinds + (2 * EdgeKinds)] = MathF.Log(1 + inDegree);
            x[row + NodeKinds + (2 * EdgeKinds) + 1] = MathF.Log(1 + outDegree);
            x[row + NodeKinds + (2 * EdgeKinds) + 2] = inherited[i] ? 1f : 0f;
            WriteNameFlags(graph.Nodes[i], x.AsSpan(row + NodeKinds + (2 * EdgeKinds) + 3, NameFlags));
        }

        WriteBehaviourColumns(graph, index, x, width, NodeKinds + (2 * EdgeKinds) + 3 + NameFlags);

        return new GraphFeatures(id, n, x, source, target, type, nodeIds);
    }

    private static readonly string[] SecretPrefixes = ["/var/openfaas/secrets/", "/run/secrets/", "/etc/shadow", "/root/.ssh/"];
    private static readonly string[] TemporaryPrefixes = ["/tmp/", "/dev/shm/", "/var/tmp/"];
    private static readonly string[] SystemBinaryPrefixes = ["/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/"];
    private static readonly string[] Shells = ["sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"];

    private static void WriteNameFlags(GraphNode node, Span<float> flags)
    {
        static float Flag(bool value) => value ? 1f : 0f;
        static bool Under(string path, string[] prefixes) => prefixes.Any(p => path.StartsWith(p, StringComparison.Ordinal));
        switch (node.Kind)
        {
            case NodeKind.File:
                var path = node.Attributes?.GetValueOrDefault("path") ?? node.Label;
                flags[0] = Flag(Under(path, SecretPrefixes) || (path.StartsWith("/proc/", StringComparison.Ordinal) && path.EndsWith("/environ", StringComparison.Ordinal)));
                flags[1] = Flag(Under(path, TemporaryPrefixes));
                flags[2] = Flag(Under(path, SystemBinaryPrefixes));
                flags[3] = Flag(path.StartsWith("/proc/", StringComparison.Ordinal));
                break;
            case NodeKind.Process:
                var exe = node.Attributes?.GetValueOrDefault("exe") ?? node.Label;
                flags[4] = Flag(Shells.Contains(Path.GetFileName(exe)));
                flags[5] = Flag(Under(exe, TemporaryPrefixes));
                break;
            case NodeKind.Socket:
                var remote = node.Attributes?.GetValueOrDefault("remote") ?? node.Label;
                flags[6] = Flag(IsPublic(remote));
                break;
            default:
                break;
        }
    }

    private static readonly EdgeKind[] Planting = [EdgeKind.Write, EdgeKind.Rename, EdgeKind.Chmod, EdgeKind.Inherits];

    /// <summary>
    /// Context columns, <see cref="BehaviourColumns"/>. Only the invocation the graph is about (role <c>self</c>) gets the
    /// call columns: the earlier invocations a file was inherited from (role <c>writer</c>) are placeholders. Ids such as
    /// <c>callerCallId</c> are never features, only whether a caller was named.
    /// </summary>
    private static void WriteBehaviourColumns(ProvenanceGraph graph, Dictionary<int, int> index, float[] x, int width, int offset)
    {
        var planted = new HashSet<int>();
        foreach (var edge in graph.Edges ?? [])
        {
            if (Planting.Contains(edge.Kind))
            {
                planted.Add(index[edge.Target]);
            }
        }

        foreach (var edge in graph.Edges ?? [])
        {
            var source = index[edge.Source];
            var target = index[edge.Target];
            if (edge.Kind == EdgeKind.Execve && planted.Contains(target))
            {
                x[(source * width) + offset + 4] = 1f;
                x[(target * width) + offset + 6] = 1f;
            }
            else if (edge.Kind == EdgeKind.Connect && graph.Nodes[source] is { Kind: NodeKind.Process } process
                && process.Attributes?.GetValueOrDefault("role") != "function")
            {
                x[(source * width) + offset + 5] = 1f;
            }
        }

        for (var i = 0; i < graph.Nodes.Count; i++)
        {
            var node = graph.Nodes[i];
            if (node.Kind != NodeKind.Invocation || node.Attributes?.GetValueOrDefault("role") != "self")
            {
                continue;
            }

            var attributes = node.Attributes;
            var flags = x.AsSpan((i * width) + offset, BehaviourColumns);
            flags[0] = attributes.ContainsKey("callerFunction") ? 0f : 1f;
            flags[1] = attributes.GetValueOrDefault("untracedCall") == "true" ? 1f : 0f;
            flags[2] = attributes.GetValueOrDefault("method") is "GET" or "HEAD" ? 1f : 0f;
            flags[3] = int.TryParse(attributes.GetValueOrDefault("status"), out var status) && status >= 400 ? 1f : 0f;
            var query = DecodedQuery(attributes.GetValueOrDefault("path"));
            flags[7] = query.AsSpan().IndexOfAny(CodeCharacters) >= 0 ? 1f : 0f;
            flags[8] = MathF.Log(1 + query.Length);
        }
    }

    /// <summary>
    /// Characters that make a query parameter code rather than data: calls, blocks, statements, template and shell
    /// substitution, markup. A query that carries them is how code reaches an eval, a shell or a template.
    /// </summary>
    private static readonly System.Buffers.SearchValues<char> CodeCharacters = System.Buffers.SearchValues.Create("(){};`$<>");

    /// <summary>The query of a request target, percent-decoded (as the function sees it); empty when there is none.</summary>
    private static string DecodedQuery(string? target)
    {
        var start = target?.IndexOf('?', StringComparison.Ordinal) ?? -1;
        return start < 0 ? "" : Uri.UnescapeDataString(target![(start + 1)..].Replace('+', ' '));
    }

    /// <summary>Whether a remote "ip:port" is on the internet rather than loopback, private or link-local.</summary>
    private static bool IsPublic(string remote)
    {
        if (!System.Net.IPEndPoint.TryParse(remote, out var endpoint))
        {
            return false;
        }

        var address = endpoint.Address.IsIPv4MappedToIPv6 ? endpoint.Address.MapToIPv4() : endpoint.Address;
        if (System.Net.IPAddress.IsLoopback(address) || address.IsIPv6LinkLocal || address.IsIPv6UniqueLocal || address.IsIPv6SiteLocal)
        {
            return false;
        }

        var b = address.GetAddressBytes();
        return address.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork
            || !(b[0] == 10 || (b[0] == 172 && b[1] >= 16 && b[1] < 32) || (b[0] == 192 && b[1] == 168) || (b[0] == 169 && b[1] == 254) || b[0] == 0);
    }
}
