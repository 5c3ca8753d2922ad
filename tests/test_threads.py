"""How optgen's CPU kernels use threads (runtime/threads.py, issue 12): the same bits serial or
parallel, small calls serial, the thread count following optgen.set_num_threads and, in
optgen.torch, torch.get_num_threads(); bad counts refused."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch

import optgen
import optgen.torch as ot
from optgen.runtime import threads


@pytest.fixture(autouse=True)
def restore():
    yield
    optgen.set_num_threads(None)


def _steps(name: str, count: int, size: int) -> list[np.ndarray]:
    """Three steps of ``name`` on a few tensors (one large), with ``count`` threads."""
    optgen.set_num_threads(count)
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(size), rng.standard_normal((300, 7)), rng.standard_normal(5)]
    opt = optgen.optimizer(name, params, backend="cpu")
    for _ in range(3):
        opt.step([rng.standard_normal(p.shape) for p in params])
    return params


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_serial_and_parallel_give_the_same_bits(name):
    size = 4 * threads.SERIAL_BELOW + 12_345  # above the cut-off: parallel with 2 threads
    serial = _steps(name, 1, size)
    parallel = _steps(name, threads.max_threads(), size)
    for a, b in zip(serial, parallel):
        assert np.array_equal(a, b)


def test_small_calls_run_serially_and_large_ones_use_the_count():
    threads.use_threads(threads.SERIAL_BELOW - 1)
    assert numba.get_num_threads() == 1
    threads.use_threads(threads.SERIAL_BELOW)
    assert numba.get_num_threads() == threads.max_threads()
    optgen.set_num_threads(1)
    threads.use_threads(10 ** 8)
    assert numba.get_num_threads() == 1


def test_optgen_torch_follows_torch_threads():
    before = torch.get_num_threads()
    p = torch.zeros(threads.SERIAL_BELOW * 2, requires_grad=True)
    p.grad = torch.ones_like(p)
    opt = ot.AdamW([p])
    try:
        torch.set_num_threads(1)
        opt.step()
        assert numba.get_num_threads() == 1
        torch.set_num_threads(threads.max_threads())
        opt.step()
        assert numba.get_num_threads() == threads.max_threads()
        optgen.set_num_threads(1)  # optgen's own setting wins over torch's
        opt.step()
        assert numba.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (10 ** 6, ValueError),
                                        (1.5, TypeError), (True, TypeError), ("2", TypeError),
                                        (np.int64(0), ValueError)])
def test_bad_thread_counts_are_refused(bad, error):
    with pytest.raises(error, match="n must be"):
        optgen.set_num_threads(bad)
    assert optgen.get_num_threads() == threads.max_threads()


def test_the_pool_is_tbb_on_x86_64():
    """The dependency pyproject.toml names: Numba prefers TBB when it is installed."""
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("tbb wheels are for x86-64")
    _steps("adamw", threads.max_threads(), 4 * threads.SERIAL_BELOW)
    assert numba.threading_layer() == "tbb"


def test_an_integer_type_is_a_thread_count():
    optgen.set_num_threads(np.int64(1))
    assert optgen.get_num_threads() == 1


def _torch_steps(name: str, use_team: bool, monkeypatch) -> list[torch.Tensor]:
    """Three steps of optgen.torch ``name`` on a large and a small param, on torch's OpenMP
    team or on Numba's pool."""
    from optgen.runtime import team

    monkeypatch.setattr(team, "_looked", True)
    monkeypatch.setattr(team, "_team", team._find() if use_team else None)
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(4 * threads.SERIAL_BELOW + 77, generator=gen).requires_grad_(),
              torch.randn(300, 7, generator=gen).requires_grad_()]
    opt = ot.optimizer(name, params)
    for _ in range(3):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_torch_team_gives_the_same_bits_as_numba_pool(name, monkeypatch):
    """optgen.torch runs its tables on torch's own OpenMP threads (runtime/team.py) where
    torch uses the libgomp it ships: the same pieces, the same bits as Numba's pool."""
    from optgen.runtime import team

    if team._find() is None:
        pytest.skip("torch does not run on its own libgomp here")
    torch.set_num_threads(2)
    calls = []
    run = team.TeamCall.run
    monkeypatch.setattr(team.TeamCall, "run", lambda self, *a: (calls.append(a), run(self, *a)))
    ours = _torch_steps(name, True, monkeypatch)
    assert calls  # the tables ran on the team
    pool = _torch_steps(name, False, monkeypatch)
    for a, b in zip(ours, pool):
        assert torch.equal(a, b)


def test_the_team_is_only_torch_libgomp(monkeypatch):
    from optgen.runtime import team

    monkeypatch.setenv("OPTGEN_TORCH_TEAM", "0")
    assert team._find() is None
