"""What a generated module declares about its hyperparameters, and checking values against it."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass


@dataclass(frozen=True)
class HyperSpec:
    """One hyperparameter: ``type`` is "float", "int", "bool", "tuple" (of floats) or "choice".

    ``low``/``high`` bound the domain (``None``: no domain); a tuple's bounds hold for each item.
    A choice takes one of ``choices`` (``None`` means the default, as torch's ``None``); the
    generated functions get its index. A number or a tuple item whose default is None may be
    None (the generated functions get NaN, and the spec reads it with ``default()``).
    """

    name: str
    type: str
    default: object
    components: tuple[str, ...] = ()
    low: float | None = None
    high: float | None = None
    low_closed: bool | None = None
    high_closed: bool | None = None
    doc: str = ""
    choices: tuple[str, ...] = ()

    @property
    def domain_text(self) -> str:
        if self.type == "choice":
            return "{" + ", ".join(map(repr, self.choices)) + "}"
        if self.low is None:
            return ""
        low = "-inf" if math.isinf(self.low) else f"{self.low:g}"
        high = "inf" if math.isinf(self.high) else f"{self.high:g}"
        return f"{'[' if self.low_closed else '('}{low}, {high}{']' if self.high_closed else ')'}"

    def coerce(self, value, owner: str = ""):
        """``value`` as this hyper's Python type; TypeError/ValueError naming the hyper if not."""
        label = f"{owner}{self.name}"
        if self.type == "choice":
            if value is None:
                return self.default
            if value not in self.choices:
                raise ValueError(f"{label} must be one of {self.domain_text}, got {value!r}")
            return value
        if self.type == "bool":
            if not isinstance(value, (bool,)) and type(value).__name__ != "bool_":
                raise TypeError(f"{label} must be a bool, got {value!r}")
            return bool(value)
        if self.type == "list":
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise TypeError(f"{label} must be a list of numbers, got {value!r}")
            items = tuple(self._number(v, f"{label}[{i}]", float) for i, v in enumerate(value))
            for i, item in enumerate(items):
                self._in_domain(item, f"{label}[{i}]")
            return items  # a tuple: the optimizer's copy cannot be changed from outside
        if self.type == "tuple":
            if not isinstance(value, (tuple, list)) or len(value) != len(self.components):
                raise TypeError(f"{label} must be a tuple of {len(self.components)} numbers "
                                f"({', '.join(self.components)}), got {value!r}")
            optional = [d is None for d in self.default]
            items = tuple(None if v is None and optional[i] else
                          self._number(v, f"{label}[{i}]", float) for i, v in enumerate(value))
            for i, item in enumerate(items):
                if item is not None:
                    self._in_domain(item, f"{label}[{i}]")
            return items
        if type(value) is float and self.type == "float":  # the common case, fast
            number = value
        elif value is None and self.default is None:  # an optional number: none is its default
            return None
        else:
            number = self._number(value, label, int if self.type == "int" else float)
        self._in_domain(number, label)
        return number

    @staticmethod
    def _number(value, label: str, kind):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            article = "an" if kind.__name__[0] in "aeiou" else "a"
            raise TypeError(f"{label} must be {article} {kind.__name__}, got {value!r}")
        if kind is int:
            if not float(value).is_integer():
                raise TypeError(f"{label} must be an integer, got {value!r}")
            return int(value)
        return float(value)

    def _in_domain(self, value: float, label: str) -> None:
        if self.low is None:
            return
        ok = not math.isnan(value)
        ok = ok and (value > self.low or (self.low_closed and value == self.low))
        ok = ok and (value < self.high or (self.high_closed and value == self.high))
        if not ok:
            raise ValueError(f"{label}={value!r} is outside its domain {self.domain_text}")

    def flat(self, value) -> tuple:
        """The scalar values the generated functions take for this hyper."""
        if self.type == "choice":
            return (self.choices.index(value),)
        if self.type == "list":
            return (tuple(value),)
        return tuple(value) if self.type == "tuple" else (value,)
