"""Deciding a claim's residual: proved by symbolic work, refuted by an exact counterexample.

The rules that keep the verifier honest:

* **proved** only when SymPy reduces the residual to zero (or shows its sign) — on the whole
  domain, or on every case of a sign split that covers the domain. No sampling ever proves.
* **refuted** only with a concrete point, every free symbol given an exact rational inside its
  assumptions, at which the residual evaluates (to 50 digits) clearly away from zero or to the
  wrong sign. The caller re-checks that point with the generated NumPy kernel.
* **unknown** otherwise, with the residual SymPy could not settle.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field

import sympy as sp

from . import sign_proofs
from .budget import polynomial_work_bounded

#: Candidate values for a free real symbol when hunting counterexamples, tried before random ones.
_NICE = [sp.Rational(v) for v in ("1/2", "2", "3/10", "7/5", "1/10", "3", "9/10", "5")]
TINY = sp.Float("1e-25")  # exact points, 50 digits: a true zero is far below this
_SPLIT_LIMIT = 3  # symbols to case-split on signs (3**3 = 27 cases at most)


@dataclass(frozen=True)
class Verdict:
    status: str                      # "proved" | "refuted" | "unknown"
    detail: str
    counterexample: dict[str, str] | None = None
    point: dict[sp.Symbol, sp.Basic] | None = field(default=None, compare=False)


def simplify_zero(expr: sp.Basic) -> bool:
    """True only if SymPy shows ``expr`` is identically zero."""
    if expr == 0:
        return True
    for attempt in (sp.simplify, lambda e: sp.simplify(sp.piecewise_fold(e)),
                    lambda e: sp.simplify(sp.powdenest(sp.expand(e), force=False))):
        try:
            if attempt(expr) == 0:
                return True
        except (TypeError, ValueError, NotImplementedError, RecursionError):
            continue
    return False


def split_cases(expr: sp.Basic) -> list[dict[sp.Symbol, sp.Basic]]:
    """Substitutions covering every sign of the real symbols whose sign SymPy needs: first those
    in Piecewise conditions, then inside Abs, sign, Max and Min, then under roots."""
    def splittable(s):
        return s.is_real and s.is_positive is not True and s.is_integer is not True
    ranked: list[sp.Symbol] = []
    for tier in (_condition_symbols, _kink_symbols, _root_symbols):
        ranked += sorted((s for s in tier(expr) if splittable(s) and s not in ranked),
                         key=lambda s: s.name)
    options = []
    for symbol in ranked[:_SPLIT_LIMIT]:
        magnitude = sp.Dummy(f"{symbol.name}_abs", positive=True)  # never a spec's name
        cases = [magnitude]
        if symbol.is_nonnegative is not True:
            cases.append(-magnitude)
        if symbol.is_nonzero is not True:
            cases.append(sp.S.Zero)
        options.append([(symbol, c) for c in cases])
    return [dict(combo) for combo in itertools.product(*options)]


def _condition_symbols(expr):
    return {s for node in sp.preorder_traversal(expr) if isinstance(node, sp.Piecewise)
            for _, cond in node.args for s in cond.free_symbols}


def _kink_symbols(expr):
    return {s for node in sp.preorder_traversal(expr)
            if isinstance(node, (sp.Abs, sp.sign, sp.Max, sp.Min)) for s in node.free_symbols}


def _root_symbols(expr):
    return {s for node in sp.preorder_traversal(expr)
            if isinstance(node, sp.Pow) and not node.exp.is_integer for s in node.free_symbols}


def prove_zero(residual: sp.Basic) -> bool:
    """Whether ``residual`` is zero everywhere on its symbols' assumptions."""
    if simplify_zero(residual):
        return True
    cases = split_cases(residual)
    if len(cases) <= 1:
        return False
    return all(simplify_zero(residual.xreplace(case)) for case in cases)


def _radicand(term: sp.Basic) -> sp.Basic | None:
    """A for a term sqrt(A) (|x| counts as sqrt(x^2)), else None."""
    if isinstance(term, sp.Pow) and term.exp == sp.S.Half:
        return term.base
    if isinstance(term, sp.Abs):
        return term.args[0] ** 2
    return None


