using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>
/// A core dump of what a process really holds: with the instance frozen (<see cref="InstanceFreeze"/>), the readable
/// mappings of <c>/proc/PID/maps</c>, and of those only the pages <c>/proc/PID/pagemap</c> says are present (or
/// swapped), copied from <c>/proc/PID/mem</c> into an ELF64 core (ET_CORE, x86-64): one PT_LOAD per run of present
/// pages, and a PT_NOTE with NT_PRSTATUS per thread, NT_PRPSINFO, NT_AUXV and NT_FILE. V8's reserved, untouched
/// address space (PROT_NONE, or readable but never faulted in) is not written: a Node instance is ~100 MiB, not 11 GB.
/// <para>
/// Registers: only what <c>/proc/TID/syscall</c> gives without ptrace (rip, rsp, the syscall number and its six
/// arguments); the others and the FPU state are zero, so a backtrace in gdb starts at the right pc but may not unwind.
/// </para>
/// Layout: ELF header, the segment data page-aligned from 4 KiB, then the notes and the program headers (e_phoff
/// points at them), so the segments are written as they are copied. Written as <c>core.part</c> and renamed.
/// </summary>
internal static class ResidentCoreDumper
{
    private const int ChunkBytes = 1 << 20;
    private const int PagemapPages = 4096;
    private const int EhSize = 64;
    private const int PhSize = 56;
    private const int ShSize = 64;
    private const long DataStart = 4096;
    private const uint PtLoad = 1;
    private const uint PtNote = 4;
    private const uint NtPrstatus = 1;
    private const uint NtPrpsinfo = 3;
    private const uint NtAuxv = 6;
    private const uint NtFile = 0x46494c45;
    private const int PnXnum = 0xffff;
    private const long ClockTicks = 100;

    /// <summary>Buffers the dumper holds while it runs: the copy chunk and one pagemap window.</summary>
    public const long BufferBytes = ChunkBytes + (PagemapPages * 8);

