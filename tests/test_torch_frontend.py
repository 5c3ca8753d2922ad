"""The PyTorch front end: a drop-in torch.optim.Optimizer.

References and tolerances:
* torch.optim (foreach=False), every case of test_torch_parity, 25 steps, float64 rtol 1e-10 /
  atol 1e-13 and float32 rtol 2e-5 / atol 2e-6 (params and states), as the NumPy front end;
* the NumPy front end for the optimizers torch does not have: bit-identical (same kernels);
* half precision: torch.optim on float32 copies rounded to the half dtype after every step (our
  semantics: float32 state, float32 arithmetic), within one half-precision ulp.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import optgen  # noqa: E402
import optgen.torch as ot  # noqa: E402

from helpers import SHAPES, STEPS, gradient_sequence, initial_params  # noqa: E402
from test_torch_parity import CASES, HOST_SIDE_STATE, SKIP_EMPTY, TOLERANCES  # noqa: E402

TORCH_DTYPES = {np.float64: torch.float64, np.float32: torch.float32}
PARAMS = [pytest.param(name, hypers, id=f"{name}-{i}")
          for name, (_, cases) in CASES.items() for i, hypers in enumerate(cases)]


def run(make, dtype, name="", steps=STEPS):
    """Step fresh params with ``make(params)`` on the shared gradient sequence."""
    params = [torch.tensor(p) for p in initial_params(dtype)]
    default = torch.get_default_dtype()
    torch.set_default_dtype(TORCH_DTYPES[dtype])  # torch's scalar states (NAdam, ASGD)
    try:
        opt = make(params)
        for grads in gradient_sequence(dtype, steps):
            for p, g in zip(params, grads):
                p.grad = None if name in SKIP_EMPTY and g.size == 0 else torch.tensor(g)
            opt.step()
    finally:
        torch.set_default_dtype(default)
    return params, opt


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name, hypers", PARAMS)
def test_matches_torch_optim(name, hypers, dtype):
    torch_class = CASES[name][0]
    want, ref = run(lambda ps: torch_class(ps, foreach=False, **hypers), dtype, name)
    got, opt = run(lambda ps: ot.optimizer(name, ps, **hypers), dtype, name)
    assert type(opt).__name__ == torch_class.__name__
    assert isinstance(opt, torch.optim.Optimizer)
    tol = TOLERANCES[dtype]
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == b.dtype
        np.testing.assert_allclose(a.numpy(), b.numpy(), **tol, err_msg=f"params[{i}]")
    for a, b in zip(got, want):
        mine, theirs = opt.state[a], ref.state[b]
        for key, value in theirs.items():
            if key in HOST_SIDE_STATE.get(name, ()) or value is None:
                continue
            if key == "step":
                assert float(mine["step"]) == float(value) == STEPS
                continue
            np.testing.assert_allclose(np.asarray(mine[key]), np.asarray(value), **tol,
                                       err_msg=key)


@pytest.mark.parametrize("name, hypers", [
    ("lion", {"lr": 1e-3, "weight_decay": 0.1}), ("lamb", {"weight_decay": 0.01}),
    ("lars", {}), ("adabelief", {}), ("adabound", {}), ("schedule_free_adamw", {}),
    ("momentum_ema", {"lr": 0.1}), ("sophia", {}),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_matches_numpy_front_end_bit_for_bit(name, hypers, dtype):
    got, _ = run(lambda ps: ot.optimizer(name, ps, **hypers), dtype)
    params = initial_params(dtype)
    ref = optgen.optimizer(name, params, **hypers)
    for grads in gradient_sequence(dtype):
        ref.step(grads)
    for a, b in zip(got, params):
        np.testing.assert_array_equal(a.numpy(), b)


def test_many_tensors_take_one_native_call_per_group_and_dtype(monkeypatch):
    module = ot.optimizer_class("adam")._module
    calls = []
    original = module.step_many_cpu
    monkeypatch.setattr(module, "step_many_cpu", lambda *a: (calls.append(1), original(*a)))
    params = [torch.zeros(n + 1, requires_grad=True) for n in range(50)]
    params64 = [torch.zeros(3, dtype=torch.float64, requires_grad=True)]
    opt = ot.Adam([{"params": params}, {"params": params64, "lr": 0.1}])
    for _ in range(3):
        for p in params + params64:
            p.grad = torch.ones_like(p)
        opt.step()
    assert len(calls) == 3 * 2  # (group 0, float32) and (group 1, float64), each step
    assert all(float(opt.state[p]["step"]) == 3 for p in params + params64)


def test_updates_in_place_without_copies():
    params = [torch.randn(4, 5, requires_grad=True), torch.randn(7, requires_grad=True)]
    addresses = [p.data_ptr() for p in params]
    opt = ot.Adam(params, lr=0.1)
    for _ in range(2):
        for p in params:
            p.grad = torch.ones_like(p)
        opt.step()
    states = [opt.state[p]["exp_avg"].data_ptr() for p in params]
    for p in params:
        p.grad = torch.ones_like(p)
    opt.step()
    assert [p.data_ptr() for p in params] == addresses
    assert [opt.state[p]["exp_avg"].data_ptr() for p in params] == states


def test_param_groups_schedulers_closure_and_skipped_params():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    b = torch.nn.Parameter(torch.tensor([0.5]))
    frozen = torch.nn.Parameter(torch.tensor([3.0]))
    opt = ot.SGD([{"params": [w, frozen]}, {"params": [b], "lr": 0.5, "momentum": 0.9}],
                 lr=0.1)
    ref_w, ref_b = w.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    ref = torch.optim.SGD([{"params": [ref_w]}, {"params": [ref_b], "lr": 0.5,
                                                 "momentum": 0.9}], lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    ref_sched = torch.optim.lr_scheduler.StepLR(ref, step_size=2, gamma=0.5)

    def closure(params):
        def f():
            for p in params:
                p.grad = None
            loss = sum((p ** 2).sum() for p in params)
            loss.backward()
            return loss
        return f

    for _ in range(6):
        loss = opt.step(closure([w, b]))  # frozen gets no gradient
        ref.step(closure([ref_w, ref_b]))
        sched.step()
        ref_sched.step()
        assert isinstance(loss, torch.Tensor)
    torch.testing.assert_close(w.detach(), ref_w.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(b.detach(), ref_b.detach(), rtol=1e-6, atol=1e-7)
    assert frozen.item() == 3.0 and len(opt.state[frozen]) == 0
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.5 ** 3)


# Optimizers whose checkpoints move between torch.optim and optgen.torch, with options.
INTERCHANGE = [("adam", {"amsgrad": True}), ("adamw", {}), ("sgd", {"momentum": 0.9}),
               ("adagrad", {}), ("rmsprop", {"centered": True, "momentum": 0.5}),
               ("adamax", {}), ("adadelta", {}), ("rprop", {}), ("radam", {}), ("nadam", {}),
               ("adafactor", {})]


@pytest.mark.parametrize("direction", ["torch-to-optgen", "optgen-to-torch"])
@pytest.mark.parametrize("name, hypers", INTERCHANGE, ids=[n for n, _ in INTERCHANGE])
def test_checkpoints_interchange_with_torch_optim(name, hypers, direction):
    """Train 5 steps with one, save, load into the other, train 5 more: the same params as 10
    steps of torch alone (float64, rtol 1e-10)."""
    torch_class = CASES[name][0]
    make_torch = lambda ps: torch_class(ps, foreach=False, **hypers)  # noqa: E731
    make_optgen = lambda ps: ot.optimizer(name, ps, **hypers)  # noqa: E731
    first, second = (make_torch, make_optgen) if direction == "torch-to-optgen" else \
        (make_optgen, make_torch)
    shapes = [s for s in SHAPES if 0 not in s]
    rng = np.random.default_rng(3)
    start = [torch.tensor(rng.standard_normal(s)) for s in shapes]
    grads = [[torch.tensor(rng.standard_normal(s)) for s in shapes] for _ in range(10)]

    def train(opt, params, steps):
        for gs in steps:
            for p, g in zip(params, gs):
                p.grad = g.clone()
            opt.step()

    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        params = [p.clone() for p in start]
        opt = first(params)
        train(opt, params, grads[:5])
        saved = opt.state_dict()
        resumed = second(params)
        resumed.load_state_dict(saved)
        train(resumed, params, grads[5:])
        ref_params = [p.clone() for p in start]
        train(make_torch(ref_params), ref_params, grads)
    finally:
        torch.set_default_dtype(default)
    for got, want in zip(params, ref_params):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
def test_half_precision_params_keep_float32_state(dtype):
    rng = np.random.default_rng(5)
    start = torch.tensor(rng.standard_normal((6, 7)), dtype=torch.float32).to(dtype)
    p = start.clone().requires_grad_()
    opt = ot.Adam([p], lr=1e-2)
    ref_p32 = start.float().clone().requires_grad_()
    ref = torch.optim.Adam([ref_p32], lr=1e-2, foreach=False)
    for _ in range(10):
        g = torch.tensor(rng.standard_normal((6, 7)), dtype=torch.float32)
        p.grad = g.to(dtype)
        opt.step()
        ref_p32.grad = g.to(dtype).float()
        ref.step()
        with torch.no_grad():  # the reference's param rounded as ours is
            ref_p32.copy_(ref_p32.to(dtype).float())
    assert p.dtype == dtype and opt.state[p]["exp_avg"].dtype == torch.float32
    ulp = torch.finfo(dtype).eps
    np.testing.assert_allclose(p.detach().float().numpy(), ref_p32.detach().numpy(),
                               rtol=2 * ulp, atol=1e-6)
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"].numpy(),
                               ref.state[ref_p32]["exp_avg_sq"].numpy(), rtol=1e-4, atol=1e-8)


def test_bad_arguments_name_what_is_wrong():
    p = torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match="adam has no hyperparameter 'betas2'"):
        ot.Adam([p], betas2=(0.9, 0.99))
    with pytest.raises(ValueError, match="lr=-1.0 is outside its domain"):
        ot.Adam([p], lr=-1.0)
    with pytest.raises(TypeError, match="dtype torch.int64"):
        ot.Adam([torch.zeros(3, dtype=torch.int64)])
    with pytest.raises(ValueError, match="capturable=True is not supported"):
        ot.Adam([p], capturable=True)
    opt = ot.Adam([p], fused=True, foreach=False)  # torch's implementation switches: accepted
    opt.param_groups[0]["lr"] = "fast"
    p.grad = torch.ones(3)
    with pytest.raises(TypeError, match="lr must be a float"):
        opt.step()
    with pytest.raises(ValueError, match="is a schedule"):
        ot.optimizer("cosine_annealing", [p])
    with pytest.raises(AttributeError):
        ot.NoSuchOptimizer  # noqa: B018
    with pytest.raises(TypeError, match="process_group is for norm-based optimizers"):
        ot.Adam([p], process_group=object())
    with pytest.raises(TypeError, match="takes no input 'hessian'"):
        ot.Adam([p]).step(hessian=[torch.ones(3)])


def test_extra_inputs_match_the_numpy_front_end():
    """Sophia's Hessian estimate, given every other step, as step(hessian=[...])."""
    rng = np.random.default_rng(7)
    start = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    params = [torch.tensor(p, requires_grad=True) for p in start]
    arrays = [p.copy() for p in start]
    opt, ref = ot.Sophia(params, lr=0.01), optgen.optimizer("sophia", arrays, lr=0.01)
    for step in range(6):
        grads = [rng.standard_normal(p.shape) for p in start]
        hessian = [np.abs(rng.standard_normal(p.shape)) for p in start] if step % 2 else None
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        if hessian is None:
            opt.step()
            ref.step(grads)
        else:
            opt.step(hessian=[torch.tensor(h) for h in hessian])
            ref.step(grads, hessian=hessian)
    for p, a in zip(params, arrays):
        np.testing.assert_array_equal(p.detach().numpy(), a)


