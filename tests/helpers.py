"""Shared helpers: deterministic gradients and shapes for the differential tests."""

from __future__ import annotations

import numpy as np

#: 0-d, empty, 1-D, 2-D and 3-D parameters, stepped together.
SHAPES = [(), (0,), (7,), (3, 5), (2, 3, 4)]

#: Steps per differential test: enough for bias corrections to matter and fade, for momentum
#: buffers to build up, and for AMSGrad's maximum to switch sources.
STEPS = 25


def initial_params(dtype, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.asarray(rng.standard_normal(shape), dtype=dtype) for shape in SHAPES]


def gradient_sequence(dtype, steps: int = STEPS, seed: int = 1) -> list[list[np.ndarray]]:
    """Gradients for each step; their scale varies so AMSGrad's max and RMSprop's average move."""
    rng = np.random.default_rng(seed)
    return [[np.asarray(rng.standard_normal(shape) * (1 + 2 * (step % 3 == 0)), dtype=dtype)
             for shape in SHAPES] for step in range(steps)]


#: signSGD with momentum, the README's example of a spec written by a user.
SIGNUM_SPEC = """\
optimizer signum
  "signSGD with momentum (Bernstein et al., 2018): p -= lr * sign(m)."

hyper lr = 1e-2      in (0, inf)
hyper beta = 0.9     in [0, 1)

state m = 0

update:
  m = beta * m + (1 - beta) * g
  p = p - lr * sign(m)
"""
