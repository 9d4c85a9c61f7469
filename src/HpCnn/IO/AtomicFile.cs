using System.Runtime.InteropServices;

namespace HpCnn.IO;

/// <summary>
/// Writes a file so that a crash at any moment leaves either the old file or the whole new one: the bytes go to a
/// temporary file in the same folder, which is flushed to the disk, renamed over the target, and then the folder
/// itself is flushed (the rename is only durable once the directory entry is).
/// </summary>
public static class AtomicFile
{
    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);

    [DllImport("libc", EntryPoint = "fsync", SetLastError = true)]
    private static extern int Fsync(int fd);

    [DllImport("libc", EntryPoint = "close")]
    private static extern int Close(int fd);

    /// <summary>Writes <paramref name="bytes"/> to <paramref name="path"/> atomically and durably.</summary>
    public static void Write(string path, ReadOnlySpan<byte> bytes)
    {
        string full = Path.GetFullPath(path);
        string dir = Path.GetDirectoryName(full) ?? ".";
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"cannot write {path}: folder {dir} does not exist");
        string tmp = Path.Combine(dir, "." + Path.GetFileName(full) + ".tmp-" + Environment.ProcessId);
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None))
            {
                fs.Write(bytes);
                fs.Flush(flushToDisk: true);
            }
            File.Move(tmp, full, overwrite: true);
        }
        finally
        {
            if (File.Exists(tmp)) File.Delete(tmp);
        }
        FlushDirectory(dir);
    }

    /// <summary>Flushes a folder's entries (renames, deletions) to the disk. Best effort: a no-op where it cannot be done.</summary>
    public static void FlushDirectory(string dir)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) return; // Windows: MoveFileEx is durable enough
        try
        {
            int fd = Open(dir, 0); // O_RDONLY
            if (fd < 0) return;
            try { Fsync(fd); }
            finally { Close(fd); }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
    }
}
