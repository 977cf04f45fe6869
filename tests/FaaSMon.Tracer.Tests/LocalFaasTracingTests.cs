using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using FaaSMon.Core;
using FaaSMon.LocalFaaS;
using FaaSMon.Workload;
using Microsoft.Extensions.Logging.Abstractions;
using Xunit.Abstractions;

namespace FaaSMon.Tracer.Tests;

/// <summary>One real LocalFaaS for the tracing tests (state outside /tmp, removed afterwards).</summary>
public sealed class LocalFaasFixture : IAsyncLifetime
{
    private string _state = "";

    public LocalFaasHost Host { get; private set; } = null!;

    /// <summary>This runtime's processes only: another LocalFaaS on the machine (a test run beside this one) is not ours to trace.</summary>
    public bool Owns(int pid) => LocalFaasHost.RunsIn(_state, pid);

    public async Task InitializeAsync()
    {
        _state = Path.Combine("/var/lib/faasmon/tests", $"tracer-{DateTime.UtcNow:HHmmss}-{Guid.NewGuid().ToString("N")[..8]}");
        Host = await LocalFaasHost.StartAsync(new LocalFaasOptions { Port = 0, StateDirectory = _state });
    }

    public async Task DisposeAsync()
    {
        if (Host is not null)
        {
            await Host.DisposeAsync();
        }

        if (Directory.Exists(_state))
        {
            Directory.Delete(_state, recursive: true);
        }
    }
}

[CollectionDefinition("localfaas", DisableParallelization = true)]
public sealed class LocalFaasCollection : ICollectionFixture<LocalFaasFixture>;

[Collection("localfaas")]
public sealed class LocalFaasTracingTests(LocalFaasFixture faas, ITestOutputHelper output)
{
    private const string Receive = "product-photos-receive";

    [Theory]
    [InlineData("strace", "libbpf")]
    [InlineData("ptrace", "libbpf")]
    [InlineData("ebpf", "libbpf")]
    [InlineData("ebpf", "bpftrace")]
    public async Task Container_reuse_shows_as_a_tmp_write_then_a_later_invocation_executing_it(string backend, string loader)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using var session = await TracerSession.StartAsync(new TracerOptions { Backend = backend, EbpfLoader = loader, DockerHost = "none", AcceptPid = faas.Owns }, TestOutputLoggerProvider.Factory(output), timeout.Token);
        var events = Collect(session);
        foreach (var (_, receiveInstance, _) in faas.Host.Instances.Where(i => i.Function == Receive))
        {
            await session.Tracer.WaitForAttachedAsync(p => p.Identity.Instance == receiveInstance, TimeSpan.FromSeconds(30), timeout.Token);
        }

        // each backend sees the download: a warm /tmp that still holds evil.sh from an earlier run would be reused as is
        foreach (var (_, _, pid) in faas.Host.Instances.Where(i => i.Function == Receive && i.Pid is not null))
        {
            File.Delete($"/proc/{pid}/root/tmp/evil.sh");
        }

        var report = await new WorkloadDriver(NullLogger<WorkloadDriver>.Instance).RunAsync(
            new WorkloadOptions { Gateway = faas.Host.GatewayUrl, Benign = 0, Attacks = ["container-reuse"], KnownSecrets = faas.Host.SecretValues },
            null, timeout.Token);
        var attack = Assert.Single(report.Attacks);
        Assert.True(attack.Succeeded, attack.Evidence);
        await Task.Delay(500, timeout.Token); // the last lines are still in the pipe
        await session.DisposeAsync();
        var all = await events;
        output.WriteLine($"{backend} ({loader}): {all.Count} events, {session.Counters}");

        var exec = all.FirstOrDefault(e => e is { Syscall: "execve", Failed: false, Path: "/tmp/evil.sh" });
        Assert.True(exec is not null, $"no execve of /tmp/evil.sh among {all.Count(e => e.Syscall == "execve")} execves: " +
            string.Join("; ", all.Where(e => e.Syscall == "execve").Select(e => $"{e.Path} {e.Function}/{e.Instance}")));
        Assert.Equal(Receive, exec.Function);
        var instance = exec.Instance;
        Assert.Contains(instance, faas.Host.Instances.Select(i => i.Instance));

        // the function downloads into a temporary file in /tmp and renames it to evil.sh
        var rename = all.LastOrDefault(e => e.Instance == instance && e.Timestamp < exec.Timestamp && e is { Syscall: "rename" or "renameat" or "renameat2", Failed: false, Path2: "/tmp/evil.sh" });
        var written = rename?.Path ?? "/tmp/evil.sh";
        var write = all.FirstOrDefault(e => e.Instance == instance && e.Timestamp < exec.Timestamp && IsWriteOf(e, written));
        Assert.True(write is not null, $"no write of {written} before the execve of /tmp/evil.sh in {instance}: " + string.Join("; ",
            all.Where(e => e.Instance == instance && ((e.Path ?? e.Fd?.Path)?.StartsWith("/tmp", StringComparison.Ordinal) ?? false)).Select(e => $"{e.Syscall} {e.Path ?? e.Fd?.Path} {e.Path2}")));
        Assert.StartsWith("/tmp/", written, StringComparison.Ordinal);
        Assert.Equal(Receive, write.Function);

