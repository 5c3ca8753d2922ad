"""optgen.torch.Muon against torch.optim.Muon on the CPU, in one process, rounds interleaved.

What is compared. torch.optim.Muon (torch 2.13) runs its Newton–Schulz iteration in bfloat16
whatever the param's dtype (``_zeropower_via_newtonschulz``: ``grad.bfloat16()``, then
``@`` and ``addmm`` in bfloat16); optgen runs it in the param's dtype — float32 for float32
params (NumPy's BLAS), bfloat16 for bfloat16 params (torch's own bfloat16 lines; the element
passes are widened to float32). So, per param dtype:

* ``optgen``: ``optgen.torch.Muon``;
* ``torch f32-NS``: torch.optim.Muon with its Newton–Schulz in float32 (the module's
  ``_zeropower_via_newtonschulz`` replaced by the same lines with ``.float()`` for
  ``.bfloat16()``) — the same arithmetic as optgen's, the like-for-like figure;
* ``torch``: torch.optim.Muon as shipped (Newton–Schulz in bfloat16, a third of the work on a
  CPU with bfloat16 dot products).

Before timing, every contender steps the same params and gradients a few times and the params
are compared: optgen and ``torch f32-NS`` within ``F32_ATOL``; with torch's bfloat16 iteration
within ``lr * steps * 0.05``, as tests/test_transcriptions.py asks; bfloat16 params also
within an ulp of the param a step (see ``check``).

Threads: torch's intra-op pool and NumPy's OpenBLAS each start one thread per core; on a
machine where another process holds a core both stall (a 768x768 iteration took 50 ms or
400 ms from one run to the next here), so ``--threads 1`` gives the steadier figures.

Workloads: the 2-D matrices of a GPT-2-small block as nn.Linear holds them (qkv 2304x768,
attention projection 768x768, MLP 3072x768 and 768x3072), each alone and all four in one
optimizer. Also the Newton–Schulz iteration alone (``--ns``): optgen's
``runtime.matrix.orthogonalize`` against torch's, in float32 and bfloat16.

    pip install -e ".[bench]"; python benchmarks/muon_cpu.py [--rounds 7] [--threads N] [--ns]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from unittest import mock

import torch
import torch.optim._muon as torch_muon
from threadpoolctl import threadpool_info, threadpool_limits

import optgen.torch as ot
from optgen.bench import interleaved_medians
from optgen.runtime.matrix import orthogonalize

SHAPES = {"qkv 2304x768": (2304, 768), "proj 768x768": (768, 768),
          "fc 3072x768": (3072, 768), "fc-proj 768x3072": (768, 3072)}
WORKLOADS = {**{name: [shape] for name, shape in SHAPES.items()},
             "block (all four)": list(SHAPES.values())}
LR = 0.02
CHECK_STEPS = 3
#: optgen against torch with its iteration in float32, params after CHECK_STEPS steps of lr
#: 0.02: two BLAS libraries' orders of summation, amplified by five rounds of the iteration.
F32_ATOL = 1e-5


def newton_schulz_float32(grad, ns_coefficients, ns_steps, eps):
    """torch.optim.Muon's _zeropower_via_newtonschulz with ``.float()`` for ``.bfloat16()``."""
    a, b, c = ns_coefficients
    ortho_grad = grad.float()
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    ortho_grad.div_(ortho_grad.norm().clamp(min=eps))
    for _ in range(ns_steps):
        gram_matrix = ortho_grad @ ortho_grad.T
        gram_update = torch.addmm(gram_matrix, gram_matrix, gram_matrix, beta=b, alpha=c)
        ortho_grad = torch.addmm(ortho_grad, gram_update, ortho_grad, beta=a)
    if grad.size(0) > grad.size(1):
        ortho_grad = ortho_grad.T
    return ortho_grad


