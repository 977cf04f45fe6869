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
            if (!s.Writer.TryWrite(record))
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

    public sealed class Subscription : IDisposable
    {
        private readonly Channel<T> _channel;
        private readonly RecordStream<T> _owner;
        internal long DroppedCount;

        internal Subscription(RecordStream<T> owner, string name, int capacity)
        {
            _owner = owner;
            Name = name;
            Capacity = capacity;
            _channel = Channel.CreateBounded<T>(new BoundedChannelOptions(capacity)
            {
                FullMode = BoundedChannelFullMode.Wait, // with TryWrite: refuse when full, so we can count it
                SingleReader = true,
                SingleWriter = false,
            });
        }

        public string Name { get; }

        public int Capacity { get; }

        public ChannelReader<T> Reader => _channel.Reader;

        public long Dropped => Interlocked.Read(ref DroppedCount);

        public int Pending => _channel.Reader.Count;

        internal ChannelWriter<T> Writer => _channel.Writer;

        public void Dispose()
        {
            _owner.Remove(this);
            _channel.Writer.TryComplete();
        }
    }
}
