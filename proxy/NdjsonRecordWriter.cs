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
/// whenever the queue runs empty so a reader sees records within moments without a flush per record.
/// </summary>
internal sealed partial class NdjsonRecordWriter<T>(
    RecordStream<T> stream, string directory, string prefix, JsonTypeInfo<T> typeInfo, ILogger<NdjsonRecordWriter<T>> logger) : BackgroundService
{
    private static readonly byte[] NewLine = "\n"u8.ToArray();
    private RecordStream<T>.Subscription? _subscription;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(directory);
        // Subscribe before the first request can be served, so no record is published into the void.
        _subscription = stream.Subscribe($"ndjson-{prefix}");
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var reader = _subscription!.Reader;
        FileStream? file = null;
        string? currentPath = null;
        Utf8JsonWriter? json = null;
        try
        {
            while (await reader.WaitToReadAsync(stoppingToken))
            {
                while (reader.TryRead(out var record))
                {
                    var path = Path.Combine(directory, $"{prefix}-{DateTime.UtcNow:yyyyMMdd-HH}.ndjson");
                    if (path != currentPath)
                    {
                        if (file is not null)
                        {
                            await file.DisposeAsync();
                        }

                        file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read, 64 * 1024, useAsync: false);
                        json = new Utf8JsonWriter(file);
                        currentPath = path;
                    }

                    JsonSerializer.Serialize(json!, record, typeInfo);
                    json!.Flush();
                    json.Reset();
                    file!.Write(NewLine);
                }

                file?.Flush();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (IOException ex)
        {
            // Fail-open: the proxy keeps serving; records from here on are counted as dropped.
            LogWriteFailed(logger, currentPath ?? directory, ex);
            _subscription.Dispose();
        }
        finally
        {
            if (json is not null)
            {
                await json.DisposeAsync();
            }

            if (file is not null)
            {
                await file.DisposeAsync();
            }
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
