"""Calling a generated module's kernels for one tensor: reductions, matrix stages, then the
element pass.

Shared by the NumPy front end and the verifier's numeric stepper, so both run exactly what
users run.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .matrix import OPERATIONS
from .pointers import sum_rows_in_order
from .threads import use_threads
from .tiling import AXIS_SPLIT, AXIS_TILE, PASS_TILE, tile_count, tiling


def host_value(value):
    """A hyperparameter as generated host functions take it: floats as NumPy float64, so host
    arithmetic gives inf/nan where Python floats would raise; None (a ``none`` tuple item) as
    NaN, which ``default(x, fallback)`` replaces."""
    if value is None:
        return np.float64(np.nan)
    return np.float64(value) if isinstance(value, float) else value


def cast_host(values: tuple, is_bool: tuple[bool, ...], dtype: np.dtype) -> tuple:
    """Host scalars as the kernels take them: flags as bool, numbers in the parameter's dtype."""
    cast = dtype.type
    return tuple(bool(v) if b else cast(v) for v, b in zip(values, is_bool))


def shape_values(shape: tuple[int, ...]) -> dict[str, int]:
    """``_n`` (elements), ``_rows`` and ``_cols`` (first two dimensions, 1 where missing),
    ``_k`` (elements per channel: of every dimension but the first)."""
    return {"_n": int(np.prod(shape, dtype=np.int64)),
            "_rows": shape[0] if len(shape) >= 1 else 1,
            "_cols": shape[1] if len(shape) >= 2 else 1,
            "_k": int(np.prod(shape[1:], dtype=np.int64))}


def channels(shape: tuple[int, ...]) -> tuple[int, int]:
    """(number of channels, elements per channel): the first dimension, and the product of
    the others (a 0-d tensor is one channel of one element)."""
    return (shape[0] if shape else 1), int(np.prod(shape[1:], dtype=np.int64))


def round_kinds(module: ModuleType, k: int) -> tuple[str, ...]:
    """What each sum of the k-th reduction pass computes (``REDUCE_KINDS``, in order)."""
    start = sum(module.REDUCE_ROUNDS[:k])
    return module.REDUCE_KINDS[start:start + module.REDUCE_ROUNDS[k]]


def is_factored(shape: tuple[int, ...]) -> bool:
    """Whether a parameter of this shape keeps factored (per-row/per-column) states."""
    return len(shape) >= 2


def tensor_flags(module: ModuleType, shape: tuple[int, ...], dtype: np.dtype) -> tuple:
    """The per-tensor values ``host_scalars`` and ``states_present`` take last
    (``TENSOR_FLAGS``): whether the parameter is factored, its dtype's machine epsilon."""
    values = {"_factored": is_factored(shape), "_eps": np.float64(np.finfo(dtype).eps),
              "_ndim": len(shape)}
    return tuple(values[name] for name in module.TENSOR_FLAGS)


def missing_states(module: ModuleType, shape: tuple[int, ...], flat_hypers: tuple, flags: tuple,
                   state: dict) -> list[tuple[int, str, tuple[int, ...]]]:
    """The states a parameter of ``shape`` should have under these hyperparameters and does
    not yet: ``(index into state_inits' result, name, shape)``; factored states only for a
    factored parameter."""
    present = module.states_present(*flat_hypers, *flags)
    wanted = [(i, name, shape) for i, (name, exists) in enumerate(zip(module.STATES, present))
              if exists]
    if is_factored(shape):
        wanted += [(len(module.STATES) + j, name, axis_shape(shape, axis))
                   for j, (name, axis) in enumerate(module.AXIS_STATES)]
    return [entry for entry in wanted if entry[1] not in state]


def axis_shape(shape: tuple[int, ...], axis: str) -> tuple[int, ...]:
    """A per-row state's shape (..., R, 1) or a per-column one's (..., 1, C)."""
    return shape[:-1] + (1,) if axis == "row" else shape[:-2] + (1,) + shape[-1:]


def run_step(module: ModuleType, backend: str, arrays: list[np.ndarray], host: tuple,
             dtype: np.dtype, shape: tuple[int, ...] | None = None,
             axis_states: list[np.ndarray] | None = None, combine=None,
             torch_threads: int | None = None, matrix_precision: str | None = None) -> tuple:
    """One step over flat, contiguous ``arrays`` (p, g, inputs, then each state, in ``ARRAYS``
    order) with ``host`` the cast host scalars; ``shape`` is the parameter's (default: flat);
    ``axis_states`` are the factored states in ``AXIS_STATES`` order, where the parameter
    has them. ``combine(values)`` (float64), where given, sums values over the shards of a
    tensor held by other processes (each pass's sums, and the element count). Updates the
    arrays in place. ``torch_threads``: torch's thread count, which the CPU kernels follow.
    ``matrix_precision``: "bfloat16" runs whole-matrix operations in bfloat16 (a bfloat16
    param's, widened to float32 for the element passes). Returns the tensor's values
    (:attr:`TensorStep.tensor_values`), which ``scalar_updates`` may read.

    A spec whose sums run over the whole param group steps its tensors together
    (:func:`run_group_step`); alone, a tensor is its own group."""
    step = TensorStep(module, backend, arrays, host, dtype, shape, axis_states, combine,
                      torch_threads, matrix_precision)
    for k in range(len(module.REDUCE_ROUNDS)):
        step.add_sums(step.reduce_round(k))
    step.finish()
    return step.tensor_values


