"""Adversarial use of the front ends: what ordinary torch and NumPy code does to params, grads
and states between steps. The kernels write through raw addresses, so each scenario either
works as torch.optim does (compared with torch.optim.Adam(foreach=False) doing the same
things: float32 rtol 1e-5 / atol 1e-7) or raises a clear error naming the param and the state
— never crashes. Scenarios that crashed the process before (SIGSEGV, heap corruption) run in a
subprocess of their own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import optgen  # noqa: E402
import optgen.torch as ot  # noqa: E402

TOL = {"rtol": 1e-5, "atol": 1e-7}
N = 1 << 20  # large enough that a stale address lands outside any small allocation


def isolated(code: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; its last line of output is the verdict."""
    prelude = "import collections, torch, numpy as np, optgen, optgen.torch as ot\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)


def assert_clean(result: subprocess.CompletedProcess, expect: str) -> None:
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.strip().splitlines()[-1] == expect, result.stdout


# --- optgen.torch: what used to write through stale addresses -----------------------------

def test_stale_states_are_rebuilt_as_torch_optim_does():
    """Replacing ``state`` wholesale or one entry, then stepping: the same as torch.optim."""
    result = isolated(f"""
        def run(make):
            p = torch.nn.Parameter(torch.linspace(-1, 1, {N}))
            o = make([p])
            p.grad = torch.full_like(p, 0.5)
            o.step()
            o.state = collections.defaultdict(dict)      # a fresh start
            o.step()
            o.state[p]["exp_avg"] = torch.zeros_like(p)  # one entry by hand
            o.step()
            o.state[p]["exp_avg_sq"] = torch.full_like(p, 2.0, dtype=torch.float64)
            o.step()                                     # another dtype: converted
            return p.detach()
        a = run(lambda ps: ot.Adam(ps))
        b = run(lambda ps: torch.optim.Adam(ps, foreach=False))
        print(torch.allclose(a, b, rtol=1e-5, atol=1e-7))
    """)
    assert_clean(result, "True")


