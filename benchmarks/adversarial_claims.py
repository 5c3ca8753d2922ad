"""Score ``optgen verify`` on the adversarial claim set (tests/adversarial): counts of false
claims proved / refuted / unknown and true claims proved / refuted / unknown, errors, and the
time. ``--list`` also prints every claim that is not settled the way its truth says.

    python benchmarks/adversarial_claims.py [--list] [--budget WORK]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections import Counter
from pathlib import Path

from optgen.compiler.verify import verify_file

FOLDER = Path(__file__).resolve().parent.parent / "tests" / "adversarial"


def load_truth():
    name = "optgen_adversarial_truth"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FOLDER / "truth.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="list the claims not settled right")
    parser.add_argument("--budget", type=int, default=None,
                        help="symbolic work per claim (default: verify_file's own)")
    args = parser.parse_args()
    truth = load_truth()
    counts: Counter = Counter()
    off = []
    start = time.perf_counter()
    for path in truth.spec_files():
        began = time.perf_counter()
        options = {} if args.budget is None else {"budget": args.budget}
        report = verify_file(path, own_only=True, **options)
        print(f"{path.name:22s} {len(report.results):3d} claims  "
              f"{time.perf_counter() - began:6.1f} s", flush=True)
        for r in report.results:
            c = truth.BY_KEY[(path.name, r.id)]
            counts[(c.truth, r.status)] += 1
            if r.status != ("proved" if c.truth else "refuted"):
                off.append((c, r))
    elapsed = time.perf_counter() - start
    n_true = sum(v for (t, _), v in counts.items() if t)
    n_false = sum(v for (t, _), v in counts.items() if not t)
    print()
    print(f"false claims ({n_false}): proved {counts[(False, 'proved')]}  "
          f"refuted {counts[(False, 'refuted')]}  unknown {counts[(False, 'unknown')]}  "
          f"error {counts[(False, 'error')]}")
    print(f"true claims  ({n_true}): proved {counts[(True, 'proved')]}  "
          f"refuted {counts[(True, 'refuted')]}  unknown {counts[(True, 'unknown')]}  "
          f"error {counts[(True, 'error')]}")
    print(f"true proved: {counts[(True, 'proved')] / max(n_true, 1):.1%}   time: {elapsed:.1f} s")
    if args.list:
        print()
        order = {("False", "proved"): 0, ("True", "refuted"): 1}
        off.sort(key=lambda cr: (order.get((str(cr[0].truth), cr[1].status), 2), cr[1].status,
                                 cr[0].spec, cr[0].id))
        for c, r in off:
            detail = " ".join(r.detail.split())
            print(f"{'true' if c.truth else 'FALSE':5s} {r.status:8s} {c.spec}:{c.id}: "
                  f"{detail[:200]}")
    unsound = counts[(False, "proved")] + counts[(True, "refuted")]
    return 1 if unsound else 0


if __name__ == "__main__":
    raise SystemExit(main())
