"""Python overhead of one optimizer step, by number of tensors: optgen.torch.Adam against
torch.optim.Adam(fused=True), on 1-element float32 tensors (so the arithmetic is negligible).

Two loops: gradients reused (``zero_grad(set_to_none=False)``, DDP's bucket views) and new
gradient tensors every step (``zero_grad()``'s default, then backward). Both include
torch.optim.Optimizer's step wrapper (hooks, profiler scope), which every torch optimizer runs.

    python benchmarks/step_overhead.py [--counts 1 161 1000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import optgen.torch as ot


def per_step_us(step, before=None, steps: int = 2000, rounds: int = 5) -> float:
    """Median over rounds of the mean time of ``step`` (``before`` runs untimed each step)."""
    times = []
    for _ in range(rounds):
        total = 0.0
        for _ in range(steps):
            if before is not None:
                before()
            start = time.perf_counter()
            step()
            total += time.perf_counter() - start
        times.append(total / steps * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 161, 1000])
    args = parser.parse_args()
    print("| tensors | gradients | optgen µs | torch fused µs | optgen µs per tensor above 1 |")
    print("|---:|---|---:|---:|---:|")
    base = {}
    for fresh in (False, True):
        for count in args.counts:
            row = []
            for make in (lambda ps: ot.Adam(ps), lambda ps: torch.optim.Adam(ps, fused=True)):
                params = [torch.zeros(1, requires_grad=True) for _ in range(count)]
                grads = [[torch.zeros(1) for _ in params] for _ in range(2)]
                for p, g in zip(params, grads[0]):
                    p.grad = g
                opt = make(params)
                opt.step()
                flip = [0]

                def new_grads():
                    flip[0] ^= 1
                    for p, g in zip(params, grads[flip[0]]):
                        p.grad = g

                row.append(per_step_us(opt.step, new_grads if fresh else None,
                                       steps=2000 if count < 500 else 300))
            label = "new each step" if fresh else "reused"
            base.setdefault(fresh, row[0])
            per_tensor = (row[0] - base[fresh]) / (count - 1) if count > 1 else float("nan")
            print(f"| {count} | {label} | {row[0]:.1f} | {row[1]:.1f} | {per_tensor:.3f} |")
    parts()


def parts(count: int = 1000) -> None:
    """Where the per-tensor and fixed costs go: reading every ``p.grad`` and every param's
    address (the check that no storage moved), and torch.optim's step wrapper (a step against
    the wrapped function itself, one tensor)."""
    import operator

    params = [torch.zeros(1, requires_grad=True) for _ in range(count)]
    for p in params:
        p.grad = torch.zeros(1)
    read = per_step_us(lambda: list(map(operator.attrgetter("grad"), params)), steps=500)
    addresses = per_step_us(lambda: list(map(torch.Tensor.data_ptr, params)), steps=500)
    one = [torch.zeros(1, requires_grad=True)]
    one[0].grad = torch.zeros(1)
    opt = ot.Adam(one)
    opt.step()
    unwrapped = type(opt).step.__wrapped__
    wrapper = per_step_us(opt.step) - per_step_us(lambda: unwrapped(opt))
    print(f"\nper tensor: reading p.grad {read / count:.3f} µs, its address "
          f"{addresses / count:.3f} µs; torch.optim's step wrapper {wrapper:.1f} µs a step")


if __name__ == "__main__":
    main()
