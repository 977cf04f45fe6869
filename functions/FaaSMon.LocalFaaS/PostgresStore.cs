using System.Net.Sockets;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace FaaSMon.LocalFaaS;

/// <summary>
/// The hello-retail database: a PostgreSQL server of our own on 127.0.0.1, its data under the state
/// folder (kept across restarts), run as the <c>postgres</c> user, with the schema and seed data of
/// <c>functions/store</c> applied at every start (both are idempotent).
/// </summary>
internal sealed partial class PostgresStore(string dataRoot, SecretFiles secrets, ILogger logger) : IAsyncDisposable
{
    public const string Database = "hello_retail";
    public const string User = "hello_retail";

    private ChildProcess? _server;

    public int Port { get; private set; }

    public string Password { get; } = secrets.GetOrCreate("pg-password");

    public async Task StartAsync(string storeScriptsDirectory, CancellationToken ct)
    {
        var bin = FindBinDirectory();
        var account = Unix.LookupUser("postgres")
            ?? throw new InvalidOperationException("the 'postgres' user does not exist: install the Debian package postgresql");
        var data = Path.Combine(dataRoot, "data");
        var sockets = Path.Combine(dataRoot, "run");
        Directory.CreateDirectory(dataRoot);
        Directory.CreateDirectory(sockets);
        Unix.Chown(dataRoot, account.Uid, account.Gid);
        Unix.Chown(sockets, account.Uid, account.Gid);
        var superPassword = secrets.GetOrCreate("pg-superuser-password");

        if (!File.Exists(Path.Combine(data, "PG_VERSION")))
        {
            var passwordFile = Path.Combine(dataRoot, "initdb-password");
            await File.WriteAllTextAsync(passwordFile, superPassword, ct);
            Unix.Chown(passwordFile, account.Uid, account.Gid);
            File.SetUnixFileMode(passwordFile, UnixFileMode.UserRead);
            try
            {
                await RunToEndAsync(AsPostgres(account, Path.Combine(bin, "initdb")),
                    ["-D", data, "-U", "postgres", "--auth-local=peer", "--auth-host=scram-sha-256",
                     $"--pwfile={passwordFile}", "-E", "UTF8", "--no-instructions"], dataRoot, ct);
            }
            finally
            {
                File.Delete(passwordFile);
            }
        }

        StopStaleServer(data);
        Port = FreePort();
        LogStarting(logger, Port, data);
        _server = ChildProcess.Start("setpriv",
            [.. AsPostgresArgs(account), Path.Combine(bin, "postgres"), "-D", data, "-p", Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
             "-k", sockets, "-c", "listen_addresses=127.0.0.1", "-c", "synchronous_commit=off",
             "-c", "shared_buffers=32MB", "-c", "max_connections=200"],
            (line, _) => LogServerLine(logger, line), workingDirectory: dataRoot);

        var superConnection = ConnectionString("postgres", "postgres", superPassword);
        await WaitUntilReadyAsync(superConnection, ct);
        await EnsureDatabaseAsync(superConnection, ct);
        await ApplyScriptsAsync(storeScriptsDirectory, ct);
    }