def run_group_step(module: ModuleType, steps: list["TensorStep"]) -> tuple:
    """The passes of a param group's tensors, reduction pass by reduction pass: every tensor
    computes its part of the pass's sums, the group's sums (``GROUP_REDUCTIONS``) are added
    over the tensors in order and every tensor reads the total, then the next pass; last the
    element passes. Returns the group's sums, in order (``group_updates`` reads them)."""
    group_totals = []
    start = 0
    for k, count in enumerate(module.REDUCE_ROUNDS):
        flags = module.GROUP_REDUCTIONS[start:start + count]
        # a pass any tensor of the group needs runs on all of them: a later group sum adds
        # every tensor's part, which may read this pass's sums
        force = any(step.needed[k] for step in steps)
        parts = [step.reduce_round(k, force) for step in steps]
        totals = [0.0] * count
        for part in parts:  # in the group's order: the same bits every run
            totals = [total + value if group else total
                      for total, value, group in zip(totals, part, flags)]
        for step, part in zip(steps, parts):
            step.add_sums(tuple(total if group else value
                                for total, value, group in zip(totals, part, flags)))
        group_totals += [total for total, group in zip(totals, flags) if group]
        start += count
    for step in steps:
        step.finish()
    return tuple(group_totals)


class TensorStep:
    """One tensor's step, pass by pass: its factored stage (at construction), each reduction
    pass (:meth:`reduce_round`, whose sums :meth:`add_sums` records), then the matrix stage
    and the element pass (:meth:`finish`). A per-channel sum is an array of one float64 value
    per channel; the others are floats."""

    def __init__(self, module: ModuleType, backend: str, arrays: list, host: tuple, dtype,
                 shape=None, axis_states=None, combine=None, torch_threads=None,
                 matrix_precision=None):
        self.module, self.backend, self.host = module, backend, host
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape) if shape is not None else (arrays[0].shape[0],)
        self.combine, self.matrix_precision = combine, matrix_precision
        if backend == "cpu":
            use_threads(arrays[0].shape[0], torch_threads)
        self.nest = _nest_args(module, backend, self.shape, axis_states)
        self.tiled = bool(axis_states)
        self.arrays = arrays
        self.axes = axis_stage(module, backend, arrays, host, self.dtype, self.shape,
                               axis_states)
        self.sizes = shape_values(self.shape)
        if combine is not None and module.SHAPE_VALUES and module.REDUCTIONS:
            self.sizes["_n"] = combine(np.array([self.sizes["_n"]], dtype=np.float64))[0]
        self.sums: list = []
        self.channels = channels(self.shape)
        self.channel_arrays: list[np.ndarray] = []  # the per-channel sums, in the dtype
        # which reduction passes a later value reads under these host scalars (a sharded
        # tensor runs them all: every process must take part in each exchange)
        self.needed = (module.rounds_needed(*host) if combine is None
                       else (True,) * len(module.REDUCE_ROUNDS))

    @property
    def shapes(self) -> tuple:
        """The shape values the kernels read (``SHAPE_VALUES``), in the arrays' dtype."""
        return tuple(self.dtype.type(self.sizes[name]) for name in self.module.SHAPE_VALUES)

    @property
    def tensor_values(self) -> tuple:
        """The sums (float64, in order), then the shape values (``SHAPE_VALUES``)."""
        return (*self.sums, *(float(self.sizes[name]) for name in self.module.SHAPE_VALUES))

    def kernel_tensor(self) -> tuple:
        """What the kernels take after the host scalars: the per-tensor sums so far and the
        shape values in the arrays' dtype, then (where the spec has per-channel sums) their
        arrays so far, the channel count and size."""
        kinds = self.module.REDUCE_KINDS
        scalars = tuple(self.dtype.type(s) for s, kind in zip(self.sums, kinds)
                        if kind != "channel")
        if "channel" not in kinds:
            return (*scalars, *self.shapes)
        return (*scalars, *self.shapes, *self.channel_arrays, *self.channels)

    def reduce_round(self, k: int, force: bool = False) -> tuple:
        """This tensor's part of the k-th reduction pass's sums (float64; a per-channel sum an
        array), summed over the shards of other processes where the tensor is sharded. A pass
        no later value reads here (``needed``) is skipped, unless ``force``: its sums are 0."""
        if not (self.needed[k] or force):
            return skipped_sums(self.module, k, self.channels[0])
        sums = reduce(self.module, self.backend, self.arrays + self.axes, self.host, self.nest,
                      tiled=self.tiled, k=k, tensor=self.kernel_tensor(),
                      channels=self.channels)
        if self.combine is not None:
            if not self.module.SHAPE_VALUES and k == 0:
                # the element count comes with the first sums: one exchange, as before rounds
                combined = self.combine(np.array([*sums, self.sizes["_n"]], dtype=np.float64))
                sums, self.sizes["_n"] = tuple(combined[:-1]), combined[-1]
            else:
                sums = tuple(self.combine(np.array(sums, dtype=np.float64)))
        return tuple(sums)

    def add_sums(self, sums: tuple) -> None:
        kinds = self.module.REDUCE_KINDS[len(self.sums):len(self.sums) + len(sums)]
        self.sums += list(sums)
        self.channel_arrays += [np.ascontiguousarray(s, dtype=self.dtype)
                                for s, kind in zip(sums, kinds) if kind == "channel"]

    def finish(self) -> None:
        if self.combine is not None and not self.module.REDUCTIONS:
            self.sizes["_n"] = self.combine(np.array([self.sizes["_n"]], dtype=np.float64))[0]
        module, dtype = self.module, self.dtype
        mats = matrix_stage(module, self.backend, self.arrays + self.axes, self.host, dtype,
                            self.shape, self.matrix_precision)
        getattr(module, f"step_{self.backend}")(*self.arrays, *self.axes, *mats, *self.host,
                                                *self.kernel_tensor(), *self.nest)


