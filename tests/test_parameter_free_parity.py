"""Parameter-free optimizers against their authors' packages (issue 13): Prodigy against
``prodigyopt`` 1.1.2, D-Adapt Adam against ``dadaptation`` 3.2. Their step size d is a per-group state learned from sums over every
tensor of the param group (``group_sum``), so these also test the group level of the planner:
reduction passes whose sums are added over the group's tensors, per-group states, and both
front ends stepping a group's tensors together.

25 steps of a noisy quadratic (a gradient that points back to a target, so that d grows) on
0-d, empty, 1-D, 2-D, 3-D and 4-D parameters of one group; parameters, every state and d
compared, float64 and float32. Both sides get the same gradients (computed from optgen's
parameters), so a difference cannot feed back. Tolerances as for torch.optim: float64 rtol
1e-10, atol 1e-13; float32 rtol 2e-5, atol 2e-6 (d: rtol 1e-4 in float32, where prodigyopt
accumulates its sums in float32 and optgen in float64).
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
prodigyopt = pytest.importorskip("prodigyopt")
dadaptation = pytest.importorskip("dadaptation")

import optgen  # noqa: E402
import optgen.torch as ot  # noqa: E402

TOLERANCES = {np.float64: dict(rtol=1e-10, atol=1e-13), np.float32: dict(rtol=2e-5, atol=2e-6)}
D_TOLERANCE = {np.float64: 1e-10, np.float32: 1e-4}
SHAPES = [(), (0,), (7,), (3, 5), (2, 3, 4), (2, 3, 2, 2)]
STEPS = 25

PRODIGY_CASES = [
    {}, {"lr": 0.5, "d_coef": 2.0, "eps": 1e-6},
    {"weight_decay": 0.1}, {"weight_decay": 0.1, "decouple": False},
    {"use_bias_correction": True}, {"safeguard_warmup": True, "growth_rate": 1.05},
    {"betas": (0.0, 0.99), "beta3": 0.5}, {"d0": 1e-3, "betas": (0.8, 0.99)},
]
DADAPT_CASES = [
    {}, {"weight_decay": 0.1}, {"weight_decay": 0.1, "decouple": True},
    {"use_bias_correction": True}, {"growth_rate": 1.05},
    {"betas": (0.5, 0.9), "eps": 1e-6, "lr": 0.5},
]
STATES = ("s", "p0", "exp_avg", "exp_avg_sq")


def _start(dtype):
    rng = np.random.default_rng(0)
    params = [np.asarray(rng.standard_normal(s), dtype=dtype) for s in SHAPES]
    targets = [np.asarray(rng.standard_normal(s) + 3.0, dtype=dtype) for s in SHAPES]
    return params, targets


def _gradient(params, targets, step, dtype):
    """A noisy quadratic's gradient, the same for both sides."""
    rng = np.random.default_rng(100 + step)
    return [np.asarray(p - t + 0.3 * rng.standard_normal(p.shape), dtype=dtype)
            for p, t in zip(params, targets)]