def _sqrt_difference_nonnegative(expr: sp.Basic) -> bool:
    """``sqrt(A) - sqrt(B) >= 0`` because sqrt is increasing: A - B >= 0 and B >= 0."""
    terms = sp.Add.make_args(expr)
    if len(terms) != 2:
        return False
    for first, second in (terms, terms[::-1]):
        a, b = _radicand(first), _radicand(-second)
        if a is not None and b is not None:
            return sp.simplify(a - b).is_nonnegative is True and b.is_nonnegative is True
    return False


def _factors_nonnegative(expr: sp.Basic) -> bool:
    """A product is nonnegative where every factor has a known sign and an even number of them
    are nonpositive: nonnegative bases under any power (a zero denominator leaves the expression
    undefined, not negative), sqrt differences by monotonicity, and their negations."""
    negative = 0
    for factor in sp.Mul.make_args(sp.factor(expr)):
        base, exponent = factor.as_base_exp()
        if factor.is_nonnegative is True or (base.is_nonnegative is True and exponent.is_real):
            continue
        if factor.is_nonpositive is True:
            negative += 1
        elif exponent == 1 and _sqrt_difference_nonnegative(base):
            continue
        elif exponent == 1 and _sqrt_difference_nonnegative(-base):
            negative += 1
        else:
            return False
    return negative % 2 == 0


def _bounded_below(expr: sp.Basic, holds) -> bool:
    """``Max(a, ...) + r >= 0`` where some ``a + r >= 0`` (a Max is at least each of its
    arguments), and ``r - Min(a, ...) >= 0`` where some ``r - a >= 0``."""
    terms = sp.Add.make_args(expr)
    for i, term in enumerate(terms):
        rest = sp.Add(*terms[:i], *terms[i + 1:])
        if isinstance(term, sp.Max) and any(holds(a + rest) for a in term.args):
            return True
        if isinstance(-term, sp.Min) and any(holds(rest - a) for a in (-term).args):
            return True
    return False


def prove_sign(residual: sp.Basic, assumption: str = "nonnegative") -> bool:
    """Whether ``residual`` is ``assumption`` ("nonnegative" or "positive") everywhere, by
    SymPy's assumption system on the simplified and factored forms (and, for nonnegative,
    factor by factor with sqrt's monotonicity), per sign case."""
    def holds(e):
        e = sp.simplify(e)
        if getattr(e, f"is_{assumption}") is True or \
                getattr(sp.factor(e), f"is_{assumption}") is True:
            return True
        if isinstance(e, sp.Piecewise):  # its value is one of its branches'
            return all(holds(value) for value, _ in e.args)
        if assumption == "nonnegative" and _bounded_below(e, holds):
            return True
        return assumption == "nonnegative" and _factors_nonnegative(e)
    if holds(residual):
        return True
    cases = split_cases(residual)
    return len(cases) > 1 and all(holds(residual.xreplace(c)) for c in cases)


def sample_point(symbols, rng: random.Random, attempt: int,
                 bounds: dict[sp.Symbol, tuple] | None = None) -> dict[sp.Symbol, sp.Basic]:
    """Exact rational values for ``symbols`` that satisfy their assumptions (and ``bounds``:
    symbol -> (low, high, low_closed, high_closed), None for infinite)."""
    point = {}
    for symbol in sorted(symbols, key=lambda s: s.name):
        if symbol.is_real is None and symbol.is_integer is None:  # a bool hyperparameter
            point[symbol] = sp.true if rng.random() < 0.5 else sp.false
            continue
        for _ in range(200):
            if attempt < len(_NICE):
                value = _NICE[(attempt + len(point)) % len(_NICE)]
            else:
                value = sp.Rational(rng.randint(1, 400), rng.randint(1, 100))
            if symbol.is_positive is not True and symbol.is_nonnegative is not True \
                    and rng.random() < 0.5:
                value = -value
            if symbol.is_integer:
                value = sp.Integer(max(1, int(abs(value)))) if symbol.is_positive else \
                    sp.Integer(int(value))
            if admissible(symbol, value, (bounds or {}).get(symbol)):
                break
            attempt += 1
        else:
            raise ValueError(f"cannot sample {symbol}")
        point[symbol] = value
    return point


