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

Names in the plan are its own (see :mod:`.names`): the spec's symbols by position (``_u0``,
...; :attr:`KernelPlan.names` says how code spells each, ``lr_``), loaded values ``_v0, ...``
(printed ``_p_``, ``_m_``); host scalars ``_h0, _h1, ...``; element temporaries ``_e0, ...``;
sums ``_r0, ...``; the element count ``_n``. So a spec's ``h0`` is never the host scalar
``_h0``, and what a spec calls its values cannot change the order SymPy puts terms in.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass

import sympy as sp

from .errors import SpecError
from .functions import (CHANNEL_SIZE, FACTORED, NUMEL, SHAPE_VALUES, TENSOR_FLAGS, AxisMean,
                        ChannelSum, GroupSum, Orthogonalize, ReduceMax, ReduceSum, Select)
from .lower import LoweredSpec
from .names import code_name, local_name


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
class AxisStage:
    """The factored part of a step (Adafactor), run by the runtime in NumPy on parameter-shaped
    arrays before the other passes, where ``factored`` holds: it updates the per-row and
    per-column states in place and returns ``values``, one per kind of factor (per row, per
    column, per matrix, or full), which the passes read as arrays (``arrays``): the CPU kernels
    by row and column index, the other backends broadcast to full size."""

    loads: tuple[Array, ...]
    temps: tuple[tuple[sp.Symbol, sp.Expr], ...]
    stores: tuple[tuple[str, sp.Expr], ...]          # per-row/per-column states
    values: tuple[sp.Expr, ...]                      # one per scratch array
    arrays: tuple[Array, ...]                        # _ax0, ...: read by the passes
    classes: tuple[str, ...]                         # each one's shape: full, row, col, matrix


#: What a reduction computes: a sum over the tensor (or group), its largest value, or a sum
#: per channel (an array of one value per channel, read by channel index).
REDUCE_KINDS = ("sum", "max", "channel")


def reduce_kind(node: sp.Basic) -> str:
    return ("channel" if isinstance(node, ChannelSum) else "max" if isinstance(node, ReduceMax)
            else "sum")


@dataclass(frozen=True)
class ReduceRound:
    """One reduction pass over each tensor: the sums whose arguments read only sums of earlier
    rounds (and no later ones). ``group[k]``: the k-th sum is over the whole param group, so the
    runtime adds every tensor's part before the next round reads it. ``kinds[k]``: what it
    computes (:data:`REDUCE_KINDS`); the per-tensor ones ("sum", "max") come from ``passes``,
    the per-channel ones from ``channel_passes`` (a kernel of their own)."""

    sums: tuple[sp.Symbol, ...]        # _r<start>, ...: numbered by round
    passes: tuple[ElementPass, ...]    # one per presence variant; "stores" are the tensor sums
    group: tuple[bool, ...]
    kinds: tuple[str, ...] = ()
    channel_passes: tuple[ElementPass, ...] = ()  # likewise, "stores" the channel sums

    @property
    def tensor_sums(self) -> tuple[sp.Symbol, ...]:
        return tuple(s for s, kind in zip(self.sums, self.kinds) if kind != "channel")

    @property
    def channel_sums(self) -> tuple[sp.Symbol, ...]:
        return tuple(s for s, kind in zip(self.sums, self.kinds) if kind == "channel")