    /// <summary>What the dump took: written to <paramref name="path"/>, or an exception (the file removed).</summary>
    /// <exception cref="TargetGoneException">The process exited while it was dumped.</exception>
    /// <exception cref="SizeLimitException">The present pages do not fit in the budget; nothing is written.</exception>
    public static CoreDumpInfo Dump(int pid, long startTicks, string function, string instance, string path, BudgetScope budget, TimeSpan timeout, CancellationToken ct)
    {
        var sw = Stopwatch.StartNew();
        var proc = $"/proc/{pid.ToString(CultureInfo.InvariantCulture)}";
        var page = Environment.SystemPageSize;
        var unreadable = new List<string>();
        var segments = new List<Segment>();
        InstanceFreeze freeze;
        try
        {
            freeze = InstanceFreeze.Freeze(pid, function, instance);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw (Exception?)Gone(pid, startTicks, e) ?? new IOException($"could not freeze process {pid}: {e.Message}", e);
        }

        var threads = 0;
        var mappings = 0;
        long copied = 0;
        try
        {
            using var mem = OpenOrGone(pid, startTicks, $"{proc}/mem");
            using var pagemap = OpenOrGone(pid, startTicks, $"{proc}/pagemap");
            var maps = ReadOrGone(pid, startTicks, () => Mapping.ParseAll(File.ReadAllLines($"{proc}/maps")));
            mappings = maps.Count;

            // the runs of present pages of every readable mapping
            var runs = new List<Segment>();
            var entries = new byte[PagemapPages * 8];
            foreach (var m in maps)
            {
                if (!m.Perms.StartsWith('r'))
                {
                    continue;
                }

                if (m.Start < 0 || m.Name is "[vvar]" or "[vvar_vclock]" or "[vsyscall]")
                {
                    unreadable.Add($"{m.Start:x}-{m.End:x} {m.Name}: not readable through /proc/PID/mem");
                    continue;
                }

                PresentRuns(pagemap, m, page, entries, runs);
            }

            var planned = runs.Sum(r => r.Size);
            budget.Reserve(DataStart + planned + (64L << 10) + ((runs.Count + 1) * (long)PhSize), "the core dump");

            using (var core = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16))
            {
                core.Write(new byte[DataStart]);
                var buffer = new byte[ChunkBytes];
                foreach (var run in runs)
                {
                    ct.ThrowIfCancellationRequested();
                    if (sw.Elapsed > timeout)
                    {
                        throw new TimeoutException($"the core dump did not finish within {timeout.TotalSeconds:F0} s");
                    }

                    var offset = core.Position;
                    long done = 0;
                    string? error = null;
                    while (done < run.Size)
                    {
                        ct.ThrowIfCancellationRequested();
                        var want = (int)Math.Min(buffer.Length, run.Size - done);
                        int n;
                        try
                        {
                            n = RandomAccess.Read(mem, buffer.AsSpan(0, want), run.Address + done);
                        }
                        catch (IOException e)
                        {
                            error = e.Message;
                            break;
                        }

                        if (n <= 0)
                        {
                            error = "end of memory";
                            break;
                        }

                        core.Write(buffer, 0, n);
                        done += n;
                    }

                    if (error is not null)
                    {
                        // a frozen process's memory reads fail when it was killed: its exit (tearing down its memory)
                        // can take a while before /proc shows it as a zombie
                        if (GoneWithin(pid, startTicks, TimeSpan.FromMilliseconds(500)) is { } gone)
                        {
                            throw gone;
                        }

                        unreadable.Add($"{run.Address + done:x}-{run.Address + run.Size:x} {run.Mapping.Name}: {error}");
                    }

                    if (done > 0)
                    {
                        segments.Add(run with { Size = done, Offset = offset });
                        copied += done;
                    }
                }

                // the process state is read while it is still held
                var notes = Notes(pid, proc, maps, page, out threads);
                if (Gone(pid, startTicks, null) is { } exited)
                {
                    throw exited;
                }

                freeze.Dispose();
                var notesOffset = core.Position;
                core.Write(notes);
                Align(core, 8);
                var phoff = core.Position;
                var phnum = segments.Count + 1;
                core.Write(ProgramHeaders(notesOffset, notes.Length, segments));
                long shoff = 0;
                if (phnum >= PnXnum)
                {
                    shoff = core.Position;
                    var sh = new byte[ShSize];
                    BinaryPrimitives.WriteUInt32LittleEndian(sh.AsSpan(44), (uint)phnum); // sh_info holds the real e_phnum
                    core.Write(sh);
                }

                core.Position = 0;
                core.Write(ElfHeader(phoff, phnum, shoff));
            }

            return new CoreDumpInfo("resident", freeze.Method, freeze.Frozen.TotalMilliseconds, freeze.Warning, threads, mappings, segments.Count, copied,
                "rip, rsp, syscall number and arguments per thread (from /proc/TID/syscall); other registers and FPU state zero", unreadable);
        }
        catch
        {
            TryDelete(path);
            throw;
        }
        finally
        {
            freeze.Dispose();
        }
    }

    /// <summary>Runs of consecutive pages of <paramref name="m"/> that are present in RAM or swapped out (bits 63, 62).</summary>
    private static void PresentRuns(SafeFileHandle pagemap, Mapping m, int page, byte[] entries, List<Segment> runs)
    {
        long runStart = -1;
        for (var address = m.Start; address < m.End;)
        {
            var pages = (int)Math.Min(PagemapPages, (m.End - address) / page);
            var n = RandomAccess.Read(pagemap, entries.AsSpan(0, pages * 8), address / page * 8) / 8;
            if (n <= 0)
            {
                break;
            }

            for (var i = 0; i < n; i++, address += page)
            {
                var entry = BinaryPrimitives.ReadUInt64LittleEndian(entries.AsSpan(i * 8));
                var present = (entry & (3UL << 62)) != 0;
                if (present && runStart < 0)
                {
                    runStart = address;
                }
                else if (!present && runStart >= 0)
                {
                    runs.Add(new Segment(m, runStart, address - runStart, 0));
                    runStart = -1;
                }
            }
        }

        if (runStart >= 0)
        {
            runs.Add(new Segment(m, runStart, m.End - runStart, 0));
        }
    }

    private static byte[] ElfHeader(long phoff, int phnum, long shoff)
    {
        var h = new byte[EhSize];
        h[0] = 0x7f;
        h[1] = (byte)'E';
        h[2] = (byte)'L';
        h[3] = (byte)'F';
        h[4] = 2; // ELFCLASS64
        h[5] = 1; // little endian
        h[6] = 1; // EV_CURRENT
        var s = h.AsSpan();
        BinaryPrimitives.WriteUInt16LittleEndian(s[16..], 4); // ET_CORE
        BinaryPrimitives.WriteUInt16LittleEndian(s[18..], 62); // EM_X86_64
        BinaryPrimitives.WriteUInt32LittleEndian(s[20..], 1);
        BinaryPrimitives.WriteInt64LittleEndian(s[32..], phoff);
        BinaryPrimitives.WriteInt64LittleEndian(s[40..], shoff);
        BinaryPrimitives.WriteUInt16LittleEndian(s[52..], EhSize);
        BinaryPrimitives.WriteUInt16LittleEndian(s[54..], PhSize);
        BinaryPrimitives.WriteUInt16LittleEndian(s[56..], (ushort)Math.Min(phnum, PnXnum));
        BinaryPrimitives.WriteUInt16LittleEndian(s[58..], (ushort)(shoff == 0 ? 0 : ShSize));
        BinaryPrimitives.WriteUInt16LittleEndian(s[60..], (ushort)(shoff == 0 ? 0 : 1));
        return h;
    }

    private static byte[] ProgramHeaders(long notesOffset, int notesSize, List<Segment> segments)
    {
        var table = new byte[(segments.Count + 1) * PhSize];
        Header(table.AsSpan(0, PhSize), PtNote, 0, notesOffset, 0, notesSize, notesSize, 4);
        for (var i = 0; i < segments.Count; i++)
        {
            var g = segments[i];
            uint flags = (g.Mapping.Perms[0] == 'r' ? 4u : 0) | (g.Mapping.Perms[1] == 'w' ? 2u : 0) | (g.Mapping.Perms[2] == 'x' ? 1u : 0);
            Header(table.AsSpan((i + 1) * PhSize, PhSize), PtLoad, flags, g.Offset, g.Address, g.Size, g.Size, 4096);
        }

        return table;

        static void Header(Span<byte> p, uint type, uint flags, long offset, long vaddr, long filesz, long memsz, long align)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(p, type);
            BinaryPrimitives.WriteUInt32LittleEndian(p[4..], flags);
            BinaryPrimitives.WriteInt64LittleEndian(p[8..], offset);
            BinaryPrimitives.WriteInt64LittleEndian(p[16..], vaddr);
            BinaryPrimitives.WriteInt64LittleEndian(p[24..], 0);
            BinaryPrimitives.WriteInt64LittleEndian(p[32..], filesz);
            BinaryPrimitives.WriteInt64LittleEndian(p[40..], memsz);
            BinaryPrimitives.WriteInt64LittleEndian(p[48..], align);
        }
    }

    /// <summary>NT_PRSTATUS per thread (the process's own thread first), NT_PRPSINFO, NT_AUXV, NT_FILE.</summary>
    private static byte[] Notes(int pid, string proc, IReadOnlyList<Mapping> maps, int page, out int threads)
    {
        var notes = new MemoryStream();
        var stat = Stat.Read(proc) ?? throw new TargetGoneException(pid, $"process {pid} exited during the core dump");
        var (sigPending, sigBlocked) = Signals(proc);
        var tids = Directory.GetDirectories($"{proc}/task").Select(d => int.Parse(Path.GetFileName(d), CultureInfo.InvariantCulture))
            .OrderBy(t => t == pid ? 0 : 1).ThenBy(t => t).ToList();
        threads = 0;
        foreach (var tid in tids)
        {
            var task = $"{proc}/task/{tid.ToString(CultureInfo.InvariantCulture)}";
            if (Stat.Read(task) is not { } ts)
            {
                continue; // a thread that ended
            }

            var s = new byte[336];
            var p = s.AsSpan();
            BinaryPrimitives.WriteInt64LittleEndian(p[16..], sigPending);
            BinaryPrimitives.WriteInt64LittleEndian(p[24..], sigBlocked);
            BinaryPrimitives.WriteInt32LittleEndian(p[32..], tid);
            BinaryPrimitives.WriteInt32LittleEndian(p[36..], stat.Ppid);
            BinaryPrimitives.WriteInt32LittleEndian(p[40..], stat.Pgrp);
            BinaryPrimitives.WriteInt32LittleEndian(p[44..], stat.Session);
            TimeVal(p[48..], ts.Utime);
            TimeVal(p[64..], ts.Stime);
            TimeVal(p[80..], stat.Cutime);
            TimeVal(p[96..], stat.Cstime);
            var regs = p[112..];
            BinaryPrimitives.WriteInt64LittleEndian(regs[(17 * 8)..], 0x33); // cs: 64-bit user code
            BinaryPrimitives.WriteInt64LittleEndian(regs[(20 * 8)..], 0x2b); // ss
            BinaryPrimitives.WriteInt64LittleEndian(regs[(15 * 8)..], -1); // orig_rax: not in a syscall
            if (Syscall(task) is { } sc)
            {
                BinaryPrimitives.WriteInt64LittleEndian(regs[(15 * 8)..], sc.Number);
                BinaryPrimitives.WriteInt64LittleEndian(regs[(16 * 8)..], sc.Pc);
                BinaryPrimitives.WriteInt64LittleEndian(regs[(19 * 8)..], sc.Sp);
                int[] argSlots = [14, 13, 12, 7, 9, 8]; // rdi rsi rdx r10 r8 r9 in user_regs_struct
                for (var i = 0; i < sc.Args.Length && i < argSlots.Length; i++)
                {
                    BinaryPrimitives.WriteInt64LittleEndian(regs[(argSlots[i] * 8)..], sc.Args[i]);
                }
            }

            Note(notes, NtPrstatus, s);
            threads++;
        }

        var ps = new byte[136];
        var q = ps.AsSpan();
        q[0] = (byte)("RSDTZW".IndexOf(stat.State, StringComparison.Ordinal) is var i0 and >= 0 ? i0 : 0);
        q[1] = (byte)stat.State;
        q[2] = (byte)(stat.State == 'Z' ? 1 : 0);
        q[3] = (byte)(sbyte)stat.Nice;
        BinaryPrimitives.WriteInt64LittleEndian(q[8..], stat.Flags);
        var (uid, gid) = Ids(proc);
        BinaryPrimitives.WriteUInt32LittleEndian(q[16..], uid);
        BinaryPrimitives.WriteUInt32LittleEndian(q[20..], gid);
        BinaryPrimitives.WriteInt32LittleEndian(q[24..], pid);
        BinaryPrimitives.WriteInt32LittleEndian(q[28..], stat.Ppid);
        BinaryPrimitives.WriteInt32LittleEndian(q[32..], stat.Pgrp);
        BinaryPrimitives.WriteInt32LittleEndian(q[36..], stat.Session);
        var comm = Encoding.UTF8.GetBytes(stat.Comm);
        comm.AsSpan(0, Math.Min(15, comm.Length)).CopyTo(q[40..]);
        var args = Encoding.UTF8.GetBytes(string.Join(' ', ProcessState.CommandLine(pid)));
        args.AsSpan(0, Math.Min(79, args.Length)).CopyTo(q[56..]);
        Note(notes, NtPrpsinfo, ps);

        try
        {
            Note(notes, NtAuxv, File.ReadAllBytes($"{proc}/auxv"));
        }
        catch (IOException)
        {
            // without it gdb finds the loader from NT_FILE
        }

        Note(notes, NtFile, FileNote(maps, page));
        return notes.ToArray();
    }

    private static byte[] FileNote(IReadOnlyList<Mapping> maps, int page)
    {
        var files = maps.Where(m => m.Inode != 0 && m.Name.StartsWith('/')).ToList();
        var note = new MemoryStream();
        var word = new byte[8];
        void Put(long v)
        {
            BinaryPrimitives.WriteInt64LittleEndian(word, v);
            note.Write(word);
        }

        Put(files.Count);
        Put(page);
        foreach (var f in files)
        {
            Put(f.Start);
            Put(f.End);
            Put(f.Offset / page);
        }

        foreach (var f in files)
        {
            note.Write(Encoding.UTF8.GetBytes(f.Name));
            note.WriteByte(0);
        }

        return note.ToArray();
    }

    private static void Note(MemoryStream notes, uint type, byte[] desc)
    {
        var head = new byte[12];
        BinaryPrimitives.WriteUInt32LittleEndian(head, 5); // "CORE\0"
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(4), (uint)desc.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(head.AsSpan(8), type);
        notes.Write(head);
        notes.Write("CORE\0\0\0\0"u8);
        notes.Write(desc);
        while (notes.Length % 4 != 0)
        {
            notes.WriteByte(0);
        }
    }

    private static void TimeVal(Span<byte> at, long ticks)
    {
        BinaryPrimitives.WriteInt64LittleEndian(at, ticks / ClockTicks);
        BinaryPrimitives.WriteInt64LittleEndian(at[8..], ticks % ClockTicks * (1_000_000 / ClockTicks));
    }

    private static (long Pending, long Blocked) Signals(string proc)
    {
        long pending = 0, blocked = 0;
        foreach (var line in File.ReadLines($"{proc}/status"))
        {
            if (line.StartsWith("ShdPnd:", StringComparison.Ordinal))
            {
                pending = long.Parse(line.AsSpan(7).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("SigBlk:", StringComparison.Ordinal))
            {
                blocked = long.Parse(line.AsSpan(7).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            }
        }

        return (pending, blocked);
    }

    private static (uint Uid, uint Gid) Ids(string proc)
    {
        uint uid = 0, gid = 0;
        foreach (var line in File.ReadLines($"{proc}/status"))
        {
            if (line.StartsWith("Uid:", StringComparison.Ordinal))
            {
                uid = uint.Parse(line[4..].Split('\t', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("Gid:", StringComparison.Ordinal))
            {
                gid = uint.Parse(line[4..].Split('\t', StringSplitOptions.RemoveEmptyEntries)[0], CultureInfo.InvariantCulture);
            }
        }

        return (uid, gid);
    }

    /// <summary><c>/proc/TID/syscall</c>: "NR a1..a6 sp pc" in a syscall, "-1 sp pc" blocked outside one, "running".</summary>
    private static (long Number, long[] Args, long Sp, long Pc)? Syscall(string task)
    {
        string[] f;
        try
        {
            f = File.ReadAllText($"{task}/syscall").Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }

        static long Hex(string s) => long.Parse(s.StartsWith("0x", StringComparison.Ordinal) ? s[2..] : s, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
        if (f.Length == 9 && long.TryParse(f[0], CultureInfo.InvariantCulture, out var nr))
        {
            return (nr, [.. f[1..7].Select(Hex)], Hex(f[7]), Hex(f[8]));
        }

        if (f.Length == 3 && f[0] == "-1")
        {
            return (-1, [], Hex(f[1]), Hex(f[2]));
        }

        return null;
    }

    private static void Align(Stream s, int to)
    {
        while (s.Position % to != 0)
        {
            s.WriteByte(0);
        }
    }

    private static SafeFileHandle OpenOrGone(int pid, long ticks, string path)
    {
        try
        {
            return File.OpenHandle(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw (Exception?)Gone(pid, ticks, e) ?? new IOException($"{path} could not be opened: {e.Message}", e);
        }
    }

    private static T ReadOrGone<T>(int pid, long ticks, Func<T> read)
    {
        try
        {
            return read();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw (Exception?)Gone(pid, ticks, e) ?? new IOException(e.Message, e);
        }
    }

    private static TargetGoneException? GoneWithin(int pid, long ticks, TimeSpan wait)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            if (Gone(pid, ticks, null) is { } gone)
            {
                return gone;
            }

            if (sw.Elapsed > wait)
            {
                return null;
            }

            Thread.Sleep(5);
        }
    }

    /// <summary>A <see cref="TargetGoneException"/> when the process exited (or its pid is another's now), else null.</summary>
    private static TargetGoneException? Gone(int pid, long ticks, Exception? cause) =>
        ProcessState.StartTicks(pid) == ticks && InstanceFreeze.ThreadState($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}") is not ('Z' or 'X' or null) ? null
            : new TargetGoneException(pid, $"process {pid.ToString(CultureInfo.InvariantCulture)} exited during the core dump{(cause is null ? "" : $" ({cause.Message})")}");

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (IOException)
        {
            // the partial folder is removed with the snapshot anyway
        }
    }

    private sealed record Segment(Mapping Mapping, long Address, long Size, long Offset);

    private sealed record Stat(string Comm, char State, int Ppid, int Pgrp, int Session, long Flags, long Utime, long Stime, long Cutime, long Cstime, int Nice)
    {
        public static Stat? Read(string dir)
        {
            string text;
            try
            {
                text = File.ReadAllText($"{dir}/stat");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return null;
            }

            var open = text.IndexOf('(');
            var close = text.LastIndexOf(')');
            var f = text[(close + 2)..].Split(' ');
            long L(int i) => long.Parse(f[i], CultureInfo.InvariantCulture);
            return new Stat(text[(open + 1)..close], f[0][0], (int)L(1), (int)L(2), (int)L(3), L(6), L(11), L(12), L(13), L(14), (int)L(16));
        }
    }
}

/// <summary>One line of <c>/proc/PID/maps</c>.</summary>
internal sealed record Mapping(long Start, long End, string Perms, long Offset, long Inode, string Name)
{
    public static List<Mapping> ParseAll(IEnumerable<string> lines)
    {
        var list = new List<Mapping>();
        foreach (var line in lines)
        {
            var f = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
            if (f.Length < 5)
            {
                continue;
            }

            var range = f[0].Split('-');
            list.Add(new Mapping(
                (long)ulong.Parse(range[0], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                (long)ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                f[1],
                long.Parse(f[2], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                long.Parse(f[4], CultureInfo.InvariantCulture),
                f.Length > 5 ? f[5].Trim() : ""));
        }

        return list;
    }
}

/// <summary>How the core was taken (<c>snapshot.json</c> "core"): dumper, freeze, what was and was not copied.</summary>
public sealed record CoreDumpInfo(
    string Dumper,
    string? Freeze,
    double FrozenMs,
    string? FreezeWarning,
    int Threads,
    int Mappings,
    int Segments,
    long CopiedBytes,
    string? Registers,
    IReadOnlyList<string> Unreadable);