def skipped_sums(module: ModuleType, k: int, channel_count: int) -> tuple:
    """What stands for the sums of a skipped reduction pass: 0 (an array of zeros for a
    per-channel sum); no value read reads them."""
    return tuple(np.zeros(channel_count) if kind == "channel" else 0.0
                 for kind in round_kinds(module, k))


def group_updates(module: ModuleType, group_state: dict, flat_hypers: tuple, group: tuple,
                  group_sums: tuple) -> dict:
    """A param group's states after a step that had gradients: ``group_updates`` at the
    group's next step count, from its sums (:func:`run_group_step`)."""
    t = group_state["step"] + 1
    updated = module.group_updates(t, *flat_hypers, *group, *group_sums)
    return {"step": t, **dict(zip(module.GROUP_SCALARS, map(float, updated)))}


def scalar_updates(module: ModuleType, t: int, flat_hypers: tuple, scalars: tuple,
                   group: tuple, tensor_values: tuple) -> tuple:
    """Each scalar state after a tensor's step: ``group`` the per-group states as they were,
    ``tensor_values`` what :func:`run_step` returned (read where ``SCALARS_READ_TENSOR``)."""
    extra = tensor_values if module.SCALARS_READ_TENSOR else ()
    return tuple(map(float, module.scalar_updates(t, *flat_hypers, *scalars, *group, *extra)))


def _nest_args(module: ModuleType, backend: str, shape, axis_states) -> tuple:
    """The tiling the CPU kernels of a factored tensor take last (runtime/tiling.py; empty for
    the other backends and specs). An unfactored tensor's passes read no per-row values."""
    if backend != "cpu" or not getattr(module, "NESTS", False):
        return ()
    if not axis_states:
        return (1, 1, 1, 1, 1, False)
    return tiling(tuple(max(1, n) for n in shape), PASS_TILE)


def axis_stage(module: ModuleType, backend: str, arrays, host, dtype, shape,
               axis_states) -> list:
    """Update the factored states and hand the per-row/per-column values the passes read over
    as flat scratch arrays: in their own shape (one value per row, column or matrix) for the
    CPU kernels, which read them by index in their loop nest, else broadcast to the
    parameter's shape (empty where the parameter is not factored: no pass reads them). On the
    CPU, ``axis_cpu`` computes them (a scratch value equal to a state's new value is that
    state); elsewhere, or for an empty tensor, the NumPy ``axis_stage``."""
    if not module.AXIS_ARRAYS:
        return []
    if not axis_states:
        return [np.empty(0, dtype) for _ in module.AXIS_ARRAYS]
    nest = backend == "cpu"
    classes = getattr(module, "AXIS_CLASSES", ("full",) * len(module.AXIS_ARRAYS))
    n = arrays[0].shape[0]
    if (nest and getattr(module, "AXIS_CPU", False) and n
            and all(a.flags.c_contiguous for a in axis_states)):
        flat_states = [a.reshape(-1) for a in axis_states]
        out = [flat_states[alias] if alias >= 0
               else np.empty(int(np.prod(class_shape(shape, kind))), dtype)
               for alias, kind in zip(module.AXIS_ALIASES, classes)]
        module.axis_cpu(*arrays, *flat_states, *out, *host,
                        *tiling(shape, AXIS_TILE, AXIS_SPLIT))
        return out
    shaped = [a.reshape(shape) if a.shape[0] == n else a for a in arrays]
    values = module.axis_stage(*shaped, *axis_states, *host)
    return [np.ascontiguousarray(np.broadcast_to(v, class_shape(shape, kind) if nest
                                                 else shape), dtype=dtype).reshape(-1)
            for v, kind in zip(values, classes)]


