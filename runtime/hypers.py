"""Hyperparameters of a generated module as mutable, validated attributes.

Shared by optimizers and schedules: ``obj.hypers`` (a copy), ``obj.set(**hypers)`` (all or
nothing, each value checked against its type and domain, then the spec's ``require`` lines),
and attribute access (``opt.lr = 0.1``).
"""

from __future__ import annotations

import difflib
from typing import Any

from .kernels import host_value


class HasHypers:
    """Mixin for objects with ``_module``: validated hyperparameters as attributes."""

    def _init_hypers(self, hypers: dict[str, Any]) -> None:
        self._specs = {h.name: h for h in self._module.HYPERS}
        self._hypers = {h.name: h.coerce(h.default) for h in self._module.HYPERS}
        self.set(**hypers)


    @property
    def name(self) -> str:
        return self._module.NAME

    @property
    def hypers(self) -> dict[str, Any]:
        """A copy of the current hyperparameters."""
        return dict(self._hypers)

    def set(self, **hypers) -> None:
        """Change hyperparameters (e.g. ``lr`` from a schedule); all or none are applied."""
        self._hypers = self._checked_hypers(hypers)

    def _checked_hypers(self, hypers: dict) -> dict[str, Any]:
        """The hyperparameters with ``hypers`` changed, validated; nothing is applied."""
        new = dict(self._hypers)
        for key, value in hypers.items():
            spec = self._specs.get(key)
            if spec is None:
                close = difflib.get_close_matches(key, self._specs, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"{self.name} has no hyperparameter {key!r}{hint} "
                                f"(it has: {', '.join(self._specs)})")
            new[key] = spec.coerce(value)
        broken = self._module.violated_requirements(*self._flat(new))
        if broken:
            raise ValueError(f"{self.name}: {broken[0]}")
        return new

    def __getattr__(self, key):
        specs = self.__dict__.get("_specs", {})
        if key in specs:
            return self._hypers[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def __setattr__(self, key, value):
        if key in self.__dict__.get("_specs", {}):
            self.set(**{key: value})
        else:
            object.__setattr__(self, key, value)

    def _flat(self, hypers: dict[str, Any]) -> tuple:
        """Scalar hyper values in the generated functions' order; floats as NumPy float64, so
        host arithmetic gives inf/nan where Python floats would raise."""
        return tuple(host_value(v)
                     for h in self._module.HYPERS for v in h.flat(hypers[h.name]))
