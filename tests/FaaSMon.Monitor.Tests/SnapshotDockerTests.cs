using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using FaaSMon.Monitor.Snapshots;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// Docker mode against a fake Docker Engine on a Unix socket that answers with the engine's own JSON (copied from the
/// tracer's fake and extended: containers list, inspect, top, commit, info, checkpoint); then the snapshot endpoints
/// over a real Kestrel: listing, download, and paths that try to leave the folder.
/// </summary>
public sealed class SnapshotDockerTests : IAsyncLifetime
{
    private const string Running = "4f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c";
    private const string Exiting = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d";
    private readonly string _dir = SnapshotAssert.TestDirectory("docker-snapshots");
    private readonly List<string> _requests = [];
    private readonly List<string> _checkpointBodies = [];
    private WebApplication? _engine;
    private int _exitingInspects;

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
                _requests.Add($"{context.Request.Method} {context.Request.Path}{context.Request.QueryString}");
            }

            await next(context);
        });
        // every route with and without the API version prefix, as the engine serves them
        foreach (var prefix in new[] { "", "/{version}" })
        {
            _engine.MapGet(prefix + "/containers/json", () => Results.Text(
                $$$"""[{"Id":"{{{Running}}}","Names":["/func_echo.1.q1w2e3r4t5y6"],"Image":"functions/echo:latest","State":"running","Labels":{"com.openfaas.function":"echo"}}]""",
                "application/json"));
            _engine.MapGet(prefix + "/containers/{id}/json", (string id) => Inspect(id));
            _engine.MapGet(prefix + "/containers/{id}/top", (string id) => id is Running or Exiting
                ? Results.Text("""{"Titles":["UID","PID","PPID","C","STIME","TTY","TIME","CMD"],"Processes":[["root","4242","4200","0","10:00","?","00:00:00","fwatchdog"],["app","4250","4242","0","10:00","?","00:00:01","node index.js"]]}""", "application/json")
                : Results.Json(new { message = $"No such container: {id}" }, statusCode: 404));
            _engine.MapPost(prefix + "/commit", (HttpRequest r) => r.Query["container"] == Running || r.Query["container"] == Exiting
                ? Results.Text($"{{\"Id\":\"sha256:{new string('c', 64)}\"}}", "application/json", null, 201)
                : Results.Json(new { message = $"No such container: {r.Query["container"]}" }, statusCode: 404));
            _engine.MapGet(prefix + "/info", () => Results.Text("""{"ID":"fake","Containers":2,"ServerVersion":"27.5.1","ExperimentalBuild":true,"OperatingSystem":"Debian"}""", "application/json"));
            _engine.MapPost(prefix + "/containers/{id}/checkpoints", async (string id, HttpRequest r) =>
            {
                using var reader = new StreamReader(r.Body);
                lock (_checkpointBodies)
                {
                    _checkpointBodies.Add(reader.ReadToEndAsync().Result);
                }

                await Task.CompletedTask;
                // what a daemon without CRIU answers
                return Results.Json(new { message = $"Cannot checkpoint container {id}: runc did not terminate successfully: exit status 1: criu failed: type NOTIFY errno 0" }, statusCode: 500);
            });
        }

        await _engine.StartAsync();
    }

    private IResult Inspect(string id)
    {
        // the exiting container is running when the snapshot starts and gone when it ends
        var running = id == Running || (id == Exiting && Interlocked.Increment(ref _exitingInspects) == 1);
        if (!running)
        {
            return Results.Json(new { message = $"No such container: {id}" }, statusCode: 404);
        }

        return Results.Text("""
            {"Id":"CONTAINER_ID","Created":"2026-11-22T10:00:00.000000000Z","Path":"fwatchdog","Args":[],
             "State":{"Status":"running","Running":true,"Paused":false,"Restarting":false,"OOMKilled":false,"Dead":false,"Pid":0,"ExitCode":0,"Error":"","StartedAt":"2026-11-22T10:00:01.000000000Z","FinishedAt":"0001-01-01T00:00:00Z"},
             "Image":"sha256:abc","Name":"/func_echo.1.q1w2e3r4t5y6","RestartCount":0,
             "Config":{"Hostname":"4f1c2d3e4f5a","Env":["fprocess=node index.js","PGPASSWORD=hunter2hunter2","PATH=/usr/bin"],"Cmd":["fwatchdog"],"Image":"functions/echo:latest",
               "Labels":{"com.openfaas.function":"echo","function":"true","com.docker.swarm.service.name":"func_echo"}}}
            """.Replace("CONTAINER_ID", id, StringComparison.Ordinal), "application/json");
    }

    public async Task DisposeAsync()
    {
        if (_engine is not null)
        {
            await _engine.DisposeAsync();
        }

        Directory.Delete(_dir, recursive: true);
    }

    private SnapshotService Service() => new(new SnapshotOptions { Directory = Path.Combine(_dir, "snapshots"), DockerHost = $"unix://{Socket}" });

    [Fact]
    public async Task Docker_mode_commits_the_filesystem_records_a_failed_checkpoint_and_a_container_that_exits()
    {
        using var service = Service();
        var set = await service.SnapshotAsync("verdict-d", [
            new SnapshotTarget("echo", "func_echo.1.q1w2e3r4t5y6", ContainerId: Running),
            new SnapshotTarget("echo", "func_echo.2.exiting", ContainerId: Exiting),
            new SnapshotTarget("echo", "func_echo.3.missing", ContainerId: new string('0', 64)),
        ], CancellationToken.None);

        var ok = set.Instances[0];
        Assert.True(ok.Status == SnapshotStatus.Complete, $"{ok.Status}: {ok.Error}; requests: {string.Join(", ", _requests)}");
        Assert.Equal("docker", ok.Mode);
        Assert.Equal("sha256:" + new string('c', 64), ok.ImageId);
        Assert.Null(ok.CheckpointId);
        Assert.Contains("criu failed", ok.Parts.Single(p => p.Name == "checkpoint").Error, StringComparison.Ordinal);
        Assert.Equal(["commit.json", "inspect.json", "top.json"], ok.Files.Select(f => f.Name));
        Assert.Contains(_requests, r => r.StartsWith($"POST /v1.41/commit?container={Running}&repo=faasmon-snapshot&tag=verdict-d-func_echo.1.q1w2e3r4t5y6&pause=false", StringComparison.Ordinal));
        Assert.Contains(_requests, r => r == $"POST /v1.41/containers/{Running}/checkpoints");
        Assert.Contains("\"CheckpointID\":\"faasmon-verdict-d-func_echo.1.q1w2e3r4t5y6\"", _checkpointBodies[0], StringComparison.Ordinal);
        Assert.Contains("\"Exit\":false", _checkpointBodies[0], StringComparison.Ordinal);
        var inspect = await File.ReadAllTextAsync(Path.Combine(service.Root, "verdict-d", ok.Instance, "inspect.json"));
        Assert.Contains("PGPASSWORD=[redacted]", inspect, StringComparison.Ordinal);
        Assert.DoesNotContain("hunter2", inspect, StringComparison.Ordinal);
        Assert.Contains("node index.js", await File.ReadAllTextAsync(Path.Combine(service.Root, "verdict-d", ok.Instance, "top.json")), StringComparison.Ordinal);

        var exited = set.Instances[1];
        Assert.Equal(SnapshotStatus.Failed, exited.Status);
        Assert.Contains("exited during the snapshot", exited.Error, StringComparison.Ordinal);
        Assert.Empty(exited.Files);
        var missing = set.Instances[2];
        Assert.Equal(SnapshotStatus.Failed, missing.Status);
        Assert.Contains("does not exist", missing.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_container_without_an_id_is_found_by_its_name_in_the_containers_list()
    {
        using var service = Service();
        var set = await service.SnapshotAsync("verdict-n", [new SnapshotTarget("echo", "func_echo.1.q1w2e3r4t5y6")], CancellationToken.None);
        Assert.Equal(Running, set.Instances.Single().ContainerId);
        Assert.Contains(_requests, r => r == "GET /v1.41/containers/json");
    }

    [Fact]
    public async Task The_endpoints_list_a_verdicts_snapshots_and_serve_only_the_files_their_manifests_name()
    {
        using var service = Service();
        await service.SnapshotAsync("verdict-e", [new SnapshotTarget("echo", "func_echo.1.q1w2e3r4t5y6", ContainerId: Running)], CancellationToken.None);
        await File.WriteAllTextAsync(Path.Combine(service.Root, "outside.txt"), "not a snapshot file");

        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        await using var app = builder.Build();
        app.MapGroup("/api").MapSnapshots(service, id => id switch { "a1b2c3d4e5f60718" => "verdict-e", "pending0000000000" => "verdict-none", _ => null });
        await app.StartAsync();
        using var http = new HttpClient { BaseAddress = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()) };

        var listing = await http.GetFromJsonAsync<JsonElement>("/api/invocations/a1b2c3d4e5f60718/snapshots");
        var entry = Assert.Single(listing.EnumerateArray());
        Assert.Equal("func_echo.1.q1w2e3r4t5y6", entry.GetProperty("instance").GetString());
        Assert.Equal("echo", entry.GetProperty("function").GetString());
        Assert.False(entry.TryGetProperty("error", out _)); // nulls omitted
        var files = entry.GetProperty("files").EnumerateArray().ToList();
        Assert.Equal(3, files.Count);
        var commit = files.Single(f => f.GetProperty("name").GetString() == "commit.json");
        Assert.Equal("/api/snapshots/verdict-e/func_echo.1.q1w2e3r4t5y6/commit.json", commit.GetProperty("url").GetString());
        var downloaded = await http.GetByteArrayAsync(commit.GetProperty("url").GetString());
        Assert.Equal(commit.GetProperty("bytes").GetInt64(), downloaded.Length);
        Assert.Contains("sha256:", System.Text.Encoding.UTF8.GetString(downloaded), StringComparison.Ordinal);

        Assert.Equal("[]", await http.GetStringAsync("/api/invocations/pending0000000000/snapshots"));
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/api/invocations/unknown/snapshots")).StatusCode);
        foreach (var bad in new[]
        {
            "/api/snapshots/verdict-e/func_echo.1.q1w2e3r4t5y6/snapshot.json", // on disk, but not a file the manifest lists
            "/api/snapshots/verdict-e/func_echo.1.q1w2e3r4t5y6/..%2F..%2Foutside.txt",
            "/api/snapshots/verdict-e/..%2F/outside.txt",
            "/api/snapshots/..%2Fverdict-e/func_echo.1.q1w2e3r4t5y6/commit.json",
            "/api/snapshots/verdict-e/func_echo.1.q1w2e3r4t5y6/%2E%2E",
            "/api/snapshots/verdict-e/.func_echo/commit.json",
            "/api/snapshots/nope/func_echo.1.q1w2e3r4t5y6/commit.json",
        })
        {
            var response = await http.GetAsync(bad);
            Assert.True(response.StatusCode == HttpStatusCode.NotFound, $"{bad}: {response.StatusCode}");
        }

        await app.StopAsync();
    }
}
