using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>
/// Docker mode: <c>docker commit</c> of the container's filesystem (<c>POST /commit</c>, not paused) and, when the engine
/// is experimental (the build <c>docker checkpoint</c> needs), <c>docker checkpoint create</c> (CRIU; its failure is
/// recorded, not fatal). Also the container's inspect (environment redacted) and its processes. Speaks the Engine API
/// over its Unix socket with <see cref="HttpClient"/>: Docker.DotNet has no checkpoint call, and one client is simpler.
/// </summary>
internal sealed class DockerSnapshotter : IInstanceSnapshotter, IDisposable
{
    private const string ApiVersion = "v1.41";
    private readonly HttpClient _http;
    private readonly SnapshotOptions _options;

    public DockerSnapshotter(SnapshotOptions options)
    {
        _options = options;
        var host = options.DockerHost ?? "unix:///var/run/docker.sock";
        if (host.StartsWith("unix://", StringComparison.Ordinal))
        {
            var socket = host["unix://".Length..];
            _http = new HttpClient(new SocketsHttpHandler
            {
                UseProxy = false,
                ConnectCallback = async (_, ct) =>
                {
                    var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    try
                    {
                        await s.ConnectAsync(new UnixDomainSocketEndPoint(socket), ct);
                        return new NetworkStream(s, ownsSocket: true);
                    }
                    catch
                    {
                        s.Dispose();
                        throw;
                    }
                },
            })
            { BaseAddress = new Uri($"http://docker/{ApiVersion}/") };
        }
        else
        {
            _http = new HttpClient { BaseAddress = new Uri($"{host.Replace("tcp://", "http://", StringComparison.Ordinal).TrimEnd('/')}/{ApiVersion}/") };
        }

        _http.Timeout = options.ToolTimeout;
    }

    public void Dispose() => _http.Dispose();

    public async Task<InstanceSnapshot> SnapshotAsync(SnapshotTarget target, string directory, BudgetScope budget, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        var createdAt = DateTimeOffset.UtcNow;
        var id = target.ContainerId ?? await FindByNameAsync(target.Instance, ct)
            ?? throw new TargetGoneException(0, $"no container named {target.Instance}");
        var inspect = await InspectAsync(id, ct) ?? throw new TargetGoneException(0, $"container {id} does not exist");
        if (inspect["State"]?["Running"]?.GetValue<bool>() != true)
        {
            throw new TargetGoneException(0, $"container {id} is not running");
        }

        var hostPid = inspect["State"]?["Pid"]?.GetValue<int>() ?? 0;
        var rssBefore = hostPid > 0 ? ProcessState.Memory(hostPid) : null;
        RedactEnvironment(inspect);
        var parts = new List<SnapshotPart>();
        LocalSnapshotter.Write(directory, "inspect.json", JsonSerializer.SerializeToUtf8Bytes(inspect, SnapshotJson.Options), budget);

        var sw = Stopwatch.StartNew();
        var top = await SendAsync(HttpMethod.Get, $"containers/{Uri.EscapeDataString(id)}/top", null, ct);
        if (top.Status == HttpStatusCode.OK)
        {
            LocalSnapshotter.Write(directory, "top.json", Encoding.UTF8.GetBytes(top.Body), budget);
            parts.Add(new SnapshotPart("top", sw.Elapsed.TotalMilliseconds));
        }
        else
        {
            parts.Add(new SnapshotPart("top", sw.Elapsed.TotalMilliseconds, Message(top)));
        }

        sw.Restart();
        var tag = Tag(target.Instance, Path.GetFileName(Path.GetDirectoryName(directory.TrimEnd('/'))) ?? "snapshot");
        var commit = await SendAsync(HttpMethod.Post,
            $"commit?container={Uri.EscapeDataString(id)}&repo={Uri.EscapeDataString(_options.DockerRepository)}&tag={Uri.EscapeDataString(tag)}&pause=false" +
            $"&comment={Uri.EscapeDataString("faasmon snapshot of " + target.Instance)}", new JsonObject(), ct);
        string? imageId = null;
        if (commit.Status is HttpStatusCode.Created or HttpStatusCode.OK)
        {
            imageId = JsonNode.Parse(commit.Body)?["Id"]?.GetValue<string>();
            LocalSnapshotter.Write(directory, "commit.json", JsonSerializer.SerializeToUtf8Bytes(new { imageId, repository = _options.DockerRepository, tag }, SnapshotJson.Options), budget);
            parts.Add(new SnapshotPart("commit", sw.Elapsed.TotalMilliseconds));
        }
        else
        {
            parts.Add(new SnapshotPart("commit", sw.Elapsed.TotalMilliseconds, Message(commit)));
        }

        sw.Restart();
        string? checkpointId = null;
        var info = await SendAsync(HttpMethod.Get, "info", null, ct);
        var experimental = info.Status == HttpStatusCode.OK && JsonNode.Parse(info.Body)?["ExperimentalBuild"]?.GetValue<bool>() == true;
        if (!experimental)
        {
            parts.Add(new SnapshotPart("checkpoint", sw.Elapsed.TotalMilliseconds, "skipped: the engine is not experimental, so it has no checkpoint support (CRIU)"));
        }
        else
        {
            var wanted = "faasmon-" + tag;
            var checkpoint = await SendAsync(HttpMethod.Post, $"containers/{Uri.EscapeDataString(id)}/checkpoints",
                new JsonObject { ["CheckpointID"] = wanted, ["Exit"] = false }, ct);
            if (checkpoint.Status is HttpStatusCode.Created or HttpStatusCode.OK or HttpStatusCode.NoContent)
            {
                checkpointId = wanted;
                LocalSnapshotter.Write(directory, "checkpoint.json", JsonSerializer.SerializeToUtf8Bytes(new { checkpointId }, SnapshotJson.Options), budget);
                parts.Add(new SnapshotPart("checkpoint", sw.Elapsed.TotalMilliseconds));
            }
            else
            {
                parts.Add(new SnapshotPart("checkpoint", sw.Elapsed.TotalMilliseconds, Message(checkpoint)));
            }
        }

        var after = await InspectAsync(id, ct);
        if (after?["State"]?["Running"]?.GetValue<bool>() != true)
        {
            throw new TargetGoneException(0, $"container {id} exited during the snapshot");
        }

        // a checkpoint the engine cannot make (no CRIU) is recorded, not a failure: the commit is the snapshot
        var failed = parts.Where(p => p.Error is not null && p.Name != "checkpoint").ToList();
        return new InstanceSnapshot
        {
            Function = target.Function,
            Instance = target.Instance,
            Mode = "docker",
            ContainerId = id,
            Pid = hostPid > 0 ? hostPid : null,
            CreatedAt = createdAt,
            Status = failed.Count == 0 ? SnapshotStatus.Complete : SnapshotStatus.Failed,
            Error = failed.Count == 0 ? null : string.Join("; ", failed.Select(p => $"{p.Name}: {p.Error}")),
            DurationMs = Stopwatch.GetElapsedTime(started).TotalMilliseconds,
            Parts = parts,
            Memory = new SnapshotMemory(rssBefore, hostPid > 0 ? ProcessState.Memory(hostPid) : null, 0),
            ImageId = imageId,
            CheckpointId = checkpointId,
        };
    }

    /// <summary>A tag Docker accepts (<c>[A-Za-z0-9_.-]</c>, up to 128, not starting with . or -).</summary>
    internal static string Tag(string instance, string verdict)
    {
        var raw = $"{verdict}-{instance}";
        var clean = new StringBuilder(raw.Length);
        foreach (var c in raw)
        {
            clean.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-' ? c : '_');
        }

        var tag = clean.ToString().TrimStart('.', '-');
        return tag.Length == 0 ? "snapshot" : tag.Length > 128 ? tag[..128] : tag;
    }

    private async Task<string?> FindByNameAsync(string name, CancellationToken ct)
    {
        var list = await SendAsync(HttpMethod.Get, "containers/json", null, ct);
        if (list.Status != HttpStatusCode.OK || JsonNode.Parse(list.Body) is not JsonArray containers)
        {
            return null;
        }

        return containers.FirstOrDefault(c => c?["Names"] is JsonArray names && names.Any(n => n?.GetValue<string>().TrimStart('/') == name))?["Id"]?.GetValue<string>();
    }

    private async Task<JsonObject?> InspectAsync(string id, CancellationToken ct)
    {
        var response = await SendAsync(HttpMethod.Get, $"containers/{Uri.EscapeDataString(id)}/json", null, ct);
        return response.Status == HttpStatusCode.OK ? JsonNode.Parse(response.Body) as JsonObject : null;
    }

    private static void RedactEnvironment(JsonObject inspect)
    {
        if (inspect["Config"]?["Env"] is not JsonArray env)
        {
            return;
        }

        for (var i = 0; i < env.Count; i++)
        {
            var entry = env[i]?.GetValue<string>() ?? "";
            var eq = entry.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0)
            {
                env[i] = $"{entry[..eq]}={ProcessState.Redact(entry[..eq], entry[(eq + 1)..], [])}";
            }
        }
    }

    private sealed record Answer(HttpStatusCode Status, string Body);

    private async Task<Answer> SendAsync(HttpMethod method, string path, JsonObject? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, path);
        if (body is not null)
        {
            request.Content = JsonContent.Create(body);
        }

        try
        {
            using var response = await _http.SendAsync(request, ct);
            var text = await response.Content.ReadAsStringAsync(ct);
            return new Answer(response.StatusCode, text.Length > 1 << 20 ? text[..(1 << 20)] : text);
        }
        catch (HttpRequestException e)
        {
            return new Answer(0, JsonSerializer.Serialize(new { message = $"the Docker engine did not answer: {e.Message}" }));
        }
        catch (TaskCanceledException e) when (!ct.IsCancellationRequested)
        {
            return new Answer(0, JsonSerializer.Serialize(new { message = $"the Docker engine did not answer within {_http.Timeout.TotalSeconds:F0} s ({e.Message})" }));
        }
    }

    private static string Message(Answer answer)
    {
        string? message = null;
        try
        {
            message = JsonNode.Parse(answer.Body)?["message"]?.GetValue<string>();
        }
        catch (JsonException)
        {
            // not JSON
        }

        return $"{((int)answer.Status).ToString(CultureInfo.InvariantCulture)}: {message ?? answer.Body}";
    }
}
