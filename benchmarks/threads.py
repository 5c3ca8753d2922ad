"""Where a parallel step starts to pay: optgen.torch AdamW (fp32) on one tensor of n elements,
stepped with one thread and with every thread, interleaved in one process; idle and with
one other process spinning on a core. Prints the ratio per size and the crossover, the size
from which the parallel step is faster both ways (``runtime/threads.py: SERIAL_BELOW``).

    python benchmarks/threads.py [--sizes 1024 4096 ...] [--rounds 7]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import time

import torch

import optgen
import optgen.torch as ot
from optgen.runtime import threads


def step_us(opt, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    return (time.perf_counter() - start) / steps * 1e6


def measure(n: int, rounds: int) -> tuple[float, float]:
    """Median µs per step with 1 thread and with all threads (serial cut-off disabled)."""
    p = torch.zeros(n, requires_grad=True)
    p.grad = torch.full_like(p, 1e-3)
    opt = ot.AdamW([p])
    opt.step()
    steps = max(20, min(2000, 20_000_000 // max(n, 1) // 10))
    serial, parallel = [], []
    for _ in range(rounds):
        for count, out in ((1, serial), (threads.max_threads(), parallel)):
            optgen.set_num_threads(count)
            opt.step()
            out.append(step_us(opt, steps))
    optgen.set_num_threads(None)
    return statistics.median(serial), statistics.median(parallel)


@contextlib.contextmanager
def spinning(count: int):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.2)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+",
                        default=[1 << k for k in range(10, 23, 2)])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    threads.SERIAL_BELOW = 0  # measure the parallel step at every size
    measure(1 << 20, 1)  # starts the pool, so that its layer can be named
    import numba

    print(f"threads: {threads.max_threads()}, layer: {numba.threading_layer()}, torch threads "
          f"{torch.get_num_threads()}")
    print("| elements | 1 thread µs | all threads µs | ratio | one core busy: 1 thread | "
          "all threads | ratio |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    crossover = None
    for n in args.sizes:
        serial, parallel = measure(n, args.rounds)
        with spinning(1):
            busy_serial, busy_parallel = measure(n, args.rounds)
        print(f"| {n:,} | {serial:.1f} | {parallel:.1f} | {parallel / serial:.2f} | "
              f"{busy_serial:.1f} | {busy_parallel:.1f} | {busy_parallel / busy_serial:.2f} |",
              flush=True)
        if crossover is None and parallel < serial and busy_parallel < busy_serial:
            crossover = n
    print(f"parallel pays from {crossover:,} elements" if crossover else
          "parallel never paid at these sizes")


if __name__ == "__main__":
    main()
