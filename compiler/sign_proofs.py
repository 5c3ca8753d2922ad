"""Proofs that a residual is nonnegative, positive or zero on its domain, using the declared
domains and the ``given`` conditions as constraints (not only SymPy's assumptions).

``prove(residual, relation, givens, bounds)`` is True only when one of these sound steps shows
``residual REL 0`` at every point of the box that meets the givens:

1. **Cases.** A ``Piecewise`` is split into its branches, each with its own condition (and the
   negations of the earlier ones) added to the givens; a branch whose condition the box rules out
   is dropped. ``Abs``, ``Max``, ``Min`` and ``sign`` are rewritten as ``Piecewise`` when the
   direct attempt fails.
2. **Givens.** A condition on one symbol, in any form (``gamma < 1``, ``1 > gamma``,
   ``gamma^2 < 1``), narrows that symbol's span (SymPy solves it; the hull of the solution set is
   used, which only widens). A condition between symbols, ``a <= b``, is used by substituting
   ``a = b - s`` or ``b = a + s`` for a fresh ``s >= 0`` (``s > 0`` for ``<``): either is
   sound; both are tried.
3. **Intervals.** :func:`.intervals.bound` encloses the residual over the box, tried on several
   algebraic forms (as written, factored, cancelled, expanded, collected per symbol), with each
   power ``b^(c*t + d)`` of a step count ``t >= k`` written ``b^(c*k + d) * w`` for a fresh
   ``w = (b^c)^(t - k)`` spanning what that power can be (so ``b - b^t`` is ``b*(1 - w)``).
4. **Monotonicity.** Where the derivative in one symbol has a sign over the box, the residual is
   smallest at one end of that symbol's span: the claim is proved there (one symbol fewer).

Each step is an inference that holds for every point of the box, so nothing here can prove a
false claim; what it cannot show it leaves to the caller as unknown.
"""

from __future__ import annotations

import sympy as sp

from .budget import polynomial_work_bounded
from .intervals import REAL, Span, bound, symbol_span

_MAX_CASES = 400       # Piecewise and kink branches x ways to use the givens, per claim
_MAX_DEPTH = 3         # symbols fixed at an end by monotonicity, one after another
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}
_NEGATE = {"<": ">=", "<=": ">", ">": "<=", ">=": "<", "==": "!=", "!=": "=="}


def box_of(symbols, bounds) -> dict[sp.Symbol, Span]:
    """Each symbol's span: its assumptions met with its declared bounds
    ``(low, high, low_closed, high_closed)`` (None for an infinite end)."""
    box = {}
    for symbol in symbols:
        own = symbol_span(symbol)
        if own is None:
            continue
        bound_ = (bounds or {}).get(symbol)
        if bound_ is not None:
            low, high, low_closed, high_closed = bound_
            declared = Span(-sp.oo if low is None else sp.Rational(low),
                            sp.oo if high is None else sp.Rational(high),
                            not low_closed, not high_closed)
            own = own.intersect(declared) or own
        box[symbol] = own
    return box


def contradictory(givens, bounds) -> bool:
    """Whether no point of the declared domains meets the givens about one symbol each (then
    every claim under them holds vacuously)."""
    symbols = {s for given in givens for s in given_symbols(given)}
    try:
        box, _ = _narrow(box_of(symbols, bounds), _unfolded(list(givens)))
    except (TypeError, ValueError, NotImplementedError, RecursionError, AttributeError):
        return False
    return box is None


def prove(residual, relation: str, givens=(), bounds=None) -> bool:
    """Whether ``residual RELATION 0`` (relation ``==``, ``>=`` or ``>``) wherever the givens
    hold, by the steps of the module doc."""
    residual = sp.sympify(residual)
    symbols = residual.free_symbols | {s for given in givens for s in given_symbols(given)}
    cases = [0]
    try:
        return _prove(residual, relation, list(givens), box_of(symbols, bounds), cases, True)
    except (TypeError, ValueError, NotImplementedError, RecursionError, ZeroDivisionError,
            AttributeError):
        return False


