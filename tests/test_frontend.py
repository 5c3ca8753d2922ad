"""The NumPy front end: argument checking, in-place updates, state dicts, mutable hypers."""

from __future__ import annotations

import numpy as np
import pytest

import optgen

from helpers import gradient_sequence, initial_params


def run(name, backend, dtype=np.float64, steps=25, **hypers):
    params = initial_params(dtype)
    opt = optgen.optimizer(name, params, backend=backend, **hypers)
    for grads in gradient_sequence(dtype, steps):
        opt.step(grads)
    return params, opt


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name, hypers", [
    ("sgd", {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    ("adagrad", {"lr_decay": 0.1, "initial_accumulator_value": 0.2}),
    ("rmsprop", {"centered": True, "momentum": 0.5}),
    ("adam", {"amsgrad": True, "weight_decay": 0.1}),
    ("adamw", {"maximize": True}),
])
def test_cpu_backend_matches_numpy_backend(name, hypers, dtype):
    """The Numba kernel and the NumPy reference evaluate the same printed expressions.

    Tolerance: 4 ulp-ish (rtol 1e-15 / 1e-6). Numba may vectorise differently, but neither side
    uses fastmath, so results agree to rounding.
    """
    cpu_params, cpu = run(name, "cpu", dtype, **hypers)
    ref_params, ref = run(name, "numpy", dtype, **hypers)
    rtol = 1e-15 if dtype == np.float64 else 1e-6
    for got, want in zip(cpu_params, ref_params):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0)
    for got, want in zip(cpu.state, ref.state):
        assert got.keys() == want.keys()
        for key in got:
            np.testing.assert_allclose(got[key], want[key], rtol=rtol, atol=0)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_non_contiguous_params_are_updated_in_place(backend):
    base = np.random.default_rng(0).standard_normal((6, 8))
    strided = base[::2, 1::3]            # a view with strides in both axes
    transposed = np.asfortranarray(np.random.default_rng(1).standard_normal((4, 5)))
    params = [strided, transposed]
    copies = [np.ascontiguousarray(p) for p in params]
    grads = [np.random.default_rng(2).standard_normal(p.shape) for p in params]
    opt = optgen.optimizer("adam", params, backend=backend, lr=0.1)
    ref = optgen.optimizer("adam", copies, backend=backend, lr=0.1)
    for _ in range(3):
        opt.step([np.asfortranarray(grads[0]), grads[1][::1]])
        ref.step(grads)
    for got, want in zip(params, copies):
        np.testing.assert_array_equal(got, want)
    assert np.shares_memory(strided, base)
    np.testing.assert_array_equal(base[::2, 1::3], copies[0])  # written through the view


def test_none_grad_skips_a_param():
    params = initial_params(np.float64)
    before = [p.copy() for p in params]
    opt = optgen.optimizer("adam", params)
    grads = gradient_sequence(np.float64, 1)[0]
    grads[2] = None
    opt.step(grads)
    np.testing.assert_array_equal(params[2], before[2])
    assert opt.state[2] == {} and opt.state[3]["step"] == 1


def test_hyperparameters_can_change_between_steps():
    """A schedule changing lr every step matches torch with the same schedule."""
    torch = pytest.importorskip("torch")
    params = initial_params(np.float64)
    tparams = [torch.tensor(p) for p in params]
    opt = optgen.optimizer("adam", params)
    topt = torch.optim.Adam(tparams, foreach=False)
    for step, grads in enumerate(gradient_sequence(np.float64)):
        lr = 1e-2 * 0.9 ** step
        opt.lr = lr
        topt.param_groups[0]["lr"] = lr
        opt.step(grads)
        for p, g in zip(tparams, grads):
            p.grad = torch.tensor(g)
        topt.step()
    assert opt.lr == pytest.approx(1e-2 * 0.9 ** 24)
    for got, want in zip(params, tparams):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-13)


def test_state_dict_round_trip_continues_identically():
    params_a, opt_a = run("rmsprop", "cpu", steps=10, momentum=0.9, centered=True)
    saved = opt_a.state_dict()
    params_b = [p.copy() for p in params_a]
    opt_b = optgen.optimizer("rmsprop", params_b)  # default hypers: restored from the dict
    opt_b.load_state_dict(saved)
    assert opt_b.hypers == opt_a.hypers
    for grads in gradient_sequence(np.float64, 5, seed=7):
        opt_a.step(grads)
        opt_b.step([g.copy() for g in grads])
    for a, b in zip(params_a, params_b):
        np.testing.assert_array_equal(a, b)
    # the saved dict is a copy: stepping did not change it
    assert saved["state"][2]["step"] == 10


