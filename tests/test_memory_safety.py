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


# --- found by a hostile review: each fixed at its root, each a test ------------------------

def test_a_gradient_reinterpreted_through_data_is_refused():
    result = isolated(f"""
        p = torch.nn.Parameter(torch.randn({N}, dtype=torch.float64)); o = ot.Adam([p])
        for i in range(3):
            p.grad = torch.randn({N}, dtype=torch.float64)
            if i == 2:
                p.grad.data = p.grad.data.float()  # half the bytes, read as float64
            try:
                o.step()
            except TypeError as e:
                print(e)
        print("alive")
    """)
    assert_clean(result, "alive")
    assert "the gradient of param_groups[0]['params'][0] has dtype torch.float32, its param " \
           "torch.float64" in result.stdout


@pytest.mark.parametrize("front_end", ["torch", "numpy"])
def test_a_thread_swapping_state_entries_during_steps_cannot_crash(front_end):
    """Another thread replaces a state entry by a 1-element tensor and back, as fast as it can,
    while steps run: each step either uses the checked tensors or raises naming the state."""
    setup = ("ps = [torch.nn.Parameter(torch.zeros(1 << 16, dtype=torch.bfloat16)) "
             "for _ in range(4)]\no = ot.Adam(ps)\nfor p in ps: p.grad = torch.ones_like(p)\n"
             "o.step()\nstates = [o.state[p] for p in ps]\ntiny = torch.zeros(1)\nstep = o.step"
             if front_end == "torch" else
             "ps = [np.zeros(1 << 16, np.float32) for _ in range(4)]\n"
             "o = optgen.optimizer('adam', ps)\ngs = [np.ones_like(p) for p in ps]\no.step(gs)\n"
             "states = o.state\ntiny = np.zeros(1, np.float32)\nstep = lambda: o.step(gs)")
    result = isolated(setup + """
import threading, time
good = [s["exp_avg"] for s in states]
stop = time.monotonic() + 3
def swap():
    while time.monotonic() < stop:
        for s, g in zip(states, good):
            s["exp_avg"] = tiny
            s["exp_avg"] = g
thread = threading.Thread(target=swap)
thread.start()
steps = errors = 0
while time.monotonic() < stop:
    try:
        step(); steps += 1
    except ValueError:
        errors += 1
thread.join()
print("alive", steps + errors > 0)
""")
    assert_clean(result, "alive True")


@pytest.mark.parametrize("front_end", ["torch", "numpy"])
def test_a_step_count_whose_conversion_swaps_a_state_cannot_crash(front_end):
    setup = (("p = torch.nn.Parameter(torch.zeros(1 << 20)); o = ot.Adam([p])\n"
                       "p.grad = torch.ones_like(p); o.step(); st = o.state[p]\n"
                       "small = torch.zeros(1); step = o.step\n")
                      if front_end == "torch" else
                      ("p = np.zeros(1 << 20, np.float32); o = optgen.optimizer('adam', [p])\n"
                       "g = [np.ones_like(p)]; o.step(g); st = o.state[0]\n"
                       "small = np.zeros(1, np.float32); step = lambda: o.step(g)\n"))
    result = isolated(setup + """
class Evil(float):
    calls = 0
    def _swap(self):
        Evil.calls += 1
        if Evil.calls >= 2:
            st["exp_avg"] = small
    def __float__(self):
        self._swap(); return 1.0
    def __int__(self):
        self._swap(); return 1
st["step"] = Evil(1.0)
try:
    step()
except ValueError as e:
    print(e)
print("alive")
""")
    assert_clean(result, "alive")


