// Compiled twice: into FaaSMon.Classifier (the runtime check and the tests) and, by RoslynCodeTaskFactory, into the
// MSBuild tasks of TorchSharpOnDebian.targets, which see no implicit usings and no FaaSMon.Classifier symbols.
#if !FAASMON_CLASSIFIER
#nullable enable
using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
#endif
using System.Text;

namespace FaaSMon.Classifier.Native;

/// <summary>One symbol-version requirement (a Vernaux entry of .gnu.version_r) of an ELF file.</summary>
/// <remarks>A class, not a record: the MSBuild task compiles this file for netstandard2.0, which lacks init accessors.</remarks>
internal sealed class ElfVersionNeed(string library, string version, ushort flags, long flagsOffset)
{
    /// <summary>VER_FLG_WEAK: the loader does not refuse the file when the version is missing.</summary>
    public const ushort WeakFlag = 2;

    public string Library { get; } = library;

    public string Version { get; } = version;

    public ushort Flags { get; } = flags;

    /// <summary>File offset of vna_flags.</summary>
    public long FlagsOffset { get; } = flagsOffset;

    public bool IsWeak => (Flags & WeakFlag) != 0;
}

/// <summary>Reads the GNU symbol-versioning sections of 64-bit little-endian ELF files, without the binutils.</summary>
internal static class ElfVersions
{
    private const uint SectionVerdef = 0x6ffffffd;
    private const uint SectionVerneed = 0x6ffffffe;

    /// <summary>The version requirements of <paramref name="path"/> (.gnu.version_r).</summary>
    public static IReadOnlyList<ElfVersionNeed> ReadNeeds(string path)
    {
        var elf = File.ReadAllBytes(path);
        var needs = new List<ElfVersionNeed>();
        foreach (var (offset, size, strtab) in Sections(elf, path, SectionVerneed))
        {
            long entry = offset;
            while (entry < offset + size)
            {
                var count = U16(elf, entry + 2);
                var library = CString(elf, strtab + U32(elf, entry + 4));
                long aux = entry + U32(elf, entry + 8);
                for (var i = 0; i < count; i++)
                {
                    needs.Add(new ElfVersionNeed(library, CString(elf, strtab + U32(elf, aux + 8)), U16(elf, aux + 4), aux + 4));
                    aux += U32(elf, aux + 12);
                }

                var next = U32(elf, entry + 12);
                if (next == 0)
                {
                    break;
                }

                entry += next;
            }
        }

        return needs;
    }

    /// <summary>The versions <paramref name="path"/> defines (.gnu.version_d), e.g. GLIBCXX_3.4.30 for libstdc++.</summary>
    public static IReadOnlyList<string> ReadDefinitions(string path)
    {
        var elf = File.ReadAllBytes(path);
        var definitions = new List<string>();
        foreach (var (offset, size, strtab) in Sections(elf, path, SectionVerdef))
        {
            long entry = offset;
            while (entry < offset + size)
            {
                if (U16(elf, entry + 6) > 0)
                {
                    definitions.Add(CString(elf, strtab + U32(elf, entry + U32(elf, entry + 12))));
                }

                var next = U32(elf, entry + 16);
                if (next == 0)
                {
                    break;
                }

                entry += next;
            }
        }

        return definitions;
    }

    /// <summary>
    /// Marks the requirement of <paramref name="version"/> weak. Writes a new file and renames it over the old one,
    /// so a hard link into the NuGet cache is never modified. Returns whether the file changed (false: already weak or no such need).
    /// </summary>
    public static bool MarkNeedWeak(string path, string version)
    {
        var changed = false;
        var elf = File.ReadAllBytes(path);
        foreach (var need in ReadNeeds(path))
        {
            if (need.Version == version && !need.IsWeak)
            {
                var flags = (ushort)(need.Flags | ElfVersionNeed.WeakFlag);
                elf[need.FlagsOffset] = (byte)flags;
                elf[need.FlagsOffset + 1] = (byte)(flags >> 8);
                changed = true;
            }
        }

        if (changed)
        {
            var temporary = path + ".faasmon-patch";
            File.WriteAllBytes(temporary, elf);
            // Keep the time stamp, so the build's copy step (same size, same time) does not copy the original over it again.
            File.SetLastWriteTimeUtc(temporary, File.GetLastWriteTimeUtc(path));
            // Delete then move (netstandard2.0 has no overwriting move): the old inode, maybe shared with the cache, stays intact.
            File.Delete(path);
            File.Move(temporary, path);
        }

        return changed;
    }

