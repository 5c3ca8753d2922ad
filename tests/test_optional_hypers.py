"""A number hyperparameter that defaults to none (issue 13): ``hyper T = none in (0, inf)``, read
as ``default(T, fallback)`` — torch's None, as AdEMAMix's warm-up horizon — in the checker, the
NumPy front end and optgen.torch."""

from __future__ import annotations

import numpy as np
import pytest

import optgen
from optgen.compiler.errors import SpecError
from optgen.compiler.pipeline import check_file

SPEC = """\
optimizer warm
  "momentum whose step warms up over an optional horizon"

hyper lr = 0.1 in [0, inf)
hyper horizon = none in (0, inf) "warm-up steps (none: no warm-up)"

state m = 0

update:
  h = default(horizon, 0)
  m = lerp(m, g, 0.5)
  p = p - lr * (h > 0 ? min(t / h, 1) : 1) * m
"""


def _spec(tmp_path, text=SPEC):
    path = tmp_path / "warm.opt"
    path.write_text(text)
    return str(path)


def _steps(path, **hypers):
    p = np.ones(3)
    opt = optgen.optimizer(path, [p], backend="cpu", **hypers)
    for _ in range(3):
        opt.step([np.ones(3)])
    return p, opt


def test_none_is_the_default_and_a_value_may_replace_it(tmp_path):
    path = _spec(tmp_path)
    p, opt = _steps(path)
    # no warm-up: m = 0.5, 0.75, 0.875; p = 1 - 0.1 * (0.5 + 0.75 + 0.875)
    np.testing.assert_allclose(p, 1 - 0.1 * 2.125, rtol=1e-15)
    assert opt.horizon is None
    q, _ = _steps(path, horizon=10.0)
    np.testing.assert_allclose(q, 1 - 0.1 * (0.5 / 10 + 0.75 * 2 / 10 + 0.875 * 3 / 10),
                               rtol=1e-15)


@pytest.mark.parametrize("bad, error", [({"horizon": -1.0}, ValueError),
                                        ({"horizon": "x"}, TypeError),
                                        ({"lr": None}, TypeError)])
def test_bad_values_are_refused_naming_the_hyper(tmp_path, bad, error):
    with pytest.raises(error, match=next(iter(bad))):
        optgen.optimizer(_spec(tmp_path), [np.ones(3)], **bad)


def test_optgen_torch_takes_none_in_a_group(tmp_path):
    torch = pytest.importorskip("torch")
    import optgen.torch as ot

    path = _spec(tmp_path)
    t = torch.ones(3, requires_grad=True)
    opt = ot.optimizer(path, [t])
    assert opt.param_groups[0]["horizon"] is None
    for horizon in (None, 10.0, None):
        opt.param_groups[0]["horizon"] = horizon
        t.grad = torch.ones(3)
        opt.step()
    p = np.ones(3)  # the same three steps through the NumPy front end, switching alike
    numpy_opt = optgen.optimizer(path, [p])
    for horizon in (None, 10.0, None):
        numpy_opt.horizon = horizon
        numpy_opt.step([np.ones(3)])
    np.testing.assert_allclose(t.detach().numpy(), p, rtol=1e-6)


@pytest.mark.parametrize("line, message", [
    ("hyper horizon: int = none in [1, 10]", "cannot default to none"),
])
def test_an_int_cannot_be_none(tmp_path, line, message):
    text = SPEC.replace('hyper horizon = none in (0, inf) "warm-up steps (none: no warm-up)"',
                        line).replace("h = default(horizon, 0)", "h = 0")
    with pytest.raises(SpecError, match=message):
        check_file(_spec(tmp_path, text))


def test_an_optional_hyper_is_read_through_default(tmp_path):
    text = SPEC.replace("h = default(horizon, 0)", "h = horizon")
    with pytest.raises(SpecError, match="read it as default"):
        check_file(_spec(tmp_path, text))
