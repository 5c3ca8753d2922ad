"""Stage 5, render: :class:`KernelPlan` -> the source of one generated module.

Jinja templates hold only skeletons (the module layout, the NumPy body, the Numba loop); every
expression in them is printed from SymPy by the backend's printer. Two rules make the output safe
by construction:

* every piece of text — the description, docs, messages, choices, the spec's file name in the
  docstring — enters as a Python literal through :func:`py_literal` (the templates' ``py``
  filter), so nothing a spec says or is called is ever pasted into code;
* every spec name enters as :func:`~optgen.compiler.names.code_name` (``lr`` is ``lr_``), the
  printers' and this module's only way to name a spec's value in code, so no spec name can meet
  a name of the code's own (``range``, ``cuda``, ``_h0``).
"""

from __future__ import annotations

import ast
import functools
import math
import re
from dataclasses import dataclass

import jinja2
import sympy as sp

from .axis_nest import axis_nest
from .lower import LoweredSpec
from .names import code_name
from .functions import FACTORED
from .plan import KernelPlan
from .printers import NumbaCPUPrinter, NumbaCUDAPrinter, NumpyArrayPrinter, ScalarPrinter


@dataclass(frozen=True)
class Backend:
    name: str             # the runtime's backend= value
    function: str         # the element kernel's name in the generated module
    template: str
    reduce_function: str  # the reduction kernel's name (specs with norm, sum, mean, rms)
    reduce_template: str
    printer: type

    @property
    def prepare_function(self) -> str:
        """The kernel writing matrix operations' arguments (an element pass, same template)."""
        return f"prepare_{self.name}"


#: One row per backend; they differ only by printer and templates.
BACKENDS = (
    Backend("numpy", "step_numpy", "numpy.py.j2", "reduce_numpy", "numpy_reduce.py.j2",
            NumpyArrayPrinter),
    Backend("cpu", "step_cpu", "numba_cpu.py.j2", "reduce_cpu", "numba_cpu_reduce.py.j2",
            NumbaCPUPrinter),
)

#: What the CPU kernels of a factored tensor take last: its tiling (runtime/tiling.py).
NEST_ARGS = ("_nrows", "_ncols", "_kpm", "_tpm", "_rb", "_across")

#: Elements per block of a reduction pass (fixed, so sums do not depend on the thread count).
REDUCE_BLOCK = 4096


@dataclass(frozen=True)
class SourceInfo:
    file: str      # the spec's file name, as the header names it
    sha256: str


def py_literal(value) -> str:
    """A Python literal for plain data (str, bool, int, float incl. inf, None, tuples)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        if math.isnan(value):
            return "float('nan')"
        return repr(value)
    if isinstance(value, str):
        return _str_literal(value)
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(py_literal(v) for v in value) + "]"
    if isinstance(value, tuple):
        items = ", ".join(py_literal(v) for v in value)
        return f"({items},)" if len(value) == 1 else f"({items})"
    raise TypeError(f"no literal for {type(value).__name__}")


def _str_literal(text: str) -> str:
    """``repr(text)``; a multi-line text (a docstring) as a raw triple-quoted block instead where
    that block is exactly ``text`` again: no ``\"\"\"``, no trailing quote or backslash,
    printable lines only, and the parse of the block gives ``text`` back."""
    if "\n" in text and '"""' not in text and not text.endswith(('"', "\\")) and all(
            line.isprintable() for line in text.split("\n")):
        block = f'r"""{text}"""'
        try:
            tree = ast.parse(block, mode="eval")
        except SyntaxError:
            tree = None
        if (tree is not None and isinstance(tree.body, ast.Constant)
                and tree.body.value == text):
            return block
    return repr(text)


def _ident(plan: KernelPlan, name) -> str:
    """The identifier of a plan's symbol or array name in generated code."""
    return plan.names.get(str(name)) or code_name(str(name))


def _idents(plan: KernelPlan, names) -> list[str]:
    return [_ident(plan, name) for name in names]


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("optgen.compiler", "templates"),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    env.filters["py"] = py_literal
    return env


