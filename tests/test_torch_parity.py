"""Differential tests: every catalogue optimizer against torch.optim's single-tensor code.

Each case steps the same parameters (0-d, empty, 1-D, 2-D, 3-D) with the same gradients for
25 steps in optgen and in torch.optim (``foreach=False``), then compares parameters and every
state tensor. Tolerances, and why:

* float64: rtol 1e-10, atol 1e-13. optgen computes the same formulas but SymPy may reassociate
  (e.g. multiply by a hoisted 1/sqrt(1 - b2^t) where torch divides by sqrt(1 - b2^t)); each step
  can differ by a few ulps, which 25 steps of Adam amplify to ~1e-13 relative at worst.
* float32: rtol 2e-5, atol 2e-6 — the same reassociation at float32's 6e-8 ulp.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import optgen  # noqa: E402

from helpers import STEPS, gradient_sequence, initial_params  # noqa: E402

TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-6)}

CASES = {
    "sgd": (torch.optim.SGD, [
        {"lr": 0.01},
        {"lr": 0.01, "momentum": 0.9},
        {"lr": 0.01, "momentum": 0.9, "dampening": 0.3},
        {"lr": 0.01, "momentum": 0.9, "nesterov": True},
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "maximize": True},
        {"lr": 0.05, "momentum": 0.5, "nesterov": True, "weight_decay": 0.01, "maximize": True},
    ]),
    "adagrad": (torch.optim.Adagrad, [
        {},
        {"lr": 0.1, "lr_decay": 0.05},
        {"weight_decay": 0.1},
        {"initial_accumulator_value": 0.5},
        {"eps": 1e-3},
        {"maximize": True},
        {"lr": 0.05, "lr_decay": 0.01, "weight_decay": 0.01, "initial_accumulator_value": 0.1,
         "eps": 1e-6, "maximize": True},
    ]),
    "rmsprop": (torch.optim.RMSprop, [
        {},
        {"alpha": 0.9, "eps": 1e-6},
        {"momentum": 0.9},
        {"centered": True},
        {"centered": True, "momentum": 0.5},
        {"weight_decay": 0.1},
        {"maximize": True},
        {"lr": 0.001, "alpha": 0.95, "momentum": 0.8, "centered": True, "weight_decay": 0.05,
         "maximize": True},
    ]),
    "adam": (torch.optim.Adam, [
        {},
        {"lr": 0.01, "betas": (0.8, 0.99)},
        {"amsgrad": True},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
        {"maximize": True},
        {"eps": 1e-3, "betas": (0.0, 0.5)},
        {"lr": 0.02, "betas": (0.5, 0.9), "amsgrad": True, "weight_decay": 0.05,
         "decoupled_weight_decay": True, "maximize": True},
    ]),
    "adamax": (torch.optim.Adamax, [
        {},
        {"lr": 0.01, "betas": (0.8, 0.9), "eps": 1e-4},
        {"weight_decay": 0.1},
        {"maximize": True, "weight_decay": 0.01},
    ]),
    "adadelta": (torch.optim.Adadelta, [
        {},
        {"lr": 0.5, "rho": 0.5, "eps": 1e-3},
        {"rho": 1.0},
        {"weight_decay": 0.1},
        {"maximize": True, "weight_decay": 0.01},
    ]),
    "rprop": (torch.optim.Rprop, [
        {},
        {"lr": 0.1, "etas": (0.3, 1.5)},
        {"step_sizes": (1e-3, 0.05)},
        {"maximize": True},
    ]),
    # RAdam: with b2 = 0.999, rho_t first exceeds 5 at step 6, so 25 steps cover both branches.
    "radam": (torch.optim.RAdam, [
        {},
        {"lr": 0.01, "betas": (0.8, 0.9)},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
        {"maximize": True, "eps": 1e-4},
    ]),
    # ASGD keeps eta and mu as tensors of torch's default dtype; the float64 runs set it to
    # float64 (see run_torch) so that the reference does not round them to float32.
    "asgd": (torch.optim.ASGD, [
        {},
        {"lr": 0.05, "lambd": 0.01, "alpha": 0.5, "t0": 5},
        {"t0": 0},
        {"weight_decay": 0.1},
        {"maximize": True},
    ]),
    # NAdam keeps mu_product as a tensor of torch's default dtype (float64 in the float64 runs).
    "nadam": (torch.optim.NAdam, [
        {},
        {"lr": 0.01, "betas": (0.8, 0.9), "momentum_decay": 0.01},
        {"weight_decay": 0.1},
        {"weight_decay": 0.1, "decoupled_weight_decay": True},
        {"maximize": True, "eps": 1e-4},
    ]),
    # Adafactor: factored second moment for the 2-D and 3-D params, whole for the rest.
    "adafactor": (torch.optim.Adafactor, [
        {},
        {"lr": 0.05, "beta2_decay": -0.5},
        {"eps": (1e-3, 1e-2)},
        {"d": 1.5},
        {"weight_decay": 0.1},
        {"maximize": True},
        {"lr": 0.02, "beta2_decay": -0.6, "eps": (1e-20, 1e-4), "d": 2.0, "weight_decay": 0.05,
         "maximize": True},
    ]),
    "adamw": (torch.optim.AdamW, [
        {},
        {"weight_decay": 0.1, "lr": 0.01},
        {"amsgrad": True},
        {"maximize": True},
        {"weight_decay": 0.0},
    ]),
}

#: States torch keeps per tensor that optgen's specs compute from t on the host instead.
HOST_SIDE_STATE = {"asgd": ("eta", "mu")}
#: torch.optim.Adafactor divides by numel() (ZeroDivisionError on an empty param): its empty
#: param gets no gradient in either run.
SKIP_EMPTY = {"adafactor"}

PARAMS = [pytest.param(name, hypers, id=f"{name}-{i}")
          for name, (_, cases) in CASES.items() for i, hypers in enumerate(cases)]


def run_torch(name, hypers, dtype):
    torch_class = CASES[name][0]
    params = [torch.tensor(p) for p in initial_params(dtype)]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64 if dtype == np.float64 else torch.float32)
    try:
        opt = torch_class(params, foreach=False, **hypers)
        for grads in gradient_sequence(dtype):
            for p, g in zip(params, _skip_empty(name, grads)):
                p.grad = torch.tensor(g) if g is not None else None
            opt.step()
    finally:
        torch.set_default_dtype(default)
    states = [{k: (v.item() if k == "step" else v.numpy()) if torch.is_tensor(v) else v
               for k, v in opt.state[p].items()} for p in params]
    return [p.detach().numpy() for p in params], states


def run_optgen(name, hypers, dtype, backend):
    params = initial_params(dtype)
    opt = optgen.optimizer(name, params, backend=backend, **hypers)
    for grads in gradient_sequence(dtype):
        opt.step(_skip_empty(name, grads))
    return params, opt.state


def _skip_empty(name, grads):
    return [None if name in SKIP_EMPTY and g.size == 0 else g for g in grads]


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name, hypers", PARAMS)
def test_matches_torch(name, hypers, dtype, backend):
    want_params, want_states = run_torch(name, hypers, dtype)
    got_params, got_states = run_optgen(name, hypers, dtype, backend)
    tol = TOLERANCES[dtype]
    for i, (got, want) in enumerate(zip(got_params, want_params)):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, **tol, err_msg=f"params[{i}]")
    for i, (got, want) in enumerate(zip(got_states, want_states)):
        for key, value in want.items():
            if key == "step":
                assert got["step"] == int(value) == STEPS
                continue
            if key in HOST_SIDE_STATE.get(name, ()):  # optgen computes these from t
                continue
            if value is None:  # torch keeps no momentum buffer when momentum == 0
                assert key not in got
                continue
            assert key in got, f"state {key!r} missing from params[{i}]"
            if not isinstance(got[key], np.ndarray):  # a scalar state: one value per tensor
                np.testing.assert_allclose(got[key], float(value), **tol, err_msg=key)
                continue
            assert got[key].dtype == value.dtype
            np.testing.assert_allclose(got[key], value, **tol, err_msg=f"state[{i}][{key!r}]")
        extra = set(got) - set(want) - {"step"}
        assert not extra, f"optgen keeps states torch does not: {extra}"


@pytest.mark.parametrize("name", list(CASES))
def test_defaults_match_torch(name):
    """Drop-in: same hyperparameter names and defaults as the torch class (where torch has one)."""
    import inspect

    torch_class = CASES[name][0]
    module = optgen.runtime.loader.load(name)
    signature = inspect.signature(torch_class.__init__).parameters
    for hyper in module.HYPERS:
        if hyper.name == "decoupled_weight_decay" and name == "adamw":
            continue  # AdamW fixes it to True and does not take the argument
        assert hyper.name in signature, f"torch.optim has no {hyper.name!r}"
        default = signature[hyper.name].default
        assert hyper.default == (tuple(default) if isinstance(default, tuple) else default), hyper.name


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("name, hypers, torch_hypers", [
    ("momentum_ema", {"lr": 0.1, "beta": 0.8}, {"lr": 0.1 * (1 - 0.8), "momentum": 0.8}),
    ("nesterov_lookahead", {"lr": 0.05, "momentum": 0.9},
     {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
])
def test_momentum_forms_match_torch_sgd(name, hypers, torch_hypers, backend):
    """The forms `optgen verify` proves equivalent to torch's SGD also step like it (float64)."""
    params = initial_params(np.float64)
    tparams = [torch.tensor(p) for p in params]
    opt = optgen.optimizer(name, params, backend=backend, **hypers)
    topt = torch.optim.SGD(tparams, foreach=False, **torch_hypers)
    for grads in gradient_sequence(np.float64):
        opt.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        topt.step()
    for got, want in zip(params, tparams):
        np.testing.assert_allclose(got, want.numpy(), **TOLERANCES[np.float64])


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_adafactor_long_rows_match_torch(dtype, backend):
    """Rows of 64 or more columns take the CPU kernels' row/column loop nest (shorter ones, as
    in the shapes above, the flat loop): both against torch, same tolerances."""
    rng = np.random.default_rng(4)
    shapes = [(3, 70), (2, 2, 80), (5, 64)]
    start = [rng.standard_normal(s).astype(dtype) for s in shapes]
    params = [p.copy() for p in start]
    tparams = [torch.tensor(p.copy()) for p in start]
    opt = optgen.optimizer("adafactor", params, backend=backend, weight_decay=0.01)
    ref = torch.optim.Adafactor(tparams, foreach=False, weight_decay=0.01)
    for _ in range(STEPS):
        grads = [rng.standard_normal(s).astype(dtype) for s in shapes]
        opt.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        ref.step()
    for got, want in zip(params, tparams):
        np.testing.assert_allclose(got, want.numpy(), **TOLERANCES[dtype])
    for state, p in zip(opt.state, tparams):
        for key in ("row_var", "col_var"):
            np.testing.assert_allclose(state[key], ref.state[p][key].numpy(), **TOLERANCES[dtype])
