"""optgen.torch under torch.distributed: two gloo processes on the CPU.

* DistributedDataParallel: each rank trains on half of every batch; the parameters after the
  steps equal a single process training on whole batches (float64, rtol 1e-10);
* ZeroRedundancyOptimizer(optimizer_class=optgen.torch.Adam): the same;
* LAMB with a process group, each rank holding half of every tensor (split along the first
  dimension): the concatenated halves equal single-process LAMB on the whole tensors, so the
  per-tensor norms are the whole tensors' (float64, rtol 1e-10);
* clip_grad_norm_ with a process group over disjoint parameters: the single-process total norm.

Workers write their results with numpy and leave with os._exit(0) after
destroy_process_group() (gloo can abort at interpreter exit).
"""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available():
    pytest.skip("torch.distributed is not available", allow_module_level=True)

import torch.multiprocessing as mp  # noqa: E402

import optgen.torch as ot  # noqa: E402

WORLD = 2
STEPS = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(),
                               torch.nn.Linear(5, 1)).double()


def _batches():
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 6, generator=gen, dtype=torch.float64),
             torch.randn(8, 1, generator=gen, dtype=torch.float64)) for _ in range(STEPS)]


def _train(model, opt, batches, rank=0, world=1):
    for x, y in batches:
        shard = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x[shard]), y[shard]).backward()
        opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()]


def _lamb_tensors():
    gen = torch.Generator().manual_seed(2)
    params = [torch.randn(4, 3, generator=gen, dtype=torch.float64),
              torch.randn(6, generator=gen, dtype=torch.float64)]
    grads = [[torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in params]
             for _ in range(STEPS)]
    return params, grads


def _worker(rank, port, mode, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        if mode == "ddp":
            model = torch.nn.parallel.DistributedDataParallel(_model())
            result = _train(model, ot.Adam(model.parameters(), lr=0.05), _batches(), rank, WORLD)
        elif mode == "zero":
            from torch.distributed.optim import ZeroRedundancyOptimizer

            model = torch.nn.parallel.DistributedDataParallel(_model())
            opt = ZeroRedundancyOptimizer(model.parameters(), optimizer_class=ot.Adam, lr=0.05)
            result = _train(model, opt, _batches(), rank, WORLD)
        elif mode == "lamb":
            params, grads = _lamb_tensors()
            shards = [p.chunk(WORLD)[rank].clone().requires_grad_() for p in params]
            opt = ot.LAMB(shards, lr=0.1, weight_decay=0.01, process_group=dist.group.WORLD)
            for step in grads:
                for s, g in zip(shards, step):
                    s.grad = g.chunk(WORLD)[rank].clone()
                opt.step()
            result = [s.detach().numpy().copy() for s in shards]
        else:  # clip
            params, grads = _lamb_tensors()
            mine = [p.clone().requires_grad_() for p in params][rank::WORLD]
            for p, g in zip(mine, grads[0][rank::WORLD]):
                p.grad = g.clone()
            total = ot.clip_grad_norm_(mine, 1.0, process_group=dist.group.WORLD)
            result = [np.array(float(total))] + [p.grad.numpy().copy() for p in mine]
        np.savez(os.path.join(out, f"rank{rank}.npz"), *result)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    os._exit(0)


def _run(mode, tmp_path) -> list[list[np.ndarray]]:
    mp.start_processes(_worker, args=(_free_port(), mode, str(tmp_path)), nprocs=WORLD,
                       join=True, start_method="spawn")
    out = []
    for rank in range(WORLD):
        with np.load(tmp_path / f"rank{rank}.npz") as data:
            out.append([data[f"arr_{i}"] for i in range(len(data.files))])
    return out


@pytest.mark.parametrize("mode", ["ddp", "zero"])
def test_data_parallel_equals_one_process(mode, tmp_path):
    results = _run(mode, tmp_path)
    model = _model()
    want = _train(model, ot.Adam(model.parameters(), lr=0.05), _batches())
    for rank_result in results:
        for got, expected in zip(rank_result, want):
            np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_lamb_norms_over_sharded_tensors(tmp_path):
    results = _run("lamb", tmp_path)
    params, grads = _lamb_tensors()
    whole = [p.clone().requires_grad_() for p in params]
    opt = ot.LAMB(whole, lr=0.1, weight_decay=0.01)
    for step in grads:
        for p, g in zip(whole, step):
            p.grad = g.clone()
        opt.step()
    for i, p in enumerate(whole):
        got = np.concatenate([results[rank][i] for rank in range(WORLD)])
        np.testing.assert_allclose(got, p.detach().numpy(), rtol=1e-10, atol=1e-12)
    # Without the process group each shard would use its own norm: a different result.
    alone = [p.chunk(WORLD)[0].clone().requires_grad_() for p in params]
    opt = ot.LAMB(alone, lr=0.1, weight_decay=0.01)
    for step in grads:
        for p, g in zip(alone, step):
            p.grad = g.chunk(WORLD)[0].clone()
        opt.step()
    assert not np.allclose(alone[0].detach().numpy(), results[0][0])


def test_clip_grad_norm_over_processes(tmp_path):
    results = _run("clip", tmp_path)
    params, grads = _lamb_tensors()
    whole = [p.clone().requires_grad_() for p in params]
    for p, g in zip(whole, grads[0]):
        p.grad = g.clone()
    want_total = torch.nn.utils.clip_grad_norm_(whole, 1.0)
    for rank in range(WORLD):
        np.testing.assert_allclose(results[rank][0], want_total.item(), rtol=1e-12)
        for got, p in zip(results[rank][1:], whole[rank::WORLD]):
            np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-12)
