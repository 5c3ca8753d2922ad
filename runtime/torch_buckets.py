"""The tables behind ``optgen.torch``: the params of one (param group, dtype, device), their
states, step counts and address tables (imported only by the PyTorch front end).

A step is two phases over every bucket. ``check`` validates everything the step will read or
write and takes a *snapshot*: the very tensors and plain numbers it validated. It raises before
anything is modified. ``run`` then installs the snapshot (creating missing states, converting
those of another dtype or layout), rebuilds the tables if they are stale, and steps — reading
only the snapshot, never the state dicts again, so another thread that replaces a state entry
in between cannot slip an unchecked tensor under the kernels.

The tables stay valid while every param keeps its address, shape, dtype and strides, every
state dict and entry its identity (the per-element states their address, dtype and version:
in-place changes of shape or strides such as ``t_()`` or ``resize_()`` are versions), every
gradient its address, dtype and version, and every torch storage they address its size.
New gradient tensors only refresh their addresses, after their shape, strides, dtype,
device, storage size and any overlap with what the step writes are checked. The storages of
the params, states and gradients the tables address are held, so an address that compares
equal is still that storage (one resized in place shows in its size). Step counts
and scalar states live in arrays the bucket owns (each ``state[p]["step"]`` is a 0-d view);
the params of a table share one step count and one set of scalars, which is checked every
step, since a view can be written in place.
"""

from __future__ import annotations

import itertools
import operator

import numpy as np
import torch

from .kernels import (TensorStep, cast_host, is_factored, missing_states,
                      scalar_updates, tensor_flags)
from .many import TensorTable
from .checks import is_dense
from .pointers import gradients_fit
from .team import team
from .torch_checks import (HALF_PRECISION, array_state, check_storage,
                           check_tensor_like, partial_overlap, plain_number, plain_step,
                           state_dtype)

_GRAD = operator.attrgetter("grad")
_IS_NONE = {None: True}.get  # True for None, else None (a dict lookup: no tensor __eq__)
_DATA_PTR = torch.Tensor.data_ptr
_SHAPE = operator.attrgetter("shape")
_STRIDE = torch.Tensor.stride
_SHAPE_DTYPE = operator.attrgetter("shape", "dtype")
_DEVICE = operator.attrgetter("device")
_IS_NEG = torch.Tensor.is_neg
_VERSION = operator.attrgetter("_version")
_DTYPE = operator.attrgetter("dtype")
_STORAGE = torch.Tensor.untyped_storage
_NBYTES = torch.UntypedStorage.nbytes
_OFFSET = torch.Tensor.storage_offset


class Regroup(Exception):
    """A param no longer fits its bucket (dtype or device changed): make the buckets again."""


def _immutable(value) -> bool:
    """Whether a hyperparameter value cannot change without a new object (numbers, strings,
    None, tuples of them)."""
    if isinstance(value, tuple):
        return all(map(_immutable, value))
    return isinstance(value, (int, float, str, type(None), np.generic))


