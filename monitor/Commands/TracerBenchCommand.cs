using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using FaaSMon.LocalFaaS;
using FaaSMon.Tracer;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Monitor.Commands;

/// <summary>
/// <c>faasmon bench tracer</c>: what tracing costs a function. One LocalFaaS; the same hello-retail load with no
/// tracing, with strace, with eBPF through our libbpf loader and with eBPF through bpftrace (tracer attached to every
/// function process), in rounds that interleave the modes (rotating their order) so the machine's load swings hit all
/// of them alike; p50/p99 latency, throughput and the tracing tool's CPU per request per round, the per-round ratios
/// to no tracing, and their medians. Then the strace parser alone over a large recorded
/// log, read from bytes as the pipe hands them over (lines/s on one core, bytes allocated per line).
/// </summary>
internal static class TracerBenchCommand
{
    private static readonly string[] AllModes = ["none", "strace", "ptrace", "ptrace-stops", "ebpf", "ebpf-bpftrace", "ebpf-idle"];
    private static readonly Option<string> ModeList = new("--modes")
    {
        Description = "Comma-separated modes to compare: none (always measured, the baseline), strace, ptrace (our own ptrace tracer), " +
            "ptrace-stops (that tracer resuming every stop at once, printing nothing: what ptrace itself costs), ebpf (libbpf loader), ebpf-bpftrace, " +
            "ebpf-idle (the libbpf loader's programs attached, no process watched: what the tracepoints cost every process).",
        DefaultValueFactory = _ => "none,strace,ptrace,ebpf,ebpf-bpftrace",
    };
    private static readonly Option<int> Requests = new("--requests") { Description = "Measured requests per mode and round.", DefaultValueFactory = _ => 400 };
    private static readonly Option<int> Rounds = new("--rounds") { Description = "Rounds; each runs every mode once, in a rotating order. Medians are reported.", DefaultValueFactory = _ => 5 };
    private static readonly Option<int> Concurrency = new("--concurrency") { Description = "Requests in flight.", DefaultValueFactory = _ => 4 };
    private static readonly Option<string> RequestPath = new("--path") { Description = "Gateway path of the invocation.", DefaultValueFactory = _ => "/function/product-catalog-api/categories" };
    private static readonly Option<int> Warmup = new("--warmup")
    {
        Description = "Untraced requests before the first round: LocalFaaS, the functions (V8) and PostgreSQL keep getting faster for thousands of requests, which made round 1's ratios the lowest of every run.",
        DefaultValueFactory = _ => 3000,
    };

    private static readonly Option<int> PollMs = new("--discovery-poll-ms")
    {
        Description = "How often the tracer scans /proc for new function processes (Tracer:PollIntervalMs, 50 by default). " +
            "A slower scan costs less CPU and finds a new instance later.",
        DefaultValueFactory = _ => new TracerOptions().PollIntervalMs,
    };

    private static readonly Option<int> ParserLines = new("--parser-lines") { Description = "Lines the parser benchmark parses per round.", DefaultValueFactory = _ => 2_000_000 };
    private static readonly Option<string?> Log = new("--log") { Description = "strace log for the parser benchmark (default: the recordings in tests/FaaSMon.Tracer.Tests/Fixtures)." };
    private static readonly Option<bool> ParserOnly = new("--parser-only") { Description = "Only the parser benchmark (no LocalFaaS, no root needed)." };

    public static Command Create()
    {
        var command = new Command("tracer", "Invocation latency/throughput with no tracing, strace and eBPF (libbpf, bpftrace) in interleaved rounds, and strace parser lines/s.")
        {
            Requests, Rounds, Concurrency, RequestPath, Warmup, PollMs, ModeList, ParserLines, Log, ParserOnly,
        };
        command.SetAction(async (parse, ct) => await RunAsync(parse, ct));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        if (!parse.GetValue(ParserOnly))
        {
            await BenchTracingAsync(parse, ct);
        }

        BenchParser(parse.GetValue(Log), Math.Max(100_000, parse.GetValue(ParserLines)));
        return 0;
    }