def render_module(lowered: LoweredSpec, plan: KernelPlan, source: SourceInfo,
                  base: SourceInfo | None, version: str) -> str:
    spec = lowered.spec
    host = ScalarPrinter(names=plan.names)
    host_index = {h.symbol: i for i, h in enumerate(plan.host)}
    kernels = [text for backend in BACKENDS for text in _render_kernels(backend, plan)]
    axis_cpu, axis_aliases = _render_axis_cpu(plan)
    if axis_cpu:
        kernels.insert(0, axis_cpu)
    equations = [latex_equation(eq) for eq in lowered.equations]
    hyper_args = _idents(plan, plan.hyper_args)
    whole = [_ident(plan, plan.t)] + _int_hypers(spec, hyper_args)
    host_temps = [(_ident(plan, s), host.doprint(v)) for s, v in plan.host_temps]
    host_values = [host.doprint(h.value) for h in plan.host]
    state_inits = ([host.doprint(v) for name, v in plan.state_inits
                    if name not in lowered.scalars and name not in lowered.group_scalars
                    and name not in lowered.axis_states]
                   + [host.doprint(v) for name, v in plan.state_inits
                      if name in lowered.axis_states])
    scalar_inits = [host.doprint(v) for name, v in plan.state_inits if name in lowered.scalars]
    scalar_updates = [host.doprint(v) for _, v in plan.scalar_updates]
    group_inits = [host.doprint(v) for name, v in plan.state_inits
                   if name in lowered.group_scalars]
    group_updates = [host.doprint(v) for _, v in plan.group_updates]
    states_present = [host.doprint(c) for _, c in plan.state_conditions]
    presence_symbols = set().union(*(c.free_symbols for _, c in plan.state_conditions))
    presence_hypers = tuple(k for k, s in enumerate(plan.hyper_args) if s in presence_symbols)
    requires = [(host.doprint(c), message) for c, message in plan.requires]
    floats = {
        "host_scalars": _whole_numbers_read(whole, [v for _, v in host_temps] + host_values),
        "state_inits": _whole_numbers_read(whole, state_inits),
        "scalar_inits": _whole_numbers_read(whole, scalar_inits),
        "scalar_updates": _whole_numbers_read(whole, scalar_updates),
        "group_inits": _whole_numbers_read(whole, group_inits),
        "group_updates": _whole_numbers_read(whole, group_updates),
        "states_present": _whole_numbers_read(whole, states_present),
        "violated_requirements": _whole_numbers_read(whole, [c for c, _ in requires]),
    }
    text = _environment().get_template("module.py.j2").render(
        docstring=_environment().get_template("docstring.j2").render(
            name=spec.name, version=version, spec_file=source.file, sha256=source.sha256,
            base=base, equations=equations, kind=spec.kind),
        name=spec.name, description=spec.description, version=version, kind=spec.kind,
        sha256=source.sha256,
        hypers=[_hyper_row(h) for h in spec.hypers],
        # names as the runtime reads them (keywords, state-dict keys) ...
        hyper_names=tuple(name for h in spec.hypers for name in h.scalar_names),
        arrays=tuple(a.name for a in plan.arrays),
        states=tuple(a.name for a in plan.arrays[2 + len(lowered.inputs):]),
        inputs=tuple(lowered.inputs),
        scalars=lowered.scalars,
        scalars_read_tensor=scalars_read_tensor(plan),
        group_scalars=lowered.group_scalars,
        tensor_flags=tuple(str(s) for s in plan.tensor_flags),
        shape_values=tuple(str(s) for s in plan.shape_values),
        # ... and as the functions' parameters
        t_arg=_ident(plan, plan.t), p_arg=code_name("p"),
        hyper_args=hyper_args, floats=floats,
        scalar_args=_idents(plan, plan.scalar_args),
        group_args=_idents(plan, plan.group_args),
        scalar_tensor_args=(_idents(plan, plan.reductions) + _idents(plan, plan.shape_values)
                            if scalars_read_tensor(plan) else []),
        group_sum_args=_idents(plan, [s for s, group in zip(plan.reductions, plan.group_sums)
                                      if group]),
        flag_args=_idents(plan, plan.flag_args),
        tensor_args=_idents(plan, plan.tensor_flags),
        input_docs=tuple(doc for _, doc in lowered.spec.inputs),
        axis_states=plan.axis_states,
        axis_arrays=tuple(a.name for a in plan.axis_stage.arrays) if plan.axis_stage else (),
        axis_classes=plan.axis_stage.classes if plan.axis_stage else (),
        axis_kernel=_render_axis_stage(plan),
        axis_cpu=axis_cpu,
        axis_aliases=axis_aliases,
        many=supports_many(plan),
        nests=nests(plan),
        traffic=_traffic(plan, axis_aliases),
        cuda_kernels=_render_cuda(plan),
        scalar_updates=scalar_updates, group_inits=group_inits, group_updates=group_updates,
        host_is_bool=tuple(h.is_bool for h in plan.host),
        reductions=len(plan.reductions), reduce_block=REDUCE_BLOCK,
        reduce_rounds=tuple(len(r.sums) for r in plan.rounds),
        group_reductions=plan.group_sums,
        reduce_kinds=plan.reduce_kinds,
        host_args=_idents(plan, [h.symbol for h in plan.host]),
        round_conditions=[host.doprint(c) for c in plan.round_conditions],
        matrix_ops=tuple((m.kind, m.array, tuple(host_index[s] for s in m.host_args))
                         for m in plan.matrix_ops),
        host_temps=host_temps, host_values=host_values, state_inits=state_inits,
        scalar_inits=scalar_inits, states_present=states_present, requires=requires,
        presence_hypers=presence_hypers,
        kernels=kernels,
    )
    return text


