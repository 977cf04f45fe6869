using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.LocalFaaS;

public sealed class LocalFaasOptions
{
    /// <summary>Gateway port; 0 picks a free one.</summary>
    public int Port { get; set; } = 8081;

    public string BindAddress { get; set; } = "127.0.0.1";

    /// <summary>The stack file; default <c>functions/stack.yml</c> found upward from the program's folder or the current one.</summary>
    public string? StackFile { get; set; }

    /// <summary>State (database, secrets, instances); default <c>/var/lib/faasmon/localfaas</c>. Must not be under /tmp.</summary>
    public string? StateDirectory { get; set; }

    /// <summary>The gateway URL functions call each other through (FaaSMon's proxy, say); default this gateway.</summary>
    public Uri? FunctionGatewayUrl { get; set; }

    public static string DefaultStateDirectory => "/var/lib/faasmon/localfaas";
}

/// <summary>
/// A running LocalFaaS: PostgreSQL for hello-retail, the OpenFaaS-compatible gateway, and every
/// function of the stack file deployed as warm lightweight containers.
/// </summary>
public sealed partial class LocalFaasHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly FunctionRegistry _registry;
    private readonly PostgresStore _store;
    private readonly HttpMessageInvoker _upstream;

    private LocalFaasHost(WebApplication app, FunctionRegistry registry, PostgresStore store, HttpMessageInvoker upstream,
        Uri gatewayUrl, NetworkCredential admin, IReadOnlyDictionary<string, string> secretValues)
    {
        _app = app;
        _registry = registry;
        _store = store;
        _upstream = upstream;
        GatewayUrl = gatewayUrl;
        AdminCredential = admin;
        SecretValues = secretValues;
    }

    public Uri GatewayUrl { get; }

    public NetworkCredential AdminCredential { get; }

    /// <summary>The secret values the functions hold (<c>PGPASSWORD</c>, function secrets), for verifying attacks; never log them.</summary>
    public IReadOnlyDictionary<string, string> SecretValues { get; }

    /// <summary>The function instances, for tests and tooling: function, instance, host PID of the function process.</summary>
    public IReadOnlyList<(string Function, string Instance, int? Pid)> Instances =>
        [.. _registry.All.SelectMany(f => f.Instances.Select(i => (f.Name, i.Name, i.FunctionPid)))];

    internal FunctionRegistry Registry => _registry;

    public static async Task<LocalFaasHost> StartAsync(LocalFaasOptions options, ILoggerFactory? loggerFactory = null, CancellationToken ct = default)
    {
        loggerFactory ??= NullLoggerFactory.Instance;
        var logger = loggerFactory.CreateLogger("FaaSMon.LocalFaaS");
        if (!Unix.IsRoot)
        {
            throw new InvalidOperationException("LocalFaaS needs root: it creates namespaces and cgroups for its function containers");
        }

        var stackPath = options.StackFile ?? FindStackFile()
            ?? throw new FileNotFoundException(
                $"functions/stack.yml not found in or above {AppContext.BaseDirectory} or {Directory.GetCurrentDirectory()}: run faasmon from its checkout (./faasmon), or pass the stack file (localfaas --stack FILE)");
        var stack = StackFile.Load(stackPath);
        var fnbox = Path.Combine(AppContext.BaseDirectory, "faasmon-fnbox");
        if (!File.Exists(fnbox))
        {
            throw new FileNotFoundException($"the container launcher is missing: {fnbox} (build FaaSMon.LocalFaaS with a C compiler)", fnbox);
        }

        var paths = new RuntimePaths(options.StateDirectory ?? LocalFaasOptions.DefaultStateDirectory, fnbox);
        var secrets = new SecretFiles(paths.PlatformSecrets);
        var admin = new NetworkCredential(secrets.GetOrCreate("basic-auth-user", () => "admin"), secrets.GetOrCreate("basic-auth-password"));
        var store = new PostgresStore(paths.Store, secrets, loggerFactory.CreateLogger("FaaSMon.LocalFaaS.Store"));
        var registry = new FunctionRegistry(stack, paths, CgroupTree.Detect(logger), secrets, loggerFactory);
        var upstream = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = TimeSpan.FromSeconds(5),
        });

        WebApplication? app = null;
        try
        {
            await store.StartAsync(Path.Combine(stack.Directory, "store"), ct);
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.Services.AddSingleton(loggerFactory);
            builder.Services.AddHttpForwarder();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Parse(options.BindAddress), options.Port));
            app = builder.Build();
            GatewayEndpoints.Map(app, registry, admin, upstream);
            await app.StartAsync(ct);

            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
            var gatewayUrl = new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal));
            registry.PlatformEnvironment["PATH"] = "/usr/local/bin:/usr/bin:/bin";
            registry.PlatformEnvironment["HOME"] = "/tmp";
            registry.PlatformEnvironment["NODE_ENV"] = "production";
            registry.PlatformEnvironment["gateway_url"] = (options.FunctionGatewayUrl ?? gatewayUrl).ToString().TrimEnd('/');
            registry.PlatformEnvironment["PGHOST"] = "127.0.0.1";
            registry.PlatformEnvironment["PGPORT"] = store.Port.ToString(System.Globalization.CultureInfo.InvariantCulture);
            registry.PlatformEnvironment["PGUSER"] = PostgresStore.User;
            registry.PlatformEnvironment["PGPASSWORD"] = store.Password;
            registry.PlatformEnvironment["PGDATABASE"] = PostgresStore.Database;

            // Two at a time: node start-up is CPU-bound and these machines have two cores.
            await Parallel.ForEachAsync(stack.Functions, new ParallelOptions { MaxDegreeOfParallelism = 2, CancellationToken = ct },
                async (f, token) => await registry.DeployAsync(FunctionRegistry.FromStack(f.Key, f.Value), token));

            var secretValues = new Dictionary<string, string>(StringComparer.Ordinal) { ["PGPASSWORD"] = store.Password };
            foreach (var name in stack.Functions.Values.SelectMany(f => f.Secrets).Distinct(StringComparer.Ordinal))
            {
                secretValues[name] = secrets.GetOrCreate(name);
            }

            LogStarted(logger, gatewayUrl, stack.Functions.Count);
            return new LocalFaasHost(app, registry, store, upstream, gatewayUrl, admin, secretValues);
        }
        catch
        {
            await registry.DisposeAsync();
            if (app is not null)
            {
                await app.DisposeAsync();
            }

            await store.DisposeAsync();
            upstream.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _registry.DisposeAsync();
        await _app.DisposeAsync();
        await _store.DisposeAsync();
        _upstream.Dispose();
    }

    /// <summary>
    /// Whether process <paramref name="pid"/> is a function instance of the runtime whose state is <paramref name="stateDirectory"/>
    /// (it works in its instance's copy of the code): how a tracer on a machine with several runtimes keeps to one.
    /// </summary>
    public static bool RunsIn(string stateDirectory, int pid)
    {
        var instances = Path.Combine(Path.GetFullPath(stateDirectory), "instances") + "/";
        try
        {
            return new FileInfo($"/proc/{pid.ToString(System.Globalization.CultureInfo.InvariantCulture)}/cwd").LinkTarget?.StartsWith(instances, StringComparison.Ordinal) == true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary><c>functions/stack.yml</c> above the program's folder or the current folder.</summary>
    public static string? FindStackFile()
    {
        foreach (var start in new[] { AppContext.BaseDirectory, Directory.GetCurrentDirectory() })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, "functions", "stack.yml");
                if (File.Exists(candidate))
                {
                    return candidate;
                }
            }
        }

        return null;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "LocalFaaS gateway on {Url} with {Count} functions")]
    private static partial void LogStarted(ILogger logger, Uri url, int count);
}
