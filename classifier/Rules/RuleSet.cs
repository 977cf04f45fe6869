using System.Globalization;
using System.Net;
using System.Text.RegularExpressions;
using FaaSMon.Core;
using YamlDotNet.Core;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace FaaSMon.Classifier.Rules;

/// <summary>A rules file that cannot be used, with the place and the reason.</summary>
internal sealed class RuleFileException(string source, string problem, Exception? inner = null)
    : Exception($"rules {source}: {problem}", inner);

/// <summary>The YAML form of a rules file (classifier/rules/default.yml).</summary>
internal sealed class RuleFile
{
    public List<RuleDefinition> Rules { get; set; } = [];
}

internal sealed class RuleDefinition
{
    public string Id { get; set; } = "";

    public string Description { get; set; } = "";

    public RuleMatch? Match { get; set; }

    /// <summary>What one function does by design that the conditions would otherwise flag, each with the reason it is benign.</summary>
    public List<AllowEntry>? Allow { get; set; }
}

/// <summary>
/// One known benign behaviour of one function: a command line (a regular expression that must match the whole command
/// line, so a command injected after the benign one, <c>sha256sum "x";chmod +x ...</c>, still fires) or a path it reads
/// (a glob, for read-paths). Exactly one of the two.
/// </summary>
internal sealed class AllowEntry
{
    public string Function { get; set; } = "";

    public string? CommandLine { get; set; }

    public string? Path { get; set; }

    public string Reason { get; set; } = "";
}

/// <summary>Conditions; a rule fires when all that are set hold.</summary>
internal sealed class RuleMatch
{
    public List<string>? ProcessNames { get; set; }

    public bool SpawnedByProcess { get; set; }

    public bool ExecInheritedFile { get; set; }

    /// <summary>A process wrote a file whose first bytes make it a program (a script's <c>#!</c> or ELF).</summary>
    public bool WritesProgram { get; set; }

    /// <summary>The invocation was called by another function's process that did not pass on its trace context (the grapher's <c>untracedCall</c>).</summary>
    public bool UntracedCall { get; set; }

    public List<string>? ConnectOutside { get; set; }

    public List<string>? ReadPaths { get; set; }
}

/// <summary>
/// Readable rules over process lineage and events, as Falco and the eBPF paper do: they catch what the model never saw
/// and explain verdicts in words. Edge directions are not assumed (a read may point file→process or process→file), so the
/// rules stay right whichever way the grapher draws them.
/// </summary>
internal sealed class RuleSet
{
    private readonly List<CompiledRule> _rules;

    private RuleSet(List<CompiledRule> rules) => _rules = rules;

    public IReadOnlyList<string> RuleIds => [.. _rules.Select(r => r.Id)];

    /// <summary>The rules shipped in classifier/rules/default.yml, copied next to the assemblies.</summary>
    public static string DefaultPath => Path.Combine(AppContext.BaseDirectory, "rules", "default.yml");

    public static RuleSet LoadDefault() => Load(DefaultPath);

