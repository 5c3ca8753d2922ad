"""`optgen check` accepts exactly what builds (issue 11, section 6, the first cases): specs that
passed `check` and then failed at build, import or step time are either located errors now, or
build and step on 0-d, 1-D, 2-D and 3-D params with the numpy and cpu backends agreeing
(rtol 1e-12, float64)."""

from __future__ import annotations

import numpy as np
import pytest

import optgen
from optgen.compiler.errors import SpecError, SpecErrors
from optgen.compiler.pipeline import check_file
from optgen.runtime.loader import load

HEADER = "optimizer demo\nhyper lr = 0.1 in (0, inf)\n"

# (declarations and update, line, column, words the message must contain)
REFUSED = [
    pytest.param("state nc = cols\nupdate:\n  nc = nc + 1\n  p = p - lr * nc * g\n", 3, 12,
                 "'cols' is known only per tensor", id="cols-in-a-state-init"),
    pytest.param("state mx = norm(p)\nupdate:\n  mx = mx + 1\n  p = p - lr * mx * g\n", 3, 12,
                 "norm() is known only per tensor", id="reduction-in-a-state-init"),
    pytest.param("state r = 0 per-row if factored\nupdate:\n  u = g / norm(g)\n"
                 "  r = row_mean(u) if factored\n  p = p - lr * u\n", 6, 7,
                 "row_mean() of a reduction", id="row-mean-after-a-reduction"),
    pytest.param("update:\n  r = row_mean(g)\n  p = p - lr * r\n", 4, 7,
                 "needs a per-row or per-col state", id="row-mean-without-a-factored-state"),
    pytest.param("state update = 0\nupdate:\n  p = p - lr * g\n", 3, 1,
                 "'update' starts a line", id="a-state-named-like-a-keyword"),
    # the planner's errors, now at check time (check runs every stage)
    pytest.param("state r = 0 per-row if factored\nupdate:\n"
                 "  r = lerp(r, row_mean(g^2), 0.1) if factored\n  p = p - lr*g/sqrt(r+1e-8)\n",
                 6, 3, "exist only where 'factored' holds", id="factored-value-read-unguarded"),
    pytest.param("state r = 0 per-row if factored\nupdate:\n  r = g if factored\n"
                 "  p = factored ? p - lr*r : p\n", 5, 3, "varies along the columns",
                 id="per-row-state-varying-along-columns"),
    pytest.param("update:\n  o = orthogonalize(g, 3.4445, -4.775, 2.0315, 5, 1e-7)\n"
                 "  p = p - lr*o*norm(o)\n", 5, 16, "'o'", id="reduction-of-a-matrix-result"),
    pytest.param("update:\n  o = orthogonalize(g, 3.4, -4.7, 2.0, 100000000, 1e-7)\n"
                 "  p = p - lr*o\n", 4, 40, "iteration count", id="unbounded-matrix-iterations"),
    pytest.param("update:\n  o = orthogonalize(g, 3.4, -4.7, 2.0, t, 1e-7)\n  p = p - lr*o\n",
                 4, 40, "iteration count", id="matrix-iterations-varying-with-t"),
    # found by the fuzzer (tests/test_fuzz_specs.py)
    pytest.param("hyper h = 1\nupdate:\n  u = h - h\n  p = p - g % u\n", 6, 15,
                 "'%' by zero", id="modulo-by-zero"),
    # names the front ends use themselves (TypeError when given; AttributeError at step time)
    pytest.param("hyper params = 1\nupdate:\n  p = p - lr * params * g\n", 3, 1,
                 "take an argument 'params' of their own", id="a-hyper-named-params"),
    pytest.param("hyper self = 1\nupdate:\n  p = p - lr * self * g\n", 3, 1,
                 "could not be given", id="a-hyper-named-self"),
    pytest.param("state step = 0\nupdate:\n  p = p - lr * g\n", 3, 1,
                 "clash with the step count", id="a-state-named-step"),
    # the defaults break a requirement (every optimizer built from it raised ValueError)
    pytest.param('require lr > 1, "lr above 1"\nupdate:\n  p = p - lr * g\n', 3, 1,
                 "break this requirement ('lr above 1')", id="defaults-break-a-requirement"),
    # the planner's errors had no location
    pytest.param("state r = 0 per-row if factored\nupdate:\n  r = row_mean(g^2) if factored\n"
                 "  p = p - lr * row_mean(g)\n", 6, 3, "exist only where 'factored' holds",
                 id="row-mean-read-unguarded"),
    pytest.param("hyper h = true\nstate v = 0 if h\nstate r = 0 per-row if factored\nupdate:\n"
                 "  r = row_mean(v) if factored\n  v = g\n  p = p - lr * g\n", 7, 3,
                 "of conditional states or inputs", id="row-mean-of-a-conditional-state"),
    pytest.param("input q\nstate r = 0 per-row if factored\nupdate:\n"
                 "  r = row_mean(q * g) if factored\n  p = p - lr * g\n", 6, 3,
                 "of conditional states or inputs", id="row-mean-of-an-input"),
    # constants SymPy folds to what generated code cannot hold (was a KeyError out of check,
    # a TypeError at step time)
    pytest.param("update:\n  u = 0\n  p = p - lr * g / u\n", 5, 11, "infinite with no sign",
                 id="division-by-zero"),
    pytest.param("update:\n  p = p - lr * sqrt(-2) * g if log(-1) < 1\n", 4, 16,
                 "not a real number", id="square-root-of-a-negative-number"),
    pytest.param("update:\n  p = p - lr * (-pi)^(-pi) * g\n", 4, 16, "not a real number",
                 id="a-negative-irrational-to-an-irrational-power"),
    # a state, p or g holding a per-tensor value is one too (was a NameError at step time)
    pytest.param("update:\n  u = norm(g)\n  o = orthogonalize(g * u, 3.4, -4.7, 2.0, 5, 1e-7)\n"
                 "  p = p - lr * o\n", 5, 7, "reads 'u'", id="matrix-operation-of-a-norm"),
    # host values the host functions run without (was a KeyError out of check, a NameError
    # at step time)
    pytest.param("state m = epsilon\nupdate:\n  m = m + g\n  p = p - lr * m\n", 3, 11,
                 "'epsilon' is known only per tensor", id="epsilon-in-a-state-init"),
    pytest.param("scalar s = 0\nupdate:\n  s = factored ? 1 : 2\n  p = p - lr * s * g\n",
                 5, 3, "not 'factored'", id="scalar-state-from-factored"),
    pytest.param("input q\nscalar s = 0\nupdate:\n  k = has_q ? 1 : 0\n  s = s + k\n"
                 "  p = p - lr * s * g\n", 7, 3, "not 'k'", id="scalar-state-from-an-input-flag"),
]


