"""Resume is exact: for every catalogue optimizer, three steps, a checkpoint, and three more
steps in a new process (``torch.save``/``torch.load`` through ``optgen.torch``, pickle of the
NumPy front end's state dict) give the same bits as six steps without a break.

torch.optim's ``load_state_dict`` casts floating states to the param's dtype; that used to
round NAdam's float64 ``mu_product`` and schedule-free's ``weight_sum``/``lr_max`` to float32.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import optgen  # noqa: E402
import optgen.torch as ot  # noqa: E402

#: Options beyond the defaults that keep extra state.
VARIANTS = {"sgd": {"momentum": 0.9}, "adam": {"amsgrad": True}, "nadam": {},
            "rmsprop": {"centered": True, "momentum": 0.5}}
STEPS = 3


def shapes(name: str) -> list[tuple[int, ...]]:
    return [(4, 6), (3, 5)] if name == "muon" else [(7,), (3, 5), (2, 3, 4)]


def params_for(name: str, dtype) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.standard_normal(s).astype(dtype) for s in shapes(name)]


def grads_for(name: str, step: int, dtype) -> list[np.ndarray]:
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in shapes(name)]


TORCH_NAMES = [n for n in optgen.available("optimizer")
               if optgen.runtime.loader.load(n).KIND == "optimizer"]
NUMPY_NAMES = optgen.available("optimizer")


def torch_run(name: str, params: list, first: int, last: int, state=None):
    opt = ot.optimizer(name, params, **VARIANTS.get(name, {}))
    if state is not None:
        opt.load_state_dict(state)
    for step in range(first, last):
        for p, g in zip(params, grads_for(name, step, np.float32)):
            p.grad = torch.from_numpy(g)
        opt.step()
    return opt


def numpy_run(name: str, params: list, first: int, last: int, state=None):
    extra = {"inner": "adam"} if name == "lookahead" else {}
    opt = optgen.optimizer(name, params, **extra, **VARIANTS.get(name, {}))
    if state is not None:
        opt.load_state_dict(state)
    for step in range(first, last):
        opt.step(grads_for(name, step, np.float64))
    return opt


def states_of(opt, params) -> list[dict]:
    """Every state of every param as float64 NumPy values (exact for float32 and bf16)."""
    return [{k: torch.as_tensor(v).double().numpy() for k, v in opt.state[p].items()}
            for p in params]


RESUME = """
import pickle, sys, numpy as np, torch
sys.path.insert(0, {tests!r})
import test_resume as t
folder = {folder!r}
out = {{}}
for name in t.TORCH_NAMES:
    saved = torch.load(f"{{folder}}/{{name}}.pt", weights_only=False)
    params = [torch.nn.Parameter(p) for p in saved["params"]]
    opt = t.torch_run(name, params, t.STEPS, 2 * t.STEPS, saved["optimizer"])
    out["torch", name] = ([p.detach().numpy().copy() for p in params], t.states_of(opt, params))
for name in t.NUMPY_NAMES:
    with open(f"{{folder}}/{{name}}.pkl", "rb") as f:
        saved = pickle.load(f)
    opt = t.numpy_run(name, saved["params"], t.STEPS, 2 * t.STEPS, saved["optimizer"])
    out["numpy", name] = (saved["params"], opt.state_dict()["state"])
with open(f"{{folder}}/resumed.pkl", "wb") as f:
    pickle.dump(out, f)
"""


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Checkpoints after three steps, continued in one new process."""
    folder = tmp_path_factory.mktemp("resume")
    for name in TORCH_NAMES:
        params = [torch.nn.Parameter(torch.from_numpy(p)) for p in params_for(name, np.float32)]
        opt = torch_run(name, params, 0, STEPS)
        torch.save({"params": [p.detach().clone() for p in params],
                    "optimizer": opt.state_dict()}, folder / f"{name}.pt")
    for name in NUMPY_NAMES:
        params = params_for(name, np.float64)
        opt = numpy_run(name, params, 0, STEPS)
        with open(folder / f"{name}.pkl", "wb") as f:
            pickle.dump({"params": params, "optimizer": opt.state_dict()}, f)
    code = RESUME.format(tests=str(__import__("pathlib").Path(__file__).parent),
                         folder=str(folder))
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(folder / "resumed.pkl", "rb") as f:
        return pickle.load(f)


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_torch_resume_is_bit_identical(name, resumed):
    params = [torch.nn.Parameter(torch.from_numpy(p)) for p in params_for(name, np.float32)]
    opt = torch_run(name, params, 0, 2 * STEPS)
    got_params, got_states = resumed["torch", name]
    for i, (want, got) in enumerate(zip(params, got_params)):
        np.testing.assert_array_equal(got, want.detach().numpy(), err_msg=f"params[{i}]")
    for i, (want, got) in enumerate(zip(states_of(opt, params), got_states)):
        assert want.keys() == got.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"params[{i}] {key}")


@pytest.mark.parametrize("name", NUMPY_NAMES)
def test_numpy_resume_is_bit_identical(name, resumed):
    params = params_for(name, np.float64)
    opt = numpy_run(name, params, 0, 2 * STEPS)
    got_params, got_states = resumed["numpy", name]
    for i, (want, got) in enumerate(zip(params, got_params)):
        np.testing.assert_array_equal(got, want, err_msg=f"params[{i}]")
    want_states = opt.state_dict()["state"]
    for i, (want, got) in enumerate(zip(want_states, got_states)):
        assert want.keys() == got.keys()
        for key in want:
            np.testing.assert_array_equal(got[key], want[key], err_msg=f"params[{i}] {key}")


def test_half_precision_states_survive_a_checkpoint_exactly():
    """bfloat16 params keep float32 states; torch.optim's load would round them to bf16."""
    def run(p, first, last, state=None):
        opt = ot.Adam([p], lr=1e-2)
        if state is not None:
            opt.load_state_dict(state)
        for step in range(first, last):
            p.grad = torch.full_like(p, 0.1 * (step + 1))
            opt.step()
        return opt
    whole = torch.nn.Parameter(torch.linspace(-1, 1, 33, dtype=torch.bfloat16))
    whole_opt = run(whole, 0, 6)
    first = torch.nn.Parameter(torch.linspace(-1, 1, 33, dtype=torch.bfloat16))
    saved = run(first, 0, 3).state_dict()
    assert saved["state"][0]["exp_avg"].dtype == torch.float32
    second = torch.nn.Parameter(first.detach().clone())
    opt = run(second, 3, 6, saved)
    assert torch.equal(second, whole)
    for key in ("exp_avg", "exp_avg_sq"):
        assert opt.state[second][key].dtype == torch.float32
        assert torch.equal(opt.state[second][key], whole_opt.state[whole][key]), key