def given_symbols(given) -> set:
    """The symbols a given ``(lhs, op, rhs)`` (or ``(condition, "holds", None)``) reads."""
    left, op, right = given
    return sp.sympify(left if op == "holds" else left - right).free_symbols


def _prove(residual, relation, givens, box, cases, rewrite_kinks) -> bool:
    cases[0] += 1
    if cases[0] > _MAX_CASES:
        return False
    piecewise = next((node for node in sp.preorder_traversal(residual)
                      if isinstance(node, sp.Piecewise)), None)
    if piecewise is not None:
        return _prove_branches(residual, piecewise, relation, givens, box, cases)
    givens = _unfolded(givens)
    kink = _innermost_kink(residual) if rewrite_kinks else None
    if kink is not None:  # the branches, each with its own condition, after a direct try
        narrowed, _ = _narrow(box, givens)
        if narrowed is None or _decided(residual, relation, narrowed, 0):
            return True
        return all(_prove(residual.xreplace({kink: value}), relation, [*givens, *extra], box,
                          cases, True)
                   for value, extra in _kink_cases(kink)
                   if not any(_surely_false(g, narrowed) for g in extra)
                   and not _excluded(extra, givens))
    for expr, local in _substituted(residual, givens, box):
        cases[0] += 1
        if cases[0] > _MAX_CASES:
            return False
        if local is None or _decided(expr, relation, local, 0):
            return True  # (no point meets the givens: nothing to show)
    return False


_KINKS = (sp.Abs, sp.Max, sp.Min, sp.sign)


def _innermost_kink(expr):
    """An Abs, Max, Min or sign none of whose arguments holds another (first in tree order)."""
    for node in sp.postorder_traversal(expr):
        if isinstance(node, _KINKS) and not any(a.has(*_KINKS) for a in node.args):
            return node
    return None


def _kink_cases(kink):
    """(value, conditions) pairs covering every point: ``Max(a, b)`` is a where a >= b, b where
    b >= a; ``Abs(a)`` is a where a >= 0, -a where a <= 0; ``sign(a)`` is 1, 0 or -1."""
    if isinstance(kink, sp.Abs):
        (a,) = kink.args
        return [(a, [(a, ">=", sp.S.Zero)]), (-a, [(a, "<=", sp.S.Zero)])]
    if isinstance(kink, sp.sign):
        (a,) = kink.args
        return [(sp.S.One, [(a, ">", sp.S.Zero)]), (sp.S.Zero, [(a, "==", sp.S.Zero)]),
                (sp.S.NegativeOne, [(a, "<", sp.S.Zero)])]
    op = ">=" if isinstance(kink, sp.Max) else "<="
    return [(a, [(a, op, b) for b in kink.args if b is not a]) for a in kink.args]


def _prove_branches(residual, piecewise, relation, givens, box, cases) -> bool:
    """Every branch of ``piecewise`` proves the claim under its own condition."""
    earlier = []
    for value, condition in piecewise.args:
        conditions = [*earlier, condition]
        earlier.append(sp.Not(condition))
        extra = []
        for part in conditions:
            extra += _as_givens(part)
        if any(_surely_false(g, box) for g in extra) or _excluded(extra, givens):
            continue
        if not _prove(residual.xreplace({piecewise: value}), relation, [*givens, *extra], box,
                      cases, True):
            return False
        if condition == sp.true:
            break
    return True


def _as_givens(condition) -> list[tuple]:
    """A condition as (lhs, op, rhs) givens it implies (a disjunction implies none we use)."""
    condition = sp.simplify_logic(condition) if isinstance(condition, sp.Not) else condition
    if condition in (sp.true, sp.S.true):
        return []
    if condition in (sp.false, sp.S.false):
        return [(sp.S.Zero, "==", sp.S.One)]
    if isinstance(condition, sp.And):
        return [g for part in condition.args for g in _as_givens(part)]
    if isinstance(condition, sp.Not) and isinstance(condition.args[0],
                                                    sp.core.relational.Relational):
        inner = condition.args[0]
        return [(inner.lhs, _NEGATE[inner.rel_op], inner.rhs)]
    if isinstance(condition, sp.core.relational.Relational):
        return [(condition.lhs, condition.rel_op, condition.rhs)]
    return []


