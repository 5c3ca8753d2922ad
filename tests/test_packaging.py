"""The wheel installs one import package, optgen, with its grammar, templates and specs."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-w", str(out), "-q"], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {result.stderr[-500:]}")
    return zipfile.ZipFile(next(out.glob("optgen-*.whl")))


def test_only_optgen_at_the_top_of_site_packages(wheel):
    tops = {name.split("/")[0] for name in wheel.namelist()}
    assert tops == {"optgen", next(t for t in tops if t.endswith(".dist-info"))}


def test_wheel_carries_grammar_templates_specs_and_generated(wheel):
    names = set(wheel.namelist())
    for required in ["optgen/compiler/spec.lark", "optgen/compiler/templates/module.py.j2",
                     "optgen/compiler/templates/numba_cpu.py.j2", "optgen/specs/adam.opt",
                     "optgen/generated/adam.py", "optgen/runtime/frontend.py", "optgen/cli.py",
                     "optgen/files.py"]:
        assert required in names


def test_console_script(wheel):
    entry_points = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    assert "optgen = optgen.cli:main" in wheel.read(entry_points).decode()
