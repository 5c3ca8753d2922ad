"""The PyTorch front end: ``optgen.torch.optimizer(name_or_path, params, **hypers)`` and the
catalogue as classes (``optgen.torch.Adam``, ``optgen.torch.Lion``, ...), each a real
:class:`torch.optim.Optimizer`.

Param groups with their own hyperparameters, ``zero_grad``, ``step(closure)``, params without a
gradient skipped, every ``torch.optim.lr_scheduler`` (they write ``group["lr"]``, read at each
step), and ``state_dict``/``load_state_dict`` in torch.optim's layout: ``state[p]["step"]`` a
float32 tensor and each state under torch's name, so checkpoints move both ways between
``torch.optim.Adam`` and ``optgen.torch.Adam``.

Stepping: CPU tensors are updated in place through their addresses (no copies). The tensors of
one (param group, dtype) that share a step count are stepped by one native call (see
:mod:`optgen.runtime.many`); specs with a per-tensor NumPy stage (Muon, Adafactor) step one tensor
at a time. float32 and float64 params keep states of their dtype; bfloat16 and float16 params
keep float32 states, are widened to float32 for the step and rounded back (to nearest even).
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import threading
from typing import Any

import numpy as np
import torch

from .runtime.checks import (byte_span, find_overlap, is_dense, numpy_shares, overlap_error,
                             state_shape_error, state_type_error)
from .runtime.kernels import (axis_shape, cast_host, host_value, is_factored, missing_states,
                              run_step, tensor_flags)
from .runtime.loader import available, load
from .runtime.many import TensorTable

__all__ = ["Optimizer", "optimizer", "optimizer_class", "available", "clip_grad_norm_"]

#: Class names: torch.optim's where torch has the optimizer.
CLASS_NAMES = {
    "sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad", "rmsprop": "RMSprop",
    "adamax": "Adamax", "adadelta": "Adadelta", "rprop": "Rprop", "radam": "RAdam",
    "nadam": "NAdam", "asgd": "ASGD", "adafactor": "Adafactor", "muon": "Muon",
    "adabelief": "AdaBelief", "adabound": "AdaBound", "lamb": "LAMB", "lars": "LARS",
    "schedule_free_adamw": "ScheduleFreeAdamW",
}
FULL_PRECISION = (torch.float32, torch.float64)
HALF_PRECISION = (torch.bfloat16, torch.float16)
#: torch.optim keywords that pick an implementation; accepted so that a switch is one line.
#: foreach and fused are ignored (optgen's kernel is always fused); capturable and
#: differentiable must be false.
IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")
_GRAD = operator.attrgetter("grad")
_IS_NONE = {None: True}.get  # True for None, else None (a dict lookup: no tensor __eq__)
_DATA_PTR = torch.Tensor.data_ptr
_SHAPE = operator.attrgetter("shape")
_STRIDE = torch.Tensor.stride
#: The tensor types the kernels can address (subclasses such as DTensor wrap other storage).
PLAIN_TENSORS = (torch.Tensor, torch.nn.Parameter)


def optimizer(name_or_path, params, **hypers) -> "Optimizer":
    """A :class:`torch.optim.Optimizer` over ``params`` running the generated kernels of a
    catalogue name or a ``.opt`` spec path."""
    return optimizer_class(name_or_path)(params, **hypers)


def optimizer_class(name_or_path) -> type:
    """The :class:`Optimizer` subclass for a catalogue name or spec path (made once each)."""
    module = load(name_or_path)
    kind = getattr(module, "KIND", "optimizer")
    if kind != "optimizer":
        raise ValueError(f"{module.NAME!r} is a {kind}; the PyTorch front end takes optimizers "
                         "(use torch.optim.lr_scheduler for schedules)")
    cls = _CLASSES.get(module.__name__)
    if cls is None:
        cls = type(class_name(module.NAME), (Optimizer,),
                   {"_module": module, "__doc__": module.DESCRIPTION, "__module__": __name__})
        _CLASSES[module.__name__] = cls
    return cls


_CLASSES: dict[str, type] = {}


def class_name(spec_name: str) -> str:
    """torch.optim's class name where torch has the optimizer, else the name in CamelCase."""
    return CLASS_NAMES.get(spec_name) or re.sub(r"(?:^|_)(\w)", lambda m: m[1].upper(),
                                                spec_name)


@functools.cache
def _catalogue_classes() -> dict[str, str]:
    return {class_name(name): name for name in available("optimizer")}