@pytest.mark.parametrize("body, line, column, words", REFUSED)
def test_refused_with_a_located_error(tmp_path, body, line, column, words):
    path = tmp_path / "demo.opt"
    path.write_text(HEADER + body)
    with pytest.raises(SpecError) as info:
        check_file(path)
    errors = info.value.errors if isinstance(info.value, SpecErrors) else [info.value]
    assert any(e.span.line == line and e.span.column == column and words in e.message
               for e in errors), \
        [(e.span.line, e.span.column, e.message) for e in errors]


@pytest.mark.parametrize("spec, line, column, words", [
    pytest.param("optimizer demo extends base\nhyper k = 0.5\n", 2, 1,
                 "break the requirement 'k above 1' of base", id="defaults-break-the-base's"),
    pytest.param("optimizer demo extends one_cycle\n", 1, 24, "'one_cycle' is a schedule",
                 id="an-optimizer-extending-a-schedule"),
])
def test_extensions_refused_with_a_located_error(tmp_path, spec, line, column, words):
    """Found by the fuzzer: a base's requirement broken by this spec's defaults (a ValueError
    when built), a schedule extended (refused as an optimizer that never assigns p)."""
    (tmp_path / "base.opt").write_text("optimizer base\nhyper lr = 0.1\nhyper k = 2\n"
                                       'require k > 1, "k above 1"\nupdate:\n  p = p - lr*k*g\n')
    path = tmp_path / "demo.opt"
    path.write_text(spec)
    with pytest.raises(SpecError) as info:
        check_file(path)
    error = info.value
    assert (error.filename, error.span.line, error.span.column) == (str(path), line, column)
    assert words in error.message, error.message


