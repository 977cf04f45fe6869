using System.Collections.Concurrent;
using Docker.DotNet;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Tracer;

/// <summary>
/// Container id → OpenFaaS function through the Docker Engine API (the <c>com.openfaas.function</c> label faas-swarm
/// puts on function containers, the container name as the instance). Answers are cached: ids never change meaning.
/// </summary>
internal sealed partial class DockerIdentityResolver(DockerClient client, ILogger<DockerIdentityResolver> logger) : IDisposable
{
    public const string FunctionLabel = "com.openfaas.function";

    private readonly ConcurrentDictionary<string, FunctionIdentity?> _cache = new(StringComparer.Ordinal);

    /// <summary>A client for <c>DOCKER_HOST</c> (default <c>unix:///var/run/docker.sock</c>).</summary>
    public static DockerClient CreateClient(string? dockerHost)
    {
        var builder = new DockerClientBuilder();
        if (!string.IsNullOrEmpty(dockerHost))
        {
            builder = builder.WithEndpoint(new Uri(dockerHost));
        }

        return builder.Build();
    }

    public async Task<FunctionIdentity?> ResolveAsync(string containerId, CancellationToken ct)
    {
        if (_cache.TryGetValue(containerId, out var cached))
        {
            return cached;
        }

        FunctionIdentity? identity = null;
        try
        {
            var container = await client.Containers.InspectContainerAsync(containerId, ct);
            var name = container.Name.TrimStart('/');
            if (container.Config?.Labels?.TryGetValue(FunctionLabel, out var function) == true && function.Length > 0)
            {
                identity = new FunctionIdentity(function, name, "docker", container.ID);
            }
        }
        catch (DockerContainerNotFoundException)
        {
            // a container that is gone (or not Docker's) is not a function
        }
        catch (Exception e) when (e is HttpRequestException or DockerApiException or IOException or TimeoutException or System.Text.Json.JsonException)
        {
            LogDockerUnavailable(logger, containerId, e.Message);
            return null; // not cached: the engine may come back
        }

        _cache[containerId] = identity;
        return identity;
    }

    public void Dispose() => client.Dispose();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Docker API unavailable while resolving container {ContainerId}: {Reason}")]
    private static partial void LogDockerUnavailable(ILogger logger, string containerId, string reason);
}
