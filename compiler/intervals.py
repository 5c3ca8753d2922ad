"""Interval bounds of an expression over a box of its symbols' domains, for sign proofs.

:func:`bound` encloses every value an expression takes while each symbol ranges over its
:class:`Span` (declared domain, assumptions, ``given`` bounds): if the lower end of the
enclosure is at least 0, the expression is nonnegative on the whole box. This is interval
arithmetic (Moore, *Interval Analysis*, 1966) over exact rationals, rounded outward where an
end is irrational (``sqrt(2)``, ``exp(1)``), with each end marked open or closed so that strict
claims (``> 0``) are proved only where no point of the box reaches 0.

It is sound by construction — each rule encloses the true range — and incomplete, as interval
arithmetic is: ``x - x`` encloses ``[-2, 2]`` for ``x`` in ``[0, 1]``. :mod:`.sign_proofs`
counters that by trying several algebraic forms, splitting cases and using monotonicity.
Anything the rules do not cover (a function they do not know, a possibly complex power) has no
enclosure (None), and then nothing is proved.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .functions import Select

_OO = sp.oo
_ROUND = 30  # digits an irrational end is computed to before it is rounded outward


@dataclass(frozen=True)
class Span:
    """The real numbers between ``lo`` and ``hi`` (exact Rationals or -oo/oo; an infinite end
    is always open): ``lo < x`` if ``lo_open`` else ``lo <= x``, and likewise at ``hi``."""
    lo: sp.Basic
    hi: sp.Basic
    lo_open: bool = False
    hi_open: bool = False

    def __post_init__(self):
        if self.lo == -_OO or self.lo == _OO:
            object.__setattr__(self, "lo_open", True)
        if self.hi == _OO or self.hi == -_OO:
            object.__setattr__(self, "hi_open", True)

    @classmethod
    def point(cls, value) -> "Span":
        return cls(value, value)

    def nonnegative(self) -> bool:
        return self.lo >= 0

    def positive(self) -> bool:
        return self.lo > 0 or (self.lo == 0 and self.lo_open)

    def nonpositive(self) -> bool:
        return self.hi <= 0

    def negative(self) -> bool:
        return self.hi < 0 or (self.hi == 0 and self.hi_open)

    def holds_zero(self) -> bool:
        """Whether 0 may be in the span."""
        return not (self.positive() or self.negative())

    def intersect(self, other: "Span") -> "Span | None":
        lo, lo_open = max((self.lo, self.lo_open), (other.lo, other.lo_open),
                          key=lambda end: (end[0], end[1]))
        hi, hi_open = min((self.hi, not self.hi_open), (other.hi, not other.hi_open),
                          key=lambda end: (end[0], end[1]))
        hi_open = not hi_open
        if lo > hi or (lo == hi and (lo_open or hi_open)):
            return None
        return Span(lo, hi, lo_open, hi_open)


REAL = Span(-_OO, _OO, True, True)


def _down(value) -> sp.Basic:
    """A Rational at most ``value`` (an exact real number or +-oo), close to it."""
    return _outward(value, -1)


def _up(value) -> sp.Basic:
    return _outward(value, 1)


def _outward(value, direction: int) -> sp.Basic:
    value = sp.sympify(value)
    if value.is_Rational or value in (_OO, -_OO):
        return value
    if value is sp.nan or value.is_real is False:
        raise ValueError("not a real number")
    approx = sp.Rational(str(sp.N(value, _ROUND)))
    margin = sp.Rational(1, 10 ** (_ROUND - 5)) * max(1, abs(approx))
    return approx + direction * margin


def _hull(candidates) -> Span:
    """The smallest span holding each (value, attained) candidate: an end is closed if any
    candidate at it is attained."""
    lo = min(value for value, _ in candidates)
    hi = max(value for value, _ in candidates)
    lo_closed = any(attained for value, attained in candidates if value == lo)
    hi_closed = any(attained for value, attained in candidates if value == hi)
    return Span(lo, hi, not lo_closed, not hi_closed)


def _ends(span: Span):
    return ((span.lo, not span.lo_open), (span.hi, not span.hi_open))


def add(a: Span, b: Span) -> Span:
    return Span(a.lo + b.lo, a.hi + b.hi, a.lo_open or b.lo_open, a.hi_open or b.hi_open)


def negate(a: Span) -> Span:
    return Span(-a.hi, -a.lo, a.hi_open, a.lo_open)


def _times(x, x_attained, y, y_attained):
    """One corner of a product. 0 times an infinite end is 0 (the values near the infinite end
    are finite), attained if the 0 is."""
    if x == 0 or y == 0:
        return sp.S.Zero, (x == 0 and x_attained) or (y == 0 and y_attained)
    return x * y, x_attained and y_attained


def multiply(a: Span, b: Span) -> Span:
    # A product's extremes over a box are at corners (it is linear in each factor).
    return _hull([_times(x, xa, y, ya) for x, xa in _ends(a) for y, ya in _ends(b)])


def reciprocal(a: Span) -> Span | None:
    """1/x over the span; None if the span may hold 0 at a point it reaches or inside."""
    if a.lo > 0 or (a.lo == 0 and a.lo_open and a.hi > 0):
        lo = sp.S.Zero if a.hi == _OO else 1 / a.hi
        hi = _OO if a.lo == 0 else 1 / a.lo
        return Span(lo, hi, a.hi_open, a.lo_open)
    if a.hi < 0 or (a.hi == 0 and a.hi_open and a.lo < 0):
        return negate(reciprocal(negate(a)))
    return None


#: Beyond this exponent a corner x^e (x not 0 or 1) is not computed exactly: its value is
#: enclosed between x^64 and 0 or oo, which is looser but never wrong.
_EXACT_EXPONENT = 64


def _power_corner(x, x_attained, e, e_attained):
    """Candidates (value, attained) for lim x^e at one corner of (base, exponent), base >= 0;
    None where it has no limit."""
    attained = x_attained and e_attained
    if x == 0:
        if e == 0:
            return [(sp.S.One, attained)]  # 0^0 = 1, as SymPy and the kernels read it
        return [(sp.S.Zero, attained)] if e > 0 else [(_OO, False)]
    if x == _OO:
        if e == 0:
            return None
        return [(_OO, False)] if e > 0 else [(sp.S.Zero, False)]
    if x == 1:
        return [(sp.S.One, x_attained)]
    if e in (_OO, -_OO):
        return [(sp.S.Zero, False)] if (x < 1) == (e == _OO) else [(_OO, False)]
    if abs(e) > _EXACT_EXPONENT:
        near = sp.Pow(x, _EXACT_EXPONENT if e > 0 else -_EXACT_EXPONENT)
        far = sp.S.Zero if (x < 1) == (e > 0) else _OO
        return [(near, False), (far, False)]
    return [(sp.Pow(x, e), attained)]


def power(base: Span, exponent: Span, integer_exponent: bool) -> Span | None:
    """x^e for x, e ranging over their spans. A base that may be negative is allowed only
    under an integer exponent (then |x|^e bounds the magnitude)."""
    if base.lo < 0:
        if not integer_exponent:
            return None
        magnitude = power(Span(sp.S.Zero, max(-base.lo, base.hi), False,
                               base.hi_open if base.hi >= -base.lo else base.lo_open),
                          exponent, True)
        if magnitude is None:
            return None
        return Span(-magnitude.hi, magnitude.hi, magnitude.hi_open, magnitude.hi_open)
    # For a base >= 0 x^e is monotone in x for each e and in e for each x: corners bound it,
    # except along x = 0, where 0^e jumps from 1 (e = 0) to 0 (e > 0): there 0 is reached
    # wherever the span of e holds a positive value.
    corners = []
    if base.lo == 0 and not base.lo_open and (exponent.hi > 0):
        corners.append((sp.S.Zero, True))
    for x, xa in _ends(base):
        for e, ea in _ends(exponent):
            corner = _power_corner(x, xa, e, ea)
            if corner is None:
                return None
            corners.extend(corner)
    try:
        if all(v.is_Rational or v in (_OO, -_OO) for v, _ in corners):
            return _hull(corners)
        return _hull_outward(corners)
    except (ValueError, TypeError):
        return None


def _hull_outward(candidates) -> Span:
    """Like :func:`_hull` for irrational candidates: ends rounded outward (then open only if
    every candidate there is; an irrational end rounded outward is not reached, so open)."""
    values = [(v, a) for v, a in candidates]
    low = min(values, key=lambda c: sp.N(c[0], _ROUND))[0]
    high = max(values, key=lambda c: sp.N(c[0], _ROUND))[0]
    lo, hi = _down(low), _up(high)
    # an end is reached if any candidate equal to it is (ties included)
    lo_open = not (lo == low and any(a for v, a in values if v == low))
    hi_open = not (hi == high and any(a for v, a in values if v == high))
    return Span(lo, hi, lo_open, hi_open)


def _monotone(function, span: Span, increasing: bool) -> Span | None:
    """The image of a span under a continuous monotone function (ends evaluated exactly, then
    rounded outward)."""
    try:
        lo, hi = function(span.lo), function(span.hi)
        if not increasing:
            lo, hi = hi, lo
            lo_open, hi_open = span.hi_open, span.lo_open
        else:
            lo_open, hi_open = span.lo_open, span.hi_open
        low, high = _down(lo), _up(hi)
    except (ValueError, TypeError):
        return None
    return Span(low, high, lo_open or low != lo, hi_open or high != hi)


def _exp(v):
    return _OO if v == _OO else sp.S.Zero if v == -_OO else sp.exp(v)


def _log(v):
    return _OO if v == _OO else -_OO if v == 0 else sp.log(v)


_UNIT = Span(sp.S.NegativeOne, sp.S.One)


def bound(expr: sp.Basic, box: dict[sp.Symbol, Span]) -> Span | None:
    """An enclosure of ``expr`` while each symbol ranges over ``box`` (or, for a symbol not in
    it, over what its assumptions allow); None where the rules cannot bound it."""
    try:
        return _bound(expr, box)
    except (ValueError, TypeError, ZeroDivisionError, RecursionError):
        return None


def symbol_span(symbol: sp.Symbol) -> Span | None:
    """What a symbol's SymPy assumptions allow; None for a symbol that may be non-real."""
    if symbol.is_real is not True:
        return None
    lo, lo_open, hi, hi_open = -_OO, True, _OO, True
    if symbol.is_positive:
        lo, lo_open = sp.S.Zero, True
    elif symbol.is_nonnegative:
        lo, lo_open = sp.S.Zero, False
    if symbol.is_negative:
        hi, hi_open = sp.S.Zero, True
    elif symbol.is_nonpositive:
        hi, hi_open = sp.S.Zero, False
    if symbol.is_integer:
        if lo == 0 and lo_open:
            lo, lo_open = sp.S.One, False
        if hi == 0 and hi_open:
            hi, hi_open = sp.S.NegativeOne, False
    return Span(lo, hi, lo_open, hi_open)


