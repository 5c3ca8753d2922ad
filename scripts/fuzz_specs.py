"""Fuzz the compiler with random specs drawn from the language (tests/spec_strategies.py) and
check issue 11's invariant on each (tests/spec_oracle.py): what ``optgen check`` accepts builds
and steps on 0-d to 3-D params with the numpy and cpu backends agreeing; the rest is refused
with a located error.

    python scripts/fuzz_specs.py [--examples N] [--seed S] [--failures DIR] [--check-only]
                                 [--mistakes FRACTION] [--cuda N] [--torch]

Prints how many specs were tried, accepted, refused with located errors, and failed; each
failure's spec text and what went wrong are saved under ``--failures`` (default
``fuzz-failures/``), one ``.opt`` file and one ``.txt`` file each. Exits 1 when any failed.
``--cuda N`` also runs the first N accepted optimizer specs with the cuda backend against
numpy, in Numba's CUDA simulator where there is no GPU (about a second each); ``--torch``
steps every accepted optimizer spec through ``optgen.torch`` too, against the NumPy front end.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import json
import subprocess
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

import spec_oracle  # noqa: E402
from spec_strategies import specs  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--failures", type=Path, default=Path("fuzz-failures"))
    parser.add_argument("--check-only", action="store_true",
                        help="run check only (no builds): refusals must still be located")
    parser.add_argument("--mistakes", type=float, default=0.2,
                        help="share of specs with a mistake put in on purpose")
    parser.add_argument("--cuda", type=int, default=0, metavar="N",
                        help="run N accepted optimizer specs on the cuda backend too")
    parser.add_argument("--torch", action="store_true",
                        help="also step every accepted optimizer spec through optgen.torch")
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")  # Numba's performance hints, NumPy's inf/nan warnings

    work = Path(tempfile.mkdtemp(prefix="optgen-fuzz-"))
    os.environ["OPTGEN_CACHE_DIR"] = str(work / "cache")
    counts = collections.Counter()
    kinds = collections.Counter()
    failures: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    for_cuda = []
    started = time.perf_counter()

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, database=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    def one(spec):
        if spec.text in seen:
            counts["repeated"] += 1
            return
        seen.add(spec.text)
        counts["tried"] += 1
        folder = work / f"spec{counts['tried']}"
        try:
            if args.check_only:
                outcome = _check_only(spec, folder)
            else:
                outcome = spec_oracle.run(spec, folder)
                if args.torch:
                    spec_oracle.run_torch(spec, folder)
        except spec_oracle.Violation as violation:
            counts["failed"] += 1
            failures.append((spec.text, violation.stage, violation.detail))
            return
        counts[outcome] += 1
        kinds[(outcome, "mistake" if spec.mistake else "well-formed")] += 1
        if outcome != "refused" and spec.kind != "schedule" and len(for_cuda) < args.cuda:
            for_cuda.append(spec)
        if counts["tried"] % 100 == 0:
            print(f"  {counts['tried']} tried, {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)

    given(specs(args.mistakes))(one)()
    elapsed = time.perf_counter() - started
    if for_cuda:
        cuda_started = time.perf_counter()
        for spec, result in zip(for_cuda, _cuda(for_cuda, work)):
            if result["outcome"] == "violation":
                counts["cuda failed"] += 1
                failures.append((spec.text, result["stage"], result["detail"]))
        print(f"cuda backend against numpy: {len(for_cuda)} accepted specs, "
              f"{counts['cuda failed']} failures ({time.perf_counter() - cuda_started:.0f} s)")

    print(f"tried {counts['tried']} specs in {elapsed:.0f} s "
          f"({counts['repeated']} repeated draws skipped)")
    print(f"  accepted (built and stepped, numpy == cpu): "
          f"{counts['accepted'] + counts['sensitive']}"
          + (" [check only]" if args.check_only else
             f" ({counts['sensitive']} of them only within their own sensitivity to rounding)"))
    print(f"  refused with a located error:               {counts['refused']}")
    print(f"  failures:                                   {counts['failed']}")
    for (outcome, kind), count in sorted(kinds.items()):
        print(f"    {outcome:9} {kind:12} {count}")
    if failures:
        args.failures.mkdir(parents=True, exist_ok=True)
        by_stage = collections.Counter(stage for _, stage, _ in failures)
        print("  failures by stage: " + ", ".join(f"{s} {c}" for s, c in by_stage.items()))
        for k, (text, stage, detail) in enumerate(failures):
            (args.failures / f"failure{k}.opt").write_text(text)
            (args.failures / f"failure{k}.txt").write_text(f"{stage}\n{detail}\n")
            last = detail.strip().splitlines()[-1] if detail.strip() else ""
            print(f"  {args.failures / f'failure{k}.opt'}: {stage}: {last[:160]}")
    return 1 if failures else 0


def _cuda(specs_, work: Path) -> list[dict]:
    """spec_oracle.run_cuda on each spec, in a subprocess (the CUDA simulator is chosen when
    numba.cuda is first imported)."""
    specs_file, out_file = work / "cuda_specs.json", work / "cuda_out.json"
    specs_file.write_text(json.dumps([asdict(spec) for spec in specs_]))
    env = dict(os.environ)
    env.setdefault("NUMBA_ENABLE_CUDASIM", "1")
    env.setdefault("PYTHONWARNINGS", "ignore")
    oracle = Path(__file__).resolve().parent.parent / "tests" / "spec_oracle.py"
    run = subprocess.run([sys.executable, str(oracle), "--cuda", str(specs_file),
                          str(out_file)], env=env)
    if run.returncode != 0:
        return [{"outcome": "violation", "stage": "cuda run",
                 "detail": f"exit status {run.returncode}"}] * len(specs_)
    return json.loads(out_file.read_text())


def _check_only(spec, folder: Path) -> str:
    from optgen.compiler.errors import SpecError
    from optgen.compiler.pipeline import check_file
    import traceback

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "fz.opt"
    path.write_text(spec.text)
    try:
        check_file(path)
    except SpecError as error:
        spec_oracle.check_located(error, spec.text, path)
        return "refused"
    except Exception:  # noqa: BLE001
        raise spec_oracle.Violation("check", traceback.format_exc()) from None
    return "accepted"


if __name__ == "__main__":
    sys.exit(main())