def _excluded(conditions, givens) -> bool:
    """Whether a case's equation ``a == b`` is ruled out by a given ``c != d`` with a - b a
    nonzero multiple of c - d."""
    unequal = [sp.sympify(l - r) for l, op, r in givens if op == "!="]
    for left, op, right in conditions:
        if op != "==" or not unequal:
            continue
        difference = sp.sympify(left - right)
        for other in unequal:
            ratio = sp.cancel(difference / other) if other != 0 else None
            if ratio is not None and ratio.is_number and ratio != 0 and ratio.is_finite:
                return True
    return False


def _surely_false(given, box) -> bool:
    left, op, right = given
    if op == "holds":
        return False
    span = bound(sp.sympify(left - right), box)
    if span is None:
        return False
    return {"<": span.nonnegative(), "<=": span.positive(), ">": span.nonpositive(),
            ">=": span.negative(), "==": not span.holds_zero() and not (
                span.lo == span.hi == 0),
            "!=": span.lo == span.hi == 0}[op]


def _narrow(box, givens):
    """The box narrowed by every given on one symbol; the givens linking several symbols
    (returned for substitution). None for the box if a span becomes empty."""
    box = dict(box)
    linked = []
    for left, op, right in givens:
        if op in ("holds", "!="):
            continue
        difference = sp.sympify(left - right)
        free = difference.free_symbols
        if len(free) == 1:
            (symbol,) = free
            solved = _solve_one(difference, op, symbol)
            if solved is not None:
                start = box.get(symbol, symbol_span(symbol) or REAL)
                narrowed = start.intersect(solved)
                if narrowed is None:
                    return None, []
                box[symbol] = narrowed
                continue
        linked.append((sp.sympify(left), op, sp.sympify(right)))
    return box, linked


def _solve_one(difference, op, symbol) -> Span | None:
    """The hull of the real solutions of ``difference OP 0`` in ``symbol``, as a span, for a
    rational function of the symbol (SymPy solves a periodic one over one period only)."""
    if not difference.is_rational_function(symbol):
        return None
    relation = sp.core.relational.Relational(difference, 0, op)
    plain = sp.Symbol("x", real=True)  # solve over the reals, whatever the symbol assumes
    try:
        solution = sp.solve_univariate_inequality(relation.xreplace({symbol: plain}), plain,
                                                  relational=False)
    except (NotImplementedError, ValueError, TypeError):
        return None
    if solution is sp.S.EmptySet:
        return None  # never holds: not used (a claim is not proved from a contradiction)
    if isinstance(solution, sp.FiniteSet) and len(solution) == 1:
        (value,) = solution
        return Span.point(value) if value.is_Rational else None
    lo, hi = solution.inf, solution.sup
    if not all(v.is_Rational or v in (sp.oo, -sp.oo) for v in (lo, hi)):
        lo_r = lo if lo.is_Rational or lo == -sp.oo else sp.Rational(str(sp.N(lo, 30))) - \
            sp.Rational(1, 10 ** 20)
        hi_r = hi if hi.is_Rational or hi == sp.oo else sp.Rational(str(sp.N(hi, 30))) + \
            sp.Rational(1, 10 ** 20)
        return Span(lo_r, hi_r, lo_r != lo or lo not in solution,
                    hi_r != hi or hi not in solution)
    return Span(lo, hi, lo not in solution, hi not in solution)