    private static async Task BenchTracingAsync(ParseResult parse, CancellationToken ct)
    {
        var requests = Math.Max(10, parse.GetValue(Requests));
        var rounds = Math.Max(1, parse.GetValue(Rounds));
        var concurrency = Math.Max(1, parse.GetValue(Concurrency));
        var path = parse.GetValue(RequestPath)!;
        var pollMs = Math.Clamp(parse.GetValue(PollMs), 10, 60_000);
        var warmup = Math.Max(0, parse.GetValue(Warmup));
        var modes = parse.GetValue(ModeList)!.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Prepend("none").Distinct(StringComparer.Ordinal).ToArray();
        if (modes.FirstOrDefault(m => !AllModes.Contains(m)) is { } unknown)
        {
            throw new ArgumentException($"unknown mode '{unknown}' (modes: {string.Join(", ", AllModes)})");
        }

        var traced = modes.Skip(1).ToArray();
        var state = Path.Combine("/var/lib/faasmon", $"bench-tracer-{Environment.ProcessId}");
        Console.WriteLine($"faasmon bench tracer: {requests} requests per mode and round, {rounds} rounds (order rotates), {concurrency} in flight, GET {path}, {warmup} warm-up requests, /proc scanned every {pollMs} ms, {Environment.ProcessorCount} cores, load {LoadAverage()}");
        var results = modes.ToDictionary(m => m, _ => new List<LoadResult>(), StringComparer.Ordinal);
        // LocalFaaS and the tracer log nothing here: the figures are the output
        await using (var faas = await LocalFaasHost.StartAsync(new LocalFaasOptions { Port = 0, StateDirectory = state }, NullLoggerFactory.Instance, ct))
        {
            try
            {
                using var http = new HttpClient { BaseAddress = faas.GatewayUrl, Timeout = TimeSpan.FromSeconds(30) };
                await LoadAsync(http, path, Math.Max(200, warmup), concurrency, ct); // JIT, V8, caches, database connections
                for (var round = 0; round < rounds; round++)
                {
                    foreach (var mode in modes.Skip(round % modes.Length).Concat(modes.Take(round % modes.Length)))
                    {
                        var (result, counters) = await RunModeAsync(faas, state, http, mode, path, requests, concurrency, pollMs, ct);
                        results[mode].Add(result);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"  round {round + 1} {mode,-13} p50 {result.P50Ms,7:F2} ms   p99 {result.P99Ms,7:F2} ms   {result.Throughput,6:F0} req/s   errors {result.Errors}   {ToolCpu(result)}load {LoadAverage()}   {counters}"));
                    }

                    var none = results["none"][round];
                    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"  round {round + 1} ratios to none: {string.Join(", ", traced.Select(m => $"{m} p50 {Percent(results[m][round].P50Ms / none.P50Ms)}"))}"));
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

