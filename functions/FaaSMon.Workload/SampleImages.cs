using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace FaaSMon.Workload;

/// <summary>
/// Small but real PNG and baseline JPEG files, drawn in code so benign photo uploads carry genuine image bytes of varied
/// size and content without shipping binaries. The picture is a seeded gradient with a round "product" in the middle.
/// </summary>
internal static class SampleImages
{
    public static byte[] Png(int width, int height, int seed) => EncodePng(width, height, Draw(width, height, seed));

    /// <summary>A JPEG; width and height are rounded up to multiples of 8 (one flat colour per 8×8 block).</summary>
    public static byte[] Jpeg(int width, int height, int seed)
    {
        width = RoundUpTo8(width);
        height = RoundUpTo8(height);
        return EncodeJpeg(width, height, Draw(width, height, seed));
    }

    /// <summary>A stable seed from a file name, so the same URL always serves the same picture.</summary>
    public static int SeedFrom(string name)
    {
        var hash = 2166136261u; // FNV-1a: string.GetHashCode is randomised per process.
        foreach (var b in Encoding.UTF8.GetBytes(name))
        {
            hash = (hash ^ b) * 16777619u;
        }

        return (int)(hash & 0x7fffffff);
    }

    private static int RoundUpTo8(int value) => Math.Max(8, (value + 7) / 8 * 8);

    private static byte[] Draw(int width, int height, int seed)
    {
        var random = new Random(seed);
        var background = (R: random.Next(256), G: random.Next(256), B: random.Next(256));
        var shade = (R: random.Next(256), G: random.Next(256), B: random.Next(256));
        var subject = (R: random.Next(256), G: random.Next(256), B: random.Next(256));
        var radius = Math.Min(width, height) * (0.2 + (random.NextDouble() * 0.2));
        var rgb = new byte[width * height * 3];
        for (var y = 0; y < height; y++)
        {
            for (var x = 0; x < width; x++)
            {
                var t = (x + y) / (double)Math.Max(1, width + height - 2);
                var dx = x - (width / 2.0);
                var dy = y - (height / 2.0);
                var inside = (dx * dx) + (dy * dy) <= radius * radius;
                var i = ((y * width) + x) * 3;
                rgb[i] = (byte)(inside ? subject.R : Lerp(background.R, shade.R, t));
                rgb[i + 1] = (byte)(inside ? subject.G : Lerp(background.G, shade.G, t));
                rgb[i + 2] = (byte)(inside ? subject.B : Lerp(background.B, shade.B, t));
            }
        }

        return rgb;
    }

    private static int Lerp(int from, int to, double t) => (int)Math.Round(from + ((to - from) * t));

