"""The planner's levels (README "Stages"): reductions that read reductions are summed in later
passes, scalar states may be assigned from reductions, group reductions add every tensor's
part before the next pass, per-group states update once a step; what cannot be scheduled is a
located error at check time.

Values against NumPy transcriptions in float64 (rtol 1e-12: the kernels add sums in blocks, the
transcription in one np.sum), on 0-d, empty, 1-D, 2-D and 3-D tensors of one group, both CPU
backends; optgen.torch against the NumPy front end bit for bit (the same kernels).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import optgen
from optgen.compiler.errors import SpecError, SpecErrors
from optgen.compiler.pipeline import check_file

SHAPES = [(), (0,), (6,), (3, 4), (2, 3, 2)]
STEPS = 6
RTOL = 1e-12

#: The README's example: a per-tensor scalar state from a reduction (first pass), a per-group
#: state from a group norm of a value that reads it (second pass, over the group).
README_EXAMPLE = """\
optimizer stages_example
  "The README's Stages example."

hyper lr = 0.01   in [0, inf)
hyper b2 = 0.9    in [0, 1)
hyper eps = 1e-8  in [0, inf)

scalar v = 0
scalar d = 1e-6 per-group

update:
  v = b2 * v + (1 - b2) * sum(g^2)
  u = g / (sqrt(v) + eps)
  d = max(d, group_norm(u))
  p = p - lr * d * u
"""

#: Three passes: norm(g), then the mean of g/norm(g), then the norm of the centred value.
NESTED = """\
optimizer nested_norms
hyper lr = 0.1 in [0, inf)
hyper eps = 1e-12 in [0, inf)
update:
  u = g / (norm(g) + eps)
  w = u - mean(u)
  p = p - lr * w / (norm(w) + eps)
