using System.Threading.Channels;

namespace FaaSMon.Proxy;

/// <summary>
/// Fan-out of records to subscribers, each behind its own bounded channel: a slow or stopped subscriber loses
/// its own records (counted), never blocks the request path and never starves the others.
/// </summary>
public sealed class RecordStream<T>(string kind, int defaultCapacity)
{
    private volatile Subscription[] _subscriptions = [];
    private long _published;
    private long _unsubscribed;

    public string Kind => kind;

    public long Published => Interlocked.Read(ref _published);

    /// <summary>Records no subscriber was there to take.</summary>
    public long DroppedWithoutSubscriber => Interlocked.Read(ref _unsubscribed);

    public IReadOnlyList<Subscription> Subscriptions => _subscriptions;

    /// <summary>True when every subscriber still has room: what fail-closed mode asks before forwarding.</summary>
    public bool CanAcceptAll
    {
        get
        {
            var subs = _subscriptions;
            if (subs.Length == 0)
            {
                return false;
            }

            foreach (var s in subs)
            {
                if (s.Pending >= s.Capacity)
                {
                    return false;
                }
            }

            return true;
        }
    }

    public event Action<string>? Dropped;

    public Subscription Subscribe(string name, int? capacity = null)
    {
        var subscription = new Subscription(this, name, capacity ?? defaultCapacity);
        lock (this)
        {
            _subscriptions = [.. _subscriptions, subscription];
        }

        return subscription;
    }

    /// <summary>Never waits: a full subscriber queue drops the record for that subscriber and counts it.</summary>
    public void Publish(T record)
    {
        Interlocked.Increment(ref _published);
        var subs = _subscriptions;
        if (subs.Length == 0)
        {
            Interlocked.Increment(ref _unsubscribed);
            Dropped?.Invoke("none");
            return;
        }

        foreach (var s in subs)
        {
            if (!s.TryWrite(record))
            {
                Interlocked.Increment(ref s.DroppedCount);
                Dropped?.Invoke(s.Name);
            }
        }
    }

    private void Remove(Subscription subscription)
    {
        lock (this)
        {
            _subscriptions = [.. _subscriptions.Where(s => s != subscription)];
        }
    }

    /// <summary>
    /// One subscriber's bounded queue. Lock-free on the request path (a ConcurrentQueue and a counter): a locked
    /// channel, written by every request thread and read by the subscriber, showed up as lock contention on 2 cores.
    /// </summary>
    public sealed class Subscription : IDisposable
    {
        private readonly RecordStream<T> _owner;
        private readonly PolledReader _reader;
        internal long DroppedCount;

        internal Subscription(RecordStream<T> owner, string name, int capacity)
        {
            _owner = owner;
            Name = name;
            Capacity = capacity;
            _reader = new PolledReader(capacity);
        }

        public string Name { get; }

        public int Capacity { get; }

        public ChannelReader<T> Reader => _reader;

        public long Dropped => Interlocked.Read(ref DroppedCount);

        public int Pending => _reader.Count;

        internal bool TryWrite(T item) => _reader.TryWrite(item);

        public void Dispose()
        {
            _owner.Remove(this);
            _reader.Complete();
        }
    }

    /// <summary>A bounded single-consumer queue read as a channel; waiting readers poll briefly instead of being signalled.</summary>
    private sealed class PolledReader(int capacity) : ChannelReader<T>
    {
        private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(5);
        private readonly System.Collections.Concurrent.ConcurrentQueue<T> _queue = new();
        private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _count;
        private volatile bool _completed;

        public override bool CanCount => true;

        public override int Count => Volatile.Read(ref _count);

        public override Task Completion => _completion.Task;

        public bool TryWrite(T item)
        {
            if (_completed || Interlocked.Increment(ref _count) > capacity)
            {
                if (!_completed)
                {
                    Interlocked.Decrement(ref _count);
                }

                return false;
            }

            _queue.Enqueue(item);
            return true;
        }

        public void Complete()
        {
            _completed = true;
            CompleteIfDrained();
        }

        public override bool TryRead([System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out T item)
        {
            if (_queue.TryDequeue(out item))
            {
                Interlocked.Decrement(ref _count);
                return true;
            }

            CompleteIfDrained();
            return false;
        }

        public override async ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
        {
            while (_queue.IsEmpty)
            {
                if (_completed)
                {
                    CompleteIfDrained();
                    return false;
                }

                await Task.Delay(PollInterval, cancellationToken);
            }

            return true;
        }

        private void CompleteIfDrained()
        {
            if (_completed && _queue.IsEmpty)
            {
                _completion.TrySetResult();
            }
        }
    }
}
