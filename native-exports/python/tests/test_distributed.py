"""hpcnn.distributed and fit(distributed=...): in this process (rank 0 of 1), and a launch of two processes under
mpirun whose weights must equal this process's bit for bit (distributed_fit.py is the script each rank runs)."""

import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import hpcnn

import distributed_fit

HERE = os.path.dirname(os.path.abspath(__file__))


def test_outside_mpirun_this_process_is_rank_0_of_1():
    assert hpcnn.abi_version() >= 10
    assert "OMPI_COMM_WORLD_SIZE" not in os.environ, "run the pytest suite itself without mpirun"
    assert hpcnn.distributed.rank() == 0
    assert hpcnn.distributed.size() == 1


@pytest.mark.parametrize("distributed", [None, False])
def test_fit_alone_reports_one_rank(distributed):
    model = distributed_fit.build()
    history = distributed_fit.train(model, None, io.StringIO(), distributed=distributed)
    assert history.ranks == 1
    assert history.communication_seconds == 0.0


@pytest.mark.parametrize("bad", ["yes", 1, 0])
def test_distributed_must_be_none_true_or_false(bad):
    with pytest.raises(hpcnn.InvalidArgumentError, match="distributed must be None"):
        distributed_fit.build().fit(np.zeros((4, 1, 8, 8), np.float32), np.zeros(4, np.int32), verbose=0, distributed=bad)


def test_finalize_without_mpi_does_nothing():
    hpcnn.distributed.finalize()
    hpcnn.distributed.finalize()
    model = distributed_fit.build()
    assert distributed_fit.train(model, None, io.StringIO(), distributed=False).ranks == 1


def launch(out, *args):
    """mpirun -np 2 of distributed_fit.py with this interpreter (the hpcnn it imports)."""
    mpirun = shutil.which("mpirun")
    if mpirun is None:
        pytest.fail("mpirun not found: apt-get install openmpi-bin libopenmpi-dev (build/test-native.sh installs them)")
    # More ranks than cores may be; shared memory only (no probing of network interfaces at startup).
    command = [mpirun, "--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader", "--tag-output", "-np", "2"]
    if os.geteuid() == 0:
        command.append("--allow-run-as-root")  # Open MPI refuses root without it (containers)
    command += [sys.executable, os.path.join(HERE, "distributed_fit.py"), str(out), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_two_processes_train_the_weights_of_one(tmp_path):
    done = launch(tmp_path)
    assert done.returncode == 0, f"mpirun exited with {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["size"], r["ranks"]) for r in ranks] == [(0, 2, 2), (1, 2, 2)]
    assert all(r["communication_seconds"] > 0 for r in ranks)
    # Two processes on this machine: the library's default gave each half the cores.
    assert [r["threads"] for r in ranks] == [max(1, r["cores"] // 2) for r in ranks]
    # verbose=2 prints one line per epoch, on rank 0 only ("[jobid,rank]<stdout>:" tags each line).
    printed = [line for line in done.stdout.splitlines() if "Epoch " in line]
    assert len(printed) == distributed_fit.EPOCHS and all(",0]<stdout>:" in line for line in printed), done.stdout

    model = distributed_fit.build()
    alone = distributed_fit.train(model, 2, io.StringIO())
    expected = distributed_fit.weights(model)
    for r in (0, 1):
        got = np.load(tmp_path / f"weights-rank{r}.npy")
        assert got.dtype == np.float32 and got.shape == expected.shape
        differ = np.flatnonzero(got.view(np.uint32) != expected.view(np.uint32))
        assert differ.size == 0, (f"rank {r}: {differ.size} of {expected.size} weights differ from one process's "
                                  f"(first at {differ[0]}: {got[differ[0]]!r} vs {expected[differ[0]]!r})")
    # Both ranks report the same figures, of the whole batches (rank 0 ran the validation): one process's, except that
    # the epoch's mean training loss adds the ranks' partial sums in another order (it may differ in the last bits).
    assert ranks[0]["epochs"] == ranks[1]["epochs"]
    assert len(ranks[0]["epochs"]) == len(alone.epochs)
    for got, want in zip(ranks[0]["epochs"], alone.epochs):
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-12)
        assert (got["accuracy"], got["val_loss"], got["val_accuracy"]) == (want["accuracy"], want["val_loss"], want["val_accuracy"])
    assert not np.array_equal(expected, distributed_fit.weights(distributed_fit.build())), "training moved no weight"


def test_ranks_with_different_data_all_end_with_the_reason(tmp_path):
    done = launch(tmp_path, "differ")
    assert done.returncode != 0, f"mpirun succeeded\n{done.stdout}\n{done.stderr}"
    assert "different" in done.stderr and "rank" in done.stderr, done.stderr
    assert not list(tmp_path.iterdir()), "a rank went on after the failed fit"


REQUIRED_ALONE = """
import io, sys
import hpcnn, distributed_fit
history = distributed_fit.train(distributed_fit.build(), None, io.StringIO(), distributed=True)
assert history.ranks == 1, history.ranks
hpcnn.distributed.finalize()
try:
    distributed_fit.train(distributed_fit.build(), None, io.StringIO(), distributed=True)
    sys.exit("a distributed fit ran after finalize")
except hpcnn.InvalidStateError as e:
    assert "finalized" in str(e), e
assert distributed_fit.train(distributed_fit.build(), None, io.StringIO(), distributed=False).ranks == 1
print("ok")
"""


def test_required_alone_is_a_launch_of_one_and_ends_with_finalize():
    # In a child process: MPI starts once per process, and this one must stay able to run the mpirun test.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, "-c", REQUIRED_ALONE], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
