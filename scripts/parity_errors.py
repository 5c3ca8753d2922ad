"""The worst errors behind the differential tests' tolerances: every torch.optim case of
``tests/test_torch_parity.py`` (25 steps, the shared shapes, params and every state, the ``cpu``
backend), as the largest relative error over elements whose reference is at least 1e-6 in
magnitude, the largest absolute error over the rest, and the share of the asserted tolerance
used: max |got - want| / (atol + rtol |want|), at most 1 for a passing test.

    python scripts/parity_errors.py [NAMES ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_torch_parity import (CASES, HOST_SIDE_STATE, TOLERANCES, run_optgen,  # noqa: E402
                               run_torch)


def errors(got, want, rtol: float, atol: float) -> tuple[float, float, float]:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    diff = np.abs(got - want)
    big = np.abs(want) >= 1e-6
    relative = np.max(diff[big] / np.abs(want[big]), initial=0.0)
    absolute = np.max(diff[~big], initial=0.0)
    used = np.max(diff / (atol + rtol * np.abs(want)), initial=0.0)
    return float(relative), float(absolute), float(used)


def main() -> None:
    names = sys.argv[1:] or list(CASES)
    print("| optimizer | float64 rel | abs | tolerance used | float32 rel | abs | tolerance used |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in names:
        row = []
        for dtype in (np.float64, np.float32):
            worst = [0.0, 0.0, 0.0]
            tol = TOLERANCES[dtype]
            for hypers in CASES[name][1]:
                want_params, want_states = run_torch(name, hypers, dtype)
                got_params, got_states = run_optgen(name, hypers, dtype, "cpu")
                pairs = list(zip(got_params, want_params))
                for got, want in zip(got_states, want_states):
                    pairs += [(got[k], v) for k, v in want.items() if k != "step"
                              and v is not None and k not in HOST_SIDE_STATE.get(name, ())]
                for got, want in pairs:
                    found = errors(got, want, tol["rtol"], tol["atol"])
                    worst = [max(a, b) for a, b in zip(worst, found)]
            row += worst
        print(f"| {name} | " + " | ".join(f"{v:.1e}" if i % 3 < 2 else f"{v:.0%}"
                                           for i, v in enumerate(row)) + " |")


if __name__ == "__main__":
    main()
