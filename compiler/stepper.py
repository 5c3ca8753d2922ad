"""One optimizer step, evaluated two ways behind one interface, for the verifier.

* :class:`SymbolicStepper` substitutes into the lowered SymPy expressions: exact rationals for
  the spec's defaults, symbols where a claim keeps a quantity free.
* :class:`NumericStepper` runs the generated module's ``numpy`` kernel on one-element float64
  arrays — the code users actually run — to re-check a counterexample.

A claim is written once as a function of a stepper and a dict of values, and evaluated with
either: symbolically to prove or refute, numerically to confirm a counterexample.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import sympy as sp

from ..runtime.kernels import (TensorStep, cast_host, host_value, run_group_step,
                               scalar_updates, tensor_flags)
from .functions import (EPSILON, FACTORED, NDIM, SHAPE_VALUES, AxisMean, ReduceMax, ReduceSum,
                        without_selects)
from .lower import LoweredSpec


@dataclass(frozen=True)
class Outcome:
    p: Any                  # the parameter after the step
    states: dict[str, Any]  # each existing state after the step
    temps: dict[str, Any]   # each temporary's final value (symbolic stepper only)


#: Claims are evaluated in float64: its machine epsilon, exactly (a ``none`` eps1's fallback).
FLOAT64_EPSILON = sp.Rational(1, 2**52)


def exact(value) -> sp.Basic:
    """A default as SymPy sees it: 0.9 is 9/10, true is sp.true, a list a Tuple, infinity oo,
    None NaN (as generated code sees it: ``default(x, fallback)`` is then the fallback)."""
    if value is None:
        return sp.nan
    if isinstance(value, list):
        return sp.Tuple(*(exact(v) for v in value))
    if isinstance(value, bool):
        return sp.true if value else sp.false
    if isinstance(value, int):
        return sp.Integer(value)
    if math.isnan(value):  # None, as the numeric stepper passes it
        return sp.nan
    if math.isinf(value):
        return sp.oo if value > 0 else -sp.oo
    return sp.Rational(repr(float(value)))


class SymbolicStepper:
    def __init__(self, lowered: LoweredSpec):
        self.lowered = lowered
        self.spec = lowered.spec
        # Claims speak of one element: over a one-element tensor a sum is its only term.
        self._outputs = {k: _one_element(v) for k, v in lowered.outputs.items()}
        self._temps = {k: _one_element(v) for k, v in lowered.temps.items()}
        self._marked: dict[bool, tuple[dict, dict]] = {}  # by rests: outputs, temps

    def _marked_forms(self, rests: bool) -> tuple[dict, dict]:
        """The outputs and temporaries in the marked form (see :func:`marked_sums`)."""
        if rests not in self._marked:
            low = self.lowered
            self._marked[rests] = (
                {k: _one_element(v, True, rests) for k, v in low.outputs.items()},
                {k: _one_element(v, True, rests) for k, v in low.temps.items()})
        return self._marked[rests]

    # values --------------------------------------------------------------------------------

    def defaults(self) -> dict[str, sp.Basic]:
        """Every scalar hyper (tuple items by their names) at its default, exactly."""
        out = {}
        for h in self.spec.hypers:
            if h.type == "choice":  # generated code sees the index of the string
                out[h.name] = sp.Integer(h.choices.index(h.default))
                continue
            values = h.default if h.type == "tuple" else (
                [h.default] if h.type == "list" else (h.default,))
            out.update(zip(h.scalar_names, (exact(v) for v in values)))
        return out

    def hypers(self, free: dict[str, Any] | None = None, **fixed) -> dict[str, Any]:
        """Defaults, then ``free`` (a claim's variables), then ``fixed``; unknown names ignored."""
        out = self.defaults()
        for source in (free or {}), fixed:
            out.update({k: self.value(v) for k, v in source.items() if k in out})
        return out

    def value(self, v):
        return exact(v) if isinstance(v, (bool, int, float)) else v

    def has(self, name: str) -> bool:
        return name in self.lowered.hypers

    # stepping ------------------------------------------------------------------------------

    def present(self, hypers: dict[str, Any]) -> dict[str, bool]:
        subs = self._hyper_subs(hypers)
        out = {}
        subs[FACTORED] = sp.false
        for name in self.lowered.states:
            condition = self.lowered.state_conditions.get(name, sp.true)
            out[name] = condition.xreplace(subs) != sp.false
        return out

    def initial_state(self, hypers: dict[str, Any], p=None) -> dict[str, Any]:
        subs = self._hyper_subs(hypers)
        subs[self.lowered.p] = self.lowered.p if p is None else p
        return {name: sp.sympify(self.lowered.state_inits[name]).xreplace(subs)
                for name, exists in self.present(hypers).items() if exists}

    def step(self, hypers: dict[str, Any], state: dict[str, Any], p, g, t) -> Outcome:
        low = self.lowered
        subs = self._hyper_subs(hypers)
        subs.update({low.p: p, low.g: g, low.t: t})
        # Extra inputs (Sophia's Hessian estimate) are not given in claims' steps.
        subs.update({flag: sp.false for flag in low.input_flags.values()})
        subs.update({symbol: sp.S.Zero for symbol in low.inputs.values()})
        inits = {name: sp.sympify(low.state_inits[name]).xreplace(subs) for name in low.states}
        present = self.present(hypers)
        for name, symbol in low.states.items():
            subs[symbol] = state[name] if present[name] else inits[name]
        cache: dict = {}
        outputs, temps = (self._marked_forms(_MODE["rests"]) if _MODE["marked"]
                          else (self._outputs, self._temps))
        return Outcome(
            p=substitute(outputs["p"], subs, cache),
            states={name: substitute(outputs[name], subs, cache)
                    for name in low.states if present[name]},
            temps={name: substitute(value, subs, cache) for name, value in temps.items()},
        )

    def _hyper_subs(self, hypers: dict[str, Any]) -> dict:
        return {self.lowered.hypers[name]: value for name, value in hypers.items()}


def substitute(expr: sp.Basic, subs: dict, cache: dict | None = None) -> sp.Basic:
    """``expr.xreplace(subs)``, except that a Piecewise is settled branch by branch: a branch
    whose condition became false is never built, so values an unused branch would take
    there (AdEMAMix's ``t / horizon`` at horizon 0, once none has become 0) cannot stop
    the evaluation with SymPy's "not comparable" errors. ``cache`` shares the work on
    subexpressions that repeat; an And or Or settled by one argument is too."""
    cache = {} if cache is None else cache
    if expr in subs:
        return subs[expr]
    if not expr.args or not (expr.free_symbols & subs.keys()):
        return expr
    if expr in cache:
        return cache[expr]
    if isinstance(expr, sp.Piecewise):
        pairs = []
        for value, condition in expr.args:
            condition = substitute(condition, subs, cache)
            if condition == sp.false:
                continue
            pairs.append((substitute(value, subs, cache), condition))
            if condition == sp.true:
                break
        result = pairs[0][0] if len(pairs) == 1 and pairs[0][1] == sp.true else \
            sp.Piecewise(*pairs)
    elif isinstance(expr, (sp.And, sp.Or)):
        # settled by one argument (false in an And, true in an Or) whatever the others are,
        # even one that cannot be evaluated here
        decisive = sp.false if isinstance(expr, sp.And) else sp.true
        args, failure = [], None
        for arg in expr.args:
            try:
                value = substitute(arg, subs, cache)
            except (TypeError, ValueError) as error:
                failure = error
                continue
            if value == decisive:
                cache[expr] = decisive
                return decisive
            args.append(value)
        if failure is not None:
            raise failure
        result = expr.func(*args)
    else:
        result = expr.func(*(substitute(a, subs, cache) for a in expr.args))
    cache[expr] = result
    return result


#: One symbol per size (and ndim), standing for "1 on a one-element tensor" in the marked form
#: of the step (see :func:`marked_sums`); shared by every spec, so the same size in two specs
#: has the same marker.
_MARKERS: dict[sp.Basic, sp.Dummy] = {}
#: One symbol per distinct reduction, standing for what the tensor's other elements add to it
#: ("0 on a one-element tensor"; the largest of none, -oo, for amax), and its one-element value.
_RESTS: dict[sp.Basic, sp.Dummy] = {}
_REST_VALUES: dict[sp.Dummy, sp.Basic] = {}
_MODE = {"marked": False, "rests": False}


def _marker(node: sp.Basic) -> sp.Dummy:
    if node not in _MARKERS:
        # real, no sign: what the marker scales need not keep this element's sign
        _MARKERS[node] = sp.Dummy(f"one{len(_MARKERS)}", real=True)
    return _MARKERS[node]


def _with_rest(node: sp.Basic) -> sp.Basic:
    """A reduction over more than this element, in the marked form: its term combined with a
    symbol for the rest of the tensor's (or row's, channel's, group's): ``x + r`` (any real),
    ``max(x, r)`` for amax. A claim that holds whatever r is holds for every tensor; one that
    needs r at its one-element value (a ``given`` that zeroes x does not zero the sum) does
    not."""
    if node not in _RESTS:
        # the others' terms are the same expression of other values: where it cannot be
        # negative (g^2, |g|), neither can their sum
        rest = sp.Dummy(f"rest{len(_RESTS)}", real=True,
                        nonnegative=(not isinstance(node, ReduceMax)
                                     and node.args[0].is_nonnegative is True) or None)
        _RESTS[node] = rest
        _REST_VALUES[rest] = sp.S.NegativeInfinity if isinstance(node, ReduceMax) else sp.S.Zero
    rest = _RESTS[node]
    return sp.Max(node.args[0], rest) if isinstance(node, ReduceMax) else node.args[0] + rest


@contextlib.contextmanager
def marked_sums(rests: bool = False):
    """Within it, :meth:`SymbolicStepper.step` returns the marked form, where the plain form
    puts the one-element value: each size (and ndim) is a marker, and each reduction over the
    tensor (or row, channel, group) its term times a marker — or, with ``rests``, its term
    combined with a symbol for the rest of the tensor (:func:`_with_rest`). A difference that
    still has such a symbol depends on what a one-element tensor collapses (``mean(g)`` and
    ``g`` agree there, and nowhere else).

    The product form suits the built-in claims, which change the whole tensor (every g times
    c, every g zero); a spec's own claim speaks of one element (``given g == 0`` is this
    element's g, which does not make a sum zero), so it takes the rests."""
    before = dict(_MODE)
    _MODE.update(marked=True, rests=rests)
    try:
        yield
    finally:
        _MODE.update(before)


def unmarked(expr) -> tuple[sp.Basic, bool]:
    """``expr`` with every marker at its one-element value (a size 1, a rest 0 or -oo), and
    whether it had one."""
    expr = sp.sympify(expr)
    markers = [m for m in expr.free_symbols if m in _MARKER_SET]
    if not markers:
        return expr, False
    return expr.xreplace({m: _REST_VALUES.get(m, sp.Integer(1)) for m in markers}), True


class _MarkerSet:
    def __contains__(self, symbol) -> bool:
        return isinstance(symbol, sp.Dummy) and (symbol in _REST_VALUES
                                                 or symbol in _MARKERS.values())


_MARKER_SET = _MarkerSet()


def one_element(expr: sp.Basic) -> sp.Basic:
    """A claim's own expression over the one-element tensor, marked where the step is (a
    claim may write ``norm(g)`` too)."""
    return _one_element(sp.sympify(expr), _MODE["marked"], _MODE["rests"])


def _one_element(expr: sp.Basic, marked: bool = False, rests: bool = False) -> sp.Basic:
    """A one-element float64 vector: a sum or a mean is its only term, every size (and ndim)
    is 1, it is not factored. (Matrix operations stay opaque functions: claims that need their value end
    unknown.) ``marked``: each sum's term and each size times its marker instead (see
    :func:`marked_sums`)."""
    def collapse(node):
        if not marked:
            return node.args[0]
        return _with_rest(node) if rests else _marker(node) * node.args[0]
    expr = without_selects(expr.replace(lambda e: isinstance(e, (ReduceSum, AxisMean)),
                                        collapse))  # GroupSum too
    # ndim too: a proof that needs the vector's ndim = 1 says nothing about a matrix (AdamP
    # projects only those)
    sizes = {s: (_marker(s) if marked else sp.Integer(1)) for s in (*SHAPE_VALUES, NDIM)}
    return expr.xreplace({**sizes, FACTORED: sp.false, EPSILON: FLOAT64_EPSILON})


class NumericStepper(SymbolicStepper):
    """The same interface over the generated module's NumPy kernel, in float64."""

    def __init__(self, lowered: LoweredSpec, module: ModuleType):
        super().__init__(lowered)
        self.module = module
        self._symbolic = SymbolicStepper(lowered)  # for temporaries, which the kernel keeps

    def value(self, v):
        if isinstance(v, sp.Tuple):
            return tuple(float(x) for x in v)
        if isinstance(v, sp.Basic):
            return bool(v) if v in (sp.true, sp.false) else float(v)
        return v

    def defaults(self) -> dict[str, Any]:
        return {name: self.value(v) for name, v in super().defaults().items()}

    def present(self, hypers):
        if self.module.KIND == "schedule":
            return {}
        flags = tensor_flags(self.module, (1,), np.dtype(np.float64))
        return dict(zip(self.module.STATES,
                        self.module.states_present(*self._flat(hypers), *flags)))

    def initial_state(self, hypers, p=None):
        if self.module.KIND == "schedule":
            return {}
        inits = self.module.state_inits(np.array([float(p if p is not None else 0.0)]),
                                        *self._flat(hypers))
        out = {name: float(np.asarray(init).reshape(-1)[0]) for name, init, exists in
               zip(self.module.STATES, inits, self.present(hypers).values()) if exists}
        out.update(self.initial_scalars(hypers))
        return out

    def initial_scalars(self, hypers) -> dict[str, float]:
        flat = self._flat(hypers)
        return {**dict(zip(self.module.SCALARS, map(float, self.module.scalar_inits(*flat)))),
                **dict(zip(self.module.GROUP_SCALARS,
                           map(float, self.module.group_inits(*flat))))}

    def step(self, hypers, state, p, g, t) -> Outcome:
        flat = self._flat(hypers)
        temps = self._temps_at(hypers, state, p, g, t)
        if self.module.KIND == "schedule":  # lr from the generated function
            temps["lr"] = float(self.module.lr_at(int(t), *flat))
            return Outcome(p, {}, temps)
        present = self.present(hypers)
        scalars = tuple(float(state[name]) for name in self.module.SCALARS)
        group = tuple(float(state[name]) for name in self.module.GROUP_SCALARS)
        not_given = (False,) * len(self.module.INPUTS)
        flags = tensor_flags(self.module, (1,), np.dtype(np.float64))
        with np.errstate(all="ignore"):  # as the front ends: an unused branch may divide by 0
            host = self.module.host_scalars(int(t), *flat, *scalars, *group, *not_given, *flags)
        host = cast_host(host, self.module.HOST_IS_BOOL, np.dtype(np.float64))
        arrays = {name: np.array([float(state[name])]) if present[name] else np.empty(0)
                  for name in self.module.STATES}
        p_array = np.array([float(p)])
        with np.errstate(all="ignore"):
            empty_inputs = [np.empty(0)] * len(self.module.INPUTS)
            # one tensor of one element: its own param group
            step = TensorStep(self.module, "numpy",
                              [p_array, np.array([float(g)]), *empty_inputs, *arrays.values()],
                              host, np.dtype(np.float64), (1, 1))
            group_sums = run_group_step(self.module, [step])
        states = {name: float(a[0]) for name, a in arrays.items() if present[name]}
        states.update(zip(self.module.SCALARS, scalar_updates(
            self.module, int(t), flat, scalars, group, step.tensor_values)))
        if self.module.GROUP_SCALARS:
            states.update(zip(self.module.GROUP_SCALARS, map(float, self.module.group_updates(
                int(t), *flat, *group, *group_sums))))
        return Outcome(float(p_array[0]), states, temps)

    def _temps_at(self, hypers, state, p, g, t) -> dict[str, float]:
        """Temporaries are not outputs of the kernel: each one's lowered expression at these
        values, exactly, then in float64 (those that are not a number there are left out)."""
        def exact_value(v):
            return sp.Tuple(*map(exact, v)) if isinstance(v, tuple) else exact(v)
        outcome = self._symbolic.step(
            {k: exact_value(v) for k, v in hypers.items()},
            {k: exact_value(v) for k, v in (state or {}).items()},
            exact_value(0.0 if p is None else p), exact_value(0.0 if g is None else g),
            sp.Integer(int(t)))
        return {name: float(value) for name, value in outcome.temps.items() if value.is_number}

    def _flat(self, hypers) -> tuple:
        return tuple(host_value(hypers[str(symbol)]) for symbol in self.lowered.hyper_args)
