using System.Text.RegularExpressions;

namespace FaaSMon.Compose.Tests;

/// <summary>
/// Every faasmon command line in compose/ (compose services, the images' default commands, faasd's services, the
/// systemd unit) uses options the CLI has: proxy and trace as declared in monitor/Commands, serve as compose/README.md
/// documents it for the monitor to honour (and as monitor/Commands/ServeCommand.cs declares it, once it exists).
/// </summary>
public sealed partial class CliOptionsTests(ResolvedCompose compose) : IClassFixture<ResolvedCompose>
{
    private const string ServeSource = "monitor/Commands/ServeCommand.cs";

    [Fact]
    public void Proxy_and_trace_command_lines_use_only_declared_options_and_values()
    {
        var declared = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal)
        {
            ["proxy"] = DeclaredOptions("monitor/Commands/ProxyCommand.cs"),
            ["trace"] = DeclaredOptions("monitor/Commands/TraceCommand.cs"),
        };
        var backends = BackendChoices().Match(Repository.Read("monitor/Commands/TraceCommand.cs")).Groups["list"].Value
            .Split(',').Select(b => b.Trim().Trim('"')).ToHashSet(StringComparer.Ordinal);
        Assert.Contains("ebpf", backends);

        var checkedLines = 0;
        foreach (var (where, arguments) in CommandLines().Where(c => c.Arguments[0] is "proxy" or "trace"))
        {
            checkedLines++;
            foreach (var option in arguments.Where(a => a.StartsWith("--", StringComparison.Ordinal)))
            {
                Assert.True(declared[arguments[0]].Contains(option), $"{where}: faasmon {arguments[0]} has no option {option}");
            }

            if (ComposeModel.OptionValue(arguments, "--backend") is { } backend)
            {
                Assert.Contains(backend, backends);
            }

            if (arguments[0] == "proxy")
            {
                Assert.Equal("http://gateway:8080", ComposeModel.OptionValue(arguments, "--upstream"));
            }
        }

        // compose (2), the proxy and tracer images (2), faasd's proxy (1), the unit (1)
        Assert.Equal(6, checkedLines);
    }

    [Fact]
    public void Serve_command_lines_use_exactly_the_documented_interface()
    {
        var documented = DocumentedServeOptions();
        Assert.Equal(["--data-dir", "--listen", "--proxy-data", "--secrets-dir", "--trace-events"], documented.Order(StringComparer.Ordinal));
        var serve = CommandLines().Where(c => c.Arguments[0] == "serve").ToList();
        Assert.Equal(3, serve.Count); // compose, the monitor image, faasd
        foreach (var (where, arguments) in serve)
        {
            var used = arguments.Where(a => a.StartsWith("--", StringComparison.Ordinal)).ToHashSet(StringComparer.Ordinal);
            Assert.True(used.SetEquals(documented), $"{where}: serve {string.Join(' ', used)} differs from compose/README.md's {string.Join(' ', documented)}");
        }

        // The monitor's serve is being built elsewhere: once it exists it must accept what compose passes it.
        if (File.Exists(Repository.PathOf(ServeSource)))
        {
            var declared = DeclaredOptions(ServeSource);
            Assert.All(documented, o => Assert.True(declared.Contains(o), $"{ServeSource} does not declare {o}, which compose/ passes to faasmon serve"));
        }
    }

    /// <summary>Option names declared as string literals (<c>new("--listen")</c>) in a command's source.</summary>
    private static HashSet<string> DeclaredOptions(string source)
    {
        var options = OptionLiteral().Matches(Repository.Read(source)).Select(m => m.Groups["name"].Value).ToHashSet(StringComparer.Ordinal);
        Assert.NotEmpty(options);
        return options;
    }

    /// <summary>The option rows of the table under "## The `serve` interface" in compose/README.md.</summary>
    private static HashSet<string> DocumentedServeOptions()
    {
        var readme = Repository.Read("compose/README.md");
        var section = readme[readme.IndexOf("## The `serve` interface", StringComparison.Ordinal)..];
        section = section[..section.IndexOf("\n## ", 3, StringComparison.Ordinal)];
        return DocumentedOption().Matches(section).Select(m => m.Groups["name"].Value).ToHashSet(StringComparer.Ordinal);
    }

    private List<(string Where, IReadOnlyList<string> Arguments)> CommandLines()
    {
        List<(string, IReadOnlyList<string>)> lines = [];
        var services = compose.Config.Map("services");
        foreach (var name in services.Keys())
        {
            lines.Add(($"{ResolvedCompose.ComposeFile} {name}", services.Map(name).Strings("command")));
        }

        foreach (var stage in DockerfileParser.Parse(Repository.Read("compose/Dockerfile")).Where(s => s.Last("CMD") is not null))
        {
            lines.Add(($"compose/Dockerfile {stage.Name}", stage.Last("CMD")!.ExecForm()!));
        }

        var faasd = ComposeModel.Load(Repository.Read(FaasdTests.FaasdCompose)).Map("services");
        foreach (var name in faasd.Keys())
        {
            lines.Add(($"{FaasdTests.FaasdCompose} {name}", faasd.Map(name).Strings("command")));
        }

        var execStart = FaasdTests.UnitSettings()["ExecStart"].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("/opt/faasmon/faasmon", execStart[0]);
        lines.Add((FaasdTests.Unit, execStart[1..]));
        Assert.All(lines, l => Assert.NotEmpty(l.Item2));
        return lines;
    }

    [GeneratedRegex(@"""(?<name>--[a-z][a-z0-9-]*)""")]
    private static partial Regex OptionLiteral();

    [GeneratedRegex(@"^\| `(?<name>--[a-z][a-z0-9-]*)[ `]", RegexOptions.Multiline)]
    private static partial Regex DocumentedOption();

    [GeneratedRegex(@"Backend\.AcceptOnlyFromAmong\((?<list>[^)]*)\)")]
    private static partial Regex BackendChoices();
}
