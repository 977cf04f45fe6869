using System.Collections.Concurrent;
using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Workload;

/// <summary>
/// Drives benign hello-retail traffic and real attacks through an OpenFaaS-compatible gateway, and writes the ground truth
/// of every request it sends. It starts (and always stops) its own loopback servers: a photo host for benign uploads, the
/// attacker's web server, and the attacker's reverse-shell listener.
/// </summary>
public sealed class WorkloadDriver(ILogger<WorkloadDriver> logger)
{
    private static readonly TimeSpan ReachabilityTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The attack families, in the order <c>all</c> runs them.</summary>
    public static IReadOnlyList<string> AttackFamilies => AttackFamily.Names;

    /// <summary>Runs the workload.</summary>
    /// <exception cref="ArgumentException">An unknown attack family or an invalid option.</exception>
    /// <exception cref="InvalidOperationException">The gateway does not answer at all.</exception>
    public async Task<WorkloadReport> RunAsync(WorkloadOptions options, IProgress<WorkloadProgress>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        var families = AttackFamily.Resolve(options.Attacks);
        Validate(options);
        var started = Stopwatch.GetTimestamp();
        WorkloadLog.Starting(logger, options.Gateway, options.Benign, string.Join(", ", families), options.Seed, options.Concurrency);

        using var http = CreateHttpClient();
        await EnsureReachableAsync(http, options.Gateway, ct);

        await using var photoHost = await PhotoHost.StartAsync(ct);
        await using var attacker = await AttackerServer.StartAsync(ct);
        await using var shells = ReverseShellListener.Start();
        await using var groundTruth = GroundTruthWriter.Open(options.GroundTruthPath);
        WorkloadLog.ServersStarted(logger, photoHost.BaseUri, attacker.BaseUri, shells.Port);

        var gateway = new GatewayClient(http, options.Gateway, groundTruth, options.RequestTimeout, logger);
        var tally = new ProgressTally(options.Benign + families.Count, progress);
        var benignProgress = new BenignProgress();
        var planner = new Random(options.Seed);
        var environment = new AttackEnvironment(gateway, attacker, shells, options.KnownSecrets, logger);
        var runs = PlanAttacks(families, options.Benign, planner, benignProgress, environment);

        var attackTasks = runs.Select(r => RunAttackAsync(r.Scenario, r.Run, tally, ct)).ToList();
        IReadOnlyList<FunctionTraffic> benign;
        try
        {
            benign = await RunBenignAsync(options, gateway, photoHost, benignProgress, tally, ct);
        }
        finally
        {
            // Whatever happened to the benign traffic, attacks must not wait for positions that will never come, and
            // must be over before the servers they use are stopped.
            benignProgress.Finish();
            await Quietly(Task.WhenAll(attackTasks));
        }

        var outcomes = await Task.WhenAll(attackTasks);
        var report = new WorkloadReport(benign, outcomes, Stopwatch.GetElapsedTime(started), groundTruth.Path, groundTruth.Lines);
        WorkloadLog.Finished(
            logger,
            report.Duration.TotalSeconds,
            report.BenignOk,
            report.BenignSent,
            outcomes.Count(o => o.Succeeded),
            outcomes.Length,
            report.RequestsSent,
            groundTruth.Path ?? "(none)");
        return report;
    }

    private static void Validate(WorkloadOptions options)
    {
        ArgumentNullException.ThrowIfNull(options.Gateway, nameof(options.Gateway));
        if (!options.Gateway.IsAbsoluteUri || options.Gateway.Scheme is not ("http" or "https"))
        {
            throw new ArgumentException($"the gateway must be an absolute http(s) URL, not '{options.Gateway}'", nameof(options));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(options.Benign, nameof(options.Benign));
        ArgumentOutOfRangeException.ThrowIfLessThan(options.Concurrency, 1, nameof(options.Concurrency));
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(options.RequestTimeout, TimeSpan.Zero, nameof(options.RequestTimeout));
        ArgumentNullException.ThrowIfNull(options.KnownSecrets, nameof(options.KnownSecrets));
    }

    private static HttpClient CreateHttpClient() =>
        new(new SocketsHttpHandler
        {
            // Traffic goes to the gateway we were given, never through a proxy picked up from the environment.
            UseProxy = false,
            AllowAutoRedirect = false,
            ConnectTimeout = ReachabilityTimeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(1),
        })
        {
            // Per-request timeouts are ours (GatewayClient); HttpClient's own would throw instead of counting a failure.
            Timeout = Timeout.InfiniteTimeSpan,
        };

    /// <summary>Any HTTP answer means reachable; only a connection that cannot be made (or hangs) is fatal.</summary>
    private static async Task EnsureReachableAsync(HttpClient http, Uri gateway, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(ReachabilityTimeout);
        try
        {
            using var response = await http.GetAsync(new Uri(gateway.AbsoluteUri.TrimEnd('/') + "/healthz"), timeout.Token);
        }
        catch (HttpRequestException ex)
        {
            throw new InvalidOperationException($"gateway {gateway} is not reachable: {ex.Message}", ex);
        }
        catch (OperationCanceledException ex) when (!ct.IsCancellationRequested)
        {
            throw new InvalidOperationException($"gateway {gateway} is not reachable: no answer within {ReachabilityTimeout.TotalSeconds:F0}s", ex);
        }
    }

    /// <summary>
    /// Every attack run gets a fresh nonce and, for each gated step, a seeded position in the benign traffic: inside it
    /// (after the first benign request, before the last) when there is room, so warm containers serve benign requests
    /// before and after the attack.
    /// </summary>
    private static List<(IAttackScenario Scenario, AttackRun Run)> PlanAttacks(
        IReadOnlyList<string> families, int benign, Random planner, BenignProgress benignProgress, AttackEnvironment environment)
    {
        var runs = new List<(IAttackScenario, AttackRun)>();
        var perFamily = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var family in families)
        {
            var scenario = CreateScenario(family);
            var index = perFamily[family] = perFamily.GetValueOrDefault(family) + 1;
            var low = benign >= 2 ? 1 : 0;
            var high = benign >= 2 ? benign - 1 : benign;
            var positions = Enumerable.Range(0, scenario.GatedSteps).Select(_ => planner.Next(low, high + 1)).Order().ToList();
            for (var i = 1; i < positions.Count; i++)
            {
                // A later step should find the container after some benign use, not back to back with the earlier one.
                if (positions[i] <= positions[i - 1] && positions[i - 1] < high)
                {
                    positions[i] = positions[i - 1] + 1;
                }
            }

            var run = new AttackRun(family, $"{family}-{index}", AttackPayloads.NewNonce(), positions, benignProgress, environment);
            runs.Add((scenario, run));
        }

        return runs;
    }

