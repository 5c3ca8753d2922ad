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
import functools
import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import sympy as sp

from ..runtime.kernels import (TensorStep, cast_host, host_value, run_group_step,
                               scalar_updates, tensor_flags)
from .functions import (CHANNEL_SIZE, EPSILON, FACTORED, NDIM, NUMEL, SHAPE_VALUES, AxisMean,
                        ChannelSum, GroupSum, Orthogonalize, ReduceMax, ReduceSum,
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
        self._whole: dict[bool, tuple[dict, dict]] = {}  # by factored: outputs, temps

    def _whole_forms(self, factored: bool) -> tuple[dict, dict]:
        """The outputs and temporaries as lowered, for a parameter that is ``factored`` or
        not (see :func:`whole_tensor_steps`)."""
        if factored not in self._whole:
            flag = {FACTORED: sp.true if factored else sp.false}
            low = self.lowered
            self._whole[factored] = tuple({k: sp.sympify(v).xreplace(flag) for k, v in
                                           forms.items()} for forms in (low.outputs, low.temps))
        return self._whole[factored]

    @functools.cached_property
    def _reads_factored(self) -> bool:
        low = self.lowered
        return any(sp.sympify(e).has(FACTORED) for e in (
            *low.outputs.values(), *low.temps.values(), *low.state_conditions.values()))

    def uses_factored(self) -> bool:
        """Whether the step reads ``factored`` (then a claim is shown for both values)."""
        return self._reads_factored

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
        subs[FACTORED] = sp.true if _MODE["whole"] and _MODE["factored"] else sp.false
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
        outputs, temps = (self._whole_forms(_MODE["factored"]) if _MODE["whole"]
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


#: The modes of :meth:`SymbolicStepper.step` (see :func:`whole_tensor_steps`).
_MODE = {"whole": False, "factored": False}


@contextlib.contextmanager
def whole_tensor_steps(factored: bool = False):
    """Within it, :meth:`SymbolicStepper.step` substitutes into the lowered step as it is,
    reductions and sizes kept, with ``factored`` for whether the parameter has two or more
    dimensions; :func:`whole_tensor` then writes each reduction as this element's term and
    the rest of the tensor's. Outside it, every reduction is its one element's term."""
    before = dict(_MODE)
    _MODE.update(whole=True, factored=factored)
    try:
        yield
    finally:
        _MODE.update(before)


#: One symbol per distinct reduction of what the step gave (``sum(g1^2)`` after the claim
#: put g1 in), standing for what the tensor's other elements (the row's, channel's, group's)
#: add to it; shared by every spec, so one reduction is one symbol wherever it appears.
_RESTS: dict[tuple, sp.Dummy] = {}
#: The number of elements a row_mean (axis -1) or col_mean (axis -2) averages.
_AXIS_SIZES = {axis: sp.Dummy(f"axis{axis}_size", positive=True, integer=True)
               for axis in (-1, -2)}
#: The tensor's values on a one-element float64 vector: each size 1, ndim 1, not factored,
#: epsilon float64's.
_ONE_ELEMENT_TENSOR: dict[sp.Basic, sp.Basic] = {
    **{size: sp.Integer(1) for size in (*SHAPE_VALUES, *_AXIS_SIZES.values())},
    NDIM: sp.Integer(1), EPSILON: FLOAT64_EPSILON}
#: Each marker's value on a one-element tensor: those, and each rest 0 (-oo for amax).
_ONE_ELEMENT: dict[sp.Basic, sp.Basic] = dict(_ONE_ELEMENT_TENSOR)
_REDUCTIONS = (ReduceSum, AxisMean)  # GroupSum, ChannelSum, ReduceMax are ReduceSums
#: What reads the whole tensor: the reductions, and whole-matrix operations (Muon's
#: orthogonalize, whose value on this element depends on every other element's argument).
_WHOLE = (*_REDUCTIONS, Orthogonalize)
#: One opaque function per whole-matrix operation: of this element's argument, the rest's
#: symbol and the operation's parameters.
_OPAQUE = {Orthogonalize: sp.Function("orthogonalize_whole", real=True)}
#: Per-tensor values: the same on every element of a tensor, not across a group.
_TENSOR_VALUES = frozenset((*SHAPE_VALUES, NDIM, EPSILON, *_AXIS_SIZES.values()))


def whole_tensor(expr, scalars=frozenset(), per_tensor=frozenset()):
    """``expr`` — what a claim built from whole-tensor steps — with each reduction written as
    its term on this element combined with a symbol for the rest: ``x + r`` for a sum
    (``r >= 0`` where the term cannot be negative: the others' terms are the same expression
    of other values), ``max(x, r)`` for amax, ``(x + r)/size`` for a row or column mean.

    Every input of the steps is one element's value (p, g, a state: each element has its
    own), except ``scalars`` (hyperparameters, a claim's c), ``per_tensor`` values (t: each
    tensor of a group counts its own steps, so it is not the same over a group sum) and what
    is the same over the reduction (a tensor sum inside a channel sum, a size inside a tensor
    sum), which are factored out first: ``sum(c*g^2)`` is ``c*sum(g^2)``, one symbol for ``sum(g^2)`` wherever
    it appears, and ``sum(g1^2)``, ``sum(g2^2)`` (two steps' gradients) two. A difference of
    such expressions that is zero whatever the rests and sizes are is zero on every tensor;
    at their one-element values (:func:`unmarked`) it is the one-element step."""
    cache: dict = {}

    def walk(node):
        if not isinstance(node, sp.Basic) or not node.args or not node.has(*_WHOLE):
            return node
        if node not in cache:
            cache[node] = (_collapse(node, scalars, per_tensor, walk)
                           if isinstance(node, _WHOLE) else node.func(*map(walk, node.args)))
        return cache[node]

    return without_selects(walk(sp.sympify(expr)))


def _same_over(node: sp.Basic, reduction: sp.Basic, scalars, per_tensor) -> bool:
    """Whether ``node`` takes one value over every element ``reduction`` adds up."""
    group = isinstance(reduction, GroupSum)
    constant = scalars if group else scalars | per_tensor | _TENSOR_VALUES
    if node.free_symbols - constant:
        return False
    for inner in node.atoms(*_REDUCTIONS):
        if isinstance(inner, GroupSum):
            continue
        if group or not (type(inner) in (ReduceSum, ReduceMax) or inner == reduction):
            return False  # a channel's or row's value inside a tensor sum varies
    return True


def _rest(key, nonnegative: bool, one_element: sp.Basic) -> sp.Dummy:
    if key not in _RESTS:
        _RESTS[key] = sp.Dummy(f"rest{len(_RESTS)}", real=True, nonnegative=nonnegative or None)
        _ONE_ELEMENT[_RESTS[key]] = one_element
    return _RESTS[key]


def _collapse(node: sp.Basic, scalars, per_tensor, walk) -> sp.Basic:
    if isinstance(node, Orthogonalize):  # opaque: of this element's argument and the rest
        rest = _rest((Orthogonalize, *node.args), False, sp.S.Zero)
        return _OPAQUE[Orthogonalize](walk(node.args[0]), rest, *node.args[1:])
    # common factors out of every sum inside: sum((c*g)^2 + (c*p)^2) is c^2*sum(g^2 + p^2)
    factors = sp.Mul.make_args(sp.factor_terms(node.args[0]))
    constant = [f for f in factors if _same_over(f, node, scalars, per_tensor)]
    if isinstance(node, ReduceMax):  # max(c*x) is c*max(x) only where c >= 0
        constant = [f for f in constant if f.is_nonnegative]
    varying = sp.Mul(*(f for f in factors if f not in constant))
    scale = walk(sp.Mul(*constant))
    term = walk(varying)
    if term.is_zero:  # there is this element: the largest of zeros is 0 too
        return sp.S.Zero
    if varying == 1 and isinstance(node, (ReduceMax, AxisMean)):
        return scale
    if varying == 1 and not isinstance(node, GroupSum):  # the count of elements it adds
        return scale * (CHANNEL_SIZE if isinstance(node, ChannelSum) else NUMEL)
    largest = isinstance(node, ReduceMax)
    rest = _rest((type(node), *node.args[1:], varying),
                 not largest and term.is_nonnegative is True,
                 sp.S.NegativeInfinity if largest else sp.S.Zero)
    if isinstance(node, ReduceMax):
        return scale * sp.Max(term, rest)
    if isinstance(node, AxisMean):
        return scale * (term + rest) / _AXIS_SIZES[node.args[1]]
    return scale * (term + rest)


def unmarked(expr) -> tuple[sp.Basic, bool]:
    """``expr`` with every marker (a rest, a size, ndim, epsilon) at its one-element value,
    and whether it had one."""
    expr = sp.sympify(expr)
    markers = expr.free_symbols & _ONE_ELEMENT.keys()
    if not markers:
        return expr, False
    return expr.xreplace({m: _ONE_ELEMENT[m] for m in markers}), True


def one_element(expr: sp.Basic) -> sp.Basic:
    """A claim's own expression (it may write ``norm(g)``) as the steps are: kept whole
    within :func:`whole_tensor_steps`, else over the one-element tensor."""
    return sp.sympify(expr) if _MODE["whole"] else _one_element(sp.sympify(expr))


def _one_element(expr: sp.Basic) -> sp.Basic:
    """A one-element float64 vector: a sum or a mean is its only term, every size (and ndim)
    is 1, it is not factored. (Matrix operations stay opaque functions: claims that need
    their value end unknown.)"""
    expr = without_selects(expr.replace(lambda e: isinstance(e, _REDUCTIONS),
                                        lambda e: e.args[0]))
    return expr.xreplace({**_ONE_ELEMENT_TENSOR, FACTORED: sp.false})


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
        try:
            outcome = self._symbolic.step(
                {k: exact_value(v) for k, v in hypers.items()},
                {k: exact_value(v) for k, v in (state or {}).items()},
                exact_value(0.0 if p is None else p), exact_value(0.0 if g is None else g),
                sp.Integer(int(t)))
        except (TypeError, ValueError, ZeroDivisionError):  # NaN compared (0/0 in a max)
            return {}
        return {name: float(value) for name, value in outcome.temps.items() if value.is_number}

    def _flat(self, hypers) -> tuple:
        return tuple(host_value(hypers[str(symbol)]) for symbol in self.lowered.hyper_args)