def test_state_dict_is_validated_before_loading():
    _, opt = run("adam", "cpu", steps=2)
    saved = opt.state_dict()
    params = initial_params(np.float64)
    fresh = optgen.optimizer("adam", params)
    bad = opt.state_dict()
    bad["state"][3]["exp_avg"] = np.zeros((9, 9))
    with pytest.raises(ValueError, match=r"state_dict\['state'\]\[3\]\['exp_avg'\] has shape"):
        fresh.load_state_dict(bad)
    assert fresh.state == [{} for _ in params]
    with pytest.raises(ValueError, match="is for optimizer 'adam', not 'sgd'"):
        optgen.optimizer("sgd", params).load_state_dict(saved)
    bad = opt.state_dict()
    bad["hypers"]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr=-1.0 is outside its domain"):
        fresh.load_state_dict(bad)
    assert fresh.state == [{} for _ in params] and fresh.lr == 1e-3


class TestBadArguments:
    """Each mistake raises naming the argument, and leaves everything as it was."""

    def setup_method(self):
        self.params = initial_params(np.float64)
        self.before = [p.copy() for p in self.params]
        self.opt = optgen.optimizer("adam", self.params)

    def assert_untouched(self):
        for p, b in zip(self.params, self.before):
            np.testing.assert_array_equal(p, b)
        assert all(s == {} for s in self.opt.state)

    def test_unknown_hyperparameter(self):
        with pytest.raises(TypeError, match="adam has no hyperparameter 'lrr'; did you mean 'lr'"):
            optgen.optimizer("adam", self.params, lrr=0.1)
        with pytest.raises(TypeError, match="'momentum'"):
            self.opt.set(momentum=0.9)

    @pytest.mark.parametrize("hypers, error, message", [
        ({"lr": -0.1}, ValueError, r"lr=-0.1 is outside its domain \[0, inf\)"),
        ({"betas": (0.9, 1.0)}, ValueError, r"betas\[1\]=1.0 is outside its domain \[0, 1\)"),
        ({"betas": (0.9,)}, TypeError, "betas must be a tuple of 2 numbers"),
        ({"lr": "fast"}, TypeError, "lr must be a float"),
        ({"amsgrad": 1}, TypeError, "amsgrad must be a bool"),
        ({"eps": float("nan")}, ValueError, "eps=nan is outside its domain"),
    ])
    def test_bad_hyper_values(self, hypers, error, message):
        with pytest.raises(error, match=message):
            optgen.optimizer("adam", self.params, **hypers)
        with pytest.raises(error, match=message):
            self.opt.set(**hypers)
        assert self.opt.hypers["lr"] == 1e-3 and self.opt.betas == (0.9, 0.999)

    def test_set_is_all_or_nothing(self):
        with pytest.raises(ValueError):
            self.opt.set(lr=0.5, eps=-1.0)
        assert self.opt.lr == 1e-3

    def test_spec_requirement(self):
        with pytest.raises(ValueError, match="Nesterov momentum requires a momentum and zero dampening"):
            optgen.optimizer("sgd", self.params, nesterov=True)

    def test_grads_count(self):
        with pytest.raises(ValueError, match="got 4 grads for 5 params"):
            self.opt.step(gradient_sequence(np.float64, 1)[0][:4])
        self.assert_untouched()

    def test_grad_shape(self):
        grads = gradient_sequence(np.float64, 1)[0]
        grads[4] = grads[4].reshape(-1)
        with pytest.raises(ValueError, match=r"grads\[4\] has shape \(24,\), but params\[4\] has \(2, 3, 4\)"):
            self.opt.step(grads)
        self.assert_untouched()

    def test_grad_dtype(self):
        grads = gradient_sequence(np.float64, 1)[0]
        grads[3] = grads[3].astype(np.float32)
        with pytest.raises(TypeError, match=r"grads\[3\] has dtype float32, but params\[3\] has float64"):
            self.opt.step(grads)
        self.assert_untouched()

    def test_grad_type(self):
        grads = gradient_sequence(np.float64, 1)[0]
        grads[2] = grads[2].tolist()
        with pytest.raises(TypeError, match=r"grads\[2\] must be a numpy array, got list"):
            self.opt.step(grads)
        with pytest.raises(TypeError, match="grads must be a list"):
            self.opt.step(np.zeros(3))
        self.assert_untouched()

    def test_param_dtype_and_flags(self):
        with pytest.raises(TypeError, match=r"params\[1\] has dtype float16"):
            optgen.optimizer("adam", [np.zeros(2), np.zeros(2, np.float16)])
        frozen = np.zeros(3)
        frozen.flags.writeable = False
        with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
            optgen.optimizer("adam", [frozen])
        with pytest.raises(TypeError, match=r"params\[0\] must be a numpy array, got list"):
            optgen.optimizer("adam", [[1.0, 2.0]])

    def test_backend_and_name(self):
        with pytest.raises(ValueError, match="backend must be one of 'cpu', 'numpy', 'cuda', got 'gpu'"):
            optgen.optimizer("adam", self.params, backend="gpu")
        with pytest.raises(ValueError, match="unknown optimizer .adamm.; the catalogue has: adabelief, adabound"):
            optgen.optimizer("adamm", self.params)
        with pytest.raises(ValueError, match="does not exist"):
            optgen.optimizer("nowhere/x.opt", self.params)


