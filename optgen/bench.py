"""``optgen bench``: catalogue optimizers against torch.optim's fastest CPU path, side by side.

Two workloads, float32: one 4096 x 4096 tensor (16,777,216 values), or with ``many`` the 161
parameter tensors of a ResNet-50 (25,557,032 values). For each optimizer, in one process and in
interleaved rounds (so a noisy neighbour slows every contender alike), the median time of:

* optgen: a step of ``optgen.torch`` (the front end users run; one native call for the list);
* torch: ``fused=True`` where torch.optim has it (Adam, AdamW, SGD, Adagrad), else the faster
  of ``foreach=True`` and the for-loop; "-" where torch.optim has no such optimizer;
* add: an in-place ``torch.add(a, b, out=a)`` over as many values: 12 bytes per element, the
  bandwidth a memory-bound step can hope for.

Bytes per element are exact for the passes the default hyperparameters select for each tensor:
the arrays the generated CPU kernels read and write (``TRAFFIC``), times 4 bytes, the factored
stage's and the per-row, per-column and per-matrix arrays (Adafactor's) at their own sizes. Hyperparameters are the spec's
defaults, except SGD with momentum 0.9 (the form people use).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

#: torch.optim's class and whether it has a fused CPU kernel, per catalogue name.
TORCH = {"adam": ("Adam", True), "adamw": ("AdamW", True), "sgd": ("SGD", True),
         "adagrad": ("Adagrad", True), "rmsprop": ("RMSprop", False),
         "adamax": ("Adamax", False), "adadelta": ("Adadelta", False), "rprop": ("Rprop", False),
         "radam": ("RAdam", False), "nadam": ("NAdam", False), "asgd": ("ASGD", False),
         "adafactor": ("Adafactor", False)}
HYPERS = {"sgd": {"momentum": 0.9}}
#: Not bandwidth benchmarks: Muon is compute-bound (Newton-Schulz matmuls on every matrix).
SKIPPED = {"muon": "compute-bound (Newton-Schulz matmuls), not a bandwidth benchmark"}
SINGLE_SHAPE = (4096, 4096)


def resnet50_shapes() -> list[tuple[int, ...]]:
    """The 161 parameter tensors of torchvision's ResNet-50, in order (25,557,032 values)."""
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    width = 64
    for mid, out, blocks in ((64, 256, 3), (128, 512, 4), (256, 1024, 6), (512, 2048, 3)):
        for block in range(blocks):
            shapes += [(mid, width, 1, 1), (mid,), (mid,), (mid, mid, 3, 3), (mid,), (mid,),
                       (out, mid, 1, 1), (out,), (out,)]
            if block == 0:
                shapes += [(out, width, 1, 1), (out,), (out,)]
            width = out
    return shapes + [(1000, 2048), (1000,)]


@dataclass
class Row:
    name: str
    torch_path: str
    torch_ms: float | None
    optgen_ms: float
    bytes_per_element: float
    values: int
    add_ms: float

    @property
    def speedup(self) -> float | None:
        return self.torch_ms / self.optgen_ms if self.torch_ms else None

    @property
    def gbps(self) -> float:
        return self.bytes_per_element * self.values / (self.optgen_ms * 1e-3) / 1e9

    @property
    def add_gbps(self) -> float:
        return 12 * self.values / (self.add_ms * 1e-3) / 1e9


def bytes_per_element(module, hypers: dict | None = None, itemsize: int = 4,
                      shapes=(SINGLE_SHAPE,)) -> float:
    """Bytes the CPU kernels read and write per parameter value over ``shapes``, by the passes
    these hyperparameters select for each tensor (at a step after the first; reduction passes
    only where ``rounds_needed`` runs them): its full-size arrays, and its per-row, per-column,
    per-matrix (Adafactor's) and per-channel ones at their own sizes."""
    from .runtime.kernels import class_shape, host_value, tensor_flags

    hypers = hypers or {}
    flat = tuple(host_value(v) for h in module.HYPERS
                 for v in h.flat(h.coerce(hypers.get(h.name, h.default))))
    scalars = module.scalar_inits(*flat)
    total = values = 0
    for shape in shapes:
        numel = int(np.prod(shape))
        flags = tensor_flags(module, shape, np.dtype(np.float32))
        with np.errstate(all="ignore"):  # as the front ends: an unused branch may divide by 0
            host = module.host_scalars(2, *flat, *scalars, *module.group_inits(*flat),
                                       *(False,) * len(module.INPUTS), *flags)
        needed = module.rounds_needed(*host)
        for kind, when, read, written, small_read, small_written, round_ in module.TRAFFIC:
            if round_ >= 0 and not needed[round_]:
                continue  # a reduction pass no value reads for this tensor: skipped
            if all(bool(host[index]) == value for index, value in when):
                total += (read + written) * numel
                total += sum(int(np.prod(class_shape(shape, c)))
                             for c in small_read + small_written)
        values += numel
    return total * itemsize / values


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_medians(contenders: dict, rounds: int, progress=None,
                        warm_up: int = 2) -> dict[str, float]:
    """Median milliseconds of each ``contenders[label]()``, after ``warm_up`` calls each
    (compile, allocate state, fault pages in), timed in interleaved rounds: one call of each
    per round, so a noisy neighbour slows every contender alike."""
    for fn in contenders.values():
        for _ in range(warm_up):
            fn()
    times = {label: [] for label in contenders}
    for round_ in range(rounds):
        for label, fn in contenders.items():
            times[label].append(_timed(fn))
        if progress:
            progress(round_ + 1, rounds)
    return {label: statistics.median(ts) * 1e3 for label, ts in times.items()}


