"""optgen in a real training loop, against torch's fused AdamW, in one process.

1. **Digits CNN** (scikit-learn's 8x8 digits: two conv layers and two linear, 8 tensors, fp32,
   batch 32): AdamW with a no-decay group for the biases, ``clip_grad_norm_(..., 1.0)``,
   ``OneCycleLR`` — epochs of optgen and torch interleaved, medians; idle and with one other
   process spinning on a core. Also the step alone, with ``lr`` fixed and with the scheduler
   changing it before every step.
2. **GPT-2-small shapes** (148 tensors, 124M values): the step with a scheduler changing
   ``lr`` every step.
3. **First step** of a new optimizer in a warm process (module loaded, kernels cached), and
   after ``load_state_dict``; and cold, in a fresh process with a warm on-disk cache.

    pip install -e ".[bench]"; python benchmarks/train_loop.py [--epochs 7] [--skip-gpt2]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

import optgen.torch as ot


def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    return x, y


def cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(32 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10))


def groups(model: nn.Module) -> list[dict]:
    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    return [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}]


def make_optimizer(kind: str, model: nn.Module):
    if kind == "torch":
        return torch.optim.AdamW(groups(model), lr=1e-3, fused=True)
    return ot.AdamW(groups(model), lr=1e-3)


class Run:
    """One model, optimizer and scheduler, trained an epoch at a time."""

    def __init__(self, kind: str, model: nn.Module, batches_per_epoch: int, epochs: int):
        self.model = model
        self.opt = make_optimizer(kind, model)
        self.sched = torch.optim.lr_scheduler.OneCycleLR(
            self.opt, max_lr=3e-3, total_steps=batches_per_epoch * (epochs + 1))
        self.loss = nn.CrossEntropyLoss()

    def epoch(self, x, y, order) -> float:
        start = time.perf_counter()
        for batch in order:
            self.opt.zero_grad()
            out = self.loss(self.model(x[batch]), y[batch])
            out.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.sched.step()
        return time.perf_counter() - start


@contextlib.contextmanager
def spinning(count: int):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.3)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def epochs_table(epochs: int) -> list[str]:
    x, y = digits()
    rng = np.random.default_rng(0)
    batches = [torch.tensor(b) for b in np.array_split(rng.permutation(len(x)), len(x) // 32)]
    rows = []
    for label, busy in (("idle", 0), ("one core busy", 1)):
        torch.manual_seed(0)
        model = cnn()
        runs = {kind: Run(kind, copy.deepcopy(model), len(batches), 2 * epochs)
                for kind in ("torch", "optgen")}
        times = {kind: [] for kind in runs}
        with spinning(busy):
            for kind in runs:  # warm-up epoch each (first-step costs, caches)
                runs[kind].epoch(x, y, batches)
            for _ in range(epochs):
                for kind in ("torch", "optgen"):
                    times[kind].append(runs[kind].epoch(x, y, batches))
        t, o = statistics.median(times["torch"]), statistics.median(times["optgen"])
        rows.append(f"| epoch, {label} | {t * 1e3:.0f} ms | {o * 1e3:.0f} ms | {o / t:.2f} |")
    return rows


def step_us(opt, params, change_lr: bool, steps: int, rounds: int = 5) -> float:
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(steps):
            if change_lr:
                for group in opt.param_groups:
                    group["lr"] = 1e-3 * (1 + (i % 7) / 7)
            opt.step()
        out.append((time.perf_counter() - start) / steps * 1e6)
    return statistics.median(out)


def step_rows(name: str, shapes, steps: int) -> list[str]:
    rows = []
    torch.manual_seed(0)
    base = [torch.randn(s) * 0.02 for s in shapes]
    made = {}
    for kind in ("torch", "optgen"):
        params = [b.clone().requires_grad_(True) for b in base]
        for p in params:
            p.grad = torch.randn_like(p) * 1e-3
        half = len(params) // 2
        groups_ = [{"params": params[:half], "weight_decay": 0.01},
                   {"params": params[half:], "weight_decay": 0.0}]
        opt = (torch.optim.AdamW(groups_, fused=True) if kind == "torch" else ot.AdamW(groups_))
        opt.step()
        made[kind] = (opt, params)
    for change in (False, True):
        got = {}
        for _ in range(2):  # interleaved
            for kind, (opt, params) in made.items():
                got.setdefault(kind, []).append(step_us(opt, params, change, steps))
        t, o = min(got["torch"]), min(got["optgen"])
        what = "lr changed before each step" if change else "hyperparameters fixed"
        rows.append(f"| {name} step, {what} | {t:.0f} µs | {o:.0f} µs | {o / t:.2f} |")
    return rows


GPT2_SMALL = ([(50257, 768), (1024, 768)]
              + [shape for _ in range(12) for shape in
                 [(768,), (768,), (768, 2304), (2304,), (768, 768), (768,), (768,), (768,),
                  (768, 3072), (3072,), (3072, 768), (768,)]]
              + [(768,), (768,)])


def first_step_rows() -> list[str]:
    model = cnn()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    ot.AdamW(groups(model)).step()  # the module and its kernels are loaded in this process
    times = []
    for _ in range(5):
        start = time.perf_counter()
        opt = ot.AdamW(groups(model))
        opt.step()
        times.append(time.perf_counter() - start)
    state = opt.state_dict()
    loads = []
    for _ in range(5):
        start = time.perf_counter()
        fresh = ot.AdamW(groups(model))
        fresh.load_state_dict(state)
        fresh.step()
        loads.append(time.perf_counter() - start)
    code = ("import time, torch; t = time.perf_counter(); import optgen.torch as ot; "
            "p = torch.zeros(10, requires_grad=True); p.grad = torch.ones(10); "
            "ot.AdamW([p]).step(); print(time.perf_counter() - t)")
    cold = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout) for _ in range(3)]
    return [f"| first step of a new optimizer, warm process | — | "
            f"{statistics.median(times) * 1e3:.1f} ms | |",
            f"| first step after load_state_dict, warm process | — | "
            f"{statistics.median(loads) * 1e3:.1f} ms | |",
            f"| import optgen.torch + first step, fresh process (warm cache) | — | "
            f"{statistics.median(cold) * 1e3:.0f} ms | |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=7)
    parser.add_argument("--skip-gpt2", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| what | torch fused AdamW | optgen AdamW | optgen / torch |")
    print("|---|---:|---:|---:|")
    model = cnn()
    for row in step_rows("digits CNN", [p.shape for p in model.parameters()], 500):
        print(row, flush=True)
    for row in epochs_table(args.epochs):
        print(row, flush=True)
    if not args.skip_gpt2:
        for row in step_rows("GPT-2-small", GPT2_SMALL, 5):
            print(row, flush=True)
    for row in first_step_rows():
        print(row, flush=True)


if __name__ == "__main__":
    main()
