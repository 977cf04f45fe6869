using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace FaaSMon.Compose.Tests;

/// <summary>compose/docker-compose.yml, as docker-compose resolves it: what each service may do and where it listens.</summary>
public sealed partial class ComposeConfigTests(ResolvedCompose compose) : IClassFixture<ResolvedCompose>
{
    private const string Proxy = "faasmon-proxy";
    private const string Tracer = "faasmon-tracer";
    private const string Monitor = "faasmon-monitor";

    private static readonly string[] AllCapabilities = ["ALL"];
    private static readonly string[] TracerCapabilities = ["BPF", "PERFMON", "SYS_NICE", "SYS_PTRACE"];
    private static readonly string[] ProxyCapabilities = ["NET_RAW"];
    private static readonly string[] Services = [Monitor, Proxy, Tracer];
    private static readonly string[] Secrets = ["basic-auth-password", "basic-auth-user"];

    private YamlMappingNode Config => compose.Config;

    [Fact]
    public void Docker_compose_config_accepts_the_file_and_it_defines_the_three_services()
    {
        Assert.Equal(0, compose.Result.ExitCode);
        Assert.Equal(Services, Config.Map("services").Keys().Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Tracer_sees_host_pids_with_exactly_the_capabilities_strace_and_ebpf_need()
    {
        var tracer = Config.Service(Tracer);
        Assert.Equal("host", tracer.Scalar("pid"));
        Assert.Equal(AllCapabilities, tracer.Strings("cap_drop"));
        Assert.Equal(TracerCapabilities, tracer.Strings("cap_add").Order(StringComparer.Ordinal));
        Assert.Null(tracer.Get("privileged"));
        Assert.Equal("none", tracer.Scalar("network_mode"));
        Assert.Contains("no-new-privileges:true", tracer.Strings("security_opt"));
        // bpftrace's maps need locked memory: raised by the engine instead of granting SYS_RESOURCE
        var memlock = tracer.Map("ulimits").Map("memlock");
        Assert.Equal("-1", memlock.Scalar("soft"));
        Assert.Equal("-1", memlock.Scalar("hard"));
        Assert.Equal(["trace", "--backend", "ebpf", "--out", "/var/lib/faasmon/trace/events.ndjson"], tracer.Strings("command"));
    }

    [Fact]
    public void Tracer_mounts_tracefs_and_the_docker_socket_read_only()
    {
        var mounts = Config.Service(Tracer).Mounts();
        var tracefs = Assert.Single(mounts, m => m.Target == "/sys/kernel/tracing");
        Assert.Equal(new Mount("/sys/kernel/tracing", "/sys/kernel/tracing", ReadOnly: true, "bind"), tracefs);
        var docker = Assert.Single(mounts, m => m.Target == "/var/run/docker.sock");
        Assert.Equal(new Mount("/var/run/docker.sock", "/var/run/docker.sock", ReadOnly: true, "bind"), docker);
        // every other mount is the tracer's own volume
        Assert.All(mounts.Except([tracefs, docker]), m => Assert.Equal("volume", m.Type));
    }

    [Fact]
    public void Proxy_fronts_gateway_8080_on_the_functions_network_with_only_net_raw()
    {
        var proxy = Config.Service(Proxy);
        var command = proxy.Strings("command");
        Assert.Equal("proxy", command[0]);
        Assert.Equal("http://gateway:8080", ComposeModel.OptionValue(command, "--upstream"));
        Assert.Equal("0.0.0.0:8000", ComposeModel.OptionValue(command, "--listen"));
        // capture tells the two halves apart by the upstream port: the proxy's own must differ
        Assert.NotEqual(8080, ComposeModel.ListenPort(ComposeModel.OptionValue(command, "--listen")!));

        Assert.Equal(["functions"], proxy.NetworkNames());
        Assert.Contains(Proxy, proxy.Map("networks").Map("functions").Strings("aliases"));
        var functions = Config.Map("networks").Map("functions");
        Assert.Equal("true", functions.Scalar("external"));
        Assert.Equal("func_functions", functions.Scalar("name"));

        Assert.Equal(AllCapabilities, proxy.Strings("cap_drop"));
        Assert.Equal(ProxyCapabilities, proxy.Strings("cap_add"));
        // a file capability carries NET_RAW to the non-root user, and no-new-privileges would void it
        Assert.DoesNotContain("no-new-privileges:true", proxy.Strings("security_opt"));
        Assert.Equal([new PublishedPort("127.0.0.1", "8080", "8000")], proxy.Ports());
    }

    [Fact]
    public void Monitor_serves_on_the_host_loopback_with_credentials_from_secret_files()
    {
        var monitor = Config.Service(Monitor);
        var command = monitor.Strings("command");
        Assert.Equal("serve", command[0]);
        var port = Assert.Single(monitor.Ports());
        Assert.Equal(new PublishedPort("127.0.0.1", "8090", "8090"), port);
        Assert.Equal(port.Target, ComposeModel.ListenPort(ComposeModel.OptionValue(command, "--listen")!).ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal("/run/secrets", ComposeModel.OptionValue(command, "--secrets-dir"));

        var secrets = monitor.Get("secrets") as YamlSequenceNode;
        Assert.NotNull(secrets);
        Assert.Equal(Secrets, secrets.Children.Select(s => s is YamlMappingNode m ? m.Scalar("source") : ((YamlScalarNode)s).Value).Order(StringComparer.Ordinal));
        foreach (var name in Secrets)
        {
            Assert.EndsWith($"compose/secrets/{name}", Config.Map("secrets").Map(name).Scalar("file"), StringComparison.Ordinal);
        }

        Assert.Equal(AllCapabilities, monitor.Strings("cap_drop"));
        Assert.Empty(monitor.Strings("cap_add"));
        // functions cannot reach the verdict API
        Assert.DoesNotContain("functions", monitor.NetworkNames());
    }

    [Fact]
    public void Monitor_reads_what_proxy_and_tracer_write_read_only()
    {
        var monitorMounts = Config.Service(Monitor).Mounts();
        var proxyData = Assert.Single(Config.Service(Proxy).Mounts());
        var traceData = Assert.Single(Config.Service(Tracer).Mounts(), m => m.Type == "volume");
        var monitorCommand = Config.Service(Monitor).Strings("command");
        var traceCommand = Config.Service(Tracer).Strings("command");

        Assert.False(proxyData.ReadOnly);
        Assert.Equal(ComposeModel.OptionValue(Config.Service(Proxy).Strings("command"), "--data-dir"), proxyData.Target);
        Assert.Contains(monitorMounts, m => m.Source == proxyData.Source && m.ReadOnly && m.Target == ComposeModel.OptionValue(monitorCommand, "--proxy-data"));

        var events = ComposeModel.OptionValue(traceCommand, "--out")!;
        Assert.Equal(traceData.Target, Path.GetDirectoryName(events));
        Assert.Equal(events, ComposeModel.OptionValue(monitorCommand, "--trace-events"));
        Assert.Contains(monitorMounts, m => m.Source == traceData.Source && m.ReadOnly && m.Target == traceData.Target);
    }

    [Fact]
    public void Nothing_is_privileged_published_beyond_loopback_or_given_the_docker_socket_but_the_tracer()
    {
        foreach (var name in Services)
        {
            var service = Config.Service(name);
            Assert.Null(service.Get("privileged"));
            Assert.Equal("true", service.Scalar("read_only"));
            Assert.All(service.Ports(), p => Assert.Equal("127.0.0.1", p.HostIp));
            Assert.Equal(name == Tracer, service.Scalar("pid") == "host");
            Assert.Equal(name == Tracer, service.Mounts().Any(m => m.Source.EndsWith("docker.sock", StringComparison.Ordinal)));
            var build = service.Map("build");
            Assert.Equal(Repository.Root, build.Scalar("context"));
            Assert.Equal("compose/Dockerfile", build.Scalar("dockerfile"));
        }
    }

    [Fact]
    public void The_documented_gateway_url_is_the_proxy_on_the_functions_network()
    {
        var proxy = Config.Service(Proxy);
        var alias = Assert.Single(proxy.Map("networks").Map("functions").Strings("aliases"));
        var port = ComposeModel.ListenPort(ComposeModel.OptionValue(proxy.Strings("command"), "--listen")!);
        var expected = $"http://{alias}:{port}";
        foreach (var file in new[] { "compose/README.md", ResolvedCompose.ComposeFile, "compose/faasd/docker-compose.faasd.yaml" })
        {
            var documented = GatewayUrl().Matches(Repository.Read(file)).Select(m => m.Groups["url"].Value).ToList();
            Assert.All(documented, url => Assert.Equal(expected, url));
            if (file != "compose/faasd/docker-compose.faasd.yaml")
            {
                Assert.NotEmpty(documented);
            }
        }
    }

    [GeneratedRegex(@"--env gateway_url=(?<url>\S+)")]
    private static partial Regex GatewayUrl();
}
