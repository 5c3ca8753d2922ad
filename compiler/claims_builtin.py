"""The built-in claim library, applied to every spec where it means something.

Each claim is a :class:`Check`: either ``sides(stepper, values) -> (lhs, rhs)`` written once and
evaluated by the symbolic stepper (to prove or refute) and the numeric one (to confirm a
counterexample with the generated NumPy kernel), or a ``decide()`` for claims about limits and
stability that are not a comparison of one step's results. Hyperparameters are the spec's
defaults, as exact rationals, except those a claim keeps free.

| id | claim |
|---|---|
| bias-correction-limit | every factor ``1 - b^t`` tends to 1 as t -> oo over b's declared domain |
| first-step-magnitude | from the initial state, t = 1, eps = 0, weight_decay = 0: abs(dp) = lr for g != 0 |
| scale-invariance | eps = 0: two steps with gradients c*g1, c*g2 (c > 0) equal the steps with g1, g2 |
| zero-grad-fixed-point | from the initial state, g = 0 and weight_decay = 0 leave p unchanged |
| l2-equals-decoupled-decay | one step with weight_decay = lam equals the step with 0, then p -= lr*lam*p |
| stable-lr-range | on f(p) = (L/2)*norm(p)^2, where the step is one linear map of each element's (p, states): the exact lr range where it converges |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import sympy as sp

from .ir import Interval
from .prover import Verdict, admissible, describe_point
from .stepper import SymbolicStepper, unmarked, whole_tensor, whole_tensor_steps


BUILTIN_CLAIM_IDS = ("bias-correction-limit", "first-step-magnitude", "scale-invariance",
                     "zero-grad-fixed-point", "l2-equals-decoupled-decay", "stable-lr-range",
                     "stable-lr-range-momentum")


@dataclass
class Check:
    id: str
    text: str
    relation: str = "=="   # lhs RELATION rhs; "==" or ">="
    sides: Callable[[SymbolicStepper, dict[str, Any]], tuple[Any, Any]] | None = None
    variables: dict[str, sp.Symbol] = field(default_factory=dict)
    bounds: dict[sp.Symbol, tuple] = field(default_factory=dict)
    decide: Callable[[], Verdict] | None = None
    own: bool = False       # written in the spec's claims section
    limit: bool = False     # the relation holds in the limit t -> oo
    negated: bool = False   # "not equivalent": proved by a confirmed counterexample
    #: variables that take one value on every element (c, lam); the hyperparameters and t
    #: always do, every other variable is one element's
    scalars: tuple[str, ...] = ()
    uses_factored: bool = False  # an equivalence to a spec that reads 'factored'
    #: the whole-tensor sides, by factored (verify.py): built once, read by the decision and
    #: by the check of a refutation's point
    whole: dict = field(default_factory=dict, repr=False, compare=False)


def bounds_of(interval: Interval | None) -> tuple | None:
    if interval is None:
        return None
    return (None if interval.low is None else sp.Rational(repr(interval.low)),
            None if interval.high is None else sp.Rational(repr(interval.high)),
            interval.low_closed, interval.high_closed)


def hyper_variable(stepper: SymbolicStepper, name: str) -> tuple[sp.Symbol, tuple | None]:
    """A scalar hyper's symbol and its declared domain as bounds: a choice's index ranges over
    its strings."""
    symbol = stepper.lowered.hypers[name]
    owner = next(h for h in stepper.spec.hypers if name in h.scalar_names)
    if owner.type == "choice":
        return symbol, (sp.S.Zero, sp.Integer(len(owner.choices) - 1), True, True)
    return symbol, bounds_of(owner.domain)


def builtin_checks(stepper: SymbolicStepper) -> list[Check]:
    if stepper.spec.kind == "schedule":
        return []  # the library speaks of optimizer steps; a schedule has its own claims
    # A wrapper's step runs after an inner optimizer it does not know (Lookahead): a claim
    # about what a gradient does to p would speak of its outer step alone, which reads no g
    # (vacuously "scale-invariant"), not of the optimizer a user runs.
    makers = ((bias_correction_limit,) if stepper.spec.kind == "wrapper" else
              (bias_correction_limit, first_step_magnitude, scale_invariance,
               zero_grad_fixed_point, l2_equals_decoupled_decay, stable_lr_range))
    return [check for make in makers for check in make(stepper)]


# --- bias-correction-limit -------------------------------------------------------------------

def bias_correction_limit(stepper: SymbolicStepper) -> list[Check]:
    low = stepper.lowered
    t = low.t
    bases = set()
    for expr in [*low.outputs.values(), *low.temps.values()]:
        for node in sp.preorder_traversal(expr):
            if isinstance(node, sp.Pow) and node.exp == t and node.base in low.hypers.values():
                bases.add(node.base)
    if not bases:
        return []
    bases = sorted(bases, key=lambda s: s.name)
    names = ", ".join(f"1 - {b}^t" for b in bases)
    return [Check("bias-correction-limit",
                  f"{names} -> 1 as t -> oo over the declared domain, so bias-corrected "
                  "moments tend to the raw ones",
                  bounds={b: hyper_variable(stepper, b.name)[1] for b in bases},
                  decide=lambda: _decide_bias_limits(stepper, bases))]


def _decide_bias_limits(stepper, bases) -> Verdict:
    t = stepper.lowered.t
    details = []
    for base in bases:
        _, bound = hyper_variable(stepper, base.name)
        low, high, low_closed, high_closed = bound or (None, None, False, False)
        if low is None or low < 0 or high is None or high > 1 or (high == 1 and high_closed):
            # A witness inside the declared domain with |b| >= 1: there 1 - b^t does not tend
            # to 1 (it stays 0, grows without bound, or oscillates).
            candidates = [sp.S.One, sp.Integer(2), sp.Integer(-1), sp.Integer(-2),
                          *(v for v in (low, high) if v is not None and abs(v) >= 1)]
            witness = next((c for c in candidates if admissible(base, c, bound)), None)
            if witness is not None:
                value = sp.limit(1 - witness ** t, t, sp.oo)
                return Verdict("refuted", f"at {base} = {witness} the factor 1 - {base}^t "
                               f"tends to {value}, not 1", describe_point({base: witness}),
                               {base: witness})
            return Verdict("unknown", f"the domain of {base} is not inside [0, 1]")
        # Cover the domain exactly: the closed low end, and the interior as
        # low + (high - low)/(1 + u) for u > 0 (SymPy needs the base's sign settled).
        u = sp.Dummy("u", positive=True)
        cases = [low + (high - low) / (1 + u)]
        if low_closed:
            cases.append(low)
        for case in cases:
            try:
                value = sp.limit(1 - case ** t, t, sp.oo)
            except (NotImplementedError, ValueError) as error:
                return Verdict("unknown", f"SymPy could not take lim 1 - ({case})^t: {error}")
            if sp.simplify(value - 1) != 0:
                return Verdict("unknown", f"lim 1 - ({case})^t = {value}")
        details.append(f"1 - {base}^t -> 1 for {base} in {_interval_text(bound)}")
    return Verdict("proved", "; ".join(details) + " (limits taken by SymPy on each case "
                   "covering the domain)")


def _interval_text(bound) -> str:
    low, high, low_closed, high_closed = bound
    return (f"{'[' if low_closed else '('}{'-oo' if low is None else low}, "
            f"{'oo' if high is None else high}{']' if high_closed else ')'}")


# --- claims about one or two steps -----------------------------------------------------------

def _real(name: str, **assumptions) -> sp.Symbol:
    return sp.Symbol(name, real=True, **assumptions)


def first_step_magnitude(stepper: SymbolicStepper) -> list[Check]:
    if not stepper.has("lr"):
        return []
    lr, lr_bounds = hyper_variable(stepper, "lr")
    p, g = _real("p"), _real("g", nonzero=True)

    def sides(st, v):
        hypers = st.hypers({"lr": v["lr"]}, eps=0, weight_decay=0)
        out = st.step(hypers, st.initial_state(hypers, v["p"]), v["p"], v["g"], 1)
        return abs(out.p - v["p"]), v["lr"]

    return [Check("first-step-magnitude",
                  "from the initial state at t = 1 with eps = 0 and weight_decay = 0, "
                  "|p_new - p| = lr for every g != 0",
                  sides=sides, variables={"p": p, "g": g, "lr": lr}, bounds={lr: lr_bounds})]


def scale_invariance(stepper: SymbolicStepper) -> list[Check]:
    p = _real("p")
    g1, g2 = _real("g1", nonzero=True), _real("g2", nonzero=True)
    c = sp.Symbol("c", positive=True)

    def sides(st, v):
        hypers = st.hypers(eps=0)
        def two_steps(scale):
            state, x = st.initial_state(hypers, v["p"]), v["p"]
            for t, g in ((1, v["g1"]), (2, v["g2"])):
                out = st.step(hypers, state, x, scale * g, t)
                state, x = out.states, out.p
            return x
        return two_steps(v["c"]), two_steps(1)

    return [Check("scale-invariance",
                  "with eps = 0, two steps from the initial state with gradients c*g1, c*g2 "
                  "(c > 0) give the same p as with g1, g2",
                  sides=sides, variables={"p": p, "g1": g1, "g2": g2, "c": c},
                  scalars=("c",))]


def zero_grad_fixed_point(stepper: SymbolicStepper) -> list[Check]:
    p = _real("p")

    def sides(st, v):
        hypers = st.hypers(weight_decay=0)
        return st.step(hypers, st.initial_state(hypers, v["p"]), v["p"], 0, 1).p, v["p"]

    return [Check("zero-grad-fixed-point",
                  "from the initial state, g = 0 and weight_decay = 0 leave p unchanged",
                  sides=sides, variables={"p": p})]


def l2_equals_decoupled_decay(stepper: SymbolicStepper) -> list[Check]:
    if not (stepper.has("weight_decay") and stepper.has("lr")):
        return []
    lr, lr_bounds = hyper_variable(stepper, "lr")
    lam = sp.Symbol("lam", positive=True)
    p, g = _real("p"), _real("g")

    def sides(st, v):
        decayed = st.hypers({"lr": v["lr"]}, weight_decay=v["lam"])
        plain = st.hypers({"lr": v["lr"]}, weight_decay=0)
        with_l2 = st.step(decayed, st.initial_state(decayed, v["p"]), v["p"], v["g"], 1).p
        without = st.step(plain, st.initial_state(plain, v["p"]), v["p"], v["g"], 1).p
        return with_l2, without - v["lr"] * v["lam"] * v["p"]

    return [Check("l2-equals-decoupled-decay",
                  "one step from the initial state with weight_decay = lam equals the step "
                  "with weight_decay = 0 followed by p <- p - lr*lam*p (p before the step)",
                  sides=sides, variables={"p": p, "g": g, "lr": lr, "lam": lam},
                  bounds={lr: lr_bounds}, scalars=("lam",))]


# --- stable-lr-range ---------------------------------------------------------------------------

def stable_lr_range(stepper: SymbolicStepper) -> list[Check]:
    if not stepper.has("lr"):
        return []
    checks = [Check("stable-lr-range",
                    "on f(p) = (L/2)*p^2, L > 0, at the default hyperparameters: the exact lr "
                    "range in which the iteration converges",
                    decide=lambda: decide_stability(stepper, ()))]
    if stepper.has("momentum"):
        checks.append(Check(
            "stable-lr-range-momentum",
            "on f(p) = (L/2)*p^2, L > 0, with momentum in (0, 1) kept free: the exact lr range "
            "in which the iteration converges",
            decide=lambda: decide_stability(stepper, ("momentum",))))
    return checks


def decide_stability(stepper: SymbolicStepper, free: tuple[str, ...]) -> Verdict:
    """Linear map on (p, states) for t >= 2, then the Jury criterion on its polynomial."""
    lr = sp.Symbol("lr", positive=True)
    L = sp.Symbol("L", positive=True)
    tau = sp.Dummy("tau", integer=True, nonnegative=True)
    free_symbols = {name: sp.Symbol(name, positive=True) for name in free}
    hypers = stepper.hypers({"lr": lr, **free_symbols})
    present = [name for name, exists in stepper.present(hypers).items() if exists]
    x_p = sp.Dummy("x_p", real=True)
    xs = {name: sp.Dummy(f"x_{name}", real=True) for name in present}
    scalars = frozenset({*stepper.lowered.hypers.values(), lr, L, *free_symbols.values()})
    with whole_tensor_steps():
        out = stepper.step(hypers, xs, x_p, L * x_p, tau + 2)
    outputs = [whole_tensor(e, scalars, {tau})
               for e in (out.p, *(out.states[name] for name in present))]
    if stepper.uses_factored() or any(unmarked(e)[1] for e in outputs):
        return Verdict("unknown", "the step reads a reduction, the tensor's shape or whether "
                       "it is factored, so on a tensor it is not one linear map of each "
                       "element's (p, states)")
    outputs = sp.Matrix(outputs)
    variables = [x_p, *xs.values()]
    not_linear = Verdict("unknown", "the step is not a fixed linear map of (p, states) on a "
                         "quadratic, so no exact lr range follows from its eigenvalues")
    jacobian = outputs.jacobian(variables)
    if _varies(jacobian, set(variables) | {tau}):  # cheap: two exact points disagree
        return not_linear
    jacobian = jacobian.applyfunc(sp.simplify)
    at_zero = outputs.subs({v: 0 for v in variables}).applyfunc(sp.simplify)
    if any(e.free_symbols & (set(variables) | {tau}) for e in jacobian) or any(at_zero):
        return not_linear
    z = sp.Symbol("z")
    coeffs = [sp.simplify(c) for c in jacobian.charpoly(z).all_coeffs()]
    if len(coeffs) == 2:
        a0 = coeffs[1]
        conditions = [1 + a0, 1 - a0]
    elif len(coeffs) == 3:
        a1, a0 = coeffs[1], coeffs[2]
        conditions = [1 + a1 + a0, 1 - a1 + a0, 1 - a0, 1 + a0]
    else:
        return Verdict("unknown", f"characteristic polynomial of degree {len(coeffs) - 1}; "
                       "only degrees 1 and 2 are decided")
    lows, highs, assumed = [], [], []
    for condition in conditions:
        condition = sp.expand(sp.simplify(condition))
        if lr not in condition.free_symbols:
            if not _positive_on_domain(condition, free_symbols):
                return Verdict("unknown", f"needs {condition} > 0, which SymPy could not show")
            assumed.append(condition)
            continue
        poly = sp.Poly(condition, lr)
        if poly.degree() != 1:
            return Verdict("unknown", f"condition {condition} > 0 is not linear in lr")
        a, b = poly.all_coeffs()
        bound = sp.simplify(-b / a)
        if a.is_positive:
            lows.append(bound)
        elif a.is_negative:
            highs.append(bound)
        else:
            return Verdict("unknown", f"sign of {a} in condition {condition} > 0 is unknown")
    low = _extreme(lows, sp.Max, free_symbols) if lows else sp.S.Zero
    high = _extreme(highs, sp.Min, free_symbols) if highs else sp.oo
    text = f"{sp.sstr(low)} < lr < {sp.sstr(high)}"
    poly_text = sp.sstr(sp.Poly(coeffs, z).as_expr())
    domain = ", ".join(f"{n} in (0, 1)" for n in free)
    return Verdict("proved", f"converges iff {text}" + (f" (for {domain})" if domain else "")
                   + f"; for t >= 2 the step is linear with characteristic polynomial "
                   f"{poly_text}, and the Jury criterion puts every root inside the unit circle "
                   "exactly on this range")


def _varies(matrix: sp.Matrix, variables: set[sp.Symbol]) -> bool:
    """Whether ``matrix`` takes different values at two exact points of ``variables`` (with
    every other symbol fixed): then it is not constant. Only ever used to give up early."""
    others = {s: sp.Rational(3, 7) for s in matrix.free_symbols - variables}
    points = [{v: sp.Rational(k + i, 3) for i, v in enumerate(sorted(variables, key=str))}
              for k in (1, 5)]
    try:
        values = [[sp.N(e.xreplace({**others, **pt}), 30) for e in matrix] for pt in points]
    except (TypeError, ValueError, ZeroDivisionError):
        return False
    return any(a.is_number and b.is_number and sp.nan not in (a, b) and abs(a - b) > 1e-20
               for a, b in zip(*values))


def _extreme(bounds, pick, free_symbols):
    """The tightest of several bounds, dropping each one another bound dominates on the
    domain of the free hypers (``pick`` is Max for lower bounds, Min for upper ones)."""
    bounds = list(dict.fromkeys(sp.simplify(b) for b in bounds))
    sign = 1 if pick is sp.Max else -1
    kept = [b for b in bounds
            if not any(o is not b and _positive_on_domain(sign * (o - b), free_symbols)
                       for o in bounds)]
    return sp.simplify(pick(*kept))


def _positive_on_domain(condition, free_symbols) -> bool:
    """``condition > 0`` for free hypers in (0, 1): substitute x = 1/(1 + u), u > 0."""
    u = {name: sp.Dummy(f"u_{name}", positive=True) for name in free_symbols}
    inside = condition.subs({s: 1 / (1 + u[name]) for name, s in free_symbols.items()})
    inside = sp.simplify(sp.factor(sp.together(inside)))
    return inside.is_positive is True or condition.is_positive is True