@dataclass(frozen=True)
class KernelPlan:
    name: str
    hyper_args: tuple[sp.Symbol, ...]
    t: sp.Symbol
    host_temps: tuple[tuple[sp.Symbol, sp.Basic], ...]  # cse of the host scalars
    host: tuple[HostScalar, ...]
    arrays: tuple[Array, ...]
    passes: tuple[ElementPass, ...]
    rounds: tuple[ReduceRound, ...]                     # the sums, pass by pass, in order
    shape_values: tuple[sp.Symbol, ...]                 # of _n, _rows, _cols: those read
    matrix_ops: tuple["MatrixOp", ...]                  # whole-matrix stages, in order
    prepare_passes: tuple[ElementPass, ...]             # write the matrix ops' arguments
    scalar_args: tuple[sp.Symbol, ...]                  # scalar states, as the host sees them
    group_args: tuple[sp.Symbol, ...]                   # per-group states, likewise
    flag_args: tuple[sp.Symbol, ...]                    # has_<input> for each extra input
    tensor_flags: tuple[sp.Symbol, ...]                 # of _factored, _eps: those used
    axis_states: tuple[tuple[str, str], ...]            # (state, "row" | "col")
    axis_stage: AxisStage | None
    scalar_updates: tuple[tuple[str, sp.Basic], ...]    # each scalar state after the step
    group_updates: tuple[tuple[str, sp.Basic], ...]     # each per-group state after the step
    state_inits: tuple[tuple[str, sp.Basic], ...]
    state_conditions: tuple[tuple[str, sp.Basic], ...]   # every state; true where unconditional
    requires: tuple[tuple[sp.Basic, str], ...]
    #: For each reduction pass, the condition over the host flags (``_h*``) under which a later
    #: value reads one of its sums: where it is false the runtime skips the pass (AdamP's
    #: projection sums on a vector, Ranger's channel means with use_gc = false).
    round_conditions: tuple[sp.Basic, ...] = ()
    #: The plan's symbols for the spec's names are positional (``_u3``, loaded values ``_v1``);
    #: this says how generated code spells each one (``lr_``, ``_exp_avg_``).
    names: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def host_symbols(self) -> frozenset[sp.Symbol]:
        return frozenset(h.symbol for h in self.host)

    @property
    def reductions(self) -> tuple[sp.Symbol, ...]:
        """Every sum, round by round: ``_r0, _r1, ...``."""
        return tuple(s for r in self.rounds for s in r.sums)

    @property
    def reduce_passes(self) -> tuple[ElementPass, ...]:
        """The first round's passes (the sums of element values alone)."""
        return self.rounds[0].passes if self.rounds else ()

    @property
    def group_sums(self) -> tuple[bool, ...]:
        """For each sum, whether it is over the whole param group."""
        return tuple(g for r in self.rounds for g in r.group)

    @property
    def reduce_kinds(self) -> tuple[str, ...]:
        """For each sum, what it computes (:data:`REDUCE_KINDS`)."""
        return tuple(k for r in self.rounds for k in r.kinds)

    @property
    def tensor_sums(self) -> tuple[sp.Symbol, ...]:
        """The sums with one value per tensor: the kernels take them as scalars."""
        return tuple(s for r in self.rounds for s in r.tensor_sums)

    @property
    def channel_sums(self) -> tuple[sp.Symbol, ...]:
        """The sums with one value per channel: the kernels take them as arrays ``_ch<k>``
        and read the element's channel."""
        return tuple(s for r in self.rounds for s in r.channel_sums)

    @property
    def channel_arrays(self) -> tuple[Array, ...]:
        return channel_arrays(self.channel_sums)


def channel_arrays(symbols) -> tuple[Array, ...]:
    """The arrays holding the per-channel sums ``symbols``, in order: ``_ch0, _ch1, ...``,
    each loaded (at the element's channel) as the sum's own symbol."""
    return tuple(Array(f"_ch{k}", s, None, None) for k, s in enumerate(symbols))


def _positional(lowered: LoweredSpec) -> tuple[LoweredSpec, dict[str, str]]:
    """The lowered spec with every symbol of a spec name renamed by position (``_u0``, ``_u1``,
    ... in declaration order), and how code spells each. SymPy orders the terms of a sum by the
    symbols' names, so with the spec's own names the order of floating-point operations, and
    so the bits, would depend on what a spec calls its values; by position they cannot."""
    spec_symbols = [*lowered.hypers.values(), lowered.t, lowered.p, lowered.g,
                    *lowered.states.values(), *lowered.inputs.values(),
                    *lowered.input_flags.values()]
    rename = {s: sp.Symbol(f"_u{k}", **s.assumptions0) for k, s in enumerate(spec_symbols)}
    names = {rename[s].name: code_name(s.name) for s in spec_symbols}

    def sub(expr):
        return sp.sympify(expr).xreplace(rename)

    renamed = dataclasses.replace(
        lowered,
        hypers={k: rename[v] for k, v in lowered.hypers.items()}, t=rename[lowered.t],
        p=rename[lowered.p], g=rename[lowered.g],
        states={k: rename[v] for k, v in lowered.states.items()},
        inputs={k: rename[v] for k, v in lowered.inputs.items()},
        input_flags={k: rename[v] for k, v in lowered.input_flags.items()},
        outputs={k: sub(v) for k, v in lowered.outputs.items()},
        temps={k: sub(v) for k, v in lowered.temps.items()},
        state_inits={k: sub(v) for k, v in lowered.state_inits.items()},
        state_conditions={k: sub(v) for k, v in lowered.state_conditions.items()},
        requires=tuple((sub(c), m) for c, m in lowered.requires))
    return renamed, names


