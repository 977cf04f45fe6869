using System.Text.Json;
using System.Text.Json.Serialization;

namespace FaaSMon.Workload;

/// <summary>One line of the ground-truth JSONL: what the driver sent and what it was meant to be.</summary>
/// <param name="Time">When the request was sent.</param>
/// <param name="Path">Path and query as sent to the gateway (<c>/function/NAME/...</c>).</param>
/// <param name="Status">HTTP status, 0 when no response arrived (see <paramref name="Error"/>).</param>
/// <param name="Label"><c>benign</c>, or the attack family when the request itself carries the attack.</param>
/// <param name="AttackId"><c>&lt;family&gt;-&lt;n&gt;</c> for every request that belongs to an attack run, including benign-looking verification and victim reads.</param>
/// <param name="Step">The attack step: stage, trigger, inject, victim, verify.</param>
/// <param name="AffectedBy">For a benign request whose answer an earlier attack changed (a tampered cache).</param>
internal sealed record GroundTruthLine(
    DateTimeOffset Time,
    string CallId,
    string TraceId,
    string SpanId,
    string Function,
    string Method,
    string Path,
    int Status,
    string Label,
    string? AttackId = null,
    string? Step = null,
    string? AffectedBy = null,
    string? Error = null);

/// <summary>Appends ground-truth lines, one flush per line so a crash or a reader tailing the file loses nothing.</summary>
internal sealed class GroundTruthWriter : IAsyncDisposable
{
    internal static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly StreamWriter? writer;
    private readonly SemaphoreSlim gate = new(1, 1);
    private int lines;

    private GroundTruthWriter(StreamWriter? writer) => this.writer = writer;

    public string? Path { get; private init; }

    public int Lines => Volatile.Read(ref lines);

    /// <summary>Opens (truncating) the file at <paramref name="path"/>, or counts lines only when it is null.</summary>
    public static GroundTruthWriter Open(string? path)
    {
        if (path is null)
        {
            return new GroundTruthWriter(null);
        }

        var fullPath = System.IO.Path.GetFullPath(path);
        var directory = System.IO.Path.GetDirectoryName(fullPath);
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var stream = new FileStream(fullPath, FileMode.Create, FileAccess.Write, FileShare.Read);
        return new GroundTruthWriter(new StreamWriter(stream) { NewLine = "\n" }) { Path = fullPath };
    }

    public async Task WriteAsync(GroundTruthLine line, CancellationToken ct)
    {
        var json = JsonSerializer.Serialize(line, JsonOptions);
        await gate.WaitAsync(ct);
        try
        {
            if (writer is not null)
            {
                await writer.WriteLineAsync(json.AsMemory(), ct);
                await writer.FlushAsync(ct);
            }

            lines++;
        }
        finally
        {
            gate.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (writer is not null)
        {
            await writer.DisposeAsync();
        }

        gate.Dispose();
    }
}