def _compare(params, states, d, reference, dtype):
    tol = TOLERANCES[dtype]
    for i, (got, want) in enumerate(zip(params, reference.param_groups[0]["params"])):
        np.testing.assert_allclose(got, want.detach().numpy(), **tol, err_msg=f"params[{i}]")
        for name in STATES:
            saved = reference.state[want]
            if name in saved and saved[name].shape == want.shape:
                np.testing.assert_allclose(states[i][name], saved[name].numpy(), **tol,
                                           err_msg=f"state[{i}][{name!r}]")
    np.testing.assert_allclose(d, reference.param_groups[0]["d"], rtol=D_TOLERANCE[dtype])


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("hypers", PRODIGY_CASES, ids=lambda h: ",".join(h) or "defaults")
def test_prodigy_matches_prodigyopt(hypers, dtype, backend):
    params, targets = _start(dtype)
    reference = prodigyopt.Prodigy([torch.nn.Parameter(torch.tensor(p)) for p in params],
                                   **hypers)
    opt = optgen.optimizer("prodigy", params, backend=backend, **hypers)
    for step in range(STEPS):
        grads = _gradient(params, targets, step, dtype)
        opt.step(grads)
        for p, g in zip(reference.param_groups[0]["params"], grads):
            p.grad = torch.tensor(g)
        reference.step()
    assert reference.param_groups[0]["d"] > 2 * reference.param_groups[0]["d0"]  # d moved
    _compare(params, opt.state, opt.group_state["d"], reference, dtype)
    assert opt.group_state["step"] == STEPS


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("hypers", DADAPT_CASES, ids=lambda h: ",".join(h) or "defaults")
def test_dadapt_adam_matches_dadaptation(hypers, dtype, backend, capsys):
    params, targets = _start(dtype)
    reference = dadaptation.DAdaptAdam([torch.nn.Parameter(torch.tensor(p)) for p in params],
                                       **hypers)
    opt = optgen.optimizer("dadapt_adam", params, backend=backend, **hypers)
    for step in range(STEPS):
        grads = _gradient(params, targets, step, dtype)
        opt.step(grads)
        for p, g in zip(reference.param_groups[0]["params"], grads):
            p.grad = torch.tensor(g)
        reference.step()
    assert reference.param_groups[0]["d"] > 2 * 1e-6  # d moved
    _compare(params, opt.state, opt.group_state["d"], reference, dtype)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("hypers", PRODIGY_CASES[:4], ids=lambda h: ",".join(h) or "defaults")
def test_prodigy_torch_front_end_matches_prodigyopt(hypers, dtype):
    """optgen.torch steps a group's tensors together; d lives in the param group, as
    prodigyopt keeps it."""
    params, targets = _start(dtype)
    ours = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    reference = prodigyopt.Prodigy([torch.nn.Parameter(torch.tensor(p)) for p in params],
                                   **hypers)
    opt = ot.optimizer("prodigy", ours, **hypers)
    for step in range(STEPS):
        grads = _gradient([p.detach().numpy() for p in ours], targets, step, dtype)
        for p, q, g in zip(ours, reference.param_groups[0]["params"], grads):
            p.grad, q.grad = torch.tensor(g), torch.tensor(g)
        opt.step()
        reference.step()
    states = [{name: value.numpy() for name, value in opt.state[p].items() if name in STATES}
              for p in ours]
    _compare([p.detach().numpy() for p in ours], states, opt.param_groups[0]["d"], reference,
             dtype)


def test_prodigy_groups_adapt_their_own_d():
    """Two param groups each learn their own d: stepping them in one optimizer equals two
    optimizers (prodigyopt shares one d between groups; the docs say so)."""
    params, targets = _start(np.float64)
    together = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    apart = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    both = ot.optimizer("prodigy", [{"params": together[:3]},
                                    {"params": together[3:], "weight_decay": 0.1}])
    first = ot.optimizer("prodigy", apart[:3])
    second = ot.optimizer("prodigy", apart[3:], weight_decay=0.1)
    for step in range(10):
        grads = _gradient([p.detach().numpy() for p in together], targets, step, np.float64)
        for p, q, g in zip(together, apart, grads):
            p.grad, q.grad = torch.tensor(g), torch.tensor(g)
        both.step()
        first.step()
        second.step()
    for p, q in zip(together, apart):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert both.param_groups[0]["d"] == first.param_groups[0]["d"]
    assert both.param_groups[1]["d"] == second.param_groups[0]["d"]
    assert both.param_groups[0]["d"] != both.param_groups[1]["d"]


