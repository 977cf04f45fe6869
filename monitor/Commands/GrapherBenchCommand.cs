using System.Collections.Concurrent;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using FaaSMon.Core;
using FaaSMon.Grapher;
using FaaSMon.Monitor.Hosting;
using FaaSMon.Tracer;
using FaaSMon.Workload;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Monitor.Commands;

/// <summary>
/// <c>faasmon bench grapher</c>: (1) events/s attributed and graphs/s built, replaying real strace recordings many times
/// over; (2) memory per open invocation; (3) attribution accuracy under concurrency on a real LocalFaaS: concurrent
/// clients of one warm function, each request naming a file no other request names, so every system call that touches
/// that name has one right owner.
/// </summary>
internal static class GrapherBenchCommand
{
    private static readonly Option<int> Copies = new("--copies") { Description = "Times the recordings are replayed (each with its own processes and later times).", DefaultValueFactory = _ => 400 };
    private static readonly Option<int> Open = new("--open") { Description = "Invocations held open for the memory figure.", DefaultValueFactory = _ => 10_000 };
    private static readonly Option<int> Clients = new("--clients") { Description = "Concurrent clients of the function in the accuracy run (0 skips it).", DefaultValueFactory = _ => 4 };
    private static readonly Option<int> Requests = new("--requests") { Description = "Requests per client in the accuracy run.", DefaultValueFactory = _ => 25 };
    private static readonly Option<string> Backend = new("--backend") { Description = "Tracer backend for the accuracy run.", DefaultValueFactory = _ => "strace" };
    private static readonly Option<FileInfo?> Dump = new("--dump-events") { Description = "Also write the accuracy run's system calls as NDJSON (to study misattributions)." };
    private static readonly Option<string?> Recordings = new("--recordings") { Description = "Folder of strace recordings (default: tests/FaaSMon.Tracer.Tests/Fixtures)." };

    public static Command Create()
    {
        Backend.AcceptOnlyFromAmong("strace", "ebpf", "ptrace");
        var command = new Command("grapher", "Events/s attributed and graphs/s from recorded events, memory per open invocation, and attribution accuracy with concurrent clients.")
        {
            Copies, Open, Clients, Requests, Backend, Recordings, Dump,
        };
        command.SetAction(async (parse, ct) => await RunAsync(parse, ct));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        var folder = parse.GetValue(Recordings) ?? FindRecordings();
        if (folder is null || !Directory.Exists(folder))
        {
            await Console.Error.WriteLineAsync("faasmon bench grapher: no strace recordings found; pass --recordings DIR (files *.strace)");
            return 2;
        }

        Console.WriteLine($"faasmon bench grapher: {Environment.ProcessorCount} cores");
        Replay(folder, Math.Max(1, parse.GetValue(Copies)));
        MemoryPerOpenInvocation(Math.Max(100, parse.GetValue(Open)));
        if (parse.GetValue(Clients) is > 0 and var clients)
        {
            await AccuracyAsync(clients, Math.Max(1, parse.GetValue(Requests)), parse.GetValue(Backend)!, parse.GetValue(Dump)?.FullName, ct);
        }

        return 0;
    }

