using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace FaaSMon.Compose.Tests;

internal sealed record Mount(string Source, string Target, bool ReadOnly, string Type);

internal sealed record PublishedPort(string HostIp, string Published, string Target);

/// <summary>A compose file's YAML, read the way both short and long syntax say the same thing.</summary>
internal static class ComposeModel
{
    public static YamlMappingNode Load(string yaml)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(yaml));
        return Assert.IsType<YamlMappingNode>(stream.Documents[0].RootNode);
    }

    public static YamlNode? Get(this YamlMappingNode map, string key) =>
        map.Children.TryGetValue(new YamlScalarNode(key), out var value) ? value : null;

    public static YamlMappingNode Map(this YamlMappingNode map, string key) =>
        map.Get(key) as YamlMappingNode ?? throw new Xunit.Sdk.XunitException($"'{key}' is not a mapping in {Describe(map)}");

    public static string? Scalar(this YamlMappingNode map, string key) => (map.Get(key) as YamlScalarNode)?.Value;

    /// <summary>A sequence of scalars, a single scalar as one item, or nothing.</summary>
    public static IReadOnlyList<string> Strings(this YamlMappingNode map, string key) => map.Get(key) switch
    {
        YamlSequenceNode seq => [.. seq.Children.Select(c => ((YamlScalarNode)c).Value ?? "")],
        YamlScalarNode scalar => [scalar.Value ?? ""],
        _ => [],
    };

    public static IReadOnlyList<string> Keys(this YamlMappingNode map) =>
        [.. map.Children.Keys.Select(k => ((YamlScalarNode)k).Value ?? "")];

    public static YamlMappingNode Service(this YamlMappingNode compose, string name) => compose.Map("services").Map(name);

    /// <summary>Networks a service joins: a list of names or a mapping of name → settings.</summary>
    public static IReadOnlyList<string> NetworkNames(this YamlMappingNode service) => service.Get("networks") switch
    {
        YamlSequenceNode seq => [.. seq.Children.Select(c => ((YamlScalarNode)c).Value ?? "")],
        YamlMappingNode map => map.Keys(),
        _ => [],
    };

    public static IReadOnlyList<Mount> Mounts(this YamlMappingNode service)
    {
        if (service.Get("volumes") is not YamlSequenceNode volumes)
        {
            return [];
        }

        List<Mount> mounts = [];
        foreach (var volume in volumes.Children)
        {
            if (volume is YamlScalarNode { Value: { } text })
            {
                // SOURCE:TARGET[:MODE]; a named volume's source has no slash
                var parts = text.Split(':');
                var source = parts[0];
                var modes = parts.Length > 2 ? parts[2].Split(',') : [];
                mounts.Add(new Mount(source, parts.Length > 1 ? parts[1] : parts[0], modes.Contains("ro"),
                    source.StartsWith('/') || source.StartsWith('.') ? "bind" : "volume"));
            }
            else if (volume is YamlMappingNode map)
            {
                mounts.Add(new Mount(map.Scalar("source") ?? "", map.Scalar("target") ?? "",
                    string.Equals(map.Scalar("read_only"), "true", StringComparison.OrdinalIgnoreCase), map.Scalar("type") ?? "volume"));
            }
        }

        return mounts;
    }

    public static IReadOnlyList<PublishedPort> Ports(this YamlMappingNode service)
    {
        if (service.Get("ports") is not YamlSequenceNode ports)
        {
            return [];
        }

        List<PublishedPort> published = [];
        foreach (var port in ports.Children)
        {
            if (port is YamlScalarNode { Value: { } text })
            {
                // [HOST_IP:]PUBLISHED:TARGET[/PROTOCOL]
                var parts = text.Split('/')[0].Split(':');
                published.Add(parts.Length switch
                {
                    3 => new PublishedPort(parts[0], parts[1], parts[2]),
                    2 => new PublishedPort("", parts[0], parts[1]),
                    _ => new PublishedPort("", "", parts[0]),
                });
            }
            else if (port is YamlMappingNode map)
            {
                published.Add(new PublishedPort(map.Scalar("host_ip") ?? "", map.Scalar("published") ?? "", map.Scalar("target") ?? ""));
            }
        }

        return published;
    }

    /// <summary>The value that follows an option in an argument list (<c>--upstream URL</c> or <c>--upstream=URL</c>).</summary>
    public static string? OptionValue(IReadOnlyList<string> arguments, string option)
    {
        for (var i = 0; i < arguments.Count; i++)
        {
            if (arguments[i] == option && i + 1 < arguments.Count)
            {
                return arguments[i + 1];
            }

            if (arguments[i].StartsWith(option + "=", StringComparison.Ordinal))
            {
                return arguments[i][(option.Length + 1)..];
            }
        }

        return null;
    }

    /// <summary>The port of an ADDRESS:PORT listen value.</summary>
    public static int ListenPort(string listen) => int.Parse(listen[(listen.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);

    private static string Describe(YamlNode node) => $"line {node.Start.Line}";
}