ACCEPTED = [
    # reductions of values that read reductions: later reduction passes (were refused before
    # the planner had rounds)
    pytest.param("update:\n  c = sum(g * norm(g))\n  p = p - lr * c * g\n",
                 id="reduction-of-a-reduction"),
    pytest.param("update:\n  u = norm(g)\n  c = sum(g * u)\n  p = p - lr * c * g\n",
                 id="reduction-of-a-per-tensor-temporary"),
    pytest.param("update:\n  s = sum(g * cols)\n  p = p - lr * s * g\n",
                 id="cols-inside-a-reduction"),
    pytest.param("state s = 0\nupdate:\n  s = mean(p)\n  p = p - lr * rms(s + 1)\n",
                 id="reduction-of-a-state-holding-a-reduction"),
    pytest.param("update:\n  g = g / norm(g)\n  p = p - lr * g * sum(g)\n",
                 id="reduction-of-a-normalised-gradient"),
    pytest.param("update:\n  p = p - lr * g if norm(g) > 1\n  p = p - sum(p)\n",
                 id="reduction-of-p-assigned-under-a-per-tensor-condition"),
    pytest.param("state r = 0 per-row if factored\nupdate:\n  r = row_mean(g) if factored\n"
                 "  p = factored ? p - lr*r : p\n", id="a-variant-that-writes-nothing"),
    pytest.param("update:\n  s = sum(g * g)\n  p = p - lr * g * cols / (1 + s)\n",
                 id="cols-beside-a-reduction"),
    pytest.param("hyper use_gc = true\nstate r = 0 per-row if factored\nupdate:\n"
                 "  r = factored ? r : 0\n  p = p - lr * g\n", id="factored-state-kept"),
    pytest.param("hyper use_gc = true\nstate r = 0 per-row if factored\nupdate:\n"
                 "  r = row_mean(g) if use_gc and factored\n  p = factored ? p - lr * r : p\n",
                 id="two-conditions-on-a-row-mean"),
    # found by the fuzzer (tests/test_fuzz_specs.py)
    pytest.param("update:\n  p = p - 0\n", id="an-update-that-changes-nothing"),
    pytest.param("hyper h = true\nupdate:\n  u = h ? g > 0 : g < 1\n"
                 "  v = not u and (t > 1 ? h : not h)\n  p = v ? p - lr * g : p + lr\n",
                 id="a-choice-between-flags-in-a-condition"),
    # SymPy could not print default()^2, nor put a reduction of a constant in max()
    pytest.param("hyper e = (none, 1e-3) as (e1, e2)\nupdate:\n"
                 "  p = p - lr * g * default(e1, e2)^2 * max(sum(0.5), mean(2), 1)\n",
                 id="a-power-of-default-and-a-maximum-of-reductions-of-constants"),
    # a sum of one value over the tensor was summed (in another order on each backend:
    # t % it differed far beyond rounding); it is n times the value
    pytest.param("update:\n  p = p - lr * (t % sum(1e-8)) * g - mean(lr) * rms(2)\n",
                 id="a-sum-of-a-constant-is-n-times-it"),
    # pi was a Python float in host code: pi^1000 raised OverflowError
    pytest.param("update:\n  p = p - lr * g / (1 + pi^1000)\n", id="a-power-of-pi-overflows"),
    # t and int hypers reach host code as Python ints (was ZeroDivisionError, OverflowError)
    pytest.param("hyper k: int = 0\nupdate:\n  u = 1 / (t - 1) + floor(t / k) + 2^(1000 * t)\n"
                 "  p = p - lr * g / (1 + abs(u))\n", id="host-arithmetic-on-whole-numbers"),
]


@pytest.mark.parametrize("body", ACCEPTED)
def test_accepted_specs_build_and_step_everywhere(tmp_path, body):
    path = tmp_path / "demo.opt"
    path.write_text(HEADER + body)
    _builds_and_steps(path)


@pytest.mark.parametrize("base", ["adafactor", "muon"])
def test_a_spec_extending_a_factored_or_matrix_spec_builds(tmp_path, base):
    """Found by the fuzzer: the checker looked for per-row states, a choice's strings and an
    iteration count's domain in the spec's own declarations, not its base's (row_mean() was
    refused in adafactor's own file; a KeyError out of check for muon's adjust_lr_fn)."""
    path = tmp_path / "demo.opt"
    path.write_text(f"optimizer demo extends {base}\nhyper lr = 0.01\n")
    _builds_and_steps(path)


def _builds_and_steps(path):
    check_file(path)
    matrix = bool(load(str(path)).MATRIX_OPS)  # whole-matrix stages step 2-D params only
    for shape in [(3, 4), (4, 2)] if matrix else [(), (5,), (3, 4), (2, 3, 4)]:
        results = []
        for backend in ("numpy", "cpu"):
            p = np.linspace(-1, 1, int(np.prod(shape))).reshape(shape)
            opt = optgen.optimizer(str(path), [p], backend=backend)
            for step in range(3):
                opt.step([np.full(shape, 0.5) + step])
            results.append(p)
        np.testing.assert_allclose(results[1], results[0], rtol=1e-12, atol=0,
                                   err_msg=str(shape))