def _substituted(residual, linked, box, index=0):
    """Every way to use the linking givens, one after another: for a given ``d <= 0``
    (``d = lhs - rhs``, with the substitutions so far applied), a quantity q that d is linear in
    (a symbol, or a symbol's integer power, with a numeric coefficient a) is written
    ``q = -(slack + rest)/a`` for a fresh slack >= 0 (> 0 for ``<``, >= 1 for ``<`` between
    integers, 0 for ``==``), in the residual and in the givens after it, which may then narrow
    a span; or the given is left unused. Yields (residual, box); box None where the givens
    cannot hold together (that case has no point)."""
    box, linked = _narrow(box, linked)
    if box is None or not linked:
        yield residual, box
        return
    (left, op, right), later = linked[0], linked[1:]
    if op in (">=", ">"):
        left, right, op = right, left, _FLIP[op]
    difference = sp.expand(left - right)
    slack = sp.S.Zero if op == "==" else sp.Dummy(f"slack{index}", real=True)
    if op == "<" and difference.is_integer:
        slack_span = Span(sp.S.One, sp.oo)
    else:
        slack_span = Span(sp.S.Zero, sp.oo, op == "<", True)
    for quantity in _linear_quantities(difference)[:3]:
        a = difference.coeff(quantity, 1)
        value = -(slack + sp.expand(difference - a * quantity)) / a
        local = {s: v for s, v in box.items() if s != quantity}
        if op != "==":
            local[slack] = slack_span
        rest = [(sp.sympify(l).subs(quantity, value), o,
                 r if o == "holds" else sp.sympify(r).subs(quantity, value)) for l, o, r in later]
        yield from _substituted(residual.subs(quantity, value), rest, local, index + 1)
    yield from _substituted(residual, later, box, index + 1)


def _unfolded(givens) -> list[tuple]:
    """Givens with kinks on the bounded side as the conjunctions they are: ``abs(a) <= b`` is
    ``a <= b`` and ``-a <= b``; ``max(a, b) <= c`` is ``a <= c`` and ``b <= c``; ``min`` on the
    other side alike."""
    out = []
    pending = list(givens)
    while pending:
        left, op, right = pending.pop(0)
        if op in (">=", ">"):
            left, right, op = right, left, _FLIP[op]
        if op in ("<=", "<"):
            left, right = sp.sympify(left), sp.sympify(right)
            if isinstance(left, sp.Abs):
                pending += [(left.args[0], op, right), (-left.args[0], op, right)]
                continue
            if isinstance(left, sp.Max):
                pending += [(a, op, right) for a in left.args]
                continue
            if isinstance(right, sp.Min):
                pending += [(left, op, a) for a in right.args]
                continue
        out.append((left, op, right))
    return out


def _linear_quantities(difference) -> list:
    """Symbols (or integer powers of one) that ``difference`` holds in one term, times a
    nonzero number, and nowhere else."""
    out = []
    atoms = sorted(difference.free_symbols, key=lambda s: s.name)
    powers = sorted({node for node in sp.preorder_traversal(difference)
                     if isinstance(node, sp.Pow) and isinstance(node.base, sp.Symbol)
                     and node.exp.is_Integer and node.exp > 1}, key=sp.default_sort_key)
    for quantity in [*atoms, *powers]:
        base = quantity.base if isinstance(quantity, sp.Pow) else quantity
        if base.is_real is not True:
            continue
        a = difference.coeff(quantity, 1)
        if not (a.is_Rational and a != 0):
            continue
        if sp.expand(difference - a * quantity).has(base):
            continue
        out.append(quantity)
    return out


def _holds(span: Span | None, relation: str) -> bool:
    if span is None:
        return False
    if relation == ">=":
        return span.nonnegative()
    if relation == ">":
        return span.positive()
    return span.lo == span.hi == 0


def _forms(expr):
    """The residual in several equal forms: interval bounds depend on how it is written."""
    seen = set()
    makers = (lambda e: e, sp.factor, sp.cancel, sp.together, sp.expand)
    if not polynomial_work_bounded(expr):
        yield expr  # (see budget.MAX_POLY_DEGREE)
        return
    for make in makers:
        try:
            form = make(expr)
        except (TypeError, ValueError, NotImplementedError, sp.PolynomialError):
            continue
        if form not in seen:
            seen.add(form)
            yield form
    for symbol in sorted(expr.free_symbols, key=lambda s: s.name):
        try:
            form = sp.collect(sp.expand(expr), symbol)
        except (TypeError, ValueError, NotImplementedError):
            continue
        if form not in seen:
            seen.add(form)
            yield form


