"""A deterministic budget for the verifier's symbolic work.

The unit of work is one SymPy expression built (a call of ``sympy.Basic.__new__``, which every
SymPy object goes through): simplification, limits, factoring and substitution all build
expressions as they go, so the count follows how much work a proof took — and it is the same
count on a fast machine, a slow one and a busy one, because nothing in it is a clock. (It can
differ by a percent or two between processes with different ``PYTHONHASHSEED``: SymPy walks some
sets in hash order. The default budget sits far from every catalogue claim's need.)

A claim over its budget raises :class:`OutOfWork` from inside SymPy, at the next expression
built, and every build after that raises again, so no ``except`` in SymPy can swallow it for
long. ``OutOfWork`` is a ``BaseException``, like ``KeyboardInterrupt``, for the same reason.

A second limit, in CPU seconds, is only a safety net for work that builds no expressions (the
polynomial algorithms work on plain lists): it is set far above what any counted budget takes,
so it decides nothing in practice, and it counts CPU time, not the wall clock, so a busy
machine does not spend it.
"""

from __future__ import annotations

import contextlib
import signal
import threading

from sympy.core.basic import Basic

#: Expressions a claim may build before it is reported unknown (``optgen verify --budget``).
#: The most expensive claim the catalogue proves builds about 110,000.
DEFAULT_WORK = 400_000
#: CPU seconds per claim after which it is unknown whatever the count (see the module doc).
SAFETY_SECONDS = 120.0


#: The largest integer power handed to SymPy's polynomial algorithms (factor, cancel,
#: simplify): they work on lists of coefficients and build no expressions, so the meter does not
#: see them, and factoring a degree-1000 polynomial takes minutes.
MAX_POLY_DEGREE = 64


def polynomial_work_bounded(expr) -> bool:
    """Whether ``expr`` is small enough for SymPy's polynomial algorithms: no number above
    :data:`MAX_POLY_DEGREE` anywhere in an exponent (``x^1000``, ``x^(s + 1000)``, which
    SymPy may split into ``x^s * x^1000``)."""
    from sympy import Pow, Rational, preorder_traversal

    for node in preorder_traversal(expr):
        if isinstance(node, Pow) and any(abs(number) > MAX_POLY_DEGREE
                                         for number in node.exp.atoms(Rational)):
            return False
    return True


class OutOfWork(BaseException):
    """The claim used its budget; ``kind`` says which: ``"work"`` or ``"time"``."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


class _Meter(threading.local):
    left: int | None = None   # expressions still allowed in this thread; None: not metering


_meter = _Meter()
_original = Basic.__dict__["__new__"]  # the staticmethod itself, restored as it was
_built = Basic.__new__


def _counting_new(cls, *args):
    left = _meter.left
    if left is not None:
        if left <= 0:
            raise OutOfWork("work")
        _meter.left = left - 1
    return _built(cls, *args)


_installed = 0
_install_lock = threading.Lock()


@contextlib.contextmanager
def _counting():
    """Route ``Basic.__new__`` through the meter while any budget is open (any thread)."""
    global _installed
    with _install_lock:
        if _installed == 0:
            Basic.__new__ = staticmethod(_counting_new)
        _installed += 1
    try:
        yield
    finally:
        with _install_lock:
            _installed -= 1
            if _installed == 0:
                Basic.__new__ = _original


_UNLIMITED = 2 ** 62


@contextlib.contextmanager
def work_budget(work: int | None, safety_seconds: float | None = SAFETY_SECONDS,
                count: list[int] | None = None):
    """Raise :class:`OutOfWork` inside the block once it has built ``work`` expressions (in
    this thread; None: no limit), or used ``safety_seconds`` of CPU time (main thread only;
    None: none). ``count[0]``, if given, gets the expressions built, however the block ends.
    Budgets do not nest: an inner one replaces the outer while it runs."""
    allowed = _UNLIMITED if work is None else work
    with contextlib.ExitStack() as stack:
        stack.enter_context(_counting())
        previous = _meter.left
        _meter.left = allowed

        def close():
            if count is not None:
                count[0] = allowed - _meter.left
            _meter.left = previous
        stack.callback(close)
        if safety_seconds:
            stack.enter_context(_cpu_limit(safety_seconds))
        yield


@contextlib.contextmanager
def _cpu_limit(seconds: float):
    """``ITIMER_PROF`` (user + system CPU time of this process; POSIX, main thread only)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise OutOfWork("time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