def test_a_schedule_on_whole_numbers_evaluates_at_every_step(tmp_path):
    """Found by the fuzzer: t and an int hyperparameter are Python ints to lr_at, so 1/t at
    t = 0 raised ZeroDivisionError and 2^(1000*t) OverflowError; host code computes in float64,
    as the kernels do."""
    path = tmp_path / "demo.opt"
    path.write_text("schedule demo\nhyper k: int = 0\nupdate:\n"
                    "  lr = 1 / t + floor(t / k) + 2^(1000 * t) + pi^1000\n")
    check_file(path)
    lrs = optgen.schedule(str(path)).values(3)
    assert np.isnan(lrs[0]) and lrs[1:] == [np.inf] * 2, lrs  # floor(0/0), then 1 + 0 + inf


@pytest.mark.parametrize("backend", ["numpy", "cpu"])
def test_a_wrapper_takes_its_own_inputs(tmp_path, backend):
    """Found by the fuzzer: a wrapper's extra input went to the inner optimizer (TypeError:
    sgd takes no input 'q'); each half takes the inputs it declares."""
    path = tmp_path / "demo.opt"
    path.write_text("optimizer demo wraps inner\nhyper w = 0.5\ninput q\n"
                    "update:\n  p = p - w * q if has_q\n")
    check_file(path)
    p = np.linspace(-1, 1, 6)
    start = p.copy()
    opt = optgen.optimizer(str(path), [p], backend=backend, inner="sgd", lr=0.5)
    opt.step([np.ones(6)], q=[np.full(6, 2.0)])
    np.testing.assert_allclose(p, start - 0.5 * 1 - 0.5 * 2, rtol=1e-15)
    opt.step([np.ones(6)])  # not given: the wrapper leaves p as the inner step made it
    np.testing.assert_allclose(p, start - 0.5 * 1 - 0.5 * 2 - 0.5, rtol=1e-15)


def test_torch_front_end_steps_a_state_some_params_lack(tmp_path):
    """Found by the fuzzer: a state that exists for some params only ('if not factored')
    was looked up for every param of a table after the first one's (KeyError at step time in
    optgen.torch)."""
    torch = pytest.importorskip("torch")
    import optgen.torch as ot

    path = tmp_path / "demo.opt"
    path.write_text(HEADER + "state v = 1 if not factored\nstate w = 2 if factored\nupdate:\n"
                    "  v = v + g\n  w = w * g\n  p = p - lr * (v + w)\n")
    shapes = [(3,), (2, 2), (), (2, 1, 3)]
    want = [np.linspace(-1, 1, int(np.prod(s))).reshape(s) for s in shapes]
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in want]
    numpy_opt = optgen.optimizer(str(path), want, backend="cpu")
    torch_opt = ot.optimizer(str(path), params)
    for step in range(3):
        grads = [np.full(s, 0.5 + step) for s in shapes]
        numpy_opt.step(grads)
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g)
        torch_opt.step()
    for p, w in zip(params, want):
        np.testing.assert_array_equal(p.detach().numpy(), w)
    assert [sorted(torch_opt.state[p]) for p in params] == [sorted(s) for s in
                                                            numpy_opt.state_dict()["state"]]


def test_torch_front_end_takes_a_new_lr_where_states_hang_on_factored(tmp_path):
    """Found with the fuzzer's spec above: which states exist was compared under a new lr
    without the params' own flags (TypeError from states_present: Adafactor under any
    torch scheduler)."""
    torch = pytest.importorskip("torch")
    import optgen.torch as ot

    path = tmp_path / "demo.opt"
    path.write_text(HEADER + "state v = 1 if not factored\nstate w = 2 if factored\nupdate:\n"
                    "  v = v + g\n  w = w * g\n  p = p - lr * (v + w)\n")
    shapes = [(3,), (2, 2)]
    want = [np.linspace(-1, 1, int(np.prod(s))).reshape(s) for s in shapes]
    params = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in want]
    numpy_opt = optgen.optimizer(str(path), want, backend="cpu")
    torch_opt = ot.optimizer(str(path), params)
    for step in range(3):
        numpy_opt.lr = torch_opt.param_groups[0]["lr"] = 0.1 / (step + 1)
        grads = [np.full(s, 0.5 + step) for s in shapes]
        numpy_opt.step(grads)
        for p, g in zip(params, grads):
            p.grad = torch.from_numpy(g)
        torch_opt.step()
    for p, w in zip(params, want):
        np.testing.assert_array_equal(p.detach().numpy(), w)
