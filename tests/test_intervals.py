"""The interval engine and the sign proofs built on it (issue 11 §3) are sound: an enclosure
holds every value the expression takes on the box, and a proof is never contradicted by a
point. Random expressions (hypothesis), checked at random exact points of the box with 50-digit
evaluation; then the easy true claims the issue lists, which must be proved."""

from __future__ import annotations

import random

import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optgen.compiler.intervals import Span, bound
from optgen.compiler.sign_proofs import box_of, prove

X = sp.Symbol("x", real=True)
B = sp.Symbol("b", nonnegative=True)
T = sp.Symbol("t", integer=True, positive=True)
S = sp.Symbol("s", positive=True)
T0 = sp.Symbol("t0", integer=True, nonnegative=True)  # a schedule's step, from 0
Z = sp.Symbol("z", nonnegative=True)                   # in [0, 1], both ends reached
SYMBOLS = (X, B, T, S, T0, Z)
#: declared bounds, as claims pass them: (low, high, low_closed, high_closed)
BOUNDS = {B: (0, 1, True, False), X: (-3, 2, True, True), S: (None, None, False, False),
          Z: (0, 1, True, True)}

LEAVES = st.sampled_from([X, B, T, S, T0, Z, sp.Integer(1), sp.Integer(2), sp.Rational(1, 2),
                          sp.Integer(-1), sp.pi])


def _combine(children):
    unary = st.tuples(st.sampled_from(["neg", "exp", "cos", "abs", "sq", "inv", "sign",
                                       "sqrt_abs", "log1p_abs", "pow_t", "pow_t0", "floor"]),
                      children)
    binary = st.tuples(st.sampled_from(["add", "sub", "mul", "max", "min", "div"]),
                       children, children)
    return st.one_of(unary, binary)


def _build(tree):
    if isinstance(tree, sp.Basic):
        return tree
    op, *parts = tree
    a, *rest = [_build(p) for p in parts]
    b = rest[0] if rest else None
    return {"neg": lambda: -a, "exp": lambda: sp.exp(a / 4), "cos": lambda: sp.cos(a),
            "abs": lambda: sp.Abs(a), "sq": lambda: a ** 2, "inv": lambda: 1 / (1 + a ** 2),
            "sign": lambda: sp.sign(a), "sqrt_abs": lambda: sp.sqrt(sp.Abs(a)),
            "log1p_abs": lambda: sp.log(1 + sp.Abs(a)), "pow_t": lambda: (B ** T) * a,
            "pow_t0": lambda: Z ** T0 * a,
            "floor": lambda: sp.floor(a),
            "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
            "max": lambda: sp.Max(a, b), "min": lambda: sp.Min(a, b),
            "div": lambda: a / (2 + b ** 2)}[op]()


EXPRESSIONS = st.recursive(LEAVES, _combine, max_leaves=6).map(_build)


def _points(rng: random.Random, count: int):
    """Exact points of the box, its closed ends included."""
    for k in range(count):
        b = rng.choice([sp.S.Zero, sp.Rational(rng.randint(0, 999), 1000),
                        sp.Rational(999, 1000)])
        x = rng.choice([sp.Integer(-3), sp.Integer(2), sp.Rational(rng.randint(-300, 200), 100)])
        t = sp.Integer(rng.choice([1, 2, 3, rng.randint(1, 60)]))
        s = sp.Rational(rng.randint(1, 10 ** 6), rng.choice([1, 10, 1000, 10 ** 6]))
        t0 = sp.Integer(rng.choice([0, 0, 1, 2, rng.randint(0, 60)]))
        z = rng.choice([sp.S.Zero, sp.S.One, sp.Rational(rng.randint(0, 1000), 1000)])
        yield {X: x, B: b, T: t, S: s, T0: t0, Z: z}


def _inside(value, span: Span) -> bool:
    low_ok = value > span.lo or (value == span.lo and not span.lo_open) or span.lo == -sp.oo
    high_ok = value < span.hi or (value == span.hi and not span.hi_open) or span.hi == sp.oo
    if not value.is_Rational:  # 50 digits: a value within 1e-40 of an end counts as on it
        low_ok = low_ok or abs(value - span.lo) < sp.Float("1e-40")
        high_ok = high_ok or abs(value - span.hi) < sp.Float("1e-40")
    return bool(low_ok and high_ok)


