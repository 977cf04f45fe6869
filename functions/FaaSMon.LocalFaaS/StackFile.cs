using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace FaaSMon.LocalFaaS;

/// <summary>The parts of a faas-cli <c>stack.yml</c> (go-sdk <c>stack/schema.go</c>) that a local deployment needs.</summary>
internal sealed class StackFile
{
    public string Version { get; set; } = "1.0";

    public StackProvider Provider { get; set; } = new();

    public Dictionary<string, StackFunction> Functions { get; set; } = [];

    /// <summary>The folder the stack file is in; handlers and templates are relative to it.</summary>
    [YamlIgnore]
    public string Directory { get; private set; } = "";

    public static StackFile Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"stack file not found: {path}", path);
        }

        var deserializer = new DeserializerBuilder()
            .WithNamingConvention(UnderscoredNamingConvention.Instance)
            .IgnoreUnmatchedProperties()
            .Build();
        StackFile stack;
        try
        {
            stack = deserializer.Deserialize<StackFile>(File.ReadAllText(path)) ?? new StackFile();
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new InvalidDataException($"{path}: {e.Message}", e);
        }

        stack.Directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        if (stack.Provider.Name != "openfaas")
        {
            throw new InvalidDataException($"{path}: provider.name must be 'openfaas', not '{stack.Provider.Name}'");
        }

        foreach (var (name, function) in stack.Functions)
        {
            if (!FunctionName.IsValid(name))
            {
                throw new InvalidDataException($"{path}: invalid function name '{FunctionName.Describe(name)}'");
            }

            if (string.IsNullOrWhiteSpace(function.Handler) || string.IsNullOrWhiteSpace(function.Lang))
            {
                throw new InvalidDataException($"{path}: function {name} needs lang and handler");
            }
        }

        return stack;
    }

    public string HandlerDirectory(StackFunction function) => Path.GetFullPath(Path.Combine(Directory, function.Handler));

    public string TemplateDirectory(StackFunction function) => Path.GetFullPath(Path.Combine(Directory, "template", function.Lang));
}

internal sealed class StackProvider
{
    public string Name { get; set; } = "openfaas";

    public string? Gateway { get; set; }
}

internal sealed class StackFunction
{
    public string Lang { get; set; } = "";

    public string Handler { get; set; } = "";

    public string Image { get; set; } = "";

    public string? Fprocess { get; set; }

    public Dictionary<string, string> Environment { get; set; } = [];

    public List<string> Secrets { get; set; } = [];

    public Dictionary<string, string> Labels { get; set; } = [];

    public Dictionary<string, string> Annotations { get; set; } = [];

    public StackLimits? Limits { get; set; }
}

internal sealed class StackLimits
{
    public string? Memory { get; set; }

    public string? Cpu { get; set; }
}
