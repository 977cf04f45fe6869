using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using FaaSMon.Core;
using Microsoft.Data.Sqlite;

namespace FaaSMon.Monitor.Store;

/// <summary>How much the store keeps.</summary>
internal sealed record StoreOptions
{
    /// <summary>Invocations kept; the oldest (and their graph files) go first.</summary>
    public int MaxInvocations { get; init; } = 200_000;

    /// <summary>Invocations older than this are removed.</summary>
    public TimeSpan MaxAge { get; init; } = TimeSpan.FromDays(7);
}

/// <summary>One row of the invocation list, as the API and the dashboard show it.</summary>
internal sealed record InvocationSummary(
    string Id,
    string? CallId,
    string? Function,
    string? Instance,
    string? TraceId,
    string? ParentId,
    string? Method,
    string? Path,
    int? Status,
    DateTimeOffset StartedAt,
    double? DurationMs,
    string Verdict,
    double? Score,
    string? Model,
    IReadOnlyList<string> Rules,
    bool Ambiguous,
    bool Truncated,
    bool Final)
{
    [JsonIgnore]
    public string? GraphFile { get; init; }

    [JsonIgnore]
    public string? PcapFile { get; init; }

    [JsonIgnore]
    public string? GraphId { get; init; }

    [JsonIgnore]
    public string? CallerGraphId { get; init; }

    /// <summary>The network view's verdict on the windows this invocation's flows were in: intrusion, benign, or null (none scored).</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Network { get; init; }
}

/// <summary>A network window's verdict, joined to an invocation whose packet flows were in it.</summary>
/// <param name="Flows">Edges of the window that are this invocation's flows.</param>
internal sealed record NetworkVerdict(DateTimeOffset WindowStart, double WindowSeconds, double Score, bool Intrusion, string Model, int Flows, int Nodes, int Edges);

/// <summary>Filter and page of <see cref="VerdictStore.List"/>; <see cref="Cursor"/> is the last row of the previous page.</summary>
internal sealed record InvocationQuery(string? Function, string? Verdict, DateTimeOffset? Since, int Limit, (long StartedMs, string Id)? Cursor);

/// <summary>A page of the list: newest first; <see cref="Next"/> continues after the last item.</summary>
internal sealed record InvocationPage(IReadOnlyList<InvocationSummary> Items, (long StartedMs, string Id)? Next);

/// <summary>What the store knows of one invocation.</summary>
internal sealed record StoredInvocation(InvocationSummary Summary, string? RecordJson, string? VerdictJson, IReadOnlyList<string> Hops);

/// <summary>
/// Records and verdicts in SQLite (WAL: the API reads while the pipeline writes), graphs as JSON files beside it, so the
/// database stays small and a graph is read only when a person asks for it. Everything survives a restart. One row per
/// invocation (a hop of a chain), keyed by the hop's span id, or the graph id when the proxy saw no record. Writes are
/// serialised by a lock; reads use pooled connections of their own.
/// </summary>
internal sealed class VerdictStore : IDisposable
{
    private const int SchemaVersion = 2;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    private readonly string _connectionString;
    private readonly string _graphs;
    private readonly StoreOptions _options;
    private readonly Lock _write = new();
    private readonly SqliteConnection _writer;