def render_schedule(lowered: LoweredSpec, source: SourceInfo, version: str) -> str:
    """A schedule's module: ``lr_at(t, *hypers)``, the lr after t scheduler steps."""
    spec = lowered.spec
    printer = ScalarPrinter()
    temps, (value,) = sp.cse([lowered.temps["lr"]], symbols=sp.numbered_symbols("_c"),
                             optimizations=None, order="canonical")
    equations = [latex_equation(eq) for eq in lowered.equations]
    hyper_args = [code_name(str(s)) for s in lowered.hyper_args]
    whole = [code_name(str(lowered.t))] + _int_hypers(spec, hyper_args)
    temps = [(code_name(str(s)), printer.doprint(v)) for s, v in temps]
    value = printer.doprint(value)
    requires = [(printer.doprint(c), message) for c, message in lowered.requires]
    return _environment().get_template("schedule.py.j2").render(
        docstring=_environment().get_template("docstring.j2").render(
            name=spec.name, version=version, spec_file=source.file, sha256=source.sha256,
            base=None, equations=equations, kind=spec.kind),
        name=spec.name, description=spec.description, version=version, sha256=source.sha256,
        hypers=[_hyper_row(h) for h in spec.hypers],
        hyper_names=tuple(str(s) for s in lowered.hyper_args),
        t_arg=code_name(str(lowered.t)),
        hyper_args=hyper_args, temps=temps, value=value, requires=requires,
        floats={"lr_at": _whole_numbers_read(whole, [v for _, v in temps] + [value]),
                "violated_requirements": _whole_numbers_read(whole, [c for c, _ in requires])},
    )


def _int_hypers(spec, hyper_args: list[str]) -> list[str]:
    """The identifiers of the int hyperparameters among ``hyper_args`` (declaration order)."""
    kinds = [h.type for h in spec.hypers for _ in h.scalar_names]
    return [name for name, kind in zip(hyper_args, kinds) if kind == "int"]


def _whole_numbers_read(names: list[str], texts: list[str]) -> list[str]:
    """Of ``names`` (t and the int hyperparameters, which callers pass as Python ints), those
    the host code ``texts`` reads. A host function makes them float64 first, so its arithmetic
    is the kernels': ``1/(t - 1)`` at t = 1 is inf and ``2^(1000*t)`` overflows to inf, where
    Python ints would raise ZeroDivisionError and OverflowError."""
    text = "\n".join(texts)
    return [name for name in names if re.search(rf"\b{re.escape(name)}\b", text)]


def _render_axis_stage(plan: KernelPlan) -> str | None:
    """The factored stage, in NumPy for every backend: a handful of row/column-sized arrays."""
    stage = plan.axis_stage
    if stage is None:
        return None
    printer = NumpyArrayPrinter(plan.host_symbols, names=plan.names)
    stored = {name for name, _ in stage.stores}
    args = _idents(plan, [a.name for a in plan.arrays] + [name for name, _ in plan.axis_states]
                   + [h.symbol for h in plan.host])
    return _environment().get_template("numpy_axis.py.j2").render(
        args=args,
        loads=[(_ident(plan, a.local), code_name(a.name), a.name in stored)
               for a in stage.loads],
        temps=[(code_name(str(s)), printer.doprint(v)) for s, v in stage.temps],
        stores=[(code_name(name), printer.doprint(v)) for name, v in stage.stores],
        values=[printer.doprint(v) for v in stage.values],
    ).rstrip("\n")