def test_storage_resized_in_place_is_refused():
    result = isolated(f"""
        p = torch.nn.Parameter(torch.zeros({N})); o = ot.Adam([p]); p.grad = torch.ones({N})
        o.step()
        p.grad.untyped_storage().resize_(16)
        try:
            o.step()
        except ValueError as e:
            print("grad refused")
        p.grad = torch.ones({N})
        o.state[p]["exp_avg"] = torch.zeros({N})  # a torch storage: resizable
        o.step()
        o.state[p]["exp_avg"].untyped_storage().resize_(16)
        try:
            o.step()
        except ValueError as e:
            print("state refused")
        o.state[p]["exp_avg"] = torch.zeros({N})
        p.untyped_storage().resize_(16)
        try:
            o.step()
        except ValueError as e:
            print("param refused")
        print("alive")
    """)
    assert_clean(result, "alive")
    for label in ("grad", "state", "param"):
        assert f"{label} refused" in result.stdout


def _same_as_torch(action, make_params, steps: int = 4, lr=0.1):
    """Run ``action(step, params, optimizer)`` before each step on optgen's Adam and
    torch.optim's; both must end with the same params and states."""
    results = []
    for make in (lambda ps: ot.Adam(ps, lr=lr), lambda ps: torch.optim.Adam(ps, lr=lr,
                                                                            foreach=False)):
        params = make_params()
        opt = make(params)
        for step in range(steps):
            for k, p in enumerate(params):
                p.grad = torch.full_like(p, 0.1 * (k + 1)) + torch.linspace(0, 1, p.numel()
                                                                           ).reshape(p.shape)
            action(step, params, opt)
            opt.step()
        results.append((params, opt))
    (mine, ours), (theirs, ref) = results
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a.detach(), b.detach(), **TOL)
        for key, value in ref.state[b].items():
            np.testing.assert_allclose(np.asarray(ours.state[a][key], dtype=np.float64),
                                       np.asarray(value, dtype=np.float64), **TOL, err_msg=key)


def test_a_square_param_transposed_in_place_matches_torch():
    def action(step, params, opt):
        if step == 2:
            params[0].data = params[0].data.t()  # same address and shape, other strides
            params[0].grad = params[0].grad.contiguous()
    def make():  # the same values for both optimizers
        generator = torch.Generator().manual_seed(0)
        return [torch.nn.Parameter(torch.randn(6, 6, generator=generator))]
    _same_as_torch(action, make)


def test_a_tensor_lr_updated_in_place_is_read_each_step():
    def action(step, params, opt):
        opt.param_groups[0]["lr"].fill_(0.1 / (step + 1))  # what LRScheduler does to a tensor lr
    results = []
    for make in (ot.Adam, lambda ps, lr: torch.optim.Adam(ps, lr=lr, foreach=False)):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 10))
        o = make([p], lr=torch.tensor(0.1))
        for step in range(4):
            p.grad = torch.full_like(p, 0.5)
            action(step, [p], o)
            o.step()
        results.append(p.detach())
    np.testing.assert_allclose(results[0], results[1], **TOL)


@pytest.mark.parametrize("edit", ["append", "remove", "replace", "new group"])
def test_param_groups_edited_in_place_are_followed(edit):
    spare = {}

    def make():
        gen = torch.Generator().manual_seed(3)
        params = [torch.nn.Parameter(torch.randn(5, generator=gen)) for _ in range(3)]
        spare["p"] = params[2]
        return params

    def action(step, params, opt):
        if step != 1:
            return
        group = opt.param_groups[0]
        if edit == "append":
            group["params"].append(spare["p"])
        elif edit == "remove":
            del group["params"][0]
        elif edit == "replace":
            group["params"][1] = spare["p"]
        else:
            opt.param_groups.append({**{k: v for k, v in group.items() if k != "params"},
                                     "params": [spare["p"]]})

    def make_two():
        params = make()
        params_in_opt = params[:2]
        make_two.all = params
        return params_in_opt

    results = []
    for factory in (lambda ps: ot.Adam(ps, lr=0.1),
                    lambda ps: torch.optim.Adam(ps, lr=0.1, foreach=False)):
        params = make_two()
        everything = make_two.all
        opt = factory(params)
        for step in range(4):
            for p in everything:
                p.grad = torch.full_like(p, 0.3)
            action(step, params, opt)
            opt.step()
        results.append([p.detach().clone() for p in everything])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, **TOL)


