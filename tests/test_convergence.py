"""Every catalogue optimizer converges on the background material's test functions.

Functions (2-D, float64, NumPy backend; gradients exact):
* quadratic  f = (x^2 + y^2)/2 from (3, -2): asserted loss < 1e-3;
* ravine     f = (x^2 + 100 y^2)/2 from (3, 1), condition number 100: loss < 1e-2;
* Rosenbrock f = (1 - x)^2 + 100 (y - x^2)^2 from (-1.5, 2), f = 12.5 there: loss < 0.3.
2,000 steps (5,000 for LAMB on Rosenbrock: its per-tensor trust ratio makes every step the same
length on this 2-element tensor). Learning rates come from a sweep over 1e-3..1 (the best per
function); they are settings that converge, not claims about the best optimizer.
"""

from __future__ import annotations

import numpy as np
import pytest

import optgen


def quadratic(x):
    return 0.5 * np.sum(x * x), x.copy()


def ravine(x):
    return 0.5 * (x[0] ** 2 + 100 * x[1] ** 2), np.array([x[0], 100 * x[1]])


def rosenbrock(x):
    a, b = x
    return (1 - a) ** 2 + 100 * (b - a * a) ** 2, \
        np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])


FUNCTIONS = {"quadratic": (quadratic, (3.0, -2.0), 1e-3),
             "ravine": (ravine, (3.0, 1.0), 1e-2),
             "rosenbrock": (rosenbrock, (-1.5, 2.0), 0.3)}

SOPHIA = {"lr": 0.01, "bs": 1, "rho": 0.05, "weight_decay": 0.0, "betas": (0.9, 0.99)}
#: optimizer -> (quadratic, ravine, rosenbrock) hyperparameters
SETTINGS = {
    "adabelief": ({"lr": 0.1}, {"lr": 0.1}, {"lr": 0.1}),
    "adabound": ({"lr": 1.0}, {"lr": 1.0}, {"lr": 0.03, "final_lr": 1e-3}),
    "adafactor": ({"lr": 1.0}, {"lr": 1.0}, {"lr": 1.0}),
    "adadelta": ({"lr": 1.0}, {"lr": 0.3}, {"lr": 0.3}),
    "adagrad": ({"lr": 1.0}, {"lr": 1.0}, {"lr": 1.0}),
    "adam": ({"lr": 0.3}, {"lr": 0.1}, {"lr": 0.3}),
    "adamax": ({"lr": 1.0}, {"lr": 1.0}, {"lr": 1.0}),
    "adamw": ({"lr": 0.3, "weight_decay": 0.0}, {"lr": 0.1, "weight_decay": 0.0},
              {"lr": 0.3, "weight_decay": 0.0}),
    "asgd": ({"lr": 0.3}, {"lr": 0.01}, {"lr": 1e-3}),
    "lamb": ({"lr": 1.0}, {"lr": 1.0}, {"lr": 0.01}),
    "lars": ({"lr": 1.0, "trust_coefficient": 1.0}, {"lr": 3e-3, "trust_coefficient": 1.0},
             {"lr": 0.01, "trust_coefficient": 1.0}),
    "lion": ({"lr": 0.1}, {"lr": 0.1}, {"lr": 3e-3}),
    "momentum_ema": ({"lr": 0.3}, {"lr": 0.1}, {"lr": 0.01}),
    "nadam": ({"lr": 0.1}, {"lr": 0.1}, {"lr": 0.03}),
    "nesterov_lookahead": ({"lr": 0.3}, {"lr": 0.01}, {"lr": 1e-3}),
    "radam": ({"lr": 0.3}, {"lr": 0.03}, {"lr": 0.01}),
    "rmsprop": ({"lr": 3e-3}, {"lr": 3e-3}, {"lr": 3e-3}),
    "rprop": ({"lr": 1.0}, {"lr": 1.0}, {"lr": 0.1}),
    "schedule_free_adamw": ({"lr": 0.3}, {"lr": 0.3}, {"lr": 0.1}),
    "sgd": ({"lr": 0.3}, {"lr": 0.01}, {"lr": 1e-3, "momentum": 0.9}),
    "sophia": (SOPHIA, SOPHIA, SOPHIA),
    "yogi": ({"lr": 0.1}, {"lr": 0.1}, {"lr": 0.1}),
    "adopt": ({"lr": 0.1}, {"lr": 0.1}, {"lr": 0.3}),
    "signsgd": ({"lr": 3e-3}, {"lr": 3e-3}, {"lr": 3e-3}),
    "adan": ({"lr": 0.1}, {"lr": 0.1}, {"lr": 0.1}),
    "novograd": ({"lr": 0.01}, {"lr": 0.01}, {"lr": 0.01}),
    "ademamix": ({"lr": 0.1}, {"lr": 0.1}, {"lr": 0.1}),
    # Prodigy learns its step size: its default lr = 1 on the quadratics
    "prodigy": ({}, {}, {"lr": 0.3}),
    "dadapt_adam": ({"lr": 0.3}, {"lr": 0.3}, {"lr": 0.1}),
    "madgrad": ({"lr": 0.3}, {"lr": 0.1}, {"lr": 3e-3}),
    # AdamP and SGDP step a vector x as Adam and SGD (no projection below two dimensions)
    "adamp": ({"lr": 0.3}, {"lr": 0.1}, {"lr": 0.3}),
    "sgdp": ({"lr": 0.3}, {"lr": 0.01}, {"lr": 1e-3, "momentum": 0.9}),
    # Ranger on a vector: RAdam with Lookahead (no gradient centralization below 2-D)
    "ranger": ({"lr": 0.1}, {"lr": 0.1}, {"lr": 0.1}),
    # MARS steps vectors with lr_1d (and weight_decay_1d = 0.1): its defaults
    "mars": ({}, {}, {}),
    # Muon steps matrices: x is stepped as a 1x2 view.
    "muon": tuple({"lr": 3e-3, "weight_decay": 0.0} for _ in range(3)),
}

CASES = [pytest.param(name, fname, hypers, id=f"{name}-{fname}")
         for name, per_function in SETTINGS.items()
         for fname, hypers in zip(FUNCTIONS, per_function)]
# Lookahead wraps an inner optimizer: around Adam with Adam's settings.
CASES += [pytest.param("lookahead", fname, {"inner": "adam", **hypers}, id=f"lookahead-{fname}")
          for fname, hypers in zip(FUNCTIONS, SETTINGS["adam"])]


def test_every_optimizer_has_settings():
    assert set(SETTINGS) == set(optgen.available("optimizer"))


@pytest.mark.parametrize("name, fname, hypers", CASES)
def test_converges(name, fname, hypers):
    f, start, target = FUNCTIONS[fname]
    x = np.array(start)
    initial = f(x)[0]
    shape = (1, 2) if name == "muon" else x.shape
    opt = optgen.optimizer(name, [x.reshape(shape)], backend="numpy", **hypers)
    steps = 5000 if (name, fname) == ("lamb", "rosenbrock") else 2000
    with np.errstate(all="ignore"):
        for _ in range(steps):
            _, g = f(x)
            opt.step([g.reshape(shape)], **({"hessian": [g * g]} if name == "sophia" else {}))
    loss = f(x)[0]
    assert loss < target < initial, f"{name} on {fname}: {initial:.3g} -> {loss:.3g}"
