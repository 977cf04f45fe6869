using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using FaaSMon.Monitor.Snapshots;
using Xunit.Abstractions;

namespace FaaSMon.Monitor.Tests;

/// <summary>
/// The resident core dumper on real processes: the core is an ELF core readelf and gdb accept, holds what the process
/// holds in memory (a marker built at run time, so it is not in the command line), leaves the process running and
/// thawed, freezes through the instance's cgroup when it has one, and a target killed while frozen leaves nothing.
/// </summary>
public sealed class SnapshotResidentCoreTests(ITestOutputHelper output) : IDisposable
{
    // the process builds it by reversing this, so only the built string (not its argv) holds it
    private const string Marker = "faasmon-resident-marker-4711-qzx";
    private readonly string _dir = SnapshotAssert.TestDirectory("snapshots-resident");

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Fact]
    public async Task The_resident_core_is_an_elf_core_readelf_and_gdb_accept_holding_the_marker_and_the_process_runs_on()
    {
        var reversed = new string(Marker.Reverse().ToArray());
        await using var target = await ContainedSleeper.StartAsync($"/usr/bin/python3 -c 'import time; m = (\"{reversed}\"[::-1] + \"|\") * 64; b = bytearray(m.encode()); time.sleep(300)'", "/usr/bin/python3");
        await WaitSleeping(target.Pid);
        using var service = new SnapshotService(new SnapshotOptions { Directory = _dir });
        var snap = (await service.SnapshotAsync("verdict-r1", [new SnapshotTarget("fn", "fn-1", target.Pid)], CancellationToken.None)).Instances.Single();
        output.WriteLine($"{snap.Status} {snap.Error}; {string.Join(", ", snap.Parts.Select(p => $"{p.Name} {p.DurationMs:F1} ms {p.Error}"))}");
        output.WriteLine($"core: {snap.Core}; unreadable: {string.Join("; ", snap.Core?.Unreadable ?? [])}");

        Assert.Equal(SnapshotStatus.Complete, snap.Status);
        Assert.Equal(["core", "proc", "tmp"], snap.Parts.Select(p => p.Name));
        Assert.NotNull(snap.Core);
        Assert.Equal("resident", snap.Core!.Dumper);
        Assert.Equal("sigstop", snap.Core.Freeze); // no cgroup of its own under faasmon/: stopped by signal
        Assert.True(snap.Core.FrozenMs > 0 && snap.Core.FrozenMs < snap.Parts[0].DurationMs + 1, $"frozen {snap.Core.FrozenMs} ms");
        Assert.True(snap.Core.Threads >= 1 && snap.Core.Segments > 0, snap.Core.ToString());

        var core = Path.Combine(_dir, "verdict-r1", "fn-1", "core");
        var bytes = await File.ReadAllBytesAsync(core);
        Assert.Equal(snap.Files.Single(f => f.Name == "core").Sha256, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes)));
        var loads = ElfLoads(bytes);
        Assert.Equal(snap.Core.Segments, loads.Count);
        Assert.Equal(snap.Core.CopiedBytes, loads.Sum(l => l.FileSize));
        // every segment lies inside a mapping of the process, with its permissions
        var maps = await File.ReadAllLinesAsync(Path.Combine(_dir, "verdict-r1", "fn-1", "maps"));
        foreach (var l in loads)
        {
            Assert.Contains(maps, m => Covers(m, l));
        }

        Assert.True(bytes.AsSpan().IndexOf(Encoding.ASCII.GetBytes(Marker + "|" + Marker)) >= 0, "the marker the process holds is not in the core");
        var vm = long.Parse(File.ReadLines($"/proc/{target.Pid}/status").First(l => l.StartsWith("VmSize:", StringComparison.Ordinal))[7..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
        output.WriteLine($"core {bytes.Length} bytes, virtual {vm} bytes");

        // Debian's readelf 2.40 prints NT_FILE as "Cannot decode 64-bit note in 32-bit build" for gcore's cores too:
        // the mapped files are checked through gdb below
        var readelf = await Run("readelf", "-h", "-l", "-n", "-W", core);
        Assert.True(readelf.Code == 0, $"readelf failed: {readelf.Err}");
        Assert.Equal("", readelf.Err.Trim());
        foreach (var expected in new[] { "CORE (Core file)", "Advanced Micro Devices X86-64", "NOTE", "LOAD", "NT_PRSTATUS", "NT_PRPSINFO", "NT_AUXV", "NT_FILE" })
        {
            Assert.Contains(expected, readelf.Out, StringComparison.Ordinal);
        }

        // gdb reads the core with the executable: the threads, the mapped files, and the memory at the marker
        var markerAt = MarkerAddress(bytes, loads);
        var gdb = await Run("gdb", "-batch", "-n", "-ex", "set debuginfod enabled off", "-ex", "info threads", "-ex", "info proc mappings", "-ex", $"x/s 0x{markerAt:x}", "/usr/bin/python3", core);
        output.WriteLine(gdb.Out + gdb.Err);
        Assert.Contains(Marker, gdb.Out, StringComparison.Ordinal);
        Assert.Contains("/usr/bin/python3", gdb.Out[gdb.Out.IndexOf("Start Addr", StringComparison.Ordinal)..], StringComparison.Ordinal); // NT_FILE
        Assert.DoesNotContain("not in executable format", gdb.Err, StringComparison.Ordinal);
        Assert.DoesNotContain("is not a core dump", gdb.Err, StringComparison.Ordinal);

        Assert.False(target.HasExited, "the target must keep running");
        Assert.True(SnapshotAssert.RunningNotStopped(target.Pid), "the target must be thawed (no thread in state T)");
    }

    [Fact]
    public async Task An_instance_in_its_own_cgroup_is_frozen_through_cgroup_freeze_and_thawed_after()
    {
        var own = File.ReadLines("/proc/self/cgroup").First(l => l.StartsWith("0::", StringComparison.Ordinal))[3..].TrimEnd('/');
        var root = File.Exists("/sys/fs/cgroup/cgroup.controllers") ? "/sys/fs/cgroup" : "/sys/fs/cgroup/unified";
        var function = $"snaptest-{Guid.NewGuid().ToString("N")[..8]}";
        var functionDir = $"{root}{own}/faasmon/{function}";
        var cgroup = Path.Combine(functionDir, "inst-1");
        Assert.True(File.Exists($"{root}{own}/cgroup.procs"), $"no cgroup v2 hierarchy at {root}{own}: the freezer path needs one");
        Directory.CreateDirectory(cgroup);
        try
        {
            Assert.True(File.Exists(Path.Combine(cgroup, "cgroup.freeze")), $"{cgroup} has no cgroup.freeze (kernel < 5.2?)");
            await using (var target = await ContainedSleeper.StartAsync())
            {
                await File.WriteAllTextAsync(Path.Combine(cgroup, "cgroup.procs"), target.Pid.ToString(CultureInfo.InvariantCulture));
                using var service = new SnapshotService(new SnapshotOptions { Directory = _dir });
                var snap = (await service.SnapshotAsync("verdict-r2", [new SnapshotTarget(function, "inst-1", target.Pid)], CancellationToken.None)).Instances.Single();
                output.WriteLine($"{snap.Status} {snap.Error}; core: {snap.Core}");

                Assert.Equal(SnapshotStatus.Complete, snap.Status);
                Assert.Equal($"cgroup {cgroup}", snap.Core!.Freeze);
                Assert.Null(snap.Core.FreezeWarning);
                Assert.Contains("frozen 0", await File.ReadAllTextAsync(Path.Combine(cgroup, "cgroup.events")), StringComparison.Ordinal);
                Assert.Equal("0", (await File.ReadAllTextAsync(Path.Combine(cgroup, "cgroup.freeze"))).Trim());
                SnapshotAssert.IsElfCore(Path.Combine(_dir, "verdict-r2", "inst-1", "core"));
                Assert.False(target.HasExited);
                Assert.True(SnapshotAssert.RunningNotStopped(target.Pid), "the target must be thawed");
            }
        }
        finally
        {
            for (var i = 0; i < 50 && Directory.Exists(cgroup); i++)
            {
                try
                {
                    Directory.Delete(cgroup);
                }
                catch (IOException)
                {
                    await Task.Delay(20); // the killed sleeper is still leaving it
                }
            }

            Directory.Delete(functionDir);
        }
    }

    [Fact]
    public async Task A_target_killed_while_frozen_for_its_resident_dump_is_recorded_as_failed_and_nothing_is_left()
    {
        // 512 MiB written (so resident) makes the copy last long enough to be caught frozen
        await using var victim = await ContainedSleeper.StartAsync("/usr/bin/python3 -c 'import time; b = bytearray(b\"\\x01\") * (512 << 20); time.sleep(300)'", "/usr/bin/python3");
        await using var survivor = await ContainedSleeper.StartAsync();
        await WaitSleeping(victim.Pid);
        using var service = new SnapshotService(new SnapshotOptions { Directory = _dir });
        var killedWhileFrozen = false;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        // a thread of its own polling synchronously: the pool's latency could miss a freeze of a few tens of ms
        var killer = Task.Factory.StartNew(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                string stat;
                try
                {
                    stat = File.ReadAllText($"/proc/{victim.Pid}/stat");
                }
                catch (IOException)
                {
                    return;
                }

                if (stat[stat.LastIndexOf(')') + 2] == 'T')
                {
                    killedWhileFrozen = true;
                    victim.Kill();
                    return;
                }
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        var set = await service.SnapshotAsync("verdict-r3", [new SnapshotTarget("fn", "victim", victim.Pid), new SnapshotTarget("fn", "survivor", survivor.Pid)], CancellationToken.None);
        await stop.CancelAsync();
        await killer;

        output.WriteLine(string.Join("\n", set.Instances.Select(i => $"{i.Instance}: {i.Status}: {i.Error}")));
        Assert.True(killedWhileFrozen, "the victim was not seen stopped");
        var failed = set.Instances.Single(i => i.Instance == "victim");
        Assert.Equal(SnapshotStatus.Failed, failed.Status);
        // the kill lands in the dump or, on a slow machine, just after it while /proc is read: either way "gone"
        Assert.True(failed.Error!.Contains("exited during the core dump", StringComparison.Ordinal) || failed.Error.Contains("is gone", StringComparison.Ordinal), failed.Error);
        Assert.Empty(failed.Files);
        Assert.Equal(["snapshot.json"], Directory.GetFiles(Path.Combine(_dir, "verdict-r3", "victim")).Select(Path.GetFileName));
        Assert.Empty(Directory.GetFiles(_dir, "*.part", SearchOption.AllDirectories));
        var kept = set.Instances.Single(i => i.Instance == "survivor");
        Assert.Equal(SnapshotStatus.Complete, kept.Status);
        SnapshotAssert.IsElfCore(Path.Combine(_dir, "verdict-r3", "survivor", "core"));
        Assert.Empty(Directory.GetDirectories(Path.Combine(_dir, "verdict-r3"), ".*"));
        Assert.True(SnapshotAssert.RunningNotStopped(survivor.Pid));
    }

    [Fact]
    public async Task A_service_disposed_mid_dump_thaws_the_target_and_leaves_no_partial_folder()
    {
        await using var target = await ContainedSleeper.StartAsync("/usr/bin/python3 -c 'import time; b = bytearray(b\"\\x01\") * (512 << 20); time.sleep(300)'", "/usr/bin/python3");
        await WaitSleeping(target.Pid);
        var service = new SnapshotService(new SnapshotOptions { Directory = _dir });
        var run = service.SnapshotAsync("verdict-r4", [new SnapshotTarget("fn", "fn-1", target.Pid)], CancellationToken.None);
        var sw = Stopwatch.StartNew();
        while (SnapshotAssert.RunningNotStopped(target.Pid) && sw.Elapsed < TimeSpan.FromSeconds(30) && !run.IsCompleted)
        {
            // polled synchronously: a freeze of a few tens of ms is missed through the pool
        }

        Assert.False(run.IsCompleted, "the dump ended before it was seen frozen");
        service.Dispose();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        Assert.True(SnapshotAssert.RunningNotStopped(target.Pid), "the target must be thawed after a cancelled dump");
        Assert.False(target.HasExited);
        Assert.DoesNotContain(Directory.GetFiles(_dir, "*", SearchOption.AllDirectories), f => !f.EndsWith("set.json", StringComparison.Ordinal) && !f.EndsWith("snapshot.json", StringComparison.Ordinal));
    }

    /// <summary>Waits until the process sleeps in (clock_)nanosleep: its setup is done.</summary>
    private static async Task WaitSleeping(int pid)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < TimeSpan.FromSeconds(20))
        {
            var nr = (await File.ReadAllTextAsync($"/proc/{pid}/syscall")).Split(' ')[0];
            if (nr is "230" or "35")
            {
                return;
            }

            await Task.Delay(20);
        }

        Assert.Fail($"process {pid} did not get to its sleep");
    }

    private sealed record Load(long Offset, long Vaddr, long FileSize, uint Flags);

    /// <summary>The ELF header checked (ELF64, little endian, ET_CORE, x86-64, one PT_NOTE) and the PT_LOADs, each inside the file.</summary>
    private static List<Load> ElfLoads(byte[] f)
    {
        Assert.True(f.Length >= 64 && f[0] == 0x7f && f[1] == 'E' && f[2] == 'L' && f[3] == 'F', "no ELF magic");
        Assert.Equal(2, f[4]);
        Assert.Equal(1, f[5]);
        var s = f.AsSpan();
        Assert.Equal(4, BinaryPrimitives.ReadUInt16LittleEndian(s[16..]));
        Assert.Equal(62, BinaryPrimitives.ReadUInt16LittleEndian(s[18..]));
        var phoff = BinaryPrimitives.ReadInt64LittleEndian(s[32..]);
        Assert.Equal(56, BinaryPrimitives.ReadUInt16LittleEndian(s[54..]));
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(s[56..]);
        if (phnum == 0xffff)
        {
            var shoff = (int)BinaryPrimitives.ReadInt64LittleEndian(s[40..]);
            phnum = (int)BinaryPrimitives.ReadUInt32LittleEndian(s[(shoff + 44)..]);
        }

        Assert.True(phoff + (phnum * 56L) <= f.Length, "program headers past the end");
        var loads = new List<Load>();
        var notes = 0;
        for (var i = 0; i < phnum; i++)
        {
            var p = s[(int)(phoff + (i * 56))..];
            var type = BinaryPrimitives.ReadUInt32LittleEndian(p);
            var offset = BinaryPrimitives.ReadInt64LittleEndian(p[8..]);
            var filesz = BinaryPrimitives.ReadInt64LittleEndian(p[32..]);
            Assert.True(offset + filesz <= f.Length, $"segment {i} past the end");
            if (type == 4)
            {
                notes++;
            }
            else if (type == 1)
            {
                Assert.Equal(filesz, BinaryPrimitives.ReadInt64LittleEndian(p[40..]));
                loads.Add(new Load(offset, BinaryPrimitives.ReadInt64LittleEndian(p[16..]), filesz, BinaryPrimitives.ReadUInt32LittleEndian(p[4..])));
            }
        }

        Assert.Equal(1, notes);
        return loads;
    }

    private static bool Covers(string mapsLine, Load l)
    {
        var f = mapsLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var range = f[0].Split('-');
        var start = long.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        var end = long.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        uint flags = (f[1][0] == 'r' ? 4u : 0) | (f[1][1] == 'w' ? 2u : 0) | (f[1][2] == 'x' ? 1u : 0);
        return l.Vaddr >= start && l.Vaddr + l.FileSize <= end && flags == l.Flags;
    }

    private static long MarkerAddress(byte[] core, List<Load> loads)
    {
        var at = core.AsSpan().IndexOf(Encoding.ASCII.GetBytes(Marker + "|" + Marker));
        var load = loads.Single(l => at >= l.Offset && at < l.Offset + l.FileSize);
        return load.Vaddr + (at - load.Offset);
    }

    private static async Task<(int Code, string Out, string Err)> Run(string tool, params string[] args)
    {
        var path = $"/usr/bin/{tool}";
        Assert.True(File.Exists(path), $"{path} is missing: install binutils (readelf, with gcc) and gdb");
        var info = new ProcessStartInfo(path) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            info.ArgumentList.Add(a);
        }

        using var p = Process.Start(info)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        try
        {
            await p.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            p.Kill(entireProcessTree: true);
            throw;
        }

        return (p.ExitCode, await stdout, await stderr);
    }
}
