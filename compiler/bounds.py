"""Bounded work for any spec: sizes the checker measures before SymPy sees a spec.

SymPy evaluates numbers exactly (``2^10^10`` is a ten-billion-bit integer), and the stages after
it walk expressions recursively (a chain of 200 ``m = b*m + g`` nests 400 deep) and as trees (an
update that reads its target twice, 30 times over, is a tree of 2^30 nodes). So every spec is
measured first, with deterministic limits rather than timeouts:

* :data:`MAX_DEPTH` — how deep an expression nests, written or with the temporaries and states
  it reads substituted (what SymPy will hold);
* :data:`MAX_SIZE` — how many nodes such an expression has, counted as a tree;
* :data:`MAX_DIGITS` — a bound on the digits of every number SymPy could make from the spec's
  numbers: numerators and denominators stay below ``10^MAX_DIGITS`` (so every constant also
  fits a float64, and host code never overflows converting one);
* :data:`MAX_STATEMENTS`, :data:`MAX_HYPERS`, :data:`MAX_ARRAYS` — how many statements,
  hyperparameters, and per-element states and inputs (each an array argument of every kernel)
  a spec may have.

The number bound is computed on a log10 scale, from the literals up: ``a*b`` adds the digits,
``a + b`` makes one more at most (and multiplies denominators), ``a^e`` with a constant exponent
multiplies them by ``|e|``, and a function of constants may evaluate (``exp(k*log(2))`` is
``2^k``). It is an upper bound, so a spec under it never makes SymPy build a larger number.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from . import nodes as n

MAX_DEPTH = 100
MAX_SIZE = 5000
MAX_DIGITS = 300
MAX_STATEMENTS = 1000
MAX_HYPERS = 256
MAX_ARRAYS = 32

#: Functions whose value has no larger numbers than their arguments' (one of them, a mean, a
#: root, a sign); the others may combine them (lerp), and norm/rms square theirs first.
_NO_LARGER = frozenset({"abs", "clip", "col_mean", "count_le", "default", "floor", "max", "mean",
                        "min", "norm", "rms", "row_mean", "sign", "sqrt", "sum", "where"})
_SQUARING = frozenset({"norm", "rms"})

_NUMBER = re.compile(r"(\d*)\.?(\d*)(?:[eE]([+-]?\d+))?")


@dataclass(frozen=True)
class Cost:
    """What an expression will be in SymPy: tree size, nesting depth, and log10 bounds on the
    numerators and denominators of the numbers in it."""

    size: int = 1
    depth: int = 1
    num: float = 0.0
    den: float = 0.0
    constant: bool = False  # no symbol: SymPy evaluates it
    has_log: bool = False   # exp() of it may evaluate to a power


SYMBOL = Cost()


class TooLarge(Exception):
    """An expression over a bound: ``message`` says which, at ``node``."""

    def __init__(self, message: str, node):
        super().__init__(message)
        self.message = message
        self.node = node


def number_digits(text: str) -> tuple[float, float]:
    """log10 bounds of a literal's exact numerator and denominator, from its text alone (no
    huge integer is ever made): ``2500`` is (3.4, 0), ``0.25`` is (1.4, 2)."""
    whole, fraction, exponent = _NUMBER.fullmatch(text).groups()
    if exponent is not None and len(exponent.lstrip("+-")) > 6:
        return math.inf, math.inf
    e = int(exponent or 0) - len(fraction)
    digits = (whole + fraction).lstrip("0")
    if not digits:
        return 0.0, 0.0
    mantissa = len(digits) - 1 + math.log10(float(digits[:15]) / 10 ** (min(len(digits), 15) - 1))
    return mantissa + max(e, 0), float(max(-e, 0))


def _log_add(a: float, b: float) -> float:
    """log10(10^a + 10^b), without overflow."""
    high, low = max(a, b), min(a, b)
    return high + math.log10(1 + 10 ** (low - high)) if high - low < 30 else high


def _join(node, parts: list[Cost], num: float, den: float, log: bool = False) -> Cost:
    cost = Cost(size=1 + sum(p.size for p in parts), depth=1 + max(p.depth for p in parts),
                num=num, den=den, constant=all(p.constant for p in parts),
                has_log=log or any(p.has_log for p in parts))
    return check(cost, node)


def check(cost: Cost, node) -> Cost:
    if cost.num > MAX_DIGITS or cost.den > MAX_DIGITS:
        raise TooLarge(f"a number here could need more than {MAX_DIGITS} digits (SymPy computes "
                       f"numbers exactly); the limit keeps every constant a float64", node)
    if cost.depth > MAX_DEPTH:
        raise TooLarge(f"this nests {cost.depth} operations deep, with the temporaries and "
                       f"states it reads substituted; the limit is {MAX_DEPTH}", node)
    if cost.size > MAX_SIZE:
        raise TooLarge(f"this has {cost.size} operations, with the temporaries and states it "
                       f"reads substituted; the limit is {MAX_SIZE}", node)
    return cost


def cost_of(expr: n.Expr, env: dict[str, Cost]) -> Cost:
    """The cost of ``expr``; names in ``env`` stand for the values they were assigned (others
    are symbols). Raises :class:`TooLarge` at the first node over a bound."""
    match expr:
        case n.Number(text=text):
            num, den = number_digits(text)
            return check(Cost(num=num, den=den, constant=True), expr)
        case n.Boolean() | n.String():
            return Cost(constant=True)
        case n.Name(id=name):
            return env.get(name, SYMBOL)
        case n.Neg(operand=a) | n.Not(operand=a):
            x = cost_of(a, env)
            return _join(expr, [x], x.num, x.den)
        case n.Binary(op=op, left=left, right=right):
            a, b = cost_of(left, env), cost_of(right, env)
            if op in "+-":
                return _join(expr, [a, b], _log_add(a.num + b.den, b.num + a.den), a.den + b.den)
            if op == "*":
                return _join(expr, [a, b], a.num + b.num, a.den + b.den)
            if op == "/":
                return _join(expr, [a, b], a.num + b.den, a.den + b.num)
            if op == "%":
                return _join(expr, [a, b], a.num + b.num + a.den + b.den, a.den + b.den)
            if b.constant:  # ^ with a constant exponent, |e| < 10^b.num: SymPy may evaluate it
                scale = 10 ** b.num
                if isinstance(right, n.Number):  # a literal exponent: not negative
                    return _join(expr, [a, b], a.num * scale, a.den * scale)
                digits = max(a.num, a.den)
                return _join(expr, [a, b], digits * scale, digits * scale)
            return _join(expr, [a, b], a.num + b.num, a.den + b.den)
        case n.Call(func=func, args=args):
            parts = [cost_of(a, env) for a in args]
            if not parts:
                return Cost(constant=True)
            if func in _SQUARING:  # sqrt(sum(x^2)): x^2 is made first
                check(Cost(num=2 * parts[0].num, den=2 * parts[0].den), expr)
            if func in _NO_LARGER:
                num, den = max(p.num for p in parts), max(p.den for p in parts)
            else:
                num, den = sum(p.num for p in parts) + 1, sum(p.den for p in parts)
            if func == "exp" and all(p.constant for p in parts) and any(p.has_log for p in parts):
                # exp(k*log(b)) is b^k to SymPy: |k| < 10^num digits of b each
                arg = max(parts[0].num, parts[0].den)
                num = den = 10 ** min(arg, 2 * MAX_DIGITS) * (arg + 1)
            return _join(expr, parts, num, den, log=func == "log")
        case n.Compare(left=left, right=right) | n.BoolOp(left=left, right=right):
            a, b = cost_of(left, env), cost_of(right, env)
            return _join(expr, [a, b], max(a.num, b.num), max(a.den, b.den))
        case n.Ternary(condition=c, then=a, otherwise=b):
            parts = [cost_of(x, env) for x in (c, a, b)]
            return _join(expr, parts, max(p.num for p in parts), max(p.den for p in parts))
    raise TypeError(f"unexpected node {expr!r}")  # pragma: no cover


def guarded(value: Cost, condition: Cost | None, old: Cost, node) -> Cost:
    """``x = e if c``: SymPy's ``Piecewise((e, c), (x, True))``."""
    if condition is None:
        return value
    parts = [value, condition, old]
    return check(Cost(size=1 + sum(p.size for p in parts),
                      depth=1 + max(p.depth for p in parts),
                      num=max(p.num for p in parts), den=max(p.den for p in parts),
                      constant=all(p.constant for p in parts),
                      has_log=any(p.has_log for p in parts)), node)
