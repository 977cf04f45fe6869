using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace FaaSMon.Monitor.Commands;

/// <summary>
/// <c>faasmon bench proxy</c>: one upstream, several ways to reach it (direct, FaaSMon's proxy with and without packet
/// capture, Debian nginx proxy_pass), the same load generator for each, rounds interleaved. FaaSMon's proxies and nginx
/// run as child processes in their own process groups on loopback, so none shares a heap or a thread pool with the load
/// or the upstream. A fifth target, YARP's forwarder alone behind Kestrel (<c>yarp-only</c>), tells what the reverse proxy
/// FaaSMon is built on costs from what FaaSMon adds to it. Beside throughput and latency every proxy's CPU time per request
/// is measured (utime + stime of its processes over the run): on a shared machine that moves far less than req/s.
/// </summary>
internal static partial class ProxyBenchCommand
{
    private static readonly Option<int> Duration = new("--duration") { Description = "Seconds of load per target and round.", DefaultValueFactory = _ => 10 };
    private static readonly Option<int> Warmup = new("--warmup")
    {
        // .NET tiers its JIT up under load (tier 0, instrumented, then optimized code), which took over a minute of
        // load on two cores shared with other work; nginx needs none, but each target gets the same.
        Description = "Seconds of unmeasured load per target before the first round (more on a busy machine: the JIT tiers up by call counts).",
        DefaultValueFactory = _ => 30,
    };
    private static readonly Option<int> Rounds = new("--rounds") { Description = "Rounds (targets interleaved each round); the median round is reported.", DefaultValueFactory = _ => 3 };
    private static readonly Option<int> Connections = new("--connections") { Description = "Concurrent keep-alive connections.", DefaultValueFactory = _ => 64 };
    private static readonly Option<int> Threads = new("--threads") { Description = "Load generator threads (wrk -t).", DefaultValueFactory = _ => 2 };
    private static readonly Option<string> Generator = new("--generator")
    {
        Description = "Load generator: auto (wrk if installed, else built-in), wrk, builtin.",
        DefaultValueFactory = _ => "auto",
    };

    private static readonly Option<bool> NoPcap = new("--no-pcap") { Description = "Measure FaaSMon's proxy only without packet capture." };
    private static readonly Option<bool> PcapOnly = new("--pcap-only")
    {
        Description = "Measure FaaSMon's proxy only with packet capture (the default product configuration). Without either option both are measured, interleaved, when root.",
    };
    private static readonly Option<string> RequestPath = new("--path") { Description = "Request path.", DefaultValueFactory = _ => "/function/echo" };