    private static IAttackScenario CreateScenario(string family) => family switch
    {
        AttackFamily.ContainerReuse => new ContainerReuseAttack(),
        AttackFamily.CredentialTheft => new CredentialTheftAttack(),
        AttackFamily.LateralMovement => new LateralMovementAttack(),
        AttackFamily.ReverseShell => new ReverseShellAttack(),
        AttackFamily.Tampering => new TamperingAttack(),
        _ => throw new ArgumentException($"unknown attack family '{family}'", nameof(family)),
    };

    private async Task<AttackOutcome> RunAttackAsync(IAttackScenario scenario, AttackRun run, ProgressTally tally, CancellationToken ct)
    {
        AttackOutcome outcome;
        try
        {
            outcome = await scenario.RunAsync(run, ct);
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            // One broken attack must not take the run down: it is reported as not verified.
            WorkloadLog.AttackCrashed(logger, run.AttackId, ex);
            outcome = run.Outcome(false, $"the attack failed before verification: {ex.GetType().Name}: {ex.Message}");
        }

        if (outcome.Succeeded)
        {
            WorkloadLog.AttackSucceeded(logger, run.AttackId, outcome.Evidence);
        }
        else
        {
            WorkloadLog.AttackFailed(logger, run.AttackId, outcome.Evidence);
        }

        tally.Step($"{run.AttackId} {(outcome.Succeeded ? "verified" : "NOT verified")}");
        return outcome;
    }

    private async Task<IReadOnlyList<FunctionTraffic>> RunBenignAsync(
        WorkloadOptions options, GatewayClient gateway, PhotoHost photoHost, BenignProgress benignProgress, ProgressTally tally, CancellationToken ct)
    {
        var catalog = new CatalogKnowledge();
        var traffic = new BenignTraffic(catalog, photoHost, options.Seed);
        var counters = new ConcurrentDictionary<string, BenignCounter>(StringComparer.Ordinal);
        using var slots = new SemaphoreSlim(options.Concurrency, options.Concurrency);
        var inFlight = new List<Task>(options.Benign);
        try
        {
            for (var index = 0; index < options.Benign; index++)
            {
                await slots.WaitAsync(ct);

                // Drawn only when a slot frees, so later requests can use what earlier answers taught the catalog.
                var request = traffic.Create(index);
                inFlight.Add(SendOneAsync(request));
            }
        }
        finally
        {
            // Even when cancelled: no request may still hold a slot of the semaphore disposed on return.
            await Quietly(Task.WhenAll(inFlight));
        }

        await Task.WhenAll(inFlight);
        return [.. counters.Values.Select(c => c.Snapshot()).OrderBy(f => f.Function, StringComparer.Ordinal)];

        async Task SendOneAsync(BenignRequest request)
        {
            try
            {
                var response = await gateway.SendAsync(request.Request, RequestLabel.Benign, ct);
                catalog.Learn(request.Request.Function, response);
                var asExpected = request.AnsweredAsExpected(response);
                counters.GetOrAdd(request.Request.Function, f => new BenignCounter(f)).Count(asExpected, request.IsDeliberateError);
                if (asExpected)
                {
                    WorkloadLog.BenignAnswered(logger, request.Kind, request.Request.Function, response.ToString());
                }
                else
                {
                    WorkloadLog.BenignUnexpected(logger, request.Kind, request.Request.Function, response.ToString(), request.ExpectedStatus?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "2xx");
                }

                tally.Step($"{request.Kind} {request.Request.Function} {response}");
            }
            finally
            {
                benignProgress.OneCompleted();
                slots.Release();
            }
        }
    }

    /// <summary>Waits for <paramref name="task"/> without throwing; its outcome is observed elsewhere.</summary>
    private static Task Quietly(Task task) =>
        task.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    private sealed class BenignCounter(string function)
    {
        private int sent;
        private int ok;
        private int deliberateErrors;

        public void Count(bool asExpected, bool deliberateError)
        {
            Interlocked.Increment(ref sent);
            if (asExpected)
            {
                Interlocked.Increment(ref ok);
                if (deliberateError)
                {
                    Interlocked.Increment(ref deliberateErrors);
                }
            }
        }

        public FunctionTraffic Snapshot()
        {
            var s = Volatile.Read(ref sent);
            var o = Volatile.Read(ref ok);
            return new FunctionTraffic(function, s, o, s - o, Volatile.Read(ref deliberateErrors));
        }
    }

    private sealed class ProgressTally(int total, IProgress<WorkloadProgress>? progress)
    {
        private int done;

        public void Step(string last) => progress?.Report(new WorkloadProgress(Interlocked.Increment(ref done), total, last));
    }
}
