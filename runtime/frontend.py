"""The NumPy front end's optimizer: lists of arrays on the CPU (``backend="cpu"`` or
``"numpy"``), made by :func:`optgen.optimizer` (:mod:`optgen.runtime.factory`).

The generated module is the pure part (host scalars and element kernels); this is the
bookkeeping: validating arguments, allocating state lazily, counting steps per parameter,
flattening arrays for the kernels, and state dicts.

Every check happens before anything is modified: a bad call raises ``TypeError``/``ValueError``
naming the offending argument and leaves parameters, states and hyperparameters as they were.
The arrays are re-checked at every step (the params' dtype and writeability, every state's
type, shape and dtype: see :mod:`optgen.runtime.checks`), since the kernels write through
addresses. One optimizer stepped from several threads at once runs the steps one after another.
"""

from __future__ import annotations

import threading
from types import ModuleType
from typing import Any, Sequence

import numpy as np

from .checks import (byte_bounds, check_read, check_scalar, check_step_count,
                     checked_array_state, find_overlap, numpy_shares, numpy_spans, overlap_error,
                     restored_group, restored_states, settled_group_states, state_entries)
from .hypers import HasHypers
from .kernels import (TensorStep, cast_host, group_updates, missing_states, run_group_step,
                      run_step, scalar_updates, tensor_flags)
from .many import TensorTable

BACKENDS = ("cpu", "numpy")  # this class's; optimizer() also takes "cuda" (CudaOptimizer)
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

__all__ = ["Optimizer"]