    public static Command Create()
    {
        var command = new Command("proxy",
            "Latency and throughput of direct vs FaaSMon proxy vs nginx proxy_pass against one upstream; prints p50/p99, req/s and ratios. " +
            "Needs nginx (Debian nginx-light); uses wrk when installed.")
        {
            Duration, Warmup, Rounds, Connections, Threads, Generator, NoPcap, PcapOnly, RequestPath,
        };
        command.SetAction(async (parse, ct) => await RunAsync(parse, ct));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        var duration = TimeSpan.FromSeconds(Math.Max(1, parse.GetValue(Duration)));
        var warmup = TimeSpan.FromSeconds(Math.Max(0, parse.GetValue(Warmup)));
        var rounds = Math.Max(1, parse.GetValue(Rounds));
        var connections = Math.Max(1, parse.GetValue(Connections));
        var threads = Math.Clamp(parse.GetValue(Threads), 1, connections);
        var path = parse.GetValue(RequestPath)!;
        var root = Environment.UserName == "root";
        var withPcap = root && !parse.GetValue(NoPcap);
        var withoutPcap = parse.GetValue(NoPcap) || !parse.GetValue(PcapOnly) || !root;
        var wrk = FindExecutable("wrk");
        var generatorChoice = parse.GetValue(Generator);
        if (generatorChoice == "wrk" && wrk is null)
        {
            Console.Error.WriteLine("--generator wrk: wrk is not installed (Debian package wrk).");
            return 2;
        }

        var useWrk = generatorChoice != "builtin" && wrk is not null;
        var nginx = FindExecutable("nginx");
        if (nginx is null)
        {
            Console.Error.WriteLine("nginx is not installed (Debian package nginx-light or nginx): the comparison needs it.");
            return 2;
        }

        var work = Directory.CreateTempSubdirectory("faasmon-bench-proxy-").FullName;
        await using var children = new ChildGroup();
        Console.CancelKeyPress += (_, _) => children.KillAll();
        try
        {
            await using var upstream = await StartUpstreamAsync(ct);
            // Each FaaSMon proxy reaches the same upstream server on a port of its own, so its capture filter
            // (tcp port N) sees only its own traffic, not the direct, nginx or other FaaSMon runs'.
            List<(string Name, Uri Url, Process? Process)> targets = [("direct", upstream.Address(0), null)];
            if (withPcap)
            {
                targets.Add(await StartSelfAsync(children, FaasmonPcap, work, ProxyArguments(upstream.Address(1), work, FaasmonPcap, pcap: true), ct));
            }

            if (withoutPcap)
            {
                targets.Add(await StartSelfAsync(children, FaasmonNoPcap, work, ProxyArguments(upstream.Address(2), work, FaasmonNoPcap, pcap: false), ct));
            }

            targets.Add(await StartSelfAsync(children, YarpOnly, work, ["bench", YarpBaselineCommand, "--upstream", upstream.Address(0).ToString()], ct));
            targets.Add(await StartNginxAsync(children, nginx, upstream.Address(0), work, ct));
            Console.WriteLine($"upstream {upstream.Address(0)} · {connections} connections · {(useWrk ? $"wrk -t{threads}" : "built-in generator")} · " +
                $"{duration.TotalSeconds:0}s × {rounds} rounds, {warmup.TotalSeconds:0}s warm-up · nginx {NginxVersion(nginx)} (worker_processes auto) · " +
                $"{Environment.ProcessorCount} cores · load average {LoadAverage()}");

            var results = targets.ToDictionary(t => t.Name, _ => new List<LoadResult>());
            for (var round = 1; round <= rounds; round++)
            {
                foreach (var (name, url, process) in targets)
                {
                    var target = new Uri(url, path);
                    if (round == 1 && warmup > TimeSpan.Zero)
                    {
                        await GenerateAsync(useWrk, wrk, children, target, warmup, connections, threads, ct);
                    }

                    var cpuBefore = process is null ? TimeSpan.Zero : ProcessTreeCpu(process.Id);
                    var result = await GenerateAsync(useWrk, wrk, children, target, duration, connections, threads, ct);
                    if (process is not null && result.Requests > 0)
                    {
                        result = result with { CpuUsPerRequest = (ProcessTreeCpu(process.Id) - cpuBefore).TotalMicroseconds / result.Requests };
                    }

                    results[name].Add(result);
                    Console.WriteLine($"  round {round} {name,-14} {result.RequestsPerSecond,10:N0} req/s  p50 {result.P50Ms,7:0.000} ms  p99 {result.P99Ms,7:0.000} ms  " +
                        $"cpu {Cpu(result)} µs/req  errors {result.Errors}  load {LoadAverage()}");
                }
            }

            Print(results.ToDictionary(r => r.Key, r => Median(r.Value)));
            PrintRoundRatios(results);
            foreach (var (name, url, _) in targets.Where(t => t.Name.StartsWith("faasmon", StringComparison.Ordinal)))
            {
                Console.WriteLine($"{name} counters: {await FaasmonCountersAsync(url, ct)}");
            }

            Console.WriteLine($"load average {LoadAverage()}");
            return 0;
        }
        finally
        {
            await children.DisposeAsync();
            Directory.Delete(work, recursive: true);
        }
    }

    private const string FaasmonPcap = "faasmon";
    private const string FaasmonNoPcap = "faasmon-nopcap";
    private const string YarpOnly = "yarp-only";
    private const string YarpBaselineCommand = "yarp-baseline";

    private static string Cpu(LoadResult r) => double.IsNaN(r.CpuUsPerRequest) ? "-" : r.CpuUsPerRequest.ToString("0.0", CultureInfo.InvariantCulture);

