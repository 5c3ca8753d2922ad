"""Regressions found by a hostile review of the CPU factored stage (commit 2bb7a75: Adafactor's
axis stage as a Numba loop nest, compiler/axis_nest.py, runtime/tiling.py, runtime/kernels.py).

Each test compares against a reference with its tolerance written down: the NumPy backend
for the numbers, or the reduction's own fixed block size for what it allocates.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

import optgen
from optgen.runtime.loader import load


@pytest.fixture(autouse=True)
def restore():
    yield
    optgen.set_num_threads(None)


#: A per-row state whose new value doesn't vary along the rows (a hyperparameter here; a
#: per-matrix mean such as ``col_mean(row_mean(g^2))`` fails the same way). `optgen check`
#: accepts it (its new value doesn't vary along the columns). The planner calls the scratch
#: value ``r + 1`` "row" (AXIS_CLASSES), so the runtime allocates one value per row and the
#: passes read it by row. compiler/axis_nest.py sees that the value doesn't vary along R and
#: files it with the per-matrix values, so axis_cpu writes only ``_ax0[m]``, one entry per
#: matrix, and the other rows keep np.empty's garbage.
ROW_STATE_WITHOUT_ROWS = textwrap.dedent("""\
    optimizer hostile_row_constant
    hyper lr = 1e-2 in [0, inf)
    hyper w = 0.5 in [0, 1]
    state r = 0 per-row if factored
    state c = 0 per-col if factored
    state v = 0 if not factored
    update:
      r = w if factored
      c = lerp(c, col_mean(g^2), 0.1) if factored
      v = lerp(v, g^2, 0.1) if not factored
      q = factored ? (r + 1) * c : v
      p = p - lr * g / sqrt(q + 1e-12)
    """)

ROW_STATE_MATRIX_MEAN = ROW_STATE_WITHOUT_ROWS.replace(
    "optimizer hostile_row_constant", "optimizer hostile_row_matrix_mean").replace(
    "r = w if factored", "r = col_mean(row_mean(g^2)) if factored")


def _steps(spec_path, backend, shape, steps=3):
    rng = np.random.default_rng(5)
    p = rng.standard_normal(shape)
    opt = optgen.optimizer(str(spec_path), [p], backend=backend)
    for _ in range(steps):
        opt.step([rng.standard_normal(shape)])
    return p


@pytest.mark.parametrize("source", [ROW_STATE_WITHOUT_ROWS, ROW_STATE_MATRIX_MEAN],
                         ids=["hyper", "matrix-mean"])
@pytest.mark.parametrize("shape", [(3, 4), (100, 15), (20, 3, 3), (17, 4000)], ids=str)
def test_row_value_that_does_not_vary_along_rows_matches_numpy(tmp_path, source, shape):
    """Float64 params after three steps, cpu against the NumPy backend, to 1e-12 of the step.
    Today the cpu backend is off by about 1e4 (or NaN): the passes read uninitialised
    per-row scratch."""
    spec = tmp_path / "hostile.opt"
    spec.write_text(source)
    start = _steps(spec, "numpy", shape, steps=0)
    ref = _steps(spec, "numpy", shape)
    ours = _steps(spec, "cpu", shape)
    step = np.max(np.abs(ref - start))
    assert step > 0
    assert np.all(np.isfinite(ours)), "cpu backend produced non-finite params"
    assert np.max(np.abs(ours - ref)) <= 1e-12 * step


def test_unfactored_reduction_has_one_partial_per_block(monkeypatch):
    """A vector param of Adafactor (unfactored: no per-row states) is summed in blocks of
    REDUCE_BLOCK elements, as before 2bb7a75. Today _nest_args hands it the tiling
    (1, 1, 1, 1, 1, False), so kernels.reduce sizes its partial sums by tile_count(n, ...)
    = n: one float64 row per element (a 4M-element float32 vector allocates 64 MB of zeros
    and adds them in order; its step measured 5x slower than a 2000x2000 matrix's). The
    numbers are right (the extra rows are zeros), so the reference is the block count."""
    module = load("adafactor")
    seen = []
    original = module.reduce_cpu

    def spy(*args):
        seen.append(args[-1].shape)
        return original(*args)

    monkeypatch.setattr(module, "reduce_cpu", spy)
    n = 100_000
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(np.float32)
    opt = optgen.optimizer("adafactor", [p], backend="cpu")
    opt.step([rng.standard_normal(n).astype(np.float32)])
    assert seen, "reduce_cpu was not called"
    blocks = -(-n // module.REDUCE_BLOCK)
    assert seen[-1] == (blocks, module.REDUCTIONS)
