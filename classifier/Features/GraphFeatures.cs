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
    public const int LayoutVersion = 3;

    /// <summary>Columns derived from a node's path, executable or remote address.</summary>
    public const int NameFlags = 7;

    /// <summary>
    /// Columns of what a node did in this graph: for the invocation, how the call arrived (no calling function,
    /// without trace context, read-only method, error status) and what its request target carried (code characters in
    /// the decoded query, log(1 + its length)); for a process, whether it ran a file written, renamed, made executable or
    /// inherited here, and whether a process other than the function's own connected out; for a file, whether it was run
    /// after being written or inherited here, and whether what was written into it is a program (a script's <c>#!</c> or
    /// ELF: the grapher's <c>content</c> attribute, layout 3).
    /// </summary>
    public const int BehaviourColumns = 10;

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

        // Kinds are numbered from 0 (the one-hot and count columns are indexed by them), so "defined" is "in range".
        var n = graph.Nodes.Count;
        var nodes = graph.Nodes;
        var sequential = true;
        for (var i = 0; i < n && sequential; i++)
        {
            sequential = nodes[i].Id == i;
        }

        // The grapher numbers nodes 0..n-1 in order, and then an id is its row: the map is only for other numberings.
        Dictionary<int, int>? index = null;
        if (!sequential)
        {
            index = new Dictionary<int, int>(n);
        }

        for (var i = 0; i < n; i++)
        {
            var node = nodes[i];
            if ((uint)node.Kind >= (uint)NodeKinds)
            {
                throw new InvalidGraphException(id, $"node {node.Id} has unknown kind {(int)node.Kind}");
            }

            if (index is not null && !index.TryAdd(node.Id, i))
            {
                throw new InvalidGraphException(id, $"node id {node.Id} appears twice");
            }
        }

        var width = FeatureCount;
        var x = new float[n * width];
        // Per-kind edge counts are counted straight into their columns (exact as floats), then turned into logs.
        var inDegrees = new int[n];
        var outDegrees = new int[n];
        var inherited = new bool[n];
        var edges = graph.Edges ?? [];
        var source = new long[2 * edges.Count];
        var target = new long[2 * edges.Count];
        var type = new long[2 * edges.Count];
        for (var e = 0; e < edges.Count; e++)
        {
            var edge = edges[e];
            if ((uint)edge.Kind >= (uint)EdgeKinds)
            {
                throw new InvalidGraphException(id, $"edge {edge.Source}→{edge.Target} has unknown kind {(int)edge.Kind}");
            }

            if (!Row(edge.Source, out var s) || !Row(edge.Target, out var t))
            {
                throw new InvalidGraphException(id, $"edge {edge.Source}→{edge.Target} ({edge.Kind}) names a node that is not in the graph");
            }

            var kind = (int)edge.Kind;
            x[(s * width) + NodeKinds + EdgeKinds + kind]++;
            x[(t * width) + NodeKinds + kind]++;
            outDegrees[s]++;
            inDegrees[t]++;
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
            var node = nodes[i];
            nodeIds[i] = node.Id;
            x[row + (int)node.Kind] = 1f;
            var counts = x.AsSpan(row + NodeKinds, 2 * EdgeKinds);
            for (var k = 0; k < counts.Length; k++)
            {
                if (counts[k] != 0f)
                {
                    counts[k] = LogOnePlus((int)counts[k]);
                }
            }

            x[row + NodeKinds + (2 * EdgeKinds)] = LogOnePlus(inDegrees[i]);
            x[row + NodeKinds + (2 * EdgeKinds) + 1] = LogOnePlus(outDegrees[i]);
            x[row + NodeKinds + (2 * EdgeKinds) + 2] = inherited[i] ? 1f : 0f;
            WriteNameFlags(node, x.AsSpan(row + NodeKinds + (2 * EdgeKinds) + 3, NameFlags));
        }

        WriteBehaviourColumns(graph, source, target, x, width, NodeKinds + (2 * EdgeKinds) + 3 + NameFlags);

        return new GraphFeatures(id, n, x, source, target, type, nodeIds);

        bool Row(int nodeId, out int row)
        {
            if (index is null)
            {
                row = nodeId;
                return (uint)nodeId < (uint)n;
            }

            return index.TryGetValue(nodeId, out row);
        }
    }

    /// <summary>log(1 + count), from a table for the small counts most nodes have (a 1k-node graph has 34k of them).</summary>
    private static float LogOnePlus(int count) => (uint)count < (uint)SmallLogs.Length ? SmallLogs[count] : MathF.Log(1 + count);

    private static readonly float[] SmallLogs = [.. Enumerable.Range(0, 256).Select(c => MathF.Log(1 + c))];

    private static readonly string[] SecretPrefixes = ["/var/openfaas/secrets/", "/run/secrets/", "/etc/shadow", "/root/.ssh/"];
    private static readonly string[] TemporaryPrefixes = ["/tmp/", "/dev/shm/", "/var/tmp/"];
    private static readonly string[] SystemBinaryPrefixes = ["/bin/", "/sbin/", "/usr/bin/", "/usr/sbin/", "/usr/local/bin/"];
    private static readonly string[] Shells = ["sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"];

    private static void WriteNameFlags(GraphNode node, Span<float> flags)
    {
        static float Flag(bool value) => value ? 1f : 0f;
        static bool Under(string path, string[] prefixes)
        {
            foreach (var prefix in prefixes)
            {
                if (path.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return true;
                }
            }

            return false;
        }

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

    /// <summary>Edges that plant a file (bits by <see cref="EdgeKind"/>): write, rename, chmod, inherits.</summary>
    private const int PlantingKinds = (1 << (int)EdgeKind.Write) | (1 << (int)EdgeKind.Rename) | (1 << (int)EdgeKind.Chmod) | (1 << (int)EdgeKind.Inherits);

    /// <summary>
    /// Context columns, <see cref="BehaviourColumns"/>. Only the invocation the graph is about (role <c>self</c>) gets the
    /// call columns: the earlier invocations a file was inherited from (role <c>writer</c>) are placeholders. Ids such as
    /// <c>callerCallId</c> are never features, only whether a caller was named.
    /// </summary>
    private static void WriteBehaviourColumns(ProvenanceGraph graph, long[] sources, long[] targets, float[] x, int width, int offset)
    {
        // Edge e of the graph is row 2e of the message edges (source → target as recorded).
        var edges = graph.Edges ?? [];
        var planted = new bool[graph.Nodes.Count];
        for (var e = 0; e < edges.Count; e++)
        {
            if ((PlantingKinds & (1 << (int)edges[e].Kind)) != 0)
            {
                planted[targets[2 * e]] = true;
            }
        }

        for (var e = 0; e < edges.Count; e++)
        {
            var edge = edges[e];
            var source = (int)sources[2 * e];
            var target = (int)targets[2 * e];
            if (edge.Kind == EdgeKind.Execve && planted[target])
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
            if (node.Kind == NodeKind.File && FileContent.IsProgram(node.Attributes?.GetValueOrDefault("content")))
            {
                x[(i * width) + offset + 9] = 1f;
                continue;
            }

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
