"""How optgen's CPU kernels use threads.

Numba runs a ``prange`` loop on a pool of threads. Waking the pool costs microseconds, and
when another thread holds a core (torch's own pool, a data loader, another process) a
parallel call waits for a descheduled worker: a few small tensors can take milliseconds. So:

* a call whose work is below :data:`SERIAL_BELOW` elements runs on the calling thread alone
  (the kernels give the same bits with any thread count: element passes are independent and
  sums are added per fixed block, in order);
* larger calls use :func:`get_num_threads` threads: what :func:`set_num_threads` set, else,
  in ``optgen.torch``, ``torch.get_num_threads()`` (so optgen never runs more threads than
  torch was told to use), else every core Numba sees;
* the pool is Intel TBB's (the ``tbb`` package, a dependency on x86-64, which Numba prefers
  when it is installed): its scheduler steals work, so when a worker is descheduled the
  calling thread runs that worker's chunks itself instead of waiting for it, and idle workers
  sleep. (Measured here with the other core busy: Numba's OpenMP pool, with
  OMP_WAIT_POLICY=PASSIVE, made 1M-4M-element steps 2.6-17x slower with two threads than with
  one; TBB's two threads cost at most 1.03x one thread. OpenMP's default spinning policy was
  not measured.)

Numba's thread count is per calling thread; optgen sets it before each native call where it
differs from the last one set in that thread.
"""

from __future__ import annotations

import operator
import threading

#: Elements per native call below which it runs serially. Measured (benchmarks/threads.py,
#: AdamW fp32, 2 cores, TBB): two threads cost 1.33-1.44x one thread up to 16k elements, 1.04x
#: at 64k, 0.95x at 256k, 0.75x from 1M; with the other core busy, 0.84-1.03x throughout.
SERIAL_BELOW = 1 << 17

_requested: int | None = None
_last = threading.local()


def max_threads() -> int:
    """The most threads Numba's pool has (``NUMBA_NUM_THREADS``, default: the cores)."""
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def set_num_threads(n: int | None) -> None:
    """Use at most ``n`` threads in optgen's CPU kernels (None: back to the default, which
    follows ``torch.get_num_threads()`` in ``optgen.torch``)."""
    global _requested
    if n is None:
        _requested = None
        return
    if isinstance(n, bool):
        raise TypeError("n must be an int, got bool")
    try:
        n = operator.index(n)  # an int, or an integer type such as np.int64
    except TypeError:
        raise TypeError(f"n must be an int, got {type(n).__name__}") from None
    if not 1 <= n <= max_threads():
        raise ValueError(f"n must be between 1 and {max_threads()} (NUMBA_NUM_THREADS), got {n}")
    _requested = n


def get_num_threads(torch_threads: int | None = None) -> int:
    """Threads a large call uses: :func:`set_num_threads`'s, else ``torch_threads`` (capped by
    the pool), else the whole pool."""
    if _requested is not None:
        return _requested
    if torch_threads is not None:
        return max(1, min(int(torch_threads), max_threads()))
    return max_threads()


def use_threads(elements: int, torch_threads: int | None = None) -> int:
    """Set Numba's thread count for the next native call over ``elements`` elements; return
    it."""
    wanted = 1 if elements < SERIAL_BELOW else get_num_threads(torch_threads)
    if getattr(_last, "count", None) != wanted:
        import numba

        numba.set_num_threads(wanted)
        _last.count = wanted
    return wanted