"""


def _spec(tmp_path, text: str, name: str) -> str:
    path = tmp_path / f"{name}.opt"
    path.write_text(text)
    return str(path)


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s) for s in SHAPES]
    grads = [[rng.standard_normal(s) * (1 + k) for s in SHAPES] for k in range(STEPS)]
    return params, grads


def _readme_reference(params, grads):
    """The README example, transcribed: v per tensor, d per group."""
    params = [p.copy() for p in params]
    v, d = [0.0] * len(params), 1e-6
    for step in grads:
        v = [0.9 * vi + 0.1 * float(np.sum(g * g)) for vi, g in zip(v, step)]
        u = [g / (np.sqrt(vi) + 1e-8) for vi, g in zip(v, step)]
        d = max(d, float(np.sqrt(sum(np.sum(x * x) for x in u))))
        params = [p - 0.01 * d * x for p, x in zip(params, u)]
    return params, v, d


def _nested_reference(params, grads):
    params = [p.copy() for p in params]
    for step in grads:
        out = []
        for p, g in zip(params, step):
            u = g / (np.sqrt(np.sum(g * g)) + 1e-12)
            w = u - (np.sum(u) / u.size if u.size else 0.0)
            out.append(p - 0.1 * w / (np.sqrt(np.sum(w * w)) + 1e-12))
        params = out
    return params


def test_readme_example_is_planned_in_two_passes(tmp_path):
    from optgen.runtime.loader import load

    module = load(_spec(tmp_path, README_EXAMPLE, "stages_example"))
    assert module.REDUCE_ROUNDS == (1, 1)
    assert module.GROUP_REDUCTIONS == (False, True)
    assert module.SCALARS == ("v",) and module.GROUP_SCALARS == ("d",)
    assert module.SCALARS_READ_TENSOR and not module.MANY


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_readme_example_matches_its_transcription(tmp_path, backend):
    params, grads = _problem()
    want, v, d = _readme_reference(params, grads)
    opt = optgen.optimizer(_spec(tmp_path, README_EXAMPLE, "stages_example"), params,
                           backend=backend)
    for step in grads:
        opt.step(step)
    for i, (got, expected) in enumerate(zip(params, want)):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-15, err_msg=f"params[{i}]")
        np.testing.assert_allclose(opt.state[i]["v"], v[i], rtol=RTOL, err_msg=f"v of {i}")
    np.testing.assert_allclose(opt.group_state["d"], d, rtol=RTOL)
    assert opt.group_state["step"] == STEPS


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_reductions_of_reductions_take_later_passes(tmp_path, backend):
    from optgen.runtime.loader import load

    path = _spec(tmp_path, NESTED, "nested_norms")
    assert load(path).REDUCE_ROUNDS == (1, 1, 1)
    params, grads = _problem(1)
    want = _nested_reference(params, grads)
    opt = optgen.optimizer(path, params, backend=backend)
    for step in grads:
        opt.step(step)
    for i, (got, expected) in enumerate(zip(params, want)):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-15, err_msg=f"params[{i}]")


@pytest.mark.parametrize("text, name", [(README_EXAMPLE, "stages_example"),
                                        (NESTED, "nested_norms")])
def test_torch_front_end_gives_the_numpy_front_ends_bits(tmp_path, text, name):
    torch = pytest.importorskip("torch")
    import optgen.torch as ot

    path = _spec(tmp_path, text, name)
    params, grads = _problem(2)
    ours = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    opt = ot.optimizer(path, ours)
    base = optgen.optimizer(path, params)
    for step in grads:
        for p, g in zip(ours, step):
            p.grad = torch.tensor(g)
        opt.step()
        base.step(step)
    for p, q in zip(ours, params):
        np.testing.assert_array_equal(p.detach().numpy(), q)
    if name == "stages_example":
        assert opt.param_groups[0]["d"] == base.group_state["d"]
        assert opt.param_groups[0]["step"] == STEPS


def test_a_param_without_gradient_is_left_out_of_the_group(tmp_path):
    """The group's sums are over the params stepped this time (torch.optim skips a param whose
    grad is None); a group with no gradient at all keeps its states."""
    path = _spec(tmp_path, README_EXAMPLE, "stages_example")
    params, grads = _problem(3)
    opt = optgen.optimizer(path, params)
    alone = [params[2].copy()]
    single = optgen.optimizer(path, alone)
    for step in grads:
        opt.step([None, None, step[2], None, None])
        single.step([step[2]])
    np.testing.assert_array_equal(params[2], alone[0])
    assert opt.group_state == single.group_state
    before = dict(opt.group_state)
    opt.step([None] * len(SHAPES))
    assert opt.group_state == before


SIMULATED_ROUNDS = textwrap.dedent('''
    import json, sys
    import numpy as np
    from numba import cuda
    import optgen

    out = {}
    for path in sys.argv[1:]:
        rng = np.random.default_rng(0)
        shapes = [(3, 4), (5,), (), (0,)]
        start = [rng.standard_normal(s) for s in shapes]
        ref = [p.copy() for p in start]
        dev = [cuda.to_device(p.copy()) for p in start]
        opt = optgen.optimizer(path, dev, backend="cuda")
        base = optgen.optimizer(path, ref, backend="numpy")
        for step in range(3):
            grads = [rng.standard_normal(s) for s in shapes]
            opt.step([cuda.to_device(g) for g in grads])
            base.step(grads)
        out[path] = {"got": [d.copy_to_host().tolist() for d in dev],
                     "want": [r.tolist() for r in ref],
                     "group": [opt.group_state, base.group_state],
                     "scalars": [[s.get("v") for s in opt.state], [s.get("v") for s in base.state]]}
    json.dump(out, sys.stdout)
''')


def test_cuda_simulator_runs_every_pass(tmp_path):
    """The CUDA backend runs the same passes (each reduction pass reads the earlier sums on the
    device; the group's sums come back, are added and go out again)."""
    pytest.importorskip("numba.cuda")
    paths = [_spec(tmp_path, README_EXAMPLE, "stages_example"),
             _spec(tmp_path, NESTED, "nested_norms")]
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    run = subprocess.run([sys.executable, "-c", SIMULATED_ROUNDS, *paths], capture_output=True,
                         text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for path, case in json.loads(run.stdout).items():
        for got, want in zip(case["got"], case["want"]):
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-12,
                                       atol=1e-14, err_msg=path)
        assert case["group"][0].keys() == case["group"][1].keys()
        for key in case["group"][0]:
            np.testing.assert_allclose(case["group"][0][key], case["group"][1][key], rtol=1e-12)
        np.testing.assert_allclose(np.array(case["scalars"][0], dtype=float),
                                   np.array(case["scalars"][1], dtype=float), rtol=1e-12)


def _errors(tmp_path, text: str) -> list[SpecError]:
    path = tmp_path / "bad.opt"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        check_file(path)
    error = info.value
    return error.errors if isinstance(error, SpecErrors) else [error]


HEAD = "optimizer bad\nhyper lr = 0.01\nscalar v = 0\nscalar d = 1e-6 per-group\nstate m = 0\n"


@pytest.mark.parametrize("update, line, column, words", [
    ("  v = g^2\n", 7, 3, "scalar state 'v' holds one value per tensor"),
    ("  v = sum(g) if g > 0\n", 7, 3, "scalar state 'v' holds one value per tensor"),
    ("  d = max(d, norm(g))\n", 7, 3, "per-group state 'd' holds one value for the whole param "
     "group"),
    ("  d = d * v\n  v = sum(g)\n", 7, 3, "not from a per-tensor value"),
    ("  d = 2 * m\n", 7, 3, "not from a per-element value"),
    ("  v = sum(g) * epsilon\n", 7, 3, "not 'epsilon'"),
    ("  m = row_mean(g / norm(g))\n", 7, 7, "row_mean() needs a per-row or per-col state"),
])
def test_what_cannot_be_scheduled_is_a_located_error(tmp_path, update, line, column, words):
    errors = _errors(tmp_path, HEAD + "update:\n" + update + "  p = p - lr * g\n")
    first = errors[0]
    assert (first.span.line, first.span.column) == (line, column), str(first)
    assert words in str(first)


@pytest.mark.parametrize("update", [
    "  v = b * v + sum(g^2)\n  u = g / sqrt(v + 1)\n  d = max(d, group_sum(abs(u)))\n",
    "  v = mean(g / norm(g))\n  d = d + group_sum(g * v)\n",
    "  d = max(d, group_norm(g / (norm(g) + 1)))\n  v = sum(g) / d\n",
])
def test_what_check_accepts_builds_and_steps(tmp_path, update):
    """Levels mixed every way the rules allow: check accepts, and it builds and steps."""
    text = ("optimizer ok\nhyper lr = 0.01\nhyper b = 0.5 in [0, 1)\nscalar v = 0\n"
            "scalar d = 1e-6 per-group\nupdate:\n" + update + "  p = p - lr * d * g\n")
    path = _spec(tmp_path, text, "ok")
    check_file(path)
    params, grads = _problem(4)
    opt = optgen.optimizer(path, params)
    for step in grads:
        opt.step(step)
    assert all(np.isfinite(p).all() for p in params)


SHAPE_BUILTINS = """\
optimizer shape_builtins
hyper lr = 0.1 in [0, inf)
update:
  p = p - lr * (ndim + 1) * g / numel
"""


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_numel_and_ndim_are_the_tensors(tmp_path, backend):
    params, grads = _problem(5)
    want = [p - 0.1 * (p.ndim + 1) * g / max(p.size, 1) for p, g in zip(params, grads[0])]
    opt = optgen.optimizer(_spec(tmp_path, SHAPE_BUILTINS, "shape_builtins"), params,
                           backend=backend)
    opt.step(grads[0])
    for got, expected in zip(params, want):
        np.testing.assert_allclose(got, expected, rtol=1e-15)


MASKED_SUM = """\
optimizer masked_sum
hyper lr = 0.1 in [0, inf)
scalar v = 0
scalar d = 0 per-group
update:
  x = sum(where(g > 0, g, 0))
  y = group_sum(g > 0 ? g : 0)
  v = v + x                          if x > 0
  d = d + y                          if y > 1
  p = p - lr * g                     if x > 0
  p = p - lr * (v + d) * g
"""


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_a_sum_of_a_per_element_choice_in_a_condition(tmp_path, backend):
    """Found by a hostile review: SymPy folded the per-element where() out of the sum when the
    sum stood in a condition (it summed g, and tested g > 0 per element, in host code too: a
    NameError in scalar_updates); the sum's argument keeps its choice (a Select)."""
    params, grads = _problem(6)
    want = [p.copy() for p in params]
    v, d = [0.0] * len(want), 0.0
    for step in grads:
        xs = [float(np.sum(np.where(g > 0, g, 0))) for g in step]
        y = sum(xs)
        v = [vi + x if x > 0 else vi for vi, x in zip(v, xs)]
        d = d + y if y > 1 else d
        want = [p - 0.1 * g if x > 0 else p for p, g, x in zip(want, step, xs)]
        want = [p - 0.1 * (vi + d) * g for p, g, vi in zip(want, step, v)]
    opt = optgen.optimizer(_spec(tmp_path, MASKED_SUM, "masked_sum"), params, backend=backend)
    for step in grads:
        opt.step(step)
    for i, (got, expected) in enumerate(zip(params, want)):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-15, err_msg=f"params[{i}]")
        np.testing.assert_allclose(opt.state[i]["v"], v[i], rtol=RTOL)
    np.testing.assert_allclose(opt.group_state["d"], d, rtol=RTOL)


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_a_pass_no_value_reads_is_skipped_and_changes_no_bit(backend, monkeypatch):
    """AdamP's projection sums are read only where ndim > 1 and Ranger's channel means only
    where its gradient centralization applies (the planner's round conditions,
    ``rounds_needed``): on a vector no reduction kernel runs, and the step has the bits of the
    step that runs them all."""
    from optgen.runtime.loader import load

    for name, hypers in [("adamp", {"delta": 10.0}), ("ranger", {})]:
        module = load(name)
        rng = np.random.default_rng(3)
        start = [rng.standard_normal(s) for s in [(7,), (3, 4), ()]]
        grads = [[rng.standard_normal(p.shape) for p in start] for _ in range(3)]
        calls = []
        for attr in dir(module):
            if attr.startswith("reduce_"):
                kernel = getattr(module, attr)
                monkeypatch.setattr(module, attr, lambda *a, _k=kernel, _n=attr, **kw: (
                    calls.append((_n, a[0].shape)), _k(*a, **kw))[1])
        skipped = [p.copy() for p in start]
        opt = optgen.optimizer(name, skipped, backend=backend, **hypers)
        for g in grads:
            opt.step(g)
        assert calls and all(shape == (12,) for _, shape in calls), calls  # the matrix only
        monkeypatch.setattr(module, "rounds_needed",
                            lambda *host: (True,) * len(module.REDUCE_ROUNDS))
        every = [p.copy() for p in start]
        opt = optgen.optimizer(name, every, backend=backend, **hypers)
        for g in grads:
            opt.step(g)
        for a, b in zip(skipped, every):
            np.testing.assert_array_equal(a, b)
        assert any(shape == (7,) for _, shape in calls)  # now the vector's passes ran too


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_a_pass_one_tensor_of_the_group_needs_runs_on_all(tmp_path, backend):
    """Found by a hostile review: the vector below reads no sum, so it skipped its norm pass,
    then its part of the group sum divided by a norm of 0 and every tensor got -inf. A pass
    any tensor of a group needs runs on all of them."""
    spec = tmp_path / "g1.opt"
    spec.write_text("optimizer g1\nhyper lr = 0.1 in [0, inf)\nupdate:\n  n = norm(g)\n"
                    "  s = group_sum(g / n)\n  p = ndim > 1 ? p - lr * s : p\n")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(5), rng.standard_normal((2, 3))
    ga, gb = rng.standard_normal(5), rng.standard_normal((2, 3))
    want = b - 0.1 * ((ga / np.linalg.norm(ga)).sum() + (gb / np.linalg.norm(gb)).sum())
    start = a.copy()
    optgen.optimizer(str(spec), [a, b], backend=backend).step([ga, gb])
    np.testing.assert_array_equal(a, start)
    np.testing.assert_allclose(b, want, rtol=1e-12)


