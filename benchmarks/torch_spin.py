"""What torch's spinning OpenMP workers cost optgen.torch's threads.

After every parallel torch operation, torch's OpenMP workers (libgomp, the default wait
policy) spin for milliseconds on their cores; optgen's kernels run on Numba's TBB pool, whose
workers then find those cores taken. This times, in one process and interleaved, a step of
``optgen.torch.SGD`` and of ``torch.optim.SGD(fused=True)`` (momentum 0.9, one 4096 x 4096
float32 tensor) with an in-place ``torch.add`` between them, at one and at two threads; then
the same in a process whose torch workers sleep at once (``OMP_WAIT_POLICY=PASSIVE``, read
when torch starts). Medians; read the ratios.

    python benchmarks/torch_spin.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from optgen.bench import interleaved_medians

N = 4096 * 4096


def measure(threads: int, rounds: int) -> dict[str, float]:
    import torch

    import optgen.torch as ot

    torch.set_num_threads(threads)

    def param():
        p = torch.randn(N, requires_grad=True)
        p.grad = torch.randn(N)
        return p

    ours = ot.SGD([param()], lr=0.01, momentum=0.9)
    theirs = torch.optim.SGD([param()], lr=0.01, momentum=0.9, fused=True)
    a, b = torch.randn(N), torch.randn(N)
    steps = {"optgen": ours.step, "torch fused": theirs.step,
             "add": lambda: torch.add(a, b, out=a)}
    return interleaved_medians(steps, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.rounds)))
        return
    print("| torch workers | threads | optgen ms | torch fused ms | add ms | optgen / torch |")
    print("|---|---:|---:|---:|---:|---:|")
    for policy in ("spin (default)", "PASSIVE"):
        env = dict(os.environ)
        if policy == "PASSIVE":
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        for threads in (1, 2):
            out = subprocess.run([sys.executable, __file__, "--child", str(threads),
                                  "--rounds", str(args.rounds)], env=env, check=True,
                                 capture_output=True, text=True).stdout
            got = json.loads(out.strip().splitlines()[-1])
            print(f"| {policy} | {threads} | {got['optgen']:.2f} | {got['torch fused']:.2f} "
                  f"| {got['add']:.2f} | {got['optgen'] / got['torch fused']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