def __getattr__(name: str):
    """``optgen.torch.Adam`` and friends: the catalogue as classes."""
    if name in _catalogue_classes():
        return optimizer_class(_catalogue_classes()[name])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Optimizer(torch.optim.Optimizer):
    """A generated optimizer as a :class:`torch.optim.Optimizer`. Subclasses set ``_module``.

    Safe against what ordinary torch code does between steps: before the kernels run, every
    tensor they address (params, gradients, states, step counts) is checked against the
    address tables: a moved or resized param or gradient (``model.half()``, ``p.data = ...``,
    ``p.grad.data = ...``), a replaced ``state`` or state entry, a new step count. What is
    stale is rebuilt, after the whole step's arguments are validated; what cannot work raises
    naming the param and the state, before anything is modified. One optimizer stepped from
    several threads at once runs their steps one after another (a lock).
    """

    _module = None

    def __init__(self, params, process_group=None, **hypers):
        """``process_group``: for specs with per-tensor reductions (LAMB, LARS), the group whose
        processes each hold a shard of every tensor (``params[i]`` on each rank is a piece of
        the same logical tensor); norms, sums and means are then those of the whole tensors
        (one all-reduce of the per-tensor sums per step)."""
        module = self._module
        if module is None:
            raise TypeError("use optgen.torch.optimizer(name, params, ...) or a catalogue class "
                            "such as optgen.torch.Adam")
        if process_group is not None:
            if not module.REDUCTIONS:
                raise TypeError(f"{module.NAME} has no per-tensor reductions; process_group is "
                                "for norm-based optimizers (LAMB, LARS)")
            if module.AXIS_STATES or module.MATRIX_OPS:
                raise ValueError(f"{module.NAME} cannot step sharded tensors: its row/column "
                                 "or matrix stage needs whole tensors")
        self._combine = _all_reduce(process_group) if process_group is not None else None
        for key in IMPLEMENTATION_FLAGS:  # torch's choice of implementation: always ours here
            value = hypers.pop(key, None)
            if key in ("capturable", "differentiable") and value:
                raise ValueError(f"{key}=True is not supported by optgen.torch")
        for key in hypers:
            if key not in self._specs:
                raise TypeError(f"{module.NAME} has no hyperparameter {key!r} (it has: "
                                f"{', '.join(self._specs)})")
        defaults = {h.name: h.coerce(hypers.get(h.name, h.default)) for h in module.HYPERS}
        self._reset_tables()
        super().__init__(params, defaults)

    def _reset_tables(self) -> None:
        self._buckets: list[_Bucket] | None = None
        self._state_seen = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._module.NAME

    @property
    def _specs(self) -> dict:
        return _hyper_specs(self._module)

    # --- groups -----------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        index = len(self.param_groups) - 1
        try:
            _flat_hypers(self, group)
            for i, p in enumerate(group["params"]):
                _check_param(p, f"param_groups[{index}]['params'][{i}]")
            _check_overlaps(self)
        except (TypeError, ValueError, RuntimeError):
            self.param_groups.pop()
            raise
        self._buckets = None

    # --- stepping -------------------------------------------------------------------------

    def step(self, closure=None, **inputs):
        """One step of every param with a gradient; ``closure`` re-evaluates the loss. A spec's
        extra inputs come as keywords, one list per param group's params (Sophia's
        ``hessian=[...]``). Every argument is validated before any param moves."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for name, values in inputs.items():
            if name not in self._module.INPUTS:
                raise TypeError(f"{self.name} takes no input {name!r} (its inputs: "
                                f"{', '.join(self._module.INPUTS) or 'none'})")
            if values is not None and not isinstance(values, (list, tuple)):
                raise TypeError(f"{name} must be a list of tensors (one per param of the "
                                f"group, None to skip one), got {type(values).__name__}")
        with self._lock, torch.no_grad(), np.errstate(all="ignore"):
            self._step(inputs)
        return loss

    def _step(self, inputs: dict) -> None:
        if self._buckets is None or self.state is not self._state_seen:
            self._make_buckets()
        try:
            for bucket in self._buckets:
                bucket.check(inputs)
        except _Regroup:  # a param changed dtype or device (model.half(), p.data = ...)
            self._make_buckets()
            for bucket in self._buckets:
                bucket.check(inputs)
        if any(bucket.stale for bucket in self._buckets):
            _check_overlaps(self)
        for bucket in self._buckets:
            bucket.run(inputs)

    def _make_buckets(self) -> None:
        buckets = []
        for g, group in enumerate(self.param_groups):
            by_kind: dict[tuple, list[int]] = {}
            for i, p in enumerate(group["params"]):
                by_kind.setdefault((p.dtype, p.device), []).append(i)
            for (dtype, _), indices in by_kind.items():
                buckets.append(_Bucket(self, g, indices, dtype))
        self._buckets = buckets
        self._state_seen = self.state

    # --- checkpoints ----------------------------------------------------------------------

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch.optim's format, from this class or from the torch.optim optimizer of the same
        name. A state without ``step`` (torch.optim.SGD keeps none) counts as one step taken.

        Validated whole before anything changes (hyperparameters, and every state's shape
        against its param). States are kept exactly as saved: torch.optim casts floating
        states to the param's dtype, which would round NAdam's float64 ``mu_product`` and a
        half-precision param's float32 moments."""
        exact = _checked_checkpoint(self, state_dict)
        with self._lock:
            super().load_state_dict(state_dict)
            for p, entries in exact.items():
                self.state[p].update(entries)
            self._buckets = None

    def __setstate__(self, state):
        super().__setstate__(state)  # also how torch.optim's load_state_dict installs state
        if "_lock" not in self.__dict__:  # unpickled: no tables, no process group
            self._combine = None
            self._reset_tables()
        self._buckets = None

    def __repr__(self) -> str:
        return super().__repr__().replace(type(self).__name__, f"optgen.torch.{type(self).__name__}", 1)


