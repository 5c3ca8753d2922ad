"""Schedules against torch.optim.lr_scheduler, the schedule drivers, and gradient clipping.

Tolerance for schedules: rtol 1e-10, atol 1e-15. optgen evaluates the closed form at each t;
torch's schedulers mostly update recursively (lr *= gamma, cosine steps), which accumulates a
few ulps over 150 steps.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import optgen  # noqa: E402

STEPS = 150
TOL = dict(rtol=1e-10, atol=1e-15)
BASE_LR = 0.5


def torch_lrs(make, steps=STEPS, base_lr=BASE_LR):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = make(opt)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(steps - 1):
        opt.step()
        scheduler.step()
        lrs.append(opt.param_groups[0]["lr"])
    return np.array(lrs)


S = torch.optim.lr_scheduler
CASES = [
    ("step_lr", {"step_size": 7, "gamma": 0.5}, lambda o: S.StepLR(o, step_size=7, gamma=0.5)),
    ("exponential_lr", {"gamma": 0.97}, lambda o: S.ExponentialLR(o, gamma=0.97)),
    ("multistep_lr", {"milestones": [10, 40, 40, 90], "gamma": 0.5},
     lambda o: S.MultiStepLR(o, milestones=[10, 40, 40, 90], gamma=0.5)),
    ("cosine_annealing", {"T_max": 40, "eta_min": 0.01},
     lambda o: S.CosineAnnealingLR(o, T_max=40, eta_min=0.01)),
    ("cosine_warm_restarts", {"T_0": 17, "eta_min": 0.001},
     lambda o: S.CosineAnnealingWarmRestarts(o, T_0=17, eta_min=0.001)),
    ("cosine_warm_restarts", {"T_0": 5, "T_mult": 2, "eta_min": 0.01},
     lambda o: S.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=2, eta_min=0.01)),
    ("cosine_warm_restarts", {"T_0": 3, "T_mult": 3},
     lambda o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=3)),
    ("linear_lr", {"start_factor": 0.25, "end_factor": 0.9, "total_iters": 30},
     lambda o: S.LinearLR(o, start_factor=0.25, end_factor=0.9, total_iters=30)),
    ("polynomial_lr", {"total_iters": 60, "power": 2.0},
     lambda o: S.PolynomialLR(o, total_iters=60, power=2.0)),
]


@pytest.mark.parametrize("name, hypers, make", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_schedule_matches_torch(name, hypers, make):
    ours = optgen.schedule(name, base_lr=BASE_LR, **hypers).values(STEPS)
    np.testing.assert_allclose(ours, torch_lrs(make), **TOL)


def test_one_cycle_matches_torch():
    ours = optgen.schedule("one_cycle", max_lr=0.8, total_steps=STEPS, pct_start=0.25,
                           div_factor=10.0, final_div_factor=100.0).values(STEPS)
    want = torch_lrs(lambda o: S.OneCycleLR(o, max_lr=0.8, total_steps=STEPS, pct_start=0.25,
                                            div_factor=10.0, final_div_factor=100.0,
                                            cycle_momentum=False))
    np.testing.assert_allclose(ours, want, **TOL)


def test_sequential_warmup_then_cosine_matches_torch():
    warmup = optgen.schedule("linear_lr", base_lr=BASE_LR, start_factor=0.1, total_iters=10)
    cosine = optgen.schedule("cosine_annealing", base_lr=BASE_LR, T_max=100)
    ours = [optgen.SequentialSchedule([warmup, cosine], milestones=[10])(t) for t in range(STEPS)]
    want = torch_lrs(lambda o: S.SequentialLR(o, [
        S.LinearLR(o, start_factor=0.1, total_iters=10), S.CosineAnnealingLR(o, T_max=100)],
        milestones=[10]))
    np.testing.assert_allclose(ours, want, **TOL)


def test_scheduled_lr_drives_an_optimizer_like_torch():
    rng = np.random.default_rng(0)
    p = rng.standard_normal(5)
    tp = torch.tensor(p.copy())
    opt = optgen.optimizer("sgd", [p], lr=BASE_LR, momentum=0.9)
    driver = optgen.ScheduledLR(opt, optgen.schedule("step_lr", base_lr=BASE_LR, step_size=3,
                                                     gamma=0.5))
    topt = torch.optim.SGD([tp], lr=BASE_LR, momentum=0.9, foreach=False)
    tsched = S.StepLR(topt, step_size=3, gamma=0.5)
    for _ in range(12):
        g = rng.standard_normal(5)
        opt.step([g])
        tp.grad = torch.tensor(g)
        topt.step()
        driver.step()
        tsched.step()
        assert driver.get_last_lr() == pytest.approx(tsched.get_last_lr()[0], rel=1e-12)
    np.testing.assert_allclose(p, tp.numpy(), rtol=1e-12)


@pytest.mark.parametrize("mode, threshold_mode", [("min", "rel"), ("max", "abs")])
def test_reduce_on_plateau_matches_torch(mode, threshold_mode):
    metrics = [1.0, 0.9, 0.95, 0.95, 0.96, 0.97, 0.5, 0.5, 0.5, 0.5, 0.5, 0.49, 0.49, 0.49]
    metrics = metrics if mode == "min" else [-m for m in metrics]
    opt = optgen.optimizer("sgd", [np.zeros(2)], lr=1.0)
    ours = optgen.ReduceLROnPlateau(opt, mode=mode, factor=0.5, patience=2, threshold=0.01,
                                    threshold_mode=threshold_mode, cooldown=1, min_lr=0.1)
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    theirs = S.ReduceLROnPlateau(topt, mode=mode, factor=0.5, patience=2, threshold=0.01,
                                 threshold_mode=threshold_mode, cooldown=1, min_lr=0.1)
    for metric in metrics:
        ours.step(metric)
        theirs.step(metric)
        assert ours.get_last_lr() == pytest.approx(topt.param_groups[0]["lr"], rel=1e-12)


def test_schedule_arguments_are_checked():
    with pytest.raises(ValueError, match="T_max=0 is outside its domain"):
        optgen.schedule("cosine_annealing", T_max=0)
    with pytest.raises(ValueError, match="warmup must end before total"):
        optgen.schedule("warmup_cosine", warmup=10, total=5)
    with pytest.raises(ValueError, match="'step_lr' is a schedule, not an optimizer"):
        optgen.optimizer("step_lr", [np.zeros(1)])
    with pytest.raises(ValueError, match="t must be a nonnegative int"):
        optgen.schedule("step_lr")(-1)
    assert "step_lr" in optgen.available("schedule")
    assert "step_lr" not in optgen.available("optimizer")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    rng = np.random.default_rng(1)
    shapes = [(3, 4), (), (0,), (7,)]
    if norm_type == float("inf"):  # torch cannot take the max-norm of an empty tensor
        shapes.remove((0,))
    grads = [rng.standard_normal(s) for s in shapes]
    tgrads = [torch.tensor(g) for g in grads]
    params = [torch.zeros_like(g, requires_grad=True) for g in tgrads]
    for p, g in zip(params, tgrads):
        p.grad = g.clone()
    want = torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
    total = optgen.clip_grad_norm_(grads, max_norm, norm_type=norm_type)
    assert total == pytest.approx(float(want), rel=1e-12)
    for got, p in zip(grads, params):
        np.testing.assert_allclose(got, p.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_clip_grad_value_and_errors():
    assert optgen.clip_grad_norm_([np.zeros(0), np.array([3.0])], 1.0, float("inf")) == 3.0
    g = np.array([-3.0, 0.5, 2.0])
    optgen.clip_grad_value_([g], 1.0)
    np.testing.assert_array_equal(g, [-1.0, 0.5, 1.0])
    with pytest.raises(RuntimeError, match="non-finite"):
        optgen.clip_grad_norm_([np.array([np.inf])], 1.0, error_if_nonfinite=True)
    with pytest.raises(TypeError, match=r"grads\[0\] must be a numpy array"):
        optgen.clip_grad_norm_([[1.0]], 1.0)


@pytest.mark.parametrize("value, what", [
    ("base * numel", "'numel' belongs to a tensor"),
    ("base * channel_size", "'channel_size' belongs to a tensor"),
    ("base * ndim", "'ndim' belongs to a tensor"),
    ("base * amax(base)", "amax() is computed over a tensor"),
    ("base * channel_sum(base)", "channel_sum() is computed over a tensor"),
    ("sum(base)", "sum() is computed over a tensor"),
])
def test_a_schedule_reading_a_tensor_is_a_located_error(tmp_path, value, what):
    """A schedule is lr as a function of t: a tensor's sizes or reductions in it were accepted
    by check and failed at build (an internal error) or at the first call (NameError)."""
    from optgen.compiler.errors import SpecError, SpecErrors
    from optgen.compiler.pipeline import check_file

    path = tmp_path / "bad.opt"
    path.write_text(f"schedule bad\nhyper base = 0.1 in [0, inf)\nupdate:\n  lr = {value}\n")
    with pytest.raises((SpecError, SpecErrors)) as caught:
        check_file(path)
    text = str(caught.value)
    assert f"{path}:4:" in text and what in text and "^" in text