    private static void Print(Dictionary<string, LoadResult> median)
    {
        var direct = median["direct"];
        Console.WriteLine();
        Console.WriteLine("target              req/s    p50 ms    p99 ms   added p50 ms   cpu µs/req   errors");
        foreach (var (name, r) in median)
        {
            Console.WriteLine($"{name,-14} {r.RequestsPerSecond,10:N0} {r.P50Ms,9:0.000} {r.P99Ms,9:0.000} {r.P50Ms - direct.P50Ms,14:0.000} {Cpu(r),12} {r.Errors,8}");
        }

        var n = median["nginx"];
        var addedN = n.P50Ms - direct.P50Ms;
        var yarp = median[YarpOnly];
        Console.WriteLine();
        Console.WriteLine($"yarp-only (YARP's forwarder alone, none of FaaSMon's work): throughput {yarp.RequestsPerSecond / n.RequestsPerSecond:0.00}× nginx, " +
            $"cpu per request {yarp.CpuUsPerRequest / n.CpuUsPerRequest:0.00}× nginx's");
        foreach (var name in new[] { FaasmonPcap, FaasmonNoPcap }.Where(median.ContainsKey))
        {
            var f = median[name];
            var addedF = f.P50Ms - direct.P50Ms;
            Console.WriteLine();
            Console.WriteLine($"{name} (pcap {(name == FaasmonPcap ? "on" : "off")}):");
            Console.WriteLine($"  faasmon/nginx throughput: {f.RequestsPerSecond / n.RequestsPerSecond:0.00}×   (goal ≥ 0.90×)");
            Console.WriteLine($"  faasmon/nginx p50:        {f.P50Ms / n.P50Ms:0.00}×   added p50 faasmon {addedF:0.000} ms vs nginx {addedN:0.000} ms (goal: ≤)");
            Console.WriteLine($"  faasmon/nginx p99:        {f.P99Ms / n.P99Ms:0.00}×");
            Console.WriteLine($"  faasmon/direct throughput: {f.RequestsPerSecond / direct.RequestsPerSecond:0.00}×   nginx/direct: {n.RequestsPerSecond / direct.RequestsPerSecond:0.00}×");
            Console.WriteLine($"  cpu per request:          {Cpu(f)} µs = {f.CpuUsPerRequest / n.CpuUsPerRequest:0.00}× nginx's {Cpu(n)} µs, {f.CpuUsPerRequest / yarp.CpuUsPerRequest:0.00}× yarp-only's {Cpu(yarp)} µs");
        }
    }

    /// <summary>
    /// Ratios within each round, where FaaSMon and nginx ran back to back under about the same outside load: steadier
    /// than ratios of medians, which may come from different rounds.
    /// </summary>
    private static void PrintRoundRatios(Dictionary<string, List<LoadResult>> results)
    {
        var nginx = results["nginx"];
        var direct = results["direct"];
        foreach (var name in new[] { FaasmonPcap, FaasmonNoPcap, YarpOnly }.Where(results.ContainsKey))
        {
            var rounds = results[name];
            var throughput = rounds.Select((r, i) => r.RequestsPerSecond / nginx[i].RequestsPerSecond).ToList();
            var addedP50 = rounds.Select((r, i) => (r.P50Ms - direct[i].P50Ms) - (nginx[i].P50Ms - direct[i].P50Ms)).ToList();
            var cpu = rounds.Select((r, i) => r.CpuUsPerRequest / nginx[i].CpuUsPerRequest).ToList();
            Console.WriteLine($"{name} per round: throughput ×nginx {Series(throughput, "0.00")} (median {Median(throughput):0.00}×); " +
                $"added p50 minus nginx's, ms {Series(addedP50, "0.000")} (median {Median(addedP50):0.000}); cpu per request ×nginx {Series(cpu, "0.00")} (median {Median(cpu):0.00}×)");
        }

        static string Series(List<double> values, string format) => string.Join(" ", values.Select(x => x.ToString(format, CultureInfo.InvariantCulture)));
        static double Median(List<double> values) => values.Order().ElementAt(values.Count / 2);
    }

    /// <summary>The 1, 5 and 15 minute load averages: the machine is shared, so every figure is printed beside them.</summary>
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

    private static LoadResult Median(List<LoadResult> results) => results.OrderBy(r => r.RequestsPerSecond).ElementAt(results.Count / 2);

