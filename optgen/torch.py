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

import collections
import contextlib
import functools
import gc
import operator
import re
import threading
from typing import Any

import numpy as np
import torch

from .runtime.checks import checked_group_states
from .runtime.kernels import host_value, run_group_step
from .runtime.loader import available, load
from .runtime.torch_buckets import Bucket, Regroup
from .runtime.torch_checks import (FULL_PRECISION, HALF_PRECISION, PLAIN_TENSORS,  # noqa: F401
                                   check_overlaps, check_param, check_reads, checked_checkpoint,
                                   span_arrays)

__all__ = ["Optimizer", "optimizer", "optimizer_class", "available", "clip_grad_norm_"]

#: Class names: torch.optim's where torch has the optimizer, else the reference's.
CLASS_NAMES = {
    "sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad", "rmsprop": "RMSprop",
    "adamax": "Adamax", "adadelta": "Adadelta", "rprop": "Rprop", "radam": "RAdam",
    "nadam": "NAdam", "asgd": "ASGD", "adafactor": "Adafactor", "muon": "Muon",
    "adabelief": "AdaBelief", "adabound": "AdaBound", "lamb": "LAMB", "lars": "LARS",
    "schedule_free_adamw": "ScheduleFreeAdamW", "adopt": "ADOPT", "signsgd": "SignSGD",
    "yogi": "Yogi", "adan": "Adan", "novograd": "NovoGrad", "prodigy": "Prodigy",
    "ademamix": "AdEMAMix", "dadapt_adam": "DAdaptAdam", "madgrad": "MADGRAD",
    "mars": "MARS", "adamp": "AdamP", "sgdp": "SGDP",
    "ranger": "Ranger",
}
#: torch.optim keywords that pick an implementation; accepted so that a switch is one line.
#: foreach and fused are ignored (optgen's kernel is always fused); capturable and
#: differentiable must be false.
IMPLEMENTATION_FLAGS = ("foreach", "fused", "capturable", "differentiable")


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
    address tables (:mod:`optgen.runtime.torch_buckets`): a moved or resized param or
    gradient (``model.half()``, ``p.data = ...``, ``p.grad.data = ...``), a replaced ``state``
    or state entry, a new step count, an edited ``param_groups``. What is stale is rebuilt,
    after the whole step's arguments are validated; what cannot work raises naming the param
    and the state, before anything is modified. One optimizer stepped from several threads at
    once runs their steps one after another (a lock).
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
            if set(module.REDUCE_KINDS) - {"sum"}:
                raise ValueError(f"{module.NAME} cannot step sharded tensors (process_group): "
                                 "its per-channel sums or amax() need whole tensors")
        self._combine = _all_reduce(process_group) if process_group is not None else None
        for key in IMPLEMENTATION_FLAGS:  # torch's choice of implementation: always ours here
            value = hypers.pop(key, None)
            if key in ("capturable", "differentiable") and value:
                raise ValueError(f"{key}=True is not supported by optgen.torch")
        for key in hypers:
            if key not in self._specs:
                raise TypeError(f"{module.NAME} has no hyperparameter {key!r} (it has: "
                                f"{', '.join(self._specs)})")
        defaults = {}
        for h in module.HYPERS:
            value = hypers.get(h.name, h.default)
            if isinstance(value, torch.Tensor):  # a tensor lr, as torch.optim takes
                _hyper_value(h, value)
                defaults[h.name] = value
            else:
                defaults[h.name] = h.coerce(value)
        self._reset_tables()
        super().__init__(params, defaults)

    def _reset_tables(self) -> None:
        self._buckets: list[Bucket] | None = None
        self._state_seen = None
        self._groups_seen: list = []
        self._written = span_arrays([])
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._module.NAME

    @property
    def _specs(self) -> dict:
        return _hyper_specs(self._module)

    def _flat_hypers(self, group: dict, index: int | None = None, since=None,
                     changed=None) -> tuple:
        """The group's hyperparameters validated, as the generated functions take them.
        ``since``, the (values in ``_specs`` order, flat tuple) validated last for this group:
        only the values that are other objects now are validated again (a scheduler's new
        ``lr`` costs one; ``changed``, where given, are their indices), then the
        requirements, which tie hypers together."""
        where = f"param_groups[{index}]: " if index is not None else ""
        module = self._module
        seen, flat = (since[0], list(since[1])) if since is not None else (
            None, [None] * len(module.HYPER_ARGS))
        specs = tuple(self._specs.items())
        slices = _flat_slices(module)
        for k in changed if changed is not None else range(len(specs)):
            name, spec = specs[k]
            if name not in group:
                raise KeyError(f"{where}no hyperparameter {name!r}")
            value = group[name]
            if seen is not None and value is seen[k]:
                continue
            try:
                value = _hyper_value(spec, value)
            except (TypeError, ValueError) as error:
                raise type(error)(f"{where}{error}") from None
            start, stop = slices[k]
            flat[start:stop] = map(host_value, spec.flat(value))
        flat = tuple(flat)
        broken = module.violated_requirements(*flat)
        if broken:
            raise ValueError(f"{where}{self.name}: {broken[0]}")
        return flat

    # --- groups -----------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        index = len(self.param_groups) - 1
        try:
            self._flat_hypers(group, index)
            for i, p in enumerate(group["params"]):
                check_param(p, f"param_groups[{index}]['params'][{i}]", self._module)
            check_overlaps(self.param_groups, self.state, self._module.SCALARS)
        except (TypeError, ValueError, RuntimeError):
            self.param_groups.pop()
            raise
        self._buckets = None

    # --- stepping -------------------------------------------------------------------------

    def step(self, closure=None, **inputs):
        """One step of every param with a gradient; ``closure`` re-evaluates the loss. A spec's
        extra inputs come as keywords, each a list with one tensor (or None) per param, in
        ``param_groups`` order over all groups (Sophia's ``hessian=[...]``). Every argument is
        validated before any param moves."""
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
        with self._lock, np.errstate(all="ignore"), _no_cyclic_gc():
            self._step(inputs)
        return loss

    def _step(self, inputs: dict) -> None:
        if not isinstance(self.state, collections.defaultdict):
            if not isinstance(self.state, dict):
                raise TypeError("optimizer.state must be a dict from params to their state "
                                f"dicts, got {type(self.state).__name__}")
            self.state = collections.defaultdict(dict, self.state)  # as torch.optim keeps it
        if self._buckets is None or self.state is not self._state_seen \
                or not self._groups_hold():
            self._make_buckets()
        try:
            for bucket in self._buckets:
                bucket.check(inputs)
        except Regroup:  # a param changed dtype or device (model.half(), p.data = ...)
            self._make_buckets()
            for bucket in self._buckets:
                bucket.check(inputs)
        grouped = bool(self._module.GROUP_SCALARS) or any(self._module.GROUP_REDUCTIONS)
        if grouped:
            self._check_group_states()
        stale = any(bucket.stale for bucket in self._buckets)
        if stale:
            written = check_overlaps(self.param_groups, self.state, self._module.SCALARS)
            check_reads([read for bucket in self._buckets for read in bucket.reads()], written)
        if grouped:
            self._step_groups()
        else:
            for bucket in self._buckets:
                bucket.run(inputs)
        if stale:  # states may be new: what the fast check of new gradients compares with
            self._written = span_arrays(check_overlaps(self.param_groups, self.state,
                                                       self._module.SCALARS))

    def _check_group_states(self) -> None:
        """Validate each param group's per-group states (``GROUP_SCALARS``, kept in the group
        under their names with the group's step count as ``"step"``, as Prodigy keeps ``d``),
        making them where the group has none yet."""
        module = self._module
        if not module.GROUP_SCALARS:
            return
        checked = [checked_group_states(module, group, f"param_groups[{g}]")
                   for g, group in enumerate(self.param_groups)]  # all, before any changes
        for g, (group, values) in enumerate(zip(self.param_groups, checked)):
            if values is None:
                flat = self._flat_hypers(group, g)
                values = {"step": 0, **dict(zip(module.GROUP_SCALARS,
                                                map(float, module.group_inits(*flat))))}
            group.update(values)  # plain numbers, read once

    def _step_groups(self) -> None:
        """A grouped spec's step, param group by param group: every tensor's reduction passes
        with the group's sums added between them (:func:`run_group_step`), the element
        passes, then the per-group states."""
        module = self._module
        for g, group in enumerate(self.param_groups):
            buckets = [bucket for bucket in self._buckets if bucket.g == g]
            if not any(bucket.snapshot for bucket in buckets):
                continue  # no gradients in this group: its states stay as they are
            entries = [entry for bucket in buckets for entry in bucket.group_steps()]
            group_sums = run_group_step(module, [step for step, _ in entries])
            for step, finish in entries:
                finish(step.tensor_values)
            if module.GROUP_SCALARS:
                t = group["step"] + 1
                values = tuple(group[name] for name in module.GROUP_SCALARS)
                updated = module.group_updates(t, *buckets[0].flat, *values, *group_sums)
                group.update(zip(module.GROUP_SCALARS, map(float, updated)))
                group["step"] = t

    def _groups_hold(self) -> bool:
        """Whether ``param_groups`` still lists the params the buckets were made for (torch
        code may edit the groups' lists directly)."""
        groups, seen = self.param_groups, self._groups_seen
        if len(groups) != len(seen):
            return False
        for group, (group_seen, params_seen) in zip(groups, seen):
            params = group["params"] if isinstance(group, dict) else None
            if (group is not group_seen or not isinstance(params, list)
                    or len(params) != len(params_seen)
                    or not all(map(operator.is_, params, params_seen))):
                return False
        return True

    def _make_buckets(self) -> None:
        buckets = []
        for g, group in enumerate(self.param_groups):
            if not isinstance(group, dict) or not isinstance(group.get("params"), list):
                raise TypeError(f"param_groups[{g}] must be a dict with a list 'params'")
            by_kind: dict[tuple, list[int]] = {}
            for i, p in enumerate(group["params"]):
                check_param(p, f"param_groups[{g}]['params'][{i}]", self._module)
                by_kind.setdefault((p.dtype, p.device), []).append(i)
            for (dtype, _), indices in by_kind.items():
                buckets.append(Bucket(self, g, indices, dtype))
        check_overlaps(self.param_groups, self.state, self._module.SCALARS)  # duplicates too
        self._buckets = buckets
        self._state_seen = self.state
        self._groups_seen = [(group, list(group["params"])) for group in self.param_groups]

    # --- checkpoints ----------------------------------------------------------------------

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch.optim's format, from this class or from the torch.optim optimizer of the same
        name. A state without ``step`` (torch.optim.SGD keeps none) counts as one step taken.

        Validated whole before anything changes (hyperparameters, and every state's shape
        against its param). States are kept exactly as saved: torch.optim casts floating
        states to the param's dtype, which would round NAdam's float64 ``mu_product`` and a
        half-precision param's float32 moments."""
        exact = checked_checkpoint(self, state_dict, self._flat_hypers)
        with self._lock:
            super().load_state_dict(state_dict)
            for group in self.param_groups:  # hypers a checkpoint lacks keep their defaults
                for name in self._specs:
                    group.setdefault(name, self.defaults[name])
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


@contextlib.contextmanager
def _no_cyclic_gc():
    """The per-step checks make a few short-lived tuples per tensor (shapes, strides), freed
    at once by reference counting; letting them trigger the cyclic collector, which then
    walks every object of a large program, costs more than the checks."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@functools.cache
def _hyper_specs(module) -> dict:
    return {h.name: h for h in module.HYPERS}


@functools.cache
def _flat_slices(module) -> tuple[tuple[int, int], ...]:
    """Where each hyperparameter's values sit in the flat tuple (a tuple hyper takes several)."""
    out, start = [], 0
    for h in module.HYPERS:
        width = len(h.components) if h.type == "tuple" else 1
        out.append((start, start + width))
        start += width
    return tuple(out)


def _hyper_value(spec, value):
    """A hyperparameter validated; a 1-element tensor (a tensor lr) by its value."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{spec.name} must be a number or a 1-element tensor")
        value = value.item()
    return spec.coerce(value)


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
