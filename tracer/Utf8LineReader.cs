using System.Buffers;
using System.Text;

namespace FaaSMon.Tracer;

/// <summary>
/// Lines of a tool's output (strace, bpftrace) read straight from the pipe into one pooled buffer: no string per line.
/// <see cref="FillAsync"/> reads more, then <c>TryReadLine</c> hands out each complete line as a span that is
/// valid until the next fill. A line longer than <see cref="MaxLineBytes"/> is handed out cut at that length (the
/// parser counts it as malformed) and its rest is skipped.
/// Not thread-safe; one reader drives it.
/// </summary>
internal sealed class Utf8LineReader(Stream stream, int bufferBytes = 64 * 1024) : IDisposable
{
    public const int MaxLineBytes = 1 << 20;

    private byte[] _buffer = ArrayPool<byte>.Shared.Rent(bufferBytes);
    private char[] _chars = ArrayPool<char>.Shared.Rent(4096);
    private int _start;
    private int _end;
    private bool _eof;
    private bool _droppingRest;

    /// <summary>Reads what the pipe has; false once it is closed and every line was handed out.</summary>
    public async ValueTask<bool> FillAsync(CancellationToken ct = default)
    {
        if (_eof)
        {
            return _start < _end;
        }

        if (_start > 0)
        {
            // keep the partial last line at the front
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }

        if (_end >= MaxLineBytes)
        {
            return true; // a full line buffer: TryReadLine hands it out cut
        }

        if (_end == _buffer.Length)
        {
            // a line longer than the buffer (TryReadLine has handed out any line of MaxLineBytes already)
            var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(MaxLineBytes, _buffer.Length * 2));
            _buffer.AsSpan(0, _end).CopyTo(bigger);
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = bigger;
        }

        var read = await stream.ReadAsync(_buffer.AsMemory(_end, Math.Min(_buffer.Length, MaxLineBytes) - _end), ct);
        if (read == 0)
        {
            _eof = true;
            return _start < _end;
        }

        _end += read;
        return true;
    }

    /// <summary>The next complete line (without its '\n'), as bytes.</summary>
    public bool TryReadLine(out ReadOnlySpan<byte> line)
    {
        while (true)
        {
            var pending = _buffer.AsSpan(_start, _end - _start);
            var newline = pending.IndexOf((byte)'\n');
            if (newline < 0)
            {
                line = default;
                if (_droppingRest)
                {
                    _start = _end;
                    return false;
                }

                if (pending.IsEmpty || !(_eof || pending.Length >= MaxLineBytes))
                {
                    return false;
                }

                // the last line, without a newline, or one too long to keep: hand out what there is
                line = pending;
                _start = _end;
                _droppingRest = !_eof;
                return true;
            }

            line = pending[..newline];
            _start += newline + 1;
            if (_droppingRest)
            {
                _droppingRest = false;
                continue; // the tail of a line handed out cut
            }

            return true;
        }
    }

    /// <summary>The next complete line decoded to UTF-16 in a reused buffer (strace's output is ASCII with escapes).</summary>
    public bool TryReadLine(out ReadOnlySpan<char> line)
    {
        if (!TryReadLine(out ReadOnlySpan<byte> bytes))
        {
            line = default;
            return false;
        }

        if (_chars.Length < bytes.Length)
        {
            ArrayPool<char>.Shared.Return(_chars);
            _chars = ArrayPool<char>.Shared.Rent(bytes.Length);
        }

        var n = Encoding.UTF8.GetChars(bytes, _chars);
        line = _chars.AsSpan(0, n);
        return true;
    }

    public void Dispose()
    {
        ArrayPool<byte>.Shared.Return(_buffer);
        ArrayPool<char>.Shared.Return(_chars);
        _buffer = [];
        _chars = [];
    }
}