def _render_axis_cpu(plan: KernelPlan) -> tuple[str | None, tuple[int, ...]]:
    """The factored stage as a Numba CPU loop nest (compiler/axis_nest.py), and for each
    scratch array the factored state it equals (-1 for none: the runtime then hands the state
    itself to the passes); ``(None, ())`` where the nest cannot express the stage."""
    stage = plan.axis_stage
    if stage is None:
        return None, ()
    axis_of = dict(plan.axis_states)
    shape_of = {a.local: frozenset({"row": "R", "col": "C"}.get(axis_of.get(a.name), "RC"))
                for a in stage.loads}
    nest = axis_nest(stage, shape_of, axis_of)
    if nest is None:
        return None, ()
    printer = NumbaCPUPrinter(names=plan.names)
    row_means = [m.symbol for m in nest.means if m.kind == "row"]
    col_means = [m.symbol for m in nest.means if m.kind == "col"]
    matrix_symbols = [m.symbol for m in nest.means if m.kind in ("rows", "cols")]
    contexts = iter(range(1000))

    def context(exprs):
        """Loads, CSE temporaries (named per context: one Numba type each) and the values."""
        temps, reduced = sp.cse(list(exprs), optimizations=None, order="canonical",
                                symbols=sp.numbered_symbols(f"_t{next(contexts)}x", real=True))
        used = set().union(*(e.free_symbols for e in reduced),
                           *(v.free_symbols for _, v in temps))
        loads = {"RC": [], "R": [], "C": []}
        for a in stage.loads:
            if a.local in used:
                kind = "".join(sorted(shape_of[a.local], reverse=True))
                loads[kind].append((_ident(plan, a.local), code_name(a.name)))
        return dict(
            full_loads=loads["RC"], row_loads=loads["R"], col_loads=loads["C"],
            rowmean_loads=[(code_name(str(s)), k) for k, s in enumerate(row_means) if s in used],
            colmean_loads=[(code_name(str(s)), k) for k, s in enumerate(col_means) if s in used],
            matmean_loads=[(code_name(str(s)), j) for j, s in enumerate(matrix_symbols)
                           if s in used],
            temps=[(code_name(str(t)), printer.doprint(v)) for t, v in temps],
        ), [printer.doprint(e) for e in reduced]

    element = [m for m in nest.means if m.kind in ("row", "col")]
    sweep, terms = context(m.arg for m in element)
    sweep["row_terms"] = [(k, v) for k, v in enumerate(
        v for m, v in zip(element, terms) if m.kind == "row")]
    sweep["col_terms"] = [(k, v) for k, v in enumerate(
        v for m, v in zip(element, terms) if m.kind == "col")]
    matrix_means = []
    for mean in (m for m in nest.means if m.kind in ("rows", "cols")):
        ctx, (value,) = context([mean.arg])
        matrix_means.append(dict(kind=mean.kind, context=ctx, value=value))

    def finishing(values):
        ctx, printed = context(v for _, v in values)
        ctx["outputs"] = [(code_name(name), text) for (name, _), text in zip(values, printed)]
        return ctx

    arrays = _idents(plan, [a.name for a in plan.arrays])
    args = (arrays + _idents(plan, [name for name, _ in plan.axis_states])
            + _idents(plan, [a.name for a in stage.arrays])
            + _idents(plan, [h.symbol for h in plan.host]))
    text = _environment().get_template("numba_cpu_axis.py.j2").render(
        args=args, length=arrays[0], sweep=sweep, matrix_means=matrix_means,
        rows=finishing(nest.row_values), cols=finishing(nest.col_values),
        matrix=finishing(nest.matrix_values),
    ).strip("\n")
    return text, nest.aliases


