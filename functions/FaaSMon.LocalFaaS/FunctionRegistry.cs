using System.Collections.Concurrent;
using System.Security.Cryptography;
using Microsoft.Extensions.Logging;

namespace FaaSMon.LocalFaaS;

/// <summary>
/// The provider side of the gateway: deploys functions whose code is in the stack file, scales
/// them, removes them, and knows their instances.
/// </summary>
internal sealed partial class FunctionRegistry(
    StackFile stack,
    RuntimePaths paths,
    CgroupTree cgroups,
    SecretFiles secrets,
    ILoggerFactory loggerFactory) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, FunctionDeployment> _functions = new(StringComparer.Ordinal);
    private readonly ILogger _logger = loggerFactory.CreateLogger("FaaSMon.LocalFaaS.Provider");

    /// <summary>Environment every function gets from the platform (store, gateway, PATH); it overrides the stack's.</summary>
    public Dictionary<string, string> PlatformEnvironment { get; } = new(StringComparer.Ordinal);

    public IEnumerable<FunctionDeployment> All => _functions.Values.OrderBy(f => f.Name, StringComparer.Ordinal);

    public FunctionDeployment? Find(string name) => _functions.GetValueOrDefault(name);

    public StackFile Stack => stack;

    public static FunctionDeploymentRequest FromStack(string name, StackFunction function) => new()
    {
        Service = name,
        Image = string.IsNullOrEmpty(function.Image) ? $"{name}:latest" : function.Image,
        EnvProcess = function.Fprocess,
        EnvVars = function.Environment,
        Secrets = function.Secrets,
        Labels = function.Labels,
        Annotations = function.Annotations,
        Limits = function.Limits is null ? null : new FunctionResources { Memory = function.Limits.Memory, Cpu = function.Limits.Cpu },
    };

    /// <summary>Deploys (or redeploys, replacing the instances) a function whose handler is in the stack file.</summary>
    /// <exception cref="ArgumentException">The request is invalid or names code this provider does not have.</exception>
    public async Task<FunctionDeployment> DeployAsync(FunctionDeploymentRequest request, CancellationToken ct)
    {
        if (!FunctionName.IsValid(request.Service))
        {
            throw new ArgumentException($"invalid function name '{FunctionName.Describe(request.Service)}'");
        }

        if (!stack.Functions.TryGetValue(request.Service, out var source))
        {
            throw new ArgumentException(
                $"no code for '{request.Service}': the local provider deploys only functions whose handler is in {Path.Combine(stack.Directory, "stack.yml")}");
        }

        var spec = BuildSpec(request, source);
        var deployment = new FunctionDeployment(request, spec);
        if (_functions.TryRemove(request.Service, out var previous))
        {
            await StopAllAsync(previous);
        }

        _functions[request.Service] = deployment;
        await ScaleAsync(deployment, FunctionDeployment.MinReplicas(request), ct);
        LogDeployed(_logger, request.Service, deployment.Instances.Count);
        return deployment;
    }

    public async Task<bool> RemoveAsync(string name)
    {
        if (!_functions.TryRemove(name, out var deployment))
        {
            return false;
        }

        await StopAllAsync(deployment);
        return true;
    }

    public async Task ScaleAsync(FunctionDeployment deployment, int replicas, CancellationToken ct)
    {
        replicas = Math.Clamp(replicas, 0, FunctionDeployment.MaxReplicas);
        await deployment.Lock.WaitAsync(ct);
        try
        {
            while (deployment.Instances.Count < replicas)
            {
                var instance = new FunctionInstance(deployment.Spec, InstanceName(deployment.Name), paths, cgroups, _logger);
                deployment.Add(instance);
                await instance.StartAsync(ct);
            }

            while (deployment.Instances.Count > replicas && deployment.RemoveLast() is { } extra)
            {
                await extra.DisposeAsync();
            }
        }
        finally
        {
            deployment.Lock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var deployment in _functions.Values)
        {
            await StopAllAsync(deployment);
        }

        _functions.Clear();
    }

    private InstanceSpec BuildSpec(FunctionDeploymentRequest request, StackFunction source)
    {
        var template = stack.TemplateDirectory(source);
        var handler = stack.HandlerDirectory(source);
        if (!File.Exists(Path.Combine(template, "index.js")))
        {
            throw new ArgumentException($"template '{source.Lang}' not found: {template}");
        }

        if (!Directory.Exists(Path.Combine(template, "node_modules")))
        {
            throw new ArgumentException($"template '{source.Lang}' has no node_modules: run 'npm ci' in {template} (./faasmon does it)");
        }

        var environment = new Dictionary<string, string>(request.EnvVars ?? [], StringComparer.Ordinal);
        foreach (var (key, value) in PlatformEnvironment)
        {
            environment[key] = value;
        }

        return new InstanceSpec(
            request.Service,
            template,
            handler,
            string.IsNullOrWhiteSpace(request.EnvProcess) ? "node index.js" : request.EnvProcess,
            environment,
            WriteFunctionSecrets(request.Service, request.Secrets ?? []),
            FunctionDeployment.ParseMemory(request.Limits?.Memory));
    }

    /// <summary>Copies just the secrets a function lists into its own folder, mounted read-only in its containers.</summary>
    private string WriteFunctionSecrets(string function, IReadOnlyList<string> names)
    {
        var dir = Path.Combine(paths.FunctionSecrets, function);
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }

        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                                  UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        foreach (var name in names)
        {
            if (!FunctionName.IsValid(name))
            {
                throw new ArgumentException($"invalid secret name '{FunctionName.Describe(name)}'");
            }

            var path = Path.Combine(dir, name);
            File.WriteAllText(path, secrets.GetOrCreate(name));
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        return dir;
    }

    private static async Task StopAllAsync(FunctionDeployment deployment)
    {
        await deployment.Lock.WaitAsync();
        try
        {
            while (deployment.RemoveLast() is { } instance)
            {
                await instance.DisposeAsync();
            }
        }
        finally
        {
            deployment.Lock.Release();
        }
    }

    // Kubernetes-like pod names: the function plus a random suffix; bounded to a hostname's 63 chars.
    private static string InstanceName(string function)
    {
        var prefix = function.Length > 56 ? function[..56] : function;
        return $"{prefix}-{Convert.ToHexString(RandomNumberGenerator.GetBytes(3)).ToLowerInvariant()}";
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "deployed {Function} with {Replicas} replica(s)")]
    private static partial void LogDeployed(ILogger logger, string function, int replicas);
}
