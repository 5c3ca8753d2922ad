"""Adam step on one float32 tensor: optgen's `cpu` backend vs torch.optim.Adam(fused=True).

Memory-bound model: fp32 Adam reads p, g, m, v and writes p, m, v = 28 bytes per element.
The machine's reachable bandwidth is measured in the same process with an in-place
torch.add(a, b, out=a) (reads a, b, writes a: 12 bytes per element) on arrays of the same size.
In place, like an optimizer step: an add into a third array also pays a read-for-ownership of
it, which the 12-byte count would hide. Rounds are interleaved (optgen, torch, add)
so that a noisy neighbour hurts all three alike; the median of the rounds is reported.

    python benchmarks/adam_cpu.py [--size 16777216] [--rounds 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import optgen

BYTES_PER_ELEMENT = {"adam": 28, "add": 12}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 24)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    n = args.size
    rng = np.random.default_rng(0)

    p = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    opt = optgen.optimizer("adam", [p], backend="cpu", lr=1e-3)

    tp = torch.from_numpy(p.copy())
    tp.grad = torch.from_numpy(g.copy())
    topt = torch.optim.Adam([tp], lr=1e-3, fused=True)

    a, b = (torch.from_numpy(rng.standard_normal(n, dtype=np.float32)) for _ in range(2))

    ours = lambda: opt.step([g])  # noqa: E731
    theirs = lambda: topt.step()  # noqa: E731
    add = lambda: torch.add(a, b, out=a)  # noqa: E731
    for fn in (ours, theirs, add):  # warm up: compile / allocate state / fault pages in
        fn(), fn()

    times = {"optgen": [], "torch": [], "add": []}
    for _ in range(args.rounds):
        times["optgen"].append(timed(ours))
        times["torch"].append(timed(theirs))
        times["add"].append(timed(add))
    med = {k: statistics.median(v) for k, v in times.items()}
    bw = {"optgen": BYTES_PER_ELEMENT["adam"] * n / med["optgen"] / 1e9,
          "torch": BYTES_PER_ELEMENT["adam"] * n / med["torch"] / 1e9,
          "add": BYTES_PER_ELEMENT["add"] * n / med["add"] / 1e9}

    print(f"Adam step, {n:,} float32 values, median of {args.rounds} interleaved rounds, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    print(f"{'what':<28} {'ms':>8} {'GB/s':>8} {'of add()':>9}")
    print(f"{'optgen cpu (Numba)':<28} {1e3 * med['optgen']:>8.2f} {bw['optgen']:>8.1f} "
          f"{bw['optgen'] / bw['add']:>9.0%}")
    print(f"{'torch Adam(fused=True)':<28} {1e3 * med['torch']:>8.2f} {bw['torch']:>8.1f} "
          f"{bw['torch'] / bw['add']:>9.0%}")
    print(f"{'torch.add (bandwidth ref)':<28} {1e3 * med['add']:>8.2f} {bw['add']:>8.1f} {'100%':>9}")
    print(f"speed-up of optgen over torch fused: {med['torch'] / med['optgen']:.2f}x")


if __name__ == "__main__":
    main()