def _params(torch, shapes, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)
    return params


def bench_one(name: str, shapes, rounds: int, progress=None) -> Row:
    import torch

    import optgen.torch as ot
    from .runtime.loader import load

    module = load(name)
    hypers = HYPERS.get(name, {})
    values = int(sum(np.prod(s) for s in shapes))
    ours = ot.optimizer(name, _params(torch, shapes), **hypers)
    contenders = {"optgen": ours.step}
    torch_path = "-"
    if name in TORCH:
        cls_name, fused = TORCH[name]
        cls = getattr(torch.optim, cls_name)
        variants = {"fused": {"fused": True}} if fused else {
            "foreach": {"foreach": True}, "for-loop": {"foreach": False}}
        for label, flags in variants.items():
            contenders[label] = cls(_params(torch, shapes), **hypers, **flags).step
    a, b = torch.randn(values), torch.randn(values)
    contenders["add"] = lambda: torch.add(a, b, out=a)
    median = interleaved_medians(contenders, rounds, progress)
    torch_ms = None
    torch_labels = [label for label in median if label not in ("optgen", "add")]
    if torch_labels:
        torch_path = min(torch_labels, key=median.get)
        torch_ms = median[torch_path]
    return Row(name, torch_path, torch_ms, median["optgen"],
               bytes_per_element(module, hypers, shapes=shapes), values, median["add"])


def startup_seconds(cold: bool = False) -> dict[str, float]:
    """Seconds a fresh interpreter takes to import and take a first Adam step: through the
    NumPy front end, and through optgen.torch (after ``import torch``; torch.optim's first
    Optimizer construction imports torch._dynamo, which any torch optimizer pays). With the
    Numba cache as it is (warm) or an empty one (cold: the kernels compile)."""
    code = ("import time, json; s = time.perf_counter(); import numpy as np, optgen; "
            "p = np.zeros(1000, np.float32); "
            "optgen.optimizer('adam', [p]).step([np.ones(1000, np.float32)]); "
            "numpy_s = time.perf_counter() - s; s = time.perf_counter(); import torch; "
            "torch_import = time.perf_counter() - s; s = time.perf_counter(); "
            "import optgen.torch as ot; q = torch.zeros(1000, requires_grad=True); "
            "q.grad = torch.ones(1000); t = time.perf_counter(); torch.optim.SGD([q]); "
            "construct = time.perf_counter() - t; ot.Adam([q]).step(); "
            "print(json.dumps({'numpy': numpy_s, 'torch': time.perf_counter() - s, "
            "'torch_construct': construct, 'torch_import': torch_import}))")
    env = None
    if cold:
        import os
        env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp(prefix="optgen-cold-"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    import json
    return json.loads(out.stdout.strip().splitlines()[-1])


def format_table(rows: list[Row]) -> str:
    lines = ["| optimizer | torch path | torch ms | optgen ms | speed-up | B/elem | GB/s | "
             "of add() |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        torch_ms = f"{r.torch_ms:.2f}" if r.torch_ms else "-"
        speedup = f"{r.speedup:.2f}x" if r.speedup else "-"
        lines.append(f"| {r.name} | {r.torch_path} | {torch_ms} | {r.optgen_ms:.2f} | {speedup} "
                     f"| {r.bytes_per_element:.3g} | {r.gbps:.1f} | {r.gbps / r.add_gbps:.0%} |")
    return "\n".join(lines)