def _render_kernels(backend: Backend, plan: KernelPlan) -> list[str]:
    """The element kernel, preceded by the reduction kernels where the spec has reductions."""
    printer = (backend.printer(plan.host_symbols, names=plan.names)
               if backend.printer is NumpyArrayPrinter else backend.printer(names=plan.names))
    arrays = _idents(plan, [a.name for a in plan.arrays])
    arrays += _idents(plan, [a.name for a in plan.axis_stage.arrays]) if plan.axis_stage else []
    host = _idents(plan, [h.symbol for h in plan.host])
    mats = _idents(plan, [m.array for m in plan.matrix_ops])
    tensor_args = step_tensor_args(plan)
    out = []
    nest_args = list(NEST_ARGS) if backend.name == "cpu" and nests(plan) else []
    for k, reduce_round in enumerate(plan.rounds):
        args = arrays + host + round_args(plan, k) + nest_args
        # Only a kernel without a many-tensor twin may reassociate its additions freely
        # (reduce_lanes.j2): the twins must agree bit for bit.
        reassociate = backend.name == "cpu" and not supports_many(plan)
        if reduce_round.tensor_sums:
            out.append(_render_passes(backend.reduce_template,
                                      reduce_function(backend.reduce_function, k), args, plan,
                                      reduce_round.passes, printer, nest=bool(nest_args),
                                      kinds=[kind for kind in reduce_round.kinds
                                             if kind != "channel"], reassociate=reassociate))
        if reduce_round.channel_sums:
            out.append(_render_passes(CHANNEL_TEMPLATES[backend.name],
                                      reduce_function(f"reduce_channels_{backend.name}", k),
                                      args, plan, reduce_round.channel_passes, printer,
                                      reassociate=reassociate))
    if plan.matrix_ops:
        out.append(_render_passes(backend.template, backend.prepare_function,
                                  arrays + mats + host, plan, plan.prepare_passes, printer,
                                  doc="writes each matrix operation's argument to its scratch "
                                      "array."))
    out.append(_render_passes(backend.template, backend.function,
                              arrays + mats + host + tensor_args + nest_args, plan, plan.passes,
                              printer, doc="one fused pass over flat arrays, updated in place.",
                              nest=bool(nest_args)))
    if backend.name == "cpu" and supports_many(plan):
        if plan.reductions:
            out.append(_render_many(plan, "reduce_many_cpu", plan.reduce_passes, printer, arrays,
                                    host, tensor_args, reduce=True,
                                    doc="per-chunk sums, in float64, over blocks of "
                                        "REDUCE_BLOCK elements."))
        out.append(_render_many(plan, "step_many_cpu", plan.passes, printer, arrays, host,
                                tensor_args, reduce=False,
                                doc="the fused element pass, updated in place."))
    return out


#: The per-channel reduction kernel's template, per backend.
CHANNEL_TEMPLATES = {"numpy": "numpy_channels.py.j2", "cpu": "numba_cpu_channels.py.j2"}
#: What every kernel of a spec with per-channel sums takes after the channel arrays: the
#: number of channels and the elements of each (runtime/kernels.py ``channels``).
CHANNEL_ARGS = ("_nchan", "_chsize")


def step_tensor_args(plan: KernelPlan) -> list[str]:
    """What the element kernel takes after the host scalars: the per-tensor sums, the shape
    values, then the per-channel sums' arrays and :data:`CHANNEL_ARGS` (where there are any)."""
    return (_idents(plan, plan.tensor_sums) + _idents(plan, plan.shape_values)
            + _channel_args(plan, len(plan.channel_sums)))


def _channel_args(plan: KernelPlan, count: int) -> list[str]:
    if not plan.channel_sums:
        return []
    return [a.name for a in plan.channel_arrays[:count]] + list(CHANNEL_ARGS)


