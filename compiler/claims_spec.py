"""A spec's own claims (its ``claim`` lines) as :class:`~.claims_builtin.Check` objects.

Meaning of names in a claim: ``p``, ``g`` and states are the values before the step (free reals,
unless ``at`` pins them); ``p_new`` and ``<state>_new`` the values after it; a temporary its
final value; ``t`` the step (free, unless pinned); a hyperparameter the claim mentions is free
over its declared domain, every other one is at its default; names introduced by ``given`` are
free reals constrained by those conditions.

An equivalence ``[not] equivalent to OTHER(x = e, ...) over K steps`` runs both specs K steps
from their initial states on the same p and gradients g1..gK and compares p after every step;
bindings may use ``t``, which is the step being taken.
"""

from __future__ import annotations

from typing import Any

import sympy as sp

from . import nodes as n
from .claims_builtin import Check, hyper_variable
from .ir import Claim
from .lower import TENSOR_NAMES, _expr, choices_of
from .stepper import NumericStepper, SymbolicStepper, one_element

_FLIP = {"<=": ">=", "<": ">", ">=": ">=", ">": ">", "==": "=="}


def spec_checks(compiled, stepper: SymbolicStepper) -> list[Check]:
    out = []
    for claim in compiled.checked.claims:
        if claim.decl.other is not None:
            out.append(_equivalence(compiled, stepper, claim))
        else:
            out.append(_relation(compiled, stepper, claim))
    return out


def _source_text(compiled, decl: n.ClaimDecl) -> str:
    lines = compiled.file.text.splitlines()[decl.span.line - 1:decl.span.end_line]
    text = " ".join(line.strip() for line in lines)
    return text.split(":", 1)[1].strip() if ":" in text else text


def _free_hypers(stepper: SymbolicStepper, claim: Claim) -> tuple[dict, dict]:
    variables, bounds = {}, {}
    for name in claim.mentioned:
        symbol, bounds[symbol] = hyper_variable(stepper, name)
        variables[name] = symbol
    return variables, bounds


def _hyper_values(st: SymbolicStepper, claim: Claim, values: dict[str, Any],
                  bindings: tuple[n.Binding, ...], t) -> dict[str, Any]:
    """Defaults, the claim's free hypers, then ``at`` bindings (evaluated over those)."""
    hypers = st.hypers({name: values[name] for name in claim.mentioned})
    env = {**hypers, "t": t, **choices_of(st.spec)}
    for binding in bindings:
        if binding.name in hypers or _is_tuple(st, binding.name):
            hypers.update(_bind(st, binding, env))
    return hypers


def _requirements(st: SymbolicStepper, hypers: dict[str, Any]) -> list[tuple]:
    """The spec's ``require`` lines at these hyper values, as givens: a counterexample must
    respect them, and proofs may use the simple ones (``warmup < total``)."""
    if isinstance(st, NumericStepper):
        return []
    subs = {st.lowered.hypers[name]: value for name, value in hypers.items()}
    out = []
    for condition, _ in st.lowered.requires:
        condition = condition.xreplace(subs)
        parts = condition.args if isinstance(condition, sp.And) else (condition,)
        for part in parts:
            if isinstance(part, sp.core.relational.Relational) and part.rel_op != "!=":
                out.append((part.lhs, part.rel_op, part.rhs))
            elif part != sp.true:
                out.append((part, "holds", None))
    return out


def _is_tuple(st: SymbolicStepper, name: str) -> bool:
    return any(h.name == name and h.type == "tuple" for h in st.spec.hypers)


def _bind(st: SymbolicStepper, binding: n.Binding, env: dict) -> dict[str, Any]:
    """Scalar hyper values a binding sets on stepper ``st``'s spec."""
    if isinstance(binding.value, n.String):  # a choice: generated code sees the index
        owner = next(h for h in st.spec.hypers if h.name == binding.name)
        return {binding.name: st.value(sp.Integer(owner.choices.index(binding.value.value)))}
    if isinstance(binding.value, tuple):
        owner = next(h for h in st.spec.hypers if h.name == binding.name)
        return {item: st.value(_expr(e, env)) for item, e in zip(owner.components, binding.value)}
    return {binding.name: st.value(_expr(binding.value, env))}


