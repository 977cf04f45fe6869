namespace FaaSMon.Compose.Tests;

/// <summary>
/// compose/faasd: the proxy and monitor in faasd's compose subset, and the tracer as a systemd unit on the host,
/// with the same capabilities as in compose and the events file where the monitor reads it.
/// </summary>
public sealed class FaasdTests(ResolvedCompose compose) : IClassFixture<ResolvedCompose>
{
    public const string FaasdCompose = "compose/faasd/docker-compose.faasd.yaml";
    public const string Unit = "compose/faasd/faasmon-tracer.service";

    // faasd pkg/supervisor.go, docs/edge/services.md
    private static readonly HashSet<string> FaasdKeys = new(StringComparer.Ordinal)
    {
        "image", "command", "environment", "volumes", "ports", "user", "depends_on", "cap_add", "restart", "deploy",
    };

    private static readonly string[] FaasdServices = ["faasmon-monitor", "faasmon-proxy"];

    [Fact]
    public void Faasd_services_use_only_faasds_compose_subset()
    {
        var services = ComposeModel.Load(Repository.Read(FaasdCompose)).Map("services");
        Assert.Equal(FaasdServices, services.Keys().Order(StringComparer.Ordinal));
        foreach (var name in services.Keys())
        {
            var service = services.Map(name);
            Assert.All(service.Keys(), k => Assert.True(FaasdKeys.Contains(k), $"{name}: faasd does not support '{k}'"));
            Assert.All(service.Mounts(), m => Assert.Equal("bind", m.Type));
            Assert.All(service.Ports(), p => Assert.Equal("127.0.0.1", p.HostIp));
            // faasd names capabilities as its own gateway does
            Assert.All(service.Strings("cap_add"), c => Assert.StartsWith("CAP_", c, StringComparison.Ordinal));
        }

        Assert.Equal(["CAP_NET_RAW"], services.Map("faasmon-proxy").Strings("cap_add"));
        Assert.Empty(services.Map("faasmon-monitor").Strings("cap_add"));
    }

    [Fact]
    public void The_tracer_unit_writes_the_events_where_faasds_monitor_reads_them()
    {
        var monitor = ComposeModel.Load(Repository.Read(FaasdCompose)).Map("services").Map("faasmon-monitor");
        var events = ComposeModel.OptionValue(monitor.Strings("command"), "--trace-events")!;
        var mount = Assert.Single(monitor.Mounts(), m => m.Target == Path.GetDirectoryName(events));
        // faasd resolves bind sources against /var/lib/faasd
        var hostFile = Path.GetFullPath(Path.Combine("/var/lib/faasd", mount.Source, Path.GetFileName(events)));

        var settings = UnitSettings();
        var execStart = settings["ExecStart"].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(hostFile, ComposeModel.OptionValue(execStart, "--out"));
        Assert.Equal("/var/lib/" + settings["StateDirectory"], Path.GetDirectoryName(hostFile));
        Assert.Equal("Tracer__DockerHost=none", settings["Environment"]);
    }

    [Fact]
    public void The_tracer_unit_has_the_capabilities_of_the_tracer_container_and_nothing_more()
    {
        var container = compose.Config.Service("faasmon-tracer").Strings("cap_add").Select(c => "CAP_" + c).Order(StringComparer.Ordinal);
        var unit = UnitSettings()["CapabilityBoundingSet"].Split(' ', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal);
        Assert.Equal(container, unit);
        Assert.Equal("yes", UnitSettings()["NoNewPrivileges"]);
        Assert.Equal("infinity", UnitSettings()["LimitMEMLOCK"]);
    }

    [Fact]
    public void Systemd_accepts_the_tracer_unit()
    {
        var analyze = Tool.Require("systemd-analyze", "systemd");
        // verify also wants the binary to exist: point it at one that does, keep everything else
        var dir = Directory.CreateTempSubdirectory("faasmon-unit-");
        try
        {
            var copy = Path.Combine(dir.FullName, Path.GetFileName(Unit));
            File.WriteAllText(copy, Repository.Read(Unit).Replace("ExecStart=/opt/faasmon/faasmon ", "ExecStart=/bin/true ", StringComparison.Ordinal));
            var result = Tool.Run(analyze, ["verify", copy], dir.FullName, TimeSpan.FromSeconds(30), "SYSTEMD_");
            Assert.True(result.ExitCode == 0 && result.StandardError.Trim().Length == 0,
                $"systemd-analyze verify ({result.ExitCode}):\n{result.StandardError}{result.StandardOutput}");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>Key=Value lines of the unit file (the last one wins, as systemd's single-valued settings do).</summary>
    internal static Dictionary<string, string> UnitSettings()
    {
        Dictionary<string, string> settings = new(StringComparer.Ordinal);
        foreach (var line in Repository.Read(Unit).Split('\n').Select(l => l.Trim()))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (line.Length > 0 && line[0] is not ('#' or ';' or '[') && eq > 0)
            {
                settings[line[..eq]] = line[(eq + 1)..];
            }
        }

        return settings;
    }
}
