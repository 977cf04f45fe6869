using YamlDotNet.RepresentationModel;

namespace FaaSMon.Compose.Tests;

/// <summary>
/// <c>docker-compose config</c> on compose/docker-compose.yml, run once per test class: the file as Compose itself
/// resolves it (interpolation, defaults, normalised syntax). Variables of the caller's shell that the file reads are
/// cleared, so the defaults are what is checked.
/// </summary>
public sealed class ResolvedCompose
{
    public const string ComposeFile = "compose/docker-compose.yml";

    private readonly Lazy<(ToolResult Result, YamlMappingNode? Config)> _run = new(Run);

    /// <summary>The resolved configuration; the test fails (naming the package) when docker-compose is missing or rejects the file.</summary>
    internal YamlMappingNode Config
    {
        get
        {
            var (result, config) = _run.Value;
            Assert.True(result.ExitCode == 0, $"docker-compose config failed ({result.ExitCode}):\n{result.StandardError}");
            return config!;
        }
    }

    internal ToolResult Result => _run.Value.Result;

    private static (ToolResult, YamlMappingNode?) Run()
    {
        var executable = Tool.Require("docker-compose", "docker-compose", "./faasmon (ensure_packages)");
        var result = Tool.Run(executable, ["--file", Repository.PathOf(ComposeFile), "config"], Repository.Root, TimeSpan.FromSeconds(60),
            "FAASMON_", "COMPOSE_", "DOCKER_");
        return (result, result.ExitCode == 0 ? ComposeModel.Load(result.StandardOutput) : null);
    }
}