def plan(lowered: LoweredSpec) -> KernelPlan:
    original = lowered  # its SSA, in the spec's own symbols, locates errors
    lowered, names = _positional(lowered)
    scalar_args = tuple(lowered.states[name] for name in lowered.scalars)
    group_args = tuple(lowered.states[name] for name in lowered.group_scalars)
    host_states = set(lowered.scalars) | set(lowered.group_scalars)
    input_flags = tuple(lowered.input_flags.values())
    used = set().union(*(sp.sympify(e).free_symbols for e in (
        *lowered.outputs.values(), *lowered.state_conditions.values())))
    tensor_flags = tuple(s for s in TENSOR_FLAGS if s in used)
    host_leaves = (frozenset(lowered.hypers.values()) | {lowered.t} | set(scalar_args)
                   | set(group_args) | set(input_flags) | set(TENSOR_FLAGS))
    flags = frozenset(lowered.hypers[h.name] for h in lowered.spec.hypers
                      if h.type == "bool") | set(input_flags) | {FACTORED}
    hoister = _Hoister(host_leaves, flags)
    axis_names = set(lowered.axis_states)
    arrays_in = [("p", lowered.p), ("g", lowered.g), *lowered.inputs.items(),
                 *((n, s) for n, s in lowered.states.items()
                   if n not in host_states and n not in axis_names)]
    axis_in = [(n, lowered.states[n]) for n in lowered.axis_states]
    local = {symbol: sp.Symbol(f"_v{k}", real=True)
             for k, (name, symbol) in enumerate(arrays_in + axis_in)}
    names.update({local[symbol].name: local_name(name) for name, symbol in arrays_in + axis_in})

    # A conditional state is stored only while its condition holds, so the stored expression
    # may assume it; where the state does not exist, reads see its initial value.
    outputs = {}
    for name, value in lowered.outputs.items():
        condition = lowered.state_conditions.get(name)
        if condition is not None:
            value = value.subs(condition, sp.true)
        outputs[name] = value
    presence = {name: hoister.host_value(cond) for name, cond in lowered.state_conditions.items()
                if name not in axis_names}
    presence.update({name: hoister.host_value(flag) for name, flag in lowered.input_flags.items()})
    absent = {name: hoister.element(sp.sympify(lowered.state_inits[name])).xreplace(local)
              for name in lowered.state_conditions if name not in axis_names}
    absent.update({name: hoister.host_value(sp.S.Zero) for name in lowered.inputs})
    changed = [name for name, value in outputs.items() if name not in host_states
               and value != (lowered.p if name == "p" else lowered.states[name])]
    hoisted = {name: hoister.element(outputs[name]).xreplace(local) for name in changed}
    arrays = tuple(Array(name, local[symbol], presence.get(name), absent.get(name))
                   for name, symbol in arrays_in)

    # The factored part: per-row/per-column values, computed before every other pass.
    axis_stage, hoisted = _axis_stage(lowered, hoister, arrays, local, hoisted, original)
    axis_arrays = axis_stage.arrays if axis_stage is not None else ()
    factored_flag = hoister.host_value(FACTORED) if axis_stage is not None else None

    # Each sum (per tensor or per group) becomes a symbol _rk of the passes after it, computed
    # by a reduction pass before them: one pass per round, a round being the sums whose
    # arguments read only sums of earlier rounds. A scalar state's new value may read sums.
    sums: dict[sp.Basic, sp.Symbol] = {}
    def reduction_symbol(node):
        if node not in sums:  # inner sums first: replace() works bottom up
            sums[node] = sp.Symbol(f"_q{len(sums)}", real=True)
        return sums[node]
    def with_sums(expr):
        return expr.replace(lambda e: isinstance(e, ReduceSum), reduction_symbol)
    hoisted = {name: with_sums(expr) for name, expr in hoisted.items()}

    def tensor_value(expr):
        """A scalar state's new value (over hypers, t and scalar states) with each sum as its
        symbol: the same symbol the passes read, since the element form of a sum is the same
        subtree wherever it appears."""
        if isinstance(expr, ReduceSum):
            if hoister.is_host(expr.args[0]) and type(expr) is ReduceSum:
                return expr.args[0] * NUMEL
            return with_sums(hoister.element(expr).xreplace(local))
        if not expr.args or not expr.has(ReduceSum):
            return expr
        return expr.func(*map(tensor_value, expr.args))
    scalar_updates = tuple((name, tensor_value(sp.sympify(outputs[name])))
                           for name in lowered.scalars)
    group_updates = tuple((name, tensor_value(sp.sympify(outputs[name])))
                          for name in lowered.group_scalars)

    bool_flags = frozenset(h.symbol for h in hoister.scalars if h.is_bool)
    consumers = [*hoisted.values(), *(v for _, v in scalar_updates + group_updates)]
    ordered, renumber, round_sums = _rounds(sums)
    totals = _channel_totals(sums, renumber, round_sums, consumers, bool_flags)
    if totals:
        sums = {totals.get(node, node): symbol for node, symbol in sums.items()}
        ordered, renumber, round_sums = _rounds(sums)
    hoisted = {name: expr.xreplace(renumber) for name, expr in hoisted.items()}
    scalar_updates = tuple((name, v.xreplace(renumber)) for name, v in scalar_updates)
    group_updates = tuple((name, v.xreplace(renumber)) for name, v in group_updates)
    reduced = {str(symbol): arg for members in round_sums for symbol, arg, _, _ in members}
    channels = channel_arrays([renumber[symbol] for node, symbol in ordered
                               if isinstance(node, ChannelSum)])
    if channels and (lowered.axis_states or _has_matrix_operations(hoisted)):
        raise SpecError("channel reductions beside per-row/per-col states or matrix "
                        "operations are not supported",
                        _statement_span(original, _channel_reductions))

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
                            "matrix operations are not supported",
                            _statement_span(original, _nests_matrix_operations))
    scratch = tuple(Array(m.array, m.local, None, None) for m in matrix_ops)
    prepared = {m.array: node.args[0] for node, m in matrix_nodes.items()}

    distinct_flags = list(dict.fromkeys(
        ([factored_flag] if factored_flag is not None else []) + list(presence.values())))
    combos = [tuple(zip(distinct_flags, combo))
              for combo in itertools.product((True, False), repeat=len(distinct_flags))]
    combos = [when for when in combos if _consistent(when, hoister)]
    tensor_arrays = arrays + axis_arrays + channels
    passes = tuple(_element_pass(when, tensor_arrays + scratch, hoisted) for when in combos)
    rounds = tuple(
        ReduceRound(sums=tuple(symbol for symbol, _, _, _ in members),
                    passes=tuple(_element_pass(when, tensor_arrays,
                                               {str(s): arg for s, arg, _, kind in members
                                                if kind != "channel"})
                                 for when in combos),
                    group=tuple(group for _, _, group, _ in members),
                    kinds=tuple(kind for _, _, _, kind in members),
                    channel_passes=tuple(_element_pass(when, tensor_arrays,
                                                       {str(s): arg for s, arg, _, kind in members
                                                        if kind == "channel"})
                                         for when in combos))
        for members in round_sums)
    prepare_passes = tuple(_element_pass(when, tensor_arrays, prepared)
                           for when in combos) if matrix_ops else ()
    if axis_stage is not None:
        for element_pass in passes + prepare_passes + tuple(
                p for r in rounds for p in r.passes):
            if dict(element_pass.when)[factored_flag] is False and any(
                    a in axis_arrays for a in element_pass.loads):
                raise SpecError("per-row and per-column values exist only where 'factored' "
                                "holds; read them as 'factored ? ... : ...'",
                                _statement_span(original, _reads_axis_values_unfactored))

    round_conditions = _round_conditions(
        round_sums, [*hoisted.values(), *(v for _, v in scalar_updates + group_updates)],
        bool_flags)

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
        rounds=rounds,
        shape_values=tuple(s for s in SHAPE_VALUES if any(
            sp.sympify(e).has(s) for e in (*hoisted.values(), *reduced.values(),
                                           *(v for _, v in scalar_updates + group_updates)))),
        matrix_ops=matrix_ops,
        prepare_passes=prepare_passes,
        scalar_args=scalar_args,
        group_args=group_args,
        flag_args=input_flags,
        tensor_flags=tensor_flags,
        axis_states=tuple(lowered.axis_states.items()),
        axis_stage=axis_stage,
        scalar_updates=scalar_updates,
        group_updates=group_updates,
        state_inits=tuple(lowered.state_inits.items()),  # over hypers and p
        state_conditions=tuple((name, lowered.state_conditions.get(name, sp.true))
                               for name in lowered.states
                               if name not in host_states and name not in axis_names),
        requires=lowered.requires,
        round_conditions=round_conditions,
        names=names,
    )


