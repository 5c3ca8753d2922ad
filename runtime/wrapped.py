"""An optimizer spec that wraps another (``optimizer lookahead wraps inner``).

Each step runs the inner optimizer on the parameters, then the wrapper's own update on the
result, both generated kernels. The wrapper's states are created from the parameters before
the inner optimizer first moves them (Lookahead's slow weights start at the initial weights).
"""

from __future__ import annotations

import threading
from typing import Any


class Wrapped:
    """``outer`` (the wrapper spec's optimizer) after ``inner``, over the same params; made by
    :func:`optgen.optimizer` (:mod:`optgen.runtime.factory`)."""

    def __init__(self, outer, inner):
        self.outer = outer
        self.inner = inner
        self.params = outer.params
        self.backend = outer.backend
        self._lock = threading.Lock()

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
        with self._lock:  # inner then outer, one thread's step at a time
            grads = self.inner._check_grads(grads)
            self.inner._check_inputs(inputs, grads)  # all checks before anything changes
            self.outer.prepare(grads)
            self.inner.step(grads, **inputs)
            self.outer.step(grads)

    @property
    def state(self) -> list[dict[str, Any]]:
        return [{**i, **o} for i, o in zip(self.inner.state, self.outer.state)]

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.name, "inner": self.inner.state_dict(),
                "outer": self.outer.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, dict) or {"inner", "outer"} - set(state_dict):
            raise TypeError("state_dict must come from this wrapper's state_dict()")
        self.inner.load_state_dict(state_dict["inner"])
        self.outer.load_state_dict(state_dict["outer"])
