using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace FaaSMon.Compose.Tests;

/// <summary>
/// compose/Dockerfile, read as a linter would (no hadolint installs here: Debian has none and npm's downloads its
/// binary at run time): base images, users, packages, sources, entry points, and that it builds what compose asks for.
/// </summary>
public sealed partial class DockerfileTests(ResolvedCompose compose) : IClassFixture<ResolvedCompose>
{
    private const string DockerfilePath = "compose/Dockerfile";
    private static readonly IReadOnlyList<DockerStage> Stages = DockerfileParser.Parse(Repository.Read(DockerfilePath));
    private static readonly string[] RuntimeStages = ["proxy", "tracer", "monitor"];
    private static readonly string[] NonRootStages = ["proxy", "monitor"];
    private static readonly string[] NoTorchStages = ["proxy", "tracer"];

    private static DockerStage Stage(string name) => Assert.Single(Stages, s => s.Name == name);

    [Fact]
    public void Every_stage_is_an_ubuntu_24_04_dotnet_10_image_or_an_earlier_stage()
    {
        List<string> earlier = [];
        foreach (var stage in Stages)
        {
            Assert.True(earlier.Contains(stage.BaseImage) || NobleDotnetImage().IsMatch(stage.BaseImage),
                $"FROM {stage.BaseImage}: not an Ubuntu 24.04 (noble) .NET 10 image from mcr.microsoft.com/dotnet");
            if (stage.Name is { } name)
            {
                earlier.Add(name);
            }
        }

        Assert.Equal("mcr.microsoft.com/dotnet/sdk:10.0-noble", Stage("build").BaseImage);
        Assert.All(RuntimeStages, s => Assert.Equal("mcr.microsoft.com/dotnet/aspnet:10.0-noble", Stage(s).BaseImage));
    }

    [Fact]
    public void Compose_builds_each_service_from_a_stage_of_this_dockerfile()
    {
        var services = compose.Config.Map("services");
        var targets = services.Keys().Select(s => services.Map(s).Map("build").Scalar("target")).Order(StringComparer.Ordinal);
        Assert.Equal(RuntimeStages.Order(StringComparer.Ordinal), targets);
    }

    [Fact]
    public void Proxy_and_monitor_run_as_a_non_root_user_and_the_tracer_as_root()
    {
        foreach (var name in NonRootStages)
        {
            var user = Stage(name).Last("USER")?.Arguments.Split(':')[0];
            Assert.False(user is null or "root" or "0", $"stage {name} runs as {user ?? "root (no USER)"}");
        }

        Assert.Equal("root", Stage("tracer").Last("USER")?.Arguments);
    }

    [Fact]
    public void Entry_points_commands_and_health_checks_use_the_exec_form()
    {
        foreach (var name in RuntimeStages)
        {
            var stage = Stage(name);
            Assert.Equal(["/app/faasmon"], stage.Last("ENTRYPOINT")?.ExecForm() ?? throw new Xunit.Sdk.XunitException($"{name}: ENTRYPOINT is missing or in shell form"));
            Assert.NotNull(stage.Last("CMD")?.ExecForm());
            var health = Assert.Single(stage.All("HEALTHCHECK"));
            var (_, rest) = health.SplitFlags();
            if (name == "tracer")
            {
                Assert.Equal("NONE", rest); // faasmon trace serves no /healthz
                continue;
            }

            Assert.StartsWith("CMD ", rest, StringComparison.Ordinal);
            Assert.NotNull(DockerInstruction.ParseExecForm(rest[4..]));
        }
    }

    [Fact]
    public void Health_checks_probe_the_port_and_path_each_service_listens_on()
    {
        var services = compose.Config.Map("services");
        foreach (var (stage, service, path) in new[] { ("proxy", "faasmon-proxy", "/faasmon/healthz"), ("monitor", "faasmon-monitor", "/healthz") })
        {
            var (_, rest) = Assert.Single(Stage(stage).All("HEALTHCHECK")).SplitFlags();
            var listen = ComposeModel.OptionValue(services.Map(service).Strings("command"), "--listen")!;
            Assert.Contains($"http://127.0.0.1:{ComposeModel.ListenPort(listen)}{path}", rest, StringComparison.Ordinal);
            // and the image's own default command agrees with compose
            Assert.Equal(listen, ComposeModel.OptionValue(Stage(stage).Last("CMD")!.ExecForm()!, "--listen"));
        }
    }

