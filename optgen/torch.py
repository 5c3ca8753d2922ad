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
from typing import Any

import numpy as np
import torch

from .runtime.kernels import cast_host, host_value, missing_states, run_step, tensor_flags
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
_IS_CONTIGUOUS = torch.Tensor.is_contiguous
_IS_NONE = {None: True}.get  # True for None, else None (a dict lookup: no tensor __eq__)
_DATA_PTR = torch.Tensor.data_ptr


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
    """A generated optimizer as a :class:`torch.optim.Optimizer`. Subclasses set ``_module``."""

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
        self._specs = {h.name: h for h in module.HYPERS}
        for key in IMPLEMENTATION_FLAGS:  # torch's choice of implementation: always ours here
            value = hypers.pop(key, None)
            if key in ("capturable", "differentiable") and value:
                raise ValueError(f"{key}=True is not supported by optgen.torch")
        for key in hypers:
            if key not in self._specs:
                raise TypeError(f"{module.NAME} has no hyperparameter {key!r} (it has: "
                                f"{', '.join(self._specs)})")
        defaults = {h.name: h.coerce(hypers.get(h.name, h.default)) for h in module.HYPERS}
        self._buckets: list[_Bucket] | None = None
        super().__init__(params, defaults)

    @property
    def name(self) -> str:
        return self._module.NAME

    # --- groups -----------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        try:
            _flat_hypers(self, group)
        except (TypeError, ValueError):
            self.param_groups.pop()
            raise
        index = len(self.param_groups) - 1
        for i, p in enumerate(group["params"]):
            if p.is_sparse or p.device.type not in ("cpu", "cuda"):
                self.param_groups.pop()
                raise ValueError(f"param_groups[{index}]['params'][{i}]: optgen.torch steps "
                                 f"dense CPU and CUDA tensors (got {p.device.type}"
                                 f"{', sparse' if p.is_sparse else ''})")
            if p.device.type == "cuda":
                from .runtime.cuda import require
                try:
                    require()
                except RuntimeError:
                    self.param_groups.pop()
                    raise
            if p.dtype not in FULL_PRECISION + HALF_PRECISION:
                self.param_groups.pop()
                raise TypeError(f"param_groups[{index}]['params'][{i}] has dtype {p.dtype}; "
                                "supported: float32, float64, bfloat16, float16")
        self._buckets = None

    # --- stepping -------------------------------------------------------------------------

    def step(self, closure=None, **inputs):
        """One step of every param with a gradient; ``closure`` re-evaluates the loss. A spec's
        extra inputs come as keywords, one list per param group's params (Sophia's
        ``hessian=[...]``)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for name in inputs:
            if name not in self._module.INPUTS:
                raise TypeError(f"{self.name} takes no input {name!r} (its inputs: "
                                f"{', '.join(self._module.INPUTS) or 'none'})")
        if self._buckets is None:
            self._buckets = self._make_buckets()
        with np.errstate(all="ignore"):  # host arithmetic may overflow, as torch's does
            for bucket in self._buckets:
                bucket.step(inputs)
        return loss

    def _make_buckets(self) -> list["_Bucket"]:
        buckets = []
        offset = 0
        for group in self.param_groups:
            by_kind: dict[tuple, list[int]] = {}
            for i, p in enumerate(group["params"]):
                by_kind.setdefault((p.dtype, p.device), []).append(i)
            for (dtype, _), indices in by_kind.items():
                buckets.append(_Bucket(self, group, indices, offset, dtype))
            offset += len(group["params"])
        return buckets

    # --- checkpoints ----------------------------------------------------------------------

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """torch.optim's format, from this class or from the torch.optim optimizer of the same
        name. A state without ``step`` (torch.optim.SGD keeps none) counts as one step taken."""
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            _flat_hypers(self, group)
        self._buckets = None

    def __setstate__(self, state):
        super().__setstate__(state)
        self._buckets = None

    def __repr__(self) -> str:
        return super().__repr__().replace(type(self).__name__, f"optgen.torch.{type(self).__name__}", 1)


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


class _Bucket:
    """The params of one (param group, dtype): their states, step counts and address tables."""

    def __init__(self, opt: Optimizer, group: dict, indices: list[int], offset: int,
                 dtype: torch.dtype):
        self.opt = opt
        self.module = opt._module
        self.group = group
        self.params = [group["params"][i] for i in indices]
        self.dtype = dtype
        self.cuda = self.params[0].device.type == "cuda"
        self.state_dtype = torch.float32 if dtype in HALF_PRECISION else dtype
        self.np_dtype = np.dtype(str(self.state_dtype).replace("torch.", ""))
        self.names = tuple(opt._specs)
        self.values = None           # the group's hyper values last seen
        self.flat = None
        self.grads: list = [object()] * len(self.params)   # last gradients seen (identity)
        self.param_ptrs: list[int] = []
        self.runs: list[_Run] = []
        self.none_pattern: list = []
        self.all_have_grads = False
        # Step counts: one float32 tensor; each state["step"] is a 0-d view of it.
        self.steps = torch.zeros(len(self.params), dtype=torch.float32)
        self.steps_np = self.steps.numpy()
        for k, p in enumerate(self.params):
            state = opt.state[p]
            if state:
                step = state.get("step", 1)  # torch.optim.SGD keeps no step count
                self.steps_np[k] = float(step)
                state["step"] = self.steps[k]

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

    def step(self, inputs: dict) -> None:
        values = tuple(map(self.group.__getitem__, self.names))
        if values != self.values:
            self.flat = _flat_hypers(self.opt, self.group)
            self.values = values
            self.param_ptrs = []  # which states exist may have changed: prepare again
        grads = list(map(_GRAD, self.params))
        if inputs or not self.module.MANY or self.dtype in HALF_PRECISION or (
                self.cuda and self.module.REDUCTIONS):
            with torch.no_grad():
                self._step_each(grads, inputs)
            return
        if list(map(_DATA_PTR, self.params)) != self.param_ptrs:
            self._prepare(grads)
        elif not all(map(operator.is_, grads, self.grads)):
            self._new_grads(grads)
        for run in self.runs:
            run.step(self)

    def _new_grads(self, grads: list) -> None:
        """The fast way when only the gradient tensors are new (same params with gradients,
        contiguous as autograd makes them); otherwise :meth:`_prepare`."""
        if self.all_have_grads:  # the usual case, checked at C speed
            same = (not any(map(operator.is_, grads, itertools.repeat(None)))
                    and all(map(_IS_CONTIGUOUS, grads)))
        else:
            same = (not any(map(operator.is_not, map(_IS_NONE, grads), self.none_pattern))
                    and all(g is None or g.is_contiguous() for g in grads))
        if not same or not all(isinstance(run, (_Run, _CudaRun)) for run in self.runs):
            self._prepare(grads)
            return
        for run in self.runs:
            run.set_grads(grads)
        self.grads = grads

    # --- the many-tensor path -------------------------------------------------------------

    def _prepare(self, grads: list) -> None:
        """Tables for the params that have gradients, grouped by step count (normally one
        group); made again whenever the gradients or the params' storage change."""
        active = []
        for k, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            _check_grad(p, g)
            self._ensure_state(k, p)
            active.append(k)
        by_step: dict[float, list[int]] = {}
        for k in active:
            by_step.setdefault(float(self.steps_np[k]), []).append(k)
        contiguous = all(g.is_contiguous() for g in grads if g is not None) and all(
            p.is_contiguous() for p in self.params)
        if not contiguous:
            self.runs = [_EachRun(self, ks) for ks in by_step.values()]
        elif self.cuda:
            self.runs = [_CudaRun(self, ks, grads) for ks in by_step.values()]
        else:
            self.runs = [_Run(self, ks, grads) for ks in by_step.values()]
        self.grads = grads
        self.param_ptrs = list(map(_DATA_PTR, self.params))
        self.none_pattern = list(map(_IS_NONE, grads))
        self.all_have_grads = not any(self.none_pattern)

    def _ensure_state(self, k: int, p: torch.Tensor) -> None:
        state = self.opt.state[p]
        module = self.module
        if "step" not in state:
            self.steps_np[k] = 0
            state["step"] = self.steps[k]
            flat = self.flat
            for name, value in zip(module.SCALARS, module.scalar_inits(*flat)):
                state[name] = torch.tensor(float(value), dtype=torch.float64)
        flags = tensor_flags(module, tuple(p.shape), self.np_dtype)
        missing = missing_states(module, tuple(p.shape), self.flat, flags, state)
        if not missing:
            return
        p_values = p.detach().to(self.state_dtype)
        inits = module.state_inits(p_values, *self.flat)  # numbers, or tensors from p
        for index, name, shape in missing:
            value = inits[index]
            if self.cuda:
                state[name] = (value.to(self.state_dtype).expand(shape).clone(
                    memory_format=torch.contiguous_format) if isinstance(value, torch.Tensor)
                    else torch.full(shape, float(value), dtype=self.state_dtype,
                                    device=p.device))
            else:
                # NumPy asks the kernel for huge pages on large arrays (madvise), which torch's
                # allocator does not: fewer TLB misses in every pass over the state.
                if isinstance(value, torch.Tensor):
                    value = value.numpy()
                state[name] = torch.from_numpy(
                    np.array(np.broadcast_to(value, shape), dtype=self.np_dtype, order="C"))

    # --- one tensor at a time (matrix/axis stages, inputs, half precision) -----------------

    def _step_each(self, grads: list, inputs: dict) -> None:
        for k, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            _check_grad(p, g)
            self._ensure_state(k, p)
            self._step_one(k, p, g, self._inputs_for(p, inputs))

    def _inputs_for(self, p, inputs: dict) -> dict:
        """Each extra input's tensor for ``p`` (lists are matched to the group's params)."""
        out = {}
        position = next(i for i, q in enumerate(self.group["params"]) if q is p)
        for name in self.module.INPUTS:
            values = inputs.get(name)
            if values is None:
                out[name] = None
                continue
            if len(values) != len(self.group["params"]):
                raise ValueError(f"{name} has {len(values)} tensors for a param group of "
                                 f"{len(self.group['params'])} params")
            value = values[position]
            if value is not None and value.shape != p.shape:
                raise ValueError(f"{name}[{position}] has shape {tuple(value.shape)}, the param "
                                 f"{tuple(p.shape)}")
            out[name] = value
        return out

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
        copy_back = self.dtype in HALF_PRECISION or not p.is_contiguous()
        work_p = p.detach().to(self.state_dtype).contiguous() if copy_back else p.detach()
        view, empty = self.view, self.empty
        arrays = [view(work_p), view(_contiguous(g, self.state_dtype))]
        arrays += [view(_contiguous(extra[name], self.state_dtype)) if extra[name] is not None
                   else empty for name in module.INPUTS]
        arrays += [view(state[name]) if name in state else empty for name in module.STATES]
        axis_states = [view(state[name], flat=False) for name, _ in module.AXIS_STATES
                       if name in state]
        if self.cuda:
            from .runtime.cuda import run_step_cuda
            run_step_cuda(module, arrays, host, self.np_dtype, shape, axis_states,
                          stream=_torch_stream(p.device))
        else:
            with np.errstate(all="ignore"):
                run_step(module, "cpu", arrays, host, self.np_dtype, shape, axis_states,
                         combine=self.opt._combine)
        if copy_back:
            p.copy_(work_p)  # rounds to nearest even into a half-precision param
        if module.SCALARS:
            updated = module.scalar_updates(t, *self.flat, *scalars)
            for name, value in zip(module.SCALARS, updated):
                state[name].fill_(float(value))
        self.steps_np[k] = t


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


def _check_grad(p: torch.Tensor, g: torch.Tensor) -> None:
    if g.is_sparse:
        raise ValueError("optgen.torch does not take sparse gradients")
    if g.shape != p.shape or g.dtype != p.dtype:  # torch checks this on assignment, too
        raise ValueError(f"a gradient of shape {tuple(g.shape)} and dtype {g.dtype} for a "
                         f"param of shape {tuple(p.shape)} and dtype {p.dtype}")


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
    """Params stepped one at a time (non-contiguous params or gradients)."""

    def __init__(self, bucket: _Bucket, ks: list[int]):
        self.ks = ks

    def step(self, bucket: _Bucket) -> None:
        for k in self.ks:
            p = bucket.params[k]
            bucket._step_one(k, p, p.grad, {name: None for name in bucket.module.INPUTS})


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
