"""The CUDA backend at run time: launching a generated module's CUDA kernels on device arrays.

Arrays are anything with ``__cuda_array_interface__`` (Numba device arrays, CuPy arrays, CUDA
torch tensors), viewed without copies. One tensor: a grid-stride ``step`` launch, preceded by
``reduce``/``reduce_total`` for per-tensor sums and ``reduce_channels`` for per-channel ones
(which stay on the device: the element kernel reads them from device arrays, so there is no
host round trip). Many tensors: :class:`CudaTable`, one
``step_many`` launch over a table of addresses (GPU only; the simulator has no addresses).

Muon's Newton-Schulz and Adafactor's row/column means run on the host (NumPy): their arguments
and results are copied across once per step; every other spec stays on the device.

Under ``NUMBA_ENABLE_CUDASIM=1`` the kernels run in Numba's CUDA simulator (CI's way to test
them, on small arrays).
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

from .kernels import channels, round_kinds, shape_values
from .matrix import OPERATIONS
from .pointers import work_list

#: Threads per block of the element kernels (fewer under the simulator, where each is a thread).
THREADS = 256
SIM_THREADS = 32
#: Elements per row of the many-tensor kernel's work list (one CUDA block a row).
CHUNK = 1 << 14


def simulated() -> bool:
    from numba import config
    return bool(config.ENABLE_CUDASIM)


def available() -> bool:
    """Whether CUDA kernels can run here: a GPU with a driver, or the simulator."""
    try:
        from numba import cuda
    except ImportError:
        return False
    try:
        return bool(cuda.is_available())
    except Exception:  # a broken driver installation reports itself as unavailable
        return False


def require() -> None:
    """Raise a clear error where CUDA cannot run."""
    try:
        import numba.cuda  # noqa: F401
    except ImportError:
        raise RuntimeError("backend='cuda' needs Numba's CUDA target: pip install "
                           "'optgen[cuda]' (numba-cuda)") from None
    if not available():
        raise RuntimeError("backend='cuda' needs an NVIDIA GPU with its driver, or Numba's CUDA "
                           "simulator (NUMBA_ENABLE_CUDASIM=1); none is available here")


def device_array(obj):
    """A Numba view of a CUDA array (no copy), or None if ``obj`` is not one. (The simulator's
    device arrays have no ``__cuda_array_interface__``; they are taken as they are.)"""
    from numba import cuda

    if simulated():
        return obj if type(obj).__name__ == "FakeCUDAArray" else None
    if not hasattr(obj, "__cuda_array_interface__"):
        return None
    return cuda.as_cuda_array(obj)


def _grid(n: int) -> tuple[int, int]:
    threads = SIM_THREADS if simulated() else THREADS
    blocks = max(1, min(-(-n // threads), 2 if simulated() else 8192))
    return blocks, threads


def run_step_cuda(module: ModuleType, arrays: list, host: tuple, dtype: np.dtype,
                  shape: tuple[int, ...], axis_states: list | None = None, stream=0) -> tuple:
    """One step of one tensor: ``arrays`` flat device arrays in ``ARRAYS`` order (absent ones
    empty), ``host`` cast to ``dtype``; ``axis_states`` the factored states (device arrays).
    Returns the tensor's sums and shape values where its scalar states read them
    (``SCALARS_READ_TENSOR``: the sums come back to the host), else ()."""
    step = CudaTensorStep(module, arrays, host, dtype, shape, axis_states, stream)
    for k in range(len(module.REDUCE_ROUNDS)):
        step.add_sums(step.reduce_round(k))
    step.finish()
    return step.tensor_values if module.SCALARS_READ_TENSOR and module.SCALARS else ()


class CudaTensorStep:
    """One tensor's step on the device, pass by pass, as :class:`~.kernels.TensorStep` on the
    CPU (so :func:`~.kernels.run_group_step` steps a param group of either): each reduction
    pass's sums are written on the device, where the next pass and the element pass read
    them; they come back to the host only where the group adds them, or a scalar state reads
    them."""

    def __init__(self, module: ModuleType, arrays: list, host: tuple, dtype, shape,
                 axis_states: list | None = None, stream=0):
        from numba import cuda

        self.module, self.arrays, self.host, self.stream = module, arrays, host, stream
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        self.n = arrays[0].shape[0]
        self.sizes = shape_values(self.shape)
        self.values: list = []
        self.on_host = any(module.GROUP_REDUCTIONS) or bool(
            module.SCALARS_READ_TENSOR and module.SCALARS)
        # which reduction passes a later value reads under these host scalars
        self.needed = module.rounds_needed(*host)
        if self.n == 0:
            return
        self.kernels = module.cuda_kernels()
        self.axes = _axis_stage(module, arrays, host, self.dtype, self.shape, axis_states,
                                stream)
        self.tensor = tuple(self.dtype.type(self.sizes[name]) for name in module.SHAPE_VALUES)
        # zeros: a skipped pass's sums (rounds_needed) are 0, as on the CPU
        self.sums = cuda.to_device(np.zeros(max(1, module.REDUCTIONS), self.dtype), stream=stream)
        # per-channel sums: one row each, one column per channel, then the count and size
        channel_sums = module.REDUCE_KINDS.count("channel")
        self.channels = ()
        if channel_sums:
            count, size = channels(self.shape)
            self.channels = (cuda.to_device(np.zeros((channel_sums, max(1, count)), self.dtype),
                                            stream=stream), count, size)

    @property
    def tensor_values(self) -> tuple:
        return (*self.values, *(float(self.sizes[name]) for name in self.module.SHAPE_VALUES))

    def reduce_round(self, k: int, force: bool = False) -> tuple:
        """The k-th pass's sums (an empty tensor's are 0), on the device; on the host too
        where they are needed there (else zeros stand in; a per-channel sum, which the host
        never reads, is None). A pass no later value reads here is skipped unless ``force``
        (its sums stay 0)."""
        from numba import cuda

        count = self.module.REDUCE_ROUNDS[k]
        start = len(self.values)
        kinds = round_kinds(self.module, k)
        if self.n == 0 or not (self.needed[k] or force):
            return tuple(None if kind == "channel" else 0.0 for kind in kinds)
        name, channel_name = (("reduce", "reduce_channels") if k == 0
                              else (f"reduce_{k}", f"reduce_channels_{k}"))
        args = (*self.arrays, *self.axes, *self.host, *self.tensor, self.sums, *self.channels)
        per_tensor = sum(kind != "channel" for kind in kinds)
        if per_tensor:
            blocks = -(-self.n // self.module.REDUCE_BLOCK)
            partials = cuda.device_array((blocks, per_tensor), np.float64, stream=self.stream)
            self.kernels[name][blocks, self.module.CUDA_THREADS, self.stream](*args, partials)
            self.kernels[f"{name}_total"][1, 1, self.stream](partials, self.sums)
        if per_tensor < count:
            # one CUDA block per channel (grid-stride beyond 65,535; two under the
            # simulator, where every block is a round of Python threads)
            grid = max(1, min(self.channels[1], 2 if simulated() else 65535))
            self.kernels[channel_name][grid, self.module.CUDA_THREADS, self.stream](*args)
        if not self.on_host:
            return tuple(None if kind == "channel" else 0.0 for kind in kinds)
        totals = self.sums[start:start + count].copy_to_host(stream=self.stream)
        _synchronize(self.stream)
        return tuple(None if kind == "channel" else float(total)
                     for total, kind in zip(totals, kinds))

    def add_sums(self, sums: tuple) -> None:
        """Record the pass's sums; the group's totals go to the device for the passes after."""
        start = len(self.values)
        self.values += list(sums)
        count = len(sums)
        flags = self.module.GROUP_REDUCTIONS[start:start + count]
        if self.n and any(flags):
            self.sums[start:start + count].copy_to_device(
                np.array([0.0 if s is None else s for s in sums], dtype=self.dtype),
                stream=self.stream)

    def finish(self) -> None:
        if self.n == 0:
            return
        mats = _matrix_stage(self.module, self.kernels, self.arrays + self.axes, self.host,
                             self.dtype, self.shape, self.stream)
        blocks, threads = _grid(self.n)
        self.kernels["step"][blocks, threads, self.stream](
            *self.arrays, *self.axes, *mats, *self.host, *self.tensor, self.sums,
            *self.channels)


def _axis_stage(module, arrays, host, dtype, shape, axis_states, stream) -> list:
    """Adafactor's factored stage, on the host: the arrays it reads come over, its states and
    the broadcast values go back."""
    from numba import cuda

    if not module.AXIS_ARRAYS:
        return []
    if not axis_states:
        return [cuda.device_array(0, dtype, stream=stream) for _ in module.AXIS_ARRAYS]
    n = arrays[0].shape[0]
    on_host = [a.copy_to_host(stream=stream).reshape(shape) if a.shape[0] == n
               else np.empty(0, dtype) for a in arrays]
    states = [s.copy_to_host(stream=stream) for s in axis_states]
    _synchronize(stream)  # the copies may be asynchronous: wait before NumPy reads them
    values = module.axis_stage(*on_host, *states, *host)
    for device, updated in zip(axis_states, states):
        device.copy_to_device(updated, stream=stream)
    return [cuda.to_device(np.ascontiguousarray(np.broadcast_to(v, shape), dtype=dtype)
                           .reshape(-1), stream=stream) for v in values]


def _matrix_stage(module, kernels, arrays, host, dtype, shape, stream) -> list:
    """Muon's Newton-Schulz, on the host: its argument is prepared on the device, iterated with
    NumPy matmuls in the parameter's dtype, and the result copied back."""
    from numba import cuda

    if not module.MATRIX_OPS:
        return []
    n = arrays[0].shape[0]
    scratch = [cuda.device_array(n, dtype, stream=stream) for _ in module.MATRIX_OPS]
    blocks, threads = _grid(n)
    kernels["prepare"][blocks, threads, stream](*arrays, *scratch, *host)
    matrix_shape = shape if len(shape) == 2 else (1, n)
    out = []
    for (kind, _, host_indices), values in zip(module.MATRIX_OPS, scratch):
        arguments = [float(host[i]) for i in host_indices]
        on_host = values.copy_to_host(stream=stream)
        _synchronize(stream)
        result = OPERATIONS[kind](on_host.reshape(matrix_shape), *arguments)
        out.append(cuda.to_device(np.ascontiguousarray(result, dtype=dtype).reshape(-1),
                                  stream=stream))
    return out


