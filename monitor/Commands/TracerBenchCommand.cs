using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using FaaSMon.LocalFaaS;
using FaaSMon.Tracer;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Monitor.Commands;

/// <summary>
/// <c>faasmon bench tracer</c>: what tracing costs a function. One LocalFaaS; the same hello-retail load with no
/// tracing, with strace and with eBPF (tracer attached to every function process); p50/p99 latency, throughput, ratios.
/// Then the strace parser alone over a large recorded log (lines/s on one core).
/// </summary>
internal static class TracerBenchCommand
{
    private static readonly Option<int> Requests = new("--requests") { Description = "Measured requests per mode.", DefaultValueFactory = _ => 1000 };
    private static readonly Option<int> Concurrency = new("--concurrency") { Description = "Requests in flight.", DefaultValueFactory = _ => 4 };
    private static readonly Option<string> RequestPath = new("--path") { Description = "Gateway path of the invocation.", DefaultValueFactory = _ => "/function/product-catalog-api/categories" };
    private static readonly Option<int> ParserLines = new("--parser-lines") { Description = "Lines the parser benchmark parses.", DefaultValueFactory = _ => 2_000_000 };
    private static readonly Option<string?> Log = new("--log") { Description = "strace log for the parser benchmark (default: the recordings in tests/FaaSMon.Tracer.Tests/Fixtures)." };

    public static Command Create()
    {
        var command = new Command("tracer", "Invocation latency/throughput with no tracing, strace and eBPF, and strace parser lines/s.")
        {
            Requests, Concurrency, RequestPath, ParserLines, Log,
        };
        command.SetAction(async (parse, ct) => await RunAsync(parse, ct));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        var requests = Math.Max(10, parse.GetValue(Requests));
        var concurrency = Math.Max(1, parse.GetValue(Concurrency));
        var path = parse.GetValue(RequestPath)!;
        var state = Path.Combine("/var/lib/faasmon", $"bench-tracer-{Environment.ProcessId}");
        Console.WriteLine($"faasmon bench tracer: {requests} requests per mode, {concurrency} in flight, GET {path}, {Environment.ProcessorCount} cores");
        var results = new Dictionary<string, LoadResult>(StringComparer.Ordinal);
        // LocalFaaS and the tracer log nothing here: the figures are the output
        {
            await using var faas = await LocalFaasHost.StartAsync(new LocalFaasOptions { Port = 0, StateDirectory = state }, NullLoggerFactory.Instance, ct);
            try
            {
                using var http = new HttpClient { BaseAddress = faas.GatewayUrl, Timeout = TimeSpan.FromSeconds(30) };
                await LoadAsync(http, path, 100, concurrency, ct); // JIT, caches, database connections
                foreach (var mode in new[] { "none", "strace", "ebpf" })
                {
                    TracerSession? session = null;
                    Task drain = Task.CompletedTask;
                    if (mode != "none")
                    {
                        session = await TracerSession.StartAsync(new TracerOptions { Backend = mode, DockerHost = "none", AcceptPid = pid => LocalFaasHost.RunsIn(state, pid) }, NullLoggerFactory.Instance, ct);
                        var functions = faas.Instances.Count(i => i.Pid is not null);
                        var sw = Stopwatch.StartNew();
                        while (session.Counters.AttachedProcesses < functions && sw.Elapsed < TimeSpan.FromSeconds(60))
                        {
                            await Task.Delay(100, ct);
                        }

                        var events = session.Events;
                        drain = Task.Run(async () =>
                        {
                            await foreach (var _ in events.ReadAllAsync(CancellationToken.None))
                            {
                            }
                        }, CancellationToken.None);
                    }

                    await LoadAsync(http, path, Math.Min(50, requests), concurrency, ct); // settle after attaching
                    var result = await LoadAsync(http, path, requests, concurrency, ct);
                    results[mode] = result;
                    var counters = session?.Counters.ToString() ?? "";
                    if (session is not null)
                    {
                        await session.DisposeAsync();
                        await drain;
                        counters = session.Counters.ToString();
                    }

                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  {mode,-7} p50 {result.P50Ms,7:F2} ms   p99 {result.P99Ms,7:F2} ms   {result.Throughput,7:F0} req/s   errors {result.Errors}   {counters}"));
                }
            }
            finally
            {
                if (Directory.Exists(state))
                {
                    Directory.Delete(state, recursive: true);
                }
            }
        }

        var none = results["none"];
        foreach (var mode in new[] { "strace", "ebpf" })
        {
            var r = results[mode];
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {mode,-7} vs none: p50 x{r.P50Ms / none.P50Ms:F2} ({(r.P50Ms / none.P50Ms - 1) * 100:+0.0;-0.0}%)   p99 x{r.P99Ms / none.P99Ms:F2}   throughput x{r.Throughput / none.Throughput:F2}"));
        }

        BenchParser(parse.GetValue(Log), Math.Max(100_000, parse.GetValue(ParserLines)));
        return 0;
    }

    private static void BenchParser(string? log, int target)
    {
        var files = log is not null ? [log] : FindFixtures();
        var recorded = files.SelectMany(File.ReadAllLines).Where(l => l.Length > 0).ToArray();
        if (recorded.Length == 0)
        {
            Console.WriteLine("  parser: no strace log found (pass --log FILE)");
            return;
        }

        // the recording repeated up to the target, as one long log; a parser per repetition so pairs stay consistent
        var lines = new string[target];
        for (var i = 0; i < target; i++)
        {
            lines[i] = recorded[i % recorded.Length];
        }

        var parser = new StraceLineParser();
        long events = 0;
        for (var i = 0; i < Math.Min(target, 200_000); i++)
        {
            parser.Parse(lines[i], out _); // warm-up: tiered JIT
        }

        parser = new StraceLineParser();
        var sw = Stopwatch.StartNew();
        foreach (var line in lines)
        {
            if (parser.Parse(line, out _) == StraceLineKind.Event)
            {
                events++;
            }
        }

        sw.Stop();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  parser  {target / sw.Elapsed.TotalSeconds / 1e6:F2} M lines/s on one core ({target} lines of {string.Join(", ", files.Select(Path.GetFileName))} " +
            $"repeated, {recorded.Length} distinct; {events} events, {parser.Malformed} malformed; {sw.Elapsed.TotalMilliseconds:F0} ms)"));
    }

    private static string[] FindFixtures()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var fixtures = Path.Combine(dir.FullName, "tests", "FaaSMon.Tracer.Tests", "Fixtures");
            if (Directory.Exists(fixtures))
            {
                return Directory.GetFiles(fixtures, "*.strace");
            }
        }

        return [];
    }

    private sealed record LoadResult(double P50Ms, double P99Ms, double Throughput, int Errors);

    private static async Task<LoadResult> LoadAsync(HttpClient http, string path, int count, int concurrency, CancellationToken ct)
    {
        var latencies = new double[count];
        var next = -1;
        var errors = 0;
        var total = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < count)
            {
                var start = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await http.GetAsync(path, ct);
                    await response.Content.LoadIntoBufferAsync(ct);
                    if (!response.IsSuccessStatusCode)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref errors);
                }

                latencies[i] = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
            }
        }, ct)).ToArray();
        await Task.WhenAll(workers);
        total.Stop();
        Array.Sort(latencies);
        return new LoadResult(latencies[count / 2], latencies[Math.Min(count - 1, (int)(count * 0.99))], count / total.Elapsed.TotalSeconds, errors);
    }
}
