using System.Text.Json.Serialization;

namespace FaaSMon.LocalFaaS;

/// <summary>faas-provider <c>types.FunctionDeployment</c>: the body of POST/PUT /system/functions.</summary>
internal sealed record FunctionDeploymentRequest
{
    [JsonPropertyName("service")] public string Service { get; init; } = "";
    [JsonPropertyName("image")] public string Image { get; init; } = "";
    [JsonPropertyName("namespace")] public string? Namespace { get; init; }
    [JsonPropertyName("envProcess")] public string? EnvProcess { get; init; }
    [JsonPropertyName("envVars")] public Dictionary<string, string>? EnvVars { get; init; }
    [JsonPropertyName("secrets")] public List<string>? Secrets { get; init; }
    [JsonPropertyName("labels")] public Dictionary<string, string>? Labels { get; init; }
    [JsonPropertyName("annotations")] public Dictionary<string, string>? Annotations { get; init; }
    [JsonPropertyName("limits")] public FunctionResources? Limits { get; init; }
    [JsonPropertyName("requests")] public FunctionResources? Requests { get; init; }
    [JsonPropertyName("readOnlyRootFilesystem")] public bool ReadOnlyRootFilesystem { get; init; }
}

internal sealed record FunctionResources
{
    [JsonPropertyName("memory")] public string? Memory { get; init; }
    [JsonPropertyName("cpu")] public string? Cpu { get; init; }
}

/// <summary>faas-provider <c>types.FunctionStatus</c>, plus the instances this provider runs (faas-cli ignores unknown fields).</summary>
internal sealed record FunctionStatus
{
    [JsonPropertyName("name")] public required string Name { get; init; }
    [JsonPropertyName("image")] public required string Image { get; init; }
    [JsonPropertyName("namespace")] public string Namespace { get; init; } = "openfaas-fn";
    [JsonPropertyName("envProcess")] public string? EnvProcess { get; init; }
    [JsonPropertyName("envVars")] public Dictionary<string, string>? EnvVars { get; init; }
    [JsonPropertyName("secrets")] public List<string>? Secrets { get; init; }
    [JsonPropertyName("labels")] public Dictionary<string, string>? Labels { get; init; }
    [JsonPropertyName("annotations")] public Dictionary<string, string>? Annotations { get; init; }
    [JsonPropertyName("limits")] public FunctionResources? Limits { get; init; }
    [JsonPropertyName("readOnlyRootFilesystem")] public bool ReadOnlyRootFilesystem { get; init; }
    [JsonPropertyName("invocationCount")] public double InvocationCount { get; init; }
    [JsonPropertyName("replicas")] public ulong Replicas { get; init; }
    [JsonPropertyName("availableReplicas")] public ulong AvailableReplicas { get; init; }
    [JsonPropertyName("createdAt")] public DateTimeOffset CreatedAt { get; init; }
    [JsonPropertyName("instances")] public required IReadOnlyList<InstanceStatus> Instances { get; init; }
}

internal sealed record InstanceStatus(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("state")] string State,
    [property: JsonPropertyName("pid")] int? Pid,
    [property: JsonPropertyName("port")] int Port,
    [property: JsonPropertyName("inflight")] int Inflight,
    [property: JsonPropertyName("restarts")] int Restarts,
    [property: JsonPropertyName("startedAt")] DateTimeOffset StartedAt,
    [property: JsonPropertyName("lastError")] string? LastError);

internal sealed record ScaleRequest
{
    [JsonPropertyName("serviceName")] public string? ServiceName { get; init; }
    [JsonPropertyName("replicas")] public long Replicas { get; init; }
}

internal sealed record DeleteRequest
{
    [JsonPropertyName("functionName")] public string? FunctionName { get; init; }
}
