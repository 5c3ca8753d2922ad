"""Every catalogue optimizer against torch.optim's fastest CPU path, on one 4096 x 4096 float32
tensor and on the 161 tensors of a ResNet-50: what ``optgen bench`` and ``optgen bench --many``
print, one after the other, plus the warm and cold start of a fresh process.

    python benchmarks/catalogue_cpu.py [--rounds 10] [NAMES ...]
"""

from __future__ import annotations

import argparse
import sys

from click.testing import CliRunner

from optgen.cli import main


def run(arguments: list[str]) -> None:
    result = CliRunner().invoke(main, arguments, catch_exceptions=False)
    sys.stdout.write(result.output)
    if result.exit_code:
        sys.exit(result.exit_code)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    common = [*args.names, "--rounds", str(args.rounds)]
    run(["bench", *common, "--startup"])
    print()
    run(["bench", *common, "--many"])