    /// <summary>The file the dynamic loader would pick for <paramref name="soname"/> in the usual system folders, or null.</summary>
    public static string? FindSystemLibrary(string soname)
    {
        string[] folders =
        [
            "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
            "/lib64", "/usr/lib64", "/lib", "/usr/lib",
        ];
        foreach (var folder in folders)
        {
            var candidate = Path.Combine(folder, soname);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static List<(long Offset, long Size, long StringTable)> Sections(byte[] elf, string path, uint type)
    {
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
        {
            throw new InvalidDataException($"{path} is not an ELF file");
        }

        if (elf[4] != 2 || elf[5] != 1)
        {
            throw new InvalidDataException($"{path} is not a 64-bit little-endian ELF file");
        }

        long sectionHeaders = (long)U64(elf, 0x28);
        int entrySize = U16(elf, 0x3a);
        int count = U16(elf, 0x3c);
        var found = new List<(long, long, long)>();
        for (var i = 0; i < count; i++)
        {
            long header = sectionHeaders + ((long)i * entrySize);
            if (U32(elf, header + 4) != type)
            {
                continue;
            }

            long link = sectionHeaders + ((long)U32(elf, header + 40) * entrySize);
            found.Add(((long)U64(elf, header + 24), (long)U64(elf, header + 32), (long)U64(elf, link + 24)));
        }

        return found;
    }

    private static ushort U16(byte[] b, long at) => (ushort)(b[at] | (b[at + 1] << 8));

    private static uint U32(byte[] b, long at) => (uint)(U16(b, at) | (U16(b, at + 2) << 16));

    private static ulong U64(byte[] b, long at) => U32(b, at) | ((ulong)U32(b, at + 4) << 32);

    private static string CString(byte[] b, long at)
    {
        var end = at;
        while (end < b.Length && b[end] != 0)
        {
            end++;
        }

        return Encoding.ASCII.GetString(b, (int)at, (int)(end - at));
    }
}

#if !FAASMON_CLASSIFIER
/// <summary>MSBuild task: mark a symbol-version requirement weak in each file.</summary>
public sealed class MarkElfVersionNeedWeak : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required]
    public Microsoft.Build.Framework.ITaskItem[] Files { get; set; } = Array.Empty<Microsoft.Build.Framework.ITaskItem>();

    [Microsoft.Build.Framework.Required]
    public string Version { get; set; } = "";

    public override bool Execute()
    {
        foreach (var file in Files)
        {
            if (ElfVersions.MarkNeedWeak(file.ItemSpec, Version))
            {
                Log.LogMessage(Microsoft.Build.Framework.MessageImportance.High, $"FaaSMon: marked {Version} weak in {file.ItemSpec}");
            }
        }

        return !Log.HasLoggedErrors;
    }
}

/// <summary>MSBuild task: whether the system copy of a library defines a symbol version.</summary>
public sealed class SystemLibraryDefinesVersion : Microsoft.Build.Utilities.Task
{
    [Microsoft.Build.Framework.Required]
    public string Library { get; set; } = "";

    [Microsoft.Build.Framework.Required]
    public string Version { get; set; } = "";

    [Microsoft.Build.Framework.Output]
    public bool Defines { get; set; }

    [Microsoft.Build.Framework.Output]
    public string LibraryPath { get; set; } = "";

    public override bool Execute()
    {
        LibraryPath = ElfVersions.FindSystemLibrary(Library) ?? "";
        // No system copy at all: nothing the shim could fix, leave the files as they are.
        Defines = LibraryPath.Length == 0 || ElfVersions.ReadDefinitions(LibraryPath).Contains(Version);
        return true;
    }
}
#endif