    /// <summary>A trivial upstream standing in for the gateway: what is measured is the proxies, not a function.</summary>
    private static async Task<UpstreamServer> StartUpstreamAsync(CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // direct and nginx share the first port; each FaaSMon proxy gets one of its own (its capture filter)
            for (var i = 0; i < 3; i++)
            {
                kestrel.Listen(IPAddress.Loopback, 0);
            }
        });
        var app = builder.Build();
        var body = "{\"status\":\"ok\",\"function\":\"echo\"}"u8.ToArray();
        app.Run(async context =>
        {
            context.Response.ContentType = "application/json";
            context.Response.ContentLength = body.Length;
            await context.Response.Body.WriteAsync(body, context.RequestAborted);
        });
        await app.StartAsync(ct);
        return new UpstreamServer(app);
    }

    /// <summary>The same <c>faasmon proxy</c> a user runs; the listen address is added by <see cref="StartSelfAsync"/>.</summary>
    private static List<string> ProxyArguments(Uri upstream, string work, string name, bool pcap) =>
        ["proxy", "--upstream", upstream.ToString(), "--data-dir", Path.Combine(work, name), .. pcap ? Array.Empty<string>() : ["--no-pcap"]];

    /// <summary>This very program as a child, through the same runtime, listening on a free loopback port.</summary>
    private static async Task<(string, Uri, Process?)> StartSelfAsync(ChildGroup children, string name, string work, List<string> arguments, CancellationToken ct)
    {
        var port = FreePort();
        var self = Environment.GetCommandLineArgs()[0];
        List<string> args = self.EndsWith(".dll", StringComparison.Ordinal) ? [self] : [];
        args.AddRange(arguments);
        args.AddRange(["--listen", $"127.0.0.1:{port}"]);
        var log = Path.Combine(work, $"{name}.log");
        var child = children.Start(name, Environment.ProcessPath!, args, log);
        await WaitForPortAsync(child, port, log, ct);
        return (name, new Uri($"http://127.0.0.1:{port}/"), child);
    }

    /// <summary>
    /// CPU time (user + system) of a process and its children, e.g. nginx's master and workers. setsid execs the
    /// target in place, so the started child's pid is the target's.
    /// </summary>
    internal static TimeSpan ProcessTreeCpu(int pid)
    {
        var ticks = CpuTicks(pid);
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            var children = File.Exists(Path.Combine(task, "children")) ? File.ReadAllText(Path.Combine(task, "children")) : "";
            foreach (var child in children.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                ticks += CpuTicks(int.Parse(child, CultureInfo.InvariantCulture));
            }
        }

        return TimeSpan.FromSeconds(ticks / (double)ClockTicksPerSecond);
    }

    /// <summary>CPU time (user + system) of one process, its children not counted.</summary>
    internal static TimeSpan ProcessCpu(int pid) => TimeSpan.FromSeconds(CpuTicks(pid) / (double)ClockTicksPerSecond);

    private static long CpuTicks(int pid)
    {
        try
        {
            // the command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            return long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture); // utime, stime
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0; // exited meanwhile
        }
    }

    /// <summary>USER_HZ: what /proc/PID/stat counts in; 100 on every Linux architecture .NET runs on.</summary>
    private const long ClockTicksPerSecond = 100;

    /// <summary>
    /// <c>faasmon bench yarp-baseline --upstream URL --listen ADDR</c>, hidden: started by this bench as a child. YARP's
    /// <see cref="IHttpForwarder"/> behind Kestrel with FaaSMon's Kestrel limits and upstream handler settings (YARP's
    /// own defaults, no activity headers) and socket scheduling (inline, as <c>faasmon proxy</c>), and nothing else: no call
    /// id, trace context, record, body tee, metric or capture.
    /// </summary>
    public static Command CreateYarpBaseline()
    {
        var upstreamOption = new Option<string>("--upstream") { Required = true };
        var listenOption = new Option<string>("--listen") { Required = true };
        var command = new Command(YarpBaselineCommand, "YARP's forwarder alone (a baseline for bench proxy).") { upstreamOption, listenOption };
        command.Hidden = true;
        command.SetAction(async (parse, ct) =>
        {
            ProxyCommand.InlineSocketIo();
            var builder = WebApplication.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);
            var listen = IPEndPoint.Parse(parse.GetValue(listenOption)!);
            builder.WebHost.ConfigureKestrel(kestrel =>
            {
                kestrel.AddServerHeader = false;
                kestrel.Limits.KeepAliveTimeout = TimeSpan.FromSeconds(75);
                kestrel.Listen(listen);
            });
            builder.Services.AddHttpForwarder();
            var app = builder.Build();
            var upstream = new Uri(parse.GetValue(upstreamOption)!, UriKind.Absolute).ToString();
            using var invoker = new HttpMessageInvoker(new SocketsHttpHandler
            {
                UseProxy = false,
                AllowAutoRedirect = false,
                AutomaticDecompression = DecompressionMethods.None,
                UseCookies = false,
                EnableMultipleHttp2Connections = true,
                ActivityHeadersPropagator = null,
                ConnectTimeout = TimeSpan.FromSeconds(15),
            });
            app.MapForwarder("/{**catch-all}", upstream, ForwarderRequestConfig.Empty, HttpTransformer.Default, invoker);
            await app.StartAsync(ct);
            await app.WaitForShutdownAsync(ct);
            return 0;
        });
        return command;
    }

    private static async Task<(string, Uri, Process?)> StartNginxAsync(ChildGroup children, string nginx, Uri upstream, string work, CancellationToken ct)
    {
        var port = FreePort();
        var root = Path.Combine(work, "nginx");
        Directory.CreateDirectory(root);
        // As close to FaaSMon's job as nginx gets: keep-alive upstream pool, HTTP/1.1, an access log line per request.
        var config = $$"""
            daemon off;
            master_process on;
            worker_processes auto;
            pid {{root}}/nginx.pid;
            error_log {{root}}/error.log warn;
            events { worker_connections 4096; }
            http {
              access_log {{root}}/access.log;
              client_body_temp_path {{root}}/client_body;
              proxy_temp_path {{root}}/proxy;
              fastcgi_temp_path {{root}}/fastcgi;
              uwsgi_temp_path {{root}}/uwsgi;
              scgi_temp_path {{root}}/scgi;
              upstream gateway { server {{upstream.Host}}:{{upstream.Port}}; keepalive 128; }
              server {
                listen 127.0.0.1:{{port}};
                location / {
                  proxy_pass http://gateway;
                  proxy_http_version 1.1;
                  proxy_set_header Connection "";
                  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
                }
              }
            }
            """;
        var conf = Path.Combine(root, "nginx.conf");
        await File.WriteAllTextAsync(conf, config, ct);
        var child = children.Start("nginx", nginx, ["-p", root, "-c", conf, "-e", Path.Combine(root, "error.log")], Path.Combine(root, "stdout.log"));
        await WaitForPortAsync(child, port, Path.Combine(root, "error.log"), ct);
        return ("nginx", new Uri($"http://127.0.0.1:{port}/"), child);
    }

    private static async Task<LoadResult> GenerateAsync(bool useWrk, string? wrk, ChildGroup children, Uri target, TimeSpan duration,
        int connections, int threads, CancellationToken ct) =>
        useWrk
            ? await WrkAsync(wrk!, children, target, duration, connections, threads, ct)
            : await BuiltInLoadAsync(target, duration, connections, ct);

    private static async Task<LoadResult> WrkAsync(string wrk, ChildGroup children, Uri target, TimeSpan duration, int connections, int threads, CancellationToken ct)
    {
        var output = Path.Combine(Path.GetTempPath(), $"faasmon-wrk-{Guid.NewGuid():N}.txt");
        try
        {
            var child = children.Start("wrk", wrk,
                ["-t", threads.ToString(CultureInfo.InvariantCulture), "-c", connections.ToString(CultureInfo.InvariantCulture),
                 "-d", $"{(int)duration.TotalSeconds}s", "--latency", target.ToString()], output);
            await child.WaitForExitAsync(ct);
            var exitCode = child.ExitCode;
            await children.ForgetAsync(child);
            var text = await File.ReadAllTextAsync(output, ct);
            if (exitCode != 0)
            {
                throw new InvalidOperationException($"wrk failed ({exitCode}): {text}");
            }

            return ParseWrk(text);
        }
        finally
        {
            File.Delete(output);
        }
    }

    internal static LoadResult ParseWrk(string text)
    {
        double Percentile(string p) => WrkPercentile().Matches(text).Where(m => m.Groups["p"].Value == p)
            .Select(m => ToMs(m.Groups["v"].Value, m.Groups["u"].Value)).DefaultIfEmpty(double.NaN).First();
        var rps = double.Parse(WrkRate().Match(text).Groups["v"].Value, CultureInfo.InvariantCulture);
        var errors = WrkErrors().Matches(text).Sum(m => long.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture))
            + WrkNon2xx().Matches(text).Sum(m => long.Parse(m.Groups["n"].Value, CultureInfo.InvariantCulture));
        var requests = long.Parse(WrkRequests().Match(text).Groups["n"].Value, CultureInfo.InvariantCulture);
        return new LoadResult(rps, Percentile("50"), Percentile("99"), errors, requests);

        static double ToMs(string value, string unit)
        {
            var v = double.Parse(value, CultureInfo.InvariantCulture);
            return unit switch { "us" => v / 1000, "ms" => v, "s" => v * 1000, "m" => v * 60_000, _ => double.NaN };
        }
    }

    /// <summary>When wrk is missing: closed-loop keep-alive clients, one per connection, latency of every request kept.</summary>
    private static async Task<LoadResult> BuiltInLoadAsync(Uri target, TimeSpan duration, int connections, CancellationToken ct)
    {
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections, UseProxy = false });
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        long errors = 0;
        var started = Stopwatch.GetTimestamp();
        var perWorker = await Task.WhenAll(Enumerable.Range(0, connections).Select(async _ =>
        {
            List<double> latencies = new(4096);
            var buffer = new byte[16 * 1024];
            while (Stopwatch.GetTimestamp() < deadline && !ct.IsCancellationRequested)
            {
                var t0 = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await client.GetAsync(target, HttpCompletionOption.ResponseHeadersRead, ct);
                    await using var stream = await response.Content.ReadAsStreamAsync(ct);
                    while (await stream.ReadAsync(buffer, ct) > 0)
                    {
                    }

                    if ((int)response.StatusCode >= 400)
                    {
                        Interlocked.Increment(ref errors);
                    }
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref errors);
                }

                latencies.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            }

            return latencies;
        }));
        var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var all = perWorker.SelectMany(l => l).Order().ToArray();
        return all.Length == 0
            ? new LoadResult(0, double.NaN, double.NaN, errors, 0)
            : new LoadResult(all.Length / elapsed, all[(int)(all.Length * 0.50)], all[Math.Min(all.Length - 1, (int)(all.Length * 0.99))], errors, all.Length);
    }

    private static async Task<string> FaasmonCountersAsync(Uri faasmon, CancellationToken ct)
    {
        using var client = new HttpClient();
        var metrics = await client.GetStringAsync(new Uri(faasmon, "/metrics"), ct);
        var lines = metrics.Split('\n').Where(l => l.StartsWith("faasmon_", StringComparison.Ordinal))
            .Select(l => Regex.Replace(l, "otel_scope_name=\"[^\"]*\",?", "").Replace("{}", "", StringComparison.Ordinal));
        return string.Join("; ", lines);
    }

    private static async Task WaitForPortAsync(Process child, int port, string log, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (child.HasExited)
            {
                throw new InvalidOperationException($"{child.StartInfo.FileName} exited ({child.ExitCode}): {(File.Exists(log) ? await File.ReadAllTextAsync(log, ct) : "")}");
            }

            try
            {
                using var socket = new TcpClient();
                await socket.ConnectAsync(IPAddress.Loopback, port, ct);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100, ct);
            }
        }

        throw new TimeoutException($"{child.StartInfo.FileName} did not listen on 127.0.0.1:{port} within 30 s");
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static string? FindExecutable(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Append("/usr/sbin").Append("/sbin")
            .Select(dir => Path.Combine(dir, name)).FirstOrDefault(File.Exists);

    private static string NginxVersion(string nginx)
    {
        using var p = Process.Start(new ProcessStartInfo(nginx, ["-v"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        var text = p.StandardError.ReadToEnd().Trim();
        p.WaitForExit();
        return text.Replace("nginx version: nginx/", "", StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^\s+(?<p>50|75|90|99)%\s+(?<v>[\d.]+)(?<u>us|ms|s|m)\s*$", RegexOptions.Multiline)]
    private static partial Regex WrkPercentile();

    [GeneratedRegex(@"(?<n>\d+) requests in ")]
    private static partial Regex WrkRequests();

    [GeneratedRegex(@"Requests/sec:\s+(?<v>[\d.]+)")]
    private static partial Regex WrkRate();

    [GeneratedRegex(@"(?:connect|read|write|timeout) (?<n>\d+)")]
    private static partial Regex WrkErrors();

    [GeneratedRegex(@"Non-2xx or 3xx responses: (?<n>\d+)")]
    private static partial Regex WrkNon2xx();

    /// <summary>One run against one target; <paramref name="CpuUsPerRequest"/> is NaN for the upstream reached directly.</summary>
    internal sealed record LoadResult(double RequestsPerSecond, double P50Ms, double P99Ms, long Errors, long Requests, double CpuUsPerRequest = double.NaN);

    private sealed class UpstreamServer(WebApplication app) : IAsyncDisposable
    {
        /// <summary>One server on several ports: 0 for direct and nginx runs, 1 and 2 for the FaaSMon proxies.</summary>
        public Uri Address(int index) =>
            new(app.Urls.Order(StringComparer.Ordinal).ElementAt(index).Replace("localhost", "127.0.0.1", StringComparison.Ordinal) + "/");

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }
    }

    /// <summary>
    /// Children started without a shell, each through setsid so it leads its own process group; the whole group is
    /// signalled (TERM, then KILL) when the bench ends, fails or is interrupted. Never killed by name.
    /// </summary>
    private sealed class ChildGroup : IAsyncDisposable
    {
        private const int SigTerm = 15;
        private const int SigKill = 9;
        private readonly List<Process> _children = [];
        private readonly Dictionary<Process, Task> _outputs = [];

        public Process Start(string what, string executable, IEnumerable<string> args, string outputFile)
        {
            var setsid = FindExecutable("setsid") ?? throw new InvalidOperationException("setsid (util-linux) is needed to give children their own process group");
            var info = new ProcessStartInfo(setsid) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
            info.ArgumentList.Add(executable);
            foreach (var a in args)
            {
                info.ArgumentList.Add(a);
            }

            var process = Process.Start(info) ?? throw new InvalidOperationException($"could not start {what}");
            lock (_children)
            {
                _children.Add(process);
            }

            var sink = new StreamWriter(outputFile) { AutoFlush = true };
            var copy = Task.WhenAll(
                process.StandardOutput.BaseStream.CopyToAsync(sink.BaseStream),
                process.StandardError.BaseStream.CopyToAsync(sink.BaseStream));
            lock (_children)
            {
                _outputs[process] = copy.ContinueWith(_ => sink.Dispose(), TaskScheduler.Default);
            }

            return process;
        }

        /// <summary>A child that exited by itself: its output is complete once this returns.</summary>
        public async Task ForgetAsync(Process process)
        {
            Task output;
            lock (_children)
            {
                _children.Remove(process);
                _outputs.Remove(process, out output!);
            }

            await output;
            process.Dispose();
        }

        public void KillAll()
        {
            lock (_children)
            {
                foreach (var p in _children.Where(p => !p.HasExited))
                {
                    _ = Kill(-p.Id, SigKill);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            Process[] children;
            lock (_children)
            {
                children = [.. _children];
                _children.Clear();
            }

            foreach (var p in children.Where(p => !p.HasExited))
            {
                _ = Kill(-p.Id, SigTerm); // setsid made the child its group's leader: pgid == pid
            }

            foreach (var p in children)
            {
                using var grace = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                try
                {
                    await p.WaitForExitAsync(grace.Token);
                }
                catch (OperationCanceledException)
                {
                    _ = Kill(-p.Id, SigKill);
                    await p.WaitForExitAsync(CancellationToken.None);
                }

                p.Dispose();
            }
        }

        // DllImport rather than LibraryImport: the generated stub needs AllowUnsafeBlocks, which this project does not set.
#pragma warning disable SYSLIB1054
        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        private static extern int Kill(int pid, int signal);
#pragma warning restore SYSLIB1054
    }
}