    private VerdictStore(string directory, StoreOptions options)
    {
        Directory.CreateDirectory(directory);
        _graphs = Path.Combine(directory, "graphs");
        Directory.CreateDirectory(_graphs);
        _options = options;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(directory, "faasmon.db"),
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
        _writer = new SqliteConnection(_connectionString);
        _writer.Open();
        // No checkpoint on the write path: SQLite's automatic one runs inside a commit (with an fsync) while the write lock
        // is held, so a verdict would wait for the disk. A connection of the store's own checkpoints every 2 s instead,
        // passively (writers go on meanwhile).
        Execute(_writer, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint=0;");
        _checkpointer = new Timer(_ => Checkpoint(), null, CheckpointInterval, CheckpointInterval);
        _flusher = new Timer(_ => FlushQuietly(), null, FlushInterval, FlushInterval);
    }

    private static readonly TimeSpan FlushInterval = TimeSpan.FromMilliseconds(50);
    private readonly ConcurrentQueue<object> _pending = new();
    private readonly Timer _flusher;
    private int _pendingCount;

    private void FlushQuietly()
    {
        try
        {
            FlushPending();
        }
        catch (SqliteException)
        {
            // kept queued: the next tick tries again
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private static readonly TimeSpan CheckpointInterval = TimeSpan.FromSeconds(2);
    private readonly Timer _checkpointer;
    private int _checkpointing;

    /// <summary>Copies the write-ahead log into the database (passive: never blocks a writer). Runs on a timer.</summary>
    internal void Checkpoint()
    {
        if (Interlocked.Exchange(ref _checkpointing, 1) == 1)
        {
            return;
        }

        try
        {
            using var connection = Read();
            Execute(connection, "PRAGMA wal_checkpoint(PASSIVE);");
        }
        catch (SqliteException)
        {
            // busy or closing: the next tick tries again
        }
        catch (ObjectDisposedException)
        {
        }
        finally
        {
            Volatile.Write(ref _checkpointing, 0);
        }
    }

    /// <summary>Opens (or creates) the store in <paramref name="directory"/>.</summary>
    /// <exception cref="InvalidDataException">The database is of a schema version this code does not know.</exception>
    public static VerdictStore Open(string directory, StoreOptions? options = null)
    {
        var store = new VerdictStore(directory, options ?? new StoreOptions());
        try
        {
            store.Migrate();
            return store;
        }
        catch
        {
            store.Dispose();
            throw;
        }
    }

    private void Migrate()
    {
        var version = Convert.ToInt32(Scalar(_writer, "PRAGMA user_version"), CultureInfo.InvariantCulture);
        if (version == SchemaVersion)
        {
            return;
        }

        if (version is not (0 or 1))
        {
            throw new InvalidDataException($"{_connectionString}: schema version {version}, this FaaSMon reads {SchemaVersion}");
        }

        if (version == 1)
        {
            Execute(_writer, NetworkSchema + "PRAGMA user_version = 2;");
            return;
        }

        Execute(_writer, """
            CREATE TABLE IF NOT EXISTS invocations (
                id TEXT PRIMARY KEY,
                call_id TEXT, trace_id TEXT, parent_id TEXT, function TEXT, instance TEXT,
                method TEXT, path TEXT, status INTEGER,
                started_ms INTEGER NOT NULL, duration_ms REAL, response_end_ms INTEGER,
                verdict TEXT NOT NULL, score REAL, model TEXT, rules TEXT NOT NULL DEFAULT '',
                ambiguous INTEGER NOT NULL DEFAULT 0, truncated INTEGER NOT NULL DEFAULT 0, final INTEGER NOT NULL DEFAULT 0,
                graph_id TEXT, caller_graph_id TEXT, graph_file TEXT, pcap_file TEXT,
                record_json TEXT, verdict_json TEXT, verdict_ms INTEGER);
            CREATE INDEX IF NOT EXISTS invocations_started ON invocations (started_ms DESC, id DESC);
            CREATE INDEX IF NOT EXISTS invocations_call ON invocations (call_id);
            CREATE INDEX IF NOT EXISTS invocations_trace ON invocations (trace_id);
            CREATE INDEX IF NOT EXISTS invocations_graph ON invocations (graph_id);
            CREATE INDEX IF NOT EXISTS invocations_caller ON invocations (caller_graph_id);
            CREATE TABLE IF NOT EXISTS flows (
                span_id TEXT NOT NULL, protocol TEXT NOT NULL, source TEXT NOT NULL, destination TEXT NOT NULL,
                packets INTEGER NOT NULL, bytes INTEGER NOT NULL, first_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL,
                slice_file TEXT, slice_offset INTEGER NOT NULL, slice_length INTEGER NOT NULL);
            CREATE INDEX IF NOT EXISTS flows_span ON flows (span_id);
            CREATE INDEX IF NOT EXISTS flows_first ON flows (first_ms);
            CREATE TABLE IF NOT EXISTS traces (trace_id TEXT PRIMARY KEY, graph_file TEXT NOT NULL, built_ms INTEGER NOT NULL);
            """ + NetworkSchema + "PRAGMA user_version = 2;");
    }

    /// <summary>Version 2: network-window verdicts per invocation (no column named id: the summary's subquery reads the outer one).</summary>
    private const string NetworkSchema = """
        CREATE TABLE IF NOT EXISTS network_verdicts (
            span_id TEXT NOT NULL, window_ms INTEGER NOT NULL, window_seconds REAL NOT NULL, score REAL NOT NULL,
            intrusion INTEGER NOT NULL, model TEXT NOT NULL, flows INTEGER NOT NULL, nodes INTEGER NOT NULL, edges INTEGER NOT NULL,
            PRIMARY KEY (span_id, window_ms));
        CREATE INDEX IF NOT EXISTS network_window ON network_verdicts (window_ms);

        """;

    /// <summary>A network window's verdict for the invocation of span <paramref name="spanId"/> (once per window: a repeat replaces it).</summary>
    public void AddNetworkVerdict(string spanId, NetworkVerdict verdict)
    {
        ArgumentNullException.ThrowIfNull(spanId);
        ArgumentNullException.ThrowIfNull(verdict);
        lock (_write)
        {
            using var command = _writer.CreateCommand();
            command.CommandText = """
                INSERT INTO network_verdicts (span_id, window_ms, window_seconds, score, intrusion, model, flows, nodes, edges)
                VALUES ($span, $window, $seconds, $score, $intrusion, $model, $flows, $nodes, $edges)
                ON CONFLICT (span_id, window_ms) DO UPDATE SET score = excluded.score, intrusion = excluded.intrusion, model = excluded.model,
                    flows = excluded.flows, nodes = excluded.nodes, edges = excluded.edges, window_seconds = excluded.window_seconds
                """;
            Bind(command, "$span", spanId);
            Bind(command, "$window", verdict.WindowStart.ToUnixTimeMilliseconds());
            Bind(command, "$seconds", verdict.WindowSeconds);
            Bind(command, "$score", verdict.Score);
            Bind(command, "$intrusion", verdict.Intrusion ? 1 : 0);
            Bind(command, "$model", verdict.Model);
            Bind(command, "$flows", verdict.Flows);
            Bind(command, "$nodes", verdict.Nodes);
            Bind(command, "$edges", verdict.Edges);
            command.ExecuteNonQuery();
        }
    }

    /// <summary>The network windows an invocation's flows were in, oldest first.</summary>
    public IReadOnlyList<NetworkVerdict> NetworkVerdicts(string id)
    {
        using var connection = Read();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT window_ms, window_seconds, score, intrusion, model, flows, nodes, edges FROM network_verdicts WHERE span_id = $s ORDER BY window_ms LIMIT 1000";
        Bind(command, "$s", id);
        var verdicts = new List<NetworkVerdict>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            verdicts.Add(new NetworkVerdict(DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(0)), reader.GetDouble(1), reader.GetDouble(2),
                reader.GetInt64(3) != 0, reader.GetString(4), reader.GetInt32(5), reader.GetInt32(6), reader.GetInt32(7)));
        }

        return verdicts;
    }

    /// <summary>The proxy saw a function invocation: a pending row until its graph is classified (written with the next batch).</summary>
    public void AddRecord(InvocationRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        if (record.Function is null)
        {
            return; // the gateway's own routes are not invocations
        }

        Enqueue(record);
    }

    /// <summary>
    /// Records and flows come several per invocation: one transaction each would hold the write lock (and the verdicts
    /// behind it) for every one of them. They are queued and written in one transaction at most 50 ms later, or as soon as
    /// 256 wait; a reader that needs them (a pcap slice, one invocation) writes what waits first.
    /// </summary>
    private void Enqueue(object item)
    {
        _pending.Enqueue(item);
        if (Interlocked.Increment(ref _pendingCount) >= 256)
        {
            FlushPending();
        }
    }

    /// <summary>Writes the queued records and flows in one transaction; on failure they stay queued for the next try.</summary>
    public void FlushPending()
    {
        if (_pending.IsEmpty)
        {
            return;
        }

        lock (_write)
        {
            var taken = new List<object>();
            while (_pending.TryDequeue(out var item))
            {
                Interlocked.Decrement(ref _pendingCount);
                taken.Add(item);
            }

            if (taken.Count == 0)
            {
                return;
            }

            try
            {
                using var transaction = _writer.BeginTransaction();
                foreach (var item in taken)
                {
                    if (item is InvocationRecord record)
                    {
                        WriteRecord(record, transaction);
                    }
                    else
                    {
                        WriteFlow((PacketFlow)item, transaction);
                    }
                }

                transaction.Commit();
            }
            catch (SqliteException)
            {
                foreach (var item in taken)
                {
                    _pending.Enqueue(item);
                    Interlocked.Increment(ref _pendingCount);
                }

                throw;
            }
        }
    }

    private void WriteRecord(InvocationRecord record, SqliteTransaction transaction)
    {
        using var command = _writer.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            INSERT INTO invocations (id, call_id, trace_id, parent_id, function, method, path, status, started_ms, duration_ms,
                                     response_end_ms, verdict, record_json)
            VALUES ($id, $call, $trace, $parent, $function, $method, $path, $status, $started, $duration, $end, 'pending', $record)
            ON CONFLICT (id) DO UPDATE SET record_json = excluded.record_json, status = excluded.status,
                response_end_ms = excluded.response_end_ms, method = excluded.method, path = excluded.path,
                parent_id = COALESCE(invocations.parent_id, excluded.parent_id);
            """;
        Bind(command, "$id", record.SpanId);
        Bind(command, "$call", record.CallId);
        Bind(command, "$trace", record.TraceId);
        Bind(command, "$parent", record.ParentSpanId);
        Bind(command, "$function", record.Function);
        Bind(command, "$method", record.Method);
        Bind(command, "$path", record.Path);
        Bind(command, "$status", record.Status);
        Bind(command, "$started", record.StartUtc.ToUnixTimeMilliseconds());
        Bind(command, "$duration", record.DurationMs);
        Bind(command, "$end", record.EndUtc.ToUnixTimeMilliseconds());
        Bind(command, "$record", JsonSerializer.Serialize(record, Json));
        command.ExecuteNonQuery();
    }

    /// <summary>
    /// A classified graph: its file is written (replacing a provisional one) and its row gets the verdict. Returns the
    /// invocation's id.
    /// </summary>
    public string AddVerdict(ProvenanceGraph graph, InvocationRecord? record, string? spanId, Verdict verdict, bool final, string? pcapFile, DateTimeOffset at)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(verdict);
        var id = spanId ?? graph.GraphId;
        var self = graph.Nodes.FirstOrDefault(n => n.Kind == NodeKind.Invocation && n.Attributes?.GetValueOrDefault("role") == "self")?.Attributes;
        var started = record?.StartUtc
            ?? (self?.GetValueOrDefault("opened") is { } opened && DateTimeOffset.TryParse(opened, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var o) ? o : at);
        double? duration = record?.DurationMs
            ?? (self?.GetValueOrDefault("durationMs") is { } d && double.TryParse(d, CultureInfo.InvariantCulture, out var ms) ? ms : null);
        // A provisional graph is replaced within seconds by its final one: it is kept in memory (and served from there)
        // rather than written, so the first verdict does not wait for a file the final verdict rewrites anyway.
        string? graphFile = null;
        if (final)
        {
            graphFile = WriteGraph(Path.Combine(_graphs, started.UtcDateTime.ToString("yyyyMMdd", CultureInfo.InvariantCulture)), id, graph);
            _provisionalGraphs.TryRemove(id, out _);
        }
        else if (_provisionalGraphs.TryAdd(id, graph))
        {
            _provisionalOrder.Enqueue(id);
            while (_provisionalOrder.Count > MaxProvisionalGraphs && _provisionalOrder.TryDequeue(out var oldest))
            {
                _provisionalGraphs.TryRemove(oldest, out _);
            }
        }

        var verdictName = verdict.IsIntrusion ? "intrusion" : "benign";
        lock (_write)
        {
            using var command = _writer.CreateCommand();
            command.CommandText = """
                INSERT INTO invocations (id, call_id, trace_id, parent_id, function, instance, method, path, status, started_ms,
                                         duration_ms, response_end_ms, verdict, score, model, rules, ambiguous, truncated, final,
                                         graph_id, caller_graph_id, graph_file, pcap_file, record_json, verdict_json, verdict_ms)
                VALUES ($id, $call, $trace, $parent, $function, $instance, $method, $path, $status, $started,
                        $duration, $end, $verdict, $score, $model, $rules, $ambiguous, $truncated, $final,
                        $graph, $caller, $file, $pcap, $record, $verdictJson, $at)
                ON CONFLICT (id) DO UPDATE SET
                    instance = excluded.instance, trace_id = COALESCE(excluded.trace_id, invocations.trace_id),
                    call_id = COALESCE(excluded.call_id, invocations.call_id),
                    verdict = excluded.verdict, score = excluded.score, model = excluded.model, rules = excluded.rules,
                    ambiguous = excluded.ambiguous, truncated = excluded.truncated, final = excluded.final,
                    graph_id = excluded.graph_id, caller_graph_id = excluded.caller_graph_id,
                    graph_file = COALESCE(excluded.graph_file, invocations.graph_file),
                    pcap_file = COALESCE(excluded.pcap_file, invocations.pcap_file),
                    record_json = COALESCE(invocations.record_json, excluded.record_json),
                    verdict_json = excluded.verdict_json,
                    verdict_ms = excluded.verdict_ms
                WHERE invocations.final = 0 OR excluded.final = 1;
                """;
            Bind(command, "$id", id);
            Bind(command, "$call", graph.CallId ?? record?.CallId);
            Bind(command, "$trace", graph.TraceId ?? record?.TraceId);
            Bind(command, "$parent", record?.ParentSpanId);
            Bind(command, "$function", graph.Function);
            Bind(command, "$instance", graph.Instance);
            Bind(command, "$method", record?.Method ?? self?.GetValueOrDefault("method"));
            Bind(command, "$path", record?.Path ?? self?.GetValueOrDefault("path"));
            Bind(command, "$status", record?.Status);
            Bind(command, "$started", started.ToUnixTimeMilliseconds());
            Bind(command, "$duration", duration);
            Bind(command, "$end", record?.EndUtc.ToUnixTimeMilliseconds());
            Bind(command, "$verdict", verdictName);
            Bind(command, "$score", verdict.Score);
            Bind(command, "$model", verdict.ModelName);
            Bind(command, "$rules", string.Join(',', verdict.RuleHits.Select(h => h.RuleId).Distinct(StringComparer.Ordinal)));
            Bind(command, "$ambiguous", graph.Ambiguous ? 1 : 0);
            Bind(command, "$truncated", graph.Truncated ? 1 : 0);
            Bind(command, "$final", final ? 1 : 0);
            Bind(command, "$graph", graph.GraphId);
            Bind(command, "$caller", self?.GetValueOrDefault("callerGraphId"));
            Bind(command, "$file", graphFile is null ? null : Path.GetRelativePath(_graphs, graphFile));
            Bind(command, "$pcap", pcapFile);
            Bind(command, "$record", record is null ? null : JsonSerializer.Serialize(record, Json));
            Bind(command, "$verdictJson", JsonSerializer.Serialize(verdict, Json));
            Bind(command, "$at", at.ToUnixTimeMilliseconds());
            command.ExecuteNonQuery();
        }

        return id;
    }

    /// <summary>
    /// Serializes a verdict, a record and a graph the way <see cref="AddVerdict"/> does, without writing them: the first
    /// serialization of each type builds its JSON metadata (tens of milliseconds), which the first verdict should not wait for.
    /// </summary>
    public static void WarmUp(Verdict verdict)
    {
        ArgumentNullException.ThrowIfNull(verdict);
        var now = DateTimeOffset.UtcNow;
        var record = new InvocationRecord("warm-up", new string('0', 32), new string('0', 16), null, null, "warm-up", "GET", "/", null, 200, 0, 0,
            now, now, 0, 0, null, 0, null, false, null, false, null, "ok");
        _ = JsonSerializer.Serialize(verdict, Json);
        _ = JsonSerializer.Serialize(record, Json);
        _ = ProvenanceGraphJson.Serialize(new ProvenanceGraph("warm-up", GraphScope.Invocation, null, null, null, null, [new GraphNode(0, NodeKind.Process, "warm-up")], []));
    }

    /// <summary>The packets of one direction of one connection for one invocation (its pcap slice), by span id.</summary>
    public void AddFlow(PacketFlow flow)
    {
        ArgumentNullException.ThrowIfNull(flow);
        if (flow.SpanId is null)
        {
            return;
        }

        Enqueue(flow);
    }

    private void WriteFlow(PacketFlow flow, SqliteTransaction transaction)
    {
        using var command = _writer.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = """
            INSERT INTO flows (span_id, protocol, source, destination, packets, bytes, first_ms, last_ms, slice_file, slice_offset, slice_length)
            VALUES ($span, $protocol, $source, $destination, $packets, $bytes, $first, $last, $file, $offset, $length)
            """;
        Bind(command, "$span", flow.SpanId);
        Bind(command, "$protocol", flow.Protocol);
        Bind(command, "$source", $"{flow.SourceAddress}:{flow.SourcePort}");
        Bind(command, "$destination", $"{flow.DestinationAddress}:{flow.DestinationPort}");
        Bind(command, "$packets", flow.Packets);
        Bind(command, "$bytes", flow.Bytes);
        Bind(command, "$first", flow.FirstSeenUtc.ToUnixTimeMilliseconds());
        Bind(command, "$last", flow.LastSeenUtc.ToUnixTimeMilliseconds());
        Bind(command, "$file", flow.SliceFile);
        Bind(command, "$offset", flow.SliceOffset);
        Bind(command, "$length", flow.SliceLength);
        command.ExecuteNonQuery();
    }

    /// <summary>The pcap slices of an invocation, in capture order: (file, offset after the pcap header, length).</summary>
    public IReadOnlyList<(string File, long Offset, long Length)> Slices(string id)
    {
        FlushPending();
        using var connection = Read();
        using var command = connection.CreateCommand();
        command.CommandText = "SELECT slice_file, slice_offset, slice_length FROM flows WHERE span_id = $s AND slice_file IS NOT NULL AND slice_length > 0 ORDER BY first_ms LIMIT 1000";
        Bind(command, "$s", id);
        var slices = new List<(string, long, long)>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            slices.Add((reader.GetString(0), reader.GetInt64(1), reader.GetInt64(2)));
        }

        return slices;
    }

    /// <summary>A trace's graph (all its invocations joined by invoke edges), kept as a file.</summary>
    public void AddTrace(ProvenanceGraph trace, DateTimeOffset at)
    {
        ArgumentNullException.ThrowIfNull(trace);
        if (trace.TraceId is not { } traceId)
        {
            return;
        }

        var file = WriteGraph(Path.Combine(_graphs, "traces", at.UtcDateTime.ToString("yyyyMMdd", CultureInfo.InvariantCulture)), traceId, trace);
        lock (_write)
        {
            using var command = _writer.CreateCommand();
            command.CommandText = "INSERT INTO traces (trace_id, graph_file, built_ms) VALUES ($t, $f, $at) ON CONFLICT (trace_id) DO UPDATE SET graph_file = excluded.graph_file, built_ms = excluded.built_ms";
            Bind(command, "$t", traceId);
            Bind(command, "$f", Path.GetRelativePath(_graphs, file));
            Bind(command, "$at", at.ToUnixTimeMilliseconds());
            command.ExecuteNonQuery();
        }
    }

    public InvocationPage List(InvocationQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        FlushPending();
        using var connection = Read();
        using var command = connection.CreateCommand();
        var where = new List<string>();
        if (query.Function is { } function)
        {
            where.Add("function = $function");
            Bind(command, "$function", function);
        }

        if (query.Verdict is { } verdict)
        {
            where.Add("verdict = $verdict");
            Bind(command, "$verdict", verdict);
        }

        if (query.Since is { } since)
        {
            where.Add("started_ms >= $since");
            Bind(command, "$since", since.ToUnixTimeMilliseconds());
        }

        if (query.Cursor is var (startedMs, id))
        {
            where.Add("(started_ms < $cs OR (started_ms = $cs AND id < $ci))");
            Bind(command, "$cs", startedMs);
            Bind(command, "$ci", id);
        }

        command.CommandText = $"SELECT {SummaryColumns} FROM invocations {(where.Count > 0 ? "WHERE " + string.Join(" AND ", where) : "")} ORDER BY started_ms DESC, id DESC LIMIT $limit";
        Bind(command, "$limit", query.Limit + 1);
        var items = ReadSummaries(command);
        if (items.Count <= query.Limit)
        {
            return new InvocationPage(items, null);
        }

        items.RemoveAt(items.Count - 1);
        var last = items[^1];
        return new InvocationPage(items, (last.StartedAt.ToUnixTimeMilliseconds(), last.Id));
    }

    /// <summary>By invocation id, else by call id (the chain's entry hop: the earliest with that call id).</summary>
    public StoredInvocation? Find(string reference)
    {
        ArgumentNullException.ThrowIfNull(reference);
        FlushPending();
        using var connection = Read();
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            SELECT {SummaryColumns}, record_json, verdict_json FROM invocations WHERE id = $r
            UNION ALL
            SELECT * FROM (SELECT {SummaryColumns}, record_json, verdict_json FROM invocations WHERE call_id = $r ORDER BY started_ms, id LIMIT 1)
            LIMIT 1
            """;
        Bind(command, "$r", reference);
        using var reader = command.ExecuteReader();
        if (!reader.Read())
        {
            return null;
        }

        var summary = Summary(reader);
        var recordJson = reader.IsDBNull(SummaryColumnCount) ? null : reader.GetString(SummaryColumnCount);
        var verdictJson = reader.IsDBNull(SummaryColumnCount + 1) ? null : reader.GetString(SummaryColumnCount + 1);
        reader.Close();
        var hops = new List<string>();
        if (summary.CallId is { } callId)
        {
            using var others = connection.CreateCommand();
            others.CommandText = "SELECT id FROM invocations WHERE call_id = $c AND id <> $i ORDER BY started_ms, id LIMIT 100";
            Bind(others, "$c", callId);
            Bind(others, "$i", summary.Id);
            using var r = others.ExecuteReader();
            while (r.Read())
            {
                hops.Add(r.GetString(0));
            }
        }

        return new StoredInvocation(summary, recordJson, verdictJson, hops);
    }

    /// <summary>
    /// The invocations of a trace in start order, and those that a member called without passing the trace on (an
    /// injected call starts a trace of its own; the grapher linked it to its caller by the client address).
    /// </summary>
    public IReadOnlyList<InvocationSummary> Trace(string traceId)
    {
        using var connection = Read();
        using var command = connection.CreateCommand();
        command.CommandText = $"""
            WITH members AS (SELECT * FROM invocations WHERE trace_id = $t)
            SELECT {SummaryColumns} FROM members
            UNION
            SELECT {SummaryColumns} FROM invocations WHERE caller_graph_id IN (SELECT graph_id FROM members WHERE graph_id IS NOT NULL)
            ORDER BY 10, 1 LIMIT 1000
            """;
        Bind(command, "$t", traceId);
        return ReadSummaries(command);
    }

    /// <summary>The graph of an invocation whose verdict is still provisional (null once its final graph is written, or when evicted).</summary>
    public ProvenanceGraph? ProvisionalGraph(string id) => _provisionalGraphs.GetValueOrDefault(id);

    private const int MaxProvisionalGraphs = 10_000;
    private readonly ConcurrentDictionary<string, ProvenanceGraph> _provisionalGraphs = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<string> _provisionalOrder = new();

    /// <summary>The graph file of an invocation (null when none was stored or retention removed it).</summary>
    public string? GraphPath(InvocationSummary summary)
    {
        ArgumentNullException.ThrowIfNull(summary);
        return summary.GraphFile is { } relative && File.Exists(Path.Combine(_graphs, relative)) ? Path.Combine(_graphs, relative) : null;
    }

    /// <summary>Removes what is beyond the retention limits, graph files first. Returns the rows removed.</summary>
    public int Prune(DateTimeOffset now)
    {
        FlushPending();
        var cutoff = (now - _options.MaxAge).ToUnixTimeMilliseconds();
        var doomed = new List<(string Id, string? File)>();
        using (var connection = Read())
        using (var command = connection.CreateCommand())
        {
            command.CommandText = """
                SELECT id, graph_file FROM invocations WHERE started_ms < $cutoff
                UNION
                SELECT id, graph_file FROM (SELECT id, graph_file FROM invocations ORDER BY started_ms DESC, id DESC LIMIT -1 OFFSET $max)
                """;
            Bind(command, "$cutoff", cutoff);
            Bind(command, "$max", _options.MaxInvocations);
            using var reader = command.ExecuteReader();
            while (reader.Read())
            {
                doomed.Add((reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1)));
            }
        }

        if (doomed.Count == 0)
        {
            return 0;
        }

        foreach (var (_, file) in doomed)
        {
            if (file is not null)
            {
                File.Delete(Path.Combine(_graphs, file));
            }
        }

        lock (_write)
        {
            using var transaction = _writer.BeginTransaction();
            using var command = _writer.CreateCommand();
            command.Transaction = transaction;
            command.CommandText = "DELETE FROM invocations WHERE id = $id";
            var parameter = command.Parameters.Add("$id", SqliteType.Text);
            foreach (var (id, _) in doomed)
            {
                parameter.Value = id;
                command.ExecuteNonQuery();
            }

            using var traces = _writer.CreateCommand();
            traces.Transaction = transaction;
            traces.CommandText = "DELETE FROM traces WHERE built_ms < $cutoff; DELETE FROM flows WHERE first_ms < (SELECT COALESCE(MIN(started_ms), 0) FROM invocations) - 60000; " +
                "DELETE FROM network_verdicts WHERE window_ms < (SELECT COALESCE(MIN(started_ms), 0) FROM invocations) - 60000;";
            Bind(traces, "$cutoff", cutoff);
            traces.ExecuteNonQuery();
            transaction.Commit();
        }

        return doomed.Count;
    }

