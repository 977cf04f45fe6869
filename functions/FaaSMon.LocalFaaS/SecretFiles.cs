using System.Security.Cryptography;

namespace FaaSMon.LocalFaaS;

/// <summary>
/// Secrets kept as files, as OpenFaaS keeps them (<c>basic-auth-user</c>, <c>basic-auth-password</c>,
/// function secrets): created with a random value on first use, readable by root only.
/// </summary>
internal sealed class SecretFiles
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    public SecretFiles(string directory)
    {
        Directory = directory;
        System.IO.Directory.CreateDirectory(directory);
        File.SetUnixFileMode(directory, OwnerOnly | UnixFileMode.UserExecute);
    }

    public string Directory { get; }

    public string GetOrCreate(string name, Func<string>? generate = null)
    {
        var path = Path.Combine(Directory, name);
        if (File.Exists(path))
        {
            var existing = File.ReadAllText(path).Trim();
            if (existing.Length > 0)
            {
                return existing;
            }
        }

        var value = generate?.Invoke() ?? RandomToken();
        File.WriteAllText(path, value);
        File.SetUnixFileMode(path, OwnerOnly);
        return value;
    }

    public static string RandomToken(int bytes = 24) =>
        Convert.ToHexString(RandomNumberGenerator.GetBytes(bytes)).ToLowerInvariant();
}
