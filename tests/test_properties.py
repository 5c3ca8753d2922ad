"""Property tests: random hyperparameters inside their domains still match torch.optim.

Tolerance: float64, rtol 1e-9 and atol 1e-12 over 6 steps (extreme betas near 1 make the bias
corrections tiny, which amplifies reassociation differences more than in the fixed cases).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

import optgen  # noqa: E402

unit = st.floats(0.0, 0.999)
positive = st.floats(1e-6, 1.0)
SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def compare(name, torch_class, hypers, backend, seed, steps=6):
    rng = np.random.default_rng(seed)
    shapes = [(), (5,), (2, 3)]
    params = [np.asarray(rng.standard_normal(s)) for s in shapes]
    tparams = [torch.tensor(p) for p in params]
    opt = optgen.optimizer(name, params, backend=backend, **hypers)
    topt = torch_class(tparams, foreach=False, **hypers)
    for _ in range(steps):
        grads = [np.asarray(rng.standard_normal(s)) for s in shapes]
        opt.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        topt.step()
    for got, want in zip(params, tparams):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-12)


@SETTINGS
@given(lr=positive, b1=unit, b2=unit, eps=st.floats(1e-10, 1.0), wd=st.floats(0.0, 1.0),
       amsgrad=st.booleans(), maximize=st.booleans(), decoupled=st.booleans(),
       backend=st.sampled_from(["cpu", "numpy"]), seed=st.integers(0, 2**16))
def test_adam_any_hypers(lr, b1, b2, eps, wd, amsgrad, maximize, decoupled, backend, seed):
    hypers = dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, amsgrad=amsgrad,
                  maximize=maximize, decoupled_weight_decay=decoupled)
    compare("adam", torch.optim.Adam, hypers, backend, seed)


@SETTINGS
@given(lr=positive, momentum=st.floats(0.0, 0.99), dampening=st.floats(-0.5, 1.0),
       wd=st.floats(0.0, 1.0), nesterov=st.booleans(), maximize=st.booleans(),
       backend=st.sampled_from(["cpu", "numpy"]), seed=st.integers(0, 2**16))
def test_sgd_any_hypers(lr, momentum, dampening, wd, nesterov, maximize, backend, seed):
    if nesterov and (momentum <= 0 or dampening != 0):
        with pytest.raises(ValueError, match="Nesterov momentum requires"):
            optgen.optimizer("sgd", [np.zeros(1)], nesterov=True, momentum=momentum,
                             dampening=dampening)
        return
    hypers = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=wd,
                  nesterov=nesterov, maximize=maximize)
    compare("sgd", torch.optim.SGD, hypers, backend, seed)


# alpha >= 0.1: at alpha = 0 centered RMSprop's variance estimate square_avg - grad_avg^2 is
# exactly zero in exact arithmetic, and its sign (sqrt of it: a number or NaN) is decided by the
# last rounding; torch's addcmul fuses the multiply-add there and optgen does not.
@SETTINGS
@given(lr=positive, alpha=st.floats(0.1, 0.999), eps=st.floats(1e-10, 1.0), wd=st.floats(0.0, 1.0),
       momentum=st.floats(0.0, 0.99), centered=st.booleans(), maximize=st.booleans(),
       backend=st.sampled_from(["cpu", "numpy"]), seed=st.integers(0, 2**16))
def test_rmsprop_any_hypers(lr, alpha, eps, wd, momentum, centered, maximize, backend, seed):
    hypers = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=wd, momentum=momentum,
                  centered=centered, maximize=maximize)
    compare("rmsprop", torch.optim.RMSprop, hypers, backend, seed)


@SETTINGS
@given(lr=positive, lr_decay=st.floats(0.0, 1.0), wd=st.floats(0.0, 1.0),
       init=st.floats(0.0, 1.0), eps=st.floats(1e-10, 1.0), maximize=st.booleans(),
       backend=st.sampled_from(["cpu", "numpy"]), seed=st.integers(0, 2**16))
def test_adagrad_any_hypers(lr, lr_decay, wd, init, eps, maximize, backend, seed):
    hypers = dict(lr=lr, lr_decay=lr_decay, weight_decay=wd, initial_accumulator_value=init,
                  eps=eps, maximize=maximize)
    compare("adagrad", torch.optim.Adagrad, hypers, backend, seed)


@SETTINGS
@given(lr=positive, b1=unit, b2=unit, eps=st.floats(1e-10, 1.0), wd=st.floats(0.0, 1.0),
       psi=st.floats(0.0, 0.1), decoupled=st.booleans(), maximize=st.booleans(),
       backend=st.sampled_from(["cpu", "numpy"]), seed=st.integers(0, 2**16))
def test_nadam_any_hypers(lr, b1, b2, eps, wd, psi, decoupled, maximize, backend, seed):
    hypers = dict(lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, momentum_decay=psi,
                  decoupled_weight_decay=decoupled, maximize=maximize)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # NAdam keeps mu_product in the default dtype
    try:
        compare("nadam", torch.optim.NAdam, hypers, backend, seed)
    finally:
        torch.set_default_dtype(default)


@SETTINGS
@given(lr=positive, etaminus=st.floats(0.05, 0.95), etaplus=st.floats(1.05, 3.0),
       smin=st.floats(0.0, 1e-3), smax=st.floats(1e-2, 10.0), maximize=st.booleans(),
       backend=st.sampled_from(["cpu", "numpy"]), seed=st.integers(0, 2**16))
def test_rprop_any_hypers(lr, etaminus, etaplus, smin, smax, maximize, backend, seed):
    hypers = dict(lr=lr, etas=(etaminus, etaplus), step_sizes=(smin, smax), maximize=maximize)
    compare("rprop", torch.optim.Rprop, hypers, backend, seed)
