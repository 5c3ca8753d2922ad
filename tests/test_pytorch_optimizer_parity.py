"""Optimizers against pytorch-optimizer 4.1.0 (issue 13): the catalogue's Yogi, ADOPT, Adan, SignSGD
NovoGrad (a per-tensor scalar state assigned from a reduction), MADGRAD and MARS, AdamP and
SGDP (per-channel sums and amax), Ranger (gradient centralization: a per-channel mean),
and AdEMAMix (with and without its warm-up horizon, a hyperparameter that defaults to none).

25 steps on 0-d, empty, 1-D, 2-D, 3-D and 4-D parameters stepped together, every option the
spec has; parameters and every state compared, float64 and float32, both CPU backends.
Tolerances as for torch.optim: float64 rtol 1e-10, atol 1e-13; float32 rtol 2e-5, atol 2e-6.
The references run their per-parameter path (``foreach=False``), which their foreach path
matches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytorch_optimizer = pytest.importorskip("pytorch_optimizer")

import optgen  # noqa: E402

#: Specs these tests step that are not (yet) in the catalogue, by name.
SPEC_FILES: dict[str, str] = {}

TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-6)}
SHAPES = [(), (0,), (7,), (3, 5), (2, 3, 4), (2, 3, 2, 2)]
STEPS = 25
FOREACH = False

class CorrectedRanger(pytorch_optimizer.Ranger):
    """The reference with RAdam's own rule below the rectification threshold: no step. The
    reference's rt = -1 sentinel becomes a step of -lr/bc1 there, so it steps by +lr/bc1*m,
    an ascent (``test_reference_ranger_ascends_before_rectification``); here that step size
    is 0."""

    @staticmethod
    def get_rectify_step_size(*args, **kwargs):
        step_size, n_sma = pytorch_optimizer.Ranger.get_rectify_step_size(*args, **kwargs)
        return max(step_size, 0.0), n_sma


REFERENCES = {
    "yogi": (pytorch_optimizer.Yogi, [
        {}, {"lr": 1e-3, "betas": (0.8, 0.99), "eps": 1e-6, "initial_accumulator": 1e-3},
        {"weight_decay": 0.1}, {"weight_decay": 0.1, "weight_decouple": False},
        {"weight_decay": 0.1, "fixed_decay": True}, {"maximize": True},
    ], ("exp_avg", "exp_avg_sq")),
    "adopt": (pytorch_optimizer.ADOPT, [
        {}, {"lr": 1e-2, "betas": (0.8, 0.99)}, {"weight_decay": 0.1},
        {"weight_decay": 0.1, "weight_decouple": True},
        {"weight_decay": 0.1, "weight_decouple": True, "fixed_decay": True},
        {"maximize": True, "eps": 1e-3},
    ], ("exp_avg", "exp_avg_sq")),
    "ademamix": (pytorch_optimizer.AdEMAMix, [
        {}, {"t_alpha_beta3": 10.0},
        {"t_alpha_beta3": 40.0, "alpha": 2.0, "betas": (0.8, 0.99, 0.999)},
        {"weight_decay": 0.1}, {"weight_decay": 0.1, "weight_decouple": True},
        {"maximize": True, "eps": 1e-6, "lr": 1e-2},
    ], ("exp_avg", "exp_avg_sq", "exp_avg_slow")),
    # Adan without max_grad_norm (global-norm clipping); maximize below, against the paper
    "adan": (pytorch_optimizer.Adan, [
        {}, {"lr": 1e-2, "betas": (0.9, 0.9, 0.999), "eps": 1e-6}, {"weight_decay": 0.1},
        {"weight_decay": 0.1, "weight_decouple": True},
    ], ("exp_avg", "exp_avg_sq", "exp_avg_diff", "previous_grad")),
    "novograd": (pytorch_optimizer.NovoGrad, [
        {}, {"lr": 1e-2, "betas": (0.9, 0.99), "eps": 1e-6}, {"weight_decay": 0.1},
        {"weight_decay": 0.1, "weight_decouple": True},
        {"weight_decay": 0.1, "weight_decouple": True, "fixed_decay": True},
        {"grad_averaging": True, "maximize": True},
    ], ("grads_ema", "moments")),
    # MADGRAD's k counts the optimizer's steps (every param here steps every time: t)
    "madgrad": (pytorch_optimizer.MADGRAD, [
        {}, {"momentum": 0.0}, {"momentum": 0.0, "eps": 0.0, "lr": 1e-2},
        {"weight_decay": 0.1}, {"weight_decay": 0.1, "weight_decouple": True},
        {"maximize": True, "lr": 0.0},
    ], ("grad_sum_sq", "s", "x0")),
    # MARS: variance reduction on 2-D and larger params, AdamW on g for the others; L2 decay
    # (weight_decouple=False) is tested below against the reference on g + weight_decay*p
    "mars": (pytorch_optimizer.MARS, [
        {}, {"mars_type": "lion", "lr": 1e-3}, {"optimize_1d": True, "gamma": 0.1},
        {"weight_decay": 0.1, "weight_decay_1d": 0.0}, {"weight_decay": 0.1, "fixed_decay": True},
        {"ams_bound": True, "betas": (0.9, 0.95)}, {"cautious": True},
        {"maximize": True, "lr_1d": 1e-2, "betas_1d": (0.8, 0.9)},
    ], ("exp_avg", "exp_avg_sq", "last_grad", "max_exp_avg_sq")),
    # AdamP/SGDP: delta 0.1 projects where g is nearly orthogonal to p (the gradients below
    # make some so), 2 mostly over the whole tensor (the per-channel cosines of random
    # vectors often pass delta/sqrt(channel_size)), 10 every channel
    "adamp": (pytorch_optimizer.AdamP, [
        {}, {"delta": 2.0}, {"delta": 10.0, "nesterov": True, "betas": (0.8, 0.99)},
        {"weight_decay": 0.1, "delta": 2.0},
        {"weight_decay": 0.1, "fixed_decay": True, "wd_ratio": 0.5, "delta": 10.0},
        {"maximize": True, "delta": 2.0, "eps": 1e-6, "lr": 1e-2},
        {"weight_decay": 0.1, "weight_decouple": False},
    ], ("exp_avg", "exp_avg_sq")),
    "sgdp": (pytorch_optimizer.SGDP, [
        {}, {"momentum": 0.9, "delta": 2.0}, {"momentum": 0.9, "nesterov": True, "delta": 10.0},
        {"momentum": 0.5, "dampening": 0.1, "weight_decay": 0.1, "delta": 2.0},
        {"weight_decay": 0.1, "fixed_decay": True, "wd_ratio": 0.5, "delta": 10.0},
        {"maximize": True, "momentum": 0.9, "delta": 2.0, "lr": 1e-2},
        {"weight_decay": 0.1, "weight_decouple": False, "momentum": 0.5},
    ], (("momentum_buffer", "momentum"),)),
    "ranger": (CorrectedRanger, [
        {}, {"degenerated_to_sgd": True}, {"k": 3, "alpha": 0.8, "betas": (0.9, 0.99)},
        {"use_gc": False}, {"gc_conv_only": True, "lr": 1e-2}, {"weight_decay": 0.1},
        {"weight_decay": 0.1, "weight_decouple": False}, {"weight_decay": 0.1, "fixed_decay": True},
        {"maximize": True, "n_sma_threshold": 4, "eps": 1e-8},
    ], ("exp_avg", "exp_avg_sq", "slow_buffer")),
    "signsgd": (pytorch_optimizer.SignSGD, [
        {}, {"momentum": 0.0}, {"lr": 1e-2, "weight_decay": 0.1},
        {"weight_decay": 0.1, "weight_decouple": False, "momentum": 0.5}, {"maximize": True},
    ], ("momentum_buffer",)),
}

CASES = [pytest.param(name, hypers, id=f"{name}-{i}")
         for name, (_, cases, _) in REFERENCES.items() for i, hypers in enumerate(cases)]


def _gradients(dtype):
    """Random gradients, every third step larger; every fifth nearly orthogonal to the first
    parameters' rows (AdamP's projection then acts at its default delta)."""
    rng = np.random.default_rng(1)
    start = _params(np.float64)
    out = []
    for step in range(STEPS):
        grads = [rng.standard_normal(s) * (1 + 2 * (step % 3 == 0)) for s in SHAPES]
        if step % 5 == 4:
            grads = [_orthogonal(g, p) + 1e-3 * rng.standard_normal(g.shape)
                     for g, p in zip(grads, start)]
        out.append([np.asarray(g, dtype=dtype) for g in grads])
    return out


def _params(dtype):
    rng = np.random.default_rng(0)
    return [np.asarray(rng.standard_normal(s), dtype=dtype) for s in SHAPES]


def _orthogonal(g: np.ndarray, p: np.ndarray) -> np.ndarray:
    """g without its component along p, channel by channel (every dimension but the first)."""
    if g.ndim < 2 or g.size == 0:
        return g
    gv, pv = g.reshape(g.shape[0], -1), p.reshape(p.shape[0], -1)
    scale = (gv * pv).sum(axis=1, keepdims=True) / (pv * pv).sum(axis=1, keepdims=True)
    return (gv - scale * pv).reshape(g.shape)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name, hypers", CASES)
def test_matches_pytorch_optimizer(name, hypers, dtype, backend):
    make, _, states = REFERENCES[name]
    params = _params(dtype)
    tparams = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    opt = optgen.optimizer(SPEC_FILES.get(name, name), params, backend=backend, **hypers)
    ref = make(tparams, foreach=FOREACH, **hypers)
    for grads in _gradients(dtype):
        opt.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        ref.step()
    tol = TOLERANCES[dtype]
    for i, (got, want) in enumerate(zip(params, tparams)):
        np.testing.assert_allclose(got, want.detach().numpy(), **tol, err_msg=f"params[{i}]")
        for state in states:
            ours, theirs = state if isinstance(state, tuple) else (state, state)
            if theirs in ref.state[want]:
                np.testing.assert_allclose(opt.state[i][ours], ref.state[want][theirs].numpy(),
                                           **tol, err_msg=f"state[{i}][{ours!r}]")
            else:
                assert ours not in opt.state[i]


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_adan_maximize_is_minimizing_the_negated_gradient(backend):
    """Adan with maximize=True steps as Adan on -g (the paper's first gradient difference is 0;
    pytorch-optimizer starts its previous gradient before negating it, so its first difference
    is 2g: a quirk the spec does not copy)."""
    grads = _gradients(np.float64)
    rng = np.random.default_rng(0)
    start = [np.asarray(rng.standard_normal(s)) for s in SHAPES]
    up = [p.copy() for p in start]
    down = [p.copy() for p in start]
    maximizing = optgen.optimizer("adan", up, backend=backend, maximize=True)
    minimizing = optgen.optimizer("adan", down, backend=backend)
    for step in grads:
        maximizing.step(step)
        minimizing.step([-g for g in step])
    for a, b in zip(up, down):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("hypers", [{"weight_decay": 0.1}, {"weight_decay": 0.1, "optimize_1d": True,
                                                            "mars_type": "lion"}])
def test_mars_l2_decay_is_the_gradient_of_the_regularized_loss(hypers, dtype):
    """MARS with weight_decouple=False steps on g + weight_decay*p (weight_decay_1d*p for the
    1-d params), as the reference steps without decay on that gradient. (The reference adds the
    term after computing its update, where only its stored previous gradient sees it.)"""
    rng = np.random.default_rng(0)
    params = [np.asarray(rng.standard_normal(s), dtype=dtype) for s in SHAPES]
    tparams = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    opt = optgen.optimizer("mars", params, weight_decouple=False, **hypers)
    plain = {k: v for k, v in hypers.items() if k != "weight_decay"}
    ref = pytorch_optimizer.MARS(tparams, foreach=False, weight_decay=0.0, weight_decay_1d=0.0,
                                 **plain)
    for grads in _gradients(dtype):
        for p, g in zip(tparams, grads):
            mixed = hypers.get("optimize_1d", False) or p.dim() >= 2
            decay = hypers["weight_decay"] if mixed else 0.1
            p.grad = torch.tensor(g) + decay * p.detach()
        opt.step(grads)
        ref.step()
    tol = TOLERANCES[dtype]
    for i, (got, want) in enumerate(zip(params, tparams)):
        np.testing.assert_allclose(got, want.detach().numpy(), **tol, err_msg=f"params[{i}]")
        np.testing.assert_allclose(opt.state[i]["last_grad"],
                                   ref.state[want]["last_grad"].numpy(), **tol)


def test_adamp_cases_reach_every_projection():
    """The AdamP/SGDP cases above are not vacuous: over their parameters and gradients, the
    reference's own tests pick the per-channel projection, the whole-tensor one and none."""
    from pytorch_optimizer.optimizer.adamp import (channel_view, cosine_similarity_by_view,
                                                   layer_view)

    seen = set()
    params = [torch.tensor(p) for p in _params(np.float64)]
    for grads in _gradients(np.float64):
        for p, g in zip(params, grads):
            g = torch.tensor(g)
            if p.dim() < 2 or p.numel() == 0:
                continue
            for delta in (0.1, 2.0, 10.0):
                channel = cosine_similarity_by_view(g, p, 1e-8, channel_view).max() < (
                    delta / np.sqrt(channel_view(p).size(1)))
                layer = cosine_similarity_by_view(g, p, 1e-8, layer_view).max() < (
                    delta / np.sqrt(p.numel()))
                seen.add("channel" if channel else "layer" if layer else "none")
    assert seen == {"channel", "layer", "none"}


def test_reference_ranger_ascends_before_rectification():
    """The quirk the catalogue's Ranger does not follow: below the SMA threshold (and without
    degenerated_to_sgd) pytorch-optimizer's Ranger moves p along +m (an ascent), where RAdam's
    authors skip the step; optgen's Ranger leaves p (and its slow weights) as they were."""
    p0 = np.array([1.0, -2.0, 3.0])
    g = np.array([0.5, 0.5, -1.0])
    ours = p0.copy()
    optgen.optimizer("ranger", [ours], lr=0.1).step([g])
    ref = torch.nn.Parameter(torch.tensor(p0))
    opt = pytorch_optimizer.Ranger([ref], lr=0.1, foreach=False)
    ref.grad = torch.tensor(g)
    opt.step()
    np.testing.assert_array_equal(ours, p0)
    moved = ref.detach().numpy() - p0
    assert np.all(np.sign(moved) == np.sign(g))  # +lr/(1 - b1)*(1 - b1)*g: uphill
