"""Optimizers checked against careful NumPy transcriptions of their reference algorithms.

LAMB and LARS follow optax (``optax.lamb``, ``optax.lars``), which is not installed here (it
needs JAX); the functions below transcribe optax's chains of transforms one for one:

* lamb = scale_by_adam(b1, b2, eps) -> add_decayed_weights(wd) -> scale_by_trust_ratio()
  -> scale_by_learning_rate(lr);
* lars = add_decayed_weights(wd) -> scale_by_trust_ratio(trust_coefficient, eps)
  -> scale_by_learning_rate(lr) -> trace(momentum, nesterov).

scale_by_trust_ratio: ratio = coeff * norm(p) / (norm(u) + eps), replaced by 1 where either norm
is 0; norms are per tensor. Tolerances: float64 rtol 1e-10, atol 1e-13 (the reduction order
differs from NumPy's, a few ulps per norm); float32 rtol 2e-5, atol 2e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

import optgen

from helpers import STEPS, gradient_sequence, initial_params

TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-6)}


def trust_ratio(p, u, coefficient=1.0, eps=0.0):
    p_norm = np.sqrt(np.sum(p.astype(np.float64) ** 2))
    u_norm = np.sqrt(np.sum(u.astype(np.float64) ** 2))
    if p_norm == 0 or u_norm == 0:
        return 1.0
    return coefficient * p_norm / (u_norm + eps)


def lamb_reference(params, grads_seq, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0):
    b1, b2 = betas
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_seq, start=1):
        for i, (p, g) in enumerate(zip(params, grads)):
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            u = (m[i] / (1 - b1 ** t)) / (np.sqrt(v[i] / (1 - b2 ** t)) + eps)
            u = u + weight_decay * p
            p -= (lr * trust_ratio(p, u) * u).astype(p.dtype)
    return params, {"exp_avg": m, "exp_avg_sq": v}


def lars_reference(params, grads_seq, lr=1.0, weight_decay=0.0, trust_coefficient=1e-3, eps=0.0,
                   momentum=0.9, nesterov=False):
    trace = [np.zeros_like(p) for p in params]
    for grads in grads_seq:
        for i, (p, g) in enumerate(zip(params, grads)):
            u = g + weight_decay * p
            u = -lr * trust_ratio(p, u, trust_coefficient, eps) * u
            trace[i] = momentum * trace[i] + u
            p += (u + momentum * trace[i] if nesterov else trace[i]).astype(p.dtype)
    return params, {"trace": trace}


CASES = [
    ("lamb", lamb_reference, {}),
    ("lamb", lamb_reference, {"lr": 1e-2, "betas": (0.8, 0.99), "weight_decay": 0.1}),
    ("lars", lars_reference, {}),
    ("lars", lars_reference, {"lr": 0.5, "weight_decay": 0.01, "trust_coefficient": 0.02,
                              "eps": 1e-6, "momentum": 0.5, "nesterov": True}),
]


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name, reference, hypers", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_matches_transcription(name, reference, hypers, dtype, backend):
    want_params, want_states = reference(initial_params(dtype), gradient_sequence(dtype), **hypers)
    params = initial_params(dtype)
    opt = optgen.optimizer(name, params, backend=backend, **hypers)
    for grads in gradient_sequence(dtype):
        opt.step(grads)
    tol = TOLERANCES[dtype]
    for i, (got, want) in enumerate(zip(params, want_params)):
        np.testing.assert_allclose(got, want, **tol, err_msg=f"params[{i}]")
        for key, values in want_states.items():
            np.testing.assert_allclose(opt.state[i][key], values[i], **tol,
                                       err_msg=f"state[{i}][{key!r}]")
    assert opt.state[2]["step"] == STEPS


def test_reductions_do_not_depend_on_the_thread_count():
    """Per-tensor norms sum fixed blocks: 1 thread and 2 threads give the same bits."""
    import numba

    rng = np.random.default_rng(0)
    start = rng.standard_normal(300_001).astype(np.float32)
    grads = [rng.standard_normal(start.shape).astype(np.float32) for _ in range(3)]
    results = []
    for threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
        numba.set_num_threads(threads)
        try:
            p = start.copy()
            opt = optgen.optimizer("lamb", [p], lr=0.1, weight_decay=0.01)
            for g in grads:
                opt.step([g])
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        results.append(p)
    np.testing.assert_array_equal(results[0], results[1])


def sophia_reference(params, grads_seq, hessians_seq, lr=1e-4, betas=(0.965, 0.99), rho=0.04,
                     weight_decay=0.1, bs=5120, maximize=False):
    """SophiaG (Liu et al., 2023, reference code): update_hessian() folds an estimate into h
    (called between steps, every k steps), step() does decoupled decay, momentum and the
    clipped sign update."""
    b1, b2 = betas
    m = [np.zeros_like(p) for p in params]
    h = [np.zeros_like(p) for p in params]
    for grads, hessians in zip(grads_seq, hessians_seq):
        for i, (p, g) in enumerate(zip(params, grads)):
            if hessians is not None:  # update_hessian() before this step
                h[i] = b2 * h[i] + (1 - b2) * hessians[i]
            g = -g if maximize else g
            p *= p.dtype.type(1 - lr * weight_decay)
            m[i] = b1 * m[i] + (1 - b1) * g
            ratio = np.minimum(np.abs(m[i]) / (rho * bs * h[i] + 1e-15), 1)
            p -= (lr * np.sign(m[i]) * ratio).astype(p.dtype)
    return params, {"exp_avg": m, "hess": h}


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("hypers", [{}, {"lr": 1e-2, "rho": 0.5, "bs": 8, "maximize": True}])
def test_sophia_matches_transcription(hypers, dtype, backend):
    """The Hessian estimate arrives every k = 4 steps (squared gradients, as SophiaG's GNB)."""
    grads_seq = gradient_sequence(dtype)
    hessians_seq = [[g * g for g in grads] if step % 4 == 0 else None
                    for step, grads in enumerate(gradient_sequence(dtype, seed=5))]
    want_params, want_states = sophia_reference(initial_params(dtype), grads_seq, hessians_seq,
                                                **hypers)
    params = initial_params(dtype)
    opt = optgen.optimizer("sophia", params, backend=backend, **hypers)
    for grads, hessians in zip(grads_seq, hessians_seq):
        opt.step(grads, **({"hessian": hessians} if hessians is not None else {}))
    tol = TOLERANCES[dtype]
    for i, (got, want) in enumerate(zip(params, want_params)):
        np.testing.assert_allclose(got, want, **tol, err_msg=f"params[{i}]")
        for key, values in want_states.items():
            np.testing.assert_allclose(opt.state[i][key], values[i], **tol,
                                       err_msg=f"state[{i}][{key!r}]")


def test_extra_inputs_are_checked():
    params = initial_params(np.float64)
    opt = optgen.optimizer("sophia", params)
    grads = gradient_sequence(np.float64, 1)[0]
    with pytest.raises(TypeError, match="sophia takes no input 'hessain' \\(its inputs: hessian\\)"):
        opt.step(grads, hessain=grads)
    with pytest.raises(ValueError, match=r"hessian\[4\] has shape"):
        opt.step(grads, hessian=grads[:4] + [grads[4].reshape(-1)])
    with pytest.raises(TypeError, match="adam takes no input 'hessian'"):
        optgen.optimizer("adam", params).step(grads, hessian=grads)


def newton_schulz_reference(g, a=3.4445, b=-4.775, c=2.0315, steps=5, eps=1e-7):
    """torch.optim.Muon's _zeropower_via_newtonschulz, transcribed in the matrix's own dtype
    (torch runs it in bfloat16; DESIGN.md asks for the parameter's dtype)."""
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / max(float(np.linalg.norm(x)), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if g.shape[0] > g.shape[1] else x


def muon_reference(params, grads_seq, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                   adjust_lr_fn="original"):
    """torch.optim.Muon's _single_tensor_muon, step by step."""
    bufs = [np.zeros_like(p) for p in params]
    for grads in grads_seq:
        for i, (p, g) in enumerate(zip(params, grads)):
            bufs[i] = bufs[i] + (1 - momentum) * (g - bufs[i])
            update = g + momentum * (bufs[i] - g) if nesterov else bufs[i]
            update = newton_schulz_reference(update)
            rows, cols = p.shape
            ratio = (0.2 * np.sqrt(max(rows, cols)) if adjust_lr_fn == "match_rms_adamw"
                     else np.sqrt(max(1, rows / cols)))
            p *= p.dtype.type(1 - lr * weight_decay)
            p -= (lr * ratio * update).astype(p.dtype)
    return params, {"momentum_buffer": bufs}


MATRICES = [(4, 6), (7, 3), (5, 5)]


def matrix_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in MATRICES]


def matrix_grads(dtype, steps=STEPS, seed=1):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s).astype(dtype) for s in MATRICES] for _ in range(steps)]


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("hypers", [
    {}, {"lr": 0.02, "momentum": 0.9, "nesterov": False, "adjust_lr_fn": "match_rms_adamw",
         "weight_decay": 0.0},
], ids=["defaults", "plain-momentum-rms"])
def test_muon_matches_transcription(hypers, dtype, backend):
    """Tolerance for float32: rtol 1e-4, atol 1e-5 — five Newton-Schulz rounds of 3x3..7x7
    matmuls amplify rounding differences between BLAS and NumPy's operation order."""
    want_params, want_states = muon_reference(matrix_params(dtype), matrix_grads(dtype), **hypers)
    params = matrix_params(dtype)
    opt = optgen.optimizer("muon", params, backend=backend, **hypers)
    for grads in matrix_grads(dtype):
        opt.step(grads)
    tol = TOLERANCES[np.float64] if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for i, (got, want) in enumerate(zip(params, want_params)):
        np.testing.assert_allclose(got, want, **tol, err_msg=f"params[{i}]")
        np.testing.assert_allclose(opt.state[i]["momentum_buffer"],
                                   want_states["momentum_buffer"][i], **tol)


