namespace FaaSMon.Monitor.Snapshots;

/// <summary>
/// The byte budget of the snapshot folder, shared by every snapshot in flight: bytes are reserved before (or as) they are
/// written and given back when a partial snapshot is removed.
/// </summary>
internal sealed class SnapshotBudget(long limit, long used)
{
    private long _used = used;

    public long Limit { get; } = limit;

    public long Used => Interlocked.Read(ref _used);

    public long Remaining => Math.Max(0, Limit - Used);

    /// <exception cref="SizeLimitException">The reservation would pass the limit; nothing is reserved.</exception>
    public void Reserve(long bytes, string what)
    {
        while (true)
        {
            var current = Interlocked.Read(ref _used);
            if (current + bytes > Limit)
            {
                throw new SizeLimitException($"{what} needs {bytes} bytes, {Math.Max(0, Limit - current)} of the {Limit}-byte snapshot budget left");
            }

            if (Interlocked.CompareExchange(ref _used, current + bytes, current) == current)
            {
                return;
            }
        }
    }

    public void Release(long bytes) => Interlocked.Add(ref _used, -bytes);

    public static long SizeOf(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return 0;
        }

        long total = 0;
        foreach (var file in new DirectoryInfo(directory).EnumerateFiles("*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = FileAttributes.ReparsePoint }))
        {
            total += file.Length;
        }

        return total;
    }
}

/// <summary>One instance snapshot's share of the budget: what it reserved, given back whole when the snapshot is removed.</summary>
internal sealed class BudgetScope(SnapshotBudget budget)
{
    private long _reserved;

    public long Reserved => Interlocked.Read(ref _reserved);

    public long Remaining => budget.Remaining;

    /// <exception cref="SizeLimitException">The budget would be passed; nothing is reserved.</exception>
    public void Reserve(long bytes, string what)
    {
        budget.Reserve(bytes, what);
        Interlocked.Add(ref _reserved, bytes);
    }

    /// <summary>The snapshot was removed: its bytes are free again.</summary>
    public void ReleaseAll() => budget.Release(Interlocked.Exchange(ref _reserved, 0));

    /// <summary>The snapshot is on disk with <paramref name="actualBytes"/>: the estimate is replaced by the real size.</summary>
    public void Settle(long actualBytes) => budget.Release(Interlocked.Exchange(ref _reserved, actualBytes) - actualBytes);
}