def test_prodigy_state_dict_round_trip_resumes_exactly():
    """d, d_max, d_numerator and the group's step survive a checkpoint in both front ends."""
    params, targets = _start(np.float64)
    copy = [p.copy() for p in params]
    whole = optgen.optimizer("prodigy", params)
    for step in range(12):
        whole.step(_gradient(params, targets, step, np.float64))
    first = optgen.optimizer("prodigy", copy)
    for step in range(6):
        first.step(_gradient(copy, targets, step, np.float64))
    resumed = optgen.optimizer("prodigy", copy)
    resumed.load_state_dict(first.state_dict())
    assert resumed.group_state == first.group_state
    for step in range(6, 12):
        resumed.step(_gradient(copy, targets, step, np.float64))
    for a, b in zip(params, copy):
        np.testing.assert_array_equal(a, b)

    ours = [torch.nn.Parameter(torch.tensor(p)) for p in _start(np.float64)[0]]
    opt = ot.optimizer("prodigy", ours)
    for step in range(3):
        for p, g in zip(ours, _gradient([p.detach().numpy() for p in ours], targets, step,
                                        np.float64)):
            p.grad = torch.tensor(g)
        opt.step()
    saved = opt.state_dict()
    again = ot.optimizer("prodigy", ours)
    again.load_state_dict(saved)
    assert again.param_groups[0]["d"] == opt.param_groups[0]["d"]
    assert again.param_groups[0]["step"] == 3


def test_prodigy_bad_group_state_is_named():
    params, targets = _start(np.float64)
    opt = optgen.optimizer("prodigy", params)
    opt.step(_gradient(params, targets, 0, np.float64))
    saved = opt.state_dict()
    saved["group"]["d"] = "large"
    with pytest.raises((TypeError, ValueError), match=r"group.*'d'"):
        opt.load_state_dict(saved)
    del saved["group"]["d"]
    with pytest.raises(ValueError, match="but not 'd'"):
        opt.load_state_dict(saved)
    ours = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    topt = ot.optimizer("prodigy", ours)
    for p in ours:
        p.grad = torch.ones_like(p)
    topt.step()
    topt.param_groups[0]["d"] = "x"
    before = [p.detach().clone() for p in ours]
    with pytest.raises((TypeError, ValueError), match=r"param_groups\[0\]\['d'\]"):
        topt.step()
    for p, b in zip(ours, before):
        torch.testing.assert_close(p.detach(), b, rtol=0, atol=0)


LR_SCHEDULE = [1.0] * 5 + [0.0] * 2 + [1.0] * 8


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name, make", [("prodigy", lambda p, **h: prodigyopt.Prodigy(p, **h)),
                                        ("dadapt_adam",
                                         lambda p, **h: dadaptation.DAdaptAdam(p, **h))])
def test_lr_zero_and_late_params_match_the_references(name, make, capsys):
    """Found by a hostile review: a step with lr = 0 (a warm-up from 0) changes nothing and is
    not counted, and bias correction reads the group's count of steps, not a param's own (a
    param that has no gradient for the first steps): as the references."""
    params, targets = _start(np.float64)
    reference = make([torch.nn.Parameter(torch.tensor(p)) for p in params],
                     use_bias_correction=True)
    opt = optgen.optimizer(name, params, use_bias_correction=True)
    for step, lr in enumerate(LR_SCHEDULE):
        grads = _gradient(params, targets, step, np.float64)
        if step < 3:
            grads[2] = None  # params[2] joins late
        opt.lr = lr
        reference.param_groups[0]["lr"] = lr
        opt.step(grads)
        for p, g in zip(reference.param_groups[0]["params"], grads):
            p.grad = None if g is None else torch.tensor(g)
        reference.step()
    _compare(params, opt.state, opt.group_state["d"], reference, np.float64)
    assert opt.group_state["k"] == reference.param_groups[0]["k"] == len(LR_SCHEDULE) - 2


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_prodigy_warm_up_from_zero_with_a_torch_scheduler():
    params, targets = _start(np.float64)
    ours = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    theirs = [torch.nn.Parameter(torch.tensor(p)) for p in params]
    opt, reference = ot.optimizer("prodigy", ours), prodigyopt.Prodigy(theirs)
    warm = [torch.optim.lr_scheduler.LambdaLR(o, lambda k: min(1.0, k / 5))
            for o in (opt, reference)]
    for step in range(15):
        grads = _gradient([p.detach().numpy() for p in ours], targets, step, np.float64)
        for p, q, g in zip(ours, theirs, grads):
            p.grad, q.grad = torch.tensor(g), torch.tensor(g)
        opt.step()
        reference.step()
        for scheduler in warm:
            scheduler.step()
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(opt.param_groups[0]["d"], reference.param_groups[0]["d"],
                               rtol=1e-10)
