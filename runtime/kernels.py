"""Calling a generated module's kernels for one tensor: reductions first, then the element pass.

Shared by the NumPy front end and the verifier's numeric stepper, so both run exactly what
users run.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np


def run_step(module: ModuleType, backend: str, arrays: list[np.ndarray], host: tuple,
             dtype: np.dtype) -> None:
    """One step over flat, contiguous ``arrays`` (p, g, then each state, in ``ARRAYS`` order)
    with ``host`` the cast host scalars. Updates the arrays in place."""
    tensor = ()
    if module.REDUCTIONS:
        tensor = tuple(dtype.type(s) for s in reduce(module, backend, arrays, host))
    if module.USES_NUMEL:
        tensor += (dtype.type(arrays[0].shape[0]),)
    getattr(module, f"step_{backend}")(*arrays, *host, *tensor)


def reduce(module: ModuleType, backend: str, arrays: list[np.ndarray], host: tuple) -> tuple:
    """The per-tensor sums, in float64. On the CPU, blocks of ``REDUCE_BLOCK`` elements are
    summed in parallel and their partial sums added here in block order: the same bits with
    any number of threads."""
    if backend == "numpy":
        return module.reduce_numpy(*arrays, *host)
    blocks = -(-arrays[0].shape[0] // module.REDUCE_BLOCK)
    partials = np.zeros((blocks, module.REDUCTIONS))
    module.reduce_cpu(*arrays, *host, partials)
    totals = np.zeros(module.REDUCTIONS)
    for row in partials:  # in order; np.sum's pairwise order would do too, but this is plain
        totals += row
    return tuple(totals)