def _rounds(sums: dict[sp.Basic, sp.Symbol]):
    """The sums in rounds: each one's depth is one more than the deepest sum its argument
    reads. Returns them in that order, their renumbering (``_r<k>`` by round), and per round
    (symbol, argument, over the group, kind) of each."""
    argument = {symbol: node.args[0] for node, symbol in sums.items()}
    depth: dict[sp.Symbol, int] = {}
    def depth_of(symbol):
        if symbol not in depth:
            depth[symbol] = 1 + max((depth_of(s) for s in argument[symbol].free_symbols
                                     if s in argument), default=-1)
        return depth[symbol]
    for symbol in argument:
        depth_of(symbol)
    ordered = sorted(sums.items(), key=lambda item: depth[item[1]])  # stable: by creation
    renumber = {symbol: sp.Symbol(f"_r{k}", real=True) for k, (_, symbol) in enumerate(ordered)}
    round_sums = [[(renumber[symbol], node.args[0].xreplace(renumber), isinstance(node, GroupSum),
                    reduce_kind(node))
                   for node, symbol in ordered if depth[symbol] == d]
                  for d in range(1 + max(depth.values(), default=-1))]
    return ordered, renumber, round_sums


def _channel_totals(sums, renumber, round_sums, consumers, flags) -> dict:
    """Tensor sums to take as the total of the same argument's channel sums,
    ``sum(x) = sum(channel_sum(x) / channel_size)``: a pass over the channel values instead of
    one more over the elements (AdamP's norms and dot product are wanted both ways). Only
    where the channel sums are computed wherever the tensor sum is read: otherwise a vector's
    pass would write and read one value per element for it."""
    candidates = {node: ChannelSum(node.args[0]) for node in sums if type(node) is ReduceSum}
    candidates = {node: channel for node, channel in candidates.items() if channel in sums}
    if not candidates:
        return {}
    members = [member for members in round_sums for member in members]
    conditions = dict(zip((symbol for symbol, *_ in members),
                          _round_conditions([[m] for m in members],
                                            [sp.sympify(e).xreplace(renumber) for e in consumers],
                                            flags)))
    def condition(node):
        return conditions[renumber[sums[node]]]
    totals = {}
    for node, channel in candidates.items():
        total = ReduceSum(sums[channel] / CHANNEL_SIZE)
        # one the spec computes already (mean(channel_mean(g)) is that expression) keeps its own
        if total not in sums and sp.logic.inference.satisfiable(
                sp.And(condition(node), sp.Not(condition(channel)))) is False:
            totals[node] = total
    return totals