def admissible(symbol, value, bound) -> bool:
    """Whether an exact ``value`` meets ``symbol``'s assumptions and ``bound``."""
    if symbol.is_integer and value.is_integer is not True:
        return False
    if symbol.is_real and value.is_real is not True:
        return False
    if symbol.is_positive and not value > 0:
        return False
    if symbol.is_nonnegative and not value >= 0:
        return False
    if symbol.is_nonzero and value == 0:
        return False
    if bound is not None:
        low, high, low_closed, high_closed = bound
        if low is not None and (value < low or (value == low and not low_closed)):
            return False
        if high is not None and (value > high or (value == high and not high_closed)):
            return False
    return True


def evaluate(expr: sp.Basic, point) -> sp.Float | None:
    """``expr`` at ``point`` to 50 digits, or None where it is undefined there."""
    try:
        value = sp.N(expr.xreplace(point), 50)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    # An actual number: not an unevaluated function of numbers (Muon's orthogonalize).
    if not value.is_Number or value.has(sp.nan, sp.zoo, sp.oo, -sp.oo) or not value.is_real:
        return None
    return value


def find_counterexample(violated, symbols, *, bounds=None, tries: int = 60, seed: int = 0,
                        near=()):
    """A point at which ``violated(point)`` holds, or None. ``violated`` gets exact points:
    first ``tries`` sampled ones, then ``tries`` in which each symbol takes, half the time, one
    of its special values (0, +-1, its domain's closed ends, and the numbers in ``near`` —
    the claim's own constants — with their reciprocals and neighbours), where strict claims and
    boundary cases fail."""
    rng = random.Random(seed)
    specials = {s: special_values(s, (bounds or {}).get(s), near) for s in symbols}
    for attempt in range(2 * tries):
        try:
            point = sample_point(symbols, rng, attempt, bounds)
        except ValueError:
            return None
        if attempt >= tries:
            for symbol in sorted(point, key=lambda s: s.name):
                if specials[symbol] and rng.random() < 0.5:
                    point[symbol] = rng.choice(specials[symbol])
        if violated(point):
            return point
    return None


def special_values(symbol, bound, near=()) -> list:
    """Values of ``symbol`` where claims tend to break, each admissible (see the caller)."""
    if symbol.is_real is None and symbol.is_integer is None:
        return []  # a bool: sampled both ways already
    values = [sp.S.Zero, sp.S.One, sp.S.NegativeOne, sp.Integer(2), sp.S.Half]
    if bound is not None:
        low, high, low_closed, high_closed = bound
        values += [v for v, closed in ((low, low_closed), (high, high_closed))
                   if v is not None and closed]
    for c in near:
        c = abs(sp.Rational(c))
        if c == 0 or c.q > 10 ** 6 or c.p > 10 ** 12:
            continue
        values += [c, -c, c + 1, c - 1, 2 * c, 1 / c]
    out = []
    for value in values:
        value = sp.Rational(value)
        if value not in out and admissible(symbol, value, bound):
            out.append(value)
    return out


def describe_point(point: dict[sp.Symbol, sp.Basic]) -> dict[str, str]:
    return {str(s): str(v) for s, v in sorted(point.items(), key=lambda kv: kv[0].name)}


#: When a residual's value (50 digits, at an exact point) surely breaks ``residual REL 0``.
_VIOLATED = {
    "==": lambda v: abs(v) > TINY,
    ">=": lambda v: v < -TINY,
    ">": lambda v: v < -TINY or v == 0,
}


def given_holds(left, op, right, point) -> bool:
    """Whether a given surely holds at an exact ``point``: decided exactly where its two sides
    are rational there, otherwise to 50 digits with a margin (a near-tie is not "holds")."""
    if op == "holds":  # a whole condition (a spec's require line), decided exactly
        return bool(sp.sympify(left).xreplace(point) == sp.true)
    difference = sp.sympify(left - right).xreplace(point)
    value = difference if difference.is_Rational else evaluate(difference, {})
    if value is None:
        return False
    if not value.is_Rational and (op in ("==", "!=") or abs(value) <= TINY):
        return False  # an equation, or a near-tie, is only decided exactly
    return {"==": value == 0, "!=": value != 0, "<=": value <= 0, "<": value < 0,
            ">=": value >= 0, ">": value > 0}[op]


_WORDS = {"==": "zero", ">=": "nonnegative", ">": "positive"}