    /// <exception cref="RuleFileException">Missing file, bad YAML, unknown keys, or a rule without id or conditions.</exception>
    public static RuleSet Load(string path)
    {
        try
        {
            return Parse(File.ReadAllText(path), path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new RuleFileException(path, e.Message, e);
        }
    }

    public static RuleSet Parse(string yaml, string source = "(inline)")
    {
        RuleFile? file;
        try
        {
            file = new DeserializerBuilder().WithNamingConvention(HyphenatedNamingConvention.Instance).Build().Deserialize<RuleFile>(yaml);
        }
        catch (YamlException e)
        {
            throw new RuleFileException(source, $"line {e.Start.Line}: {e.InnerException?.Message ?? e.Message}", e);
        }

        if (file?.Rules is not { Count: > 0 })
        {
            throw new RuleFileException(source, "no rules");
        }

        var compiled = new List<CompiledRule>();
        foreach (var rule in file.Rules)
        {
            if (string.IsNullOrWhiteSpace(rule.Id))
            {
                throw new RuleFileException(source, "a rule has no id");
            }

            var match = rule.Match;
            if (match is null || (match.ProcessNames is null && !match.SpawnedByProcess && !match.ExecInheritedFile && !match.WritesProgram && !match.UntracedCall && match.ConnectOutside is null && match.ReadPaths is null))
            {
                throw new RuleFileException(source, $"rule {rule.Id} has no conditions under match");
            }

            foreach (var allowed in rule.Allow ?? [])
            {
                if (string.IsNullOrWhiteSpace(allowed.Function) || string.IsNullOrWhiteSpace(allowed.Reason)
                    || string.IsNullOrWhiteSpace(allowed.CommandLine) == string.IsNullOrWhiteSpace(allowed.Path))
                {
                    throw new RuleFileException(source, $"rule {rule.Id}: every allow entry needs function, reason and one of command-line or path");
                }

                if (allowed.CommandLine is not null && match.ProcessNames is null && !match.SpawnedByProcess)
                {
                    throw new RuleFileException(source, $"rule {rule.Id}: an allowed command-line applies to process conditions (process-names, spawned-by-process), and the rule has none");
                }

                if (allowed.Path is not null && match.ReadPaths is null)
                {
                    throw new RuleFileException(source, $"rule {rule.Id}: an allowed path applies to read-paths, and the rule has none");
                }
            }

            if (compiled.Any(c => c.Id == rule.Id))
            {
                throw new RuleFileException(source, $"rule id {rule.Id} appears twice");
            }

            compiled.Add(CompiledRule.Create(rule, source));
        }

        return new RuleSet(compiled);
    }

    public IReadOnlyList<RuleHit> Evaluate(ProvenanceGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        var view = new GraphView(graph);
        var hits = new List<RuleHit>();
        foreach (var rule in _rules)
        {
            if (rule.Evaluate(view) is { } hit)
            {
                hits.Add(hit);
            }
        }

        return hits;
    }

    /// <summary>
    /// Nodes by id and each node's edges, both directions, in graph order: one array of edges grouped by node (a counting
    /// sort), so a rule looks at a node's few edges without a list or an iterator per node.
    /// </summary>
    private sealed class GraphView
    {
        // Row of a node id (its first occurrence); null when the ids are 0..n-1 in order, as the grapher writes them.
        private readonly Dictionary<int, int>? _rowOfId;
        private readonly GraphNode[] _byRow;
        private readonly int[] _start;
        private readonly GraphEdge[] _edges;

        public GraphView(ProvenanceGraph graph)
        {
            Graph = graph;
            var nodes = graph.Nodes;
            var sequential = true;
            for (var i = 0; i < nodes.Count && sequential; i++)
            {
                sequential = nodes[i].Id == i;
            }

            if (sequential)
            {
                _byRow = [.. nodes];
            }
            else
            {
                _rowOfId = new Dictionary<int, int>(nodes.Count);
                var byRow = new List<GraphNode>(nodes.Count);
                foreach (var node in nodes)
                {
                    if (_rowOfId.TryAdd(node.Id, byRow.Count))
                    {
                        byRow.Add(node);
                    }
                }

                _byRow = [.. byRow];
            }

            // An edge is listed under both its ends (twice under a node it loops on); an end that is no node is never asked for.
            _start = new int[_byRow.Length + 1];
            foreach (var edge in graph.Edges)
            {
                Count(edge.Source);
                Count(edge.Target);
            }

            for (var r = 0; r < _byRow.Length; r++)
            {
                _start[r + 1] += _start[r];
            }

            _edges = new GraphEdge[_start[_byRow.Length]];
            var next = _start[..^1];
            foreach (var edge in graph.Edges)
            {
                Place(edge.Source, edge, next);
                Place(edge.Target, edge, next);
            }
        }

        public ProvenanceGraph Graph { get; }

        /// <summary>
        /// The functions whose behaviour the graph holds: its function and those of its own invocations (a trace has
        /// several), not those of the earlier invocations that wrote inherited files.
        /// </summary>
        public HashSet<string> Functions => _functions ??=
            [.. Graph.Nodes.Where(n => n.Kind == NodeKind.Invocation && n.Attributes?.GetValueOrDefault("role") == "self")
                .Select(n => n.Attributes!.GetValueOrDefault("function")).Append(Graph.Function).OfType<string>()];

        private HashSet<string>? _functions;

        /// <summary>
        /// The first node (in edge order) joined to <paramref name="node"/> by an edge of <paramref name="kind"/>, either
        /// direction or only into <paramref name="node"/>, and of <paramref name="otherKind"/> when one is given.
        /// </summary>
        public GraphNode? FirstNeighbour(GraphNode node, EdgeKind kind, NodeKind? otherKind = null, bool onlyInto = false)
        {
            if (!TryRow(node.Id, out var row))
            {
                return null;
            }

            for (var i = _start[row]; i < _start[row + 1]; i++)
            {
                var edge = _edges[i];
                if (edge.Kind != kind || (onlyInto && edge.Target != node.Id))
                {
                    continue;
                }

                if (TryRow(edge.Source == node.Id ? edge.Target : edge.Source, out var otherRow) && _byRow[otherRow] is var other
                    && (otherKind is null || other.Kind == otherKind))
                {
                    return other;
                }
            }

            return null;
        }

        private bool TryRow(int id, out int row)
        {
            if (_rowOfId is null)
            {
                row = id;
                return (uint)id < (uint)_byRow.Length;
            }

            return _rowOfId.TryGetValue(id, out row);
        }

        private void Count(int node)
        {
            if (TryRow(node, out var row))
            {
                _start[row + 1]++;
            }
        }

        private void Place(int node, GraphEdge edge, int[] next)
        {
            if (TryRow(node, out var row))
            {
                _edges[next[row]++] = edge;
            }
        }
    }

    private sealed class CompiledRule
    {
        private CompiledRule(string id, string description, RuleMatch match, List<IPNetwork> allow, List<PathGlob> paths,
            List<(string Function, Regex CommandLine)> allowedCommands, List<(string Function, PathGlob Path)> allowedPaths)
        {
            AllowedPaths = allowedPaths;
            Id = id;
            Description = description;
            Match = match;
            ProcessNames = match.ProcessNames is null ? null : new HashSet<string>(match.ProcessNames, StringComparer.Ordinal);
            Allow = allow;
            Paths = paths;
            AllowedCommands = allowedCommands;
        }

        public string Id { get; }

        private string Description { get; }

        private RuleMatch Match { get; }

        private HashSet<string>? ProcessNames { get; }

        private List<IPNetwork> Allow { get; }

        private List<PathGlob> Paths { get; }

        private List<(string Function, Regex CommandLine)> AllowedCommands { get; }

        private List<(string Function, PathGlob Path)> AllowedPaths { get; }

        public static CompiledRule Create(RuleDefinition rule, string source)
        {
            var allow = new List<IPNetwork>();
            foreach (var entry in rule.Match!.ConnectOutside ?? [])
            {
                var cidr = entry.Contains('/', StringComparison.Ordinal) ? entry : entry + (entry.Contains(':', StringComparison.Ordinal) ? "/128" : "/32");
                if (!IPNetwork.TryParse(cidr, out var network))
                {
                    throw new RuleFileException(source, $"rule {rule.Id}: \"{entry}\" is not an address or CIDR range");
                }

                allow.Add(network);
            }

            var paths = (rule.Match.ReadPaths ?? []).Select(PathGlob.Create).ToList();
            var commands = new List<(string, Regex)>();
            foreach (var allowed in (rule.Allow ?? []).Where(a => a.CommandLine is not null))
            {
                try
                {
                    commands.Add((allowed.Function, new Regex($"^(?:{allowed.CommandLine})$", RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100))));
                }
                catch (ArgumentException e)
                {
                    throw new RuleFileException(source, $"rule {rule.Id}: command-line \"{allowed.CommandLine}\" is not a regular expression: {e.Message}", e);
                }
            }

            var allowedPaths = (rule.Allow ?? []).Where(a => a.Path is not null).Select(a => (a.Function, PathGlob.Create(a.Path!))).ToList();
            return new CompiledRule(rule.Id, rule.Description, rule.Match, allow, paths, commands, allowedPaths);
        }

        public RuleHit? Evaluate(GraphView view)
        {
            var match = Match;
            var details = new List<string>();
            var nodes = new List<int>();
            if (match.ProcessNames is not null || match.SpawnedByProcess)
            {
                var found = false;
                foreach (var process in view.Graph.Nodes)
                {
                    if (process.Kind != NodeKind.Process || (ProcessNames is not null && !ProcessNames.Contains(ProcessName(process))) || IsAllowed(view, process))
                    {
                        continue;
                    }

                    var parent = match.SpawnedByProcess ? view.FirstNeighbour(process, EdgeKind.Fork, NodeKind.Process, onlyInto: true) : null;
                    if (match.SpawnedByProcess && parent is null)
                    {
                        continue;
                    }

                    found = true;
                    nodes.Add(process.Id);
                    details.Add(parent is null ? $"process {Describe(process)}" : $"{Describe(process)} started by {Describe(parent)}");
                }

                if (!found)
                {
                    return null;
                }
            }

            if (match.ExecInheritedFile)
            {
                var found = false;
                foreach (var file in view.Graph.Nodes)
                {
                    if (file.Kind != NodeKind.File || view.FirstNeighbour(file, EdgeKind.Inherits) is not { } earlier
                        || (view.FirstNeighbour(file, EdgeKind.Execve, NodeKind.Process) ?? view.FirstNeighbour(file, EdgeKind.MmapExec, NodeKind.Process)) is not { } runner)
                    {
                        continue;
                    }

                    found = true;
                    nodes.AddRange([file.Id, runner.Id, earlier.Id]);
                    details.Add($"{Describe(runner)} executed {Path(file)}, written by {Describe(earlier)}");
                }

                if (!found)
                {
                    return null;
                }
            }

            if (match.WritesProgram)
            {
                var found = false;
                foreach (var file in view.Graph.Nodes)
                {
                    if (file.Kind != NodeKind.File || !FileContent.IsProgram(file.Attributes?.GetValueOrDefault("content"))
                        || (view.FirstNeighbour(file, EdgeKind.Write, NodeKind.Process) ?? view.FirstNeighbour(file, EdgeKind.Rename, NodeKind.Process)) is not { } writer)
                    {
                        continue;
                    }

                    found = true;
                    nodes.AddRange([file.Id, writer.Id]);
                    details.Add($"{Describe(writer)} wrote {Path(file)} ({(file.Attributes!["content"] == FileContent.Program ? "an ELF program" : "a #! script")})");
                }

                if (!found)
                {
                    return null;
                }
            }

            if (match.UntracedCall)
            {
                var self = view.Graph.Nodes.FirstOrDefault(n => n.Kind == NodeKind.Invocation && n.Attributes?.GetValueOrDefault("untracedCall") == "true");
                if (self is null)
                {
                    return null;
                }

                nodes.Add(self.Id);
                var attributes = self.Attributes!;
                var caller = attributes.GetValueOrDefault("callerFunction") ?? "another function";
                var callerGraph = attributes.GetValueOrDefault("callerGraphId");
                details.Add($"called by {caller}{(callerGraph is null ? "" : $" ({callerGraph})")} without the trace context its own request carried");
            }

            if (match.ConnectOutside is not null)
            {
                var found = false;
                foreach (var socket in view.Graph.Nodes)
                {
                    if (socket.Kind != NodeKind.Socket || view.FirstNeighbour(socket, EdgeKind.Connect, NodeKind.Process) is not { } connector
                        || RemoteAddress(socket) is not { } address || Allow.Any(a => a.Contains(address)))
                    {
                        continue;
                    }

                    found = true;
                    nodes.AddRange([socket.Id, connector.Id]);
                    details.Add($"{Describe(connector)} connected to {Remote(socket)}");
                }

                if (!found)
                {
                    return null;
                }
            }

            if (Paths.Count > 0)
            {
                var found = false;
                foreach (var file in view.Graph.Nodes)
                {
                    if (file.Kind != NodeKind.File || !AnyMatch(Path(file)) || IsAllowedRead(view, Path(file))
                        || (view.FirstNeighbour(file, EdgeKind.Read, NodeKind.Process) ?? view.FirstNeighbour(file, EdgeKind.Open, NodeKind.Process)) is not { } reader)
                    {
                        continue;
                    }

                    found = true;
                    nodes.AddRange([file.Id, reader.Id]);
                    details.Add($"{Describe(reader)} read {Path(file)}");
                }

                if (!found)
                {
                    return null;
                }
            }

            return new RuleHit(Id, $"{Description} {string.Join("; ", details)}", [.. nodes.Distinct()]);
        }

        /// <summary>Whether the process runs a command line allowed for a function of the graph (<see cref="GraphView.Functions"/>).</summary>
        private bool IsAllowed(GraphView view, GraphNode process)
        {
            if (AllowedCommands.Count == 0 || process.Attributes?.GetValueOrDefault("argv") is not { } argv)
            {
                return false;
            }

            return AllowedCommands.Any(a => a.CommandLine.IsMatch(argv) && view.Functions.Contains(a.Function));
        }

        private static string ProcessName(GraphNode process) =>
            process.Attributes?.GetValueOrDefault("exe") is { Length: > 0 } exe ? System.IO.Path.GetFileName(exe) : process.Label;

        private static string Path(GraphNode file) => file.Attributes?.GetValueOrDefault("path") ?? file.Label;

        private static string Remote(GraphNode socket) => socket.Attributes?.GetValueOrDefault("remote") ?? socket.Label;

        private static IPAddress? RemoteAddress(GraphNode socket)
        {
            var remote = Remote(socket);
            if (IPEndPoint.TryParse(remote, out var endpoint))
            {
                return endpoint.Address;
            }

            return IPAddress.TryParse(remote, out var address) ? address : null;
        }

        private static string Describe(GraphNode node) => node.Kind switch
        {
            NodeKind.Process => $"'{node.Label}'" + (node.Attributes?.GetValueOrDefault("pid") is { } pid ? $" (pid {pid})" : ""),
            NodeKind.Invocation => "invocation " + (node.Attributes?.GetValueOrDefault("callId") ?? node.Label),
            _ => $"{node.Kind.ToString().ToLower(CultureInfo.InvariantCulture)} {node.Label}",
        };

        private bool AnyMatch(string path)
        {
            foreach (var glob in Paths)
            {
                if (glob.IsMatch(path))
                {
                    return true;
                }
            }

            return false;
        }

        private bool IsAllowedRead(GraphView view, string path)
        {
            foreach (var (function, glob) in AllowedPaths)
            {
                if (glob.IsMatch(path) && view.Functions.Contains(function))
                {
                    return true;
                }
            }

            return false;
        }
    }

    /// <summary>
    /// A path glob (* within a folder, ** across) as a regular expression, and the literal text before its first *:
    /// no path without that prefix can match, and checking it first spares the expression for almost every file of a graph.
    /// </summary>
    private sealed record PathGlob(string Prefix, Regex Expression)
    {
        public static PathGlob Create(string pattern)
        {
            var star = pattern.IndexOf('*', StringComparison.Ordinal);
            return new(star < 0 ? pattern : pattern[..star],
                new("^" + Regex.Escape(pattern).Replace(@"\*\*", ".*", StringComparison.Ordinal).Replace(@"\*", "[^/]*", StringComparison.Ordinal) + "$",
                    RegexOptions.CultureInvariant));
        }

        public bool IsMatch(string path) => path.StartsWith(Prefix, StringComparison.Ordinal) && Expression.IsMatch(path);
    }
}
