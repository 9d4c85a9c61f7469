using System.Runtime.InteropServices;

namespace HpCnn.Distributed;

/// <summary>
/// The processes of an <c>mpirun</c> launch (Open MPI 4.x, <c>libmpi.so.40</c>), reached through the handful of MPI calls
/// data-parallel training needs. Bound at run time with <see cref="NativeLibrary"/> so that the engine loads and runs where
/// no MPI is installed (MPI.NET, the one .NET binding on NuGet, binds Windows' msmpi.dll and its integer handles). Open MPI's
/// handles are the addresses of its exported objects (<c>ompi_mpi_comm_world</c>, <c>ompi_mpi_byte</c>).
/// </summary>
public static unsafe class Mpi
{
    private const int ThreadSerialized = 2; // MPI_THREAD_SERIALIZED: one thread at a time calls MPI (the fit's)
    private static readonly void* InPlace = (void*)1; // MPI_IN_PLACE in Open MPI's mpi.h
    private static readonly object Gate = new();
    private static OpenMpiWorld? _world;
    private static bool _finalized;

    /// <summary>
    /// True when this process was started by <c>mpirun</c> (or <c>mpiexec</c>) with more than one process, from the
    /// environment Open MPI gives its processes; MPI itself is not touched.
    /// </summary>
    public static bool Launched => EnvInt("OMPI_COMM_WORLD_SIZE") > 1 || EnvInt("PMI_SIZE") > 1;

    /// <summary>This process's rank in the launch (0 outside one), without starting MPI.</summary>
    public static int Rank => _world?.Rank ?? Math.Max(0, EnvInt("OMPI_COMM_WORLD_RANK") is var r && r >= 0 ? r : EnvInt("PMI_RANK"));

    /// <summary>
    /// Processes of the launch on this machine (1 outside one; Open MPI's OMPI_COMM_WORLD_LOCAL_SIZE): they share its cores,
    /// so each gets its share as its default thread count and none pins threads (<see cref="Engine.Threads"/>).
    /// </summary>
    public static int LocalRanks => Math.Max(1, EnvInt("OMPI_COMM_WORLD_LOCAL_SIZE"));

    /// <summary>Processes in the launch (1 outside one), without starting MPI.</summary>
    public static int Size => _world?.Size ?? Math.Max(1, Math.Max(EnvInt("OMPI_COMM_WORLD_SIZE"), EnvInt("PMI_SIZE")));

    /// <summary>True once MPI was started by this process (and not yet finalized).</summary>
    public static bool Initialized => _world is not null && !_finalized;

    private static int EnvInt(string name) => int.TryParse(Environment.GetEnvironmentVariable(name), out int v) ? v : -1;

    /// <summary>
    /// MPI_COMM_WORLD: starts MPI on first use (and finalizes it when the process exits; a host that exits otherwise calls
    /// <see cref="Shutdown"/>). Throws with what to install when Open MPI's library cannot be loaded.
    /// </summary>
    public static ICommunicator World
    {
        get
        {
            lock (Gate)
            {
                if (_finalized) throw new InvalidOperationException("MPI was finalized in this process: a distributed fit cannot run after Mpi.Shutdown()");
                return _world ??= OpenMpiWorld.Start();
            }
        }
    }

    /// <summary>Ends MPI in this process (MPI_Finalize) if it started it; call once, after the last distributed fit.</summary>
    public static void Shutdown()
    {
        lock (Gate)
        {
            if (_world is null || _finalized) return;
            _finalized = true;
            _world.Stop();
        }
    }

    private sealed class OpenMpiWorld : ICommunicator
    {
        private readonly delegate* unmanaged<void*, int, void*, void*, int*, int*, void*, void*, int> _allgatherv;
        private readonly delegate* unmanaged<void*, int, void*, int, void*, int> _bcast;
        private readonly delegate* unmanaged<void*, int, int> _abort;
        private readonly delegate* unmanaged<int> _finalize;
        private readonly delegate* unmanaged<int*, int> _finalized;
        private readonly void* _comm, _byte;

