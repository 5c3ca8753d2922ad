"""Bounded work for any spec: the worst cases either build and step, or are refused by
``optgen check`` with a located error (``file:line:col``, the line, a caret) — never a
traceback, a hang or SymPy filling the memory.

The limits (compiler/bounds.py, README's language section) are sizes, not timeouts: expression
depth 100 (written, or with what it reads substituted), 5,000 operations per substituted
expression, numbers below 10^300 (numerator and denominator, bounded from the literals up),
1,000 statements, 256 hyperparameters, 32 per-element states and inputs. Everything that could
hang runs in a subprocess with a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from optgen.compiler.errors import SpecError
from optgen.compiler.pipeline import check_file


def _spec(update: str, head: str = "") -> str:
    return ("optimizer bounded\nhyper lr = 0.1\nhyper beta = 0.9\nstate m = 0\n" + head
            + "update:\n" + update + "\n  p = p - lr * m\n")


def _lines(line: str, count: int) -> str:
    return "\n".join(line.format(k=k) for k in range(count))


REFUSED = {
    "huge-power": (_spec("  m = m * 2^10^10 + g"), "more than 300 digits"),
    "huge-power-of-ten": (_spec("  m = g * 10^10^10"), "more than 300 digits"),
    "power-tower": (_spec("  m = g * 2^2^2^2^2"), "more than 300 digits"),
    "power-of-a-coefficient": (_spec("  m = (2 * g)^(10^10)"), "more than 300 digits"),
    "power-of-a-power": (_spec("  m = ((3 * g)^100)^100"), "more than 300 digits"),
    "exp-of-log": (_spec("  m = g * exp(10^10 * log(2))"), "more than 300 digits"),
    "huge-literal": (_spec("  m = g * " + "9" * 100_000), "more than 300 digits"),
    "huge-exponent-literal": (_spec("  m = g * 1e1234567890123"), "more than 300 digits"),
    "tiny-literal": (_spec("  m = g * 1e-400"), "more than 300 digits"),
    "huge-default": ("optimizer bounded\nhyper lr = " + "9" * 5000 + "\nupdate:\n  p = p - lr*g\n",
                     "at most 300 characters"),
    "huge-require": (_spec("  m = g", head="require lr < 10^10^10, \"no\"\n"),
                     "more than 300 digits"),
    "huge-state-init": (_spec("  m = g").replace("state m = 0", "state m = 7^7^7"),
                        "more than 300 digits"),
    "huge-claim": (_spec("  m = g") + "claim big: at lr = 10^10^10: p_new == p\n",
                   "more than 300 digits"),
    "products-of-large-numbers": (_spec(_lines("  m = 10^200 * m + g", 2)), "more than 300"),
    "long-chain": (_spec(_lines("  m = beta * m + g", 20_000)), "20001 statements"),
    "nested-chain": (_spec(_lines("  m = beta * m + g", 60)), "nests 101 operations deep"),
    "wide-sum": (_spec("  m = " + " + ".join(f"g*{k}" for k in range(600))),
                 "nests 101 operations deep"),
    "deep-negation": (_spec("  m = " + "-" * 2000 + "g"), "nests 101 operations deep"),
    "deep-calls": (_spec("  m = " + "abs(" * 500 + "g" + ")" * 500), "nests 101 operations deep"),
    "doubling-tree": (_spec(_lines("  m = g > 0 ? m * beta : m + 1", 40)), "operations"),
    "many-statements": (_spec(_lines("  x{k} = g", 1001)), "1002 statements"),
    "many-hypers": (_spec("  m = g", head="".join(f"hyper h{k} = 1\n" for k in range(300))),
                    "hyperparameters; the limit is 256"),
    "many-states": (_spec("  m = g", head="".join(f"state s{k} = 0\n" for k in range(40))),
                    "per-element states and inputs; the limit is 32"),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_check_refuses_with_a_located_error(tmp_path, name):
    text, message = REFUSED[name]
    path = tmp_path / f"{name}.opt"
    path.write_text(text)
    run = subprocess.run([sys.executable, "-m", "optgen.cli", "check", str(path)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    first = run.stderr.splitlines()[0]
    assert first.startswith(f"{path}:") and first.split(":")[1].isdigit(), first
    assert message in run.stderr, run.stderr[:2000]
    assert "^" in run.stderr


# At the limits, or past what used to fail, and accepted: each builds and steps (one subprocess,
# a timeout; Numba compiles each spec's kernels once).
ACCEPTED = {
    "chain-at-the-depth-limit": _spec(_lines("  m = beta * m + g", 48)),
    "sum-at-the-depth-limit": _spec("  m = " + " + ".join(f"g*{k}" for k in range(97))),
    "deep-parentheses": _spec("  m = " + "(" * 2000 + "g" + ")" * 2000),
    "many-statements": _spec(_lines("  x{k} = g * {k}", 998) + "\n  m = x997"),
    "tree-near-the-size-limit": _spec(_lines("  m = g > 0 ? m * beta : m + 1", 9)),
    "large-exact-numbers": _spec("  m = g * 2^900 / 3^280"),
    "exp-of-a-small-log": _spec("  m = g * exp(2 * log(3))"),
    "huge-exponent-of-a-symbol": _spec("  m = abs(g)^(10^10) + g"),
    "many-states": _spec("  m = " + " + ".join(f"s{k}" for k in range(31)) + " + g\n"
                         + _lines("  s{k} = 0.5 * s{k} + g", 31),
                         head="".join(f"state s{k} = 0\n" for k in range(31))),
}

STEP = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    import optgen
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        start = time.perf_counter()
        p = np.full(5, 0.5)
        opt = optgen.optimizer(path, [p], backend="cpu")
        opt.step([np.linspace(-1, 1, 5)])
        q = np.full(5, 0.5)
        ref = optgen.optimizer(path, [q], backend="numpy")
        ref.step([np.linspace(-1, 1, 5)])
        out[name] = [p.tolist(), q.tolist(), time.perf_counter() - start]
    json.dump(out, sys.stdout)
''')


def test_accepted_worst_cases_build_and_step(tmp_path):
    paths = {}
    for name, text in ACCEPTED.items():
        path = tmp_path / f"{name}.opt"
        path.write_text(text)
        check_file(path)  # accepted ...
        paths[name] = str(path)
    env = {**os.environ, "OPTGEN_CACHE_DIR": str(tmp_path / "cache")}
    run = subprocess.run([sys.executable, "-c", STEP, json.dumps(paths)], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]  # ... so it builds and steps
    for name, (cpu, numpy, seconds) in json.loads(run.stdout).items():
        assert cpu == pytest.approx(numpy, rel=1e-12, nan_ok=True), name
        assert seconds < 120, (name, seconds)


def test_chain_result_against_a_reference(tmp_path):
    """The 48-statement chain is 48 steps of a recurrence: check its value (NumPy backend)."""
    import numpy as np
    import optgen

    path = tmp_path / "chain.opt"
    path.write_text(ACCEPTED["chain-at-the-depth-limit"])
    p = np.full(3, 0.5)
    opt = optgen.optimizer(path, [p], backend="numpy")
    g = np.array([1.0, -2.0, 0.25])
    opt.step([g])
    m = np.zeros(3)
    for _ in range(48):
        m = 0.9 * m + g
    np.testing.assert_allclose(p, 0.5 - 0.1 * m, rtol=1e-13)


def test_a_refused_spec_is_refused_by_build_too(tmp_path):
    path = tmp_path / "b.opt"
    path.write_text(REFUSED["huge-power"][0])
    with pytest.raises(SpecError, match="300 digits"):
        check_file(path)
    run = subprocess.run([sys.executable, "-m", "optgen.cli", "build", str(path), "--out",
                          str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "300 digits" in run.stderr and "Traceback" not in run.stderr
