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
            if (match is null || (match.ProcessNames is null && !match.SpawnedByProcess && !match.ExecInheritedFile && match.ConnectOutside is null && match.ReadPaths is null))
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

    /// <summary>Nodes by id and their edges, both directions.</summary>
    private sealed class GraphView
    {
        public GraphView(ProvenanceGraph graph)
        {
            Graph = graph;
            Nodes = graph.Nodes.GroupBy(n => n.Id).ToDictionary(g => g.Key, g => g.First());
            foreach (var edge in graph.Edges)
            {
                Add(edge.Source, edge);
                Add(edge.Target, edge);
            }
        }

        public ProvenanceGraph Graph { get; }

        public Dictionary<int, GraphNode> Nodes { get; }

        public Dictionary<int, List<GraphEdge>> Edges { get; } = [];

        /// <summary>
        /// The functions whose behaviour the graph holds: its function and those of its own invocations (a trace has
        /// several), not those of the earlier invocations that wrote inherited files.
        /// </summary>
        public HashSet<string> Functions => _functions ??=
            [.. Graph.Nodes.Where(n => n.Kind == NodeKind.Invocation && n.Attributes?.GetValueOrDefault("role") == "self")
                .Select(n => n.Attributes!.GetValueOrDefault("function")).Append(Graph.Function).OfType<string>()];

        private HashSet<string>? _functions;

        public IEnumerable<(GraphEdge Edge, GraphNode Other)> Neighbours(GraphNode node, EdgeKind kind) =>
            (Edges.TryGetValue(node.Id, out var edges) ? edges : [])
                .Where(e => e.Kind == kind)
                .Select(e => (e, Nodes.GetValueOrDefault(e.Source == node.Id ? e.Target : e.Source)))
                .Where(p => p.Item2 is not null)
                .Select(p => (p.e, p.Item2!));

        private void Add(int node, GraphEdge edge)
        {
            if (!Edges.TryGetValue(node, out var list))
            {
                Edges[node] = list = [];
            }

            list.Add(edge);
        }
    }

    private sealed class CompiledRule
    {
        private CompiledRule(string id, string description, RuleMatch match, List<IPNetwork> allow, List<Regex> paths,
            List<(string Function, Regex CommandLine)> allowedCommands, List<(string Function, Regex Path)> allowedPaths)
        {
            AllowedPaths = allowedPaths;
            Id = id;
            Description = description;
            Match = match;
            Allow = allow;
            Paths = paths;
            AllowedCommands = allowedCommands;
        }

        public string Id { get; }

        private string Description { get; }

        private RuleMatch Match { get; }

        private List<IPNetwork> Allow { get; }

        private List<Regex> Paths { get; }

        private List<(string Function, Regex CommandLine)> AllowedCommands { get; }

        private List<(string Function, Regex Path)> AllowedPaths { get; }

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

            var paths = (rule.Match.ReadPaths ?? []).Select(Glob).ToList();
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

            var allowedPaths = (rule.Allow ?? []).Where(a => a.Path is not null).Select(a => (a.Function, Glob(a.Path!))).ToList();
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
                foreach (var process in view.Graph.Nodes.Where(n => n.Kind == NodeKind.Process))
                {
                    var name = ProcessName(process);
                    if ((match.ProcessNames is not null && !match.ProcessNames.Contains(name, StringComparer.Ordinal)) || IsAllowed(view, process))
                    {
                        continue;
                    }

                    var parent = match.SpawnedByProcess
                        ? view.Neighbours(process, EdgeKind.Fork).Where(p => p.Edge.Target == process.Id && p.Other.Kind == NodeKind.Process).Select(p => p.Other).FirstOrDefault()
                        : null;
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
                foreach (var file in view.Graph.Nodes.Where(n => n.Kind == NodeKind.File))
                {
                    var earlier = view.Neighbours(file, EdgeKind.Inherits).Select(p => p.Other).FirstOrDefault();
                    var runner = view.Neighbours(file, EdgeKind.Execve).Concat(view.Neighbours(file, EdgeKind.MmapExec))
                        .Where(p => p.Other.Kind == NodeKind.Process).Select(p => p.Other).FirstOrDefault();
                    if (earlier is null || runner is null)
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

            if (match.ConnectOutside is not null)
            {
                var found = false;
                foreach (var socket in view.Graph.Nodes.Where(n => n.Kind == NodeKind.Socket))
                {
                    var connector = view.Neighbours(socket, EdgeKind.Connect).Select(p => p.Other).FirstOrDefault(o => o.Kind == NodeKind.Process);
                    if (connector is null || RemoteAddress(socket) is not { } address || Allow.Any(a => a.Contains(address)))
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
                foreach (var file in view.Graph.Nodes.Where(n => n.Kind == NodeKind.File && Paths.Any(p => p.IsMatch(Path(n)))
                    && !AllowedPaths.Any(a => a.Path.IsMatch(Path(n)) && view.Functions.Contains(a.Function))))
                {
                    var reader = view.Neighbours(file, EdgeKind.Read).Concat(view.Neighbours(file, EdgeKind.Open))
                        .Select(p => p.Other).FirstOrDefault(o => o.Kind == NodeKind.Process);
                    if (reader is null)
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

        private static Regex Glob(string pattern) =>
            new("^" + Regex.Escape(pattern).Replace(@"\*\*", ".*", StringComparison.Ordinal).Replace(@"\*", "[^/]*", StringComparison.Ordinal) + "$",
                RegexOptions.CultureInvariant);
    }
}