def _round_conditions(round_sums, consumers, flags: frozenset) -> tuple[sp.Basic, ...]:
    """For each round of sums, a condition over the host ``flags`` that holds wherever a
    value after it reads one of its sums: the disjunction, over every place a sum is read in
    ``consumers`` (the element stores, scalar and group updates) or in a later round's sum
    arguments (where that round runs), of the flag conditions of the branches around it
    (:func:`_read_conditions`)."""
    conditions: list[sp.Basic] = [sp.true] * len(round_sums)
    for k in reversed(range(len(round_sums))):
        sums = frozenset(symbol for symbol, *_ in round_sums[k])
        paths = [path for e in consumers for path in _read_conditions(sp.sympify(e), sums, flags)]
        paths += [sp.And(conditions[j], path) for j in range(k + 1, len(round_sums))
                  for _, arg, *_ in round_sums[j]
                  for path in _read_conditions(sp.sympify(arg), sums, flags)]
        condition = sp.Or(*paths)
        if len(condition.free_symbols) <= 8:  # Quine-McCluskey is exponential in them
            condition = sp.simplify_logic(condition)
        conditions[k] = condition
    return tuple(conditions)


def _read_conditions(expr: sp.Basic, sums: frozenset, flags: frozenset,
                     path: sp.Basic = sp.true, memo: dict | None = None) -> list[sp.Basic]:
    """The conditions over host ``flags`` under which ``expr`` reads one of ``sums``, one per
    place it does: the conjunction ``path`` of the flag parts of the branch conditions around
    it (a branch's condition where it is flags alone, its flag conjuncts otherwise; and the
    negations of the earlier branches' conditions where those are flags alone), and in a
    condition ``f and x`` (``f or x``) with f flags alone, x is read only where f holds (fails)."""
    memo = {} if memo is None else memo
    if not _reads(expr, sums, memo):
        return []
    if expr in sums:
        return [path]
    def inner(e, where):
        return _read_conditions(e, sums, flags, where, memo)
    if isinstance(expr, (sp.And, sp.Or)):
        pure = [a for a in expr.args if a.free_symbols <= flags]
        if pure:
            known = sp.And(*pure) if isinstance(expr, sp.And) else sp.Not(sp.Or(*pure))
            return [c for a in expr.args if a not in pure for c in inner(a, sp.And(path, known))]
    branches = (expr.args if isinstance(expr, sp.Piecewise)
                else ((expr.args[1], expr.args[0]), (expr.args[2], sp.true))
                if isinstance(expr, Select) else None)
    if branches is None:
        return [c for arg in expr.args for c in inner(arg, path)]
    out = []
    before = path
    for value, condition in branches:
        out += inner(condition, before)  # evaluated to choose the branch
        out += inner(value, sp.And(before, _flag_part(condition, flags)))
        if condition.free_symbols <= flags:
            before = sp.And(before, sp.Not(condition))
    return out


