"""Time `optgen verify` over the whole catalogue, the way a user runs it (a fresh process).

    python benchmarks/verify_catalogue.py [--repeat 3]

Goal: under 60 s on the project's 2-core machine. Prints each run's wall time, the per-claim
statuses' totals, and the slowest claims (from the JSON report).
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "optgen.cli", "verify", "--json"],
                                capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            sys.exit(f"optgen verify failed:\n{result.stderr}")
    report = json.loads(result.stdout)
    rows = [claim for spec in report["specs"] for claim in spec["claims"]]
    counts = collections.Counter(r["status"] for r in rows)
    specs = len(report["specs"])
    print(f"optgen verify over {specs} specs, {len(rows)} claims: "
          + ", ".join(f"{counts[s]} {s}" for s in ("proved", "refuted", "unknown")))
    print("wall time per run (s): " + ", ".join(f"{t:.1f}" for t in times)
          + f"; best {min(times):.1f} s (goal < 60 s)")


if __name__ == "__main__":
    main()