def _relation(compiled, stepper: SymbolicStepper, claim: Claim) -> Check:
    decl = claim.decl
    low = stepper.lowered
    pinned = {b.name for b in decl.at}
    variables, bounds = _free_hypers(stepper, claim)
    inputs = ({"p": sp.Symbol("p", real=True), "g": sp.Symbol("g", real=True),
               **{name: sp.Symbol(name, real=True) for name in low.states}}
              if stepper.spec.kind != "schedule" else {})
    variables.update({k: v for k, v in inputs.items() if k not in pinned})
    if "t" not in pinned:
        variables["t"] = low.t
    variables.update({name: sp.Symbol(name, real=True) for name in claim.variables})
    relation = decl.relation

    def sides(st: SymbolicStepper, values: dict[str, Any]):
        t = values.get("t")
        hypers = _hyper_values(st, claim, values, decl.at, t)
        for binding in decl.at:  # t may be pinned in terms of (free) hypers: at t = T_max
            if binding.name == "t":
                t = st.value(_expr(binding.value, {**hypers, **choices_of(st.spec)}))
        env = {**hypers, "t": t, **choices_of(st.spec), **TENSOR_NAMES}
        given_inputs = {name: values.get(name) for name in inputs}
        pinned_env = {**env, **{k: v for k, v in given_inputs.items() if v is not None}}
        for binding in decl.at:
            if binding.name in inputs:
                given_inputs[binding.name] = st.value(_expr(binding.value, pinned_env))
        states = {name: given_inputs[name] for name in low.states}
        out = st.step(hypers, states, given_inputs.get("p"), given_inputs.get("g"), t)
        env.update(given_inputs)
        env.update({**({"p_new": out.p} if "p" in inputs else {}),
                    **{f"{k}_new": v for k, v in out.states.items()},
                    **out.temps, **{name: values[name] for name in claim.variables}})
        for name in low.states:  # a state that does not exist keeps its value
            env.setdefault(f"{name}_new", env[name])
        def side(expr):
            return one_element(_expr(expr, env))
        def given(c):
            if isinstance(c.left, n.String) or isinstance(c.right, n.String):
                return (side(c), "holds", None)  # a choice against one of its strings
            return (side(c.left), c.op, side(c.right))
        givens = [given(c) for c in decl.given]
        givens += _requirements(st, hypers)
        lhs, rhs = side(relation.left), side(relation.right)
        if relation.op in ("<=", "<"):
            lhs, rhs = rhs, lhs
        return lhs, rhs, givens

    return Check(decl.id, _source_text(compiled, decl), relation=_FLIP[relation.op], sides=sides,
                 variables=variables, bounds=bounds, own=True, limit=decl.limit is not None)


def _equivalence(compiled, stepper: SymbolicStepper, claim: Claim) -> Check:
    from .pipeline import compile_file, find_spec

    decl = claim.decl
    other = compile_file(find_spec(decl.other, near=compiled.file.path))
    other_symbolic = SymbolicStepper(other.lowered)
    numeric_other: list[NumericStepper] = []

    def other_stepper(st):
        if not isinstance(st, NumericStepper):
            return other_symbolic
        if not numeric_other:
            from ..runtime.loader import load_source
            numeric_other.append(NumericStepper(other.lowered, load_source(other.name, other.source)))
        return numeric_other[0]

    variables, bounds = _free_hypers(stepper, claim)
    variables["p"] = sp.Symbol("p", real=True)
    grads = [f"g{k}" for k in range(1, decl.steps + 1)]
    variables.update({name: sp.Symbol(name, real=True) for name in grads})

    def sides(st: SymbolicStepper, values: dict[str, Any]):
        st2 = other_stepper(st)
        mine_state = other_state = None
        mine_p = theirs_p = values["p"]
        lhs, rhs = [], []
        for k, name in enumerate(grads, start=1):
            hypers = _hyper_values(st, claim, values, decl.at, k)
            env = {**hypers, "t": k, **choices_of(st.spec)}
            theirs = st2.hypers()
            for binding in decl.other_bindings:
                theirs.update(_bind(st2, binding, env))
            if mine_state is None:
                mine_state = st.initial_state(hypers, values["p"])
                other_state = st2.initial_state(theirs, values["p"])
            mine = st.step(hypers, mine_state, mine_p, values[name], k)
            other_out = st2.step(theirs, other_state, theirs_p, values[name], k)
            mine_state, mine_p = mine.states, mine.p
            other_state, theirs_p = other_out.states, other_out.p
            lhs.append(mine_p)
            rhs.append(theirs_p)
        return lhs, rhs, []

    return Check(decl.id, _source_text(compiled, decl), relation="==", sides=sides,
                 variables=variables, bounds=bounds, own=True, negated=decl.negated,
                 uses_factored=other_symbolic.uses_factored())