    private static void Replay(string folder, int copies)
    {
        var recorded = new List<(string Function, List<SyscallEvent> Events)>();
        foreach (var file in Directory.EnumerateFiles(folder, "*.strace").Order(StringComparer.Ordinal))
        {
            var parser = new StraceLineParser(512);
            var function = "bench-" + Path.GetFileNameWithoutExtension(file);
            var events = new List<SyscallEvent>();
            foreach (var line in File.ReadLines(file))
            {
                if (parser.Parse(line, out var evt) == StraceLineKind.Event && evt is not null)
                {
                    events.Add(evt with { Function = function, Instance = function });
                }
            }

            recorded.Add((function, events));
        }

        // each copy: its own processes (pid offset), later in time, so windows, container state and traces are all new
        var span = recorded.SelectMany(r => r.Events).Max(e => e.Timestamp) - recorded.SelectMany(r => r.Events).Min(e => e.Timestamp) + TimeSpan.FromSeconds(2);
        var stream = new List<SyscallEvent>(recorded.Sum(r => r.Events.Count) * copies);
        for (var copy = 0; copy < copies; copy++)
        {
            var shift = span * copy;
            var pids = copy * 100_000;
            foreach (var (function, events) in recorded)
            {
                var instance = $"{function}-{copy.ToString(CultureInfo.InvariantCulture)}";
                stream.AddRange(events.Select(e => e with
                {
                    Timestamp = e.Timestamp + shift,
                    Pid = e.Pid + pids,
                    Tid = e.Tid + pids,
                    Ppid = e.Ppid > 0 ? e.Ppid + pids : 0,
                    TargetPid = e.TargetPid > 0 ? e.TargetPid + pids : 0,
                    Instance = instance,
                }));
            }
        }

        var counters = new GrapherCounters();
        var options = new GrapherOptions();
        var graphs = 0;
        var traces = 0;
        var assembler = new TraceAssembler(options, counters, _ => traces++);
        InvocationAttributor? attributor = null;
        attributor = new InvocationAttributor(options, counters, f =>
        {
            graphs++;
            assembler.Add(f, attributor!.Now);
        });
        var sw = Stopwatch.StartNew();
        foreach (var evt in stream)
        {
            attributor.Add(evt);
        }

        attributor.FlushAll();
        assembler.FlushAll();
        var seconds = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"  replay: {stream.Count:N0} events ({recorded.Count} recordings × {copies}) in {seconds:F2} s on one thread");
        Console.WriteLine($"    events/s attributed  {stream.Count / seconds,12:N0}");
        Console.WriteLine($"    graphs/s built       {graphs / seconds,12:N0}   ({graphs:N0} invocation graphs, {counters.Attributed:N0} events in them, {counters.Idle:N0} idle)");
    }

    private static void MemoryPerOpenInvocation(int open)
    {
        var counters = new GrapherCounters();
        var attributor = new InvocationAttributor(new GrapherOptions { MaxOpenInvocations = open + 1 }, counters, _ => { });
        var time = DateTimeOffset.UtcNow;
        GC.Collect();
        var before = GC.GetTotalMemory(forceFullCollection: true);
        for (var i = 0; i < open; i++)
        {
            var pid = 10_000 + (i % 100);
            var fd = 100 + (i / 100);
            var socket = new FileDescriptorInfo(fd, "TCP", "127.0.0.1:8080", $"127.0.0.1:{20_000 + fd}");
            var head = Encoding.ASCII.GetBytes($"POST / HTTP/1.1\r\nX-Call-Id: {Guid.NewGuid()}\r\n\r\n");
            attributor.Add(new SyscallEvent(time, pid, pid, 1, "read", Fd: socket, Data: head, ReturnValue: head.Length, Function: "bench", Instance: "bench-" + (i % 100).ToString(CultureInfo.InvariantCulture)));
            for (var k = 0; k < 10; k++)
            {
                var path = $"/tmp/bench-{i}-{k}";
                attributor.Add(new SyscallEvent(time, pid, pid, 1, "openat", Path: path, Flags: "O_WRONLY|O_CREAT", Fd: new FileDescriptorInfo(200 + k, path), ReturnValue: 200 + k, Function: "bench", Instance: "bench-" + (i % 100).ToString(CultureInfo.InvariantCulture)));
            }

            attributor.Add(new SyscallEvent(time, pid, pid, 1, "sendto", Fd: new FileDescriptorInfo(300, "TCP", "127.0.0.1:40000", "127.0.0.1:5432"), ReturnValue: 10, Function: "bench", Instance: "bench-" + (i % 100).ToString(CultureInfo.InvariantCulture)));
        }

        var after = GC.GetTotalMemory(forceFullCollection: true);
        Console.WriteLine($"  memory: {open:N0} open invocations of 12 events (a request, 10 files, a database send) hold {(after - before) / 1024.0 / 1024.0:F1} MiB: " +
            $"{(after - before) / (double)open / 1024.0:F1} KiB per open invocation (container state included)");
        GC.KeepAlive(attributor);
    }

    private static async Task AccuracyAsync(int clients, int perClient, string backend, string? dump, CancellationToken ct)
    {
        using var dumpWriter = dump is null ? null : new StreamWriter(dump);
        const string Function = "product-photos-receive";
        var state = Path.Combine("/var/lib/faasmon", $"bench-grapher-{Environment.ProcessId}");
        var tokens = new ConcurrentDictionary<string, string>(StringComparer.Ordinal); // token → call id that named it
        var tokenEvents = 0L;
        var invocations = new ConcurrentQueue<FinishedInvocation>();
        var parts = new ConcurrentDictionary<string, string>(StringComparer.Ordinal); // temporary file → the token it was renamed to
        var partEvents = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);
        Console.WriteLine($"  accuracy: {clients} concurrent clients × {perClient} requests to {Function} (max_inflight 4, one warm instance), tracer {backend}");
        try
        {
            var stack = await MonitoredStack.StartAsync(new MonitoredStackOptions
            {
                StateDirectory = Path.Combine(state, "localfaas"),
                ProxyDataDirectory = Path.Combine(state, "proxy"),
                Backend = backend,
                Pcap = false,
                OnEvent = e =>
                {
                    if (dumpWriter is not null && e.Function == Function)
                    {
                        lock (dumpWriter)
                        {
                            dumpWriter.WriteLine(System.Text.Json.JsonSerializer.Serialize(e, TraceCommand.Json));
                        }
                    }

                    if (Token(e) is not null)
                    {
                        Interlocked.Increment(ref tokenEvents);
                    }

                    // the temporary file a download goes to is named by nothing in the request: its calls are attributed by
                    // descriptor and time alone; the rename that gives it the request's name says whose they were
                    if (e is { Syscall: "rename" or "renameat" or "renameat2", Path: { } part } && Token(e.Path2) is { } renamedTo)
                    {
                        parts[part] = renamedTo;
                    }

                    if ((e.Fd?.Path ?? e.Path) is { } touched && touched.EndsWith(".part", StringComparison.Ordinal) && Token(e) is null)
                    {
                        partEvents.AddOrUpdate(touched, 1, (_, n) => n + 1);
                    }
                },
            }, NullLoggerFactory.Instance, ct);
            await using (stack)
            {
                var consuming = Task.Run(async () =>
                {
                    await foreach (var i in stack.Grapher.Invocations.ReadAllAsync(CancellationToken.None))
                    {
                        invocations.Enqueue(i);
                    }
                }, CancellationToken.None);
                _ = Task.Run(async () =>
                {
                    await foreach (var _ in stack.Grapher.Traces.ReadAllAsync(CancellationToken.None))
                    {
                    }
                }, CancellationToken.None);
                await using var photos = await PhotoHost.StartAsync(ct);
                using var http = new HttpClient { BaseAddress = stack.GatewayUrl, Timeout = TimeSpan.FromSeconds(30) };
                var failed = 0;
                var sw = Stopwatch.StartNew();
                await Task.WhenAll(Enumerable.Range(0, clients).Select(client => Task.Run(async () =>
                {
                    for (var r = 0; r < perClient; r++)
                    {
                        var token = $"tok{client}x{r}x{Guid.NewGuid().ToString("N")[..10]}";
                        var callId = Guid.NewGuid().ToString();
                        tokens[token] = callId;
                        using var request = new HttpRequestMessage(HttpMethod.Post, $"/function/{Function}")
                        {
                            Content = JsonContent.Create(new { photographer = "ph-001", product = "p-cam-001", url = photos.PhotoUrl(token + ".png").AbsoluteUri }),
                        };
                        request.Headers.Add(CallId.HeaderName, callId);
                        using var response = await http.SendAsync(request, ct);
                        if (!response.IsSuccessStatusCode)
                        {
                            Interlocked.Increment(ref failed);
                        }
                    }
                }, ct)));
                var elapsed = sw.Elapsed;
                await stack.DrainAsync(TimeSpan.FromSeconds(2), ct);
                await consuming;

                tokenEvents += partEvents.Where(p => parts.ContainsKey(p.Key)).Sum(p => p.Value);
                string? TokenOfFile(GraphNode node) => node.Kind != NodeKind.File ? null
                    : Token(node.Label) ?? (parts.TryGetValue(node.Label, out var renamed) ? renamed : null);
                long right = 0, wrong = 0;
                var wrongBySyscall = new SortedDictionary<string, long>(StringComparer.Ordinal);
                var ambiguousGraphs = 0;
                foreach (var invocation in invocations.Where(i => i.Graph.Function == Function))
                {
                    var graph = invocation.Graph;
                    ambiguousGraphs += graph.Ambiguous ? 1 : 0;
                    foreach (var edge in graph.Edges.Where(e => e.Kind != EdgeKind.Inherits))
                    {
                        // the system calls that name the request's file: on the file itself, or the execve whose argv names it
                        var token = TokenOfFile(graph.Nodes[edge.Source]) ?? TokenOfFile(graph.Nodes[edge.Target])
                            ?? (edge.Kind == EdgeKind.Execve ? Token(graph.Nodes[edge.Source].Attributes?.GetValueOrDefault("argv")) : null);
                        if (token is null || !tokens.TryGetValue(token, out var owner))
                        {
                            continue;
                        }

                        if (owner == graph.CallId)
                        {
                            right += edge.Count;
                        }
                        else
                        {
                            wrong += edge.Count;
                            wrongBySyscall[edge.Syscall] = wrongBySyscall.GetValueOrDefault(edge.Syscall) + edge.Count;
                        }
                    }
                }

                var graphs = invocations.Count(i => i.Graph.Function == Function);
                Console.WriteLine($"    {clients * perClient} requests in {elapsed.TotalSeconds:F1} s ({failed} failed), {graphs} graphs ({ambiguousGraphs} marked ambiguous)");
                Console.WriteLine($"    system calls on a request's own file (named by it, or its download's temporary file): {tokenEvents:N0} traced; attributed to the right call id {right:N0}, to another call {wrong:N0}, to none {Math.Max(0, tokenEvents - right - wrong):N0}");
                if (wrongBySyscall.Count > 0)
                {
                    Console.WriteLine($"    given to another call, by system call: {string.Join(", ", wrongBySyscall.Select(w => $"{w.Key} {w.Value}"))}");
                }

                Console.WriteLine($"    attribution accuracy (right / traced)      {(tokenEvents == 0 ? 0 : right / (double)tokenEvents),8:P1}");
                Console.WriteLine($"    precision (right / attributed)             {(right + wrong == 0 ? 0 : right / (double)(right + wrong)),8:P1}");
            }
        }
        catch (TracerUnavailableException e)
        {
            Console.WriteLine($"    skipped: {e.Message}");
        }
        finally
        {
            if (Directory.Exists(state))
            {
                Directory.Delete(state, recursive: true);
            }
        }
    }

    private static string? Token(SyscallEvent e) =>
        Token(e.Path) ?? Token(e.Path2) ?? Token(e.Fd?.Path) ?? (e.Argv is { } argv ? argv.Select(Token).FirstOrDefault(t => t is not null) : null);


    /// <summary>The request's own name, "tok&lt;client&gt;x&lt;n&gt;x&lt;10 hex&gt;".</summary>
    private static string? Token(string? text)
    {
        if (text is null)
        {
            return null;
        }

        var at = text.IndexOf("tok", StringComparison.Ordinal);
        if (at < 0)
        {
            return null;
        }

        var end = at + 3;
        while (end < text.Length && (char.IsAsciiLetterOrDigit(text[end])))
        {
            end++;
        }

        return end - at > 10 ? text[at..end] : null;
    }

    private static string? FindRecordings()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "FaaSMon.Tracer.Tests", "Fixtures");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }
}
