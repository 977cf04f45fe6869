using System.Collections.Concurrent;
using System.Net.Http.Headers;
using System.Text;
using FaaSMon.Monitor.Hosting;
using FaaSMon.Workload;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

// Each fixture of this assembly runs a whole LocalFaaS with PostgreSQL and traced functions: one at a time on two cores.
[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// <c>faasmon serve</c> all-in-one on real processes (LocalFaaS, proxy, strace, grapher, rules, SQLite), with an alert
/// receiver, after benign traffic (a purchase chain among it) and a reverse-shell attack went through it.
/// </summary>
public sealed class ServeFixture : IAsyncLifetime
{
    private readonly ConcurrentQueue<string> _alerts = new();
    private WebApplication? _receiver;

    internal ServeHost Host { get; private set; } = null!;

    public string DataDirectory { get; private set; } = "";

    public Uri Api => Host.ApiUrl;

    public IReadOnlyList<string> Alerts => [.. _alerts];

    public WorkloadReport Workload { get; private set; } = null!;

    public string GroundTruth => Path.Combine(DataDirectory, "ground-truth.jsonl");

    public async Task InitializeAsync()
    {
        DataDirectory = Path.Combine("/var/lib/faasmon/tests", $"serve-{DateTime.UtcNow:HHmmss}-{Guid.NewGuid().ToString("N")[..8]}");
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var receiver = builder.Build();
        receiver.MapPost("/alerts", async Task<IResult> (HttpRequest request) =>
        {
            using var reader = new StreamReader(request.Body, Encoding.UTF8);
            _alerts.Enqueue(await reader.ReadToEndAsync());
            return Results.Ok(new { received = true });
        });
        await receiver.StartAsync();
        _receiver = receiver;
        var hook = receiver.Urls.First() + "/alerts";

        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(6));
        Host = await StartAsync(new Dictionary<string, string?>
        {
            ["Monitor:DataDirectory"] = DataDirectory,
            ["Monitor:Listen"] = "127.0.0.1:0",
            ["Monitor:Gateway"] = "127.0.0.1:0",
            ["Monitor:AlertWebhook"] = hook,
        }, timeout.Token);
        using var loggers = LoggerFactory.Create(b => b.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning));
        Workload = await new WorkloadDriver(loggers.CreateLogger<WorkloadDriver>()).RunAsync(new WorkloadOptions
        {
            Gateway = Host.GatewayUrl!,
            Benign = 24,
            Attacks = ["reverse-shell"],
            GroundTruthPath = GroundTruth,
            Seed = 5,
            Concurrency = 2,
            KnownSecrets = Host.Stack!.Faas.SecretValues,
        }, null, timeout.Token);

        // the attack's requests have their final verdicts (a reverse shell waits for its children: seconds), and nothing
        // more came for a while: requests the gateway itself answered (4xx) never make a graph
        var attack = Workload.Attacks.SelectMany(a => a.CallIds).ToHashSet();
        var last = -1L;
        var quiet = System.Diagnostics.Stopwatch.StartNew();
        var waited = System.Diagnostics.Stopwatch.StartNew();
        while (waited.Elapsed < TimeSpan.FromSeconds(90))
        {
            var final = Host.Store.List(new Store.InvocationQuery(null, null, null, 500, null)).Items.Where(i => i.Final).Select(i => i.CallId).ToHashSet();
            if (Host.Pipeline.Classified != last)
            {
                last = Host.Pipeline.Classified;
                quiet.Restart();
            }

            if (attack.All(final.Contains) && !_alerts.IsEmpty && quiet.Elapsed > TimeSpan.FromSeconds(3))
            {
                break;
            }

            await Task.Delay(250, timeout.Token);
        }
    }

    /// <summary>
    /// Stops the host (graceful: open invocations are built and stored) and starts it again on the same data directory,
    /// now following a proxy's and a tracer's files that are empty, so whatever it shows came from the store.
    /// </summary>
    public async Task RestartAsync()
    {
        await Host.DrainAsync(TimeSpan.FromSeconds(1), CancellationToken.None);
        await Host.DisposeAsync();
        var proxy = Path.Combine(DataDirectory, "restart-proxy");
        Directory.CreateDirectory(Path.Combine(proxy, "records"));
        var events = Path.Combine(DataDirectory, "restart-events.ndjson");
        File.WriteAllText(events, "");
        Host = await StartAsync(new Dictionary<string, string?>
        {
            ["Monitor:DataDirectory"] = DataDirectory,
            ["Monitor:Listen"] = "127.0.0.1:0",
            ["Monitor:ProxyData"] = proxy,
            ["Monitor:TraceEvents"] = events,
        }, CancellationToken.None);
    }

    internal static Task<ServeHost> StartAsync(Dictionary<string, string?> settings, CancellationToken ct) =>
        ServeHost.StartAsync([], settings, verbose: false, ct);

    /// <summary>A client that sends the API's basic-auth credentials.</summary>
    internal HttpClient Client(ServeHost? host = null) => ClientFor(host ?? Host);

    /// <summary>A client that sends <paramref name="host"/>'s basic-auth credentials.</summary>
    internal static HttpClient ClientFor(ServeHost host)
    {
        var client = new HttpClient { BaseAddress = host.ApiUrl, Timeout = TimeSpan.FromSeconds(30) };
        client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{host.Credentials.User}:{host.Credentials.Password}")));
        return client;
    }

    public async Task DisposeAsync()
    {
        if (Host is not null)
        {
            await Host.DisposeAsync();
        }

        if (_receiver is not null)
        {
            await _receiver.DisposeAsync();
        }
    }
}