def _powers_abstracted(expr, box):
    """Each ``b^(c*t + d)``, for an integer symbol t whose span starts at a finite k, as
    ``b^(c*k + d) * w`` with a fresh w spanning ``(b^c)^(t - k)``; None if there is none."""
    replaced, extra = {}, {}
    fresh: dict[tuple, sp.Dummy] = {}
    for node in sp.preorder_traversal(expr):
        if not isinstance(node, sp.Pow):
            continue
        for t in node.exp.free_symbols:
            span = box.get(t, symbol_span(t))
            if not t.is_integer or span is None or span.lo == -sp.oo:
                continue
            coefficient, rest = node.exp.as_independent(t, as_Add=True)[::-1]
            c = sp.simplify(coefficient / t)
            if c.has(t) or not c.is_Rational or c <= 0:
                continue
            k = min(span.lo, 8)  # any k <= the first step will do; a small one keeps b^k small
            key = (node.base, c, t)  # gamma^t and gamma^n are different powers
            if key not in fresh:
                w = fresh[key] = sp.Dummy("w", real=True)
                span_w = bound(sp.Pow(node.base, c * sp.Dummy("n", integer=True,
                                                              nonnegative=True)), box)
                if span_w is None:
                    del fresh[key]
                    continue
                extra[w] = span_w
            replaced[node] = node.base ** (c * k + rest) * fresh[key]
            break
    if not replaced:
        return None
    return expr.xreplace(replaced), extra


def _decided(expr, relation, box, depth) -> bool:
    """Intervals on each form (and with powers of t abstracted), then monotonicity."""
    candidates = [(expr, box)]
    abstracted = _powers_abstracted(expr, box)
    if abstracted is not None:
        candidates.append((abstracted[0], {**box, **abstracted[1]}))
    for candidate, local in candidates:
        for form in _forms(candidate):
            if _holds(bound(form, local), relation):
                return True
    if relation == "==":
        pinned = _pinned(expr, box)
        return pinned != expr and polynomial_work_bounded(pinned) and sp.simplify(pinned) == 0
    if depth >= _MAX_DEPTH:
        return False
    for candidate, local in candidates:
        if _monotone_end(candidate, relation, local, depth):
            return True
    return False


def _pinned(expr, box):
    """``expr`` with each floor, ceiling, sign, abs, min, max or Piecewise that takes one value
    on the whole box replaced by that value."""
    def point(node):
        span = bound(node, box)
        if span is not None and span.lo == span.hi and span.lo.is_Rational:
            return span.lo
        return node
    kinds = (sp.floor, sp.ceiling, sp.sign, sp.Abs, sp.Max, sp.Min, sp.Piecewise)
    return expr.replace(lambda e: isinstance(e, kinds), point)


def _monotone_end(expr, relation, box, depth) -> bool:
    """Where d(expr)/dx has a sign over the box, expr is smallest at one finite end of x's
    span: prove it there. (A derivative the intervals bound exists on the whole box, so expr
    is continuous up to that end; an end where expr is undefined is not used.)"""
    if expr.has(sp.Piecewise, sp.floor, sp.ceiling, sp.sign, sp.Abs, sp.Max, sp.Min):
        return False
    for symbol in sorted(expr.free_symbols, key=lambda s: s.name):
        span = box.get(symbol)
        if span is None or symbol.is_integer:
            continue
        derivative = sp.diff(expr, symbol)
        slope = None
        forms = (derivative, sp.factor(derivative)) if polynomial_work_bounded(derivative) \
            else (derivative,)
        for form in forms:
            slope = bound(form, box)
            if slope is not None and (slope.nonnegative() or slope.nonpositive()):
                break
        else:
            continue
        end = span.lo if slope.nonnegative() else span.hi
        if end in (sp.oo, -sp.oo):
            continue
        at_end = expr.xreplace({symbol: end})
        if at_end.has(sp.zoo, sp.nan, sp.oo, -sp.oo):
            continue
        rest = {s: v for s, v in box.items() if s != symbol}
        if polynomial_work_bounded(at_end):
            at_end = sp.simplify(at_end)
        if _decided(at_end, relation, rest, depth + 1):
            return True
    return False
