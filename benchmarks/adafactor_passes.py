"""Adafactor's CPU passes one at a time: the factored stage (axis_cpu), the reduction pass and
the step pass, on one tensor, against an in-place NumPy add over as many values (12 bytes an
element), medians of interleaved rounds. The shapes are the two workloads' kinds: one large
matrix, a batch of 1x1 and of 3x3 convolution kernels, a linear layer.

    python benchmarks/adafactor_passes.py [--rounds 9] [SHAPE ...]   (SHAPE like 4096x4096)
"""

from __future__ import annotations

import argparse

import numpy as np

from optgen.bench import interleaved_medians
from optgen.runtime import kernels
from optgen.runtime.loader import load

SHAPES = ["4096x4096", "2048x512x1x1", "512x512x3x3", "1000x2048"]


def passes(shape: tuple[int, ...], rounds: int) -> dict[str, float]:
    module = load("adafactor")
    n = int(np.prod(shape))
    dtype = np.dtype(np.float32)
    rng = np.random.default_rng(0)
    p, g = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    row = np.zeros(kernels.class_shape(shape, "row"), dtype)
    col = np.zeros(kernels.class_shape(shape, "col"), dtype)
    flags = kernels.tensor_flags(module, shape, dtype)
    hypers = tuple(kernels.host_value(v) for h in module.HYPERS for v in h.flat(h.default))
    host = kernels.cast_host(module.host_scalars(2, *hypers, *flags), module.HOST_IS_BOOL, dtype)
    arrays = [p, g, np.empty(0, dtype)]
    nest = kernels._nest_args(module, "cpu", shape, [row, col])
    axes = kernels.axis_stage(module, "cpu", arrays, host, dtype, shape, [row, col])
    sums = kernels.reduce(module, "cpu", arrays + axes, host, nest, tiled=True)
    tensor = tuple(dtype.type(s) for s in sums) + (dtype.type(n),)
    a, b = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    steps = {
        "factored stage": lambda: kernels.axis_stage(module, "cpu", arrays, host, dtype, shape,
                                                     [row, col]),
        "reduction pass": lambda: kernels.reduce(module, "cpu", arrays + axes, host, nest,
                                                 tiled=True),
        "step pass": lambda: module.step_cpu(*arrays, *axes, *host, *tensor, *nest),
        "add": lambda: np.add(a, b, out=a),
    }
    return interleaved_medians(steps, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shapes", nargs="*", default=SHAPES)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    print("| shape | factored stage ms | reduction pass ms | step pass ms | add ms |")
    print("|---|---:|---:|---:|---:|")
    for text in args.shapes:
        shape = tuple(int(x) for x in text.split("x"))
        got = passes(shape, args.rounds)
        print(f"| {text} | {got['factored stage']:.2f} | {got['reduction pass']:.2f} | "
              f"{got['step pass']:.2f} | {got['add']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