#: Per-channel values read by tensor reductions: the largest channel norm, and a sum of a
#: channel mean times g (each a pass over channel segments in the CPU kernels).
CHANNELS = """\
optimizer channel_reads
hyper lr = 0.1 in [0, inf)
update:
  top = amax(channel_norm(g) / (channel_norm(p) + 1))
  dot = sum(channel_mean(g) * g)
  p = p - lr * (g * top + dot / numel)
"""


def _channels_reference(p, g):
    view = (1, 1) if p.ndim == 0 else (p.shape[0], -1)
    gv, pv = g.reshape(view), p.reshape(view)
    ratio = np.sqrt((gv * gv).sum(axis=1)) / (np.sqrt((pv * pv).sum(axis=1)) + 1)
    top = ratio.max() if ratio.size and gv.size else -np.inf
    mean = (gv.sum(axis=1) / gv.shape[1]) if gv.shape[1] else np.zeros(gv.shape[0])
    dot = float((mean[:, None] * gv).sum())
    return p - 0.1 * (g * top + dot / max(p.size, 1))


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_per_channel_values_in_tensor_reductions(tmp_path, backend):
    """Channels shorter than a block, longer than one (4096 elements), and ending inside one:
    the CPU kernels read each channel's values once per segment; the values are the NumPy
    transcription's (rtol 1e-12), and the same bits with one thread as with two."""
    shapes = [(), (7,), (3, 5000), (2000, 3), (5, 3, 3), (1, 9000), (4097, 1)]
    rng = np.random.default_rng(3)
    params = [rng.standard_normal(s) for s in shapes]
    grads = [rng.standard_normal(s) for s in shapes]
    want = [_channels_reference(p, g) for p, g in zip(params, grads)]
    path = _spec(tmp_path, CHANNELS, "channel_reads")
    opt = optgen.optimizer(path, [p.copy() for p in params], backend=backend)
    opt.step([g.copy() for g in grads])
    for shape, got, expected in zip(shapes, opt.params, want):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=1e-15, err_msg=str(shape))
    if backend == "cpu":
        import numba

        bits = [p.copy() for p in opt.params]
        numba.set_num_threads(1)
        try:
            again = optgen.optimizer(path, [p.copy() for p in params], backend=backend)
            again.step([g.copy() for g in grads])
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        for shape, a, b in zip(shapes, bits, again.params):
            assert np.array_equal(a, b), shape


