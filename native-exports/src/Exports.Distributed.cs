using System.Runtime.InteropServices;
using HpCnn.Distributed;

namespace HpCnn.Native;

/// <summary>Data-parallel training over the processes of an mpirun launch (ABI 10): the C face of <see cref="Mpi"/>.</summary>
public static unsafe partial class Exports
{
    [UnmanagedCallersOnly(EntryPoint = "hpcnn_fit_options_set_distributed")]
    public static int FitOptionsSetDistributed(nint options, int mode)
    {
        try
        {
            var o = OptionsOf(options);
            o.Distributed = mode switch
            {
                -1 => null,
                0 => false,
                1 => true,
                _ => throw new ArgumentException($"distributed mode must be -1 (auto: distributed when launched by mpirun with more " +
                                                 $"than one process), 0 (off) or 1 (required), got {mode}"),
            };
            return Status.Ok;
        }
        catch (Exception e) { return Status.From(e); }
    }

    // Rank and Size read the launch's environment until MPI starts, so they answer before the first fit and never fail.
    [UnmanagedCallersOnly(EntryPoint = "hpcnn_distributed_rank")]
    public static int DistributedRank()
    {
        try { return Mpi.Rank; }
        catch (Exception e) { Status.From(e); return 0; }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_distributed_size")]
    public static int DistributedSize()
    {
        try { return Mpi.Size; }
        catch (Exception e) { Status.From(e); return 1; }
    }

    [UnmanagedCallersOnly(EntryPoint = "hpcnn_distributed_finalize")]
    public static int DistributedFinalize()
    {
        // A library hosted by C or Python gets no ProcessExit event, so Mpi's own finalize at exit never runs there.
        try { Mpi.Shutdown(); return Status.Ok; }
        catch (Exception e) { return Status.From(e); }
    }
}