def test_available_lists_the_catalogue():
    assert {"sgd", "adagrad", "rmsprop", "adam", "adamw"} <= set(optgen.available())


def test_factored_states_have_row_and_column_shapes():
    """Adafactor keeps a (..., R, 1) and a (..., 1, C) state for params of 2+ dimensions, a
    whole variance for the rest, and its checkpoints round-trip."""
    params = [np.ones((2, 3, 4)), np.ones(5), np.ones(())]
    opt = optgen.optimizer("adafactor", params)
    opt.step([np.full((2, 3, 4), 0.5), np.full(5, 0.5), np.array(0.5)])
    assert opt.state[0]["row_var"].shape == (2, 3, 1)
    assert opt.state[0]["col_var"].shape == (2, 1, 4)
    assert "variance" not in opt.state[0]
    assert opt.state[1]["variance"].shape == (5,) and "row_var" not in opt.state[1]
    saved = opt.state_dict()
    clone = optgen.optimizer("adafactor", [p.copy() for p in params])
    clone.load_state_dict(saved)
    grads = [np.full((2, 3, 4), -0.25), np.full(5, 0.1), np.array(2.0)]
    opt.step(grads)
    clone.step(grads)
    for a, b in zip(opt.params, clone.params):
        np.testing.assert_array_equal(a, b)
    bad = opt.state_dict()
    bad["state"][0]["row_var"] = np.zeros((2, 3, 4))
    with pytest.raises(ValueError, match=r"'row_var'.*expected \(2, 3, 1\)"):
        clone.load_state_dict(bad)


def test_none_tuple_item_is_accepted_and_validated():
    opt = optgen.optimizer("adafactor", [np.ones(3)], eps=(None, 1e-3))
    opt.eps = (1e-30, 1e-3)
    assert opt.eps == (1e-30, 1e-3)
    with pytest.raises(ValueError, match=r"eps\[0\]=-1.0 is outside its domain"):
        opt.eps = (-1.0, 1e-3)
    with pytest.raises(TypeError, match=r"eps\[1\] must be a float"):
        opt.eps = (None, None)  # only eps1 may be None
    with pytest.raises(TypeError, match=r"eps\[0\] must be a float"):
        opt.eps = ("x", 1e-3)


@pytest.mark.parametrize("name", ["adam", "lamb", "nadam"])
def test_many_tensor_kernel_matches_one_tensor_kernel_bit_for_bit(name):
    """step_many_cpu over a table of tensors gives the bits step_cpu gives one at a time (the
    same printed expressions; sums over the same blocks, added by the same row_sum), in both
    dtypes. The states are nonnegative: a negative second moment made LAMB's norms NaN in
    both kernels, which hid a difference in 102 of 379 lengths when the kernels themselves
    were compiled with reassociation (found by a hostile review)."""
    from optgen.runtime.kernels import cast_host, run_step
    from optgen.runtime.loader import load
    from optgen.runtime.many import TensorTable

    module = load(name)
    shapes = [(3, 5), (70000,), (), (2, 3, 4), (5000,),
              *((n,) for n in (1, 40, 49, 53, 90, 299, 4096, 4133))]
    flat = tuple(np.float64(v) if isinstance(v, float) else v
                 for h in module.HYPERS for v in h.flat(h.coerce(h.default)))
    for dtype in (np.float32, np.float64):
        host = module.host_scalars(3, *flat, *module.scalar_inits(*flat))
        host = cast_host(host, module.HOST_IS_BOOL, np.dtype(dtype))
        def arrays():
            gen = np.random.default_rng(1)
            return [[(gen.standard_normal(int(np.prod(s))) * (1 if k < 2 else 0) + (
                        0 if k < 2 else np.abs(gen.standard_normal(int(np.prod(s)))))
                      ).astype(dtype) for k, _ in enumerate(module.ARRAYS)] for s in shapes]
        one, many = arrays(), arrays()
        for shape, row in zip(shapes, one):
            run_step(module, "cpu", row, host, np.dtype(dtype), shape)
        TensorTable(module, dtype, shapes).run_with(many, host)
        for shape, a, b in zip(shapes, one, many):
            for x, y in zip(a, b):
                assert np.isfinite(x).all(), (dtype, shape)
                np.testing.assert_array_equal(x, y, err_msg=f"{dtype.__name__} {shape}")
