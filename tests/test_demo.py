"""The main job (`optgen demo`) runs every catalogue optimizer and each one learns."""

from __future__ import annotations

from click.testing import CliRunner

import optgen
from optgen.cli import main
from optgen.demo import run_demo


def test_every_optimizer_lowers_the_loss():
    lines = []
    finals = run_demo(steps=60, echo=lines.append)
    assert set(finals) == set(optgen.available("optimizer"))
    for name, loss in finals.items():
        assert loss < 0.6, f"{name}: loss {loss} after 60 steps (log 2 = 0.693 at the start)"
    assert len(lines) == 2 + len(finals)


def test_demo_command_exits_cleanly():
    result = CliRunner().invoke(main, ["demo", "--steps", "3", "--backend", "numpy"])
    assert result.exit_code == 0, result.output
    assert "muon" in result.output and "adafactor" in result.output
