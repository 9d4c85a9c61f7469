#!/usr/bin/python3
"""Scaling model of HpCnn's distributed training (docs/distributed.md) from measured figures.

Per step, rank r of R receives:
  * the other ranks' convolution gradient partials: (R - 1) x 4 x conv_params bytes (one allgather);
  * (R - 1) / R of every dense layer's input and output-gradient rows, 4 x B x (in + units) bytes, B the global batch,
    and of its weight gradient, 4 x in x units bytes (each rank forms 1 / R of its rows);
  * (R - 1) / R of every batch norm's per-image partials: 2 passes x 16 x B x channels bytes;
and makes 2 + 1 + 3 x dense + 2 x batchnorm collectives, each log2(R) hops of `latency` (Open MPI's recursive doubling
for a power-of-two rank count).
An allreduce of the whole gradient (what DDP / Horovod send) moves 2 (R - 1) / R x 4 x params bytes per rank in
2 log2(R) hops at best (reduce-scatter + allgather, Rabenseifner), the same bytes as a ring.

Compute per step per rank: batch_per_rank / images_per_second (one machine's training rate, all its cores).
"Under 10%": communication <= 10% of (compute + communication), i.e. comm <= compute / 9.
"""
import argparse
import math

# The reference network (src/HpCnn.Tools/Presets/NetworkPresets.cs): conv 1->32 3x3, conv 32->64 3x3, dense 3136->128, dense 128->10.
REFERENCE = dict(conv_params=32 * 9 + 32 + 64 * 32 * 9 + 64, dense=[(3136, 128), (128, 10)], batchnorm=[],
                 params=421_642)


def ours(net, R, B, bw, lat):
    rows = sum(4 * (B * (i + u) + i * u) for i, u in net["dense"]) + sum(2 * 16 * B * c for c in net["batchnorm"])
    nbytes = (R - 1) * 4 * net["conv_params"] + (R - 1) / R * rows
    hops = (3 + 3 * len(net["dense"]) + 2 * len(net["batchnorm"])) * math.log2(R)
    return nbytes, hops * lat + nbytes / bw


def ring(net, R, bw, lat):
    nbytes = 2 * (R - 1) / R * 4 * net["params"]
    return nbytes, 2 * math.log2(R) * lat + nbytes / bw


def min_batch(cost, rate):
    """Smallest images per rank with comm <= compute / 9 (None: never, the traffic grows as fast as the compute)."""
    for b in range(1, 1 << 16):
        if cost(b) <= b / rate / 9:
            return b
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images-per-second", type=float, required=True, help="one machine's training rate (measured)")
    ap.add_argument("--latency-us", type=float, default=10.0, help="one message hop between machines (TCP: 10-30 us)")
    ap.add_argument("--batch", type=int, default=64, help="global batch of the per-step figures")
    a = ap.parse_args()
    net, rate, lat = REFERENCE, a.images_per_second, a.latency_us * 1e-6
    print(f"reference network, {rate:.0f} images/s per machine, {a.latency_us:g} us per hop; per-step figures at global batch {a.batch}")
    print("| machines | HpCnn bytes/rank/step | ring allreduce bytes | HpCnn comm at 10 / 100 Gbit/s | ring at 10 / 100 Gbit/s "
          "| batch per rank for comm < 10%: HpCnn 10 / 100 Gbit/s | ring 10 / 100 Gbit/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for R in (2, 4, 8, 16, 32, 64):
        cells = []
        ob, _ = ours(net, R, a.batch, 1, 0)
        rb, _ = ring(net, R, 1, 0)
        t = []
        for gbit in (10, 100):
            bw = gbit * 1e9 / 8
            t.append((ours(net, R, a.batch, bw, lat)[1], ring(net, R, bw, lat)[1],
                      min_batch(lambda b: ours(net, R, R * b, bw, lat)[1], rate),
                      min_batch(lambda b: ring(net, R, bw, lat)[1], rate)))
        fmt = lambda b: "never" if b is None else str(b)
        note = "" if R <= 16 else " (beyond 16 ranks: not bit-identical, refused today)"
        print(f"| {R}{note} | {ob / 1e6:.2f} MB | {rb / 1e6:.2f} MB | {t[0][0] * 1e3:.2f} / {t[1][0] * 1e3:.2f} ms "
              f"| {t[0][1] * 1e3:.2f} / {t[1][1] * 1e3:.2f} ms | {fmt(t[0][2])} / {fmt(t[1][2])} | {fmt(t[0][3])} / {fmt(t[1][3])} |")


if __name__ == "__main__":
    main()