def _reads(expr: sp.Basic, sums: frozenset, memo: dict) -> bool:
    """Whether ``expr`` reads one of ``sums`` (memoized over the shared subtrees)."""
    if expr not in memo:
        memo[expr] = expr in sums or any(_reads(a, sums, memo) for a in expr.args)
    return memo[expr]


def _flag_part(condition: sp.Basic, flags: frozenset) -> sp.Basic:
    """What ``condition`` implies over the host flags alone: itself, its conjuncts over
    flags, or true."""
    if condition.free_symbols <= flags:
        return condition
    if isinstance(condition, sp.And):
        return sp.And(*(c for c in condition.args if c.free_symbols <= flags))
    return sp.true

def _statement_span(lowered: LoweredSpec, predicate):
    """Where an error the planner finds was written: the span of the first statement whose
    value, temporaries inlined (its SSA form), ``predicate(lowered, target, value)`` holds
    for; the last statement's where none does."""
    statements = lowered.spec.statements
    for statement, (_, value) in zip(statements, lowered.ssa):
        if predicate(lowered, statement.target, value):
            return statement.span
    return statements[-1].span if statements else None


def _has_matrix_operations(exprs: dict) -> bool:
    return any(sp.sympify(e).has(Orthogonalize) for e in exprs.values())


def _channel_reductions(lowered: LoweredSpec, target: str, value: sp.Basic) -> bool:
    return value.has(ChannelSum)