def test_moved_and_resized_gradients_and_params_are_caught():
    result = isolated(f"""
        p = torch.nn.Parameter(torch.zeros({N})); o = ot.Adam([p]); p.grad = torch.ones({N})
        o.step()
        p.grad.data = torch.ones(5)                      # same grad object, new storage
        try:
            o.step()
        except ValueError as e:
            print("grad:", e)
        p.grad = torch.ones({N})
        before = p.detach().clone()
        p.data = p.data[:5]                              # same address, fewer elements
        try:
            o.step()
        except ValueError as e:
            print("param:", e)
        print("unchanged" if torch.equal(p.detach(), before[:5]) else "moved")
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "grad: the gradient of param_groups[0]['params'][0] has shape (5,)" in out
    assert "param: the gradient of param_groups[0]['params'][0] has shape (1048576,), " \
           "expected (5,)" in out
    assert out.strip().endswith("unchanged")


def test_model_half_and_double_keep_stepping():
    """``model.half()`` moves every param to new storage of another dtype; states stay float32
    (optgen's half-precision rule). ``model.double()``: states converted to float64, then
    the same as torch.optim with its states converted by hand (to float32 tolerances: the first
    step was a float32 one)."""
    result = isolated("""
        torch.manual_seed(0)
        x = torch.randn(16, 64)
        def train(make, convert):
            m = torch.nn.Linear(64, 64); m.load_state_dict(ref_weights)
            o = make(m.parameters())
            for i in range(3):
                if i == 1:
                    convert(m, o)
                o.zero_grad()
                m(x.to(m.weight.dtype)).square().mean().backward()
                o.step()
            return m, o
        ref_weights = torch.nn.Linear(64, 64).state_dict()
        def double(m, o):
            m.double()
        def double_states(m, o):
            m.double()
            for s in o.state.values():
                for k, v in s.items():
                    if k != "step":
                        s[k] = v.double()
        a, oa = train(lambda ps: ot.Adam(ps, lr=1e-2), double)
        b, _ = train(lambda ps: torch.optim.Adam(ps, lr=1e-2, foreach=False), double_states)
        print("double", a.weight.dtype, oa.state[a.weight]["exp_avg"].dtype,
              torch.allclose(a.weight, b.weight, rtol=1e-5, atol=1e-7))
        h, oh = train(lambda ps: ot.Adam(ps, lr=1e-2), lambda m, o: m.half())
        f, _ = train(lambda ps: ot.Adam(ps, lr=1e-2), lambda m, o: None)
        print("half", h.weight.dtype, oh.state[h.weight]["exp_avg"].dtype,
              torch.allclose(h.weight.float(), f.weight, rtol=0, atol=2e-3))
        print("done")
    """)
    assert_clean(result, "done")
    assert "double torch.float64 torch.float64 True" in result.stdout
    assert "half torch.float16 torch.float32 True" in result.stdout


def test_checkpoint_with_other_shapes_is_refused_and_nothing_changes():
    result = isolated(f"""
        p = torch.nn.Parameter(torch.zeros({N})); o = ot.Adam([p]); p.grad = torch.ones({N})
        o.step()
        sd = o.state_dict()
        sd["state"][0]["exp_avg"] = torch.zeros(3)
        o2 = ot.Adam([p], lr=0.5)
        try:
            o2.load_state_dict(sd)
        except ValueError as e:
            print(e)
        print(len(o2.state), o2.param_groups[0]["lr"])
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "state 'exp_avg' of param_groups[0]['params'][0] has shape (3,), expected " \
           "(1048576,)" in result.stdout
    assert result.stdout.strip().endswith("0 0.5")


def test_a_state_of_the_wrong_shape_set_by_hand_is_named():
    result = isolated(f"""
        p = torch.nn.Parameter(torch.zeros({N})); o = ot.Adam([p]); p.grad = torch.ones({N})
        o.step()
        o.state[p]["exp_avg_sq"] = torch.zeros(10)
        try:
            o.step()
        except ValueError as e:
            print(e)
        o.state[p]["exp_avg_sq"] = "zeros"
        try:
            o.step()
        except TypeError as e:
            print(e)
        print("alive")
    """)
    assert_clean(result, "alive")
    assert "state 'exp_avg_sq' of param_groups[0]['params'][0] has shape (10,)" in result.stdout
    assert "state 'exp_avg_sq' of param_groups[0]['params'][0] must be a tensor, got str" \
        in result.stdout


def test_step_count_set_by_hand_is_honoured():
    def run(make):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 50))
        o = make([p])
        p.grad = torch.full_like(p, 0.3)
        o.step()
        o.state[p]["step"] = torch.tensor(100.0)
        o.step()
        return p.detach()
    np.testing.assert_allclose(run(lambda ps: ot.Adam(ps, lr=0.1)),
                               run(lambda ps: torch.optim.Adam(ps, lr=0.1, foreach=False)), **TOL)


# --- arguments are validated whole before anything moves ----------------------------------

def test_sophia_bad_hessian_steps_nothing():
    p1, p2 = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4))
    o = ot.Sophia([p1, p2])
    p1.grad, p2.grad = torch.ones(4), torch.ones(4)
    with pytest.raises(ValueError, match=r"hessian for param_groups\[0\]\['params'\]\[1\] has "
                                         r"shape \(3,\)"):
        o.step(hessian=[torch.ones(4), torch.ones(3)])
    assert torch.equal(p1.detach(), torch.zeros(4)) and not o.state


def test_a_bad_gradient_in_a_later_group_steps_nothing():
    a, b = torch.nn.Parameter(torch.zeros(8)), torch.nn.Parameter(torch.zeros(8))
    o = ot.Adam([{"params": [a]}, {"params": [b], "lr": 0.1}])
    a.grad = torch.ones(8)
    b.grad = torch.ones(8)
    o.step()
    before = a.detach().clone(), dict(o.state[a])["exp_avg"].clone()
    b.grad.data = torch.ones(3)
    with pytest.raises(ValueError, match=r"param_groups\[1\]\['params'\]\[0\]"):
        o.step()
    assert torch.equal(a.detach(), before[0]) and torch.equal(o.state[a]["exp_avg"], before[1])
    assert float(o.state[a]["step"]) == 1