def _synchronize(stream) -> None:
    """Wait for ``stream`` (0: the default stream) to finish its work."""
    from numba import cuda

    if stream == 0:
        cuda.synchronize()
    else:
        stream.synchronize()


class CudaTable:
    """Tensors of one dtype on one GPU that share their host scalars, stepped by one
    ``step_many`` launch: their addresses and work rows live on the device."""

    def __init__(self, module: ModuleType, dtype: np.dtype, shapes: list[tuple[int, ...]],
                 addresses: np.ndarray, stream=0):
        from numba import cuda

        self.module = module
        self.kernel = module.cuda_kernels()["step_many"]
        self.dtype = np.dtype(dtype)
        sizes = np.array([int(np.prod(s, dtype=np.int64)) for s in shapes], dtype=np.int64)
        work = work_list(sizes, CHUNK)
        self.blocks = max(1, len(work))
        self.work = cuda.to_device(work.reshape(-1, 3), stream=stream)
        self.host_addresses = np.ascontiguousarray(addresses, dtype=np.int64)
        self.addresses = cuda.to_device(self.host_addresses, stream=stream)
        tensor = np.zeros((len(shapes), len(module.SHAPE_VALUES)), self.dtype)
        for k, shape in enumerate(shapes):
            values = shape_values(tuple(shape))
            tensor[k] = [values[name] for name in module.SHAPE_VALUES]
        self.tensor = cuda.to_device(tensor if tensor.size else np.zeros((1, 1), self.dtype),
                                     stream=stream)
        self.like = cuda.device_array(0, self.dtype)
        self.empty = len(work) == 0

    def set_addresses(self, addresses: np.ndarray, stream=0) -> None:
        """New addresses for every array of every tensor (same shapes)."""
        self.host_addresses[...] = addresses
        self.addresses.copy_to_device(self.host_addresses, stream=stream)

    def set_column(self, column: int, addresses, stream=0) -> None:
        """New addresses for one array of every tensor (new gradient tensors): the table is
        uploaded again (host to device, a few bytes a tensor; nothing comes back)."""
        self.host_addresses[:, column] = addresses
        self.addresses.copy_to_device(self.host_addresses, stream=stream)

    def run(self, host: tuple, stream=0) -> None:
        if self.empty:
            return
        self.kernel[min(self.blocks, 65535), THREADS, stream](
            self.addresses, self.work, self.like, self.dtype.itemsize, *host, self.tensor)