def _nests_matrix_operations(lowered: LoweredSpec, target: str, value: sp.Basic) -> bool:
    return any(node.args[0].has(ReduceSum, Orthogonalize)
               for node in value.atoms(Orthogonalize)) or any(
        node.args[0].has(Orthogonalize) for node in value.atoms(ReduceSum))


def _reads_axis_values_unfactored(lowered: LoweredSpec, target: str, value: sp.Basic) -> bool:
    """A per-row/per-column value read by a statement that is not a factored state's own,
    where the parameter is not factored."""
    if target in lowered.axis_states:
        return False
    unfactored = value.subs(FACTORED, sp.false)
    axis = {lowered.states[name] for name in lowered.axis_states}
    return unfactored.has(AxisMean) or bool(unfactored.free_symbols & axis)


def _axis_means(lowered: LoweredSpec, target: str, value: sp.Basic) -> bool:
    return value.has(AxisMean)


def _axis_mean_of_conditional_arrays(lowered: LoweredSpec, target: str,
                                     value: sp.Basic) -> bool:
    """A row or column mean of a state that may not exist, or of an extra input."""
    conditional = {lowered.states[name] for name in lowered.state_conditions
                   if name not in lowered.axis_states} | set(lowered.inputs.values())
    return any(node.args[0].free_symbols & conditional for node in value.atoms(AxisMean))


def _consistent(when: tuple[tuple[sp.Symbol, bool], ...], hoister: "_Hoister") -> bool:
    """Whether the flags' values can hold together (``factored`` and ``not factored`` cannot)."""
    values = {h.symbol: h.value for h in hoister.scalars}
    known = {values[flag]: sp.true if on else sp.false for flag, on in when
             if isinstance(values[flag], sp.Symbol)}
    for flag, on in when:
        implied = values[flag].xreplace(known)
        if implied in (sp.true, sp.false) and bool(implied) != on:
            return False
    return True


#: How an expression varies over the last two axes: "R" along rows, "C" along columns.
_ALL_AXES = frozenset("RC")


