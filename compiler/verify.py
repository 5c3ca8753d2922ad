"""``optgen verify``: evaluate every claim about a spec — the built-in library and its own.

Each claim ends as proved, refuted or unknown (see :mod:`.prover` for what each may mean). A
refutation found symbolically is re-checked with the generated NumPy kernel at the same point;
if the kernel does not confirm it, the claim is reported unknown instead.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import sympy as sp

from .claims_builtin import Check, builtin_checks
from .claims_spec import spec_checks
from .pipeline import Compiled, compile_file
from .prover import Verdict, decide, describe_point, evaluate
from .stepper import NumericStepper, SymbolicStepper

#: A counterexample is confirmed when the kernel's two sides differ by more than this, relatively.
NUMERIC_CONFIRMATION = 1e-9
#: Seconds of symbolic work per claim before it is reported unknown (like a solver's timeout).
DEFAULT_BUDGET = 8.0


class _OutOfTime(Exception):
    pass


@contextlib.contextmanager
def _time_budget(seconds: float | None):
    """Raise :class:`_OutOfTime` inside the block after ``seconds`` (main thread, POSIX)."""
    usable = (seconds and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    def expire(signum, frame):
        raise _OutOfTime()
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class ClaimResult:
    spec: str
    id: str
    claim: str
    status: str
    detail: str
    counterexample: dict[str, str] | None
    own: bool = False
    seconds: float = 0.0

    def as_json(self) -> dict:
        out = asdict(self)
        del out["own"], out["seconds"]
        return out


@dataclass(frozen=True)
class SpecReport:
    compiled: Compiled
    results: tuple[ClaimResult, ...]

    @property
    def own_refuted(self) -> list[ClaimResult]:
        return [r for r in self.results if r.own and r.status == "refuted"]


def verify_file(path: Path | str, budget: float | None = DEFAULT_BUDGET) -> SpecReport:
    compiled = compile_file(path)
    stepper = SymbolicStepper(compiled.lowered)
    checks = builtin_checks(stepper) + spec_checks(compiled, stepper)
    results = []
    numeric = None
    for check in checks:
        start = time.perf_counter()
        try:
            with _time_budget(budget):
                verdict = _decide(check, stepper)
        except _OutOfTime:
            verdict = Verdict("unknown", f"SymPy did not settle it within the {budget:g} s "
                              "budget (optgen verify --budget)")
        if verdict.status == "refuted" and check.sides is not None:
            if numeric is None:
                numeric = NumericStepper(compiled.lowered, _load_module(compiled))
            verdict = _confirm(check, verdict, numeric)
        if check.negated:
            verdict = _negate(verdict)
        results.append(ClaimResult(compiled.name, check.id, check.text, verdict.status,
                                   verdict.detail, verdict.counterexample, check.own,
                                   time.perf_counter() - start))
    return SpecReport(compiled, tuple(results))


def _sides(check: Check, stepper, values):
    """A check's sides as (pairs of lhs/rhs, givens), whatever shape ``sides`` returned."""
    result = check.sides(stepper, values)
    lhs, rhs, givens = result if len(result) == 3 else (*result, [])
    pairs = list(zip(lhs, rhs)) if isinstance(lhs, list) else [(lhs, rhs)]
    return pairs, givens


def _decide(check: Check, stepper: SymbolicStepper) -> Verdict:
    try:
        if check.decide is not None:
            return check.decide()
        pairs, givens = _sides(check, stepper, check.variables)
        if check.limit:
            return _decide_limit(check, stepper, *pairs[0], givens)
        verdicts = [decide(sp.sympify(lhs - rhs), check.relation, givens=givens,
                           bounds=check.bounds, symbols=check.variables.values())
                    for lhs, rhs in pairs]
    except (NotImplementedError, RecursionError, TypeError, ValueError, ZeroDivisionError) as error:
        return Verdict("unknown", f"SymPy could not evaluate the claim: {type(error).__name__}: "
                       f"{error}")
    if all(v.status == "proved" for v in verdicts):
        return verdicts[0] if len(verdicts) == 1 else Verdict(
            "proved", f"p agrees after each of the {len(verdicts)} steps: every difference "
            "simplifies to 0")
    for index, verdict in enumerate(verdicts):
        if verdict.status == "refuted":
            where = f"after step {index + 1}: " if len(verdicts) > 1 else ""
            return Verdict("refuted", where + verdict.detail, verdict.counterexample, verdict.point)
    return next(v for v in verdicts if v.status == "unknown")