# --- layouts, overlaps, tensor subclasses -------------------------------------------------

@pytest.mark.parametrize("layout", ["channels_last", "transposed", "sliced"])
def test_non_contiguous_params_match_torch_optim(layout):
    def make_param():
        torch.manual_seed(1)
        if layout == "channels_last":
            return torch.nn.Parameter(torch.randn(8, 3, 3, 3).to(
                memory_format=torch.channels_last))
        if layout == "transposed":
            return torch.nn.Parameter(torch.randn(4, 3).t())
        return torch.nn.Parameter(torch.randn(6, 10)[:, ::3])

    def run(make):
        p = make_param()
        o = make([p])
        for i in range(4):
            p.grad = (torch.arange(p.numel(), dtype=p.dtype).reshape(p.shape) - 5 * i) / 7
            p.grad = p.grad.to(memory_format=torch.channels_last) if p.dim() == 4 else p.grad
            o.step()
        return p, o

    got, opt = run(lambda ps: ot.AdamW(ps, lr=0.1))
    want, _ = run(lambda ps: torch.optim.AdamW(ps, lr=0.1, foreach=False))
    np.testing.assert_allclose(got.detach(), want.detach(), **TOL)
    assert got.stride() == want.stride()
    if layout == "channels_last":  # stepped in place, states in the param's layout
        assert opt.state[got]["exp_avg"].stride() == got.stride()


def test_overlapping_params_are_refused_naming_both():
    buffer = torch.zeros(10)
    with pytest.raises(ValueError, match=r"param_groups\[0\]\['params'\]\[0\] and "
                                         r"param_groups\[1\]\['params'\]\[0\] share memory"):
        ot.Adam([{"params": [torch.nn.Parameter(buffer[:6])]},
                 {"params": [torch.nn.Parameter(buffer[4:])]}])
    # disjoint views of one buffer are fine, interleaved ones too
    ot.Adam([torch.nn.Parameter(buffer[:5]), torch.nn.Parameter(buffer[5:])])
    ot.Adam([torch.nn.Parameter(buffer[::2]), torch.nn.Parameter(buffer[1::2])])
    # made to overlap later, through .data
    a, b = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4))
    o = ot.Adam([a, b])
    a.grad, b.grad = torch.ones(4), torch.ones(4)
    o.step()
    b.data = a.data
    with pytest.raises(ValueError, match="share memory"):
        o.step()


def test_a_state_shared_between_params_is_refused():
    a, b = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4))
    o = ot.Adam([a, b])
    a.grad, b.grad = torch.ones(4), torch.ones(4)
    o.step()
    o.state[b]["exp_avg"] = o.state[a]["exp_avg"]
    with pytest.raises(ValueError, match=r"state 'exp_avg' of param_groups\[0\]\['params'\]"
                                         r"\[0\] and state 'exp_avg' of param_groups\[0\]"):
        o.step()


def test_tensor_subclasses_are_refused():
    class Tagged(torch.Tensor):
        pass

    p = torch.zeros(3).as_subclass(Tagged)
    with pytest.raises(TypeError, match=r"param_groups\[0\]\['params'\]\[0\] is a .*Tagged; "
                                        r"optgen.torch steps plain tensors"):
        ot.Adam([p])
    with pytest.raises(TypeError, match="lazy parameters"):
        ot.Adam([torch.nn.parameter.UninitializedParameter()])


def test_fsdp2_dtensor_params_raise_type_error():
    """FSDP2's fully_shard makes DTensor parameters; until they are supported: a TypeError."""
    result = isolated("""
        import os
        import torch.distributed as dist
        from torch.distributed.fsdp import fully_shard
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
        dist.init_process_group("gloo", rank=0, world_size=1)
        model = fully_shard(torch.nn.Linear(8, 8))
        try:
            ot.AdamW(model.parameters())
        except TypeError as e:
            print(e)
        dist.destroy_process_group()
        print("done", flush=True)
        os._exit(0)
    """)
    assert_clean(result, "done")
    assert "is a torch.distributed.tensor.DTensor; optgen.torch steps plain tensors" \
        in result.stdout