def _render_cuda(plan: KernelPlan) -> str:
    """The CUDA kernels: the same passes, printed for Numba CUDA, made lazily in a function.
    Every kernel takes ``_sums`` (each sum at its place among REDUCE_KINDS) and, where the spec
    has per-channel sums, ``_chans`` (one row per such sum, one column per channel), the
    channel count and size."""
    printer = NumbaCUDAPrinter(names=plan.names)
    arrays = _idents(plan, [a.name for a in plan.arrays])
    axes = _idents(plan, [a.name for a in plan.axis_stage.arrays]) if plan.axis_stage else []
    mats = _idents(plan, [m.array for m in plan.matrix_ops])
    host = _idents(plan, [h.symbol for h in plan.host])
    shapes = _idents(plan, plan.shape_values)
    position = {s: j for j, s in enumerate(plan.reductions)}
    channel_index = {s: k for k, s in enumerate(plan.channel_sums)}

    def passes(element_passes):
        return [_pass_code(plan, element_pass, branch, printer)
                for element_pass, branch in _branches(element_passes)]

    rounds = []
    for k, r in enumerate(plan.rounds):
        earlier = [s for q in plan.rounds[:k] for s in q.tensor_sums]
        rounds.append({
            "name": reduce_function("reduce", k),
            "channels_name": reduce_function("reduce_channels", k),
            "passes": passes(r.passes), "channel_passes": passes(r.channel_passes),
            "sums": [(position[s], kind) for s, kind in zip(r.sums, r.kinds)
                     if kind != "channel"],
            "channel_offset": channel_index[r.channel_sums[0]] if r.channel_sums else 0,
            "channel_count": len(r.channel_sums),
            "earlier": [(_ident(plan, s), position[s]) for s in earlier]})
    return _environment().get_template("numba_cuda.py.j2").render(
        step_args=arrays + axes + mats + host + shapes,
        prepare_args=arrays + axes + mats + host,
        reduce_args=arrays + axes + host,
        channel_args=["_chans", *CHANNEL_ARGS] if plan.channel_sums else [],
        arrays=arrays, host=host,
        tensor_args=_idents(plan, plan.reductions) + shapes,
        reductions=[(_ident(plan, s), j) for j, s in enumerate(plan.reductions)
                    if s not in channel_index],
        step_passes=passes(plan.passes), prepare_passes=passes(plan.prepare_passes),
        rounds=rounds,
        shapes=shapes, length=arrays[0],
        many=supports_many(plan) and not plan.reductions,
    ).rstrip("\n")


def _traffic(plan: KernelPlan, aliases: tuple[int, ...]) -> tuple:
    """For each pass the runtime may run: (kind, the host flags it assumes as (index, value),
    full-size arrays it reads, full-size arrays it writes, the classes ("row", "col",
    "matrix", "channel") of the smaller arrays it reads and of those it writes, and the
    reduction pass it belongs to, or -1: ``rounds_needed`` says whether that one runs). The
    CPU's factored stage is a pass of kind "axis". The benchmark's bytes come from it."""
    host_index = {h.symbol: i for i, h in enumerate(plan.host)}
    classes = {**_axis_classes(plan), **{a.name: "channel" for a in plan.channel_arrays}}
    rows = []
    if plan.axis_stage is not None and aliases:
        stage = plan.axis_stage
        factored = [i for i, h in enumerate(plan.host) if h.value == FACTORED]
        axis_of = dict(plan.axis_states)
        read = [axis_of[a.name] for a in stage.loads if a.name in axis_of]
        written = [axis_of[name] for name, _ in stage.stores]
        written += [kind for kind, alias in zip(stage.classes, aliases) if alias < 0]
        rows.append(("axis", tuple((i, True) for i in factored[:1]),
                     sum(1 for a in stage.loads if a.name not in axis_of), 0,
                     tuple(read), tuple(written), -1))
    kinds = [*(("reduce", r.passes, k, False) for k, r in enumerate(plan.rounds)),
             *(("reduce", r.channel_passes, k, True) for k, r in enumerate(plan.rounds)),
             ("prepare", plan.prepare_passes, -1, False), ("step", plan.passes, -1, False)]
    for kind, passes, round_, per_channel in kinds:
        for element_pass in passes:
            if not element_pass.stores:
                continue  # not rendered: nothing runs
            when = tuple((host_index[flag], value) for flag, value in element_pass.when)
            full = [a for a in element_pass.loads if classes.get(a.name, "full") == "full"]
            small = tuple(classes[a.name] for a in element_pass.loads
                          if classes.get(a.name, "full") != "full")
            written = len(element_pass.stores) if kind != "reduce" else 0
            small_written = ("channel",) * len(element_pass.stores) if per_channel else ()
            rows.append((kind, when, len(full), written, small, small_written, round_))
    return tuple(rows)


