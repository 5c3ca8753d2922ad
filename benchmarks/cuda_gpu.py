"""optgen's CUDA kernels against torch's fastest CUDA optimizers, on one GPU.

Workloads (float32): one tensor of 10^8 values, and the 161 tensors of a ResNet-50 (25.6M
values). For each optimizer: torch's path (``fused=True`` for Adam, AdamW, SGD and Adagrad,
else ``foreach=True``) and ``optgen.torch`` (one ``step_many`` launch per dtype), timed with CUDA
events around 20 steps after 5 warm-ups (median of 5 such runs), and a device-to-device copy
of as many bytes as the optimizer moves in the same run (``b.copy_(a)``: 8 bytes per element
read and written) as the bandwidth reference. Also: the time of a step over 161 one-element
tensors (launch and Python overhead).

    python benchmarks/cuda_gpu.py [--out results.md]
"""

from __future__ import annotations

import argparse
import statistics
import sys

import torch

import optgen.torch as ot
from optgen.bench import HYPERS, TORCH, bytes_per_element, resnet50_shapes
from optgen.files import write_atomic
from optgen.runtime.loader import load

#: torch.optim optimizers timed on the GPU (Adafactor and ASGD step per tensor here).
TIMED = ["adam", "adamw", "sgd", "adagrad", "rmsprop", "adamax", "nadam", "radam", "adadelta"]
OTHERS = ["lion", "schedule_free_adamw", "adabelief", "sophia"]


def gpu_time_ms(fn, steps: int = 20, warmup: int = 5, runs: int = 5) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / steps)
    return statistics.median(times)


def params(shapes, seed=0):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    out = [torch.randn(s, device="cuda", generator=gen).requires_grad_() for s in shapes]
    for p in out:
        p.grad = torch.randn(p.shape, device="cuda", generator=gen)
    return out


def row(name: str, shapes) -> dict:
    hypers = HYPERS.get(name, {})
    values = sum(int(torch.Size(s).numel()) for s in shapes)
    ours = ot.optimizer(name, params(shapes), **hypers)
    result = {"name": name, "optgen": gpu_time_ms(ours.step), "torch_path": "-", "torch": None}
    if name in TORCH:
        cls_name, fused = TORCH[name]
        flags = {"fused": True} if fused else {"foreach": True}
        theirs = getattr(torch.optim, cls_name)(params(shapes), **hypers, **flags)
        result["torch"] = gpu_time_ms(theirs.step)
        result["torch_path"] = next(iter(flags))
    # the CPU kernels' bytes (Adafactor's per-row values, broadcast on the GPU, move more)
    nbytes = bytes_per_element(load(name), hypers, shapes=shapes)
    a = torch.empty(int(values * nbytes) // 8 + 1, device="cuda")
    b = torch.empty_like(a)
    result["copy"] = gpu_time_ms(lambda: b.copy_(a))
    result["bytes"] = nbytes
    result["gbps"] = nbytes * values / (result["optgen"] * 1e-3) / 1e9
    result["copy_gbps"] = 8 * a.numel() / (result["copy"] * 1e-3) / 1e9
    torch.cuda.empty_cache()
    return result


def table(rows) -> str:
    lines = ["| optimizer | torch path | torch ms | optgen ms | speed-up | B/elem | GB/s | "
             "of D2D copy |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        speed = f"{r['torch'] / r['optgen']:.2f}x" if r["torch"] else "-"
        torch_ms = f"{r['torch']:.3f}" if r["torch"] else "-"
        lines.append(f"| {r['name']} | {r['torch_path']} | {torch_ms} | {r['optgen']:.3f} | "
                     f"{speed} | {r['bytes']} | {r['gbps']:.0f} | "
                     f"{r['gbps'] / r['copy_gbps']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out")
    args = parser.parse_args()
    device = torch.cuda.get_device_name()
    text = [f"device: {device}; torch {torch.__version__}; CUDA events, median of 5 runs of "
            "20 steps after 5 warm-ups\n"]
    for label, shapes in (("one tensor of 10^8 float32 values", [(100_000_000,)]),
                          ("161 tensors of a ResNet-50, 25,557,032 float32 values",
                           resnet50_shapes())):
        rows = [row(name, shapes) for name in [*TIMED, *OTHERS]]
        text += [f"\n{label}:\n", table(rows)]
        print("\n".join(text[-2:]), flush=True)
    tiny = [(1,)] * 161
    ours = ot.Adam(params(tiny))
    theirs = torch.optim.Adam(params(tiny), fused=True)
    overhead = (f"\nstep over 161 one-element tensors (launch + Python): optgen "
                f"{gpu_time_ms(ours.step) * 1e3:.0f} µs, torch fused "
                f"{gpu_time_ms(theirs.step) * 1e3:.0f} µs")
    text.append(overhead)
    print(overhead)
    if args.out:
        write_atomic(args.out, "\n".join(text) + "\n")


if __name__ == "__main__":
    sys.exit(main())