def test_catalogue_classes_are_exported():
    assert ot.Adam.__name__ == "Adam" and issubclass(ot.Adam, torch.optim.Optimizer)
    assert ot.Lion.__name__ == "Lion" and ot.ScheduleFreeAdamW.__name__ == "ScheduleFreeAdamW"
    assert ot.optimizer_class("adam") is ot.Adam


def test_a_scheduler_changing_lr_keeps_the_tables_and_matches_torch():
    """OneCycleLR writes a new lr into every group before each step: the address tables are
    kept (nothing about which states exist changed), and the params follow torch's AdamW
    under the same schedule (float32, rtol 1e-5)."""
    torch.manual_seed(0)
    shapes = [(8, 3, 3, 3), (8,), (16, 8), (16,)]
    params = [torch.randn(s, requires_grad=True) for s in shapes]
    twins = [p.detach().clone().requires_grad_(True) for p in params]

    def groups(ps):
        return [{"params": ps[::2], "weight_decay": 0.01}, {"params": ps[1::2],
                                                            "weight_decay": 0.0}]
    opt, ref = ot.AdamW(groups(params)), torch.optim.AdamW(groups(twins))
    scheds = [torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=30)
              for o in (opt, ref)]
    tables = None
    for step in range(30):
        for p, q in zip(params, twins):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        opt.step()
        ref.step()
        for sched in scheds:
            sched.step()
        if step == 1:
            tables = [list(bucket.runs) for bucket in opt._buckets]
        elif step > 1:
            assert [list(bucket.runs) for bucket in opt._buckets] == tables
    for p, q in zip(params, twins):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)


