"""``optgen demo``: train a logistic regression with each catalogue optimizer.

The data are synthetic (a fixed seed): 4,000 points in 64 dimensions labelled by a hidden linear
rule with 5% label noise. The parameters are a weight vector and a 0-d bias, stepped in place by
the generated kernels; the gradient is the exact gradient of the mean cross-entropy. Muon steps
2-D matrices only: it steps the weights as a 1 x 64 matrix and leaves the bias at 0 (as Muon is
used, beside another optimizer for the rest).
"""

from __future__ import annotations

import time

import numpy as np

from .runtime.factory import optimizer
from .runtime.loader import available, load

#: Hyperparameters that suit this problem; everything else is the spec's default.
SETTINGS = {
    "sgd": {"lr": 0.5, "momentum": 0.9, "nesterov": True},
    "adagrad": {"lr": 0.2},
    "rmsprop": {"lr": 0.03},
    "adam": {"lr": 0.05},
    "adamw": {"lr": 0.05, "weight_decay": 1e-3},
    "momentum_ema": {"lr": 0.5, "beta": 0.9},
    "adabelief": {"lr": 0.05},
    "adabound": {"lr": 0.05},
    "adamax": {"lr": 0.05},
    "asgd": {"lr": 0.5},
    "lamb": {"lr": 0.05},
    "lars": {"lr": 1.0},
    "lion": {"lr": 0.005},
    "nadam": {"lr": 0.05},
    "radam": {"lr": 0.05},
    "schedule_free_adamw": {"lr": 0.05},
    "sophia": {"lr": 0.005, "weight_decay": 0.0},
    "nesterov_lookahead": {"lr": 0.5, "momentum": 0.9},
    "adafactor": {"lr": 1.0},
    "muon": {"lr": 0.05, "weight_decay": 0.0},
    "adamp": {"lr": 0.05},
    "sgdp": {"lr": 0.5, "momentum": 0.9, "nesterov": True},
    "ranger": {"lr": 0.05},
}


def make_problem(n: int = 4000, d: int = 64, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w_true = rng.standard_normal(d)
    y = (x @ w_true + 0.5 > 0).astype(np.float64)
    flip = rng.random(n) < 0.05
    y[flip] = 1 - y[flip]
    return x, y


def loss_and_grads(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray):
    z = x @ w + b
    loss = np.mean(np.logaddexp(0.0, z) - y * z)
    r = (1.0 / (1.0 + np.exp(-z)) - y) / len(y)
    return loss, [x.T @ r, np.asarray(r.sum())]


def run_demo(steps: int = 300, backend: str = "cpu", echo=print) -> dict[str, float]:
    x, y = make_problem()
    echo(f"logistic regression: {x.shape[0]} points, {x.shape[1]} features, {steps} steps, "
         f"backend={backend}")
    names = available("optimizer")
    width = max(len(name) for name in names)
    echo(f"{'optimizer':<{width}} {'loss@0':>9} {'loss@end':>9} {'accuracy':>9} {'µs/step':>9}")
    finals = {}
    for name in names:
        w, b = np.zeros(x.shape[1]), np.zeros(())
        matrix_only = bool(load(name).MATRIX_OPS)
        params = [w.reshape(1, -1), b] if matrix_only else [w, b]

        def gradients():
            loss, (gw, gb) = loss_and_grads(w, b, x, y)
            return loss, ([gw.reshape(1, -1), None] if matrix_only else [gw, gb])

        opt = optimizer(name, params, backend=backend, **SETTINGS.get(name, {}))
        first, grads = gradients()
        opt.step(grads)  # the first step compiles (or loads) the kernel: not timed
        spent = 0.0
        for _ in range(steps - 1):
            _, grads = gradients()
            start = time.perf_counter()
            opt.step(grads)
            spent += time.perf_counter() - start
        last, _ = loss_and_grads(w, b, x, y)
        accuracy = np.mean(((x @ w + b) > 0) == (y > 0.5))
        finals[name] = float(last)
        echo(f"{name:<{width}} {first:>9.6f} {last:>9.6f} {accuracy:>9.3f} "
             f"{1e6 * spent / max(1, steps - 1):>9.1f}")
    return finals