def supports_many(plan: KernelPlan) -> bool:
    """Whether the spec has many-tensor kernels: not where a whole-matrix or axis stage runs
    per tensor in NumPy (Muon, Adafactor), nor where its sums take more than one pass, are
    over the param group or per channel, take a max, or update scalar states; those step one
    tensor at a time."""
    return (not plan.matrix_ops and plan.axis_stage is None and len(plan.rounds) <= 1
            and set(plan.reduce_kinds) <= {"sum"} and not any(plan.group_sums)
            and not scalars_read_tensor(plan) and not (plan.rounds and round_reads_shape(plan, 0)))


def round_reads_shape(plan: KernelPlan, k: int) -> bool:
    """Whether the k-th reduction pass reads a shape value (``_n``, ``_rows``, ``_cols``)."""
    return any(e.has(*plan.shape_values) for p in plan.rounds[k].passes
               for e in [v for _, v in p.stores] + [v for _, v in p.temps]) \
        if plan.shape_values else False


def scalars_read_tensor(plan: KernelPlan) -> bool:
    """Whether a scalar state's new value reads the tensor's sums or shape values."""
    tensor = set(plan.reductions) | set(plan.shape_values)
    return any(v.free_symbols & tensor for _, v in plan.scalar_updates)


def reduce_function(name: str, k: int) -> str:
    """The k-th reduction pass's kernel: ``reduce_cpu``, then ``reduce_cpu_1``, ..."""
    return name if k == 0 else f"{name}_{k}"


def round_args(plan: KernelPlan, k: int) -> list[str]:
    """What the k-th reduction pass takes after the arrays and host scalars: every earlier
    pass's per-tensor sums, the shape values, then the earlier per-channel sums' arrays and
    :data:`CHANNEL_ARGS` (where the spec has per-channel sums)."""
    earlier = [s for r in plan.rounds[:k] for s in r.tensor_sums]
    channels = sum(len(r.channel_sums) for r in plan.rounds[:k])
    return (_idents(plan, earlier) + _idents(plan, plan.shape_values)
            + _channel_args(plan, channels))


def _render_many(plan, function, element_passes, printer, arrays, host, tensor_args, reduce,
                 doc) -> str:
    passes = [_pass_code(plan, element_pass, branch, printer)
              for element_pass, branch in _branches(element_passes)]
    host = [(_ident(plan, h.symbol), h.is_bool) for h in plan.host]
    return _environment().get_template("numba_cpu_many.py.j2").render(
        function=function, arrays=arrays, host=host, tensor_args=tensor_args,
        sums=_idents(plan, plan.reductions), passes=passes, reduce=reduce, doc=doc,
    ).rstrip("\n")


def _pass_code(plan: KernelPlan, element_pass, branch, printer) -> dict:
    """One element pass for a flat loop: its branch, loads, temporaries and stores, named as
    the generated code names them."""
    channels = {a.name: k for k, a in enumerate(plan.channel_arrays)}
    return dict(
        branch=branch,
        loads=[(_ident(plan, a.local), code_name(a.name), False) for a in element_pass.loads
               if a.name not in channels],
        channel_loads=[(_ident(plan, a.local), channels[a.name]) for a in element_pass.loads
                       if a.name in channels],
        temps=[(code_name(str(s)), printer.doprint(v)) for s, v in element_pass.temps],
        stores=[(code_name(name), printer.doprint(v)) for name, v in element_pass.stores],
    )