def _trig(function, turns: Span) -> Span:
    """cos(pi*u) or sin(pi*u) for u over a span (the argument in units of pi, so that the
    extrema are at rational u): the ends' values and every extremum inside (cos is 1 at even
    u, -1 at odd u; sin a half unit later)."""
    if turns.lo == -_OO or turns.hi == _OO or turns.hi - turns.lo >= 2:
        return _UNIT
    phase = sp.S.Zero if function is sp.cos else sp.S.Half
    candidates = [(function(sp.pi * turns.lo), not turns.lo_open),
                  (function(sp.pi * turns.hi), not turns.hi_open)]
    for k in range(int(sp.ceiling(turns.lo - phase)), int(sp.floor(turns.hi - phase)) + 1):
        at = k + phase
        reached = (turns.lo < at or (at == turns.lo and not turns.lo_open)) and \
            (at < turns.hi or (at == turns.hi and not turns.hi_open))
        candidates.append((sp.S.NegativeOne ** k, reached))
    return _hull_outward(candidates)


def _in_turns(argument, box) -> Span | None:
    """The span of argument/pi: exact when the argument is pi times something."""
    turns = sp.cancel(argument / sp.pi)
    if not turns.has(sp.pi):
        return _bound(turns, box)
    span = _bound(argument, box)
    if span is None:
        return None
    scale = Span(_down(1 / sp.pi), _up(1 / sp.pi), True, True)
    return multiply(span, scale)