def test_muon_close_to_torch_bfloat16():
    """torch.optim.Muon orthogonalizes in bfloat16 (8 significant bits); optgen in the
    parameter's dtype. Over 10 steps of lr 0.02 the parameters agree to 0.02 * 10 * 0.05."""
    torch = pytest.importorskip("torch")
    params = matrix_params(np.float32)
    tparams = [torch.tensor(p.copy()) for p in params]
    opt = optgen.optimizer("muon", params, lr=0.02)
    ref = torch.optim.Muon(tparams, lr=0.02)
    for grads in matrix_grads(np.float32, steps=10):
        opt.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        ref.step()
    for got, want in zip(params, tparams):
        np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=0.02 * 10 * 0.05)


def test_muon_wants_matrices_and_valid_choices():
    with pytest.raises(ValueError, match=r"muon steps 2-D matrices only; params\[0\] has shape \(3,\)"):
        optgen.optimizer("muon", [np.zeros(3)]).step([np.ones(3)])
    with pytest.raises(ValueError, match="adjust_lr_fn must be one of"):
        optgen.optimizer("muon", [np.zeros((2, 2))], adjust_lr_fn="fast")
    assert optgen.optimizer("muon", [np.zeros((2, 2))], adjust_lr_fn=None).adjust_lr_fn == "original"
