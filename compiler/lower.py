"""Stage 3, lower: :class:`CheckedSpec` -> SymPy, in static single assignment form.

Each assignment makes a new version of its target (``m`` read is ``m``, ``m`` written is
``m_1``), so the update is a list of equations SymPy can reason about, and the final value of
``p`` and of every state is one expression over the inputs (``p``, ``g``, the states as they were),
the hyperparameters and ``t``. Symbols carry assumptions from the declared domains
(``lr in [0, inf)`` makes ``lr`` nonnegative; ``t`` is an integer from the first step on:
t >= 1 for an optimizer, whose first step is t = 1, and t >= 0 for a schedule, whose ``lr`` is
first read at t = 0). Literals are exact
rationals, so ``0.9`` is 9/10 to the verifier and ``0.9`` again in generated code.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from . import nodes as n
from .errors import SpecError
from .functions import (CHANNEL_SIZE, COLS, EPSILON, FACTORED, FUNCTIONS, NDIM, NUMEL, ROWS,
                        piecewise)
from .ir import CheckedSpec, Hyper, Interval, Type

#: Names every expression may read, whatever its environment (an update, a claim, a binding).
CONSTANTS = {"pi": sp.pi}
#: The built-in names of the tensor a step is for, and their symbols (a claim may read them:
#: the verifier's one-element tensor gives each its value there).
TENSOR_NAMES = {"rows": ROWS, "cols": COLS, "factored": FACTORED, "epsilon": EPSILON,
                "ndim": NDIM, "numel": NUMEL, "channel_size": CHANNEL_SIZE}

_COMPARE = {"==": sp.Eq, "!=": sp.Ne, "<": sp.Lt, "<=": sp.Le, ">": sp.Gt, ">=": sp.Ge}


@dataclass(frozen=True)
class Equation:
    """One assignment of the update, in readable (non-SSA) form, for reports and docstrings."""

    target: sp.Symbol
    value: sp.Expr
    condition: sp.Basic | None


@dataclass(frozen=True)
class LoweredSpec:
    spec: CheckedSpec
    hypers: dict[str, sp.Symbol]            # every scalar hyper name (tuple items too) -> symbol
    t: sp.Symbol
    p: sp.Symbol
    g: sp.Symbol
    states: dict[str, sp.Symbol]            # each state's value before the step
    inputs: dict[str, sp.Symbol]            # extra arrays beside g
    input_flags: dict[str, sp.Symbol]       # each input's has_<name>: given this step
    scalars: tuple[str, ...]                # the states that hold one value per tensor
    group_scalars: tuple[str, ...]          # the states that hold one value per param group
    axis_states: dict[str, str]             # factored states -> "row" / "col"
    ssa: tuple[tuple[sp.Symbol, sp.Expr], ...]  # versioned assignments, in order
    outputs: dict[str, sp.Expr]             # "p" and each state -> value after the step
    temps: dict[str, sp.Expr]               # each temporary's final value in the step
    state_inits: dict[str, sp.Expr]
    state_conditions: dict[str, sp.Basic]   # only for conditional states
    requires: tuple[tuple[sp.Basic, str], ...]
    equations: tuple[Equation, ...]

    @property
    def hyper_args(self) -> tuple[sp.Symbol, ...]:
        """The scalar hyperparameters in declaration order: the generated functions' arguments."""
        return tuple(self.hypers[name] for h in self.spec.hypers for name in h.scalar_names)


def hyper_symbol(name: str, hyper: Hyper) -> sp.Symbol:
    """The SymPy symbol of a scalar hyper, with what its type and domain promise. A choice is
    the index of the chosen string."""
    if hyper.type in ("bool", "list"):
        return sp.Symbol(name)
    if hyper.type == "choice":
        return sp.Symbol(name, integer=True, nonnegative=True)
    assumptions = {"integer": True} if hyper.type == "int" else {"real": True}
    assumptions.update(_domain_assumptions(hyper.domain))
    return sp.Symbol(name, **assumptions)


def step_symbol(kind: str) -> sp.Symbol:
    """``t`` over the steps a spec of this kind sees: a schedule from t = 0, every other kind
    (an optimizer, a wrapper) from t = 1."""
    if kind == "schedule":
        return sp.Symbol("t", integer=True, nonnegative=True)
    return sp.Symbol("t", integer=True, positive=True)