# --- threads --------------------------------------------------------------------------------

def _in_threads(step, count: int = 4, steps: int = 25) -> None:
    errors = []

    def work():
        try:
            for _ in range(steps):
                step()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_one_torch_optimizer_stepped_from_threads_is_serialised():
    """Steps from four threads run one after another: the same as 100 steps in one thread."""
    def make():
        params = [torch.nn.Parameter(torch.linspace(-1, 1, 70_000 + k)) for k in range(3)]
        for p in params:
            p.grad = torch.full_like(p, 0.25)
        return params, ot.Adam(params, lr=1e-3)
    threaded, o = make()
    _in_threads(o.step)
    serial, s = make()
    for _ in range(100):
        s.step()
    for a, b in zip(threaded, serial):
        assert torch.equal(a, b)
    assert float(o.state[threaded[0]]["step"]) == 100


def test_one_numpy_optimizer_stepped_from_threads_is_serialised():
    def make():
        params = [np.linspace(-1, 1, 70_000 + k, dtype=np.float32) for k in range(3)]
        return params, optgen.optimizer("adam", params)
    threaded, o = make()
    grads = [np.full_like(p, 0.25) for p in threaded]
    _in_threads(lambda: o.step(grads))
    serial, s = make()
    for _ in range(100):
        s.step(grads)
    for a, b in zip(threaded, serial):
        np.testing.assert_array_equal(a, b)


# --- the NumPy front end ----------------------------------------------------------------------

def test_numpy_state_of_the_wrong_shape_is_named():
    result = isolated(f"""
        p = np.zeros({N}, np.float32); o = optgen.optimizer("adam", [p])
        o.step([np.ones_like(p)])
        o.state[0]["exp_avg"] = np.zeros(10, np.float32)
        try:
            o.step([np.ones_like(p)])
        except ValueError as e:
            print(e)
        print("alive")
    """)
    assert_clean(result, "alive")
    assert "state 'exp_avg' of params[0] has shape (10,), expected (1048576,)" in result.stdout


def test_numpy_state_of_another_dtype_is_converted():
    def run(exp_avg_dtype):
        p = np.linspace(-1, 1, 9, dtype=np.float32)
        o = optgen.optimizer("adam", [p])
        o.step([np.full_like(p, 0.5)])
        o.state[0]["exp_avg"] = np.ones(9, dtype=exp_avg_dtype)
        o.step([np.full_like(p, 0.5)])
        return p, o
    converted, o = run(np.float64)
    reference, _ = run(np.float32)
    np.testing.assert_array_equal(converted, reference)
    assert o.state[0]["exp_avg"].dtype == np.float32


def test_numpy_params_made_read_only_are_refused():
    p = np.zeros(8, np.float32)
    o = optgen.optimizer("adam", [p])
    p.flags.writeable = False
    with pytest.raises(ValueError, match=r"params\[0\] is read-only"):
        o.step([np.ones_like(p)])
    assert not o.state[0] and not p.any()


def test_numpy_overlapping_params_and_states_are_refused():
    buffer = np.zeros(10)
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        optgen.optimizer("adam", [buffer[:6], buffer[4:]])
    optgen.optimizer("adam", [buffer[::2], buffer[1::2]])  # interleaved, no common element
    a, b = np.zeros(4), np.zeros(4)
    o = optgen.optimizer("adam", [a, b])
    o.step([np.ones(4), np.ones(4)])
    o.state[1]["exp_avg"] = o.state[0]["exp_avg"]
    with pytest.raises(ValueError, match=r"state 'exp_avg' of params\[0\] and state "
                                         r"'exp_avg' of params\[1\] share memory"):
        o.step([np.ones(4), np.ones(4)])


def test_numpy_replaced_state_list_is_checked():
    p = np.zeros(8)
    o = optgen.optimizer("adam", [p])
    o.state = [{}]
    o.step([np.ones(8)])  # a fresh start, as torch.optim's
    o.state = {}
    with pytest.raises(TypeError, match="state must be a list of 1 dicts"):
        o.step([np.ones(8)])