#: A factored tensor's reduction (its tiles' path) taking a max, and a tensor sum written both
#: directly and as the total of its channel means.
FACTORED_MAX = """\
optimizer factored_max
hyper lr = 1e-2 in [0, inf)
hyper eps = 1e-30 in [0, inf)
state row_var = 0 per-row if factored
state col_var = 0 per-col if factored
state variance = 0 if not factored
update:
  row_var = lerp(row_var, row_mean(g^2), 0.5)  if factored
  col_var = lerp(col_var, col_mean(g^2), 0.5)  if factored
  variance = lerp(variance, g^2, 0.5)          if not factored
  v = factored ? row_var * col_var / max(col_mean(row_var), eps) : variance
  u = g / sqrt(max(v, eps))
  p = p - lr * u / amax(abs(u))
"""

TOTALS = """\
optimizer channel_totals
hyper lr = 0.0 in [0, inf)
scalar o1 = 0
scalar o2 = 0
scalar o3 = 0
update:
  o1 = sum(g)
  o2 = mean(channel_mean(g))
  o3 = sum(g) * 2 + amax(channel_sum(g))
  p = p - lr * g
"""


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_found_by_a_review_of_the_reduction_kernels(tmp_path, backend):
    """Found by a hostile review: a factored tensor's tiles took an amax as a sum (its update
    was u/sum(|u|)), and a tensor sum rewritten as its channel sums' total collided with the
    same expression written in the spec (a NameError in the generated module)."""
    rng = np.random.default_rng(0)
    for shape in [(3, 4), (70, 100), (5,)]:
        p, g = rng.standard_normal(shape), rng.standard_normal(shape)
        opt = optgen.optimizer(_spec(tmp_path, FACTORED_MAX, "factored_max"), [p.copy()],
                               backend=backend)
        opt.step([g.copy()])
        if len(shape) >= 2:
            rows, cols = 0.5 * (g**2).mean(-1), 0.5 * (g**2).mean(-2)
            v = rows[..., :, None] * cols[..., None, :] / max(rows.mean(-1), 1e-30)
        else:
            v = 0.5 * g**2
        u = g / np.sqrt(np.maximum(v, 1e-30))
        np.testing.assert_allclose(opt.params[0], p - 1e-2 * u / np.abs(u).max(), rtol=RTOL,
                                   atol=1e-15, err_msg=str(shape))
    path = _spec(tmp_path, TOTALS, "channel_totals")
    for shape in [(3, 4), (5,), (2, 3, 2), (3, 5000)]:
        g = rng.standard_normal(shape)
        opt = optgen.optimizer(path, [np.zeros(shape)], backend=backend)
        opt.step([g])
        channels = g.reshape(shape[0], -1)
        want = [g.sum(), (channels.mean(axis=1)).mean(), 2 * g.sum() + channels.sum(axis=1).max()]
        got = [opt.state[0][name] for name in ("o1", "o2", "o3")]
        np.testing.assert_allclose(got, want, rtol=RTOL, err_msg=str(shape))