def _ratio_in_unit(numerator, denominator, box) -> Span | None:
    """N/D lies in [0, 1] where N >= 0 and D - N >= 0 (and D > 0), in [0, 1) where D - N > 0:
    the dependency interval arithmetic loses in t/(t + s)."""
    top = _bound(numerator, box)
    if top is None or not top.nonnegative():
        return None
    gap = _bound(denominator - numerator, box)
    if gap is None or not gap.nonnegative():
        return None
    if not (top.positive() or gap.positive()):
        return None  # D may be 0
    return Span(sp.S.Zero, sp.S.One, top.lo_open, gap.positive())


def _bound(expr, box) -> Span | None:
    if expr.is_Rational:
        return Span.point(expr)
    if isinstance(expr, sp.Symbol):
        own = symbol_span(expr)
        if expr in box:
            return box[expr] if own is None else box[expr].intersect(own)
        return own
    if expr.is_number:
        if expr.is_real is not True or expr.has(sp.nan, sp.zoo, _OO, -_OO):
            return None
        return Span(_down(expr), _up(expr), True, True)
    if isinstance(expr, sp.Add):
        total = Span.point(sp.S.Zero)
        for term in expr.args:
            part = _bound(term, box)
            if part is None:
                return None
            total = add(total, part)
        return total
    if isinstance(expr, sp.Mul):
        numerator, denominator = [], []
        for factor in expr.args:
            base, exponent = factor.as_base_exp()
            (denominator if exponent.is_negative and exponent.is_Rational else numerator).append(
                factor)
        total = Span.point(sp.S.One)
        for factor in numerator:
            part = _bound(factor, box)
            if part is None:
                return None
            total = multiply(total, part)
        if denominator:
            under = sp.Mul(*[1 / f for f in denominator])
            below = _bound(under, box)
            flipped = None if below is None else reciprocal(below)
            unit = _ratio_in_unit(sp.Mul(*numerator), under, box) or (
                lambda s: s and negate(s))(_ratio_in_unit(-sp.Mul(*numerator), under, box))
            if flipped is None:
                return unit
            total = multiply(total, flipped)
            if unit is not None:
                total = total.intersect(unit) or unit
        return total
    if isinstance(expr, sp.Pow):
        return _bound_power(expr, box)
    return _bound_function(expr, box)