@pytest.mark.parametrize("entry", ["step", "mu_product"])
def test_one_params_step_or_scalar_changed_in_place_matches_torch(entry):
    results = []
    for make in (lambda ps: ot.NAdam(ps, lr=0.1),
                 lambda ps: torch.optim.NAdam(ps, lr=0.1, foreach=False)):
        params = [torch.nn.Parameter(torch.linspace(-1, 1, 6)) for _ in range(2)]
        opt = make(params)
        for step in range(4):
            for p in params:
                p.grad = torch.full_like(p, 0.2)
            if step == 2:
                opt.state[params[1]][entry].fill_(1.0)
            opt.step()
        results.append((params, opt))
    (mine, ours), (theirs, ref) = results
    for a, b in zip(mine, theirs):
        np.testing.assert_allclose(a.detach(), b.detach(), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(float(ours.state[a]["mu_product"]),
                                   float(ref.state[b]["mu_product"]), rtol=1e-6)


def test_a_step_count_out_of_range_steps_nothing():
    a, b = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3))
    o = ot.Adam([{"params": [a]}, {"params": [b]}])
    a.grad, b.grad = torch.ones(3), torch.ones(3)
    o.step()
    before = a.detach().clone()
    for bad in (1e39, -7.0, float("nan"), 2.5):
        o.state[b]["step"] = bad
        with pytest.raises(ValueError, match=r"state 'step' of param_groups\[1\]\['params'\]"
                                             r"\[0\] must be a whole number"):
            o.step()
        assert torch.equal(a.detach(), before) and float(o.state[a]["step"]) == 1
    o.state[b]["step"] = torch.tensor(1.0)
    o.step()
    o.state[b]["step"].fill_(float("nan"))  # the step count's view written in place
    with pytest.raises(ValueError, match="must be a whole number"):
        o.step()
    assert float(o.state[a]["step"]) == 2


@pytest.mark.parametrize("front_end", ["torch", "numpy"])
def test_a_gradient_partly_overlapping_its_param_is_refused(front_end):
    if front_end == "torch":
        buffer = torch.randn(1001)
        p = torch.nn.Parameter(buffer[1:])
        o = ot.Adam([p])
        p.grad = buffer[:-1]
        with pytest.raises(ValueError, match=r"the gradient of param_groups\[0\]\['params'\]"
                                             r"\[0\] overlaps param_groups\[0\]"):
            o.step()
        p.grad = p.detach()  # the very same elements: harmless, allowed
        o.step()
    else:
        buffer = np.random.default_rng(0).standard_normal(1001)
        o = optgen.optimizer("adam", [buffer[1:]])
        with pytest.raises(ValueError, match=r"grads\[0\] overlaps params\[0\]"):
            o.step([buffer[:-1]])
        o.step([buffer[1:]])


def test_numpy_overlap_check_is_not_fooled_by_a_reused_id():
    a, b = np.zeros(8), np.zeros(8)
    o = optgen.optimizer("adam", [a, b])
    o.step([np.ones(8), np.ones(8)])
    for _ in range(20):  # a freed view's id is often given to the next one
        o.state[0]["exp_avg"] = None
        o.state[0]["exp_avg"] = b[:]
        with pytest.raises(ValueError, match="share memory"):
            o.step([np.ones(8), np.ones(8)])
        o.state[0]["exp_avg"] = np.zeros(8)
        o.step([np.ones(8), np.ones(8)])


def test_the_wrapper_checks_both_halves_together():
    p = np.linspace(-1, 1, 8)
    o = optgen.optimizer("lookahead", [p], inner="adam", k=2)
    o.step([np.ones(8)])
    o.params[0] = q = np.zeros(8)  # one list for both halves
    assert o.inner.params[0] is q and o.outer.params[0] is q
    o.step([np.ones(8)])
    o.outer.state[0]["slow"] = o.inner.state[0]["exp_avg"]
    with pytest.raises(ValueError, match="share memory"):
        o.step([np.ones(8)])
    o.outer.state[0]["slow"] = np.zeros(8)
    saved = o.state_dict()
    bad = o.state_dict()
    bad["outer"]["state"][0]["slow"] = np.zeros(3)
    inner_before = o.inner.state[0]["exp_avg"].copy()
    with pytest.raises(ValueError, match="has shape"):
        o.load_state_dict(bad)
    np.testing.assert_array_equal(o.inner.state[0]["exp_avg"], inner_before)
    o.load_state_dict(saved)