    [Fact]
    public void Nothing_is_piped_from_the_network_into_a_shell_or_added_from_a_url()
    {
        foreach (var instruction in Stages.SelectMany(s => s.Instructions))
        {
            Assert.False(instruction.Keyword == "RUN" && PipeToShell().IsMatch(instruction.Arguments), $"line {instruction.Line}: download piped into a shell");
            Assert.False(instruction.Keyword == "ADD" && Url().IsMatch(instruction.Arguments), $"line {instruction.Line}: ADD of a URL");
        }
    }

    [Fact]
    public void Apt_packages_are_pinned_without_recommends_and_lists_removed()
    {
        var installs = 0;
        foreach (var run in Stages.SelectMany(s => s.All("RUN")))
        {
            foreach (var command in run.Arguments.Split("&&").Select(c => c.Trim()).Where(c => c.StartsWith("apt-get install", StringComparison.Ordinal)))
            {
                installs++;
                var words = command.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(2).ToList();
                Assert.Contains("--no-install-recommends", words);
                var packages = words.Where(w => !w.StartsWith('-')).ToList();
                Assert.NotEmpty(packages);
                Assert.All(packages, p => Assert.True(p.Contains('=', StringComparison.Ordinal), $"line {run.Line}: {p} is not pinned (name=version)"));
            }

            if (run.Arguments.Contains("apt-get update", StringComparison.Ordinal))
            {
                Assert.Contains("rm -rf /var/lib/apt/lists/*", run.Arguments, StringComparison.Ordinal);
            }
        }

        Assert.True(installs >= 4, $"expected the build, proxy, tracer and monitor packages, found {installs} apt-get install");
        Assert.Contains(Stage("tracer").All("RUN"), r => r.Arguments.Contains("strace=", StringComparison.Ordinal) && r.Arguments.Contains("bpftrace=", StringComparison.Ordinal));
        Assert.Contains(Stage("proxy").All("RUN"), r => r.Arguments.Contains("libpcap0.8t64=", StringComparison.Ordinal));
    }

    [Fact]
    public void Every_copy_source_exists_in_the_build_context_and_is_not_ignored()
    {
        List<string> stageNames = [];
        foreach (var stage in Stages)
        {
            foreach (var copy in stage.All("COPY").Concat(stage.All("ADD")))
            {
                var (flags, rest) = copy.SplitFlags();
                var words = DockerInstruction.ParseExecForm(rest) ?? rest.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                Assert.True(words.Count >= 2, $"line {copy.Line}: {copy.Keyword} needs a source and a destination");
                if (flags.TryGetValue("from", out var from))
                {
                    Assert.Contains(from, stageNames);
                    continue;
                }

                foreach (var source in words.Take(words.Count - 1))
                {
                    var path = Repository.PathOf(source);
                    Assert.True(File.Exists(path) || Directory.Exists(path), $"line {copy.Line}: {copy.Keyword} source {source} is not in the repository");
                    Assert.False(source != "." && DockerIgnore.Excludes(source), $"line {copy.Line}: {source} is left out of the context by Dockerfile.dockerignore");
                }
            }

            if (stage.Name is { } name)
            {
                stageNames.Add(name);
            }
        }
    }

