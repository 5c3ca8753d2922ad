"""An optimizer spec that wraps another (``optimizer lookahead wraps inner``).

Each step runs the inner optimizer on the parameters, then the wrapper's own update on the
result, both generated kernels. The wrapper's states are created from the parameters before
the inner optimizer first moves them (Lookahead's slow weights start at the initial weights).
"""

from __future__ import annotations

from typing import Any

from .frontend import Optimizer, optimizer


class Wrapped:
    def __init__(self, module, params, inner=None, backend: str = "cpu", **hypers):
        if inner is None:
            raise TypeError(f"{module.NAME} wraps another optimizer: pass inner='adam' (a "
                            "catalogue name or a spec path)")
        own = {h.name for h in module.HYPERS}
        outer_hypers = {k: v for k, v in hypers.items() if k in own}
        if backend == "cuda":
            from .cuda_frontend import CudaOptimizer
            self.outer = CudaOptimizer(module, params, **outer_hypers)
        else:
            self.outer = Optimizer(module, params, backend=backend, **outer_hypers)
        self.inner = optimizer(inner, params, backend=backend,
                               **{k: v for k, v in hypers.items() if k not in own})
        self.params = self.outer.params
        self.backend = backend

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
        if key in ("outer", "inner"):
            raise AttributeError(key)
        hypers = self.hypers
        if key in hypers:
            return hypers[key]
        raise AttributeError(f"'Wrapped' object has no attribute {key!r}")

    def __setattr__(self, key, value):
        if key not in ("outer", "inner", "params", "backend") and key in self.hypers:
            self.set(**{key: value})
        else:
            object.__setattr__(self, key, value)

    def step(self, grads, **inputs) -> None:
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
