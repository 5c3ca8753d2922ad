"""``optgen.optimizer(name, params, backend="cuda")``: the NumPy front end's interface over CUDA
arrays (anything with ``__cuda_array_interface__``: Numba device arrays, CuPy arrays), updated
in place on the device. States are Numba device arrays; ``state_dict()`` copies them to NumPy
arrays and ``load_state_dict`` back.

On a GPU, the tensors of one dtype that share a step count are stepped by one launch
(:class:`~optgen.runtime.cuda.CudaTable`) where the spec allows it (no per-tensor sums or
matrix/axis stages); otherwise, and under the simulator, one launch sequence per tensor.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .checks import (check_scalar, check_step_count, restored_group, restored_states,
                     settled_group_states, state_entries)
from .cuda import CudaTable, CudaTensorStep, device_array, require, run_step_cuda, simulated
from .hypers import HasHypers
from .kernels import (cast_host, group_updates, missing_states, run_group_step,
                      scalar_updates, tensor_flags)

SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class CudaOptimizer(HasHypers):
    def __init__(self, module, params: Sequence, **hypers):
        require()
        object.__setattr__(self, "_module", module)
        self.backend = "cuda"
        if isinstance(params, np.ndarray) or not isinstance(params, Sequence):
            raise TypeError("params must be a list of CUDA arrays")
        self.params = list(params)
        self._views = [self._device(p, f"params[{i}]") for i, p in enumerate(self.params)]
        self._init_hypers(hypers)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self.group_state: dict[str, Any] = {}  # per-group states, as the CPU front end's
        self._tables: dict[tuple, CudaTable] = {}

    @staticmethod
    def _device(array, label: str):
        view = device_array(array)
        if view is None:
            raise TypeError(f"{label} must be a CUDA array (__cuda_array_interface__: a Numba "
                            f"device array, a CuPy array), got {type(array).__name__}; "
                            "backend='cpu' takes NumPy arrays")
        if np.dtype(view.dtype) not in SUPPORTED_DTYPES:
            raise TypeError(f"{label} has dtype {view.dtype}; supported: float32, float64")
        if not view.is_c_contiguous():
            raise ValueError(f"{label} must be C-contiguous on the device")
        return view

    def _check_grads(self, grads, label: str = "grads") -> list:
        if isinstance(grads, np.ndarray) or not isinstance(grads, Sequence):
            raise TypeError(f"{label} must be a list of CUDA arrays (one per param, or None)")
        if len(grads) != len(self.params):
            raise ValueError(f"got {len(grads)} {label} for {len(self.params)} params")
        for i, (view, grad) in enumerate(zip(self._views, grads)):
            if grad is not None:
                g = self._device(grad, f"{label}[{i}]")
                if g.shape != view.shape or g.dtype != view.dtype:
                    raise ValueError(f"{label}[{i}] has shape {g.shape} and dtype {g.dtype}, "
                                     f"params[{i}] {view.shape} and {view.dtype}")
        return list(grads)

    def _check_matrices(self, grads) -> None:
        """A whole-matrix stage (orthogonalize) steps 2-D params only, as on the CPU."""
        if not self._module.MATRIX_OPS:
            return
        for i, (view, grad) in enumerate(zip(self._views, grads)):
            if grad is not None and len(view.shape) != 2:
                raise ValueError(f"{self.name} steps 2-D matrices only; params[{i}] has shape "
                                 f"{tuple(view.shape)}")

    def _check_inputs(self, inputs: dict, grads: list) -> dict:
        for name, values in inputs.items():
            if name not in self._module.INPUTS:
                raise TypeError(f"{self.name} takes no input {name!r}")
            self._check_grads(values, name)
        return inputs

    def prepare(self, grads) -> None:
        """Create the states of the params ``grads`` will step (see the CPU front end)."""
        flat_hypers = self._flat(self._hypers)
        for view, grad, state in zip(self._views, grads, self.state):
            if grad is not None:
                self._ensure_state(view, state, flat_hypers,
                                   tensor_flags(self._module, tuple(view.shape),
                                                np.dtype(view.dtype)))

    def step(self, grads: Sequence, **inputs) -> None:
        module = self._module
        self._check_grads(grads)
        self._check_inputs(inputs, grads)
        self._check_matrices(grads)
        self._check_states(grads)
        flat_hypers = self._flat(self._hypers)
        batches: dict[tuple, list] = {}
        grouped = bool(module.GROUP_SCALARS) or any(module.GROUP_REDUCTIONS)
        group = self._group_values(flat_hypers)
        together = []
        for i, (view, grad, state) in enumerate(zip(self._views, grads, self.state)):
            if grad is None:
                continue
            g = self._device(grad, f"grads[{i}]")
            dtype = np.dtype(view.dtype)
            shape = tuple(view.shape)
            flags = tensor_flags(module, shape, dtype)
            self._ensure_state(view, state, flat_hypers, flags)
            t = state["step"] + 1
            scalars = tuple(state[name] for name in module.SCALARS)
            extra = [inputs.get(name, [None] * len(self.params))[i] for name in module.INPUTS]
            given = tuple(e is not None for e in extra)
            with np.errstate(all="ignore"):  # as the other front ends: inf and nan, quietly
                host = cast_host(module.host_scalars(t, *flat_hypers, *scalars, *group, *given,
                                                     *flags), module.HOST_IS_BOOL, dtype)
            empty = _empty(dtype)
            arrays = [view.reshape(-1), g.reshape(-1)]
            arrays += [self._device(e, f"{name}[{i}]").reshape(-1) if e is not None else empty
                       for name, e in zip(module.INPUTS, extra)]
            arrays += [state[name].reshape(-1) if name in state else empty
                       for name in module.STATES]
            tensor = ()
            if grouped:
                axis_states = [state[name] for name, _ in module.AXIS_STATES if name in state]
                together.append((CudaTensorStep(module, arrays, host, dtype, shape, axis_states),
                                 state, t, scalars))
                continue
            if self._many() and not any(given):
                batches.setdefault((t, dtype, scalars, flags), []).append((shape, arrays, host))
            else:
                axis_states = [state[name] for name, _ in module.AXIS_STATES if name in state]
                tensor = run_step_cuda(module, arrays, host, dtype, shape, axis_states)
            if scalars:
                state.update(zip(module.SCALARS, scalar_updates(
                    module, t, flat_hypers, scalars, (), tensor)))
            state["step"] = t
        for (_, dtype, _, _), batch in batches.items():
            shapes = tuple(shape for shape, _, _ in batch)
            addresses = np.array([[a.__cuda_array_interface__["data"][0] if a.size else 0
                                   for a in arrays] for _, arrays, _ in batch], dtype=np.int64)
            table = self._tables.get((dtype, shapes))
            if table is None:
                table = self._tables[(dtype, shapes)] = CudaTable(self._module, dtype,
                                                                  list(shapes), addresses)
            else:
                table.set_addresses(addresses)
            table.run(batch[0][2])
        if together:
            self._step_group(together, flat_hypers, group)

    def _step_group(self, together: list, flat_hypers, group: tuple) -> None:
        """A grouped spec's tensors, stepped together (see the CPU front end's)."""
        module = self._module
        group_sums = run_group_step(module, [entry[0] for entry in together])
        for step, state, t, scalars in together:
            if scalars:
                state.update(zip(module.SCALARS, scalar_updates(
                    module, t, flat_hypers, scalars, group, step.tensor_values)))
            state["step"] = t
        if module.GROUP_SCALARS:
            self.group_state = group_updates(module, self.group_state, flat_hypers, group,
                                             group_sums)

    def _group_values(self, flat_hypers) -> tuple:
        """As the CPU front end's: validated before the step moves anything."""
        module = self._module
        if not module.GROUP_SCALARS:
            return ()
        self.group_state = settled_group_states(module, self.group_state, flat_hypers)
        return tuple(self.group_state[name] for name in module.GROUP_SCALARS)

    def _check_states(self, grads) -> None:
        """Every existing state of the params to step is a device array of the param's shape
        and dtype (the kernels address them whole)."""
        states = self.state
        if (not isinstance(states, list) or len(states) != len(self.params)
                or not all(isinstance(s, dict) for s in states)):
            raise TypeError(f"state must be a list of {len(self.params)} dicts, one per param")
        for i, (view, grad, state) in enumerate(zip(self._views, grads, states)):
            if grad is None:
                continue
            for name, kind, shape in state_entries(self._module, tuple(view.shape)):
                if name not in state:
                    continue
                where = f"state {name!r} of params[{i}]"
                if kind == "step":
                    check_step_count(state[name], where)
                elif kind == "scalar":
                    check_scalar(state[name], where)
                else:
                    array = device_array(state[name])
                    if (array is None or tuple(array.shape) != shape
                            or np.dtype(array.dtype) != np.dtype(view.dtype)
                            or not array.is_c_contiguous()):
                        raise ValueError(f"{where} must be a C-contiguous CUDA array of shape "
                                         f"{shape} and dtype {view.dtype}")

    def _many(self) -> bool:
        module = self._module
        return (not simulated() and module.MANY and not module.REDUCTIONS)

    def _ensure_state(self, view, state, flat_hypers, flags) -> None:
        from numba import cuda

        module = self._module
        if "step" not in state:
            state["step"] = 0
            state.update(zip(module.SCALARS, map(float, module.scalar_inits(*flat_hypers))))
        missing = missing_states(module, tuple(view.shape), flat_hypers, flags, state)
        if missing:
            inits = module.state_inits(view.copy_to_host(), *flat_hypers)
            for index, name, shape in missing:
                value = np.array(np.broadcast_to(inits[index], shape), dtype=view.dtype,
                                 order="C")
                state[name] = cuda.to_device(value)

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and per-param state, states copied to NumPy arrays."""
        out = {"optimizer": self.name, "hypers": self.hypers,
               "state": [{k: (v.copy_to_host() if hasattr(v, "copy_to_host") else v)
                          for k, v in s.items()} for s in self.state]}
        if self._module.GROUP_SCALARS:
            out["group"] = dict(self.group_state)
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (here or from the CPU front end's)."""
        from numba import cuda

        restored, hypers = restored_states(
            self._module, self.name, [(tuple(v.shape), np.dtype(v.dtype)) for v in self._views],
            state_dict)  # validates shapes, names and numbers before anything changes
        group = restored_group(self._module, state_dict)
        self.set(**hypers)
        self.group_state = group
        self.state = [{k: (cuda.to_device(v) if isinstance(v, np.ndarray) else v)
                       for k, v in s.items()} for s in restored]

    def __repr__(self) -> str:
        return f"optgen.optimizer({self.name!r}, {len(self.params)} params, backend='cuda')"


_EMPTY: dict = {}


def _empty(dtype: np.dtype):
    """A zero-length device array standing in for a state or input that does not exist."""
    from numba import cuda

    if dtype not in _EMPTY:
        _EMPTY[dtype] = cuda.device_array(0, dtype)
    return _EMPTY[dtype]
