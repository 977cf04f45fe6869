using System.Globalization;
using System.Net;
using System.Net.Sockets;
using FaaSMon.Network.Native;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace FaaSMon.Network.Testbed;

/// <summary>
/// One running testbed: a bridge in a namespace of its own, one namespace per host joined to it by a veth pair, the
/// servers running inside. Safety: the only addresses are 10.231.0.0/24 on the hosts' eth0, no namespace has a default
/// route, the bridge namespace holds nothing but the bridge and its ports (no host interface, no address, no routing),
/// so nothing sent inside can reach the host or any other network. <see cref="DisposeAsync"/> removes processes,
/// namespaces (their links go with them) and the state folder, also after a failed start; <see cref="SweepAsync"/>
/// removes what a run that died left behind.
/// </summary>
internal sealed partial class NetworkTestbed : IAsyncDisposable
{
    private readonly ILogger _logger;
    private readonly List<NamespacedProcess> _services = [];
    private readonly Dictionary<string, NamespaceThread> _threads = new(StringComparer.Ordinal);
    private readonly Dictionary<string, NamespaceThread> _blockingThreads = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _macs = new(StringComparer.Ordinal);
    private bool _disposed;

    private NetworkTestbed(TestbedLayout layout, ILogger logger)
    {
        Layout = layout;
        _logger = logger;
    }

    public TestbedLayout Layout { get; }

    /// <summary>Hardware address of each host's eth0 (by address), read after setup.</summary>
    public IReadOnlyDictionary<string, string> MacAddresses => _macs;

    public IReadOnlyList<NamespacedProcess> Services => _services;

    /// <summary>The thread that lives in a host's namespace: create its sockets there.</summary>
    public NamespaceThread In(TestbedHost host) => _threads[Layout.Namespace(host)];

    /// <summary>A second thread in the host's namespace for work that blocks while it connects (Npgsql's Open, pcap).</summary>
    public NamespaceThread BlockingIn(TestbedHost host) => _blockingThreads[Layout.Namespace(host)];

    public NamespaceThread BridgeThread => _threads[Layout.BridgeNamespace];

    /// <summary>Builds the network and starts every server; on any failure, what was made is removed before the error surfaces.</summary>
    /// <param name="failAfterNetwork">Tests only: throw once the network is up, to prove a failed start leaves nothing behind.</param>
    public static async Task<NetworkTestbed> StartAsync(ILogger logger, CancellationToken cancellationToken, TestbedLayout? layout = null, bool failAfterNetwork = false)
    {
        TestbedServices.CheckRequirements();
        var testbed = new NetworkTestbed(layout ?? TestbedLayout.CreateNew(), logger);
        try
        {
            await testbed.BuildNetworkAsync();
            cancellationToken.ThrowIfCancellationRequested();
            if (failAfterNetwork)
            {
                throw new TestbedException("forced failure after the network was built (test)");
            }

            await testbed.StartServicesAsync(cancellationToken);
            LogStarted(logger, testbed.Layout.RunId, testbed.Layout.Hosts.Count, testbed._services.Count);
            return testbed;
        }
        catch
        {
            await testbed.DisposeAsync();
            throw;
        }
    }