class Bucket:
    """The params of one (param group, dtype, device) of an ``optgen.torch`` optimizer."""

    def __init__(self, opt, g: int, indices: list[int], dtype: torch.dtype):
        self.opt = opt
        self.module = module = opt._module
        self.g = g
        self.group = opt.param_groups[g]
        self.params = [self.group["params"][i] for i in indices]
        offset = sum(len(group["params"]) for group in opt.param_groups[:g])
        self.positions = [offset + i for i in indices]  # among every group's params
        self.labels = [f"param_groups[{g}]['params'][{i}]" for i in indices]
        self.dtype = dtype
        self.device = self.params[0].device
        self.cuda = self.device.type == "cuda"
        self.state_dtype = state_dtype(dtype)
        self.np_dtype = np.dtype(str(self.state_dtype).replace("torch.", ""))
        self.names = tuple(opt._specs)
        self.values = None           # the group's hyper values last seen
        self.flat = None
        self.each = (not module.MANY or dtype in HALF_PRECISION
                     or (self.cuda and bool(module.REDUCTIONS)))
        self.axis = dict(module.AXIS_STATES)
        # Step counts (float32, as torch.optim's) and scalar states (float64), one row per
        # param; each state["step"] / state[scalar] is a 0-d view into them.
        self.steps = torch.zeros(len(self.params), dtype=torch.float32)
        self.steps_np = self.steps.numpy()
        self.scalars = torch.zeros((len(self.params), len(module.SCALARS)), dtype=torch.float64)
        self.scalars_np = self.scalars.numpy()
        self.stale = True
        self.runs: list = []
        self.grads: list = []
        self.snapshot: dict = {}
        self.each_seen = None

    # --- check: validate, snapshot, decide what is stale -----------------------------------

    def check(self, inputs: dict) -> None:
        values = tuple(map(self.group.__getitem__, self.names))
        before = self.values
        # by identity: == on a tensor hyper compares elementwise (and raises for two values)
        if before is None or self.mutable_hypers or any(map(operator.is_not, values, before)):
            if before is None or self.mutable_hypers:
                flat = self.opt._flat_hypers(self.group, self.g)
                # a tensor lr or a list of betas can change in place: read again every step
                self.mutable_hypers = not all(map(_immutable, values))
            else:  # a scheduler's new lr: that value alone is validated and classified
                changed = [k for k, (value, seen) in enumerate(zip(values, before))
                           if value is not seen]
                flat = self.opt._flat_hypers(self.group, self.g, (before, self.flat), changed)
                self.mutable_hypers = not all(_immutable(values[k]) for k in changed)
            self.values = values
            if flat != self.flat:
                # The tables hold while the same states exist (host scalars are computed from
                # the values every step): a scheduler's new lr costs no rebuild.
                if self.flat is None or (self._presence_changed(flat, self.flat)
                                         and self._other_states(flat, self.flat)):
                    self.stale = True
                self.flat = flat
        grads = list(map(_GRAD, self.params))
        self.grads = grads
        if inputs or self.each:
            self.snapshot = self._validate(grads, inputs)
            self.stale = self._each_signature() != self.each_seen  # overlaps to check again?
        elif self.stale or not self._tables_hold(grads) or not self._counts_hold():
            self.snapshot = self._validate(grads, inputs)
            self.stale = True

    mutable_hypers = False
    _flag_kinds = None  # the distinct tensor flags of the params (set on first use)

    def _presence_changed(self, flat: tuple, before: tuple) -> bool:
        """Whether a hyperparameter that decides which states exist changed."""
        return any(flat[k] != before[k] for k in self.module.PRESENCE_HYPERS)

    def _other_states(self, flat: tuple, before: tuple) -> bool:
        """Whether other states exist under the hyperparameters ``flat`` than ``before``, for
        any param: which exist may hang on a param's own flags too (Adafactor's variance, 'if
        not factored'), which states_present takes last."""
        module = self.module
        kinds = self._flag_kinds
        if kinds is None:  # the params' shapes: a changed one rebuilds the tables anyway
            kinds = self._flag_kinds = (
                {tensor_flags(module, tuple(p.shape), self.np_dtype) for p in self.params}
                if module.TENSOR_FLAGS else {()})
        return any(module.states_present(*flat, *flags)
                   != module.states_present(*before, *flags) for flags in kinds)

    def _validate(self, grads: list, inputs: dict) -> dict:
        """Everything the step will read or write, for every param with a gradient; the
        snapshot ``{k: (gradient, inputs, state dict, entries)}`` of what was checked."""
        module = self.module
        state = self.opt.state
        snapshot = {}
        for k, (p, g) in enumerate(zip(self.params, grads)):
            if g is None:
                continue
            label = self.labels[k]
            if p.dtype != self.dtype or p.device != self.device:
                raise Regroup
            check_storage(p, label)
            check_tensor_like(g, p, f"the gradient of {label}")
            if g.dtype != p.dtype:
                raise TypeError(f"the gradient of {label} has dtype {g.dtype}, its param "
                                f"{p.dtype}")
            extra = {}
            for name in module.INPUTS:
                values = inputs.get(name)
                if values is None:
                    extra[name] = None
                    continue
                total = sum(len(group["params"]) for group in self.opt.param_groups)
                if len(values) != total:
                    raise ValueError(f"{name} has {len(values)} tensors for {total} params "
                                     "(one per param, in param_groups order; None to skip)")
                value = values[self.positions[k]]
                extra[name] = None if value is None else check_tensor_like(
                    value, p, f"{name} for {label}")
            entries = state.get(p)  # (not state[p]: a failed check creates nothing)
            if entries is None:
                entries = {}
            elif not isinstance(entries, dict):
                raise TypeError(f"the state of {label} must be a dict, got "
                                f"{type(entries).__name__}")
            kept = {}
            for name, value in list(entries.items()):
                where = f"state {name!r} of {label}"
                if name == "step":
                    kept[name] = (value, plain_step(value, where))
                elif name in module.SCALARS:
                    kept[name] = (value, plain_number(value, where))
                elif name in module.STATES or (name in self.axis
                                               and is_factored(tuple(p.shape))):
                    kept[name] = (array_state(value, p, label, name, self.axis), None)
            for tensor in [g, *(v for v in extra.values() if v is not None)]:
                for name, (value, _) in kept.items():
                    if name in module.STATES and partial_overlap(tensor, value):
                        raise ValueError(f"{where_of(tensor, g, label)} overlaps state "
                                         f"{name!r} of {label}")
                if partial_overlap(tensor, p):
                    raise ValueError(f"{where_of(tensor, g, label)} overlaps {label} (it is "
                                     "read while the param is written)")
            snapshot[k] = (g, extra, entries, kept)
        return snapshot

    def reads(self) -> list:
        """``(label, tensor, own)`` for each gradient and input this step reads from the
        snapshot: own are its param and states, which it may alias exactly."""
        if not self.stale:  # tables that hold: their new gradients were checked already
            return []
        out = []
        for k, (g, extra, _, kept) in self.snapshot.items():
            own = [self.params[k]] + [v for n, (v, _) in kept.items()
                                      if isinstance(v, torch.Tensor) and n in self.module.STATES]
            out.append((f"the gradient of {self.labels[k]}", g, own))
            out += [(f"{name} for {self.labels[k]}", v, own) for name, v in extra.items()
                    if v is not None]
        return out

    def _each_signature(self) -> tuple:
        """What the overlap check depends on, for params stepped one at a time: which params
        step, their addresses, their state entries' identities and addresses."""
        active = [p for p, g in zip(self.params, self.grads) if g is not None]
        entries = [v for d in map(self.opt.state.get, active) if isinstance(d, dict)
                   for v in d.values() if isinstance(v, torch.Tensor)]
        return (list(map(id, active)), list(map(_DATA_PTR, active)), list(map(id, entries)),
                list(map(_DATA_PTR, entries)))

    def _tables_hold(self, grads: list) -> bool:
        """Whether the tables still address exactly these tensors (the per-step check: a few
        C-speed passes over the params, gradients and state entries). Every tensor the
        kernels address keeps its layout (address, shape, dtype, strides) and its storage
        its size; the same gradient tensors as last step are checked like the params, new
        ones in full, and then only their addresses change in the tables."""
        if self.all_have_grads:
            if any(map(operator.is_, grads, itertools.repeat(None))):
                return False
            present = grads
        else:
            if list(map(_IS_NONE, grads)) != self.none_pattern:
                return False
            present = [g for g in grads if g is not None]
        if (_layout(self.active) != self.param_layout
                or list(map(_DATA_PTR, self.state_tensors)) != self.state_ptrs
                or list(map(_VERSION, self.state_tensors)) != self.state_versions
                or not all(map(operator.is_, map(_DTYPE, self.state_tensors),
                               itertools.repeat(self.state_dtype)))
                or list(map(_NBYTES, self.resizable)) != self.resizable_nbytes):
            return False
        try:
            dicts = list(map(self.opt.state.__getitem__, self.active))
            if not all(map(operator.is_, dicts, self.dicts)):
                return False
            entries = list(itertools.chain.from_iterable(
                map(self.getter, dicts) if self.getter is not None
                else map(_apply, self.getters, dicts)))
        except (KeyError, TypeError):
            return False
        if not all(map(operator.is_, entries, self.entries)):
            return False
        if all(map(operator.is_, present, self.present)):
            return (list(map(_DATA_PTR, present)) == self.grad_layout[0]
                    and list(map(_VERSION, present)) == self.grad_versions
                    and all(map(operator.is_, map(_DTYPE, present),
                                itertools.repeat(self.dtype)))
                    and list(map(_NBYTES, self.grad_storages)) == self.grad_nbytes)
        return self._new_grads(present)

    def _new_grads(self, present: list) -> bool:
        """New gradient tensors for the same params (``zero_grad()`` sets them to None, so
        backward makes new ones every step): their shapes, dtypes, strides and devices as
        the tables expect, plain and unnegated, inside their storages, not overlapping any
        param or state but exactly their own."""
        layout = _layout(present)
        if (layout[1] != self.param_layout[1] or layout[2] != self.grad_layout[2]
                or list(map(_DEVICE, present)) != self.grad_devices
                or not all(map(operator.is_, map(type, present), itertools.repeat(torch.Tensor)))
                or any(map(_IS_NEG, present))):
            return False
        storages = list(map(_STORAGE, present))
        nbytes = list(map(_NBYTES, storages))
        ptrs, ends, sizes = np.array((layout[0], list(map(_OFFSET, present)), nbytes),
                                     dtype=np.int64)  # one conversion for the three
        ends *= self.itemsize
        ends += self.nbytes
        starts, stops = self.opt._written
        for run in self.runs:  # a gradient past its storage, or overlapping memory the step
            if not run.set_grads(ptrs, ends, sizes, starts, stops):  # writes: _validate
                return False                                         # names it
        self.present = present
        self.grad_layout = layout
        self.grad_versions = list(map(_VERSION, present))
        self.grad_storages = storages
        self.grad_nbytes = nbytes
        return True

    def _counts_hold(self) -> bool:
        """The params of each table share one valid step count and one set of scalar states
        (a view written in place, ``state[p]["step"].fill_(0)``, would split them)."""
        for run in self.runs:
            if not run.counts_hold(self):
                return False
        return True

    # --- run: install the snapshot, rebuild what is stale, step ------------------------------

    def group_values(self) -> tuple:
        """The param group's per-group states (``GROUP_SCALARS``), as the step reads them."""
        return tuple(float(self.group[name]) for name in self.module.GROUP_SCALARS)

    def group_steps(self) -> list:
        """This bucket's part of a grouped spec's step: for each param with a gradient, its
        :class:`TensorStep` and what finishes it after the group's passes ran."""
        settled = {k: self._settle(k, snap) for k, snap in self.snapshot.items()}
        out = [self._tensor_step(k, self.params[k], g, extra, settled[k])
               for k, (g, extra, _, _) in self.snapshot.items()]
        self.each_seen = self._each_signature()
        self.runs = []
        self.stale = True
        return out

    def run(self, inputs: dict) -> None:
        if inputs or self.each:
            settled = {k: self._settle(k, snap) for k, snap in self.snapshot.items()}
            for k, (g, extra, _, _) in self.snapshot.items():
                self._step_one(k, self.params[k], g, extra, settled[k])
            self.each_seen = self._each_signature()
            self.runs = []  # the tables, if any, are stale now
            self.stale = True
            return
        if self.stale:
            self._prepare()
        for run in self.runs:
            run.step(self)

    def _prepare(self) -> None:
        """Tables for the params that have gradients, grouped by step count, scalar states and
        per-tensor flags (normally one group); params, gradients and states of one dense
        layout go in the tables (stepped in storage order), others one at a time through
        copies."""
        module = self.module
        settled = {k: self._settle(k, snap) for k, snap in self.snapshot.items()}
        grads = self.grads
        groups: dict[tuple, list[int]] = {}
        each = []
        for k, arrays in settled.items():
            p, g = self.params[k], grads[k]
            if self._fits_table(p, g, arrays):
                flags = tensor_flags(module, tuple(p.shape), self.np_dtype)
                key = (float(self.steps_np[k]), tuple(self.scalars_np[k]), flags)
                groups.setdefault(key, []).append(k)
            else:
                each.append(k)
        table_run = _CudaRun if self.cuda else _Run
        rows = {k: row for row, k in enumerate(settled)}  # k -> its row among the active
        self.runs = [table_run(self, ks, grads, settled, [rows[k] for k in ks])
                     for ks in groups.values()]
        if each:
            self.runs.append(_EachRun(self, each, settled))
        # What _tables_hold compares with: the tensors just installed, not the dicts re-read.
        active = list(settled)
        params = [self.params[k] for k in active]
        present = [grads[k] for k in active]
        self.active = params
        self.none_pattern = list(map(_IS_NONE, grads))
        self.all_have_grads = len(active) == len(grads)
        self.itemsize = torch.empty(0, dtype=self.dtype).element_size()
        self.nbytes = np.array([p.numel() * self.itemsize for p in params], dtype=np.int64)
        self.dicts = [self.snapshot[k][2] for k in active]
        # Which states exist may differ between params (a state 'if factored'): each param's
        # own, one getter for all where they are the same (the usual case).
        states = {k: [n for n in module.STATES if n in settled[k]] for k in active}
        names = [("step", *states[k], *module.SCALARS) for k in active]
        same = all(n == names[0] for n in names)
        self.getter = (_entries_getter(names[0] if names else ("step", *module.SCALARS))
                       if same else None)
        self.getters = None if same else [_entries_getter(n) for n in names]
        self.entries = [d[n] for d, own in zip(self.dicts, names) for n in own]
        # What the kernels address: the params (their whole layout: `p.data = ...` can change
        # any of it) and the per-element states (their address and version: in-place changes
        # of shape or strides, t_() or resize_(), count as versions); step counts and scalar
        # states are read and written by value, so their identity is all that matters.
        self.param_layout = _layout(params)
        self.state_tensors = [settled[k][n] for k in active for n in states[k]]
        self.state_ptrs = list(map(_DATA_PTR, self.state_tensors))
        self.state_versions = list(map(_VERSION, self.state_tensors))
        self.held = list(map(_STORAGE, params + self.state_tensors))
        # A torch storage can be resized in place, and come back at the same address.
        self.resizable = [s for s in self.held if s.resizable()]
        self.resizable_nbytes = list(map(_NBYTES, self.resizable))
        self.present = present
        self.grad_layout = _layout(present)
        self.grad_versions = list(map(_VERSION, present))
        self.grad_devices = list(map(_DEVICE, present))
        self.grad_storages = list(map(_STORAGE, present))
        self.grad_nbytes = list(map(_NBYTES, self.grad_storages))
        self._flag_kinds = None  # shapes may have changed
        self.stale = False

    def _fits_table(self, p: torch.Tensor, g: torch.Tensor, arrays: dict) -> bool:
        """One dense layout for p, g and every state: the flat kernel then pairs the right
        elements in storage order."""
        if not is_dense(tuple(p.shape), p.stride()) or g.is_neg():
            return False
        stride = p.stride()
        return g.stride() == stride and all(
            arrays[name].stride() == stride for name in self.module.STATES if name in arrays)

    def _settle(self, k: int, snap: tuple) -> dict:
        """Install param k's snapshot in its state dict: step count and scalars as views of
        the bucket's arrays, states of another dtype or layout converted, missing ones
        created. The per-element and factored states, as installed."""
        _, _, state, kept = snap
        module = self.module
        p = self.params[k]
        if not state:  # new, or emptied by hand: this dict becomes the param's state
            self.opt.state[p] = state
        if "step" in kept:
            self.steps_np[k] = kept["step"][1]
        else:
            self.steps_np[k] = 1 if kept else 0  # torch.optim.SGD keeps no step count
        state["step"] = self.steps[k]
        for j, (name, init) in enumerate(zip(module.SCALARS, module.scalar_inits(*self.flat))):
            self.scalars_np[k, j] = kept[name][1] if name in kept else float(init)
            state[name] = self.scalars[k, j]
        dense = is_dense(tuple(p.shape), p.stride()) and not p.is_contiguous()
        arrays = {}
        for name, (value, _) in kept.items():
            if name in module.STATES or name in self.axis:
                layout_ok = (value.stride() == p.stride() if dense and name not in self.axis
                             else value.is_contiguous())
                if value.dtype != self.state_dtype or not layout_ok:
                    value = self._new_state(p, name in self.axis, value.shape, value)
                arrays[name] = state[name] = value
        flags = tensor_flags(module, tuple(p.shape), self.np_dtype)
        missing = missing_states(module, tuple(p.shape), self.flat, flags, arrays)
        if missing:
            p_values = p.detach().to(self.state_dtype)
            inits = module.state_inits(p_values, *self.flat)  # numbers, or tensors from p
            for index, name, shape in missing:
                arrays[name] = state[name] = self._new_state(p, name in self.axis, shape,
                                                             inits[index])
        return arrays

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
            from .cuda_frontend import _empty
            return _empty(self.np_dtype)
        return np.empty(0, self.np_dtype)

    def _step_one(self, k: int, p, g, extra: dict, arrays: dict) -> None:
        step, finish = self._tensor_step(k, p, g, extra, arrays)
        for j in range(len(self.module.REDUCE_ROUNDS)):
            step.add_sums(step.reduce_round(j))
        step.finish()
        finish(step.tensor_values)

    def _tensor_step(self, k: int, p, g, extra: dict, arrays: dict) -> tuple:
        """Param k's step, prepared: its :class:`TensorStep` (:class:`CudaTensorStep` on
        CUDA) and the function that completes it from the step's tensor values (copies back,
        scalar states, step count)."""
        module = self.module
        shape = tuple(p.shape)
        t = int(self.steps_np[k]) + 1
        scalars = tuple(map(float, self.scalars_np[k]))
        group = self.group_values()
        given = tuple(extra[name] is not None for name in module.INPUTS)
        flags = tensor_flags(module, shape, self.np_dtype)
        host = cast_host(module.host_scalars(t, *self.flat, *scalars, *group, *given, *flags),
                         module.HOST_IS_BOOL, self.np_dtype)
        copies = []  # (tensor, its contiguous working copy) to write back

        def work(tensor):
            if tensor.dtype == self.state_dtype and tensor.is_contiguous():
                return tensor.detach()
            copy = tensor.detach().to(self.state_dtype).contiguous()
            copies.append((tensor, copy))
            return copy

        view, empty = self.view, self.empty
        kernel_arrays = [view(work(p)), view(_contiguous(g, self.state_dtype))]
        kernel_arrays += [view(_contiguous(extra[name], self.state_dtype))
                          if extra[name] is not None else empty for name in module.INPUTS]
        kernel_arrays += [view(work(arrays[name])) if name in arrays else empty
                          for name in module.STATES]
        axis_states = [view(arrays[name], flat=False) for name, _ in module.AXIS_STATES
                       if name in arrays]

        def finish(tensor: tuple) -> None:
            with torch.no_grad():  # a param is a leaf that requires grad
                for target, copy in copies:
                    target.copy_(copy)  # rounds to nearest even into a half-precision param
            if module.SCALARS:
                self.scalars_np[k] = scalar_updates(module, t, self.flat, scalars, group,
                                                    tensor)
            self.steps_np[k] = t

        if self.cuda:
            from .cuda import CudaTensorStep
            return CudaTensorStep(module, kernel_arrays, host, self.np_dtype, shape, axis_states,
                                  stream=torch_stream(p.device)), finish
        # a bfloat16 param's Newton-Schulz in bfloat16, as torch.optim.Muon runs it
        step = TensorStep(module, "cpu", kernel_arrays, host, self.np_dtype, shape, axis_states,
                          combine=self.opt._combine, torch_threads=torch.get_num_threads(),
                          matrix_precision="bfloat16" if self.dtype == torch.bfloat16 else None)
        return step, finish