def _axis_stage(lowered: LoweredSpec, hoister: "_Hoister", arrays: tuple[Array, ...],
                local: dict, hoisted: dict[str, sp.Expr], original: LoweredSpec):
    """Split the factored part off the element expressions.

    Every maximal subexpression over per-row/per-column states, ``row_mean``/``col_mean`` and
    host scalars becomes a symbol ``_yk`` read from a scratch array; the per-row/per-column
    states' new values must vary only along their own axis.
    """
    if not lowered.axis_states:
        if any(e.has(AxisMean) for e in hoisted.values()):
            raise SpecError("row_mean() and col_mean() need a per-row or per-col state "
                            "(they exist only for factored parameters)",
                            _statement_span(original, _axis_means))
        return None, hoisted
    axis_locals = {local[lowered.states[name]]: axis for name, axis in lowered.axis_states.items()}
    element_locals = {a.local for a in arrays}

    def shape(expr) -> frozenset:
        if isinstance(expr, AxisMean):
            inner = shape(expr.args[0])
            return inner - {"C" if expr.args[1] == -1 else "R"}
        if expr in axis_locals:
            return frozenset("R" if axis_locals[expr] == "row" else "C")
        if expr in element_locals:
            return _ALL_AXES
        return frozenset().union(*(shape(a) for a in expr.args)) if expr.args else frozenset()

    def is_axis(expr) -> bool:
        """Over axis states, axis means and host scalars only (and not host alone)."""
        if isinstance(expr, AxisMean):
            return True
        if expr in axis_locals:
            return True
        if expr.is_Atom:
            return False
        return (all(is_axis(a) or hoister.is_host_symbolic(a) for a in expr.args)
                and any(is_axis(a) for a in expr.args))

    values: dict[sp.Basic, sp.Symbol] = {}
    def to_scratch(expr):
        if expr not in values:
            values[expr] = sp.Symbol(f"_y{len(values)}", real=True)
        return values[expr]

    def axis_class(expr) -> str:
        return {frozenset("RC"): "full", frozenset("R"): "row", frozenset("C"): "col",
                frozenset(): "matrix"}[shape(expr)]

    def split(expr):
        if is_axis(expr) and not isinstance(expr, (sp.Add, sp.Mul)):
            return to_scratch(expr)
        if expr.is_Atom:
            return expr
        if isinstance(expr, (sp.Add, sp.Mul)):
            # One scratch value per kind of axis factor (per row, per column, per matrix), so
            # that none is a full-size outer product; a divisor stays a division.
            groups: dict[tuple[str, bool], list] = {}
            rest = []
            for a in expr.args:
                inverted = (isinstance(expr, sp.Mul) and isinstance(a, sp.Pow)
                            and a.exp == -1 and is_axis(a.base))
                if inverted or is_axis(a):
                    base = a.base if inverted else a
                    groups.setdefault((axis_class(base), inverted), []).append(base)
                else:
                    rest.append(split(a))
            for (_, inverted), parts in groups.items():
                combined = expr.func(*parts, evaluate=False) if len(parts) > 1 else parts[0]
                symbol = to_scratch(combined)
                rest.append(sp.Pow(symbol, -1, evaluate=False) if inverted else symbol)
            return expr.func(*rest, evaluate=False) if len(rest) > 1 else rest[0]
        if isinstance(expr, sp.Piecewise):
            return sp.Piecewise(*((split(e), split(c)) for e, c in expr.args), evaluate=False)
        return expr.func(*(split(a) for a in expr.args), evaluate=False)

    stores = {}
    for name, axis in lowered.axis_states.items():
        value = hoisted.pop(name, None)
        if value is None:
            continue
        own = frozenset("R" if axis == "row" else "C")
        if not shape(value) <= own:
            span = [s.span for s in lowered.spec.statements if s.target == name][-1]
            raise SpecError(f"the new value of per-{axis} state '{name}' varies along the "
                            f"{'columns' if axis == 'row' else 'rows'}; reduce it with "
                            f"{'row_mean' if axis == 'row' else 'col_mean'}()", span)
        stores[name] = value
    hoisted = {name: split(expr) for name, expr in hoisted.items()}
    factored = hoister.host_value(FACTORED)
    computed = [v.subs(factored, sp.true) for v in (*stores.values(), *values)]
    temps, reduced = sp.cse(computed, symbols=sp.numbered_symbols("_e", real=True),
                            optimizations=None, order="canonical")
    used = set().union(*(e.free_symbols for e in reduced), *(v.free_symbols for _, v in temps))
    axis_arrays = tuple(Array(name, local[lowered.states[name]], None, None)
                        for name in lowered.axis_states)
    loads = tuple(a for a in arrays + axis_arrays if a.local in used)
    if any(a.present is not None for a in loads):
        raise SpecError("row_mean() and col_mean() of conditional states or inputs are not "
                        "supported", _statement_span(original, _axis_mean_of_conditional_arrays))
    scratch = tuple(Array(f"_ax{k}", symbol, None, None) for k, symbol in enumerate(values.values()))
    stage = AxisStage(loads=loads, temps=tuple(temps),
                      stores=tuple(zip(stores, reduced[:len(stores)])),
                      values=tuple(reduced[len(stores):]), arrays=scratch,
                      classes=tuple(axis_class(v) for v in values))
    return stage, hoisted


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
        return (expr.free_symbols <= self.host_leaves
                and not expr.has(ReduceSum, Orthogonalize, AxisMean))

    def is_host_symbolic(self, expr: sp.Basic) -> bool:
        """After hoisting: an expression of host scalars ``_h*`` and numbers."""
        return expr.free_symbols <= set(self.by_value.values()) and not expr.has(
            ReduceSum, Orthogonalize, AxisMean)

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
            if self.is_host(expr.args[0]) and type(expr) in (ReduceSum, ChannelSum):
                # n copies of one value: n times it, exactly so (the largest of none is -inf:
                # a max stays a reduction)
                size = NUMEL if type(expr) is ReduceSum else CHANNEL_SIZE
                return sp.Mul(self.host_value(expr.args[0]), size, evaluate=False)
            return expr.func(self.element(expr.args[0]))
        if isinstance(expr, AxisMean):  # the mean of a host value is that value
            if self.is_host(expr.args[0]):
                return self.host_value(expr.args[0])
            return AxisMean(self.element(expr.args[0]), expr.args[1])
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
