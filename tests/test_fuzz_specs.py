"""Issue 11, section 6, shown by a grammar-driven fuzzer: every spec ``optgen check`` accepts
builds, imports and steps on 0-d, 1-D, 2-D and 3-D params on every backend, numpy and cpu
agreeing (float64, rtol 1e-10 of each array's scale, NaN and infinity at the same places);
everything else is a located error at check time, never a traceback of another kind.

Specs are drawn from the language by ``spec_strategies.py`` and judged by ``spec_oracle.py``
(three steps, one param skipped at the second; the defaults, then the flags negated and the
choices changed; a difference is excused only where the reference itself moves as far when
its sums add in another order or its inputs change in the 13th digit). Deterministic
(``derandomize``: the same specs on every run). Numba's compilation of each accepted spec is
the cost (half a second to a second on two cores), so most examples run check only and a
subset builds and steps; a dozen run the CUDA kernels in Numba's simulator, in a subprocess.
The whole file: about 100 s. ``scripts/fuzz_specs.py`` runs thousands.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import spec_oracle
from spec_strategies import specs, well_formed

# Drawn specs compute with infinities and NaNs, and some of their kernels have nothing Numba
# can run in parallel: neither is what these tests look at.
pytestmark = [pytest.mark.filterwarnings("ignore::numba.core.errors.NumbaPerformanceWarning"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

SETTINGS = dict(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
CHECKED = 1000  # check only: refusals are located, nothing else escapes
BUILT = 60      # checked, and the accepted ones built and stepped with numpy and cpu
SIMULATED = 12  # accepted specs run with the cuda backend in the simulator


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A cache folder of this module's own (cold: every accepted spec is compiled here)."""
    root = tmp_path_factory.mktemp("fuzz")
    saved = os.environ.get("OPTGEN_CACHE_DIR")
    os.environ["OPTGEN_CACHE_DIR"] = str(root / "cache")
    yield root
    if saved is None:
        os.environ.pop("OPTGEN_CACHE_DIR", None)
    else:
        os.environ["OPTGEN_CACHE_DIR"] = saved


def _folder(work: Path, prefix: str) -> Path:
    count = len(list(work.glob(f"{prefix}*")))
    return work / f"{prefix}{count}"


def test_check_refuses_only_with_located_errors(work):
    outcomes = []

    @settings(max_examples=CHECKED, **SETTINGS)
    @given(specs(mistakes=0.3))
    def check_only(spec):
        outcomes.append(spec_oracle.run(spec, _folder(work, "check"), backends=()))

    check_only()
    # the draws reach both sides of the invariant
    assert outcomes.count("accepted") > CHECKED // 4, outcomes.count("accepted")
    assert outcomes.count("refused") > CHECKED // 10, outcomes.count("refused")


def test_accepted_specs_build_and_step_alike_on_numpy_and_cpu(work):
    outcomes = []

    @settings(max_examples=BUILT, **SETTINGS)
    @given(specs(mistakes=0.05))
    def build_and_step(spec):
        outcomes.append(spec_oracle.run(spec, _folder(work, "build")))

    build_and_step()
    accepted = len(outcomes) - outcomes.count("refused")  # "sensitive" ones too
    assert accepted > BUILT // 3, outcomes


def _cuda_available() -> bool:
    """numba-cuda is installed (looked up, not imported: the subprocess picks the simulator)."""
    import importlib.util

    return importlib.util.find_spec("numba.cuda") is not None


@pytest.mark.skipif(not _cuda_available(), reason="numba-cuda is not installed")
def test_accepted_specs_step_alike_on_the_simulated_cuda_backend(work):
    """A few accepted optimizer specs on the cuda backend, in Numba's CUDA simulator (a
    subprocess: the simulator is chosen when numba.cuda is first imported), against numpy."""
    drawn = []

    @settings(max_examples=30, **SETTINGS)
    @given(well_formed().filter(lambda spec: spec.kind != "schedule"))
    def collect(spec):
        if len(drawn) < SIMULATED and spec_oracle.run(
                spec, _folder(work, "cuda"), backends=()) != "refused":
            drawn.append(spec)

    collect()
    assert len(drawn) == SIMULATED
    specs_file, out_file = work / "cuda_specs.json", work / "cuda_out.json"
    specs_file.write_text(json.dumps([asdict(spec) for spec in drawn]))
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    run = subprocess.run([sys.executable, str(Path(__file__).parent / "spec_oracle.py"),
                          "--cuda", str(specs_file), str(out_file)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for spec, result in zip(drawn, json.loads(out_file.read_text())):
        assert result["outcome"] in ("accepted", "sensitive"), f"{spec.text}\n{result}"
