using System.Globalization;
using System.Text.RegularExpressions;

namespace FaaSMon.LocalFaaS;

/// <summary>One deployed function: its configuration and its running instances.</summary>
internal sealed partial class FunctionDeployment(FunctionDeploymentRequest request, InstanceSpec spec)
{
    private readonly List<FunctionInstance> _instances = [];
    private long _invocations;
    private int _next;

    public string Name => request.Service;

    public FunctionDeploymentRequest Request => request;

    public InstanceSpec Spec => spec;

    public DateTimeOffset CreatedAt { get; } = DateTimeOffset.UtcNow;

    /// <summary>of-watchdog's <c>exec_timeout</c>: default 10 s in the node template, 0 disables it.</summary>
    public TimeSpan? ExecTimeout { get; } = ReadTimeout(request.EnvVars, "exec_timeout", TimeSpan.FromSeconds(10));

    /// <summary>of-watchdog's <c>max_inflight</c> per instance (0 = unlimited).</summary>
    public int MaxInflight { get; } =
        int.TryParse(request.EnvVars?.GetValueOrDefault("max_inflight"), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 0;

    public SemaphoreSlim Lock { get; } = new(1, 1);

    public long Invocations => Interlocked.Read(ref _invocations);

    public IReadOnlyList<FunctionInstance> Instances
    {
        get
        {
            lock (_instances)
            {
                return [.. _instances];
            }
        }
    }

    public void Add(FunctionInstance instance)
    {
        lock (_instances)
        {
            _instances.Add(instance);
        }
    }

    public FunctionInstance? RemoveLast()
    {
        lock (_instances)
        {
            if (_instances.Count == 0)
            {
                return null;
            }

            var last = _instances[^1];
            _instances.RemoveAt(_instances.Count - 1);
            return last;
        }
    }

    public void CountInvocation() => Interlocked.Increment(ref _invocations);

    /// <summary>Round-robin over ready instances below <see cref="MaxInflight"/>.</summary>
    public FunctionInstance? TryAcquire(out bool saturated)
    {
        var instances = Instances;
        saturated = false;
        var start = Interlocked.Increment(ref _next);
        for (var i = 0; i < instances.Count; i++)
        {
            var candidate = instances[(int)((uint)(start + i) % (uint)instances.Count)];
            if (candidate.TryAcquire(MaxInflight))
            {
                return candidate;
            }

            saturated |= candidate.State == InstanceState.Ready;
        }

        return null;
    }

    public FunctionStatus Status()
    {
        var instances = Instances;
        return new FunctionStatus
        {
            Name = Name,
            Image = request.Image,
            Namespace = request.Namespace ?? "openfaas-fn",
            EnvProcess = request.EnvProcess,
            EnvVars = request.EnvVars,
            Secrets = request.Secrets,
            Labels = request.Labels,
            Annotations = request.Annotations,
            Limits = request.Limits,
            ReadOnlyRootFilesystem = request.ReadOnlyRootFilesystem,
            InvocationCount = Invocations,
            Replicas = (ulong)instances.Count,
            AvailableReplicas = (ulong)instances.Count(i => i.State == InstanceState.Ready),
            CreatedAt = CreatedAt,
            Instances = [.. instances.Select(i => new InstanceStatus(i.Name, i.State.ToString().ToLowerInvariant(), i.FunctionPid, i.Port, i.Inflight, i.Restarts, i.StartedAt, i.LastError))],
        };
    }

    /// <summary>Replicas asked for by <c>com.openfaas.scale.min</c> (default 1).</summary>
    public static int MinReplicas(FunctionDeploymentRequest request) =>
        int.TryParse(request.Labels?.GetValueOrDefault("com.openfaas.scale.min"), NumberStyles.None, CultureInfo.InvariantCulture, out var n)
            ? Math.Clamp(n, 0, MaxReplicas)
            : 1;

    public const int MaxReplicas = 16;

    /// <summary>Kubernetes-style quantities: 128Mi, 1Gi, 64M, 1000000.</summary>
    public static long? ParseMemory(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        var m = Quantity().Match(text.Trim());
        if (!m.Success)
        {
            throw new FormatException($"invalid memory quantity '{FunctionName.Describe(text)}'");
        }

        var value = decimal.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        var factor = m.Groups[2].Value switch
        {
            "Ki" => 1L << 10, "Mi" => 1L << 20, "Gi" => 1L << 30,
            "k" or "K" => 1_000L, "M" => 1_000_000L, "G" => 1_000_000_000L,
            _ => 1L,
        };
        return (long)(value * factor);
    }

    private static TimeSpan? ReadTimeout(Dictionary<string, string>? env, string key, TimeSpan fallback)
    {
        if (env?.GetValueOrDefault(key) is not { } text)
        {
            return fallback;
        }

        return GoDuration.TryParse(text, out var value) ? (value == TimeSpan.Zero ? null : value) : fallback;
    }

    [GeneratedRegex(@"^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|K|M|G)?$")]
    private static partial Regex Quantity();
}
