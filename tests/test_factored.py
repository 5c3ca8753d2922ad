"""Adafactor's factored stage on the CPU (compiler/axis_nest.py, runtime/tiling.py; issue 12):
the Numba loop nest against the NumPy reference stage on every kind of tiling, the same bits
on one thread or many, tiles that cover every row once, and the NumPy fallback for a stage the
nest cannot express."""

from __future__ import annotations

import numpy as np
import pytest

import optgen
from optgen.runtime import threads
from optgen.runtime.kernels import class_shape
from optgen.runtime.loader import load
from optgen.runtime.tiling import (ACROSS_BELOW, AXIS_SPLIT, AXIS_TILE, PASS_TILE, tile_count,
                                   tiling)


@pytest.fixture(autouse=True)
def restore():
    yield
    optgen.set_num_threads(None)


#: One shape per path: short rows across matrices (1x1, 3x3, 7x7 kernels), whole matrices
#: along rows, matrices split into blocks of rows (one, and a batch of them), a single row, a
#: single column, a vector (unfactored).
SHAPES = [(64, 32, 1, 1), (16, 8, 3, 3), (4, 3, 7, 7), (6, 40, 50), (300, 70), (700, 400),
          (3, 300, 300), (1, 20000), (20000, 1), (2, 1, 1), (37,)]


def _run(backend: str, shape, dtype, steps: int = 3, **hypers):
    rng = np.random.default_rng(sum(shape))
    p = rng.standard_normal(shape).astype(dtype)
    opt = optgen.optimizer("adafactor", [p], backend=backend, **hypers)
    start = p.copy()
    for _ in range(steps):
        opt.step([rng.standard_normal(shape).astype(dtype)])
    state = opt.state_dict()["state"][0]
    return p, start, {k: np.asarray(v) for k, v in state.items() if k != "step"}


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_loop_nest_matches_the_numpy_stage(shape, dtype):
    """Params and factored states after three steps, against the NumPy backend: float64 to
    1e-12 relative, float32 to 1e-5 of the step (the means add in another order: float64
    lanes here, NumPy's pairwise float32 there)."""
    ours, start, our_state = _run("cpu", shape, dtype, weight_decay=0.01)
    ref, _, ref_state = _run("numpy", shape, dtype, weight_decay=0.01)
    step = np.max(np.abs(ref - start))
    assert step > 0
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert np.max(np.abs(ours - ref)) <= tol * step
    assert our_state.keys() == ref_state.keys()
    for name, value in ref_state.items():
        assert our_state[name].shape == value.shape
        np.testing.assert_allclose(our_state[name], value, rtol=1e-12 if dtype == np.float64
                                   else 1e-5, atol=0)


@pytest.mark.parametrize("shape", [(700, 400), (3, 300, 300), (300, 70, 3, 3), (800, 200, 1)],
                         ids=str)
def test_one_thread_or_many_give_the_same_bits(shape):
    assert np.prod(shape) >= threads.SERIAL_BELOW  # parallel on more than one thread
    results = []
    for count in (1, threads.max_threads()):
        optgen.set_num_threads(count)
        results.append(_run("cpu", shape, np.float32))
    (p1, _, s1), (p2, _, s2) = results
    assert np.array_equal(p1, p2)
    for name in s1:
        assert np.array_equal(s1[name], s2[name])


@pytest.mark.parametrize("shape", [(5, 7), (1, 1), (9, 1, 1), (2, 5000, 3), (5000, 20),
                                   (3, 2, 40000), (70000, 1), (4, 17, 65537)], ids=str)
@pytest.mark.parametrize("tile,split", [(PASS_TILE, None), (AXIS_TILE, AXIS_SPLIT)])
def test_tiles_cover_every_row_once(shape, tile, split):
    rows, cols, per_tile, per_matrix, block, across = tiling(shape, tile, split)
    assert (rows, cols) == shape[-2:]
    matrices = int(np.prod(shape)) // (rows * cols)
    covered = np.zeros(matrices * rows, dtype=int)
    for t in range(tile_count(int(np.prod(shape)), (rows, cols, per_tile, per_matrix))):
        group, part = divmod(t, per_matrix)
        first = part * block
        for m in range(group * per_tile, min(matrices, (group + 1) * per_tile)):
            covered[m * rows + first:m * rows + min(rows, first + block)] += 1
    assert np.all(covered == 1)
    assert per_matrix == 1 or per_tile == 1
    assert not across or (per_tile > 1 and cols < ACROSS_BELOW)
    if split is not None:
        assert per_matrix <= split


def test_a_stage_the_nest_cannot_express_runs_in_numpy(tmp_path):
    """A row mean of a value that reads a column mean needs a second sweep: the module says
    so (AXIS_CPU false) and the CPU backend runs the NumPy stage, with the same result."""
    spec = tmp_path / "twice.opt"
    spec.write_text('optimizer twice\n  "a row mean over a column mean"\n\n'
                    "hyper lr = 0.1 in [0, inf)\n\n"
                    "state r = 0 per-row if factored\n"
                    "state w = 0 if not factored\n\n"
                    "update:\n"
                    "  r = lerp(r, row_mean(g^2 / (1 + col_mean(g^2))), 0.5) if factored\n"
                    "  w = lerp(w, g^2, 0.5) if not factored\n"
                    "  v = factored ? r : w\n"
                    "  p = p - lr * g / (1 + sqrt(v))\n")
    module = load(str(spec))
    assert module.AXIS_CPU is False
    results = []
    for backend in ("cpu", "numpy"):
        p = np.ones((6, 9))
        opt = optgen.optimizer(str(spec), [p], backend=backend)
        for seed in range(2):
            opt.step([np.random.default_rng(seed).standard_normal((6, 9))])
        results.append(p)
    np.testing.assert_allclose(results[0], results[1], rtol=1e-13)


def test_adafactor_moves_its_bytes_in_the_nest():
    """The module's traffic table counts the factored stage (one read of g) and the per-row,
    per-column and per-matrix arrays at their own sizes."""
    module = load("adafactor")
    assert module.AXIS_CPU is True
    axis = [row for row in module.TRAFFIC if row[0] == "axis"]
    assert axis and axis[0][2] == 1
    assert class_shape((4, 5, 6), "matrix") == (4, 1, 1)