def _layout(tensors: list) -> tuple[list, list, list]:
    """What a kernel's view of each tensor depends on: address, (shape, dtype), strides."""
    return (list(map(_DATA_PTR, tensors)), list(map(_SHAPE_DTYPE, tensors)),
            list(map(_STRIDE, tensors)))


def where_of(tensor, grad, label: str) -> str:
    return f"the gradient of {label}" if tensor is grad else f"an input for {label}"


def _apply(function, argument):
    return function(argument)


def _entries_getter(names: tuple):
    """``dict -> tuple of its entries under names`` at C speed (KeyError if one is gone)."""
    if len(names) == 1:
        only = operator.itemgetter(names[0])
        return lambda d: (only(d),)
    return operator.itemgetter(*names)


def _contiguous(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` in ``dtype``, contiguous (a copy only if it must)."""
    tensor = tensor.detach().resolve_neg()
    if tensor.dtype != dtype:
        tensor = tensor.to(dtype)
    return tensor.contiguous()


def torch_stream(device):
    """torch's current stream on ``device``, for Numba launches ordered with torch's work."""
    from numba import cuda

    return cuda.external_stream(torch.cuda.current_stream(device).cuda_stream)


class _TableRun:
    """Params that share a step count, stepped by one native call (``launch``): the host
    scalars are computed once for all of them, and their step counts advance together.
    Subclasses make ``table`` from the addresses (p, g, inputs, then states; 0 for absent)."""

    def __init__(self, bucket: Bucket, ks: list[int], grads: list, settled: dict,
                 rows: list[int]):
        module = bucket.module
        self.ks = np.array(ks, dtype=np.int64)
        self.rows = np.array(rows, dtype=np.int64)  # these params among the bucket's active
        self.all = len(ks) == len(bucket.params)
        self.first = ks[0]
        self.params = [bucket.params[k] for k in ks]
        addresses = np.array([[p.data_ptr(), grads[k].data_ptr()] + [0] * len(module.INPUTS)
                              + [settled[k][name].data_ptr() if name in settled[k] else 0
                                 for name in module.STATES]
                              for k, p in zip(ks, self.params)],
                             dtype=np.int64).reshape(len(ks), len(module.ARRAYS))
        self.nbytes = np.array([p.numel() * p.element_size() for p in self.params],
                               dtype=np.int64)
        self.written = np.array([0] + [len(module.INPUTS) + 2 + j
                                       for j in range(len(module.STATES))], dtype=np.int64)
        self.every_row = len(rows) == len(settled)
        self.table = self.make_table(bucket, [tuple(p.shape) for p in self.params], addresses)
        self.flags = tensor_flags(module, tuple(self.params[0].shape), bucket.np_dtype)
        self.not_given = (False,) * len(module.INPUTS)

    def counts_hold(self, bucket: Bucket) -> bool:
        steps = bucket.steps_np if self.all else bucket.steps_np[self.ks]
        first = float(steps[0])
        if not (0 <= first < (1 << 24) and first.is_integer()):
            return False
        if len(steps) == 1:
            return True
        if (steps != first).any():
            return False
        if bucket.module.SCALARS:
            scalars = bucket.scalars_np if self.all else bucket.scalars_np[self.ks]
            if (scalars != scalars[0]).any():
                return False
        return True

    def fitting(self, addresses: np.ndarray, ptrs, ends, sizes, starts, stops):
        """This run's rows of new gradient addresses, or None where one reaches past its
        storage or overlaps memory the step writes other than exactly its own param or
        states (an exact alias is harmless: each element is read before it is written)."""
        if not self.every_row:
            ptrs, ends, sizes = ptrs[self.rows], ends[self.rows], sizes[self.rows]
        if gradients_fit(addresses, ptrs, ends, sizes, self.nbytes, self.written, starts,
                         stops):
            return ptrs
        return None

    def step(self, bucket: Bucket) -> None:
        module = bucket.module
        t = int(bucket.steps_np[self.first]) + 1
        scalars = tuple(map(float, bucket.scalars_np[self.first]))
        self.launch(module.host_scalars(t, *bucket.flat, *scalars, *bucket.group_values(),
                                        *self.not_given, *self.flags), bucket)
        if self.all:
            bucket.steps_np += 1
        else:
            bucket.steps_np[self.ks] += 1
        if module.SCALARS:  # a table's specs read no sums in their scalar states (MANY)
            updated = scalar_updates(module, t, bucket.flat, scalars, bucket.group_values(), ())
            if self.all:
                bucket.scalars_np[:] = updated
            else:
                bucket.scalars_np[self.ks] = updated


class _Run(_TableRun):
    """CPU params that share a step count: one ``step_many_cpu`` call."""

    def make_table(self, bucket: Bucket, shapes, addresses) -> TensorTable:
        table = TensorTable(bucket.module, bucket.np_dtype, shapes, combine=bucket.opt._combine)
        table.addresses[...] = addresses
        return table

    def set_grads(self, ptrs, ends, sizes, starts, stops) -> bool:
        """New gradient tensors for the same params (``zero_grad()`` sets them to None, so
        backward makes new ones every step): only their addresses change. False (and the
        table unchanged) when one does not fit (see ``fitting``)."""
        column = self.fitting(self.table.addresses, ptrs, ends, sizes, starts, stops)
        if column is None:
            return False
        self.table.addresses[:, 1] = column
        return True

    def launch(self, host: tuple, bucket: Bucket) -> None:
        self.table.run(self.table.host_array(host), torch.get_num_threads(), team())


class _EachRun:
    """Params stepped one at a time through contiguous copies (strided views, or a gradient
    or state whose layout differs from its param's)."""

    def __init__(self, bucket: Bucket, ks: list[int], settled: dict):
        self.ks = ks
        self.arrays = {k: settled[k] for k in ks}

    def set_grads(self, ptrs, ends, sizes, starts, stops) -> bool:
        return False  # validate the new gradients in full (they are stepped through copies)

    def counts_hold(self, bucket: Bucket) -> bool:
        return all(0 <= float(bucket.steps_np[k]) < (1 << 24)
                   and float(bucket.steps_np[k]).is_integer() for k in self.ks)

    def step(self, bucket: Bucket) -> None:
        no_inputs = {name: None for name in bucket.module.INPUTS}
        for k in self.ks:
            bucket._step_one(k, bucket.params[k], bucket.grads[k], no_inputs, self.arrays[k])


class _CudaRun(_TableRun):
    """CUDA params that share a step count: one ``step_many`` launch on torch's stream."""

    def make_table(self, bucket: Bucket, shapes, addresses):
        from .cuda import CudaTable

        self.device = self.params[0].device
        self.host_addresses = addresses.copy()
        return CudaTable(bucket.module, bucket.np_dtype, shapes, addresses,
                         stream=torch_stream(self.device))

    def set_grads(self, ptrs, ends, sizes, starts, stops) -> bool:
        column = self.fitting(self.host_addresses, ptrs, ends, sizes, starts, stops)
        if column is None:
            return False
        self.host_addresses[:, 1] = column
        self.table.set_column(1, list(column), stream=torch_stream(self.device))
        return True

    def launch(self, host: tuple, bucket: Bucket) -> None:
        self.table.run(cast_host(host, bucket.module.HOST_IS_BOOL, bucket.np_dtype),
                       stream=torch_stream(self.device))
