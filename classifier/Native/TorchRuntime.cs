using System.Runtime.InteropServices;
using TorchSharp;

namespace FaaSMon.Classifier.Native;

/// <summary>Torch could not be loaded on this machine; the reason says why and what to do. FaaSMon keeps running on rules.</summary>
internal sealed class TorchUnavailableException(string reason, Exception? inner = null)
    : Exception($"the classifier's models need TorchSharp, which cannot load here: {reason}", inner)
{
    public string Reason { get; } = reason;
}

/// <summary>Whether torch loaded, and why not.</summary>
internal sealed record TorchStatus(bool Available, string? Reason);

/// <summary>
/// Loads TorchSharp once per process. On Debian 12 the build leaves a shim next to the assemblies (TorchSharpOnDebian.targets)
/// that defines std::ios_base_library_init(); it must be loaded RTLD_GLOBAL before libLibTorchSharp.so so the loader
/// resolves that symbol from it (NativeLibrary.Load is RTLD_LOCAL, hence dlopen).
/// </summary>
internal static partial class TorchRuntime
{
    public const string ShimFileName = "libfaasmon_glibcxx_shim.so";
    public const string NeededVersion = "GLIBCXX_3.4.32";

    private const int RtldNow = 2;
    private const int RtldGlobal = 0x100;

    private static readonly Lazy<TorchStatus> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    public static TorchStatus Status => Loaded.Value;

    /// <exception cref="TorchUnavailableException">Torch cannot load here.</exception>
    public static void EnsureAvailable()
    {
        if (!Status.Available)
        {
            throw new TorchUnavailableException(Status.Reason ?? "unknown");
        }
    }

    private static TorchStatus Load()
    {
        var baseDirectory = AppContext.BaseDirectory;
        var shim = Path.Combine(baseDirectory, ShimFileName);
        var systemLacksVersion = SystemLacksNeededVersion(out var libstdcxx);
        if (systemLacksVersion)
        {
            if (!File.Exists(shim))
            {
                return new(false, $"{libstdcxx} lacks {NeededVersion} and {shim} was not built (install g++ and rebuild: see classifier/TorchSharpOnDebian.targets)");
            }

            if (Dlopen(shim, RtldNow | RtldGlobal) == IntPtr.Zero)
            {
                return new(false, $"cannot load {shim}: {Marshal.PtrToStringUTF8(Dlerror())}");
            }

            var unpatched = Directory.EnumerateFiles(baseDirectory, "libLibTorchSharp.so", SearchOption.AllDirectories)
                .FirstOrDefault(f => ElfVersions.ReadNeeds(f).Any(n => n.Version == NeededVersion && !n.IsWeak));
            if (unpatched is not null)
            {
                return new(false, $"{libstdcxx} lacks {NeededVersion} and {unpatched} still requires it: the build did not patch this copy (import classifier/TorchSharpOnDebian.targets in this project)");
            }
        }

        try
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            // Once, here: changing the thread count while another thread computes trips libtorch's checks. One thread by
            // default: graphs of ≤ 1k nodes gain little from intra-op threads, and on a busy 2-CPU machine (FaaSMon shares
            // it with the functions it watches) two threads measured 3-10× slower training and far worse p99 latency.
            torch.set_num_threads(ThreadCount());
            using var probe = torch.ones(2).sum();
            return probe.item<float>() == 2f ? new(true, null) : new(false, "torch loaded but computes wrong results");
        }
        catch (Exception e) when (e is NotSupportedException or DllNotFoundException or TypeInitializationException or EntryPointNotFoundException or ExternalException)
        {
            return new(false, e.Message + (e.InnerException is { } inner ? $" ({inner.Message})" : ""));
        }
    }

    private static int ThreadCount() =>
        int.TryParse(Environment.GetEnvironmentVariable("FAASMON_TORCH_THREADS"), out var threads) && threads > 0 ? threads : 1;

    private static bool SystemLacksNeededVersion(out string library)
    {
        library = ElfVersions.FindSystemLibrary("libstdc++.so.6") ?? "libstdc++.so.6";
        return File.Exists(library) && !ElfVersions.ReadDefinitions(library).Contains(NeededVersion);
    }

    [LibraryImport("libc.so.6", EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial IntPtr Dlopen(string file, int mode);

    [LibraryImport("libc.so.6", EntryPoint = "dlerror")]
    private static partial IntPtr Dlerror();
}