    public string ConnectionString(string database = Database, string user = User, string? password = null) =>
        new NpgsqlConnectionStringBuilder
        {
            Host = "127.0.0.1",
            Port = Port,
            Database = database,
            Username = user,
            Password = password ?? Password,
            Pooling = false,
            Timeout = 5,
        }.ConnectionString;

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            // SIGINT is PostgreSQL's "fast shutdown": sessions are ended, data is flushed.
            _server.SignalGroup(ChildProcess.Signals.Int);
            await Task.WhenAny(_server.Exited, Task.Delay(TimeSpan.FromSeconds(10)));
            await _server.DisposeAsync();
        }
    }

    private static string FindBinDirectory()
    {
        var candidates = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "postgres")))
                .OrderByDescending(d => d, StringComparer.Ordinal)
                .ToList()
            : [];
        return candidates.FirstOrDefault()
            ?? throw new InvalidOperationException("PostgreSQL server not found under /usr/lib/postgresql: install the Debian package postgresql");
    }

    private static string[] AsPostgresArgs((int Uid, int Gid) account) =>
        [$"--reuid={account.Uid}", $"--regid={account.Gid}", "--init-groups", "--"];

    private static (string File, string[] Prefix) AsPostgres((int Uid, int Gid) account, string program) =>
        ("setpriv", [.. AsPostgresArgs(account), program]);

    private static async Task RunToEndAsync((string File, string[] Prefix) command, string[] arguments, string workingDirectory, CancellationToken ct)
    {
        var output = new List<string>();
        await using var child = ChildProcess.Start(command.File, [.. command.Prefix, .. arguments],
            (line, _) => { lock (output) output.Add(line); }, workingDirectory: workingDirectory);
        var code = await child.Exited.WaitAsync(TimeSpan.FromMinutes(2), ct);
        if (code != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(command.Prefix[^1])} failed ({code}): {string.Join('\n', output.TakeLast(10))}");
        }
    }

    /// <summary>A server left behind by a run that was killed holds the data folder; it is ours, stop it.</summary>
    private void StopStaleServer(string data)
    {
        var pidFile = Path.Combine(data, "postmaster.pid");
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), out var pid) || !Unix.ProcessExists(pid))
        {
            return;
        }

        var cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
        if (cmdline.Contains(data, StringComparison.Ordinal))
        {
            LogStaleServer(logger, pid);
            using var stale = System.Diagnostics.Process.GetProcessById(pid);
            stale.Kill();
            stale.WaitForExit(10_000);
        }
    }

    private async Task WaitUntilReadyAsync(string connectionString, CancellationToken ct)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            if (_server!.HasExited)
            {
                throw new InvalidOperationException($"PostgreSQL exited during start with code {await _server.Exited}");
            }

            try
            {
                await using var connection = new NpgsqlConnection(connectionString);
                await connection.OpenAsync(ct);
                return;
            }
            catch (Exception e) when (e is NpgsqlException or SocketException && DateTime.UtcNow < deadline)
            {
                await Task.Delay(200, ct);
            }
        }
    }

    private async Task EnsureDatabaseAsync(string superConnection, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(superConnection);
        await connection.OpenAsync(ct);
        // Role and password are identifiers/literals that come from our own secret file (hex only), never from input.
        await ExecuteAsync(connection, $"""
            DO $$ BEGIN
              IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{User}') THEN CREATE ROLE {User} LOGIN; END IF;
            END $$;
            ALTER ROLE {User} WITH LOGIN PASSWORD '{Password}';
            """, ct);
        await using var exists = new NpgsqlCommand("SELECT 1 FROM pg_database WHERE datname = @name", connection);
        exists.Parameters.AddWithValue("name", Database);
        if (await exists.ExecuteScalarAsync(ct) is null)
        {
            await ExecuteAsync(connection, $"CREATE DATABASE {Database} OWNER {User}", ct);
        }
    }

    private async Task ApplyScriptsAsync(string directory, CancellationToken ct)
    {
        await using var connection = new NpgsqlConnection(ConnectionString());
        await connection.OpenAsync(ct);
        foreach (var script in new[] { "schema.sql", "seed.sql" })
        {
            var path = Path.Combine(directory, script);
            if (!File.Exists(path))
            {
                throw new FileNotFoundException($"store script missing: {path}", path);
            }

            await ExecuteAsync(connection, await File.ReadAllTextAsync(path, ct), ct);
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken ct)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(ct);
    }

    internal static int FreePort()
    {
        using var listener = new TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        return ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "starting PostgreSQL on 127.0.0.1:{Port} ({DataDirectory})")]
    private static partial void LogStarting(ILogger logger, int port, string dataDirectory);

    [LoggerMessage(Level = LogLevel.Debug, Message = "postgres: {Line}")]
    private static partial void LogServerLine(ILogger logger, string line);

    [LoggerMessage(Level = LogLevel.Warning, Message = "stopping a PostgreSQL server (pid {Pid}) left behind by an earlier run")]
    private static partial void LogStaleServer(ILogger logger, int pid);
}