def _decide_limit(check: Check, stepper: SymbolicStepper, lhs, rhs, givens=()) -> Verdict:
    """lim_{t -> oo} (lhs - rhs) = 0 on every case covering the free hypers' domains
    (narrowed by ``given`` bounds such as ``gamma < 1``)."""
    t = stepper.lowered.t
    residual = sp.sympify(lhs - rhs)
    u = sp.Symbol("u", positive=True)
    bounds = dict(check.bounds)
    for left, op, right in givens:
        if isinstance(left, sp.Symbol) and left in bounds and right.is_number and op in ("<", "<="):
            low, high, low_closed, high_closed = bounds[left] or (None, None, False, False)
            if high is None or right < high or (right == high and op == "<"):
                bounds[left] = (low, right, low_closed, op == "<=")
        elif isinstance(left, sp.Symbol) and left in bounds and right.is_number and op in (">", ">="):
            low, high, low_closed, high_closed = bounds[left] or (None, None, False, False)
            if low is None or right > low or (right == low and op == ">"):
                bounds[left] = (right, high, op == ">=", high_closed)
    residual = _eventual_branches(residual, t)
    options = []
    for symbol, bound in bounds.items():
        if symbol not in residual.free_symbols or bound is None:
            continue
        low, high, low_closed, high_closed = bound
        cases = []
        if low is not None and high is not None:
            cases.append(low + (high - low) / (1 + u))
        elif low is not None:
            cases.append(low + u)
        elif high is not None:
            cases.append(high - u)
        cases += [v for v, closed in ((low, low_closed), (high, high_closed))
                  if v is not None and closed]
        options.append([(symbol, case) for case in cases])
    for combo in itertools.product(*options):
        case = dict(combo)
        value = sp.simplify(sp.limit(residual.xreplace(case), t, sp.oo))
        if value == 0:
            continue
        point = {s: sp.Integer(1) for s in value.free_symbols}  # 1 meets every assumption used
        number = evaluate(value, point)
        if number is None or abs(number) <= 1e-25:
            return Verdict("unknown", f"the limit of the difference is {value}")
        full = {s: c.xreplace({u: sp.Integer(1), **point}) for s, c in case.items()}
        full.update({s: v for s, v in point.items() if s != u})
        return Verdict("refuted", f"the limit of the difference is {value}, {sp.N(number, 6)} "
                       "at the counterexample", describe_point(full), full)
    cases = "on every case covering the domain" if options else ""
    return Verdict("proved", f"SymPy takes the limit of the difference as t -> oo: 0 {cases}")


def _eventual_branches(expr: sp.Basic, t: sp.Symbol) -> sp.Basic:
    """Replace each Piecewise over t by the branch it takes for all large t, where the
    conditions' limits decide it (``t < warmup`` is eventually false). The limit as t -> oo is
    the same, so this only helps SymPy."""
    def decide(relation) -> bool | None:
        if relation in (sp.true, sp.false):
            return bool(relation)
        if not isinstance(relation, sp.core.relational.Relational) or relation.rel_op == "!=":
            return None
        try:
            gap = sp.limit(relation.lhs - relation.rhs, t, sp.oo)
        except (NotImplementedError, ValueError, TypeError):
            return None
        if gap in (sp.oo, -sp.oo):
            return {"<": gap == -sp.oo, "<=": gap == -sp.oo, ">": gap == sp.oo,
                    ">=": gap == sp.oo, "==": False}[relation.rel_op]
        return None

    def eventual(piecewise):
        for value, condition in piecewise.args:
            verdict = decide(condition)
            if verdict is None:
                return piecewise
            if verdict:
                return value
        return piecewise

    return expr.replace(lambda e: isinstance(e, sp.Piecewise) and e.has(t), eventual)


def _confirm(check: Check, verdict: Verdict, numeric: NumericStepper) -> Verdict:
    """Re-evaluate both sides at the counterexample with the generated NumPy kernel."""
    values = {name: float(verdict.point[symbol]) for name, symbol in check.variables.items()
              if symbol in verdict.point}
    for name in check.variables:  # symbols the residual did not involve
        values.setdefault(name, 1.0)
    if check.limit:
        values["t"] = 10 ** 6
    pairs, _ = _sides(check, numeric, values)
    for lhs, rhs in pairs:
        lhs, rhs = float(lhs), float(rhs)
        scale = max(1.0, abs(lhs), abs(rhs))
        if check.relation == "==":
            confirmed = (math.isnan(lhs) != math.isnan(rhs)
                         or abs(lhs - rhs) > NUMERIC_CONFIRMATION * scale)
        else:
            confirmed = lhs - rhs < -NUMERIC_CONFIRMATION * scale or (
                check.relation == ">" and lhs == rhs)
        if confirmed:
            return Verdict("refuted", f"{verdict.detail}; the NumPy kernel gives {lhs!r} vs "
                           f"{rhs!r} there", verdict.counterexample, verdict.point)
    return Verdict("unknown", f"{verdict.detail}, but the NumPy kernel does not confirm it at "
                   f"that point ({lhs!r} vs {rhs!r})")


def _negate(verdict: Verdict) -> Verdict:
    """For ``not equivalent``: a confirmed counterexample proves it; a proof of equality
    refutes it (the one refutation without a point: the two agree everywhere)."""
    if verdict.status == "refuted":
        return Verdict("proved", f"not equivalent: {verdict.detail}", verdict.counterexample,
                       verdict.point)
    if verdict.status == "proved":
        return Verdict("refuted", f"the two are equivalent: {verdict.detail}")
    return verdict


def _load_module(compiled: Compiled):
    from ..runtime.loader import load_source
    return load_source(compiled.name, compiled.source)
