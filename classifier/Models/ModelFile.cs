using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using TorchSharp;

namespace FaaSMon.Classifier.Models;

/// <summary>What every model file header says about the weights that follow it.</summary>
internal interface IModelFileHeader
{
    string WeightsSha256 { get; }

    long WeightsLength { get; }
}

/// <summary>
/// The model file format of both kinds of model (provenance GNNs and network models): a magic line naming the kind, a
/// JSON header line, then the TorchSharp weights, which the header's length and SHA-256 check. Every way a file can be
/// wrong is a <see cref="ModelFileException"/> that says which.
/// </summary>
internal static class ModelFile
{
    private static readonly JsonSerializerOptions HeaderJson = new(JsonSerializerDefaults.Web)
    {
        Converters = { new System.Text.Json.Serialization.JsonStringEnumConverter() },
    };

    /// <param name="header">The header for weights of that SHA-256 and length.</param>
    public static void Write<THeader>(string path, string magic, torch.nn.Module net, Func<string, long, THeader> header)
        where THeader : IModelFileHeader
    {
        using var weights = new MemoryStream();
        net.save(weights);
        var bytes = weights.ToArray();
        using var file = File.Create(path);
        file.Write(Encoding.UTF8.GetBytes($"{magic}\n{JsonSerializer.Serialize(header(Convert.ToHexString(SHA256.HashData(bytes)), bytes.Length), HeaderJson)}\n"));
        file.Write(bytes);
    }

    /// <summary>The header and where the weights start; check the header's layout, then <see cref="Weights"/>.</summary>
    /// <param name="notThisKind">The message for a file without <paramref name="magic"/>.</param>
    public static (THeader Header, byte[] Content, int WeightsStart) Read<THeader>(string path, string magic, string notThisKind)
        where THeader : IModelFileHeader
    {
        byte[] content;
        try
        {
            content = File.ReadAllBytes(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelFileException(path, e.Message, e);
        }

        var firstNewline = Array.IndexOf(content, (byte)'\n');
        var secondNewline = firstNewline < 0 ? -1 : Array.IndexOf(content, (byte)'\n', firstNewline + 1);
        if (secondNewline < 0 || Encoding.UTF8.GetString(content, 0, firstNewline) != magic)
        {
            throw new ModelFileException(path, notThisKind);
        }

        try
        {
            var header = JsonSerializer.Deserialize<THeader>(content.AsSpan(firstNewline + 1, secondNewline - firstNewline - 1), HeaderJson)
                ?? throw new ModelFileException(path, "empty header");
            return (header, content, secondNewline + 1);
        }
        catch (JsonException e)
        {
            throw new ModelFileException(path, $"unreadable header: {e.Message}", e);
        }
    }

    /// <summary>The weights, once their length and checksum match the header.</summary>
    public static MemoryStream Weights(string path, IModelFileHeader header, byte[] content, int weightsStart)
    {
        var weights = content.AsSpan(weightsStart);
        if (weights.Length != header.WeightsLength || Convert.ToHexString(SHA256.HashData(weights)) != header.WeightsSha256)
        {
            throw new ModelFileException(path, $"weights are corrupt or truncated ({weights.Length} of {header.WeightsLength} bytes, checksum mismatch)");
        }

        return new MemoryStream(content, weightsStart, weights.Length, writable: false);
    }
}