class Contender:
    """One optimizer over its own copy of the params, gradients fixed."""

    def __init__(self, kind: str, shapes, dtype: torch.dtype, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.params = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
        for p in self.params:
            p.grad = torch.randn(p.shape, generator=gen).to(dtype)
        self.kind = kind
        self.opt = (ot.Muon(self.params, lr=LR) if kind == "optgen"
                    else torch.optim.Muon(self.params, lr=LR))

    def context(self):
        if self.kind == "torch f32-NS":
            return mock.patch.object(torch_muon, "_zeropower_via_newtonschulz",
                                     newton_schulz_float32)
        return contextlib.nullcontext()

    def steps(self, n: int) -> float:
        with self.context():
            start = time.perf_counter()
            for _ in range(n):
                self.opt.step()
            return (time.perf_counter() - start) / n


KINDS = ("optgen", "torch f32-NS", "torch")


def check(shapes, dtype: torch.dtype) -> str:
    """Step each contender CHECK_STEPS times from the same start; the largest differences.
    bfloat16 params: optgen keeps float32 states and rounds the param once a step, torch
    steps in bfloat16, so each step may differ by an ulp of the param as well (2^-7 |p|)."""
    runs = {kind: Contender(kind, shapes, dtype) for kind in KINDS}
    for run in runs.values():
        run.steps(CHECK_STEPS)
    half = dtype != torch.float32
    rtol = CHECK_STEPS * 2.0 ** -7 if half else 0.0
    # bfloat16 params: torch's momentum buffer is bfloat16 too, optgen's float32, so the
    # iteration's input differs by an ulp (2^-8 relative) as well: a few ulps of an lr step
    atols = {"torch f32-NS": LR * CHECK_STEPS * 2.0 ** -6 if half else F32_ATOL,
             "torch": LR * CHECK_STEPS * 0.05}
    verdict = []
    for kind, atol in atols.items():
        excess = max(float(((p.float() - q.float()).abs() - rtol * q.float().abs()).max())
                     for p, q in zip(runs["optgen"].params, runs[kind].params))
        assert excess <= atol, f"optgen vs {kind}: |diff| - {rtol:g}|p| = {excess} > {atol}"
        verdict.append(f"{kind} {max(excess, 0):.1e}")
    bound = f" - {rtol:g} abs(p)" if rtol else ""
    return f"max abs(diff){bound}: {', '.join(verdict)}"


def time_workload(shapes, dtype: torch.dtype, rounds: int, per_round: int) -> dict:
    runs = {kind: Contender(kind, shapes, dtype) for kind in KINDS}
    for run in runs.values():
        run.steps(1)  # warm: kernels loaded, states created
    times = {kind: [] for kind in KINDS}
    for r in range(rounds):
        order = KINDS if r % 2 == 0 else KINDS[::-1]
        for kind in order:
            times[kind].append(runs[kind].steps(per_round))
    return {kind: statistics.median(t) for kind, t in times.items()}


def time_ns(rounds: int) -> None:
    """The Newton–Schulz iteration alone, ms: optgen's orthogonalize against torch's."""
    coefficients = (3.4445, -4.775, 2.0315)
    print("\n| matrix | optgen f32 ms | torch f32 ms | optgen bf16 ms | torch bf16 ms |")
    print("|---|---:|---:|---:|---:|")
    for name, shape in SHAPES.items():
        g = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        g_np = g.numpy()
        fns = {"optgen f32": lambda: orthogonalize(g_np, *coefficients, 5, 1e-7),
               "torch f32": lambda: newton_schulz_float32(g, coefficients, 5, 1e-7),
               "optgen bf16": lambda: orthogonalize(g_np, *coefficients, 5, 1e-7,
                                                    precision="bfloat16"),
               "torch bf16": lambda: torch_muon._zeropower_via_newtonschulz(
                   g, coefficients, 5, 1e-7)}
        median = interleaved_medians(fns, rounds, warm_up=0)
        print(f"| {name} | " + " | ".join(f"{median[k]:.1f}" for k in fns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--per-round", type=int, default=2, help="steps timed per round")
    parser.add_argument("--ns", action="store_true", help="also time Newton–Schulz alone")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch's and NumPy's BLAS thread count (default: as they start)")
    args = parser.parse_args()
    with threadpool_limits(args.threads):
        if args.threads:
            torch.set_num_threads(args.threads)
        run(args)


def run(args) -> None:
    blas = ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} torch threads; threadpools: "
          f"{blas}; lr {LR}, default hyperparameters; {args.rounds} interleaved rounds of "
          f"{args.per_round} steps, medians")
    for dtype in (torch.float32, torch.bfloat16):
        name = str(dtype).replace("torch.", "")
        print(f"\n{name} params")
        print("| workload | optgen ms | torch f32-NS ms | torch ms | torch f32-NS / optgen "
              "| torch / optgen | check |")
        print("|---|---:|---:|---:|---:|---:|---|")
        for workload, shapes in WORKLOADS.items():
            verdict = check(shapes, dtype)
            t = time_workload(shapes, dtype, args.rounds, args.per_round)
            print(f"| {workload} | {t['optgen'] * 1e3:.1f} | {t['torch f32-NS'] * 1e3:.1f} | "
                  f"{t['torch'] * 1e3:.1f} | {t['torch f32-NS'] / t['optgen']:.2f}x | "
                  f"{t['torch'] / t['optgen']:.2f}x | {verdict} |", flush=True)
    if args.ns:
        time_ns(args.rounds)


if __name__ == "__main__":
    main()