def test_a_tensor_lr_replaced_by_a_two_element_tensor_is_a_value_error():
    """After a 1-element tensor lr, a 2-element one: ValueError naming lr, nothing moved (the
    hyper comparison was elementwise and raised RuntimeError)."""
    p = torch.zeros(5, requires_grad=True)
    p.grad = torch.ones(5)
    opt = ot.AdamW([p])
    opt.param_groups[0]["lr"] = torch.tensor(0.02)
    opt.step()
    before = p.detach().clone()
    opt.param_groups[0]["lr"] = torch.tensor([0.02, 0.1])
    with pytest.raises(ValueError, match="lr must be a number or a 1-element tensor"):
        opt.step()
    assert torch.equal(p.detach(), before)


def test_a_list_hyperparameter_changed_in_place_is_read_again():
    """betas as a list, then one item changed in place: optgen follows it as torch.optim does,
    and an invalid item is refused (it was ignored: values were compared by identity)."""
    torch.manual_seed(0)
    p = torch.randn(6, requires_grad=True)
    q = p.detach().clone().requires_grad_(True)
    opt, ref = ot.AdamW([p], lr=0.01), torch.optim.AdamW([q], lr=0.01)
    for o in (opt, ref):
        o.param_groups[0]["betas"] = [0.9, 0.999]
    for step in range(4):
        if step == 2:
            for o in (opt, ref):
                o.param_groups[0]["betas"][0] = 0.5
        p.grad = torch.randn_like(p)
        q.grad = p.grad.clone()
        opt.step()
        ref.step()
    torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-7)
    before = p.detach().clone()
    opt.param_groups[0]["betas"][0] = 5.0
    with pytest.raises(ValueError, match="outside its domain"):
        opt.step()
    assert torch.equal(p.detach(), before)