@functools.cache
def _hyper_specs(module) -> dict:
    return {h.name: h for h in module.HYPERS}


class _Regroup(Exception):
    """A param no longer fits its bucket (dtype or device changed): make the buckets again."""


def _flat_hypers(opt: Optimizer, group: dict) -> tuple:
    """The group's hyperparameters validated, as the generated functions take them."""
    values = {}
    for name, spec in opt._specs.items():
        value = group[name]
        if isinstance(value, torch.Tensor):  # a tensor lr (LRScheduler may keep one)
            if value.numel() != 1:
                raise ValueError(f"{name} must be a number or a 1-element tensor")
            value = value.item()
        values[name] = spec.coerce(value)
    flat = tuple(host_value(v) for h in opt._module.HYPERS for v in h.flat(values[h.name]))
    broken = opt._module.violated_requirements(*flat)
    if broken:
        raise ValueError(f"{opt.name}: {broken[0]}")
    return flat


# --- validation ---------------------------------------------------------------------------

def _check_param(p, label: str) -> None:
    """A param the kernels can address: a plain dense CPU or CUDA tensor of a supported dtype."""
    if type(p) not in PLAIN_TENSORS:
        raise TypeError(f"{label} is a {type(p).__module__}.{type(p).__name__}; optgen.torch "
                        "steps plain tensors (torch.Tensor, torch.nn.Parameter), not tensor "
                        "subclasses such as DTensor (FSDP2's fully_shard) or lazy parameters")
    if p.is_sparse or p.layout != torch.strided or p.device.type not in ("cpu", "cuda"):
        raise ValueError(f"{label}: optgen.torch steps dense CPU and CUDA tensors (got "
                         f"{p.device.type}{', sparse' if p.is_sparse else ''})")
    if p.device.type == "cuda":
        from .runtime.cuda import require
        require()
    if p.dtype not in FULL_PRECISION + HALF_PRECISION:
        raise TypeError(f"{label} has dtype {p.dtype}; supported: float32, float64, bfloat16, "
                        "float16")


def _check_tensor_like(value, p: torch.Tensor, label: str, shape=None) -> None:
    """A gradient, an input or a state for param ``p``: a plain floating tensor on its device
    with ``shape`` (default: the param's)."""
    expected = tuple(p.shape) if shape is None else tuple(shape)
    if type(value) not in PLAIN_TENSORS:
        raise TypeError(f"{label} must be a torch.Tensor, got {type(value).__name__}")
    if value.is_sparse or value.layout != torch.strided:
        raise ValueError(f"{label} is sparse; optgen.torch takes dense tensors")
    if tuple(value.shape) != expected:
        raise ValueError(f"{label} has shape {tuple(value.shape)}, expected {expected} (the "
                         "param's)")
    if value.device != p.device:
        raise ValueError(f"{label} is on {value.device}, its param on {p.device}")
    if not value.is_floating_point():
        raise TypeError(f"{label} has dtype {value.dtype}; a floating dtype is needed")


def _check_number(value, label: str, integer: bool = False) -> None:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{label} must be a number or a 1-element tensor, got shape "
                             f"{tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{label} must be a number, got {type(value).__name__}")
    if integer and not (value >= 0 and float(value).is_integer()):
        raise ValueError(f"{label} must be a nonnegative whole number, got {value!r}")


def _tensor_spans(tensor: torch.Tensor, label: str):
    first, end = byte_span(tensor.data_ptr(), tuple(tensor.shape), tensor.stride(),
                           tensor.element_size())
    return label, first, end, tensor