        Console.WriteLine($"  medians over {rounds} rounds (load {LoadAverage()}):");
        foreach (var mode in modes)
        {
            var r = results[mode];
            var cpu = mode == "none" ? "" : string.Create(CultureInfo.InvariantCulture, $"   tool CPU {Median(r.Select(x => x.ToolCpuUsPerRequest)),5:F0} µs/req ({string.Join(" ", r.Select(x => x.ToolCpuUsPerRequest.ToString("F0", CultureInfo.InvariantCulture)))})");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {mode,-13} p50 {Median(r.Select(x => x.P50Ms)),7:F2} ms   p99 {Median(r.Select(x => x.P99Ms)),7:F2} ms   {Median(r.Select(x => x.Throughput)),6:F0} req/s   errors {r.Sum(x => x.Errors)}" +
                $"   machine CPU {Median(r.Select(x => x.MachineCpuUsPerRequest)),5:F0} µs/req{cpu}"));
        }

        var baseline = results["none"];
        foreach (var mode in traced)
        {
            var r = results[mode];
            double RoundRatio(Func<LoadResult, double> metric) => Median(r.Select((x, i) => metric(x) / metric(baseline[i])));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  {mode,-13} vs none (median of per-round ratios): p50 x{RoundRatio(x => x.P50Ms):F2} ({Percent(RoundRatio(x => x.P50Ms))})   p99 x{RoundRatio(x => x.P99Ms):F2}   throughput x{RoundRatio(x => x.Throughput):F2}" +
                $"   per round p50: {string.Join(" ", r.Select((x, i) => Percent(x.P50Ms / baseline[i].P50Ms)))}" +
                $"   machine CPU per request {Percent(RoundRatio(x => x.MachineCpuUsPerRequest))} (per round {string.Join(" ", r.Select((x, i) => Percent(x.MachineCpuUsPerRequest / baseline[i].MachineCpuUsPerRequest)))})"));
        }
    }

    /// <summary>One mode for one round: the tracer attached to every function process (none for "none"), settle, measure, detach.</summary>
    private static async Task<(LoadResult Result, string Counters)> RunModeAsync(LocalFaasHost faas, string state, HttpClient http, string mode, string path, int requests, int concurrency, int pollMs, CancellationToken ct)
    {
        TracerSession? session = null;
        var drain = Task.CompletedTask;
        if (mode != "none")
        {
            var options = new TracerOptions
            {
                Backend = mode is "strace" or "ptrace" ? mode : mode == "ptrace-stops" ? "ptrace" : "ebpf",
                PtraceStopsOnly = mode == "ptrace-stops",
                EbpfLoader = mode == "ebpf-bpftrace" ? "bpftrace" : "libbpf",
                DockerHost = "none",
                PollIntervalMs = pollMs,
                AcceptPid = mode == "ebpf-idle" ? _ => false : pid => LocalFaasHost.RunsIn(state, pid),
            };
            session = await TracerSession.StartAsync(options, NullLoggerFactory.Instance, ct);
            var functions = mode == "ebpf-idle" ? 0 : faas.Instances.Count(i => i.Pid is not null);
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
        var toolCpu = ToolCpuSeconds();
        var machineCpu = MachineBusySeconds();
        var result = await LoadAsync(http, path, requests, concurrency, ct);
        result = result with
        {
            ToolCpuUsPerRequest = (ToolCpuSeconds() - toolCpu) * 1e6 / requests,
            MachineCpuUsPerRequest = (MachineBusySeconds() - machineCpu) * 1e6 / requests,
        };
        if (session is null)
        {
            return (result with { ToolCpuUsPerRequest = -1 }, "");
        }

        var attached = session.Counters.AttachedProcesses;
        await session.DisposeAsync();
        await drain;
        return (result, $"attached {attached}, {session.Counters}");
    }

    private static string ToolCpu(LoadResult r) => string.Create(CultureInfo.InvariantCulture, $"machine CPU {r.MachineCpuUsPerRequest,5:F0} µs/req   ") + (r.ToolCpuUsPerRequest >= 0
        ? string.Create(CultureInfo.InvariantCulture, $"tool CPU {r.ToolCpuUsPerRequest,5:F1} µs/req   ")
        : "");

    /// <summary>
    /// Busy CPU time of the whole machine (the first line of /proc/stat: every state but idle and iowait, in USER_HZ
    /// ticks). Per request it counts everything a traced invocation costs, the kernel's tracepoints and our tracer
    /// included, and, unlike latency, it does not move with how the scheduler happened to place the work.
    /// </summary>
    private static double MachineBusySeconds()
    {
        using var reader = new StreamReader("/proc/stat");
        var fields = reader.ReadLine()!.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        long busy = 0;
        for (var i = 1; i < Math.Min(fields.Length, 9); i++)
        {
            if (i is not (4 or 5)) // idle, iowait
            {
                busy += long.Parse(fields[i], CultureInfo.InvariantCulture);
            }
        }

        return busy / 100.0;
    }

    /// <summary>
    /// The tracing tools' CPU time (strace, bpftrace, faasmon-bpf: our children), every thread's, from
    /// /proc/PID/task/TID/schedstat in nanoseconds (stat's utime+stime tick at 10 ms: too coarse for the loader).
    /// </summary>
    private static double ToolCpuSeconds()
    {
        var self = Environment.ProcessId.ToString(CultureInfo.InvariantCulture);
        double ns = 0;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var open = stat.IndexOf('(', StringComparison.Ordinal);
                var close = stat.LastIndexOf(')');
                if (open < 0 || close < open || stat.AsSpan(open + 1, close - open - 1) is not ("strace" or "bpftrace" or "faasmon-bpf" or "faasmon-ptrace"))
                {
                    continue;
                }

                // after "(comm) ": state ppid
                if (stat[(close + 2)..].Split(' ')[1] != self)
                {
                    continue;
                }

                foreach (var task in Directory.EnumerateDirectories(Path.Combine(dir, "task")))
                {
                    var schedstat = File.ReadAllText(Path.Combine(task, "schedstat"));
                    ns += double.Parse(schedstat.AsSpan(0, schedstat.IndexOf(' ')), CultureInfo.InvariantCulture);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
            }
        }

        return ns / 1e9;
    }

    private static string Percent(double ratio) => ((ratio - 1) * 100).ToString("+0.0;-0.0", CultureInfo.InvariantCulture) + "%";

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[(sorted.Length / 2) - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>The 1/5/15-minute load averages, as uptime prints them.</summary>
    private static string LoadAverage()
    {
        try
        {
            return string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3));
        }
        catch (IOException)
        {
            return "?";
        }
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

        // the recording repeated up to the target as one long log in UTF-8, the bytes strace writes into the pipe
        using var bytes = new MemoryStream();
        using (var writer = new StreamWriter(bytes, new System.Text.UTF8Encoding(false), 1 << 16, leaveOpen: true))
        {
            for (var i = 0; i < target; i++)
            {
                writer.Write(recorded[i % recorded.Length]);
                writer.Write('\n');
            }
        }

        var log0 = bytes.ToArray();
        ParseAll(log0, Math.Min(target, 200_000)); // warm-up: tiered JIT
        var rates = new List<double>();
        Console.WriteLine($"  parser: {target} lines of {string.Join(", ", files.Select(Path.GetFileName))} repeated ({recorded.Length} distinct, {log0.Length / 1e6:F0} MB), pipe bytes → lines → events, one core, load {LoadAverage()}");
        for (var round = 1; round <= 3; round++)
        {
            var allocatedBefore = GC.GetAllocatedBytesForCurrentThread();
            var cpuBefore = ThreadCpuNanoseconds();
            var sw = Stopwatch.StartNew();
            var (lines, events, malformed) = ParseAll(log0, int.MaxValue);
            sw.Stop();
            var cpu = (ThreadCpuNanoseconds() - cpuBefore) / 1e9;
            var allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedBefore;
            rates.Add(lines / cpu);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  parser  round {round}: {lines / cpu / 1e6:F2} M lines per CPU-second ({cpu * 1000:F0} ms on CPU)   {lines / sw.Elapsed.TotalSeconds / 1e6:F2} M lines/s wall ({sw.Elapsed.TotalMilliseconds:F0} ms)   " +
                $"{events} events, {malformed} malformed   {(double)allocated / lines:F1} B allocated per line ({(double)allocated / Math.Max(1, events):F0} B per event)   load {LoadAverage()}"));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  parser  median {Median(rates) / 1e6:F2} M lines per CPU-second, best {rates.Max() / 1e6:F2} (goal ≥ 1 M lines/s per core; CPU time, because on a loaded machine the wall clock also counts the time other processes hold the core)"));
    }

    /// <summary>Time this thread has spent on a CPU (the first field of /proc/thread-self/schedstat, nanoseconds).</summary>
    private static long ThreadCpuNanoseconds()
    {
        var text = File.ReadAllText("/proc/thread-self/schedstat");
        return long.Parse(text.AsSpan(0, text.IndexOf(' ')), CultureInfo.InvariantCulture);
    }

    /// <summary>The production read path: <see cref="Utf8LineReader"/> over the bytes, one parser for the whole log.</summary>
    private static (long Lines, long Events, long Malformed) ParseAll(byte[] log, int maxLines)
    {
        var parser = new StraceLineParser();
        using var reader = new Utf8LineReader(new MemoryStream(log, writable: false));
        long lines = 0, events = 0;
        while (lines < maxLines && reader.FillAsync().AsTask().GetAwaiter().GetResult())
        {
            while (lines < maxLines && reader.TryReadLine(out ReadOnlySpan<char> line))
            {
                lines++;
                if (parser.Parse(line, out _) == StraceLineKind.Event)
                {
                    events++;
                }
            }
        }

        return (lines, events, parser.Malformed);
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

    private sealed record LoadResult(double P50Ms, double P99Ms, double Throughput, int Errors, double ToolCpuUsPerRequest = 0, double MachineCpuUsPerRequest = 0);

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
