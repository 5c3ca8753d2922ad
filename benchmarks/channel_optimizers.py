"""optgen.torch's AdamP, SGDP and Ranger against pytorch-optimizer's (foreach=False and
foreach=True) on one 4096 x 4096 float32 tensor: each stepped past Ranger's rectification
threshold first, then timed interleaved, median of 5 steps.

    python benchmarks/channel_optimizers.py
"""

from __future__ import annotations

import time

import torch
import pytorch_optimizer as po

import optgen.torch as ot

CASES = [("adamp", po.AdamP, ot.AdamP, {}), ("sgdp", po.SGDP, ot.SGDP, {"momentum": 0.9}),
         ("ranger", po.Ranger, ot.Ranger, {})]


def main() -> None:
    torch.manual_seed(0)
    for name, reference, ours, hypers in CASES:
        params = {k: torch.nn.Parameter(torch.randn(4096, 4096)) for k in ("optgen", "ref", "fe")}
        grad = torch.randn(4096, 4096)
        opts = {"optgen": ours([params["optgen"]], **hypers),
                "ref": reference([params["ref"]], foreach=False, **hypers),
                "fe": reference([params["fe"]], foreach=True, **hypers)}
        for p in params.values():
            p.grad = grad.clone()
        for _ in range(6):  # past Ranger's threshold (t > 5), where its step is complete
            for opt in opts.values():
                opt.step()
        times = {k: [] for k in opts}
        for _ in range(5):
            for k, opt in opts.items():
                start = time.perf_counter()
                opt.step()
                times[k].append(time.perf_counter() - start)
        ms = {k: sorted(v)[2] * 1e3 for k, v in times.items()}
        print(f"{name}: optgen.torch {ms['optgen']:.1f} ms; pytorch_optimizer foreach=False "
              f"{ms['ref']:.1f} ms ({ms['ref'] / ms['optgen']:.2f}x), foreach=True "
              f"{ms['fe']:.1f} ms ({ms['fe'] / ms['optgen']:.2f}x)")


if __name__ == "__main__":
    main()