    private async Task BuildNetworkAsync()
    {
        var state = Layout.StateDirectory;
        Directory.CreateDirectory(state);
        File.SetUnixFileMode(TestbedLayout.StateRoot, (UnixFileMode)0b111_101_101);
        File.SetUnixFileMode(state, (UnixFileMode)0b111_101_101);
        // Written first: from here on a sweep by another run can tell whether this one is still alive.
        await File.WriteAllTextAsync(Path.Combine(state, "owner"), OwnerStamp(Environment.ProcessId));
        foreach (var ns in Layout.AllNamespaces)
        {
            await NamespacedProcess.CheckAsync(null, "ip", "netns", "add", ns);
            // No IPv6: no router solicitations or MLD chatter from a stack nothing here uses.
            await NamespacedProcess.CheckAsync(ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
            await NamespacedProcess.CheckAsync(ns, "ip", "link", "set", "lo", "up");
        }

        var br = Layout.BridgeNamespace;
        await NamespacedProcess.CheckAsync(br, "ip", "link", "add", Layout.BridgeName, "type", "bridge", "stp_state", "0", "forward_delay", "0");
        await NamespacedProcess.CheckAsync(br, "ip", "link", "set", Layout.BridgeName, "up");
        foreach (var host in Layout.Hosts)
        {
            var ns = Layout.Namespace(host);
            var port = Layout.BridgePort(host);
            await NamespacedProcess.CheckAsync(br, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns);
            await NamespacedProcess.CheckAsync(br, "ip", "link", "set", port, "master", Layout.BridgeName);
            await NamespacedProcess.CheckAsync(br, "ip", "link", "set", port, "up");
            await NamespacedProcess.CheckAsync(ns, "ip", "addr", "add", $"{host.Address}/{TestbedLayout.PrefixLength}", "dev", "eth0");
            if (host == Layout.Attacker)
            {
                foreach (var bot in Layout.BotAddresses)
                {
                    await NamespacedProcess.CheckAsync(ns, "ip", "addr", "add", $"{bot}/{TestbedLayout.PrefixLength}", "dev", "eth0");
                }
            }

            await NamespacedProcess.CheckAsync(ns, "ip", "link", "set", "eth0", "up");
            var (_, link) = await NamespacedProcess.RunAsync(ns, "ip", ["-o", "link", "show", "eth0"], TimeSpan.FromSeconds(10));
            var ether = link.IndexOf("link/ether ", StringComparison.Ordinal);
            _macs[host.Address] = ether < 0 ? "" : link.Substring(ether + 11, 17);
        }

        foreach (var ns in Layout.AllNamespaces)
        {
            _threads[ns] = new NamespaceThread(ns);
            _blockingThreads[ns] = new NamespaceThread(ns);
        }
    }

    private async Task StartServicesAsync(CancellationToken cancellationToken)
    {
        var state = Layout.StateDirectory;
        var nobody = new[] { "--reuid=nobody", "--regid=nogroup", "--clear-groups" };
        Start(Layout.Web, "/usr/sbin/nginx", "-p", Path.Combine(state, "nginx"), "-e", Path.Combine(state, "nginx", "error.log"),
            "-c", TestbedServices.WriteNginx(state, Layout.Web.Address));
        Directory.CreateDirectory(Path.Combine(state, "redis"));
        Start(Layout.Redis, "/usr/bin/setpriv", [.. nobody, "/usr/bin/redis-server", "--bind", Layout.Redis.Address, "--port", $"{TestbedServices.RedisPort}",
            "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no", "--dir", "/tmp", "--logfile", ""]);
        Start(Layout.Api, "/usr/bin/setpriv", [.. nobody, "/usr/bin/node", TestbedServices.WriteApi(state, Layout.Api.Address, Layout.Web.Address)]);

        var sshConfig = TestbedServices.WriteSshd(state, Layout.Api.Address);
        await NamespacedProcess.CheckAsync(null, "/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(state, "ssh", "ssh_host_ed25519_key"));
        // sshd insists on its privilege-separation folder; creating the empty folder is all Debian's unit does.
        Directory.CreateDirectory("/run/sshd");
        Start(Layout.Api, "/usr/sbin/sshd", "-D", "-e", "-f", sshConfig);

        var data = Path.Combine(state, "pgdata");
        Directory.CreateDirectory(data);
        await NamespacedProcess.CheckAsync(null, "chown", "postgres:postgres", data);
        var postgres = new[] { "--reuid=postgres", "--regid=postgres", "--init-groups" };
        await NamespacedProcess.CheckAsync(null, "/usr/bin/setpriv", [.. postgres, Path.Combine(TestbedServices.PostgresBin, "initdb"), "-D", data,
            "-U", TestbedServices.DbUser, "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]);
        // Trust inside the testbed subnet only; the server listens on nothing else.
        await File.AppendAllTextAsync(Path.Combine(data, "pg_hba.conf"), $"host all all {TestbedLayout.Subnet} trust\n", cancellationToken);
        Start(Layout.Db, "/usr/bin/setpriv", [.. postgres, Path.Combine(TestbedServices.PostgresBin, "postgres"), "-D", data,
            "-c", $"listen_addresses={Layout.Db.Address}", "-c", $"unix_socket_directories={data}", "-c", "fsync=off",
            "-c", "shared_buffers=16MB", "-c", "max_connections=60", "-c", "log_min_messages=warning"]);

        var client = In(Layout.Client);
        foreach (var (host, port) in new[] { (Layout.Web, TestbedServices.WebPort), (Layout.Redis, TestbedServices.RedisPort),
            (Layout.Api, TestbedServices.ApiPort), (Layout.Api, TestbedServices.SshPort), (Layout.Db, TestbedServices.PostgresPort) })
        {
            await WaitForPortAsync(client, host.Address, port, cancellationToken);
        }

        await client.RunAsync(() =>
        {
            using var connection = new NpgsqlConnection(ConnectionString(Layout));
            // the port answers before recovery ends: "the database system is starting up" (57P03) until then
            for (var deadline = DateTime.UtcNow.AddSeconds(30); ; Thread.Sleep(200))
            {
                try
                {
                    connection.Open();
                    break;
                }
                catch (PostgresException e) when (e.SqlState == "57P03" && DateTime.UtcNow < deadline)
                {
                }
            }

            using var command = new NpgsqlCommand(
                "create table items(id int primary key, name text, price numeric); " +
                "insert into items select i, 'item-' || i, (i * 7) % 90 + 10 from generate_series(1, 500) i", connection);
            return command.ExecuteNonQuery();
        });
    }

    public static string ConnectionString(TestbedLayout layout) =>
        $"Host={layout.Db.Address};Port={TestbedServices.PostgresPort};Username={TestbedServices.DbUser};Database=postgres;Pooling=false;Timeout=3;Command Timeout=3";

    private void Start(TestbedHost host, string program, params string[] arguments)
    {
        var process = NamespacedProcess.Start(Layout.Namespace(host), program, arguments);
        _services.Add(process);
    }

    private async Task WaitForPortAsync(NamespaceThread from, string address, int port, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            using var socket = await from.TcpSocketAsync();
            try
            {
                using var attempt = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                attempt.CancelAfter(TimeSpan.FromSeconds(1));
                await socket.ConnectAsync(IPAddress.Parse(address), port, attempt.Token);
                return;
            }
            catch (Exception e) when (e is SocketException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                var dead = _services.FirstOrDefault(s => s.HasExited);
                if (dead is not null)
                {
                    throw new TestbedException($"{dead.Display} exited ({dead.ExitCode}): {dead.Tail}");
                }

                if (DateTime.UtcNow > deadline)
                {
                    throw new TestbedException($"{address}:{port} did not accept connections within 30 s");
                }

                await Task.Delay(100, cancellationToken);
            }
        }
    }

    /// <summary>Our PID and its start time: a PID reused by another process after we died does not look alive.</summary>
    private static string OwnerStamp(int pid) => $"{pid} {ProcessStartTime(pid)}";

    private static string? ProcessStartTime(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            // Fields after the parenthesised command name; the start time is field 22 overall.
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[19];
        }
        catch (IOException)
        {
            return null;
        }
    }

    private static bool OwnerAlive(string runId)
    {
        try
        {
            var parts = File.ReadAllText(Path.Combine(TestbedLayout.StateRoot, runId, "owner")).Split(' ', 2);
            return int.TryParse(parts[0], CultureInfo.InvariantCulture, out var pid) && parts.Length == 2 && ProcessStartTime(pid) == parts[1].Trim();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Namespaces of ours that exist now, by run id.</summary>
    public static IReadOnlyList<string> ExistingNamespaces(string? runId = null) =>
        !Directory.Exists("/var/run/netns") ? [] :
        [.. Directory.GetFiles("/var/run/netns").Select(Path.GetFileName).OfType<string>()
            .Where(n => TestbedLayout.RunIdOf(n) is { } id && (runId is null || id == runId))];

    /// <summary>Removes every testbed whose owner process is gone (a crash, a SIGKILL): processes, namespaces, state.</summary>
    public static async Task<int> SweepAsync(ILogger logger)
    {
        var removed = 0;
        foreach (var group in ExistingNamespaces().GroupBy(n => TestbedLayout.RunIdOf(n)!))
        {
            if (OwnerAlive(group.Key))
            {
                continue;
            }

            LogSweeping(logger, group.Key, group.Count());
            foreach (var ns in group)
            {
                if (await RemoveNamespaceAsync(ns) is { } problem)
                {
                    LogNotRemoved(logger, problem);
                    continue;
                }

                removed++;
            }

            DeleteState(group.Key);
        }

        if (Directory.Exists(TestbedLayout.StateRoot))
        {
            foreach (var dir in Directory.GetDirectories(TestbedLayout.StateRoot))
            {
                var id = Path.GetFileName(dir);
                if (id.Length == 6 && id.All(Uri.IsHexDigit) && !OwnerAlive(id) && ExistingNamespaces(id).Count == 0)
                {
                    DeleteState(id);
                }
            }
        }

        return removed;
    }

    /// <summary>
    /// Kills whatever still runs in the namespace (by PID, from <c>ip netns pids</c>), then deletes it; its links go with it.
    /// Returns why it is still there, or null. A namespace left over is removed by the next sweep (its owner is gone by then).
    /// </summary>
    private static async Task<string?> RemoveNamespaceAsync(string ns)
    {
        for (var round = 0; round < 10; round++)
        {
            var (_, listed) = await NamespacedProcess.RunAsync(null, "ip", ["netns", "pids", ns], TimeSpan.FromSeconds(10));
            var pids = listed.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(p => int.TryParse(p, CultureInfo.InvariantCulture, out var pid) ? pid : 0).Where(p => p > 1 && p != Environment.ProcessId).ToList();
            if (pids.Count == 0)
            {
                break;
            }

            foreach (var pid in pids)
            {
                _ = Linux.Kill(pid, Linux.SigKill);
            }

            await Task.Delay(100);
        }

        // Deleting can fail for a moment (EBUSY) while another process is between unshare and remount in
        // `ip netns exec` and still holds a copy of the namespace's mount: retry, then say so.
        var output = "";
        for (var attempt = 0; attempt < 20 && File.Exists(Path.Combine("/var/run/netns", ns)); attempt++)
        {
            (_, output) = await NamespacedProcess.RunAsync(null, "ip", ["netns", "delete", ns], TimeSpan.FromSeconds(10));
            if (File.Exists(Path.Combine("/var/run/netns", ns)))
            {
                await Task.Delay(250);
            }
        }

        return File.Exists(Path.Combine("/var/run/netns", ns)) ? $"could not delete network namespace {ns}: {output}" : null;
    }

    private static void DeleteState(string runId)
    {
        var dir = Path.Combine(TestbedLayout.StateRoot, runId);
        try
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A file still held open: the next sweep removes it.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var service in Enumerable.Reverse(_services))
        {
            await service.DisposeAsync();
        }

        foreach (var thread in _threads.Values.Concat(_blockingThreads.Values))
        {
            thread.Dispose();
        }

        foreach (var ns in ExistingNamespaces(Layout.RunId))
        {
            if (await RemoveNamespaceAsync(ns) is { } problem)
            {
                LogNotRemoved(_logger, problem);
            }
        }

        DeleteState(Layout.RunId);
        LogStopped(_logger, Layout.RunId);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Testbed {RunId} up: {Hosts} hosts on one bridge, {Services} servers")]
    private static partial void LogStarted(ILogger logger, string runId, int hosts, int services);

    [LoggerMessage(Level = LogLevel.Information, Message = "Testbed {RunId} removed")]
    private static partial void LogStopped(ILogger logger, string runId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Problem}; the next run's sweep removes it")]
    private static partial void LogNotRemoved(ILogger logger, string problem);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Removing {Count} namespaces left by dead testbed run {RunId}")]
    private static partial void LogSweeping(ILogger logger, string runId, int count);
}