def test_muon_needs_matrices_in_both_front_ends():
    with pytest.raises(ValueError, match=r"muon steps 2-D matrices only; param_groups\[0\]"):
        ot.Muon([torch.nn.Parameter(torch.zeros(10))])


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_unclear_inputs_get_clear_errors():
    p = torch.nn.Parameter(torch.zeros(4))
    o = ot.Adam([p])
    p.grad = torch.ones(4)
    with pytest.raises(TypeError, match=r"state_dict\['state'\] must be a dict"):
        o.load_state_dict({"state": [], "param_groups": o.state_dict()["param_groups"]})
    o.state[p] = 5
    with pytest.raises(TypeError, match=r"the state of param_groups\[0\]\['params'\]\[0\] "
                                        r"must be a dict"):
        o.step()
    o.state = {}  # a plain dict, as some code writes: works as torch.optim's defaultdict
    o.step()
    saved = o.state_dict()
    del saved["param_groups"][0]["lr"]
    o.load_state_dict(saved)
    o.step()  # a hyperparameter the checkpoint lacks keeps its default
    with pytest.raises(ValueError, match=r"param_groups\[0\]: lr=-1.0 is outside"):
        o.param_groups[0]["lr"] = -1.0
        o.step()
    with pytest.raises(TypeError, match=r"params\[0\] must be a numpy array, got matrix"):
        optgen.optimizer("adam", [np.matrix(np.zeros((2, 2)))])


# --- found by a second hostile review -----------------------------------------------------

def test_a_storage_shrunk_and_regrown_at_the_same_address_is_refused():
    """A storage resized in place may come back at the same address with fewer bytes; the
    size of every storage the tables address is compared each step."""
    result = isolated("""
        N = 1 << 12
        for target in ("param", "state"):
            p = torch.nn.Parameter(torch.zeros(N)); o = ot.Adam([p]); p.grad = torch.ones(N)
            o.step()
            if target == "state":
                o.state[p]["exp_avg"] = torch.zeros(N)
                o.step()
            t = p if target == "param" else o.state[p]["exp_avg"]
            storage, before = t.untyped_storage(), t.data_ptr()
            for _ in range(200):
                storage.resize_(8); storage.resize_(N * 2)  # half the bytes it needs
                if t.data_ptr() == before:
                    break
            try:
                o.step()
            except ValueError as e:
                print(target, "refused")
        print("alive")
    """)
    assert_clean(result, "alive")
    assert "param refused" in result.stdout and "state refused" in result.stdout


@pytest.mark.parametrize("change", ["grad.t_", "grad.as_strided_", "exp_avg.t_",
                                    "exp_avg.resize_", "grad int32 view"])
def test_layouts_changed_in_place_are_followed_or_refused(change):
    """In-place metadata changes keep an address but change what it means: followed like
    torch.optim (a transposed gradient or state), or refused before anything moves."""
    def run(make, steps=3):
        p = torch.nn.Parameter(torch.linspace(-1, 1, 16).reshape(4, 4))
        o = make([p])
        p.grad = torch.arange(16.0).reshape(4, 4) / 10
        for step in range(steps):
            if step == 2:
                if change == "grad.t_":
                    p.grad.t_()
                elif change == "grad.as_strided_":
                    p.grad.as_strided_((4, 4), (0, 1))
                elif change == "exp_avg.t_":
                    o.state[p]["exp_avg"].t_()
                elif change == "exp_avg.resize_":
                    o.state[p]["exp_avg"].resize_(2)
                else:
                    p.grad.data = p.grad.data.view(torch.int32)
            o.step()
        return p.detach(), o
    if change in ("exp_avg.resize_", "grad int32 view"):
        with pytest.raises((ValueError, TypeError)):
            run(lambda ps: ot.Adam(ps, lr=0.1))
        return
    got, _ = run(lambda ps: ot.Adam(ps, lr=0.1))
    want, _ = run(lambda ps: torch.optim.Adam(ps, lr=0.1, foreach=False))
    np.testing.assert_allclose(got, want, **TOL)


