using System.Text.RegularExpressions;

namespace FaaSMon.Tracer;

/// <summary>Which function and instance a process belongs to, and how we know.</summary>
/// <param name="Source"><c>localfaas</c>, <c>faasd</c>, <c>docker</c> or <c>unknown</c>.</param>
internal sealed record FunctionIdentity(string Function, string Instance, string Source, string? ContainerId = null)
{
    public static readonly FunctionIdentity Unknown = new("", "", "unknown");
}

/// <summary>Reads the function out of <c>/proc/PID/cgroup</c> text, for every runtime FaaSMon knows.</summary>
internal static partial class CgroupIdentity
{
    /// <summary>The cgroup path that names a LocalFaaS instance: <c>…/faasmon/&lt;function&gt;/&lt;instance&gt;</c>.</summary>
    public const string LocalFaasSegment = "faasmon";

    /// <summary>LocalFaaS and faasd identities straight from the cgroup paths; a Docker container id when that is all there is.</summary>
    public static (FunctionIdentity? Identity, string? ContainerId) Parse(string procCgroup)
    {
        string? containerId = null;
        foreach (var line in procCgroup.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var fields = line.Split(':', 3);
            if (fields.Length != 3)
            {
                continue;
            }

            var parts = fields[2].Split('/', StringSplitOptions.RemoveEmptyEntries);
            var at = Array.LastIndexOf(parts, LocalFaasSegment);
            if (at >= 0 && at + 2 < parts.Length)
            {
                return (new FunctionIdentity(parts[at + 1], parts[at + 2], "localfaas"), null);
            }

            // faasd runs functions in containerd's namespace openfaas-fn, cgroup "/openfaas-fn/<name>", container id = name
            var fn = Array.IndexOf(parts, "openfaas-fn");
            if (fn >= 0 && fn + 1 < parts.Length)
            {
                var name = parts[fn + 1];
                return (new FunctionIdentity(name, name, "faasd", name), null);
            }

            if (containerId is null && ContainerIdPattern().Match(fields[2]) is { Success: true } m)
            {
                containerId = m.Groups["id"].Value;
            }
        }

        return (null, containerId);
    }

    // "/docker/<id>", "/system.slice/docker-<id>.scope", "/kubepods/.../cri-containerd-<id>.scope": the 64-hex container id
    [GeneratedRegex(@"(?:^|[/-])(?<id>[0-9a-f]{64})(?:\.scope)?$")]
    private static partial Regex ContainerIdPattern();
}
