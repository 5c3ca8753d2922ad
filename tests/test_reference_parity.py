"""Optimizers torch.optim lacks, against the reference implementations DESIGN.md names.

* lion — lion-pytorch 0.2.5 (``Lion``), the reference the paper's authors point to;
* adabelief — adabelief-pytorch 0.2.1 with ``rectify=False, weight_decouple=False``: the
  optax.adabelief formulation (s = b2*s + (1 - b2)*(g - m)^2 + eps, eps again under the root);
* adabound — the authors' ``adabound`` 0.0.5 package, with a constant lr (the package rescales
  final_lr by lr/initial_lr under a scheduler; optgen's final_lr is absolute).

25 steps on 0-d, empty, 1-D, 2-D and 3-D parameters; parameters and states compared.
Tolerances as for torch.optim: float64 rtol 1e-10, atol 1e-13; float32 rtol 2e-5, atol 2e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
lion_pytorch = pytest.importorskip("lion_pytorch")
adabound = pytest.importorskip("adabound")
adabelief_pytorch = pytest.importorskip("adabelief_pytorch")

import optgen  # noqa: E402

from helpers import gradient_sequence, initial_params  # noqa: E402

TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-6)}


def _adabelief(params, **hypers):
    return adabelief_pytorch.AdaBelief(params, rectify=False, weight_decouple=False,
                                       fixed_decay=False, amsgrad=False, print_change_log=False,
                                       **hypers)


REFERENCES = {
    "lion": (lambda params, **h: lion_pytorch.Lion(params, **h), [
        {}, {"lr": 1e-2, "betas": (0.8, 0.95)}, {"lr": 1e-2, "weight_decay": 0.1},
    ], {"exp_avg": "exp_avg"}),
    "adabelief": (_adabelief, [
        {}, {"lr": 1e-2, "betas": (0.8, 0.99), "eps": 1e-8}, {"weight_decay": 0.1},
    ], {"exp_avg": "exp_avg", "exp_avg_var": "exp_avg_var"}),
    "adabound": (lambda params, **h: adabound.AdaBound(params, **h), [
        {}, {"lr": 1e-2, "final_lr": 0.05, "gamma": 1e-2}, {"weight_decay": 0.1, "eps": 1e-4},
    ], {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}),
}

CASES = [pytest.param(name, hypers, id=f"{name}-{i}")
         for name, (_, cases, _) in REFERENCES.items() for i, hypers in enumerate(cases)]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name, hypers", CASES)
def test_matches_reference(name, hypers, dtype, backend):
    make, _, state_names = REFERENCES[name]
    params = initial_params(dtype)
    tparams = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    opt = optgen.optimizer(name, params, backend=backend, **hypers)
    ref = make(tparams, **hypers)
    for grads in gradient_sequence(dtype):
        opt.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        ref.step()
    tol = TOLERANCES[dtype]
    for i, (got, want) in enumerate(zip(params, tparams)):
        np.testing.assert_allclose(got, want.detach().numpy(), **tol, err_msg=f"params[{i}]")
        for ours, theirs in state_names.items():
            np.testing.assert_allclose(opt.state[i][ours], ref.state[want][theirs].numpy(),
                                       **tol, err_msg=f"state[{i}][{ours!r}]")


schedulefree = pytest.importorskip("schedulefree")


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("hypers", [
    {},
    {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1, "warmup_steps": 5, "r": 0.5},
    {"weight_lr_power": 1.0, "eps": 1e-4},
], ids=["defaults", "warmup-decay-r", "power-eps"])
def test_schedule_free_adamw_matches_schedulefree(hypers, dtype, backend):
    """schedulefree 1.4.1 AdamWScheduleFree (foreach=False, train mode): p is y, state z."""
    params = initial_params(dtype)
    tparams = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    opt = optgen.optimizer("schedule_free_adamw", params, backend=backend, **hypers)
    ref = schedulefree.AdamWScheduleFree(tparams, foreach=False, **hypers)
    ref.train()
    for grads in gradient_sequence(dtype):
        opt.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        ref.step()
    tol = TOLERANCES[dtype]
    for i, (got, want) in enumerate(zip(params, tparams)):
        np.testing.assert_allclose(got, want.detach().numpy(), **tol, err_msg=f"params[{i}]")
        for key in ("z", "exp_avg_sq"):
            np.testing.assert_allclose(opt.state[i][key], ref.state[want][key].numpy(), **tol,
                                       err_msg=f"state[{i}][{key!r}]")
    assert opt.state[2]["weight_sum"] == pytest.approx(ref.param_groups[0]["weight_sum"], rel=1e-12)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("inner, inner_hypers, torch_class", [
    ("adam", {"lr": 0.01}, torch.optim.Adam),
    ("sgd", {"lr": 0.05, "momentum": 0.9}, torch.optim.SGD),
])
def test_lookahead_matches_transcription(inner, inner_hypers, torch_class, backend):
    """Lookahead (Zhang et al., 2019, Algorithm 1) around torch.optim: slow weights start at the
    initial weights; every k steps slow += alpha*(fast - slow) and fast = slow."""
    k, alpha = 3, 0.6
    params = initial_params(np.float64)
    tparams = [torch.tensor(p) for p in params]
    slow = [p.clone() for p in tparams]
    opt = optgen.optimizer("lookahead", params, backend=backend, inner=inner, k=k, alpha=alpha,
                           **inner_hypers)
    ref = torch_class(tparams, foreach=False, **inner_hypers)
    for step, grads in enumerate(gradient_sequence(np.float64), start=1):
        opt.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        ref.step()
        if step % k == 0:
            with torch.no_grad():
                for s, p in zip(slow, tparams):
                    s += alpha * (p - s)
                    p.copy_(s)
    tol = TOLERANCES[np.float64]
    for i, (got, want) in enumerate(zip(params, tparams)):
        np.testing.assert_allclose(got, want.numpy(), **tol, err_msg=f"params[{i}]")
        np.testing.assert_allclose(opt.state[i]["slow"], slow[i].numpy(), **tol)
    assert opt.lr == inner_hypers["lr"] and opt.k == k
    with pytest.raises(TypeError, match="pass inner="):
        optgen.optimizer("lookahead", params)
    with pytest.raises(TypeError, match="adam has no hyperparameter 'kk'"):
        optgen.optimizer("lookahead", params, inner="adam", kk=3)