def test_a_gradient_that_is_another_param_is_refused():
    a, b = torch.nn.Parameter(torch.randn(64)), torch.nn.Parameter(torch.randn(64))
    o = ot.Adam([a, b])
    a.grad, b.grad = torch.ones(64), torch.ones(64)
    o.step()
    before = a.detach().clone(), b.detach().clone()
    a.grad = b.detach()  # read while b is written
    with pytest.raises(ValueError, match=r"the gradient of param_groups\[0\]\['params'\]\[0\] "
                                         r"shares memory with param_groups\[0\]\['params'\]"
                                         r"\[1\]"):
        o.step()
    assert torch.equal(a, before[0]) and torch.equal(b, before[1])
    x, y = np.zeros(64), np.zeros(64)
    n = optgen.optimizer("adam", [x, y])
    with pytest.raises(ValueError, match=r"grads\[0\] shares memory with params\[1\]"):
        n.step([y, np.ones(64)])


def test_extra_inputs_are_one_list_over_every_group():
    """Sophia's hessian= lists one tensor per param in param_groups order, across groups."""
    a, b = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(3))
    o = ot.Sophia([{"params": [a]}, {"params": [b], "lr": 1e-3}])
    a.grad, b.grad = torch.ones(4), torch.ones(3)
    o.step(hessian=[torch.full((4,), 2.0), None])
    assert "hess" in o.state[a] and float(o.state[b]["hess"].abs().sum()) == 0
    with pytest.raises(ValueError, match="hessian has 1 tensors for 2 params"):
        o.step(hessian=[torch.ones(4)])


def test_a_negated_view_as_gradient_works_and_as_state_is_refused():
    def run(make, negated: bool):
        a, b = torch.nn.Parameter(torch.linspace(-1, 1, 8)), torch.nn.Parameter(torch.ones(8))
        o = make([{"params": [a]}, {"params": [b]}])
        for _ in range(3):
            a.grad = torch.full((8,), 0.5)
            z = torch.complex(torch.zeros(8), torch.linspace(0, 1, 8))
            b.grad = z.conj().imag if negated else -torch.linspace(0, 1, 8)
            o.step()
        return a.detach(), b.detach(), o
    got = run(lambda groups: ot.Adam(groups, lr=0.1), negated=True)
    want = run(lambda groups: torch.optim.Adam(groups, lr=0.1, foreach=False), negated=False)
    for x, y in zip(got[:2], want[:2]):
        np.testing.assert_allclose(x, y, **TOL)
    o, (a, b) = got[2], got[:2]
    before = a.clone()
    o.state[list(o.state)[1]]["exp_avg"] = torch.complex(torch.zeros(8), torch.ones(8)).conj().imag
    with pytest.raises(TypeError, match="negated or conjugated view"):
        o.step()
    assert torch.equal(o.param_groups[0]["params"][0].detach(), before)


def test_the_wrapper_checks_its_inner_optimizer_before_making_states():
    o = optgen.optimizer("lookahead", [np.zeros(5)], inner="muon")
    with pytest.raises(ValueError, match="muon steps 2-D matrices only"):
        o.step([np.ones(5)])
    assert not o.outer.state[0] and not o.inner.state[0]


@pytest.mark.filterwarnings("ignore:Setting the strides:DeprecationWarning")
def test_numpy_strides_set_in_place_are_seen_by_the_overlap_check():
    big = np.zeros(16)
    a, b = big[:8], big[8:]
    o = optgen.optimizer("adam", [a, b])
    o.step([np.ones(8), np.ones(8)])
    a.strides = (16,)  # now every other element of big, into b's
    with pytest.raises(ValueError, match=r"params\[0\] and params\[1\] share memory"):
        o.step([np.ones(8), np.ones(8)])
