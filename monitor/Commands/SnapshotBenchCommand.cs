using System.CommandLine;
using System.Globalization;
using FaaSMon.LocalFaaS;
using FaaSMon.Monitor.Snapshots;
using Microsoft.Extensions.Logging.Abstractions;

namespace FaaSMon.Monitor.Commands;

/// <summary>
/// <c>faasmon bench snapshot</c>: what a local-mode snapshot costs. One LocalFaaS, the functions warmed, then N instances
/// snapshotted R times (resident core or gcore, /proc, /tmp): time per part, how long the instance was frozen, against the goal (100 ms) and the attack-provenance paper's
/// CRIU anchor (172 ms per container), and memory (the target's RSS change, the snapshotter's peak).
/// </summary>
internal static class SnapshotBenchCommand
{
    private const double GoalMs = 100;
    private const double AnchorMs = 172;
    private static readonly Option<int> Instances = new("--instances") { Description = "Instances snapshotted per round.", DefaultValueFactory = _ => 4 };
    private static readonly Option<int> Rounds = new("--rounds") { Description = "Rounds (one verdict each).", DefaultValueFactory = _ => 5 };
    private static readonly Option<CoreDumper> Dumper = new("--core-dumper") { Description = "Local core route: Resident (present pages, instance frozen) or Gcore.", DefaultValueFactory = _ => CoreDumper.Resident };

    public static Command Create()
    {
        var command = new Command("snapshot", "Time per instance snapshot (core, /proc, /tmp) against 100 ms and the paper's 172 ms, and memory overhead.")
        {
            Instances, Rounds, Dumper,
        };
        command.SetAction(async (parse, ct) => await RunAsync(parse, ct));
        return command;
    }

