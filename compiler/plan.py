"""Stage 4, plan: :class:`LoweredSpec` -> :class:`KernelPlan`.

Splits the step by what each part depends on:

* **host scalars** — every maximal subexpression over hyperparameters, ``t``, scalar states and
  input flags alone (``lr / (1 - b1**t)``, ``weight_decay != 0``) and every numeric literal,
  computed once per step outside the element loop and handed to the kernel already cast to the
  parameter's dtype; scalar states' new values are host expressions too;
* **reduction passes** — each per-tensor sum (``norm``, ``sum``, ``mean``, ``rms``) becomes a
  symbol ``_rk`` of the element pass, computed first by a pass over fixed-size blocks;
* **element passes** — the rest, with common subexpressions shared through :func:`sympy.cse`,
  reading ``p``, ``g``, inputs and states once and writing each changed one once. There is one
  pass per combination of which conditional states and inputs exist, so that every load and
  store in a loop is unconditional.

Names in the plan are the generated code's own: loaded values ``_p``, ``_m``; host scalars
``_h0, _h1, ...``; element temporaries ``_e0, _e1, ...``; sums ``_r0, ...``; the element count
``_n``. User names never start with ``_``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import sympy as sp

from .errors import SpecError
from .functions import SHAPE_VALUES, Orthogonalize, ReduceSum
from .lower import LoweredSpec


@dataclass(frozen=True)
class HostScalar:
    symbol: sp.Symbol
    value: sp.Basic       # over hyperparameters and t
    is_bool: bool


@dataclass(frozen=True)
class Array:
    """One array argument of the kernel."""

    name: str                       # p, g, an input's or a state's name
    local: sp.Symbol                # the loaded element value, e.g. _m
    present: sp.Symbol | None       # host flag: the (conditional) state or input exists
    absent_value: sp.Basic | None   # read in its place when it does not (its initial value)


@dataclass(frozen=True)
class ElementPass:
    """One fused loop, for one combination of which conditional states and inputs exist.

    Specialising on presence keeps every load and store unconditional, so the loop vectorises;
    the remaining host conditions are selects between values already computed.
    """

    when: tuple[tuple[sp.Symbol, bool], ...]        # presence flags this pass assumes
    loads: tuple[Array, ...]
    temps: tuple[tuple[sp.Symbol, sp.Expr], ...]     # cse of the element pass
    stores: tuple[tuple[str, sp.Expr], ...]          # array name -> value written back


@dataclass(frozen=True)
class MatrixOp:
    """A whole-matrix operation: its argument is written to the scratch array ``array`` by the
    prepare pass, transformed in place by the runtime, and read by the element pass as
    ``local``. ``host_args`` are the host scalars of its other arguments."""

    kind: str                      # "orthogonalize"
    array: str                     # _mat0, ...
    local: sp.Symbol               # _x0, ...
    host_args: tuple[sp.Symbol, ...]


@dataclass(frozen=True)
class KernelPlan:
    name: str
    hyper_args: tuple[sp.Symbol, ...]
    t: sp.Symbol
    host_temps: tuple[tuple[sp.Symbol, sp.Basic], ...]  # cse of the host scalars
    host: tuple[HostScalar, ...]
    arrays: tuple[Array, ...]
    passes: tuple[ElementPass, ...]
    reductions: tuple[sp.Symbol, ...]                   # _r0, _r1, ...: per-tensor sums
    reduce_passes: tuple[ElementPass, ...]              # compute them; "stores" are the sums
    shape_values: tuple[sp.Symbol, ...]                 # of _n, _rows, _cols: those read
    matrix_ops: tuple["MatrixOp", ...]                  # whole-matrix stages, in order
    prepare_passes: tuple[ElementPass, ...]             # write the matrix ops' arguments
    scalar_args: tuple[sp.Symbol, ...]                  # scalar states, as the host sees them
    flag_args: tuple[sp.Symbol, ...]                    # has_<input> for each extra input
    scalar_updates: tuple[tuple[str, sp.Basic], ...]    # each scalar state after the step
    state_inits: tuple[tuple[str, sp.Basic], ...]
    state_conditions: tuple[tuple[str, sp.Basic], ...]   # every state; true where unconditional
    requires: tuple[tuple[sp.Basic, str], ...]

    @property
    def host_symbols(self) -> frozenset[sp.Symbol]:
        return frozenset(h.symbol for h in self.host)


def plan(lowered: LoweredSpec) -> KernelPlan:
    scalar_args = tuple(lowered.states[name] for name in lowered.scalars)
    input_flags = tuple(lowered.input_flags.values())
    host_leaves = (frozenset(lowered.hypers.values()) | {lowered.t} | set(scalar_args)
                   | set(input_flags))
    flags = frozenset(lowered.hypers[h.name] for h in lowered.spec.hypers
                      if h.type == "bool") | set(input_flags)
    hoister = _Hoister(host_leaves, flags)
    arrays_in = [("p", lowered.p), ("g", lowered.g), *lowered.inputs.items(),
                 *((n, s) for n, s in lowered.states.items() if n not in lowered.scalars)]
    local = {symbol: sp.Symbol(f"_{name}", real=True) for name, symbol in arrays_in}

    # A conditional state is stored only while its condition holds, so the stored expression
    # may assume it; where the state does not exist, reads see its initial value.
    outputs = {}
    for name, value in lowered.outputs.items():
        condition = lowered.state_conditions.get(name)
        if condition is not None:
            value = value.subs(condition, sp.true)
        outputs[name] = value
    presence = {name: hoister.host_value(cond) for name, cond in lowered.state_conditions.items()}
    presence.update({name: hoister.host_value(flag) for name, flag in lowered.input_flags.items()})
    absent = {name: hoister.element(sp.sympify(lowered.state_inits[name])).xreplace(local)
              for name in lowered.state_conditions}
    absent.update({name: hoister.host_value(sp.S.Zero) for name in lowered.inputs})
    changed = [name for name, value in outputs.items() if name not in lowered.scalars
               and value != (lowered.p if name == "p" else lowered.states[name])]
    hoisted = {name: hoister.element(outputs[name]).xreplace(local) for name in changed}
    arrays = tuple(Array(name, local[symbol], presence.get(name), absent.get(name))
                   for name, symbol in arrays_in)

    # Each per-tensor sum becomes a symbol _rk of the element pass, computed by a pass before it.
    sums: dict[sp.Basic, sp.Symbol] = {}
    def reduction_symbol(node):
        if node not in sums:
            sums[node] = sp.Symbol(f"_r{len(sums)}", real=True)
        return sums[node]
    hoisted = {name: expr.replace(lambda e: isinstance(e, ReduceSum), reduction_symbol)
               for name, expr in hoisted.items()}
    reduced = {str(symbol): node.args[0] for node, symbol in sums.items()}

    # Each whole-matrix operation reads its result from a scratch array the runtime fills.
    matrix_nodes: dict[sp.Basic, MatrixOp] = {}
    def matrix_symbol(node):
        if node not in matrix_nodes:
            k = len(matrix_nodes)
            matrix_nodes[node] = MatrixOp("orthogonalize", f"_mat{k}",
                                          sp.Symbol(f"_x{k}", real=True), tuple(node.args[1:]))
        return matrix_nodes[node].local
    hoisted = {name: expr.replace(lambda e: isinstance(e, Orthogonalize), matrix_symbol)
               for name, expr in hoisted.items()}
    matrix_ops = tuple(matrix_nodes.values())
    for node in matrix_nodes:
        if node.args[0].has(ReduceSum, Orthogonalize) or any(
                e.has(*(m.local for m in matrix_ops)) for e in reduced.values()):
            raise SpecError("a matrix operation of a reduction, a reduction of one, or nested "
                            "matrix operations are not supported")
    scratch = tuple(Array(m.array, m.local, None, None) for m in matrix_ops)
    prepared = {m.array: node.args[0] for node, m in matrix_nodes.items()}

    distinct_flags = list(dict.fromkeys(presence.values()))
    combos = [tuple(zip(distinct_flags, combo))
              for combo in itertools.product((True, False), repeat=len(distinct_flags))]
    passes = tuple(_element_pass(when, arrays + scratch, hoisted) for when in combos)
    reduce_passes = tuple(_element_pass(when, arrays, reduced) for when in combos) if sums else ()
    prepare_passes = tuple(_element_pass(when, arrays, prepared)
                           for when in combos) if matrix_ops else ()

    host_temps, host_values = sp.cse([h.value for h in hoister.scalars],
                                     symbols=sp.numbered_symbols("_c"), optimizations=None,
                                     order="canonical")
    host = tuple(HostScalar(h.symbol, value, h.is_bool)
                 for h, value in zip(hoister.scalars, host_values))
    return KernelPlan(
        name=lowered.spec.name,
        hyper_args=lowered.hyper_args,
        t=lowered.t,
        host_temps=tuple(host_temps),
        host=host,
        arrays=arrays,
        passes=passes,
        reductions=tuple(sums.values()),
        reduce_passes=reduce_passes,
        shape_values=tuple(s for s in SHAPE_VALUES if any(e.has(s) for e in hoisted.values())),
        matrix_ops=matrix_ops,
        prepare_passes=prepare_passes,
        scalar_args=scalar_args,
        flag_args=input_flags,
        scalar_updates=tuple((name, outputs[name]) for name in lowered.scalars),
        state_inits=tuple(lowered.state_inits.items()),  # over hypers and p
        state_conditions=tuple((name, lowered.state_conditions.get(name, sp.true))
                               for name in lowered.states if name not in lowered.scalars),
        requires=lowered.requires,
    )


def _element_pass(when: tuple[tuple[sp.Symbol, bool], ...], arrays: tuple[Array, ...],
                  hoisted: dict[str, sp.Expr]) -> ElementPass:
    assumed = {flag: sp.true if value else sp.false for flag, value in when}
    exists = {a.name: a.present is None or bool(assumed[a.present]) for a in arrays}
    replace = {a.local: a.absent_value for a in arrays if not exists[a.name]}
    local = {a.name: a.local for a in arrays}
    candidates = {name: hoisted[name].subs(assumed).xreplace(replace)
                  for name in hoisted if exists.get(name, True)}
    # A value this variant leaves as it was (Sophia's h when no estimate is given) is not stored.
    names = [name for name, expr in candidates.items() if expr != local.get(name)]
    exprs = [candidates[name] for name in names]
    temps, reduced = sp.cse(exprs, symbols=sp.numbered_symbols("_e", real=True),
                            optimizations=None, order="canonical")
    used = set().union(*(e.free_symbols for e in reduced), *(v.free_symbols for _, v in temps))
    return ElementPass(
        when=when,
        loads=tuple(a for a in arrays if exists[a.name] and a.local in used),
        temps=tuple(temps),
        stores=tuple(zip(names, reduced)),
    )


class _Hoister:
    """Replaces host-only subexpressions of element expressions by host scalar symbols."""

    def __init__(self, host_leaves: frozenset[sp.Symbol], flags: frozenset[sp.Symbol]):
        self.host_leaves = host_leaves
        self.flags = flags
        self.by_value: dict[sp.Basic, sp.Symbol] = {}
        self.scalars: list[HostScalar] = []

    def is_host(self, expr: sp.Basic) -> bool:
        return expr.free_symbols <= self.host_leaves and not expr.has(ReduceSum, Orthogonalize)

    def host_value(self, value: sp.Basic) -> sp.Symbol:
        """The host scalar holding ``value``, made on first use."""
        if value not in self.by_value:
            is_bool = self.is_flag(value)
            # A flag gets no assumptions: SymPy's And() drops a symbol declared real=False.
            symbol = (sp.Symbol(f"_h{len(self.scalars)}") if is_bool
                      else sp.Symbol(f"_h{len(self.scalars)}", real=True))
            self.by_value[value] = symbol
            self.scalars.append(HostScalar(symbol, value, is_bool))
        return self.by_value[value]

    def is_flag(self, value: sp.Basic) -> bool:
        """A condition, not a number. (SymPy's Symbol is a Boolean too, so ask by kind.)"""
        if isinstance(value, sp.Symbol):
            return value in self.flags
        if isinstance(value, sp.Piecewise):
            return self.is_flag(value.args[0].expr)
        return isinstance(value, (sp.logic.boolalg.Boolean, sp.Rel))

    def element(self, expr: sp.Basic) -> sp.Basic:
        if expr in (sp.true, sp.false):
            return expr
        if isinstance(expr, Orthogonalize):  # never host; its coefficients stay host scalars
            return Orthogonalize(self.element(expr.args[0]),
                                 *(self.host_value(a) for a in expr.args[1:]))
        if isinstance(expr, ReduceSum):  # never host: it sums over the elements
            return ReduceSum(self.element(expr.args[0]))
        if self.is_host(expr):
            return self.host_value(expr)
        if expr.is_Atom:
            return expr
        if isinstance(expr, (sp.Add, sp.Mul)):
            host = [a for a in expr.args if self.is_host(a)]
            rest = [self.element(a) for a in expr.args if not self.is_host(a)]
            if host:
                folded = expr.func(*host)
                if folded != sp.S.NegativeOne:  # keep a bare sign: `-x`, not `_h0*x`
                    folded = self.host_value(folded)
                rest.insert(0, folded)
            return expr.func(*rest, evaluate=False) if len(rest) > 1 else rest[0]
        if isinstance(expr, sp.Pow) and expr.exp.is_Integer:
            return sp.Pow(self.element(expr.base), expr.exp, evaluate=False)
        if isinstance(expr, sp.Pow) and expr.exp.is_Rational and expr.exp.q == 2:
            root = sp.sqrt(self.element(expr.base), evaluate=False)  # x**(-1/2) -> 1/sqrt(x)
            return root if expr.exp.p == 1 else sp.Pow(root, expr.exp.p, evaluate=False)
        if isinstance(expr, sp.Piecewise):
            return sp.Piecewise(*((self.element(e), self.element(c)) for e, c in expr.args),
                                evaluate=False)
        return expr.func(*(self.element(a) for a in expr.args), evaluate=False)