def apply_givens(residual: sp.Basic, givens) -> sp.Basic:
    """Use ``given`` conditions by substitution: ``a <= b`` with ``a`` a symbol (or a power of
    one) becomes ``a = b - s`` for a fresh (Dummy) ``s >= 0`` (``s > 0`` for ``<``); ``a == b`` becomes
    ``a = b``. Proving the result for every ``s`` proves it wherever the givens hold."""
    for index, (left, op, right) in enumerate(givens):
        if op == "holds":
            continue
        if op == "!=":  # x != 0 for a symbol x: assume it nonzero; otherwise unused by proofs
            if isinstance(left, sp.Symbol) and right == 0 and left.is_real:
                residual = residual.xreplace({left: sp.Dummy(left.name, real=True, nonzero=True)})
            continue
        if op in (">=", ">"):
            left, right, op = right, left, {">=": "<=", ">": "<"}[op]
        if op == "==":
            residual = residual.subs(left, right)
            continue
        # A Dummy: a spec's own ``s0`` is another symbol, however it is named.
        slack = sp.Dummy(f"s{index}", **({"positive": True} if op == "<" else
                                          {"nonnegative": True}))
        target, other = (left, right) if _substitutable(left) else (right, left)
        if not _substitutable(target):
            continue
        sign = -1 if target is left else 1
        residual = residual.subs(target, other + sign * slack)
    return residual


def _substitutable(expr) -> bool:
    return isinstance(expr, sp.Symbol) or (
        isinstance(expr, sp.Pow) and isinstance(expr.base, sp.Symbol) and expr.exp.is_Integer)


def _proved(residual: sp.Basic, relation: str) -> bool:
    if relation == "==":
        return prove_zero(residual)
    return prove_sign(residual, "nonnegative" if relation == ">=" else "positive")


def decide(residual: sp.Basic, relation: str = "==", *, givens=(), bounds=None,
           symbols=()) -> Verdict:
    """Prove ``residual RELATION 0`` wherever ``givens`` hold, or refute it at an exact point.

    ``givens`` are ``(lhs, op, rhs)`` triples; ``symbols`` adds free symbols the residual does
    not show (so a counterexample names every variable of the claim).
    """
    residual = sp.sympify(residual)
    if relation == "==" and residual == 0:
        return Verdict("proved", "the two sides are the same expression")
    free = residual.free_symbols | set(symbols) | {
        s for a, op, b in givens for s in sp.sympify(a if op == "holds" else a - b).free_symbols}

    def violated(point):
        if not all(given_holds(a, op, b, point) for a, op, b in givens):
            return False
        value = evaluate(residual, point)
        return value is not None and _VIOLATED[relation](value)

    if givens and sign_proofs.contradictory(givens, bounds):
        return Verdict("proved", "vacuously: no point of the declared domains meets the given "
                       "conditions, so there is nothing to show")
    # A counterexample is cheap to look for and settles a false claim before any long
    # simplification; only symbolic work below can prove.
    constants = {a for e in [residual, *(x for a, op, b in givens for x in (a, b)
                                         if x is not None and op != "holds")]
                 for a in sp.sympify(e).atoms(sp.Rational)}
    point = find_counterexample(violated, free, bounds=bounds,
                                near=sorted(constants, key=abs)[:12])
    if point is not None:
        value = sp.N(residual.xreplace(point), 6)
        return Verdict("refuted", f"the difference is {value} at the counterexample, not "
                       f"{_WORDS[relation]}", describe_point(point), point)
    substituted = apply_givens(residual, givens)
    light = polynomial_work_bounded(residual) and polynomial_work_bounded(substituted)
    if light and _proved(substituted, relation):
        return Verdict("proved", f"SymPy shows the difference is {_WORDS[relation]}"
                       + (" wherever the given conditions hold" if givens else ""))
    if sign_proofs.prove(residual, relation, givens, bounds):
        return Verdict("proved", f"the difference is {_WORDS[relation]} on the whole domain"
                       + (" where the given conditions hold" if givens else "")
                       + ", by interval bounds over the declared domains (cases, forms, "
                       "monotonicity)")
    shown = sp.simplify(residual) if light else residual
    return Verdict("unknown", f"could not show that {sp.sstr(shown)} is "
                   f"{_WORDS[relation]}" + (" under the given conditions" if givens else ""))
