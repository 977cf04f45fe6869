namespace FaaSMon.Workload;

/// <summary>
/// Counts finished benign requests so attack steps can wait for "after the k-th benign request": that is how attacks are
/// interleaved with benign traffic, and why warm containers serve benign requests before, between and after attack steps.
/// </summary>
internal sealed class BenignProgress
{
    private readonly Lock gate = new();
    private readonly List<(int Threshold, TaskCompletionSource Reached)> waiters = [];
    private int completed;
    private bool finished;

    public int Completed
    {
        get
        {
            lock (gate)
            {
                return completed;
            }
        }
    }

    public void OneCompleted()
    {
        List<TaskCompletionSource> release;
        lock (gate)
        {
            completed++;
            release = TakeWaiters(w => w.Threshold <= completed);
        }

        release.ForEach(r => r.TrySetResult());
    }

    /// <summary>No more benign requests will come (all sent, or the run is failing): nobody waits any longer.</summary>
    public void Finish()
    {
        List<TaskCompletionSource> release;
        lock (gate)
        {
            finished = true;
            release = TakeWaiters(_ => true);
        }

        release.ForEach(r => r.TrySetResult());
    }

    public Task WaitForAsync(int threshold, CancellationToken ct)
    {
        lock (gate)
        {
            if (finished || completed >= threshold)
            {
                return Task.CompletedTask;
            }

            var reached = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            waiters.Add((threshold, reached));
            return reached.Task.WaitAsync(ct);
        }
    }

    private List<TaskCompletionSource> TakeWaiters(Predicate<(int Threshold, TaskCompletionSource Reached)> match)
    {
        var taken = waiters.FindAll(match).ConvertAll(w => w.Reached);
        waiters.RemoveAll(match);
        return taken;
    }
}