    [Fact]
    public void The_build_stage_gets_every_project_the_faasmon_cli_builds_from()
    {
        var build = Stage("build");
        var copied = build.All("COPY").Where(c => !c.SplitFlags().Flags.ContainsKey("from"))
            .SelectMany(c => c.SplitFlags().Remainder.Split(' ', StringSplitOptions.RemoveEmptyEntries).SkipLast(1)).ToList();
        Assert.Contains(build.All("RUN"), r => r.Arguments.Contains("dotnet publish monitor/FaaSMon.Monitor.csproj", StringComparison.Ordinal));

        string[] repositoryFiles = ["global.json", "Directory.Build.props", "Directory.Packages.props"];
        foreach (var file in repositoryFiles.Concat(ProjectClosure("monitor/FaaSMon.Monitor.csproj")))
        {
            var inCopy = copied.Any(c => c == "." || (c.EndsWith('/') ? file.StartsWith(c, StringComparison.Ordinal) : file == c));
            Assert.True(inCopy && !DockerIgnore.Excludes(file), $"{file} is needed to build faasmon but the build stage does not get it");
        }

        // and what must stay out does
        Assert.True(DockerIgnore.Excludes("monitor/bin/Release/net10.0/faasmon.dll"));
        Assert.True(DockerIgnore.Excludes("functions/template/node20-faasmon/node_modules/express/index.js"));
        Assert.True(DockerIgnore.Excludes("compose/secrets/basic-auth-password"));
        Assert.True(DockerIgnore.Excludes(".git/config"));
    }

    [Fact]
    public void TorchSharp_loads_unpatched_on_noble_and_the_build_checks_it()
    {
        // what the classifier's patch looks for; if a TorchSharp upgrade changes it, the Dockerfile checks must follow
        var targets = XDocument.Parse(Repository.Read("classifier/TorchSharpOnDebian.targets"));
        var version = targets.Descendants("FaaSMonGlibcxxVersion").Single().Value;
        var shim = targets.Descendants("FaaSMonGlibcxxShim").Single().Value.Replace("$(OutDir)", "", StringComparison.Ordinal);
        Assert.Equal("libfaasmon_glibcxx_shim.so", shim);

        Assert.Contains(Stage("build").All("RUN"), r => r.Arguments.Contains($"test ! -e monitor/bin/Release/net10.0/linux-x64/{shim}", StringComparison.Ordinal));
        Assert.Contains(Stage("monitor").All("RUN"), r => r.Arguments.Contains($"grep -qa {version} /usr/lib/x86_64-linux-gnu/libstdc++.so.6", StringComparison.Ordinal));
        // the image without torch is the one the proxy and tracer get; the monitor gets the whole build
        Assert.Equal("--from=build /app /app", Stage("monitor").All("COPY").Single().Arguments);
        Assert.All(NoTorchStages, s => Assert.Equal("--from=build /app-notorch /app", Stage(s).All("COPY").Single().Arguments));
    }

    /// <summary>The project files, imported .targets and their folders that building a project reads, relative to the repository.</summary>
    private static SortedSet<string> ProjectClosure(string project)
    {
        SortedSet<string> files = new(StringComparer.Ordinal);
        Queue<string> pending = new();
        pending.Enqueue(project);
        while (pending.TryDequeue(out var current))
        {
            if (!files.Add(current))
            {
                continue;
            }

            var dir = Path.GetDirectoryName(current)!;
            var xml = XDocument.Parse(Repository.Read(current));
            foreach (var reference in xml.Descendants("ProjectReference").Select(e => e.Attribute("Include")!.Value)
                         .Concat(xml.Descendants("Import").Select(e => e.Attribute("Project")!.Value))
                         .Where(r => !r.Contains("$(", StringComparison.Ordinal)))
            {
                var relative = Path.GetRelativePath(Repository.Root, Path.GetFullPath(Path.Combine(Repository.Root, dir, reference)));
                pending.Enqueue(relative.Replace('\\', '/'));
            }
        }

        return files;
    }

    [GeneratedRegex(@"^mcr\.microsoft\.com/dotnet/(sdk|aspnet|runtime|runtime-deps):10\.0(\.\d+)*-noble(-[a-z]+)?(@sha256:[0-9a-f]{64})?$")]
    private static partial Regex NobleDotnetImage();

    [GeneratedRegex(@"\b(curl|wget)\b[^;&]*\|\s*(sudo\s+)?(ba|da|z)?sh\b")]
    private static partial Regex PipeToShell();

    [GeneratedRegex(@"(https?|ftp)://|git@")]
    private static partial Regex Url();
}