def _render_passes(template, function, args, plan, element_passes, printer, doc="",
                   nest: bool = False, kinds=None, reassociate: bool = False) -> str:
    """``nest``: the kernel reads per-row/column/matrix values in a row/column loop nest
    (the CPU's); otherwise every axis value comes at full size. ``kinds``: a reduction
    kernel's, what each of its stores computes ("sum" or "max"). Per-channel sums are read
    at the element's channel (``channel_loads``). ``reassociate``: a CPU reduction kernel
    compiled with reassociation allowed, adding its terms straight into their totals."""
    classes = _axis_classes(plan) if nest else {}
    classes.update({a.name: "channel" for a in plan.channel_arrays})
    passes = []
    for element_pass, branch in _branches(element_passes):
        stored = {name for name, _ in element_pass.stores}
        loads = [(_ident(plan, a.local), code_name(a.name), a.name in stored)
                 for a in element_pass.loads]
        passes.append(dict(
            branch=branch,
            ops=list(kinds) if kinds is not None else ["sum"] * len(element_pass.stores),
            # The NumPy body reads whole arrays, so an array it writes is read from a copy.
            loads=[load for load in loads if classes.get(load[1], "full") == "full"],
            channel_loads=[load for load in loads if classes.get(load[1]) == "channel"],
            # Read per row, per matrix, per column (CPU kernels: the row/column loop nest).
            row_loads=[load for load in loads if classes.get(load[1]) == "row"],
            matrix_loads=[load for load in loads if classes.get(load[1]) == "matrix"],
            col_loads=[load for load in loads if classes.get(load[1]) == "col"],
            temps=[(code_name(str(s)), printer.doprint(v)) for s, v in element_pass.temps],
            stores=[(code_name(name), printer.doprint(v)) for name, v in element_pass.stores],
        ))
        passes[-1]["nest"] = bool(passes[-1]["row_loads"] or passes[-1]["matrix_loads"]
                                  or passes[-1]["col_loads"])
    return _environment().get_template(template).render(
        function=function, args=args, length=code_name(plan.arrays[0].name), passes=passes,
        doc=doc, reassociate=reassociate,
    ).rstrip("\n")


def _axis_classes(plan: KernelPlan) -> dict[str, str]:
    """Each axis scratch array's shape: full, row, col or matrix."""
    if plan.axis_stage is None:
        return {}
    return {a.name: c for a, c in zip(plan.axis_stage.arrays, plan.axis_stage.classes)}


def nests(plan: KernelPlan) -> bool:
    """Whether the CPU kernels read per-row/column/matrix arrays: they then take the last two
    sizes, ``_ncols`` and ``_nrows``, after their other arguments."""
    return any(c != "full" for c in _axis_classes(plan).values())


def _branches(element_passes) -> list[tuple]:
    """``(pass, branch)`` for the variants to render. A variant that writes nothing (the
    spec leaves p as it is where, say, the parameter is not factored) has no code: the others
    then name their conditions in full, with no ``else``, so where none holds nothing runs."""
    count = len(element_passes)
    if all(element_pass.stores for element_pass in element_passes):
        return [(ep, _branch(i, count, ep.when)) for i, ep in enumerate(element_passes)]
    kept = [ep for ep in element_passes if ep.stores]
    return [(ep, _branch(i, count + 1, ep.when)) for i, ep in enumerate(kept)]


def _branch(index: int, count: int, when) -> str | None:
    """``if``/``elif``/``else`` choosing the pass for the conditional states that exist."""
    if count == 1:
        return None
    if index == count - 1:
        return "else:"
    condition = " and ".join(str(flag) if value else f"not {flag}" for flag, value in when)
    return f"{'if' if index == 0 else 'elif'} {condition}:"


def latex_equation(eq) -> str:
    """``target \\leftarrow value [if condition]`` in LaTeX, for docstrings and reports."""
    def latex(expr):
        names = {s: _latex_name(s.name) for s in expr.free_symbols}
        return sp.latex(expr, symbol_names=names)
    text = f"{latex(eq.target)} \\leftarrow {latex(eq.value)}"
    if eq.condition is not None:
        text += f" \\quad \\text{{if }} {latex(eq.condition)}"
    return text


def _latex_name(name: str) -> str:
    """``b1`` -> b_{1} as SymPy would; ``weight_decay`` -> \\mathrm{weight\\_decay}, not weight_{decay}."""
    if name == "_eps":  # the spec's `epsilon`
        return r"\epsilon"
    if name == "_k":  # the spec's `channel_size`
        return r"\mathrm{channel\_size}"
    name = name.lstrip("_")  # _rows, _cols, _n, _factored: as the spec writes them
    match = re.fullmatch(r"([A-Za-z])(\d*)", name)
    if match:
        return match[1] + (f"_{{{match[2]}}}" if match[2] else "")
    return r"\mathrm{" + name.replace("_", r"\_") + "}"


def _hyper_row(h) -> dict:
    d = h.domain
    return dict(name=h.name, type=h.type, default=h.default, components=h.components,
                low=(d.low if d and d.low is not None else -math.inf) if d else None,
                high=(d.high if d and d.high is not None else math.inf) if d else None,
                low_closed=d.low_closed if d else None, high_closed=d.high_closed if d else None,
                doc=h.doc, choices=h.choices)
