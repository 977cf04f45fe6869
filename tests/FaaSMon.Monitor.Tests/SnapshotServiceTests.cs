using System.Formats.Tar;
using FaaSMon.Monitor.Snapshots;
using Xunit.Abstractions;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// Local-mode snapshots of real processes in their own mount namespace (a private tmpfs /tmp, mounted secrets), with real
/// gcore: what is written, and the bad cases: asked twice, the size limit, a target that exits mid-snapshot.
/// </summary>
public sealed class SnapshotServiceTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = SnapshotAssert.TestDirectory("snapshots");

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Theory]
    [InlineData(CoreDumper.Resident)]
    [InlineData(CoreDumper.Gcore)]
    public async Task A_local_snapshot_holds_an_elf_core_the_proc_state_with_secrets_redacted_and_the_private_tmp_without_following_links(CoreDumper dumper)
    {
        await using var target = await ContainedSleeper.StartAsync();
        using var service = new SnapshotService(new SnapshotOptions { Directory = _dir, CoreDumper = dumper });
        var set = await service.SnapshotAsync("verdict-1", [new SnapshotTarget("fn", "fn-1", target.Pid)], CancellationToken.None);

        var snap = Assert.Single(set.Instances);
        output.WriteLine(string.Join(", ", snap.Parts.Select(p => $"{p.Name} {p.DurationMs:F0} ms {p.Error}")));
        Assert.Equal(SnapshotStatus.Complete, snap.Status);
        var folder = Path.Combine(_dir, "verdict-1", "fn-1");
        SnapshotAssert.IsElfCore(Path.Combine(folder, "core"));
        Assert.Equal(["core", "environ", "maps", "process.json", "status", "tmp.tar"], snap.Files.Select(f => f.Name));
        foreach (var file in snap.Files)
        {
            var bytes = await File.ReadAllBytesAsync(Path.Combine(folder, file.Name));
            Assert.Equal(file.Bytes, bytes.Length);
            Assert.Equal(file.Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)));
        }

        var environ = await File.ReadAllTextAsync(Path.Combine(folder, "environ"));
        Assert.Contains("DB_CONN=[redacted]\n", environ, StringComparison.Ordinal);
        Assert.Contains("API_TOKEN=[redacted]\n", environ, StringComparison.Ordinal);
        Assert.Contains("PLAIN_SETTING=visible\n", environ, StringComparison.Ordinal);
        foreach (var name in new[] { "environ", "process.json", "status", "maps" })
        {
            var text = await File.ReadAllTextAsync(Path.Combine(folder, name));
            Assert.DoesNotContain(ContainedSleeper.SecretValue, text, StringComparison.Ordinal);
            Assert.DoesNotContain(ContainedSleeper.TokenValue, text, StringComparison.Ordinal);
        }

        Assert.Contains("\"cwd\"", await File.ReadAllTextAsync(Path.Combine(folder, "process.json")), StringComparison.Ordinal);
        Assert.Contains("/usr/bin/sleep", await File.ReadAllTextAsync(Path.Combine(folder, "maps")), StringComparison.Ordinal);

        // the private /tmp, not the host's: the marker and the nested file; the link kept as a link, its host target not copied
        var tmp = SnapshotAssert.TarEntries(Path.Combine(folder, "tmp.tar"));
        Assert.Equal(["link", "marker", "sub", "sub/inner"], tmp.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(ContainedSleeper.Marker, SnapshotAssert.Content(tmp["marker"]));
        Assert.Equal(TarEntryType.SymbolicLink, tmp["link"].EntryType);
        Assert.Equal("/etc/hostname", tmp["link"].LinkName);
        Assert.Null(tmp["link"].DataStream);

        Assert.NotNull(snap.Memory);
        Assert.True(snap.Memory!.TargetRssBeforeBytes > 0 && snap.Memory.SnapshotterPeakBytes > TmpArchiver.BufferBytes, $"memory {snap.Memory}");
        Assert.False(target.HasExited, "the target must keep running");
    }

    [Fact]
    public async Task Asked_twice_and_concurrently_one_snapshot_is_taken_and_every_ask_gets_the_same_set()
    {
        await using var target = await ContainedSleeper.StartAsync();
        using var service = new SnapshotService(new SnapshotOptions { Directory = _dir });
        SnapshotTarget[] targets = [new("fn", "fn-1", target.Pid)];
        var concurrent = await Task.WhenAll(
            service.SnapshotAsync("verdict-2", targets, CancellationToken.None),
            service.SnapshotAsync("verdict-2", targets, CancellationToken.None));
        var folder = Path.Combine(_dir, "verdict-2", "fn-1");
        var coreWritten = File.GetLastWriteTimeUtc(Path.Combine(folder, "core"));
        var again = await service.SnapshotAsync("verdict-2", targets, CancellationToken.None);
        // a new service on the same folder (a restarted host) finds the set on disk too
        using var restarted = new SnapshotService(new SnapshotOptions { Directory = _dir });
        var afterRestart = await restarted.SnapshotAsync("verdict-2", targets, CancellationToken.None);

        Assert.Equal(1, service.Taken);
        Assert.Equal(0, restarted.Taken);
        Assert.Same(concurrent[0], concurrent[1]);
        foreach (var set in new[] { again, afterRestart })
        {
            Assert.Equal(concurrent[0].CreatedAt, set.CreatedAt);
            Assert.Equal(concurrent[0].Instances.Single().Files, set.Instances.Single().Files);
        }

        Assert.Equal(coreWritten, File.GetLastWriteTimeUtc(Path.Combine(folder, "core")));
        Assert.Equal(["fn-1"], Directory.GetDirectories(Path.Combine(_dir, "verdict-2")).Select(Path.GetFileName));
        SnapshotAssert.IsElfCore(Path.Combine(folder, "core"));
    }

    [Theory]
    [InlineData(CoreDumper.Resident)]
    [InlineData(CoreDumper.Gcore)]
    public async Task Reaching_the_size_limit_marks_the_snapshot_incomplete_and_leaves_no_partial_file(CoreDumper dumper)
    {
        await using var target = await ContainedSleeper.StartAsync();
        const long Budget = 64 * 1024; // a sleep's core is about 600 KB with gcore, a few hundred KB resident
        using var service = new SnapshotService(new SnapshotOptions { Directory = _dir, MaxTotalBytes = Budget, CoreDumper = dumper });
        var set = await service.SnapshotAsync("verdict-3", [new SnapshotTarget("fn", "fn-1", target.Pid), new SnapshotTarget("fn", "fn-2", target.Pid)], CancellationToken.None);

        output.WriteLine(string.Join("\n", set.Instances.Select(i => $"{i.Instance}: {i.Status}: {i.Error}")));
        Assert.False(set.Complete);
        Assert.All(set.Instances, i =>
        {
            // the error in the message: a failure here (seen once under load, not reproduced) must say what gcore reported
            Assert.True(i.Status == SnapshotStatus.SizeLimit, $"{i.Instance}: {i.Status}: {i.Error}");
            Assert.Contains("budget", i.Error, StringComparison.Ordinal);
            Assert.Empty(i.Files);
            Assert.Equal(["snapshot.json"], Directory.GetFiles(Path.Combine(_dir, "verdict-3", i.Instance)).Select(Path.GetFileName));
        });
        Assert.Equal(["fn-1", "fn-2"], Directory.GetDirectories(Path.Combine(_dir, "verdict-3")).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.True(SnapshotBudget.SizeOf(_dir) < Budget, $"{SnapshotBudget.SizeOf(_dir)} bytes on disk");
        Assert.Equal("incomplete: size limit", service.Find("verdict-3")!.Instances[0].Status);

        // a budget that fits is not affected by the earlier refusal: the bytes were given back
        Assert.True(SnapshotAssert.RunningNotStopped(target.Pid), "the target must be thawed after a refused dump");
        using var roomy = new SnapshotService(new SnapshotOptions { Directory = _dir, MaxTotalBytes = 64L << 20, CoreDumper = dumper });
        var fits = await roomy.SnapshotAsync("verdict-4", [new SnapshotTarget("fn", "fn-1", target.Pid)], CancellationToken.None);
        Assert.Equal(SnapshotStatus.Complete, fits.Instances.Single().Status);
    }

    [Fact]
    public async Task A_target_killed_during_its_gcore_dump_is_recorded_as_failed_and_the_other_instance_is_kept()
    {
        // 512 MiB mapped (untouched, so cheap) makes gdb's dump last long enough to be caught under way
        await using var victim = await ContainedSleeper.StartAsync("/usr/bin/python3 -c 'import time; b = bytearray(512 << 20); time.sleep(300)'", "/usr/bin/python3");
        await using var survivor = await ContainedSleeper.StartAsync();
        using var service = new SnapshotService(new SnapshotOptions { Directory = _dir, CoreDumper = CoreDumper.Gcore });
        var killedWhileTraced = false;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var killer = Task.Run(async () =>
        {
            // kill the victim once gdb has attached to it: the dump is under way
            while (!stop.IsCancellationRequested)
            {
                string? status;
                try
                {
                    status = File.ReadAllLines($"/proc/{victim.Pid}/status").FirstOrDefault(l => l.StartsWith("TracerPid:", StringComparison.Ordinal));
                }
                catch (IOException)
                {
                    return;
                }

                if (status is not null && status.Split(':')[1].Trim() != "0")
                {
                    killedWhileTraced = true;
                    victim.Kill();
                    return;
                }

                await Task.Delay(1);
            }
        });
        var set = await service.SnapshotAsync("verdict-5", [new SnapshotTarget("fn", "victim", victim.Pid), new SnapshotTarget("fn", "survivor", survivor.Pid)], CancellationToken.None);
        await stop.CancelAsync();
        await killer;

        output.WriteLine(string.Join("\n", set.Instances.Select(i => $"{i.Instance}: {i.Status}: {i.Error}")));
        Assert.True(killedWhileTraced, "the victim was not seen traced by gdb");
        var failed = set.Instances.Single(i => i.Instance == "victim");
        Assert.Equal(SnapshotStatus.Failed, failed.Status);
        Assert.Contains("exited during the core dump", failed.Error, StringComparison.Ordinal);
        Assert.Empty(failed.Files);
        Assert.Equal(["snapshot.json"], Directory.GetFiles(Path.Combine(_dir, "verdict-5", "victim")).Select(Path.GetFileName));
        var kept = set.Instances.Single(i => i.Instance == "survivor");
        Assert.Equal(SnapshotStatus.Complete, kept.Status);
        SnapshotAssert.IsElfCore(Path.Combine(_dir, "verdict-5", "survivor", "core"));
        Assert.Empty(Directory.GetDirectories(Path.Combine(_dir, "verdict-5"), ".*"));
    }

    [Fact]
    public async Task A_target_that_is_gone_before_the_snapshot_fails_with_the_reason()
    {
        await using var target = await ContainedSleeper.StartAsync();
        var pid = target.Pid;
        target.Kill();
        await Task.Delay(200);
        using var service = new SnapshotService(new SnapshotOptions { Directory = _dir });
        var set = await service.SnapshotAsync("verdict-6", [new SnapshotTarget("fn", "gone", pid)], CancellationToken.None);
        var snap = Assert.Single(set.Instances);
        Assert.Equal(SnapshotStatus.Failed, snap.Status);
        Assert.Contains("not running", snap.Error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_the_core_dump_a_snapshot_is_the_proc_state_and_the_tmp_copy()
    {
        await using var target = await ContainedSleeper.StartAsync();
        using var service = new SnapshotService(new SnapshotOptions { Directory = _dir, CoreDump = false });
        var snap = (await service.SnapshotAsync("verdict-7", [new SnapshotTarget("fn", "fn-1", target.Pid)], CancellationToken.None)).Instances.Single();
        output.WriteLine($"{snap.DurationMs:F1} ms: {string.Join(", ", snap.Parts.Select(p => $"{p.Name} {p.DurationMs:F1} ms"))}");
        Assert.Equal(SnapshotStatus.Complete, snap.Status);
        Assert.Equal(["proc", "tmp"], snap.Parts.Select(p => p.Name));
        Assert.Equal(["environ", "maps", "process.json", "status", "tmp.tar"], snap.Files.Select(f => f.Name));
    }

    [Theory]
    [InlineData("..")]
    [InlineData(".hidden")]
    [InlineData("a/b")]
    [InlineData("a\\b")]
    [InlineData("")]
    [InlineData("%2e%2e")]
    public void Names_that_could_leave_the_snapshot_folder_are_refused(string name)
    {
        Assert.False(SnapshotService.IsSafeName(name));
        using var service = new SnapshotService(new SnapshotOptions { Directory = _dir });
        Assert.Throws<ArgumentException>(() => { _ = service.SnapshotAsync(name, [], CancellationToken.None); });
        Assert.Null(service.FilePath(name, "x", "core"));
        Assert.Null(service.FilePath("v", name, "core"));
        Assert.Null(service.FilePath("v", "x", name));
    }
}
