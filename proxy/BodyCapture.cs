using System.Text;

namespace FaaSMon.Proxy;

/// <summary>Counts every byte of a body and keeps only its first <c>limit</c> bytes, so a record costs bounded memory.</summary>
internal sealed class BodyPrefix(int limit)
{
    private byte[]? _buffer;
    private int _length;

    public long TotalBytes { get; private set; }

    public bool Truncated => TotalBytes > _length;

    public void Append(ReadOnlySpan<byte> data)
    {
        TotalBytes += data.Length;
        var room = limit - _length;
        if (room <= 0 || data.IsEmpty)
        {
            return;
        }

        var take = Math.Min(room, data.Length);
        if (_buffer is null || _buffer.Length < _length + take)
        {
            Array.Resize(ref _buffer, Math.Min(limit, Math.Max(_length + take, 512)));
        }

        data[..take].CopyTo(_buffer.AsSpan(_length));
        _length += take;
    }

    public string? Text() => _length == 0 ? null : Encoding.UTF8.GetString(_buffer!, 0, _length);
}

/// <summary>The request body as YARP reads it, teed into a <see cref="BodyPrefix"/> (no buffering of the whole body).</summary>
internal sealed class TeeReadStream(Stream inner, BodyPrefix prefix) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        var n = inner.Read(buffer);
        prefix.Append(buffer[..n]);
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var n = await inner.ReadAsync(buffer, cancellationToken);
        prefix.Append(buffer.Span[..n]);
        return n;
    }

    public override void Flush()
    {
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>The response body as YARP writes it, teed into a <see cref="BodyPrefix"/>.</summary>
internal sealed class TeeWriteStream(Stream inner, BodyPrefix prefix) : Stream
{
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        prefix.Append(buffer);
        inner.Write(buffer);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        prefix.Append(buffer.Span);
        return inner.WriteAsync(buffer, cancellationToken);
    }

    public override void Flush() => inner.Flush();
    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);
    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
