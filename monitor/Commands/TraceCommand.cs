using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using FaaSMon.Core;
using FaaSMon.Tracer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Monitor.Commands;

/// <summary><c>faasmon trace</c>: system calls of the function processes as NDJSON, one <see cref="SyscallEvent"/> a line.</summary>
internal static class TraceCommand
{
    private static readonly Option<string> Match = new("--match") { Description = "Command-line substring of function processes (as pgrep -f).", DefaultValueFactory = _ => "index.js" };
    private static readonly Option<string> Backend = new("--backend") { Description = "strace, ebpf, or ptrace (our own ptrace tracer: strace's way, a fraction of its cost).", DefaultValueFactory = _ => "strace" };
    private static readonly Option<string?> EbpfLoader = new("--ebpf-loader") { Description = "eBPF backend: libbpf (default, our loader with a binary ring buffer) or bpftrace (ebpf/faasmon.bt)." };
    private static readonly Option<string?> Out = new("--out") { Description = "NDJSON file to write (default: standard output)." };
    private static readonly Option<int> Duration = new("--duration") { Description = "Seconds to trace (0: until Ctrl+C).", DefaultValueFactory = _ => 0 };
    private static readonly Option<bool> Verbose = new("--verbose") { Description = "Debug logs." };

    internal static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Converters = { new JsonStringEnumConverter() },
    };

    public static Command Create()
    {
        Backend.AcceptOnlyFromAmong("strace", "ebpf", "ptrace");
        EbpfLoader.AcceptOnlyFromAmong("libbpf", "bpftrace");
        var command = new Command("trace", "Trace the system calls of function processes (strace or eBPF) and write them as NDJSON.")
        {
            Match, Backend, EbpfLoader, Out, Duration, Verbose,
        };
        command.SetAction(async (parse, ct) =>
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Logging.ClearProviders();
            builder.Logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss ";
            });
            builder.Logging.AddFilter("Microsoft", LogLevel.Warning);
            builder.Logging.SetMinimumLevel(parse.GetValue(Verbose) ? LogLevel.Debug : LogLevel.Information);
            // logs go to stderr when events go to stdout
            builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
            builder.AddFaaSMonTracer(o =>
            {
                o.Match = parse.GetValue(Match)!;
                o.Backend = parse.GetValue(Backend)!;
                if (parse.GetValue(EbpfLoader) is { } loader)
                {
                    o.EbpfLoader = loader; // else Tracer:EbpfLoader, libbpf by default
                }
            });
            using var host = builder.Build();
            var tracer = host.Services.GetRequiredService<SyscallTracer>();
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            if (parse.GetValue(Duration) is > 0 and var seconds)
            {
                stop.CancelAfter(TimeSpan.FromSeconds(seconds));
            }

            try
            {
                await host.StartAsync(stop.Token);
                await tracer.Started;
            }
            catch (TracerUnavailableException e)
            {
                await Console.Error.WriteLineAsync($"faasmon trace: {e.Message}");
                return 2;
            }

            var path = parse.GetValue(Out);
            await using var output = path is null ? Console.OpenStandardOutput() : File.Create(path);
            await using var writer = new StreamWriter(output) { AutoFlush = false };
            var writing = Task.Run(async () =>
            {
                await foreach (var evt in tracer.Events.ReadAllAsync(CancellationToken.None))
                {
                    await writer.WriteLineAsync(JsonSerializer.Serialize(evt, Json));
                    if (tracer.Events.Count == 0)
                    {
                        await writer.FlushAsync(CancellationToken.None);
                    }
                }
            }, CancellationToken.None);
            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token);
            }
            catch (OperationCanceledException)
            {
            }

            await host.StopAsync(CancellationToken.None);
            await writing;
            await writer.FlushAsync(CancellationToken.None);
            await Console.Error.WriteLineAsync($"faasmon trace: {tracer.Counters}");
            return 0;
        });
        return command;
    }
}