class Optimizer(HasHypers):
    """Steps a list of arrays with one generated optimizer."""

    def __init__(self, module: ModuleType, params: Sequence[np.ndarray], backend: str = "cpu",
                 **hypers):
        object.__setattr__(self, "_module", module)
        if getattr(module, "KIND", "optimizer") == "schedule":
            raise ValueError(f"{module.NAME!r} is a {module.KIND}, not an optimizer; use "
                             f"optgen.schedule({module.NAME!r}, ...)")
        if not isinstance(backend, str):
            raise TypeError(f"backend must be a string, got {type(backend).__name__}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS + ('cuda',)))}, "
                             f"got {backend!r}")
        self.backend = backend
        self.params = _check_params(params)
        self._init_hypers(hypers)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        #: The per-group states (GROUP_SCALARS) and the group's step count, once it has one.
        self.group_state: dict[str, Any] = {}
        self._tables: dict[tuple, TensorTable] = {}
        self._lock = threading.Lock()
        self._checked_arrays: list = []  # the params and states last checked for overlaps
        self._written: list = []  # their spans, sorted
        self._check_overlaps()

    # --- stepping -------------------------------------------------------------------------

    def step(self, grads: Sequence[np.ndarray | None], **inputs) -> None:
        """One step: ``params[i] -= ...`` in place from ``grads[i]`` (``None`` skips a param).

        A spec's extra inputs come as keywords, one list like ``grads`` each (Sophia:
        ``step(grads, hessian=[...])``); a missing one, or ``None`` for a param, means not
        given this step.
        """
        with self._lock:
            self._step(grads, inputs)

    def _step(self, grads, inputs) -> None:
        params = _check_params(self.params)  # may have been made read-only, or replaced
        grads = self._check_grads(grads, params=params)
        extra = self._check_inputs(inputs, grads)
        self._check_matrices(grads)
        snapshot = self._snapshot(params, grads)  # the step reads only what was checked
        self._check_overlaps(params, snapshot)
        self._check_reads(params, grads, snapshot)
        for name, values in extra.items():
            self._check_reads(params, values, snapshot)
        flat_hypers = self._flat(self._hypers)
        module = self._module
        host_cache: dict[tuple, tuple] = {}
        batches: dict[tuple, list] = {}
        grouped = bool(module.GROUP_SCALARS) or any(module.GROUP_REDUCTIONS)
        group = self._group_values(flat_hypers)
        together: list[tuple] = []  # a grouped spec's tensors, stepped at the end together
        with np.errstate(all="ignore"):
            for i, (state, kept) in snapshot.items():
                param, grad = params[i], grads[i]
                flags = tensor_flags(module, param.shape, param.dtype)
                self._settle(param, state, kept, flat_hypers, flags)
                t = kept["step"] + 1
                scalars = tuple(kept[name] for name in module.SCALARS)
                given = tuple(extra[name][i] is not None for name in module.INPUTS)
                key = (t, param.dtype, scalars, given, flags)
                if key not in host_cache:
                    host_cache[key] = cast_host(
                        module.host_scalars(t, *flat_hypers, *scalars, *group, *given, *flags),
                        module.HOST_IS_BOOL, param.dtype)
                flat_p, write_back = _flat_view(param)
                arrays = [flat_p, np.ascontiguousarray(grad).reshape(-1)]
                arrays += [_empty(param.dtype) if extra[name][i] is None
                           else np.ascontiguousarray(extra[name][i]).reshape(-1)
                           for name in module.INPUTS]
                arrays += [kept[name].reshape(-1) if name in kept else _empty(param.dtype)
                           for name in module.STATES]
                axis_states = [kept[name] for name, _ in module.AXIS_STATES if name in kept]
                if grouped:
                    together.append((TensorStep(module, self.backend, arrays, host_cache[key],
                                                param.dtype, param.shape, axis_states),
                                     state, t, scalars, param, flat_p, write_back))
                    continue
                if self.backend == "cpu" and module.MANY and not write_back:
                    batches.setdefault(key, []).append((param.shape, arrays))
                    tensor = ()
                else:
                    tensor = run_step(module, self.backend, arrays, host_cache[key],
                                      param.dtype, param.shape, axis_states)
                if write_back:
                    param[...] = flat_p.reshape(param.shape)
                if scalars:
                    state.update(zip(module.SCALARS, scalar_updates(
                        module, t, flat_hypers, scalars, group, tensor)))
                state["step"] = t
            # Tensors that share host scalars (the same step, dtype and flags): one call each.
            for key, batch in batches.items():
                self._table(key[1], [shape for shape, _ in batch]).run_with(
                    [arrays for _, arrays in batch], host_cache[key])
            if together:
                self._step_group(together, flat_hypers, group)

    def _group_values(self, flat_hypers) -> tuple:
        """The per-group states (``GROUP_SCALARS``) as they are, made on first use."""
        module = self._module
        if not module.GROUP_SCALARS:
            return ()
        self.group_state = settled_group_states(module, self.group_state, flat_hypers)
        return tuple(self.group_state[name] for name in module.GROUP_SCALARS)

    def _step_group(self, together: list, flat_hypers, group: tuple) -> None:
        """Step a grouped spec's tensors together (their sums over the group added between
        passes), then update their scalar states and the group's."""
        module = self._module
        group_sums = run_group_step(module, [entry[0] for entry in together])
        for step, state, t, scalars, param, flat_p, write_back in together:
            if write_back:
                param[...] = flat_p.reshape(param.shape)
            if scalars:
                state.update(zip(module.SCALARS, scalar_updates(
                    module, t, flat_hypers, scalars, group, step.tensor_values)))
            state["step"] = t
        if module.GROUP_SCALARS:
            self.group_state = group_updates(module, self.group_state, flat_hypers, group,
                                             group_sums)

    def _table(self, dtype, shapes) -> TensorTable:
        """The many-tensor table for these shapes (made once, reused while they recur)."""
        key = (np.dtype(dtype), tuple(map(tuple, shapes)))
        table = self._tables.get(key)
        if table is None:
            table = self._tables[key] = TensorTable(self._module, dtype, shapes)
        return table

    def _checked_params(self) -> list[np.ndarray]:
        return _check_params(self.params)

    def prepare(self, grads) -> None:
        """Create the states of the params ``grads`` will step, from their current values
        (a wrapper's states start from p before the inner optimizer moves it)."""
        params = _check_params(self.params)
        snapshot = self._snapshot(params, grads)
        flat_hypers = self._flat(self._hypers)
        for i, (state, kept) in snapshot.items():
            param = params[i]
            self._settle(param, state, kept, flat_hypers,
                         tensor_flags(self._module, param.shape, param.dtype))

    def _settle(self, param, state: dict, kept: dict, flat_hypers, flags) -> None:
        """Install a param's checked entries in its state dict, creating what is missing
        (``kept`` then holds every entry the step reads)."""
        module = self._module
        if "step" not in kept:
            kept["step"] = 0
            kept.update(zip(module.SCALARS, map(float, module.scalar_inits(*flat_hypers))))
        missing = missing_states(module, param.shape, flat_hypers, flags, kept)
        if missing:
            inits = module.state_inits(param, *flat_hypers)
            for index, name, shape in missing:
                kept[name] = np.array(np.broadcast_to(inits[index], shape), dtype=param.dtype,
                                      order="C")
        state.update(kept)

    def _snapshot(self, params: list, grads: list) -> dict[int, tuple[dict, dict]]:
        """Validate the states of the params ``grads`` steps (whatever replaced them since):
        ``{i: (state dict, entries)}`` with each entry as checked — the step count an int,
        scalars floats, arrays in the param's dtype and C order (a converted copy where the
        entry was not) — read once, so nothing can change between the check and the use."""
        states = self.state
        if (not isinstance(states, list) or len(states) != len(params)
                or not all(isinstance(s, dict) for s in states)):
            raise TypeError(f"state must be a list of {len(params)} dicts, one per param "
                            "(set it with load_state_dict)")
        snapshot = {}
        for i, (param, grad, state) in enumerate(zip(params, grads, states)):
            if grad is None:
                continue
            current = dict(state)
            kept = {}
            for name, kind, shape in state_entries(self._module, param.shape):
                if name not in current:
                    continue
                where = f"state {name!r} of params[{i}]"
                if kind == "step":
                    kept[name] = check_step_count(current[name], where)
                elif kind == "scalar":
                    kept[name] = check_scalar(current[name], where)
                else:
                    kept[name] = checked_array_state(current[name], f"params[{i}]", name,
                                                     shape, param.dtype)
                    if _partly_shared(grad, kept[name]):
                        raise ValueError(f"grads[{i}] overlaps state {name!r} of params[{i}]")
            if "step" not in kept and kept:
                kept["step"] = 0
            snapshot[i] = (state, kept)
        return snapshot

    def _check_overlaps(self, params=None, snapshot=None) -> None:
        """No two arrays the step writes (params, states) share memory; checked again only
        when one of them is a new object (the arrays checked are held, so an object seen
        again is the same object)."""
        params = self.params if params is None else params
        arrays = [(f"params[{i}]", p) for i, p in enumerate(params)]
        if snapshot is None:
            entries = enumerate(s for s in self.state if isinstance(s, dict))
        else:
            entries = ((i, kept) for i, (_, kept) in snapshot.items())
        arrays += [(f"state {name!r} of params[{i}]", value) for i, state in entries
                   for name, value in state.items() if isinstance(value, np.ndarray)]
        # An array seen again is the same object (held) with the same address, shape and
        # strides (both can be set in place on an ndarray).
        layout = [(a, a.__array_interface__["data"][0], a.shape, a.strides) for _, a in arrays]
        held = self._checked_arrays
        if len(held) == len(layout) and all(
                a[0] is b[0] and a[1:] == b[1:] for a, b in zip(layout, held)):
            return
        spans = list(numpy_spans(arrays))
        pair = find_overlap(spans, numpy_shares)
        if pair is not None:
            raise overlap_error(*pair)
        self._checked_arrays = layout
        self._written = sorted(spans, key=lambda span: span[1])

    def _check_reads(self, params, grads, snapshot) -> None:
        """A gradient (or input) that is not exactly its own param or state shares no memory
        with any array the step writes: it would be read while that array is written."""
        written = self._written
        starts = [span[1] for span in written]
        for i, grad in enumerate(grads):
            if grad is None or not grad.size:
                continue
            own = [params[i]] + [v for v in snapshot.get(i, (None, {}))[1].values()
                                 if isinstance(v, np.ndarray)]
            if any(_exactly(grad, o) for o in own):
                continue
            check_read(f"grads[{i}]", grad, *byte_bounds(grad), written, starts, numpy_shares)

    def _check_matrices(self, grads) -> None:
        if not self._module.MATRIX_OPS:
            return
        for i, (param, grad) in enumerate(zip(self.params, grads)):
            if grad is not None and param.ndim != 2:
                raise ValueError(f"{self.name} steps 2-D matrices only; params[{i}] has shape "
                                 f"{param.shape}")

    def _check_inputs(self, inputs: dict, grads: list) -> dict[str, list]:
        out = {}
        for name, values in inputs.items():
            if name not in self._module.INPUTS:
                expected = ", ".join(self._module.INPUTS) or "none"
                raise TypeError(f"{self.name} takes no input {name!r} (its inputs: {expected})")
            out[name] = self._check_grads(values, name)
        for name in self._module.INPUTS:
            out.setdefault(name, [None] * len(self.params))
        return out

    def _check_grads(self, grads, label: str = "grads", params=None) -> list:
        params = self.params if params is None else params
        if isinstance(grads, np.ndarray) or not isinstance(grads, Sequence):
            raise TypeError(f"{label} must be a list of arrays (one per param, or None to skip)")
        if len(grads) != len(params):
            raise ValueError(f"got {len(grads)} {label} for {len(params)} params")
        out = []
        for i, (param, grad) in enumerate(zip(params, grads)):
            if grad is None:
                out.append(None)
                continue
            if isinstance(grad, np.generic):  # a 0-d gradient may come as a NumPy scalar
                grad = np.asarray(grad)
            if not isinstance(grad, np.ndarray):
                raise TypeError(f"{label}[{i}] must be a numpy array, got {type(grad).__name__}")
            if grad.dtype != param.dtype:
                raise TypeError(f"{label}[{i}] has dtype {grad.dtype}, but params[{i}] has "
                                f"{param.dtype}")
            if grad.shape != param.shape:
                raise ValueError(f"{label}[{i}] has shape {grad.shape}, but params[{i}] has "
                                 f"{param.shape}")
            if _partly_shared(grad, param):
                raise ValueError(f"{label}[{i}] overlaps params[{i}] (it is read while the "
                                 "param is written)")
            out.append(grad)
        return out

    # --- state dicts ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """A deep copy of the optimizer's state: hyperparameters and per-param state."""
        with self._lock:
            out = {
                "optimizer": self.name,
                "hypers": self.hypers,
                "state": [{k: (v.copy() if isinstance(v, np.ndarray) else v)
                           for k, v in s.items()} for s in self.state],
            }
            if self._module.GROUP_SCALARS:
                out["group"] = dict(self.group_state)
            return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict`; validated whole before anything is replaced."""
        self.checked_state_dict(state_dict)()

    def checked_state_dict(self, state_dict: dict[str, Any]):
        """Validate ``state_dict`` whole; a function that then installs it (so that a wrapper
        can validate both of its parts before installing either)."""
        restored, hypers = restored_states(self._module, self.name,
                                           [(p.shape, p.dtype) for p in self.params], state_dict)
        new_hypers = self._checked_hypers(hypers)
        group = restored_group(self._module, state_dict)

        def install() -> None:
            with self._lock:
                self._hypers = new_hypers
                self.state = restored
                self.group_state = group
        return install

    def __repr__(self) -> str:
        hypers = ", ".join(f"{k}={v!r}" for k, v in self._hypers.items())
        return f"optgen.optimizer({self.name!r}, {len(self.params)} params, " \
               f"backend={self.backend!r}, {hypers})"


def _exactly(a: np.ndarray, b: np.ndarray) -> bool:
    """The same elements in the same layout."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.strides == b.strides and a.shape == b.shape and a.dtype == b.dtype)


def _partly_shared(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two arrays share memory without being the same elements in the same layout
    (an exact alias is harmless: the kernels read and write element by element)."""
    if not np.may_share_memory(a, b):
        return False
    return not _exactly(a, b) and numpy_shares(a, b)


def _check_params(params) -> list[np.ndarray]:
    if isinstance(params, np.ndarray) or not isinstance(params, Sequence):
        raise TypeError("params must be a list of numpy arrays")
    out = []
    for i, p in enumerate(params):
        if not isinstance(p, np.ndarray) or isinstance(p, np.matrix):
            hint = " (np.asarray(m) is a plain array sharing its memory)" if isinstance(
                p, np.matrix) else ""
            raise TypeError(f"params[{i}] must be a numpy array, got {type(p).__name__}{hint}")
        if p.dtype not in SUPPORTED_DTYPES:
            raise TypeError(f"params[{i}] has dtype {p.dtype}; supported: float32, float64")
        if not p.flags.writeable:
            raise ValueError(f"params[{i}] is read-only; the optimizer updates params in place")
        if not p.flags.aligned:
            raise ValueError(f"params[{i}] is not aligned to its dtype; copy it first")
        out.append(p)
    return out


def _flat_view(array: np.ndarray) -> tuple[np.ndarray, bool]:
    """A flat C-order view of ``array``, or a contiguous copy plus the need to write it back."""
    if array.flags.c_contiguous:
        return array.reshape(-1), False
    return np.ascontiguousarray(array).reshape(-1), True


_EMPTY = {dtype: np.empty(0, dtype) for dtype in SUPPORTED_DTYPES}


def _empty(dtype: np.dtype) -> np.ndarray:
    """Stand-in for a state that does not exist: the kernel never touches it."""
    return _EMPTY[dtype]
