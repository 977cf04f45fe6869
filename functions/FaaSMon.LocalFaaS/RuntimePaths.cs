namespace FaaSMon.LocalFaaS;

/// <summary>Where a LocalFaaS keeps its state, and who its functions run as.</summary>
internal sealed class RuntimePaths
{
    /// <summary>Where OpenFaaS mounts function secrets; the same path inside our containers.</summary>
    public const string SecretMountPath = "/var/openfaas/secrets";

    private const UnixFileMode Traversable =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    public RuntimePaths(string stateDirectory, string fnbox)
    {
        Root = Path.GetFullPath(stateDirectory);
        // Every instance gets a fresh tmpfs on /tmp, which would hide anything of ours kept there.
        if (Root == "/tmp" || Root.StartsWith("/tmp/", StringComparison.Ordinal))
        {
            throw new ArgumentException($"the state directory must not be under /tmp (function containers mount their own /tmp): {Root}");
        }

        Fnbox = fnbox;
        FunctionUser = Unix.LookupUser("nobody") ?? (65534, 65534);
        foreach (var dir in new[] { Root, Instances, FunctionSecrets, Path.GetDirectoryName(PhotosVolume)!, PhotosVolume })
        {
            Directory.CreateDirectory(dir);
            File.SetUnixFileMode(dir, Traversable);
        }

        Unix.Chown(PhotosVolume, FunctionUser.Uid, FunctionUser.Gid);
        Directory.CreateDirectory(SecretMountPath);
    }

    public string Root { get; }

    public string Fnbox { get; }

    public (int Uid, int Gid) FunctionUser { get; }

    public string Instances => Path.Combine(Root, "instances");

    public string PhotosVolume => Path.Combine(Root, "volumes", "photos");

    /// <summary>Per-function copies of the secrets it lists, bind-mounted read-only at <see cref="SecretMountPath"/>.</summary>
    public string FunctionSecrets => Path.Combine(Root, "function-secrets");

    public string PlatformSecrets => Path.Combine(Root, "secrets");

    public string Store => Path.Combine(Root, "store");
}
