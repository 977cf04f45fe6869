using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using FaaSMon.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace FaaSMon.Proxy;

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(InvocationRecord))]
[JsonSerializable(typeof(PacketFlow))]
internal sealed partial class ProxyJsonContext : JsonSerializerContext;

/// <summary>
/// The default subscriber: one JSON object per line, a file per UTC hour (<c>PREFIX-yyyyMMdd-HH.ndjson</c>), flushed
/// at most every 100 ms while records come, so a reader sees them within moments without a write per record.
/// </summary>
internal sealed partial class NdjsonRecordWriter<T>(
    RecordStream<T> stream, string directory, string prefix, JsonTypeInfo<T> typeInfo, ILogger<NdjsonRecordWriter<T>> logger) : BackgroundService
{
    private const int PollIntervalMs = 10;
    private const int FlushIntervalMs = 100;
    private static readonly byte[] NewLine = "\n"u8.ToArray();
    private RecordStream<T>.Subscription? _subscription;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        // Subscribe before the first request can be served, so no record is published into the void.
        _subscription = stream.Subscribe($"ndjson-{prefix}");
        return base.StartAsync(cancellationToken);
    }

    // A thread of its own with synchronous file writes, so that writing never holds a thread-pool thread.
    protected override Task ExecuteAsync(CancellationToken stoppingToken) => DedicatedThread.Run($"faasmon-{prefix}", () => Write(stoppingToken));

    private void Write(CancellationToken stoppingToken)
    {
        var reader = _subscription!.Reader;
        FileStream? file = null;
        string? currentPath = null;
        // Serialized into a buffer and written with the newline: Utf8JsonWriter.Flush on a stream also flushes the
        // stream, which was a write syscall per record.
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(4096);
        using var json = new Utf8JsonWriter(buffer);
        var dirty = false;
        var lastFlush = Environment.TickCount64;
        try
        {
            while (true)
            {
                if (!reader.TryRead(out var record))
                {
                    if (dirty && Environment.TickCount64 - lastFlush >= FlushIntervalMs)
                    {
                        file!.Flush();
                        dirty = false;
                        lastFlush = Environment.TickCount64;
                    }

                    if (reader.Completion.IsCompleted || stoppingToken.IsCancellationRequested)
                    {
                        break;
                    }

                    // Polling with a short sleep: blocking on WaitToReadAsync spins first, and with records arriving
                    // in bursts that spinning took a large share of two cores away from the requests.
                    Thread.Sleep(PollIntervalMs);
                    continue;
                }

                var path = Path.Combine(directory, $"{prefix}-{DateTime.UtcNow:yyyyMMdd-HH}.ndjson");
                if (path != currentPath)
                {
                    file?.Dispose();
                    file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, 1024 * 1024, useAsync: false);
                    currentPath = path;
                }

                buffer.ResetWrittenCount();
                json.Reset(buffer);
                JsonSerializer.Serialize(json, record, typeInfo);
                json.Flush();
                file!.Write(buffer.WrittenSpan);
                file.Write(NewLine);
                dirty = true;
            }

            file?.Flush();
        }
        catch (IOException ex)
        {
            // Fail-open: the proxy keeps serving; records from here on are counted as dropped.
            LogWriteFailed(logger, currentPath ?? directory, ex);
            _subscription.Dispose();
        }
        finally
        {
            file?.Dispose();
        }
    }

    public override void Dispose()
    {
        _subscription?.Dispose();
        base.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Error, Message = "Cannot write records to {Path}; records are dropped (and counted) from now on")]
    private static partial void LogWriteFailed(ILogger logger, string path, Exception ex);
}

/// <summary>Runs blocking work on a background thread of its own; the task completes when the work returns.</summary>
internal static class DedicatedThread
{
    public static Task Run(string name, Action work)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                work();
                done.SetResult();
            }
            catch (Exception ex)
            {
                done.SetException(ex);
            }
        })
        {
            IsBackground = true,
            Name = name,
        };
        thread.Start();
        return done.Task;
    }
}