def _domain_assumptions(domain: Interval | None) -> dict[str, bool]:
    if domain is None:
        return {}
    out = {}
    if domain.low is not None and (domain.low > 0 or (domain.low == 0 and not domain.low_closed)):
        out["positive"] = True
    elif domain.low is not None and domain.low >= 0:
        out["nonnegative"] = True
    if domain.high is not None and (domain.high < 0 or (domain.high == 0 and not domain.high_closed)):
        out["negative"] = True
    elif domain.high is not None and domain.high <= 0:
        out["nonpositive"] = True
    return out


def lower(spec: CheckedSpec) -> LoweredSpec:
    hypers = {name: hyper_symbol(name, h) for h in spec.hypers for name in h.scalar_names}
    t = step_symbol(spec.kind)
    p, g = sp.Symbol("p", real=True), sp.Symbol("g", real=True)
    states = {s.name: sp.Symbol(s.name, real=True) for s in spec.states}
    inputs = {name: sp.Symbol(name, real=True) for name, _ in spec.inputs}
    flags = {name: sp.Symbol(f"has_{name}") for name, _ in spec.inputs}
    plain = {**hypers, "t": t, "p": p, "g": g, **TENSOR_NAMES,
             **states, **inputs,
             **{f"has_{name}": flag for name, flag in flags.items()}, **choices_of(spec)}

    real = _RealCheck()

    # SSA, and the final values with every temporary inlined.
    current: dict[str, sp.Expr] = dict(plain)
    versions: dict[str, int] = {}
    ssa = []
    for stmt in spec.statements:
        value = _expr(stmt.value, current, real)
        if stmt.condition is not None:
            value = piecewise((value, _expr(stmt.condition, current, real)),
                              (current[stmt.target], True))
        versions[stmt.target] = versions.get(stmt.target, 0) + 1
        ssa.append((sp.Symbol(f"{stmt.target}_{versions[stmt.target]}", real=True), value))
        current[stmt.target] = value
    outputs = {"p": current["p"], **{name: current[name] for name in states}}

    # Readable equations: every name is its own symbol.
    temps = {}
    equations = []
    for stmt in spec.statements:
        env = {**plain, **temps}
        if stmt.target not in env:  # a flag's symbol has no number's assumptions
            flag = spec.symbols[stmt.target].type is Type.BOOL
            temps[stmt.target] = (sp.Symbol(stmt.target) if flag
                                  else sp.Symbol(stmt.target, real=True))
        target = {**plain, **temps}[stmt.target]
        equations.append(Equation(
            target, _expr(stmt.value, env, real),
            _expr(stmt.condition, env, real) if stmt.condition is not None else None))
    host_env = {**hypers, **choices_of(spec)}
    temps_final = {name: current[name] for name in temps}

    return LoweredSpec(
        spec=spec, hypers=hypers, t=t, p=p, g=g, states=states, inputs=inputs,
        input_flags=flags,
        scalars=tuple(s.name for s in spec.states if s.scalar and not s.group),
        group_scalars=tuple(s.name for s in spec.states if s.group), ssa=tuple(ssa),
        axis_states={s.name: s.axis for s in spec.states if s.axis is not None},
        outputs=outputs,
        temps=temps_final,
        state_inits={s.name: _expr(s.init, {**host_env, "p": p}, real) for s in spec.states},
        state_conditions={s.name: _expr(s.condition, {**host_env, "factored": FACTORED}, real)
                          for s in spec.states if s.condition is not None},
        requires=tuple((_expr(r.condition, host_env, real), r.message) for r in spec.requires),
        equations=tuple(equations),
    )


class _RealCheck:
    """Refuses, at the innermost node that makes it, a constant SymPy folds to something that
    is not a real number: complex infinity (a division by 0, log(0)) or an imaginary number
    (an even root or the log of a negative number). Generated code could not hold it (the
    printers have no complex infinity; an imaginary host value is a complex Python number).
    Subexpressions already looked at are not looked at again."""

    def __init__(self):
        self.seen: set[sp.Basic] = set()

    def __call__(self, node: n.Expr, value: sp.Basic) -> None:
        stack = [value]
        while stack:
            e = stack.pop()
            if e in self.seen:
                continue
            self.seen.add(e)
            if isinstance(e, sp.Expr) and not e.free_symbols and _not_real(e):
                what = ("infinite with no sign (a division by 0, or log(0))" if e.has(sp.zoo)
                        else f"not a real number ({sp.sstr(e)}): a fractional power or a log "
                             "of a negative number")
                raise SpecError(f"this is {what}", node.span)
            stack.extend(e.args)


