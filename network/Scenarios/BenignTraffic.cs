using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using FaaSMon.Network.Native;
using FaaSMon.Network.Testbed;
using Npgsql;

namespace FaaSMon.Network.Scenarios;

/// <summary>
/// The benign traffic of the TGAT paper between testbed hosts: HTTP requests to the web server, Redis key/value requests,
/// database queries, API calls (the API in turn calls the web server) and ping. Every operation has its own timeout; a
/// failed operation is counted, not fatal (a spoofed ARP cache, for one, makes some fail, as it would in production).
/// </summary>
internal sealed class BenignTraffic(NetworkTestbed testbed, Random random)
{
    private static readonly TimeSpan OperationTimeout = TimeSpan.FromSeconds(2);
    private int _failures;
    private int _operations;

    public int Operations => _operations;

    public int Failures => _failures;

    /// <summary>One actor issuing requests until the deadline, pausing between them; the pace varies per call.</summary>
    public async Task RunAsync(TestbedHost from, DateTimeOffset until, double meanPauseMs, CancellationToken cancellationToken)
    {
        var layout = testbed.Layout;
        var thread = testbed.In(from);
        int seed;
        lock (random)
        {
            seed = random.Next();
        }

        var rng = new Random(seed);
        while (DateTimeOffset.UtcNow < until && !cancellationToken.IsCancellationRequested)
        {
            var remaining = until - DateTimeOffset.UtcNow;
            using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            limit.CancelAfter(remaining < OperationTimeout ? remaining : OperationTimeout);
            try
            {
                Interlocked.Increment(ref _operations);
                var op = rng.Next(100);
                await (op switch
                {
                    < 30 => HttpGetAsync(thread, layout.Web.Address, TestbedServices.WebPort, "/" + TestbedServices.Pages[rng.Next(TestbedServices.Pages.Count)].Name, limit.Token),
                    < 50 => RedisAsync(thread, layout.Redis.Address, rng, limit.Token),
                    < 70 => QueryAsync(testbed.BlockingIn(from), rng, limit.Token),
                    < 92 => HttpGetAsync(thread, layout.Api.Address, TestbedServices.ApiPort, ApiPath(rng), limit.Token),
                    _ => PingAsync(from, layout.Hosts[rng.Next(4)].Address, limit.Token),
                });
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException or IOException or NpgsqlException or TimeoutException or InvalidOperationException)
            {
                Interlocked.Increment(ref _failures);
            }

            var pause = -meanPauseMs * Math.Log(1 - rng.NextDouble());
            var left = (until - DateTimeOffset.UtcNow).TotalMilliseconds;
            if (left <= 0)
            {
                break;
            }

            await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(pause, left)), CancellationToken.None);
        }
    }

    private static string ApiPath(Random rng) => rng.Next(4) switch
    {
        0 => $"/api/items?n={rng.Next(1, 40)}",
        1 => $"/api/price?id={rng.Next(50)}",
        2 => "/api/page",
        _ => "/api/health",
    };

    public static async Task<int> HttpGetAsync(NamespaceThread from, string address, int port, string path, CancellationToken cancellationToken)
    {
        using var socket = await from.TcpSocketAsync();
        await socket.ConnectAsync(IPAddress.Parse(address), port, cancellationToken);
        var request = Encoding.ASCII.GetBytes($"GET {path} HTTP/1.1\r\nHost: {address}\r\nUser-Agent: faasmon-testbed\r\nConnection: close\r\n\r\n");
        await socket.SendAsync(request, cancellationToken);
        return await ReadToEndAsync(socket, cancellationToken);
    }

    internal static async Task<int> ReadToEndAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[16384];
        var total = 0;
        int read;
        while ((read = await socket.ReceiveAsync(buffer, cancellationToken)) > 0)
        {
            total += read;
        }

        return total;
    }

    private static async Task RedisAsync(NamespaceThread from, string address, Random rng, CancellationToken cancellationToken)
    {
        using var socket = await from.TcpSocketAsync();
        await socket.ConnectAsync(IPAddress.Parse(address), TestbedServices.RedisPort, cancellationToken);
        var commands = new StringBuilder();
        var count = rng.Next(1, 6);
        for (var i = 0; i < count; i++)
        {
            var key = $"cart:{rng.Next(200)}";
            var value = new string('v', rng.Next(4, 400));
            commands.Append(rng.Next(3) == 0 ? Resp("GET", key) : Resp("SET", key, value));
        }

        commands.Append(Resp("QUIT"));
        await socket.SendAsync(Encoding.ASCII.GetBytes(commands.ToString()), cancellationToken);
        await ReadToEndAsync(socket, cancellationToken);
    }

    private static string Resp(params string[] parts) =>
        $"*{parts.Length}\r\n" + string.Concat(parts.Select(p => string.Create(CultureInfo.InvariantCulture, $"${Encoding.ASCII.GetByteCount(p)}\r\n{p}\r\n")));

    private async Task QueryAsync(NamespaceThread from, Random rng, CancellationToken cancellationToken)
    {
        // Opened on the namespace's thread: Npgsql's synchronous Open creates its socket on the calling thread.
        var connection = await from.RunAsync(() =>
        {
            var c = new NpgsqlConnection(NetworkTestbed.ConnectionString(testbed.Layout));
            try
            {
                c.Open();
                return c;
            }
            catch
            {
                c.Dispose();
                throw;
            }
        });
        await using (connection)
        {
            await using var command = rng.Next(3) switch
            {
                0 => new NpgsqlCommand("select name, price from items where id = $1", connection) { Parameters = { new() { Value = rng.Next(1, 500) } } },
                1 => new NpgsqlCommand("select count(*), avg(price) from items where price > $1", connection) { Parameters = { new() { Value = rng.Next(10, 90) } } },
                _ => new NpgsqlCommand("select id, name from items order by price desc limit $1", connection) { Parameters = { new() { Value = rng.Next(5, 80) } } },
            };
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
            }
        }
    }

    private async Task PingAsync(TestbedHost from, string address, CancellationToken cancellationToken)
    {
        var (code, output) = await NamespacedProcess.RunAsync(testbed.Layout.Namespace(from), "/usr/bin/ping", ["-c", "2", "-i", "0.2", "-W", "1", "-q", address],
            TimeSpan.FromSeconds(2), cancellationToken: cancellationToken);
        if (code != 0)
        {
            throw new IOException($"ping {address}: {output}");
        }
    }
}
