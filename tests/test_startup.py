"""Start-up: the NumPy front end's import and first step load no compiler (SymPy, Lark, Jinja)
and no ``scipy.linalg`` (runtime/blas_probe.py), and Numba's BLAS decision and its later BLAS
calls are what they are without optgen. Each case runs in a fresh interpreter: what a process
has imported is the thing under test."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

STEP = ("import numpy as np, optgen; p = np.zeros(10, np.float32); "
        "optgen.optimizer('adam', [p]).step([np.ones(10, np.float32)]); ")


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", "import json, sys; " + code],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def numba_own_have_blas(block_scipy: bool = False) -> bool:
    block = "sys.modules['scipy'] = None; " if block_scipy else ""
    return run(block + "import numba.np.arraymath as m; print(json.dumps(m._HAVE_BLAS))")


def test_first_step_imports_no_compiler_and_no_scipy_linalg():
    seen = run(STEP + "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} "
                      "& {'sympy', 'lark', 'jinja2'}) + ['scipy.linalg'] * "
                      "('scipy.linalg' in sys.modules)))")
    assert seen == []


def test_numba_decides_blas_as_it_would_alone():
    have = run(STEP + "import numba.np.arraymath as m, numba.np.linalg as l; "
                      "print(json.dumps([m._HAVE_BLAS, m.ensure_blas is l.ensure_blas, "
                      "l.ensure_blas.__module__]))")
    assert have == [numba_own_have_blas(), True, "numba.np.linalg"]


def test_without_scipy_numba_has_no_blas_as_before():
    have = run("sys.modules['scipy'] = None; " + STEP +
               "import numba.np.arraymath as m; print(json.dumps(m._HAVE_BLAS))")
    assert have is False
    assert numba_own_have_blas(block_scipy=True) is False


def test_blas_in_user_numba_code_after_optgen():
    """np.dot imports scipy.linalg when Numba types it, as without optgen; np.correlate takes
    the path ``_HAVE_BLAS`` chose. Same results as NumPy's (float64, sums of 4 and 3 terms:
    exact)."""
    pytest.importorskip("scipy.linalg")
    got = run(STEP + "import numba; "
              "dot = numba.njit(lambda a, b: np.dot(a, b)); "
              "corr = numba.njit(lambda a, b: np.correlate(a, b)); "
              "a = np.arange(4.0); b = np.arange(3.0); "
              "print(json.dumps([dot(a, a), np.dot(a, a), corr(a, b).tolist(), "
              "np.correlate(a, b).tolist(), 'scipy.linalg' in sys.modules]))")
    assert got[0] == got[1]
    assert got[2] == got[3]
    assert got[4] is True
