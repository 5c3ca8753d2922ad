"""Running optgen.torch's many-tensor kernels on torch's own OpenMP threads.

After each parallel operation torch's intra-op workers (libgomp, at its default wait policy)
spin on their cores for milliseconds, waiting for more work; a training step starts right
after backward, so Numba's TBB workers find those cores taken, and a step ran at one
thread's speed while torch's fused optimizers ran on the waiting team (measured:
benchmarks/torch_spin.py). So where torch runs on libgomp, optgen.torch hands the work to
that same team: ``GOMP_parallel`` of the libgomp torch loaded runs a generated ``*_team``
function (a Numba ``cfunc``) on each of torch's threads, and each takes the next piece of the
table from an atomic counter until none is left. The pieces are the parallel loop's, so the
results are the same bits as on Numba's pool; work below ``threads.SERIAL_BELOW`` stays on the
calling thread.

``team()`` is None where torch is not imported, or does not run on the libgomp it ships (a
build on another OpenMP runtime), or ``OPTGEN_TORCH_TEAM=0`` asks for Numba's pool.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading

import numpy as np

_lock = threading.Lock()
_team = None
_looked = False

#: What the team functions read from their int64 block (``TEAM_BLOCK`` in generated modules).
_COUNTER, _ADDRESSES, _WORK, _PIECES, _ITEMSIZE, _HOST, _OUT = 0, 1, 4, 6, 8, 9, 11


def team():
    """``GOMP_parallel`` of torch's libgomp as a ctypes function, or None."""
    global _team, _looked
    if _looked:
        return _team
    with _lock:
        if not _looked:
            _team = _find()
            _looked = True
    return _team


def _find():
    if os.environ.get("OPTGEN_TORCH_TEAM", "1") == "0":
        return None
    torch = sys.modules.get("torch")
    if torch is None or not getattr(torch._C, "has_openmp", False):
        return None
    path = os.path.join(os.path.dirname(torch.__file__), "lib", "libgomp.so.1")
    if not os.path.exists(path):
        return None
    loaded = _loaded_libraries()
    if loaded is not None and os.path.realpath(path) not in loaded:
        return None  # torch runs on another copy of libgomp than the one it ships
    try:
        library = ctypes.CDLL(path)
        parallel = library.GOMP_parallel
    except (OSError, AttributeError):
        return None
    parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
    parallel.restype = None
    return parallel


def _loaded_libraries() -> set[str] | None:
    """The real paths of the shared libraries this process has mapped (None: unknown)."""
    try:
        with open(f"/proc/{os.getpid()}/maps") as maps:
            return {os.path.realpath(line.split()[-1]) for line in maps
                    if line.rstrip().endswith(".so") or ".so." in line}
    except OSError:
        return None


def team_function(module, kernel: str):
    """The generated ``_<kernel>_team`` of ``module`` compiled as a C callback (once per
    process and module; Numba's disk cache, guarded like the module's other kernels, keeps it
    between processes)."""
    compiled = module.__dict__.setdefault("_team_functions", {})
    function = compiled.get(kernel)
    if function is None:
        with _lock:
            function = compiled.get(kernel)
            if function is None:
                function = compiled[kernel] = _compile(getattr(module, f"_{kernel}_team"))
    return function


def _compile(pyfunc):
    from numba import types
    from numba.core.ccallback import CFunc

    from .loader import guard_numba_cache

    function = CFunc(pyfunc, ((types.CPointer(types.int64),), types.void), locals={},
                     options={"nogil": True, "error_model": "numpy"})
    function.enable_caching()
    guard_numba_cache(function)
    function.compile()
    return function


class TeamCall:
    """The int64 block a table's team function reads: the counter, then the addresses and
    sizes of its arguments. Built once per table; the host scalars' array is new each step."""

    def __init__(self, length: int, addresses: np.ndarray, work: np.ndarray,
                 pieces: np.ndarray, itemsize: int, out: np.ndarray):
        self.keep = (addresses, work, pieces, out)  # alive as long as the block points at them
        self.block = np.zeros(length, dtype=np.int64)  # the module's TEAM_BLOCK
        self.block[_ADDRESSES:_ADDRESSES + 3] = (addresses.ctypes.data, *addresses.shape)
        self.block[_WORK:_WORK + 2] = (work.ctypes.data, work.shape[0])
        self.block[_PIECES:_PIECES + 2] = (pieces.ctypes.data, pieces.shape[0])
        self.block[_ITEMSIZE] = itemsize
        self.block[_OUT:_OUT + 3] = (out.ctypes.data, *out.shape)

    def run(self, parallel, function, host: np.ndarray, threads: int) -> None:
        block = self.block
        block[_COUNTER] = 0
        block[_HOST:_HOST + 2] = (host.ctypes.data, host.shape[0])
        parallel(function.address, block.ctypes.data, threads, 0)