def class_shape(shape: tuple[int, ...], kind: str) -> tuple[int, ...]:
    """The shape of an axis value: full, one per row (..., R, 1), per column (..., 1, C) or
    per matrix (..., 1, 1); or of a per-channel value (one per channel)."""
    if kind == "channel":
        return (channels(shape)[0],)
    return {"full": shape, "row": shape[:-1] + (1,), "col": shape[:-2] + (1,) + shape[-1:],
            "matrix": shape[:-2] + (1, 1)}[kind]


def matrix_stage(module: ModuleType, backend: str, arrays, host, dtype, shape,
                 precision: str | None = None) -> list:
    """Write each matrix operation's argument (prepare_* kernel), then transform it whole
    (in ``precision`` where given, else the arrays' dtype)."""
    if not module.MATRIX_OPS:
        return []
    scratch = [np.empty(arrays[0].shape[0], dtype) for _ in module.MATRIX_OPS]
    getattr(module, f"prepare_{backend}")(*arrays, *scratch, *host)  # arrays: with axes
    matrix_shape = shape if len(shape) == 2 else (1, arrays[0].shape[0])
    out = []
    for (kind, _, host_indices), values in zip(module.MATRIX_OPS, scratch):
        arguments = [float(host[i]) for i in host_indices]
        result = OPERATIONS[kind](values.reshape(matrix_shape), *arguments,
                                  precision=precision)
        out.append(result.reshape(-1).astype(dtype, copy=False))
    return out


def reduce(module: ModuleType, backend: str, arrays: list[np.ndarray], host: tuple,
           nest: tuple = (), tiled: bool = False, k: int = 0, tensor: tuple = (),
           channels: tuple[int, int] = (1, 1)) -> tuple:
    """The sums of the k-th reduction pass, in float64, in ``REDUCE_KINDS`` order: a
    per-tensor sum or max a float, a per-channel sum an array (one value per channel of
    ``channels``: count and size). ``tensor`` is what the kernels take after the host scalars
    (:meth:`TensorStep.kernel_tensor`). On the CPU, blocks of ``REDUCE_BLOCK`` elements (or a
    factored tensor's tiles) are summed in parallel and their partial sums added here in
    order: the same bits with any number of threads."""
    kinds = round_kinds(module, k)
    per_tensor = [kind for kind in kinds if kind != "channel"]
    values = iter(_tensor_sums(module, backend, arrays, host, nest, tiled, k, tensor,
                               per_tensor) if per_tensor else ())
    per_channel = iter(_channel_sums(module, backend, arrays, host, k, tensor, channels,
                                     kinds.count("channel")) if "channel" in kinds else ())
    return tuple(next(per_channel) if kind == "channel" else next(values) for kind in kinds)


def _tensor_sums(module, backend, arrays, host, nest, tiled, k, tensor, kinds) -> tuple:
    name = f"reduce_{backend}" if k == 0 else f"reduce_{backend}_{k}"
    if backend == "numpy":
        return tuple(getattr(module, name)(*arrays, *host, *tensor))
    n = arrays[0].shape[0]
    blocks = -(-n // module.REDUCE_BLOCK)
    if nest and tiled:  # a factored tensor's sums: one row of partials per tile
        blocks = max(blocks, tile_count(n, nest))
    partials = np.zeros((blocks, len(kinds)))
    getattr(module, name)(*arrays, *host, *tensor, *nest, partials)
    totals = np.zeros(len(kinds))
    sum_rows_in_order(partials, totals)
    for j, kind in enumerate(kinds):
        if kind == "max":  # NaN where any block's is (np.max propagates it)
            totals[j] = np.max(partials[:, j], initial=-np.inf)
    return tuple(totals)


def _channel_sums(module, backend, arrays, host, k, tensor, channels, count) -> list:
    name = f"reduce_channels_{backend}" if k == 0 else f"reduce_channels_{backend}_{k}"
    out = np.zeros((count, channels[0]))
    getattr(module, name)(*arrays, *host, *tensor, out)
    return list(out)
