"""Numba's BLAS probe, answered without importing ``scipy.linalg``.

The first time Numba's CPU target compiles a function or loads one from its cache, it imports
``numba.np.arraymath`` (``CPUContext.load_additional_registries``), and that module decides at
import whether ``np.correlate``/``np.convolve`` may call BLAS: ``_HAVE_BLAS = _check_blas()``,
which calls ``numba.np.linalg.ensure_blas()``, which does ``import scipy.linalg.cython_blas``.
That imports all of ``scipy.linalg`` — with SciPy 1.17 and NumPy 2.4 also ``numpy.f2py`` and
``numpy.testing``, through SciPy's array-API layer — about 0.1 s, near half of a warm-cache
first step. optgen's kernels call no BLAS, so nothing of SciPy is needed to run them.

:func:`import_arraymath` imports ``numba.np.arraymath`` first, while ``ensure_blas`` answers
from the file system: if ``scipy/linalg/cython_blas`` is found on ``sys.path`` (found, not
imported), it runs only Numba's own check that SciPy's BLAS integer width matches Numba's
(``_check_lapack_int_width``; it reads ``scipy.__config__``, and ``import numba`` has imported
SciPy's top package already, for its version check); if it is not found, Numba's own
``ensure_blas`` runs. Then ``ensure_blas`` is put back, so every later call (Numba typing
``np.dot`` or ``np.linalg.*``) imports SciPy as before. ``_HAVE_BLAS`` comes out as Numba
computes it, except with a SciPy whose ``cython_blas`` is on disk but fails to import: Numba
would say False, this says True (such a SciPy breaks ``np.dot`` in Numba either way).

This replaces a module attribute of Numba's for the duration of one import. It is guarded: it
does nothing when ``numba.np.arraymath`` or ``scipy.linalg`` is already imported, or when
``numba.np.linalg`` has no ``ensure_blas``; any error inside is swallowed, and Numba's CPU
target then imports ``numba.np.arraymath`` its own way, as it does without optgen. Checked
against Numba 0.68.1 (``tests/test_startup.py``).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys

__all__ = ["import_arraymath", "scipy_blas_found"]


def scipy_blas_found() -> bool:
    """Whether ``scipy.linalg.cython_blas`` is on ``sys.path``, found without importing any
    of SciPy (``PathFinder`` given the package folders looks only at the files)."""
    try:
        scipy = importlib.util.find_spec("scipy")  # a top-level name: nothing is imported
        if scipy is None or not scipy.submodule_search_locations:
            return False
        linalg = importlib.machinery.PathFinder.find_spec(
            "scipy.linalg", scipy.submodule_search_locations)
        if linalg is None or not linalg.submodule_search_locations:
            return False
        return importlib.machinery.PathFinder.find_spec(
            "scipy.linalg.cython_blas", linalg.submodule_search_locations) is not None
    except (ImportError, ValueError):
        return False


def import_arraymath() -> bool:
    """Import ``numba.np.arraymath`` without importing ``scipy.linalg`` where SciPy's BLAS is
    found on disk. True when this did the import, False when it left it to Numba."""
    if "numba.np.arraymath" in sys.modules or "scipy.linalg" in sys.modules:
        return False
    try:
        linalg = importlib.import_module("numba.np.linalg")
    except ImportError:
        return False
    ensure_blas = getattr(linalg, "ensure_blas", None)
    if not callable(ensure_blas):
        return False
    check_width = getattr(linalg, "_check_lapack_int_width", None)

    def ensure_blas_found_on_disk():
        if not scipy_blas_found():
            return ensure_blas()  # Numba's own: tries the import
        if callable(check_width):
            check_width()

    linalg.ensure_blas = ensure_blas_found_on_disk
    try:
        arraymath = importlib.import_module("numba.np.arraymath")
    except Exception:  # noqa: BLE001 - Numba will import it again, its own way, and say why
        return False
    finally:
        linalg.ensure_blas = ensure_blas
    if getattr(arraymath, "ensure_blas", None) is ensure_blas_found_on_disk:
        arraymath.ensure_blas = ensure_blas
    return True