    public void Dispose()
    {
        using (var flushed = new ManualResetEvent(false))
        {
            if (_flusher.Dispose(flushed))
            {
                flushed.WaitOne(TimeSpan.FromSeconds(10));
            }
        }

        FlushQuietly(); // nothing queued is lost by stopping
        using (var stopped = new ManualResetEvent(false))
        {
            if (_checkpointer.Dispose(stopped))
            {
                stopped.WaitOne(TimeSpan.FromSeconds(10)); // a checkpoint under way finishes first
            }
        }

        lock (_write)
        {
            try
            {
                Execute(_writer, "PRAGMA wal_checkpoint(TRUNCATE);"); // leave the database whole, the log empty
            }
            catch (SqliteException)
            {
                // another process still reads it: the log stays, SQLite replays it on the next open
            }
        }

        _writer.Dispose();
        SqliteConnection.ClearPool(_writer);
    }

    private const string SummaryColumns =
        "id, call_id, function, instance, trace_id, parent_id, method, path, status, started_ms, duration_ms, verdict, score, model, rules, ambiguous, truncated, final, graph_file, pcap_file, graph_id, caller_graph_id, " +
        "(SELECT CASE MAX(intrusion) WHEN 1 THEN 'intrusion' WHEN 0 THEN 'benign' END FROM network_verdicts WHERE span_id = id)";

