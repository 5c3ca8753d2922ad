"""The element-wise functions a spec may call, and what each one means in SymPy.

One table serves the checker (names and arities) and the lowering (the SymPy meaning), so a
function added here is known to both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp


@dataclass(frozen=True)
class Function:
    min_args: int
    max_args: int | None  # None: any number
    to_sympy: Callable[..., sp.Basic]
    takes_condition: bool = False  # first argument is a condition (where)
    doc: str = ""


def _clip(x, low, high):
    return sp.Min(sp.Max(x, low), high)


def _lerp(start, end, weight):
    """torch.lerp's two-sided formula: exact at weight 0 and 1, the same rounding as torch."""
    return sp.Piecewise((start + weight * (end - start), sp.Lt(weight, sp.Rational(1, 2))),
                        (end - (end - start) * (1 - weight), True))


def _where(condition, then, otherwise):
    return sp.Piecewise((then, condition), (otherwise, True))


FUNCTIONS: dict[str, Function] = {
    "sqrt": Function(1, 1, sp.sqrt, doc="square root"),
    "abs": Function(1, 1, sp.Abs, doc="absolute value"),
    "sign": Function(1, 1, sp.sign, doc="-1, 0 or 1"),
    "exp": Function(1, 1, sp.exp, doc="e to the power x"),
    "log": Function(1, 1, sp.log, doc="natural logarithm"),
    "min": Function(2, None, sp.Min, doc="smallest argument"),
    "max": Function(2, None, sp.Max, doc="largest argument"),
    "clip": Function(3, 3, _clip, doc="clip(x, low, high) = min(max(x, low), high)"),
    "lerp": Function(3, 3, _lerp, doc="lerp(a, b, w) = a + w*(b - a), computed as torch.lerp"),
    "where": Function(3, 3, _where, takes_condition=True,
                      doc="where(c, a, b): a where c holds, else b"),
}