def _bound_power(expr: sp.Pow, box) -> Span | None:
    base, exponent = expr.args
    inner = _bound(base, box)
    if inner is None:
        return None
    if exponent.is_Integer:
        n = int(exponent)
        if n < 0:
            positive = _bound_power(sp.Pow(base, -exponent, evaluate=False), box)
            return None if positive is None else reciprocal(positive)
        if n % 2 == 1:
            return Span(inner.lo ** n, inner.hi ** n, inner.lo_open, inner.hi_open)
        corners = [(x ** n, attained) for x, attained in _ends(inner)]
        if inner.holds_zero():
            corners.append((sp.S.Zero, inner.lo <= 0 <= inner.hi and not (
                (inner.lo == 0 and inner.lo_open) or (inner.hi == 0 and inner.hi_open))))
        return _hull(corners)
    spread = _bound(exponent, box)
    if spread is None:
        return None
    if exponent.is_number and exponent.is_Rational and inner.lo < 0:
        return None  # a fractional power of a negative number is not real
    return power(inner, spread, exponent.is_integer is True)


def _bound_function(expr, box) -> Span | None:
    args = [_bound(a, box) for a in expr.args] if expr.args else []
    if any(a is None for a in args):
        return None
    if isinstance(expr, sp.exp):
        return _monotone(_exp, args[0], True)
    if isinstance(expr, sp.log):
        if args[0].lo < 0 or (args[0].lo == 0 and not args[0].lo_open):
            return None
        return _monotone(_log, args[0], True)
    if isinstance(expr, sp.Abs):
        a = args[0]
        if a.nonnegative():
            return a
        if a.nonpositive():
            return negate(a)
        return _hull([(abs(x), attained) for x, attained in _ends(a)] + [(sp.S.Zero, True)])
    if isinstance(expr, sp.sign):
        a = args[0]
        lo = sp.S.One if a.positive() else sp.S.Zero if a.nonnegative() else sp.S.NegativeOne
        hi = sp.S.NegativeOne if a.negative() else sp.S.Zero if a.nonpositive() else sp.S.One
        return Span(lo, hi)
    if isinstance(expr, (sp.Max, sp.Min)):
        pick = max if isinstance(expr, sp.Max) else min
        lo = pick(args, key=lambda a: (a.lo, not a.lo_open) if pick is max else
                  (a.lo, a.lo_open))
        hi = pick(args, key=lambda a: (a.hi, not a.hi_open) if pick is max else
                  (a.hi, a.hi_open))
        return Span(lo.lo, hi.hi, lo.lo_open, hi.hi_open)
    if isinstance(expr, (sp.cos, sp.sin)):
        turns = _in_turns(expr.args[0], box)
        return _UNIT if turns is None else _trig(type(expr), turns)
    if isinstance(expr, sp.tanh):
        return _monotone(lambda v: sp.S.One if v == _OO else sp.S.NegativeOne if v == -_OO
                         else sp.tanh(v), args[0], True)
    if isinstance(expr, sp.floor):  # an integer end left open is not reached: one below
        a = args[0]
        hi = _OO if a.hi == _OO else sp.floor(a.hi) - (1 if a.hi.is_integer and a.hi_open else 0)
        return Span(-_OO if a.lo == -_OO else sp.floor(a.lo), hi)
    if isinstance(expr, sp.ceiling):
        a = args[0]
        lo = -_OO if a.lo == -_OO else sp.ceiling(a.lo) + (
            1 if a.lo.is_integer and a.lo_open else 0)
        return Span(lo, _OO if a.hi == _OO else sp.ceiling(a.hi))
    if isinstance(expr, Select):
        expr = expr.as_piecewise()
    if isinstance(expr, sp.Piecewise):
        values = [_bound(value, box) for value, _ in expr.args]
        if any(v is None for v in values):
            return None
        return _hull([end for v in values for end in _ends(v)])
    return None
