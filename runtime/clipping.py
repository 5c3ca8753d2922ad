"""Gradient clipping across all tensors, with ``torch.nn.utils`` semantics, for NumPy arrays.

``clip_grad_norm_(grads, max_norm, norm_type=2.0)``: the total norm is the norm of the
per-tensor norms; every gradient is multiplied in place by min(1, max_norm / (total + 1e-6)).
``clip_grad_value_(grads, clip_value)``: every element clipped to [-clip_value, clip_value].
Norms accumulate in float64 whatever the gradients' dtype.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _arrays(grads, name: str = "grads") -> list[np.ndarray]:
    if isinstance(grads, np.ndarray):
        grads = [grads]
    if not isinstance(grads, Sequence):
        raise TypeError(f"{name} must be an array or a list of arrays")
    out = []
    for i, g in enumerate(grads):
        if g is None:
            continue
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{name}[{i}] must be a numpy array, got {type(g).__name__}")
        if not g.flags.writeable:
            raise ValueError(f"{name}[{i}] is read-only; clipping works in place")
        out.append(g)
    return out


def clip_grad_norm_(grads, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale ``grads`` in place so their total ``norm_type``-norm is at most ``max_norm``;
    returns the total norm before clipping (``torch.nn.utils.clip_grad_norm_``)."""
    arrays = _arrays(grads)
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not arrays:
        return 0.0
    if math.isinf(norm_type):
        norms = [np.max(np.abs(g), initial=0.0) for g in arrays]
        total = float(max(norms))
    else:
        norms = [np.sum(np.abs(g.astype(np.float64)) ** norm_type) ** (1 / norm_type)
                 for g in arrays]
        total = float(np.sum(np.array(norms) ** norm_type) ** (1 / norm_type))
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite, "
                           "so it cannot be clipped. To disable this error and scale the "
                           "gradients by the non-finite norm anyway, set "
                           "error_if_nonfinite=False")
    coefficient = min(max_norm / (total + 1e-6), 1.0)
    for g in arrays:
        g *= g.dtype.type(coefficient)
    return total


def clip_grad_value_(grads, clip_value: float) -> None:
    """Clip every element of ``grads`` to [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for g in _arrays(grads):
        np.clip(g, -clip_value, clip_value, out=g)