    private static async Task<int> RunAsync(ParseResult parse, CancellationToken ct)
    {
        var count = Math.Max(1, parse.GetValue(Instances));
        var rounds = Math.Max(1, parse.GetValue(Rounds));
        var dumper = parse.GetValue(Dumper);
        var corePart = dumper == CoreDumper.Gcore ? "gcore" : "core";
        var state = Path.Combine("/var/lib/faasmon", $"bench-snapshot-{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}");
        Console.WriteLine($"faasmon bench snapshot: {count} instances x {rounds} rounds, local mode ({(dumper == CoreDumper.Gcore ? "gcore" : "resident core")} + /proc + /tmp), {Environment.ProcessorCount} cores");
        var taken = new List<InstanceSnapshot>();
        try
        {
            await using var faas = await LocalFaasHost.StartAsync(new LocalFaasOptions { Port = 0, StateDirectory = Path.Combine(state, "localfaas") }, NullLoggerFactory.Instance, ct);
            var targets = faas.Instances.Where(i => i.Pid is not null).Take(count).Select(i => new SnapshotTarget(i.Function, i.Instance, i.Pid)).ToList();
            using (var http = new HttpClient { BaseAddress = faas.GatewayUrl, Timeout = TimeSpan.FromSeconds(30) })
            {
                for (var i = 0; i < 5; i++)
                {
                    foreach (var t in targets)
                    {
                        try
                        {
                            using var response = await http.GetAsync($"function/{t.Function}", ct); // JIT and caches; the answer does not matter
                        }
                        catch (HttpRequestException)
                        {
                        }
                    }
                }
            }

            // a Node process's core is large (V8 reserves heap it has not touched, gcore writes it as zeros): each round
            // is removed once measured, and the budget is the disk's free space less a margin
            var snapshots = Path.Combine(state, "snapshots");
            Directory.CreateDirectory(snapshots);
            foreach (var t in targets)
            {
                var vm = ProcessVirtualBytes(t.Pid!.Value);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  target {t.Instance} pid {t.Pid}: virtual {vm / 1048576.0:F0} MiB"));
            }

            for (var r = 0; r < rounds; r++)
            {
                var verdict = $"bench-{r.ToString(CultureInfo.InvariantCulture)}";
                // a service per round: the budget counts what its service wrote, and each round is deleted behind its back
                var free = new DriveInfo(snapshots).AvailableFreeSpace;
                using var service = new SnapshotService(new SnapshotOptions
                {
                    Directory = snapshots,
                    MaxTotalBytes = Math.Max(1L << 30, free - (8L << 30)),
                    ToolTimeout = TimeSpan.FromMinutes(10),
                    CoreDumper = dumper,
                });
                var set = await service.SnapshotAsync(verdict, targets, ct);
                Directory.Delete(Path.Combine(snapshots, verdict), recursive: true);
                taken.AddRange(set.Instances);
                foreach (var failed in set.Instances.Where(s => s.Status != SnapshotStatus.Complete))
                {
                    Console.WriteLine($"  round {r}: {failed.Instance}: {failed.Status}: {failed.Error}");
                }
            }
        }
        finally
        {
            if (Directory.Exists(state))
            {
                Directory.Delete(state, recursive: true);
            }
        }

        var complete = taken.Where(s => s.Status == SnapshotStatus.Complete).ToList();
        Console.WriteLine($"  {complete.Count} of {taken.Count} snapshots complete; instances: {string.Join(", ", complete.Select(s => s.Instance).Distinct())}");
        if (complete.Count == 0)
        {
            return 1;
        }

        foreach (var part in new[] { corePart, "proc", "tmp" })
        {
            Print(part, [.. complete.Select(s => s.Parts.First(p => p.Name == part).DurationMs)]);
        }

        Print("total", [.. complete.Select(s => s.DurationMs)]);
        var cores = complete.Select(s => s.Core).OfType<CoreDumpInfo>().ToList();
        if (cores.Count > 0)
        {
            // how long the instance was held still (freeze request to thaw), the part of the core time it could not run
            Print("frozen", [.. cores.Select(c => c.FrozenMs)]);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  core: freeze by {string.Join(", ", cores.Select(c => c.Freeze?.Split(' ')[0]).Distinct())}; {cores.Average(c => c.Threads):F0} threads, {cores.Average(c => c.Mappings):F0} mappings, {cores.Average(c => c.Segments):F0} segments, {cores.Average(c => c.CopiedBytes) / 1048576:F1} MiB copied mean; skipped: {string.Join("; ", cores.SelectMany(c => c.Unreadable).Select(u => u.Split(' ', 3)[1]).Distinct())}{(cores.Any(c => c.FreezeWarning is not null) ? $"; warnings: {string.Join("; ", cores.Select(c => c.FreezeWarning).OfType<string>().Distinct())}" : "")}"));
        }

        var core = complete.Select(s => s.Files.FirstOrDefault(f => f.Name == "core")?.Bytes ?? 0).ToList();
        var rss = complete.Select(s => s.Memory!.TargetRssBeforeBytes ?? 0).ToList();
        var delta = complete.Select(s => s.Memory!.TargetRssDeltaBytes ?? 0).ToList();
        var peak = complete.Select(s => s.Memory!.SnapshotterPeakBytes).ToList();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  memory: target RSS {rss.Average() / 1048576:F1} MiB mean, delta after the snapshot {delta.Average() / 1024:+0;-0} KiB mean ({delta.Average() / rss.Average() * 100:+0.00;-0.00}% of RSS, paper 0.7%), max {delta.Max() / 1024.0:+0;-0} KiB"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  memory: snapshotter peak ({(dumper == CoreDumper.Gcore ? "gcore+gdb resident high-water" : "dumper's copy + pagemap buffers")} + tmp copy buffer) {peak.Average() / 1048576:F1} MiB mean, {peak.Max() / 1048576.0:F1} MiB max ({peak.Average() / rss.Average() * 100:F0}% of a target's RSS, only while it runs)"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  size: core {core.Average() / 1048576:F1} MiB mean, whole snapshot {complete.Average(s => s.Files.Sum(f => f.Bytes)) / 1048576:F1} MiB mean"));
        return 0;
    }

    private static long ProcessVirtualBytes(int pid)
    {
        var line = File.ReadLines($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/status").FirstOrDefault(l => l.StartsWith("VmSize:", StringComparison.Ordinal));
        return line is null ? 0 : long.Parse(line[7..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }

    private static void Print(string part, double[] values)
    {
        Array.Sort(values);
        var p50 = values[values.Length / 2];
        var p95 = values[Math.Min(values.Length - 1, (int)Math.Ceiling(values.Length * 0.95) - 1)];
        var max = values[^1];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  {part,-6} p50 {p50,8:F1} ms   p95 {p95,8:F1} ms   max {max,8:F1} ms   p50 vs goal {GoalMs:F0} ms x{p50 / GoalMs:F2}   vs paper {AnchorMs:F0} ms x{p50 / AnchorMs:F2}"));
    }
}
