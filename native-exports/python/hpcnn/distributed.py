"""Data-parallel training over the processes of an Open MPI launch.

Run the same script in every process::

    mpirun -np 4 python3 train.py

Every process loads the same data and builds the same model (same seed, same options); ``model.fit`` then splits each
batch over the processes, sums their gradients, and every process ends with the same weights, equal bit for bit to
those of a one-process fit with the same batch size and seed. Batch size and learning rate keep their one-process
meaning. Process counts: 1, 2, 4, 8 or 16. Open MPI 4 (``libmpi.so.40``; Debian/Ubuntu: ``apt-get install openmpi-bin
libopenmpi-dev``) is loaded when a distributed fit starts; mpi4py is not needed.

``fit`` is distributed when the script was launched by mpirun with more than one process (``distributed=None``, the
default); ``distributed=False`` trains alone in each process, ``distributed=True`` requires MPI. Rank 0 alone runs the
validation (the others get its figures) and writes checkpoints; fit prints progress on rank 0 only, but callbacks run
in every process with the same figures, so save files or print from rank 0 only::

    if hpcnn.distributed.rank() == 0:
        model.save("model.hpcnn")

Processes on one machine share its cores: under mpirun the library gives each process its share by default (cores //
processes on this machine; :func:`hpcnn.set_threads` changes it) and does not pin its threads (every process would pin
them to the same first CPUs) unless the environment sets HPCNN_PIN_THREADS=1.

An error inside a distributed fit (processes that hold different data or models, a diverged loss) cannot be raised
as an exception, since the other processes would wait for this one forever: the message goes to standard error and
every process exits with code 1. MPI is ended at interpreter exit (``atexit``); call :func:`finalize` to end it
earlier.
"""

import atexit

from ._native import check, lib
from .errors import InvalidArgumentError

__all__ = ["rank", "size", "finalize"]

_atexit_registered = False


def rank():
    """This process's rank in the mpirun launch (0 outside one). Known before the first fit (from the launch's
    environment)."""
    return int(lib.hpcnn_distributed_rank())


def size():
    """The number of processes in the mpirun launch (1 outside one)."""
    return int(lib.hpcnn_distributed_size())


def finalize():
    """Ends MPI (MPI_Finalize) if a distributed fit of this process started it; no distributed fit can run afterwards.
    Does nothing otherwise (and when called again). Registered with :mod:`atexit` by the first fit that may be
    distributed: Open MPI reports a process that exits without it as failed."""
    check(lib.hpcnn_distributed_finalize())


def _finalize_at_exit():
    """Registers :func:`finalize` with atexit, once: called before a fit that may start MPI (the library cannot end
    MPI at exit by itself when Python hosts it)."""
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(finalize)
        _atexit_registered = True


def _mode(distributed):
    """fit's distributed argument as hpcnn_fit_options_set_distributed's mode: None -1 (auto), False 0, True 1."""
    if distributed is None:
        return -1
    if distributed is True or distributed is False:
        return int(distributed)
    raise InvalidArgumentError(f"fit: distributed must be None (distributed when launched by mpirun with more than one "
                               f"process), True or False, got {distributed!r}")