    private static byte[] EncodePng(int width, int height, byte[] rgb)
    {
        using var output = new MemoryStream();
        output.Write([0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A]);

        var header = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(header, width);
        BinaryPrimitives.WriteInt32BigEndian(header.AsSpan(4), height);
        header[8] = 8; // bit depth
        header[9] = 2; // truecolour RGB; compression, filter and interlace stay 0
        WritePngChunk(output, "IHDR", header);

        using var compressed = new MemoryStream();
        using (var zlib = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
        {
            for (var y = 0; y < height; y++)
            {
                zlib.WriteByte(0); // filter: none
                zlib.Write(rgb, y * width * 3, width * 3);
            }
        }

        WritePngChunk(output, "IDAT", compressed.ToArray());
        WritePngChunk(output, "IEND", []);
        return output.ToArray();
    }

    private static void WritePngChunk(Stream output, string type, byte[] data)
    {
        Span<byte> buffer = stackalloc byte[4];
        BinaryPrimitives.WriteInt32BigEndian(buffer, data.Length);
        output.Write(buffer);
        var typeBytes = Encoding.ASCII.GetBytes(type);
        output.Write(typeBytes);
        output.Write(data);
        var crc = Crc32.Update(Crc32.Update(0xFFFFFFFFu, typeBytes), data) ^ 0xFFFFFFFFu;
        BinaryPrimitives.WriteUInt32BigEndian(buffer, crc);
        output.Write(buffer);
    }

    /// <summary>
    /// Baseline sequential JPEG, 4:4:4, DC-only: every 8×8 block is one flat colour (the block's mean). Quantisation is 8
    /// everywhere so a quantised DC is simply the level-shifted mean; one tiny Huffman table per class (DC categories 0–11
    /// as 4-bit codes, AC only end-of-block as a 1-bit code) keeps the encoder short while staying standard.
    /// </summary>
    private static byte[] EncodeJpeg(int width, int height, byte[] rgb)
    {
        using var output = new MemoryStream();
        void Marker(byte code, ReadOnlySpan<byte> payload)
        {
            output.WriteByte(0xFF);
            output.WriteByte(code);
            output.WriteByte((byte)((payload.Length + 2) >> 8));
            output.WriteByte((byte)(payload.Length + 2));
            output.Write(payload);
        }

        output.Write([0xFF, 0xD8]); // SOI
        Marker(0xE0, "JFIF\0"u8.ToArray().Concat(new byte[] { 1, 1, 0, 0, 1, 0, 1, 0, 0 }).ToArray());

        var quantisation = new byte[65];
        Array.Fill(quantisation, (byte)8, 1, 64);
        Marker(0xDB, quantisation);

        Marker(0xC0, [8, (byte)(height >> 8), (byte)height, (byte)(width >> 8), (byte)width, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);

        var huffman = new List<byte> { 0x00 }; // DC table 0
        var dcCounts = new byte[16];
        dcCounts[3] = 12;
        huffman.AddRange(dcCounts);
        huffman.AddRange(Enumerable.Range(0, 12).Select(i => (byte)i));
        huffman.Add(0x10); // AC table 0
        var acCounts = new byte[16];
        acCounts[0] = 1;
        huffman.AddRange(acCounts);
        huffman.Add(0x00); // EOB
        Marker(0xC4, huffman.ToArray());

        Marker(0xDA, [3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0]);

        var bits = new JpegBitWriter(output);
        Span<int> previousDc = stackalloc int[3];
        Span<double> sums = stackalloc double[3];
        Span<double> ycc = stackalloc double[3];
        for (var blockY = 0; blockY < height; blockY += 8)
        {
            for (var blockX = 0; blockX < width; blockX += 8)
            {
                sums.Clear();
                for (var y = blockY; y < blockY + 8; y++)
                {
                    for (var x = blockX; x < blockX + 8; x++)
                    {
                        var i = ((y * width) + x) * 3;
                        sums[0] += rgb[i];
                        sums[1] += rgb[i + 1];
                        sums[2] += rgb[i + 2];
                    }
                }

                var (r, g, b) = (sums[0] / 64, sums[1] / 64, sums[2] / 64);
                ycc[0] = (0.299 * r) + (0.587 * g) + (0.114 * b);
                ycc[1] = 128 - (0.168736 * r) - (0.331264 * g) + (0.5 * b);
                ycc[2] = 128 + (0.5 * r) - (0.418688 * g) - (0.081312 * b);
                for (var component = 0; component < 3; component++)
                {
                    // FDCT of a flat block: DC = 8 × (value − 128); divided by the quantiser 8.
                    var dc = Math.Clamp((int)Math.Round(ycc[component]), 0, 255) - 128;
                    var diff = dc - previousDc[component];
                    previousDc[component] = dc;
                    var category = diff == 0 ? 0 : 32 - int.LeadingZeroCount(Math.Abs(diff));
                    bits.Write(category, 4);
                    if (category > 0)
                    {
                        bits.Write(diff > 0 ? diff : diff + (1 << category) - 1, category);
                    }

                    bits.Write(0, 1); // end of block: every AC coefficient is zero
                }
            }
        }

        bits.Flush();
        output.Write([0xFF, 0xD9]); // EOI
        return output.ToArray();
    }

    private sealed class JpegBitWriter(Stream output)
    {
        private int buffer;
        private int count;

        public void Write(int value, int length)
        {
            for (var bit = length - 1; bit >= 0; bit--)
            {
                buffer = (buffer << 1) | ((value >> bit) & 1);
                if (++count == 8)
                {
                    EmitByte();
                }
            }
        }

        /// <summary>Pads the last byte with 1 bits, as the standard asks.</summary>
        public void Flush()
        {
            while (count != 0)
            {
                Write(1, 1);
            }
        }

        private void EmitByte()
        {
            output.WriteByte((byte)buffer);
            if ((byte)buffer == 0xFF)
            {
                output.WriteByte(0x00); // byte stuffing, so entropy data never looks like a marker
            }

            buffer = 0;
            count = 0;
        }
    }

    private static class Crc32
    {
        private static readonly uint[] Table = BuildTable();

        public static uint Update(uint crc, ReadOnlySpan<byte> data)
        {
            foreach (var b in data)
            {
                crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
            }

            return crc;
        }

        private static uint[] BuildTable()
        {
            var table = new uint[256];
            for (var n = 0u; n < 256; n++)
            {
                var c = n;
                for (var k = 0; k < 8; k++)
                {
                    c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
                }

                table[n] = c;
            }

            return table;
        }
    }
}