def _value(expr, point):
    value = expr.xreplace(point)
    if not value.is_Rational:
        value = sp.N(value, 50)
    if value.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or not value.is_real:
        return None
    return value


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS)
def test_an_enclosure_holds_every_value(expr):
    span = bound(expr, box_of(SYMBOLS, BOUNDS))
    if span is None:
        return
    for point in _points(random.Random(str(expr)), 12):
        value = _value(expr, point)
        if value is not None:
            assert _inside(value, span), (expr, point, value, span)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS, st.sampled_from([">=", ">"]), st.sampled_from([[], [(X, "<=", B)],
                                                                     [(X, ">", S)]]))
def test_a_sign_proof_is_never_contradicted(expr, relation, givens):
    if not prove(expr, relation, givens, BOUNDS):
        return
    for point in _points(random.Random(str(expr)), 40):
        if not all({"<=": lambda a, b: a <= b, ">": lambda a, b: a > b}[op](
                a.xreplace(point), b.xreplace(point)) for a, op, b in givens):
            continue
        value = _value(expr, point)
        if value is None:
            continue
        if relation == ">=":
            assert value >= -sp.Float("1e-40"), (expr, givens, point, value)
        else:
            assert value > 0 or (not value.is_Rational and value > -sp.Float("1e-40")), \
                (expr, givens, point, value)


G = sp.Symbol("G", real=True)
M = sp.Symbol("m", real=True)
GRAD = sp.Symbol("g", real=True)
GAMMA = sp.Symbol("gamma", nonnegative=True)
UNIT = {B: (0, 1, True, False), GAMMA: (0, 1, True, True), Z: (0, 1, True, True)}


@pytest.mark.parametrize("residual, relation, givens", [
    pytest.param(1 - GAMMA ** T, ">=", [], id="gamma-in-[0,1]-so-gamma^t<=1"),
    pytest.param(1 - (1 - B) / (1 - B ** T), ">=", [], id="(1-b)/(1-b^t)<=1"),
    pytest.param(1 + sp.cos(GRAD), ">=", [], id="1+cos(x)>=0"),
    pytest.param(S - sp.Abs(sp.Min(S, sp.Max(-S, GRAD))), ">=", [], id="|clip(x,-s,s)|<=s"),
    pytest.param(G - (B * M + (1 - B) * GRAD), ">=", [(M, "<=", G), (GRAD, "<=", G)],
                 id="convex-combination-at-most-the-larger"),
    pytest.param(1 - (B * M + (1 - B) * GRAD), ">=", [(M, "<=", 1), (GRAD, "<=", 1),
                                                      (1, ">", B)], id="given-upper-bound-kept"),
    pytest.param(1 - B * M, ">", [(M, "<=", 1), (B ** 2, "<", 1)], id="given-as-b^2<1"),
    pytest.param(S * (1 - sp.cos(sp.pi * T / 7)) / 2, ">=", [], id="cosine-decay-below-base"),
])
def test_easy_true_claims_are_proved(residual, relation, givens):
    assert prove(residual, relation, givens, UNIT)


@pytest.mark.parametrize("residual, relation, givens", [
    pytest.param(GAMMA ** T - 1, ">=", [], id="gamma^t>=1"),
    pytest.param(1 - GAMMA ** T, ">", [], id="gamma^t<1-fails-at-gamma=1"),
    pytest.param(S / 2 - sp.Abs(sp.Min(S, sp.Max(-S, GRAD))), ">=", [], id="half-clip"),
    pytest.param(G - (B * M + (1 - B) * GRAD), ">=", [(M, "<=", G)], id="one-bound-only"),
    pytest.param(1 + sp.cos(GRAD), ">", [], id="1+cos(x)>0"),
    pytest.param(Z ** T0, ">", [], id="0^t-is-0-for-t>0"),
    pytest.param(Z ** sp.floor(T0 / 3), ">", [], id="0^floor(t/k)-is-0-past-k"),
])
def test_false_claims_are_not_proved(residual, relation, givens):
    assert not prove(residual, relation, givens, UNIT)


def test_a_tie_at_an_end_is_reached_if_either_candidate_is():
    """cos(pi*x/21) over x in (-7, 7]: 1/2 is reached at x = 7 (and only approached at -7),
    so the lower end is closed; a strict bound above 1/2 is not proved."""
    span = bound(sp.cos(sp.pi * X / 21), {X: Span(sp.Integer(-7), sp.Integer(7), True, False)})
    assert span.lo == sp.Rational(1, 2) and not span.lo_open
    assert not prove(sp.cos(sp.pi * X / 21) - sp.Rational(1, 2), ">",
                     [(X ** 2, "<=", 49), (X ** 3, ">", -343)], {})


def test_a_periodic_given_does_not_narrow_a_span():
    """SymPy solves cos(x) > 0 over one period only; such a given narrows nothing."""
    assert not prove(1000 - X, ">=", [(sp.cos(X), ">", 0)], {})