        // the write and the execve belong to different invocations: the instance read another HTTP request in between
        // (the bytes kept of a read are bounded, so the request line is what both backends surely have)
        var requestsBetween = all.Count(e => e.Instance == instance && e.Timestamp > write.Timestamp && e.Timestamp < exec.Timestamp && IsHttpRequest(e));
        Assert.True(requestsBetween >= 1, "no request read by the instance between the write and the execve");
        Assert.Equal(0, session.Counters.Drops);
    }

    [Theory]
    [InlineData("strace", "libbpf")]
    [InlineData("ptrace", "libbpf")]
    [InlineData("ebpf", "libbpf")]
    [InlineData("ebpf", "bpftrace")]
    public async Task A_function_instance_started_after_the_tracer_is_traced_before_it_listens(string backend, string loader)
    {
        const string function = "product-photos-success";
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        await using var session = await TracerSession.StartAsync(new TracerOptions { Backend = backend, EbpfLoader = loader, DockerHost = "none", AcceptPid = faas.Owns }, TestOutputLoggerProvider.Factory(output), timeout.Token);
        var events = Collect(session);
        var before = faas.Host.Instances.Where(i => i.Function == function).Select(i => i.Instance).ToHashSet();
        await ScaleAsync(function, before.Count + 1, timeout.Token);
        try
        {
            var started = await session.Tracer.WaitForAttachedAsync(p => p.Identity.Function == function && !before.Contains(p.Identity.Instance), TimeSpan.FromSeconds(30), timeout.Token);

            // until the runtime has seen it listen: node's start from a cold page cache (a fresh CI machine) can take
            // longer than any fixed wait (CI once stopped tracing a second after the pid was known, before the listen)
            var sw = Stopwatch.StartNew();
            while (await AvailableReplicasAsync(function, timeout.Token) <= (ulong)before.Count && sw.Elapsed < TimeSpan.FromSeconds(60))
            {
                await Task.Delay(100, timeout.Token);
            }

            var ready = sw.Elapsed;
            await Task.Delay(500, timeout.Token); // the last lines are still in the pipe
            await session.DisposeAsync();
            var all = await events;
            var mine = all.Where(e => e.Instance == started.Identity.Instance).ToList();
            var seen = $"discovered {started.Identity.Instance} (pid {started.Pid}) {started.DiscoveryLatency.TotalMilliseconds:F0} ms after it started, " +
                $"ready {ready.TotalMilliseconds:F0} ms after its attach; {mine.Count} of its events, first: " +
                string.Join(" ", mine.Take(12).Select(e => e.Syscall)) + $"; {session.Counters}";
            output.WriteLine($"{backend} ({loader}): {seen}");
            Assert.True(mine.Any(e => e.Syscall == "listen"), "no listen: " + seen);
            Assert.True(started.DiscoveryLatency < TimeSpan.FromSeconds(1), seen);
        }
        finally
        {
            await ScaleAsync(function, before.Count, CancellationToken.None);
        }
    }

    private async Task ScaleAsync(string function, int replicas, CancellationToken ct)
    {
        using var admin = AdminClient();
        using var response = await admin.PostAsJsonAsync($"/system/scale-function/{function}", new { serviceName = function, replicas }, ct);
        response.EnsureSuccessStatusCode();
    }

    private async Task<ulong> AvailableReplicasAsync(string function, CancellationToken ct)
    {
        using var admin = AdminClient();
        var status = await admin.GetFromJsonAsync<FunctionStatus>($"/system/function/{function}", ct);
        return status?.AvailableReplicas ?? 0;
    }

    private HttpClient AdminClient()
    {
        var admin = new HttpClient { BaseAddress = faas.Host.GatewayUrl };
        admin.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Basic",
            Convert.ToBase64String(Encoding.UTF8.GetBytes($"{faas.Host.AdminCredential.UserName}:{faas.Host.AdminCredential.Password}")));
        return admin;
    }

    private sealed record FunctionStatus([property: System.Text.Json.Serialization.JsonPropertyName("availableReplicas")] ulong AvailableReplicas);

    private static bool IsWriteOf(SyscallEvent e, string path) =>
        (e.Syscall is "openat" or "open" && e.Path == path && e.Flags?.Contains("O_WRONLY", StringComparison.Ordinal) == true)
        || (e.Syscall is "write" or "pwrite64" or "writev" && e.Fd?.Path == path);

    private static bool IsHttpRequest(SyscallEvent e) =>
        e.Syscall is "read" or "recvfrom" && e.Data is { Length: > 8 } d && (Encoding.ASCII.GetString(d, 0, 5) is "POST " or "GET /");

    private static Task<List<SyscallEvent>> Collect(TracerSession session) => Task.Run(async () =>
    {
        var list = new List<SyscallEvent>();
        await foreach (var e in session.Events.ReadAllAsync())
        {
            list.Add(e);
        }

        list.Sort((a, b) => a.Timestamp.CompareTo(b.Timestamp));
        return list;
    });
}
