using System.Text;

namespace FaaSMon.Tracer.Tests;

public sealed class Utf8LineReaderTests
{
    /// <summary>A stream that hands out at most a few bytes per read, as a pipe does when the writer is slow.</summary>
    private sealed class TrickleStream(byte[] data, int chunk) : MemoryStream(data, writable: false)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            base.ReadAsync(buffer[..Math.Min(chunk, buffer.Length)], cancellationToken);
    }

    private static async Task<List<string>> ReadAllAsync(Stream stream, int bufferBytes)
    {
        using var reader = new Utf8LineReader(stream, bufferBytes);
        var lines = new List<string>();
        while (await reader.FillAsync())
        {
            Drain(reader, lines);
        }

        return lines;
    }

    private static void Drain(Utf8LineReader reader, List<string> lines)
    {
        while (reader.TryReadLine(out ReadOnlySpan<char> line))
        {
            lines.Add(new string(line));
        }
    }

    [Theory]
    [InlineData(1, 16)]
    [InlineData(7, 16)]
    [InlineData(4096, 16)]
    [InlineData(4096, 65536)]
    public async Task Lines_come_out_whole_whatever_the_pipe_hands_over_per_read(int chunk, int bufferBytes)
    {
        // lines longer than the buffer, an empty line, non-ASCII, and a last line without its newline
        string[] expected = ["19216 1795391117.089128 --- SIGCHLD ---", new string('x', 300), "", "Grüße \u00e9", "tail without newline"];
        var data = Encoding.UTF8.GetBytes(string.Join('\n', expected));
        Assert.Equal(expected, await ReadAllAsync(new TrickleStream(data, chunk), bufferBytes));
    }

    [Fact]
    public async Task A_line_longer_than_the_limit_is_handed_out_cut_and_the_next_line_is_intact()
    {
        var data = Encoding.ASCII.GetBytes(new string('a', Utf8LineReader.MaxLineBytes + 5000) + "\nnext\n");
        var lines = await ReadAllAsync(new TrickleStream(data, 100_000), 64 * 1024);
        Assert.Equal(2, lines.Count);
        Assert.Equal(Utf8LineReader.MaxLineBytes, lines[0].Length);
        Assert.Equal("next", lines[1]);
    }
}