    private const int SummaryColumnCount = 23;

    private static List<InvocationSummary> ReadSummaries(SqliteCommand command)
    {
        var items = new List<InvocationSummary>();
        using var reader = command.ExecuteReader();
        while (reader.Read())
        {
            items.Add(Summary(reader));
        }

        return items;
    }

    private static InvocationSummary Summary(SqliteDataReader r)
    {
        string? Text(int i) => r.IsDBNull(i) ? null : r.GetString(i);
        return new InvocationSummary(
            r.GetString(0), Text(1), Text(2), Text(3), Text(4), Text(5), Text(6), Text(7),
            r.IsDBNull(8) ? null : r.GetInt32(8),
            DateTimeOffset.FromUnixTimeMilliseconds(r.GetInt64(9)),
            r.IsDBNull(10) ? null : r.GetDouble(10),
            r.GetString(11),
            r.IsDBNull(12) ? null : r.GetDouble(12),
            Text(13),
            Text(14) is { Length: > 0 } rules ? rules.Split(',') : [],
            r.GetInt64(15) != 0, r.GetInt64(16) != 0, r.GetInt64(17) != 0)
        {
            GraphFile = Text(18),
            PcapFile = Text(19),
            GraphId = Text(20),
            CallerGraphId = Text(21),
            Network = Text(22),
        };
    }

    private SqliteConnection Read()
    {
        var connection = new SqliteConnection(_connectionString);
        connection.Open();
        return connection;
    }

    private static string WriteGraph(string directory, string id, ProvenanceGraph graph)
    {
        Directory.CreateDirectory(directory);
        var path = Path.Combine(directory, SafeName(id) + ".json");
        var temporary = path + ".tmp";
        File.WriteAllText(temporary, ProvenanceGraphJson.Serialize(graph), Encoding.UTF8);
        File.Move(temporary, path, overwrite: true);
        return path;
    }

    private static string SafeName(string id) =>
        new([.. id.Take(120).Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_')]);

    private static void Bind(SqliteCommand command, string name, object? value) =>
        command.Parameters.AddWithValue(name, value ?? DBNull.Value);

    private static void Execute(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        command.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection connection, string sql)
    {
        using var command = connection.CreateCommand();
        command.CommandText = sql;
        return command.ExecuteScalar();
    }
}