def _not_real(constant: sp.Expr) -> bool:
    """Whether a constant is not a real number: by SymPy's assumptions, or where they cannot
    tell (``(-pi)^(-pi)``, left unevaluated), by its value to 15 digits."""
    real = constant.is_extended_real
    if real is not None:
        return not real
    try:
        value = complex(sp.N(constant, 15))
    except (TypeError, ValueError, ArithmeticError):
        return False  # no value to judge by: generated code computes it
    return value.imag != 0


#: An expression environment's entry naming each choice hyper's strings (their index is the
#: value generated code sees); not a name a spec can write.
CHOICES = "__choices__"


def _choices(env) -> dict[str, tuple[str, ...]]:
    return env.get(CHOICES, {})


def choices_of(spec: CheckedSpec) -> dict[str, dict[str, tuple[str, ...]]]:
    """``{CHOICES: {hyper: strings}}``, to add to an environment for :func:`_expr`."""
    return {CHOICES: {h.name: h.choices for h in spec.hypers if h.type == "choice"}}


def _expr(node: n.Expr, env: dict[str, sp.Basic], check=None) -> sp.Basic:
    """One expression node in SymPy, names looked up in ``env`` (already checked to exist).
    ``check(node, value)``, where given, is called on every node's value, innermost first."""
    value = _node(node, env, check)
    if check is not None:
        check(node, value)
    return value


def _node(node: n.Expr, env: dict[str, sp.Basic], check) -> sp.Basic:
    def _expr_(child):
        return _expr(child, env, check)

    match node:
        case n.Number(text=text):
            return sp.Rational(text)
        case n.Boolean(value=value):
            return sp.true if value else sp.false
        case n.Name(id=name):
            return env[name] if name in env else CONSTANTS[name]
        case n.Call(func=func, args=args):
            return FUNCTIONS[func].to_sympy(*(_expr_(a) for a in args))
        case n.Neg(operand=operand):
            return -_expr_(operand)
        case n.Binary(op="%", left=left, right=right):
            a, b = _expr_(left), _expr_(right)
            try:
                return sp.Mod(a, b)
            except ZeroDivisionError:  # SymPy refuses a divisor it can show is 0
                raise SpecError("'%' by zero: the right side is always 0", right.span) from None
        case n.Binary(op=op, left=left, right=right):
            a, b = _expr_(left), _expr_(right)
            return {"+": sp.Add, "-": lambda x, y: x - y, "*": sp.Mul,
                    "/": lambda x, y: x / y, "^": sp.Pow}[op](a, b)
        case n.Compare(op=op, left=n.Name() as name, right=n.String(value=value)) | \
                n.Compare(op=op, left=n.String(value=value), right=n.Name() as name):
            symbol = env[name.id]
            return _COMPARE[op](symbol, sp.Integer(_choices(env)[name.id].index(value)))
        case n.Compare(op=op, left=left, right=right):
            return _COMPARE[op](_expr_(left), _expr_(right))
        case n.BoolOp(op=op, left=left, right=right):
            return (sp.And if op == "and" else sp.Or)(_expr_(left), _expr_(right))
        case n.Not(operand=operand):
            return sp.Not(_expr_(operand))
        case n.Ternary(condition=cond, then=then, otherwise=otherwise):
            c, a, b = _expr_(cond), _expr_(then), _expr_(otherwise)
            if _is_condition(a) and _is_condition(b):  # a choice between flags is a flag
                return sp.Or(sp.And(c, a), sp.And(sp.Not(c), b))
            return piecewise((a, c), (b, True))
    raise TypeError(f"unexpected node {node!r}")  # pragma: no cover


def _is_condition(value: sp.Basic) -> bool:
    """Whether a lowered value is a flag, not a number: a relation, a logical operation or
    constant, or a symbol without a number's assumptions (bool hyperparameters, ``factored``,
    ``has_<input>``; every number symbol is declared real or integer)."""
    if isinstance(value, (sp.Rel, sp.logic.boolalg.BooleanFunction,
                          sp.logic.boolalg.BooleanAtom)):
        return True
    return isinstance(value, sp.Symbol) and value.is_real is None
