using FaaSMon.Classifier.Native;
using TorchSharp;

namespace FaaSMon.Classifier.Tests;

public sealed class TorchOnDebianTests
{
    private const string Version = TorchRuntime.NeededVersion;

    private static string PackagedLibrary()
    {
        var root = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } packages
            ? packages
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        var path = Path.Combine(root, "torchsharp", "0.107.0", "runtimes", "linux-x64", "native", "libLibTorchSharp.so");
        Assert.True(File.Exists(path), $"TorchSharp's native library is not in the NuGet cache at {path}: restore first");
        return path;
    }

    private static bool SystemHasVersion() =>
        ElfVersions.ReadDefinitions(ElfVersions.FindSystemLibrary("libstdc++.so.6") ?? throw new InvalidOperationException("no system libstdc++.so.6")).Contains(Version);

    [Fact]
    public void Torch_loads_and_computes_here()
    {
        Assert.True(TorchRuntime.Status.Available, $"torch does not load on this machine: {TorchRuntime.Status.Reason}");
        using var a = torch.tensor(new float[] { 1, 2, 3, 4 }, [2, 2]);
        using var product = a.matmul(a);
        Assert.Equal(new float[] { 7, 10, 15, 22 }, product.data<float>().ToArray());
    }

    [Fact]
    public void Build_patched_the_output_copy_only_where_libstdcxx_lacks_the_version_and_never_the_cache()
    {
        var output = Directory.EnumerateFiles(AppContext.BaseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories).ToList();
        Assert.NotEmpty(output);
        var systemHasIt = SystemHasVersion();
        foreach (var copy in output)
        {
            var need = Assert.Single(ElfVersions.ReadNeeds(copy), n => n.Version == Version);
            Assert.Equal(!systemHasIt, need.IsWeak);
        }

        Assert.Equal(systemHasIt, !File.Exists(Path.Combine(AppContext.BaseDirectory, TorchRuntime.ShimFileName)));
        var cached = Assert.Single(ElfVersions.ReadNeeds(PackagedLibrary()), n => n.Version == Version);
        Assert.False(cached.IsWeak, "the NuGet cache copy was modified");
    }

    [Fact]
    public void Marking_weak_sets_only_the_flag_and_is_idempotent()
    {
        var directory = Directory.CreateTempSubdirectory("faasmon-elf-");
        try
        {
            var copy = Path.Combine(directory.FullName, "libLibTorchSharp.so");
            File.Copy(PackagedLibrary(), copy);
            var original = File.ReadAllBytes(copy);
            var before = ElfVersions.ReadNeeds(copy);
            Assert.Contains(before, n => n.Version == Version && n.Library == "libstdc++.so.6" && !n.IsWeak);

            Assert.True(ElfVersions.MarkNeedWeak(copy, Version));
            var once = File.ReadAllBytes(copy);
            Assert.False(ElfVersions.MarkNeedWeak(copy, Version));
            Assert.Equal(once, File.ReadAllBytes(copy));

            var after = ElfVersions.ReadNeeds(copy);
            var patched = Assert.Single(after, n => n.Version == Version);
            Assert.Equal(ElfVersionNeed.WeakFlag, patched.Flags & ElfVersionNeed.WeakFlag);
            // Every other requirement (GLIBC_*, other GLIBCXX_*) is untouched, and exactly one byte of the file changed.
            Assert.Equal(before.Where(n => n.Version != Version).Select(n => (n.Version, n.Flags)), after.Where(n => n.Version != Version).Select(n => (n.Version, n.Flags)));
            Assert.Single(Enumerable.Range(0, original.Length), i => original[i] != once[i]);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public void Debian_libstdcxx_is_read_without_binutils()
    {
        var definitions = ElfVersions.ReadDefinitions(ElfVersions.FindSystemLibrary("libstdc++.so.6")!);
        Assert.Contains("GLIBCXX_3.4", definitions);
        Assert.Contains(definitions, d => d.StartsWith("GLIBCXX_3.4.3", StringComparison.Ordinal));
    }

    [Fact]
    public void Not_an_elf_file_is_a_clear_error()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "not elf");
            var error = Assert.Throws<InvalidDataException>(() => ElfVersions.ReadNeeds(path));
            Assert.Contains("not an ELF file", error.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
