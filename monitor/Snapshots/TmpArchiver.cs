using System.Formats.Tar;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace FaaSMon.Monitor.Snapshots;

/// <summary>
/// Copies an instance's private <c>/tmp</c> (seen from the host as <c>/proc/PID/root/tmp</c>) into a tar file. Symlinks
/// are archived as links and never followed: inside <c>/proc/PID/root</c> an absolute link resolves against the host's
/// root, so following one could copy host files. Regular files are opened with <c>O_NOFOLLOW</c>; the copy is bounded in
/// bytes and entries, and every byte written is reserved from the snapshot budget first.
/// </summary>
internal static class TmpArchiver
{
    private const int ONoFollow = 0x20000;
    private const int ONonBlock = 0x800;
    private const int OCloExec = 0x80000;
    private const int ORdOnly = 0;
    private const int TarBlock = 512;
    public const int BufferBytes = 81920;

    public sealed record Result(long Bytes, int Entries, IReadOnlyList<string> Skipped);

    public static Result Archive(string root, string tarPath, long maxBytes, int maxEntries, BudgetScope budget)
    {
        var skipped = new List<string>();
        long written = TarBlock * 2; // the end-of-archive blocks
        budget.Reserve(written, "/tmp copy");
        var entries = 0;
        using (var output = new FileStream(tarPath, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferBytes))
        using (var tar = new TarWriter(output, TarEntryFormat.Pax, leaveOpen: true))
        {
            var pending = new Stack<(DirectoryInfo Dir, string Prefix)>();
            pending.Push((new DirectoryInfo(root), ""));
            while (pending.Count > 0)
            {
                var (dir, prefix) = pending.Pop();
                IEnumerable<FileSystemInfo> children;
                try
                {
                    children = [.. dir.EnumerateFileSystemInfos().OrderBy(c => c.Name, StringComparer.Ordinal)];
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    skipped.Add($"{prefix}: {e.Message}");
                    continue;
                }

                foreach (var child in children)
                {
                    var name = prefix + child.Name;
                    if (entries >= maxEntries)
                    {
                        skipped.Add($"{name}: more than {maxEntries} entries");
                        continue;
                    }

                    var cost = TarBlock * 3L; // pax header + header
                    if (child.LinkTarget is { } link)
                    {
                        Reserve(ref written, cost, budget);
                        tar.WriteEntry(new PaxTarEntry(TarEntryType.SymbolicLink, name) { LinkName = link, ModificationTime = child.LastWriteTimeUtc });
                        entries++;
                    }
                    else if (child is DirectoryInfo sub)
                    {
                        Reserve(ref written, cost, budget);
                        tar.WriteEntry(new PaxTarEntry(TarEntryType.Directory, name + "/") { ModificationTime = child.LastWriteTimeUtc, Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute });
                        entries++;
                        pending.Push((sub, name + "/"));
                    }
                    else if (child is FileInfo file && (file.Attributes & (FileAttributes.Device | FileAttributes.ReparsePoint)) == 0)
                    {
                        if (!TryArchiveFile(tar, file, name, cost, ref written, maxBytes, budget, skipped))
                        {
                            continue;
                        }

                        entries++;
                    }
                    else
                    {
                        skipped.Add($"{name}: not a regular file, directory or symlink");
                    }
                }
            }
        }

        if (entries == 0)
        {
            // TarWriter writes the end-of-archive blocks only after an entry: an empty /tmp is still a valid tar
            using var empty = new FileStream(tarPath, FileMode.Append, FileAccess.Write);
            empty.Write(new byte[TarBlock * 2]);
        }

        return new Result(new FileInfo(tarPath).Length, entries, skipped);
    }

    private static bool TryArchiveFile(TarWriter tar, FileInfo file, string name, long cost, ref long written, long maxBytes, BudgetScope budget, List<string> skipped)
    {
        var length = file.Length;
        var padded = (length + TarBlock - 1) / TarBlock * TarBlock;
        if (written + cost + padded > maxBytes)
        {
            skipped.Add($"{name}: {length} bytes would pass the {maxBytes}-byte /tmp limit");
            return false;
        }

        var fd = Open(file.FullName, ORdOnly | ONoFollow | ONonBlock | OCloExec);
        if (fd < 0)
        {
            skipped.Add($"{name}: open failed (errno {Marshal.GetLastPInvokeError()}: a symlink or gone)");
            return false;
        }

        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        using var stream = new FileStream(handle, FileAccess.Read, 0);
        if (!stream.CanSeek || stream.Length != length)
        {
            skipped.Add($"{name}: changed while it was copied");
            return false;
        }

        Reserve(ref written, cost + padded, budget);
        tar.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name)
        {
            DataStream = new BoundedStream(stream, length),
            ModificationTime = file.LastWriteTimeUtc,
            Mode = UnixFileMode.UserRead | UnixFileMode.UserWrite,
        });
        return true;
    }

    private static void Reserve(ref long written, long bytes, BudgetScope budget)
    {
        budget.Reserve(bytes, "/tmp copy");
        written += bytes;
    }

    // DllImport, not LibraryImport: this project does not allow the unsafe code the generator emits
    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    /// <summary>Exactly <c>length</c> bytes of a file that may grow while it is read, so the tar header stays true.</summary>
    private sealed class BoundedStream(Stream inner, long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count)
        {
            var n = inner.Read(buffer, offset, (int)Math.Min(count, length - _position));
            if (n == 0 && _position < length)
            {
                Array.Clear(buffer, offset, (int)Math.Min(count, length - _position)); // truncated meanwhile: pad with zeros
                n = (int)Math.Min(count, length - _position);
            }

            _position += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