        private OpenMpiWorld(nint lib)
        {
            nint F(string name) => NativeLibrary.TryGetExport(lib, name, out var p) ? p
                : throw new DllNotFoundException($"distributed training: {name} not found in Open MPI's libmpi.so.40");
            _allgatherv = (delegate* unmanaged<void*, int, void*, void*, int*, int*, void*, void*, int>)F("MPI_Allgatherv");
            _bcast = (delegate* unmanaged<void*, int, void*, int, void*, int>)F("MPI_Bcast");
            _abort = (delegate* unmanaged<void*, int, int>)F("MPI_Abort");
            _finalize = (delegate* unmanaged<int>)F("MPI_Finalize");
            _finalized = (delegate* unmanaged<int*, int>)F("MPI_Finalized");
            _comm = (void*)F("ompi_mpi_comm_world");
            _byte = (void*)F("ompi_mpi_byte");
            var initialized = (delegate* unmanaged<int*, int>)F("MPI_Initialized");
            var init = (delegate* unmanaged<int*, byte***, int, int*, int>)F("MPI_Init_thread");
            var rank = (delegate* unmanaged<void*, int*, int>)F("MPI_Comm_rank");
            var size = (delegate* unmanaged<void*, int*, int>)F("MPI_Comm_size");
            int flag = 0, provided = 0, r = 0, n = 0;
            Check(initialized(&flag), "MPI_Initialized");
            // A host (mpi4py) may have started MPI already; then it also ends it.
            OwnsMpi = flag == 0;
            if (OwnsMpi) Check(init(null, null, ThreadSerialized, &provided), "MPI_Init_thread");
            Check(rank(_comm, &r), "MPI_Comm_rank");
            Check(size(_comm, &n), "MPI_Comm_size");
            Rank = r;
            Size = n;
        }

        public int Rank { get; }
        public int Size { get; }
        private bool OwnsMpi { get; }

        public static OpenMpiWorld Start()
        {
            // Open MPI loads its components with dlopen and they resolve symbols of libmpi: load it (and its libraries) global.
            nint lib = DlOpenGlobal("libmpi.so.40");
            if (lib == 0 && !NativeLibrary.TryLoad("libmpi.so.40", out lib))
                throw new DllNotFoundException("distributed training needs Open MPI 4 (libmpi.so.40), which is not installed here: " +
                    "install it (Debian/Ubuntu: apt-get install openmpi-bin libopenmpi-dev) and launch with mpirun -np N ...");
            var w = new OpenMpiWorld(lib);
            if (w.OwnsMpi) AppDomain.CurrentDomain.ProcessExit += (_, _) => Shutdown();
            return w;
        }

        private static nint DlOpenGlobal(string name)
        {
            if (!OperatingSystem.IsLinux()) return 0;
            try { return dlopen(name, RtldNow | RtldGlobal); }
            catch (DllNotFoundException) { return 0; }
            catch (EntryPointNotFoundException) { return 0; }
        }

        private const int RtldNow = 2, RtldGlobal = 0x100;

        [DllImport("libc.so.6", CharSet = CharSet.Ansi, BestFitMapping = false)]
        private static extern nint dlopen(string file, int mode);

        private static void Check(int code, string call)
        {
            if (code != 0) throw new InvalidOperationException($"distributed training: {call} failed with MPI error {code}");
        }

        public void AllGather(Span<byte> all, ReadOnlySpan<int> counts, ReadOnlySpan<int> offsets)
        {
            if (counts.Length != Size || offsets.Length != Size) throw new ArgumentException("one count and one offset per rank");
            fixed (byte* a = all)
            fixed (int* c = counts, o = offsets)
                Check(_allgatherv(InPlace, 0, _byte, a, c, o, _byte, _comm), "MPI_Allgatherv");
        }

        public void Broadcast(Span<byte> data, int root)
        {
            fixed (byte* d = data) Check(_bcast(d, data.Length, _byte, root, _comm), "MPI_Bcast");
        }

        public void Abort(string message, int exitCode)
        {
            Console.Error.WriteLine($"rank {Rank} of {Size}: {message}");
            Console.Error.Flush();
            _abort(_comm, exitCode);
            Environment.Exit(exitCode); // MPI_Abort does not return; if it did, this process still must not go on
        }

        public void Stop()
        {
            int done = 0;
            if (OwnsMpi && _finalized(&done) == 0 && done == 0) _finalize();
        }
    }
}
