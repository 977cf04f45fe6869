using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Tracer.Tests;

/// <summary>
/// Container → function through the Docker Engine API, against a fake engine on a Unix socket that answers with the
/// engine's own JSON (no Docker here). The cgroup side is real: a process is put in a cgroup named like Docker's.
/// </summary>
public sealed class DockerMappingTests : IAsyncLifetime
{
    private const string ContainerId = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";
    private readonly string _dir = Path.Combine("/var/lib/faasmon/tests", $"docker-{Guid.NewGuid().ToString("N")[..8]}");
    private WebApplication? _engine;
    private readonly List<string> _requests = [];

    private string Socket => Path.Combine(_dir, "docker.sock");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k => k.ListenUnixSocket(Socket));
        _engine = builder.Build();
        _engine.Use(async (context, next) =>
        {
            lock (_requests)
            {
                _requests.Add(context.Request.Path);
            }

            await next(context);
        });
        // the engine's inspect answer, trimmed to the fields a client reads (ids, name with its slash, state, labels)
        // the engine serves every route with and without an API version prefix (/v1.41/...); clients use either
        _engine.MapGet("/containers/{id}/json", (string id) => Inspect(id));
        _engine.MapGet("/{version}/containers/{id}/json", (string id) => Inspect(id));
        _engine.MapGet("/{version}/containers/json", () => List());
        _engine.MapGet("/containers/json", () => List());
        await _engine.StartAsync();
    }

    private static IResult Inspect(string id) => id == ContainerId
            ? Results.Text("""
                {"Id":"CONTAINER_ID","Created":"2026-11-22T10:00:00.000000000Z","Path":"fwatchdog","Args":[],
                 "State":{"Status":"running","Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":4242,"ExitCode":0,"Error":"","StartedAt":"2026-11-22T10:00:01.000000000Z","FinishedAt":"0001-01-01T00:00:00Z"},
                 "Image":"sha256:abc","Name":"/func_echo.1.q1w2e3r4t5y6","RestartCount":0,
                 "Config":{"Hostname":"4f1c2d3e4f5a","Env":["fprocess=node index.js"],"Cmd":["fwatchdog"],"Image":"functions/echo:latest",
                   "Labels":{"com.openfaas.function":"echo","function":"true","com.docker.swarm.service.name":"func_echo"}}}
                """.Replace("CONTAINER_ID", ContainerId, StringComparison.Ordinal), "application/json")
            : Results.Json(new { message = $"No such container: {id}" }, statusCode: 404);

    private static IResult List() => Results.Text("""
            [{"Id":"CONTAINER_ID","Names":["/func_echo.1.q1w2e3r4t5y6"],"Image":"functions/echo:latest","State":"running",
              "Labels":{"com.openfaas.function":"echo"}}]
            """.Replace("CONTAINER_ID", ContainerId, StringComparison.Ordinal), "application/json");

    public async Task DisposeAsync()
    {
        if (_engine is not null)
        {
            await _engine.DisposeAsync();
        }

        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task A_container_id_maps_to_its_openfaas_function_label_and_name()
    {
        using var resolver = new DockerIdentityResolver(DockerIdentityResolver.CreateClient($"unix://{Socket}"), NullLogger<DockerIdentityResolver>.Instance);
        var identity = await resolver.ResolveAsync(ContainerId, CancellationToken.None);
        Assert.True(identity is not null, "requests: " + string.Join(", ", _requests));
        Assert.Equal(new FunctionIdentity("echo", "func_echo.1.q1w2e3r4t5y6", "docker", ContainerId), identity);
        Assert.Null(await resolver.ResolveAsync(new string('0', 64), CancellationToken.None)); // 404: not a function
        Assert.Contains(_requests, r => r.EndsWith($"/containers/{ContainerId}/json", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_process_in_a_docker_cgroup_is_found_by_name_and_mapped_through_the_engine()
    {
        // a real process in a cgroup named as Docker names it, found by its command line like a function
        var cgroup = $"/sys/fs/cgroup/unified/docker/{ContainerId}";
        Directory.CreateDirectory(cgroup);
        using var sleeper = Process.Start(new ProcessStartInfo("sleep", "31.4159265")) ?? throw new InvalidOperationException("sleep");
        try
        {
            await File.WriteAllTextAsync(Path.Combine(cgroup, "cgroup.procs"), sleeper.Id.ToString(System.Globalization.CultureInfo.InvariantCulture));
            using var resolver = new DockerIdentityResolver(DockerIdentityResolver.CreateClient($"unix://{Socket}"), NullLogger<DockerIdentityResolver>.Instance);
            var discovery = new ProcessDiscovery("31.4159265", resolver, NullLogger<ProcessDiscovery>.Instance);
            var found = Assert.Single(await discovery.ScanAsync(CancellationToken.None));
            Assert.True(found.Started);
            Assert.Equal(sleeper.Id, found.Process.Pid);
            Assert.Equal(new FunctionIdentity("echo", "func_echo.1.q1w2e3r4t5y6", "docker", ContainerId), found.Process.Identity);

            sleeper.Kill();
            await sleeper.WaitForExitAsync();
            var gone = Assert.Single(await discovery.ScanAsync(CancellationToken.None));
            Assert.False(gone.Started);
        }
        finally
        {
            if (!sleeper.HasExited)
            {
                sleeper.Kill();
                await sleeper.WaitForExitAsync();
            }

            for (var i = 0; i < 20 && Directory.Exists(cgroup); i++)
            {
                try
                {
                    Directory.Delete(cgroup);
                }
                catch (IOException)
                {
                    await Task.Delay(50);
                }
            }
        }
    }

    [Theory]
    [InlineData("0::/faasmon/product-photos-receive/product-photos-receive-2f46eb\n", "product-photos-receive", "product-photos-receive-2f46eb", "localfaas")]
    [InlineData("4:memory:/process_api/d0/faasmon/echo/echo-1\n0::/\n", "echo", "echo-1", "localfaas")]
    [InlineData("0::/openfaas-fn/figlet\n", "figlet", "figlet", "faasd")]
    public void Cgroup_paths_name_localfaas_and_faasd_functions_directly(string text, string function, string instance, string source)
    {
        var (identity, container) = CgroupIdentity.Parse(text);
        Assert.Equal((function, instance, source), (identity!.Function, identity.Instance, identity.Source));
        Assert.Null(container);
    }

    [Theory]
    [InlineData($"0::/system.slice/docker-{ContainerId}.scope\n")]
    [InlineData($"12:pids:/docker/{ContainerId}\n0::/\n")]
    public void Docker_cgroup_paths_give_the_container_id(string text)
    {
        var (identity, container) = CgroupIdentity.Parse(text);
        Assert.Null(identity);
        Assert.Equal(ContainerId, container);
    }
}
