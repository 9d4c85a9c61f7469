"""One rank of test_distributed.py's launch: ``mpirun -np 2 python3 distributed_fit.py OUT_DIR [differ]``.

Every rank builds the same model, trains it on the same synthetic data with fit's default distributed=None (so the
launch makes it distributed), and writes its weights (OUT_DIR/weights-rank<r>.npy) and what fit reported
(OUT_DIR/rank<r>.json). It does not call hpcnn.distributed.finalize(): the atexit hook fit registered must end MPI,
or mpirun reports the rank as failed. With "differ", rank 1 changes one pixel of its data (the fit must end both
ranks). test_distributed.py imports build/train from here for its one-process run.
"""

import json
import os
import sys

import numpy as np

import hpcnn
from hpcnn import layers as L

EPOCHS, BATCH, SEED = 2, 16, 3


def data():
    """150 random 1x8x8 images in 3 classes (150 is no multiple of the batch: the last batch splits unevenly)."""
    rng = np.random.default_rng(7)
    return rng.random((150, 1, 8, 8), dtype=np.float32), (np.arange(150) % 3).astype(np.int32)


def build():
    """conv - batchnorm - relu - maxpool - flatten - dropout - dense: each layer whose sums the ranks share."""
    model = hpcnn.Sequential([L.Conv2D(4, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                              L.Dropout(0.25, seed=5), L.Dense(3)], input_shape=(1, 8, 8), seed=11)
    model.compile(loss="cross_entropy", optimizer=hpcnn.optimizers.SGD(lr=0.05, momentum=0.9))
    return model


def weights(model):
    """Every parameter of the model, in layer order, as one float32 vector."""
    parts = [w.ravel() for i in range(len(model.layers)) for w in model.get_weights(i).values()]
    return np.concatenate(parts)


def train(model, threads, stream, distributed=None, differ=False):
    x, y = data()
    if differ and hpcnn.distributed.rank() == 1:
        x[17, 0, 3, 4] += 0.5  # one pixel of one image: the ranks no longer hold the same data
    return model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, validation_split=0.2, seed=SEED, threads=threads, verbose=2,
                     stream=stream, distributed=distributed)


def main(out, differ=False):
    model = build()
    # One thread per rank: the ranks share the machine's cores (and the one-process run uses another count).
    history = train(model, 1, sys.stdout, differ=differ)
    rank = hpcnn.distributed.rank()
    np.save(os.path.join(out, f"weights-rank{rank}.npy"), weights(model))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "size": hpcnn.distributed.size(), "ranks": history.ranks, "threads": hpcnn.get_threads(),
                   "cores": len(os.sched_getaffinity(0)),
                   "communication_seconds": history.communication_seconds,
                   "epochs": [{k: v for k, v in e.items() if k not in ("seconds", "samples_per_second")} for e in history.epochs]},
                  f)


if __name__ == "__main__":
    main(sys.argv[1], differ=sys.argv[2:] == ["differ"])
