"""An optimizer spec that wraps another (``optimizer lookahead wraps inner``).

Each step runs the inner optimizer on the parameters, then the wrapper's own update on the
result, both generated kernels. The wrapper's states are created from the parameters before
the inner optimizer first moves them (Lookahead's slow weights start at the initial weights).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .checks import find_overlap, numpy_shares, numpy_spans, overlap_error


class Wrapped:
    """``outer`` (the wrapper spec's optimizer) after ``inner``, over the same params; made by
    :func:`optgen.optimizer` (:mod:`optgen.runtime.factory`)."""

    def __init__(self, outer, inner):
        self.outer = outer
        self.inner = inner
        self.backend = outer.backend
        self._lock = threading.Lock()
        inner.params = outer.params  # one list: a param replaced there is replaced for both

    @property
    def params(self) -> list:
        return self.outer.params

    @params.setter
    def params(self, params) -> None:
        """Both halves step the same params; set them here, not on one half."""
        self.outer.params = list(params)
        self.inner.params = self.outer.params

    @property
    def name(self) -> str:
        return f"{self.outer.name}({self.inner.name})"

    @property
    def hypers(self) -> dict[str, Any]:
        return {**self.inner.hypers, **self.outer.hypers}

    def set(self, **hypers) -> None:
        own = {k: v for k, v in hypers.items() if k in self.outer.hypers}
        rest = {k: v for k, v in hypers.items() if k not in own}
        saved = self.outer.hypers
        self.outer.set(**own)
        try:
            self.inner.set(**rest)
        except (TypeError, ValueError):
            self.outer.set(**saved)
            raise

    def __getattr__(self, key):
        if key in ("outer", "inner", "_lock"):
            raise AttributeError(key)
        hypers = self.hypers
        if key in hypers:
            return hypers[key]
        raise AttributeError(f"'Wrapped' object has no attribute {key!r}")

    def __setattr__(self, key, value):
        if key not in ("outer", "inner", "params", "backend", "_lock") and key in self.hypers:
            self.set(**{key: value})
        else:
            object.__setattr__(self, key, value)

    def step(self, grads, **inputs) -> None:
        """The inner step, then the outer one; every check of both before anything moves."""
        with self._lock:  # inner then outer, one thread's step at a time
            inner, outer = self.inner, self.outer
            if len(inner.params) != len(outer.params) or not all(
                    a is b for a, b in zip(inner.params, outer.params)):
                raise ValueError(f"{self.name}: the inner and outer optimizers hold different "
                                 "params; set wrapper.params, not one half's")
            grads = inner._check_grads(grads)
            # each half takes the extra inputs it declares (both, a name both declare); a
            # name neither declares is the inner's TypeError
            own = set(outer._module.INPUTS)
            outer_inputs = {k: v for k, v in inputs.items() if k in own}
            inputs = {k: v for k, v in inputs.items()
                      if k not in own or k in inner._module.INPUTS}
            inner._check_inputs(inputs, grads)
            outer._check_inputs(outer_inputs, grads)
            inner._check_matrices(grads)
            outer._check_matrices(grads)
            if hasattr(outer, "_snapshot"):  # NumPy arrays: both halves' states checked
                params = outer._checked_params()
                _check_overlaps_across(params, inner._snapshot(params, grads),
                                       outer._snapshot(params, grads))
            outer.prepare(grads)
            inner.step(grads, **inputs)
            outer.step(grads, **outer_inputs)

    @property
    def state(self) -> list[dict[str, Any]]:
        return [{**i, **o} for i, o in zip(self.inner.state, self.outer.state)]

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.name, "inner": self.inner.state_dict(),
                "outer": self.outer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Both halves validated before either is replaced."""
        if not isinstance(state_dict, dict) or {"inner", "outer"} - set(state_dict):
            raise TypeError("state_dict must come from this wrapper's state_dict()")
        if not hasattr(self.outer, "checked_state_dict"):  # CUDA halves: one after the other
            self.inner.load_state_dict(state_dict["inner"])
            self.outer.load_state_dict(state_dict["outer"])
            return
        install_inner = self.inner.checked_state_dict(state_dict["inner"])
        install_outer = self.outer.checked_state_dict(state_dict["outer"])
        install_inner()
        install_outer()


def _check_overlaps_across(params, *snapshots) -> None:
    """No state of one half shares memory with a state of the other, or with a param."""
    arrays = [(f"params[{i}]", p) for i, p in enumerate(params)]
    for half, snapshot in zip(("inner", "outer"), snapshots):
        arrays += [(f"{half} state {name!r} of params[{i}]", value)
                   for i, (_, kept) in snapshot.items() for name, value in kept.items()
                   if isinstance(value, np.ndarray)]
    pair = find_overlap(numpy_spans(arrays), numpy_shares)
    if pair is not None:
        raise overlap_error(*pair)