def _tensors_share(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.device != b.device:
        return False
    if a.device.type != "cpu":
        return True  # the spans intersect: no exact test on the device

    def as_numpy(t):
        t = t.detach()
        return (t.view(torch.int16) if t.dtype in HALF_PRECISION else t).numpy()
    return numpy_shares(as_numpy(a), as_numpy(b))


def _check_overlaps(opt: Optimizer) -> None:
    """No two tensors the step writes (params, and the states that exist) share memory."""
    spans = []
    for g, group in enumerate(opt.param_groups):
        for i, p in enumerate(group["params"]):
            label = f"param_groups[{g}]['params'][{i}]"
            spans.append(_tensor_spans(p, label))
            for name, value in opt.state.get(p, {}).items():
                if name != "step" and isinstance(value, torch.Tensor) and value.numel():
                    spans.append(_tensor_spans(value, f"state {name!r} of {label}"))
    pair = find_overlap(spans, _tensors_share)
    if pair is not None:
        raise overlap_error(*pair)


def _checked_checkpoint(opt: Optimizer, state_dict) -> dict:
    """Validate a torch.optim state dict against this optimizer before it is loaded; the
    states the kernels read, exactly as saved, in the dtypes this optimizer keeps them in."""
    if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
        raise TypeError("state_dict must be a dict with 'state' and 'param_groups' (from "
                        "state_dict())")
    saved_groups = state_dict["param_groups"]
    if not isinstance(saved_groups, (list, tuple)) or len(saved_groups) != len(opt.param_groups):
        raise ValueError("loaded state dict has a different number of parameter groups")
    ids = {}
    for g, (group, saved) in enumerate(zip(opt.param_groups, saved_groups)):
        if not isinstance(saved, dict) or len(saved.get("params", ())) != len(group["params"]):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        merged = {**group, **{k: v for k, v in saved.items() if k != "params"}}
        _flat_hypers(opt, merged)
        for i, (key, p) in enumerate(zip(saved["params"], group["params"])):
            ids[key] = (p, f"param_groups[{g}]['params'][{i}]")
    module = opt._module
    axis = dict(module.AXIS_STATES)
    exact: dict = {}
    for key, entries in state_dict["state"].items():
        if key not in ids:
            continue  # torch.optim ignores these too
        p, label = ids[key]
        if not isinstance(entries, dict):
            raise TypeError(f"state of {label} must be a dict")
        state_dtype = torch.float32 if p.dtype in HALF_PRECISION else p.dtype
        kept = {}
        for name, value in entries.items():
            where = f"state {name!r} of {label}"
            if name == "step":
                _check_number(value, where, integer=True)
            elif name in module.SCALARS:
                _check_number(value, where)
                kept[name] = torch.tensor(float(value), dtype=torch.float64)
            elif name in module.STATES or name in axis:
                shape = (tuple(p.shape) if name not in axis
                         else axis_shape(tuple(p.shape), axis[name]))
                if not isinstance(value, torch.Tensor):
                    raise state_type_error(label, name, value, "a tensor")
                if tuple(value.shape) != shape:
                    raise state_shape_error(label, name, value.shape, shape)
                if not value.is_floating_point():
                    raise TypeError(f"{where} has dtype {value.dtype}; a floating dtype is "
                                    "needed")
                kept[name] = value.detach().to(device=p.device, dtype=state_dtype, copy=True)
        exact[p] = kept
    return exact


class _Bucket:
    """The params of one (param group, dtype, device): their states, step counts and address
    tables.

    ``check`` validates a step's arguments (raising before anything changes) and decides
    whether the tables still describe the tensors; ``run`` rebuilds what is stale and steps.
    The tables stay valid while every param keeps its address and shape, every gradient its
    shape and strides (new gradient tensors only refresh their addresses), every state dict
    and state entry its identity and address; the storages of the params and states the
    tables address are held, so an address that compares equal is still that storage."""

    def __init__(self, opt: Optimizer, g: int, indices: list[int], dtype: torch.dtype):
        self.opt = opt
        self.module = opt._module
        self.group = opt.param_groups[g]
        self.params = [self.group["params"][i] for i in indices]
        self.positions = indices
        self.labels = [f"param_groups[{g}]['params'][{i}]" for i in indices]
        self.dtype = dtype
        self.device = self.params[0].device
        self.cuda = self.device.type == "cuda"
        self.state_dtype = torch.float32 if dtype in HALF_PRECISION else dtype
        self.np_dtype = np.dtype(str(self.state_dtype).replace("torch.", ""))
        self.names = tuple(opt._specs)
        self.values = None           # the group's hyper values last seen
        self.flat = None
        self.each = (not self.module.MANY or dtype in HALF_PRECISION
                     or (self.cuda and bool(self.module.REDUCTIONS)))
        # Step counts: one float32 tensor; each state["step"] is a 0-d view of it.
        self.steps = torch.zeros(len(self.params), dtype=torch.float32)
        self.steps_np = self.steps.numpy()
        self.step_views: list = [None] * len(self.params)
        self.stale = True
        self.runs: list = []
        self.grads: list = []
        self.each_seen = None

    # --- check: validate, decide what is stale ---------------------------------------------

    def check(self, inputs: dict) -> None:
        values = tuple(map(self.group.__getitem__, self.names))
        if values != self.values:
            self.flat = _flat_hypers(self.opt, self.group)
            self.values = values
            self.stale = True  # which states exist may have changed
        grads = list(map(_GRAD, self.params))
        self.grads = grads
        if inputs or self.each:
            self._validate(grads, inputs)
            self.stale = self._each_signature() != self.each_seen  # overlaps to check again?
        elif self.stale or not self._tables_hold(grads):
            self._validate(grads, inputs)
            self.stale = True

    def _validate(self, grads: list, inputs: dict) -> None:
        """Everything the step will read or write, for every param with a gradient."""
        module = self.module
        axis = dict(module.AXIS_STATES)
        state = self.opt.state
        for k, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            label = self.labels[k]
            if p.dtype != self.dtype or p.device != self.device:
                raise _Regroup
            _check_tensor_like(g, p, f"the gradient of {label}")
            if g.dtype != p.dtype:
                raise TypeError(f"the gradient of {label} has dtype {g.dtype}, its param "
                                f"{p.dtype}")
            for name in module.INPUTS:
                values = inputs.get(name)
                if values is None:
                    continue
                if len(values) != len(self.group["params"]):
                    raise ValueError(f"{name} has {len(values)} tensors for a param group of "
                                     f"{len(self.group['params'])} params")
                value = values[self.positions[k]]
                if value is not None:
                    _check_tensor_like(value, p, f"{name} for {label}")
            entries = state.get(p)
            if not entries:
                continue
            for name, value in entries.items():
                where = f"state {name!r} of {label}"
                if name == "step":
                    _check_number(value, where, integer=True)
                elif name in module.SCALARS:
                    _check_number(value, where)
                elif name in module.STATES or name in axis:
                    if name in axis and not is_factored(tuple(p.shape)):
                        continue
                    shape = (tuple(p.shape) if name not in axis
                             else axis_shape(tuple(p.shape), axis[name]))
                    if not isinstance(value, torch.Tensor):
                        raise state_type_error(label, name, value, "a tensor")
                    if tuple(value.shape) != shape:
                        raise state_shape_error(label, name, value.shape, shape)
                    _check_tensor_like(value, p, where, shape)

    def _each_signature(self) -> tuple:
        """What the overlap check depends on, for params stepped one at a time: which params
        step, their addresses, their state entries' identities and addresses."""
        active = [p for p, g in zip(self.params, self.grads) if g is not None]
        entries = [v for d in map(self.opt.state.get, active) if d for v in d.values()
                   if isinstance(v, torch.Tensor)]
        return (list(map(id, active)), list(map(_DATA_PTR, active)), list(map(id, entries)),
                list(map(_DATA_PTR, entries)))

    def _tables_hold(self, grads: list) -> bool:
        """Whether the tables still address exactly these tensors (the per-step check: a few
        C-speed passes over the params, gradients and state entries); new gradient tensors of
        the same shapes and strides only have their addresses refreshed."""
        if self.all_have_grads:
            if any(map(operator.is_, grads, itertools.repeat(None))):
                return False
            present = grads
        else:
            if list(map(_IS_NONE, grads)) != self.none_pattern:
                return False
            present = [g for g in grads if g is not None]
        active = self.active
        if (list(map(_DATA_PTR, active)) != self.param_ptrs
                or list(map(_SHAPE, active)) != self.param_shapes
                or list(map(_SHAPE, present)) != self.param_shapes
                or list(map(_STRIDE, present)) != self.grad_strides
                or not all(map(operator.is_, map(type, present), itertools.repeat(torch.Tensor)))):
            return False
        dicts = list(map(self.opt.state.__getitem__, active))
        if not all(map(operator.is_, dicts, self.dicts)):
            return False
        try:
            entries = list(itertools.chain.from_iterable(map(self.getter, dicts)))
        except KeyError:
            return False
        if (not all(map(operator.is_, entries, self.entries))
                or list(map(_DATA_PTR, self.entry_tensors)) != self.entry_ptrs):
            return False
        grad_ptrs = list(map(_DATA_PTR, present))
        if grad_ptrs != self.grad_ptrs:
            for run in self.runs:
                run.set_grads(grads)
            self.grad_ptrs = grad_ptrs
        return True

    # --- run: rebuild what is stale, step ----------------------------------------------------

    def run(self, inputs: dict) -> None:
        grads = self.grads
        if inputs or self.each:
            for k, (p, g) in enumerate(zip(self.params, grads)):
                if g is not None:
                    self._ensure_state(k, p)
            for k, (p, g) in enumerate(zip(self.params, grads)):
                if g is not None:
                    self._step_one(k, p, g, self._inputs_for(k, inputs))
            self.each_seen = self._each_signature()
            self.runs = []  # the tables, if any, are stale now
            self.stale = True
            return
        if self.stale:
            self._prepare(grads)
        for run in self.runs:
            run.step(self)

    def _prepare(self, grads: list) -> None:
        """Tables for the params that have gradients, grouped by step count and per-tensor
        flags (normally one group); params, gradients and states of one dense layout go in
        the tables (stepped in storage order), others one at a time through copies."""
        active = [k for k, g in enumerate(grads) if g is not None]
        for k in active:
            self._ensure_state(k, self.params[k])
        module = self.module
        state = self.opt.state
        groups: dict[tuple, list[int]] = {}
        each = []
        for k in active:
            p, g = self.params[k], grads[k]
            if self._fits_table(p, g, state[p]):
                flags = tensor_flags(module, tuple(p.shape), self.np_dtype)
                groups.setdefault((float(self.steps_np[k]), flags), []).append(k)
            else:
                each.append(k)
        table_run = _CudaRun if self.cuda else _Run
        self.runs = [table_run(self, ks, grads) for ks in groups.values()]
        if each:
            self.runs.append(_EachRun(self, each))
        # What _tables_hold compares with.
        params = [self.params[k] for k in active]
        present = [grads[k] for k in active]
        self.active = params
        self.none_pattern = list(map(_IS_NONE, grads))
        self.all_have_grads = len(active) == len(grads)
        self.param_ptrs = list(map(_DATA_PTR, params))
        self.param_shapes = list(map(_SHAPE, params))
        self.grad_strides = list(map(_STRIDE, present))
        self.grad_ptrs = list(map(_DATA_PTR, present))
        self.dicts = list(map(state.__getitem__, params))
        names = ("step",) + tuple(n for n in module.STATES if n in self.dicts[0]) \
            + module.SCALARS if params else ("step",)
        self.getter = _entries_getter(names)
        self.entries = list(itertools.chain.from_iterable(map(self.getter, self.dicts)))
        # The kernels address the per-element states; step counts and scalar states are read
        # and written by value, so their identity is all that matters.
        addressed = [n for n in names if n in module.STATES]
        self.entry_tensors = [d[n] for d in self.dicts for n in addressed]
        self.entry_ptrs = list(map(_DATA_PTR, self.entry_tensors))
        self.held = [t.untyped_storage() for t in params + self.entry_tensors]
        self.stale = False

    def _fits_table(self, p: torch.Tensor, g: torch.Tensor, state: dict) -> bool:
        """One dense layout for p, g and every state: the flat kernel then pairs the right
        elements in storage order."""
        if not is_dense(tuple(p.shape), p.stride()):
            return False
        stride = p.stride()
        return g.stride() == stride and all(
            state[name].stride() == stride for name in self.module.STATES if name in state)

    def _ensure_state(self, k: int, p: torch.Tensor) -> None:
        """Create the states ``p`` lacks; bring those it has to the kernels' dtype and layout
        (a copy, replacing the entry); point ``step`` at the bucket's step counts."""
        state = self.opt.state[p]
        module = self.module
        if "step" not in state:
            self.steps_np[k] = 1 if state else 0  # torch.optim.SGD keeps no step count
            state["step"] = self.step_views[k] = self.steps[k]
        elif state["step"] is not self.step_views[k]:  # new, loaded or set by hand
            self.steps_np[k] = float(state["step"])
            state["step"] = self.step_views[k] = self.steps[k]
        for name, value in zip(module.SCALARS, module.scalar_inits(*self.flat)):
            current = state.get(name, value)
            if not (isinstance(current, torch.Tensor) and current.dtype == torch.float64
                    and current.dim() == 0):
                state[name] = torch.tensor(float(current), dtype=torch.float64)
        dense = is_dense(tuple(p.shape), p.stride()) and not p.is_contiguous()
        axis = dict(module.AXIS_STATES)
        for name, value in list(state.items()):
            if not (name in module.STATES or name in axis) or not isinstance(value,
                                                                             torch.Tensor):
                continue
            layout_ok = (value.stride() == p.stride() if dense and name not in axis
                         else value.is_contiguous())
            if value.dtype != self.state_dtype or not layout_ok:
                state[name] = self._new_state(p, name in axis, value.shape, value)
        flags = tensor_flags(module, tuple(p.shape), self.np_dtype)
        missing = missing_states(module, tuple(p.shape), self.flat, flags, state)
        if not missing:
            return
        p_values = p.detach().to(self.state_dtype)
        inits = module.state_inits(p_values, *self.flat)  # numbers, or tensors from p
        for index, name, shape in missing:
            state[name] = self._new_state(p, name in axis, shape, inits[index])

    def _new_state(self, p: torch.Tensor, factored: bool, shape, value) -> torch.Tensor:
        """A state of ``shape`` holding ``value`` (a number or a tensor that broadcasts), in
        the state dtype, in p's layout where p is dense (factored states: C order)."""
        if not factored and not p.is_contiguous() and is_dense(tuple(p.shape), p.stride()):
            out = torch.empty_like(p, dtype=self.state_dtype)
            out.copy_(value if isinstance(value, torch.Tensor) else torch.tensor(float(value)))
            return out
        if self.cuda:
            return (value.to(self.state_dtype).expand(shape).clone(
                memory_format=torch.contiguous_format) if isinstance(value, torch.Tensor)
                else torch.full(shape, float(value), dtype=self.state_dtype, device=p.device))
        # NumPy asks the kernel for huge pages on large arrays (madvise), which torch's
        # allocator does not: fewer TLB misses in every pass over the state.
        if isinstance(value, torch.Tensor):
            value = value.detach().to(self.state_dtype).numpy()
        return torch.from_numpy(np.array(np.broadcast_to(value, shape), dtype=self.np_dtype,
                                         order="C"))

    # --- one tensor at a time (matrix/axis stages, inputs, half precision, strided views) --

    def view(self, tensor: torch.Tensor, flat: bool = True):
        """A kernel's view of a contiguous tensor: NumPy on the CPU, Numba CUDA on a GPU."""
        tensor = tensor.detach()
        if self.cuda:
            from numba import cuda
            return cuda.as_cuda_array(tensor.reshape(-1) if flat else tensor)
        return tensor.numpy().reshape(-1) if flat else tensor.numpy()

    @property
    def empty(self):
        """Stands in for a state or input that does not exist."""
        if self.cuda:
            from .runtime.cuda_frontend import _empty
            return _empty(self.np_dtype)
        return np.empty(0, self.np_dtype)

    def _inputs_for(self, k: int, inputs: dict) -> dict:
        """Each extra input's tensor for ``p`` (validated in ``check``)."""
        position = self.positions[k]
        return {name: (inputs[name][position] if inputs.get(name) is not None else None)
                for name in self.module.INPUTS}

    def _step_one(self, k: int, p, g, extra: dict) -> None:
        module = self.module
        state = self.opt.state[p]
        shape = tuple(p.shape)
        t = int(self.steps_np[k]) + 1
        scalars = tuple(float(state[name]) for name in module.SCALARS)
        given = tuple(extra[name] is not None for name in module.INPUTS)
        flags = tensor_flags(module, shape, self.np_dtype)
        host = cast_host(module.host_scalars(t, *self.flat, *scalars, *given, *flags),
                         module.HOST_IS_BOOL, self.np_dtype)
        copies = []  # (tensor, its contiguous working copy) to write back

        def work(tensor):
            if tensor.dtype == self.state_dtype and tensor.is_contiguous():
                return tensor.detach()
            copy = tensor.detach().to(self.state_dtype).contiguous()
            copies.append((tensor, copy))
            return copy

        view, empty = self.view, self.empty
        arrays = [view(work(p)), view(_contiguous(g, self.state_dtype))]
        arrays += [view(_contiguous(extra[name], self.state_dtype)) if extra[name] is not None
                   else empty for name in module.INPUTS]
        arrays += [view(work(state[name])) if name in state else empty
                   for name in module.STATES]
        axis_states = [view(state[name], flat=False) for name, _ in module.AXIS_STATES
                       if name in state]
        if self.cuda:
            from .runtime.cuda import run_step_cuda
            run_step_cuda(module, arrays, host, self.np_dtype, shape, axis_states,
                          stream=_torch_stream(p.device))
        else:
            run_step(module, "cpu", arrays, host, self.np_dtype, shape, axis_states,
                     combine=self.opt._combine)
        for tensor, copy in copies:
            tensor.copy_(copy)  # rounds to nearest even into a half-precision param
        if module.SCALARS:
            updated = module.scalar_updates(t, *self.flat, *scalars)
            for name, value in zip(module.SCALARS, updated):
                state[name].fill_(float(value))
        self.steps_np[k] = t


def _entries_getter(names: tuple):
    """``dict -> tuple of its entries under names`` at C speed (KeyError if one is gone)."""
    if len(names) == 1:
        only = operator.itemgetter(names[0])
        return lambda d: (only(d),)
    return operator.itemgetter(*names)


def _all_reduce(group):
    """Sum float64 arrays over ``group`` (every process calls it at the same point)."""
    import torch.distributed as dist

    def combine(values: np.ndarray) -> np.ndarray:
        tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
        dist.all_reduce(tensor, group=group)
        return tensor.numpy()

    return combine


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False, process_group=None) -> torch.Tensor:
    """``torch.nn.utils.clip_grad_norm_`` over the gradients of ``parameters``, with the total
    norm taken over every process of ``process_group`` (each holding some of the parameters,
    as under ZeroRedundancyOptimizer, or a shard of each): one all-reduce."""
    import math

    import torch.distributed as dist

    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    norm_type = float(norm_type)
    if math.isinf(norm_type):
        local = max((g.detach().abs().max().double() for g in grads if g.numel()),
                    default=torch.tensor(0.0, dtype=torch.float64))
        op = dist.ReduceOp.MAX
    else:
        local = sum((g.detach().double().abs().pow(norm_type).sum() for g in grads),
                    torch.tensor(0.0, dtype=torch.float64))
        op = dist.ReduceOp.SUM
    local = local.clone()
    if process_group is not None:
        dist.all_reduce(local, op=op, group=process_group)
    total = local if math.isinf(norm_type) else local.pow(1.0 / norm_type)
    if error_if_nonfinite and not torch.isfinite(total):
        raise RuntimeError(f"The total norm of order {norm_type} for gradients is non-finite, "
                           "so it cannot be clipped")
    coefficient = torch.clamp(float(max_norm) / (total + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(coefficient.to(g.dtype))
    return total.to(grads[0].dtype) if grads else total  # torch returns the grads' dtype


def _contiguous(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` in ``dtype``, contiguous (a copy only if it must)."""
    tensor = tensor.detach()
    if tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor.contiguous()


def _torch_stream(device):
    """torch's current stream on ``device``, for Numba launches ordered with torch's work."""
    from numba import cuda

    return cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)


class _TableRun:
    """Params that share a step count, stepped by one native call (``launch``): the host
    scalars are computed once for all of them, and their step counts advance together.
    Subclasses make ``table`` from the addresses (p, g, inputs, then states; 0 for absent)."""

    def __init__(self, bucket: _Bucket, ks: list[int], grads: list):
        module = bucket.module
        self.ks = np.array(ks, dtype=np.int64)
        self.all = len(ks) == len(bucket.params)
        self.params = [bucket.params[k] for k in ks]
        states = [bucket.opt.state[p] for p in self.params]
        addresses = np.array([[p.data_ptr(), grads[k].data_ptr()] + [0] * len(module.INPUTS)
                              + [state[name].data_ptr() if name in state else 0
                                 for name in module.STATES]
                              for k, p, state in zip(ks, self.params, states)],
                             dtype=np.int64).reshape(len(ks), len(module.ARRAYS))
        self.table = self.make_table(bucket, [tuple(p.shape) for p in self.params], addresses)
        self.scalar_states = [tuple(state[name] for name in module.SCALARS) for state in states]
        self.flags = tensor_flags(module, tuple(self.params[0].shape), bucket.np_dtype)
        self.not_given = (False,) * len(module.INPUTS)

    def step(self, bucket: _Bucket) -> None:
        module = bucket.module
        t = int(bucket.steps_np[self.ks[0]]) + 1
        scalars = tuple(float(s) for s in self.scalar_states[0]) if module.SCALARS else ()
        self.launch(module.host_scalars(t, *bucket.flat, *scalars, *self.not_given,
                                        *self.flags), bucket)
        if self.all:
            bucket.steps_np += 1
        else:
            bucket.steps_np[self.ks] += 1
        if module.SCALARS:
            updated = module.scalar_updates(t, *bucket.flat, *scalars)
            for states in self.scalar_states:
                for tensor, value in zip(states, updated):
                    tensor.fill_(float(value))


class _Run(_TableRun):
    """CPU params that share a step count: one ``step_many_cpu`` call."""

    def make_table(self, bucket: _Bucket, shapes, addresses) -> TensorTable:
        table = TensorTable(bucket.module, bucket.np_dtype, shapes, combine=bucket.opt._combine)
        table.addresses[...] = addresses
        return table

    def set_grads(self, grads: list) -> None:
        """New gradient tensors for the same params (``zero_grad()`` sets them to None, so
        backward makes new ones every step): only their addresses change."""
        if self.all:
            self.table.addresses[:, 1] = list(map(_DATA_PTR, grads))
        else:
            self.table.addresses[:, 1] = [grads[k].data_ptr() for k in self.ks]

    def launch(self, host: tuple, bucket: _Bucket) -> None:
        self.table.run(self.table.host_array(host))


class _EachRun:
    """Params stepped one at a time through contiguous copies (strided views, or a gradient
    or state whose layout differs from its param's)."""

    def __init__(self, bucket: _Bucket, ks: list[int]):
        self.ks = ks

    def set_grads(self, grads: list) -> None:
        """Nothing to refresh: each step reads the bucket's validated gradients."""

    def step(self, bucket: _Bucket) -> None:
        no_inputs = {name: None for name in bucket.module.INPUTS}
        for k in self.ks:
            bucket._step_one(k, bucket.params[k], bucket.grads[k], no_inputs)


class _CudaRun(_TableRun):
    """CUDA params that share a step count: one ``step_many`` launch on torch's stream."""

    def make_table(self, bucket: _Bucket, shapes, addresses):
        from .runtime.cuda import CudaTable

        self.device = self.params[0].device
        return CudaTable(bucket.module, bucket.np_dtype, shapes, addresses,
                         stream=_torch_stream(self.device))

    def set_grads(self, grads: list) -> None:
        addresses = [grads[k].data_ptr() for k in self.ks]
        self.table.set_column(1, addresses, stream=_torch_stream(self.device))

    def launch(self, host: tuple, bucket: _Bucket) -> None:
        self.table.run(cast_host(host, bucket.module.HOST_IS_BOOL, bucket.np_dtype),
                       stream=_torch_stream(self.device))
